"""UI state kept between runs in QSettings (friture's habit: UI state only).

What is kept: the last source, the model choice, threshold, detection size
and interval (``every``, 0 = auto), the model folder, alert options, the window
geometry and splitter layout. Command line options win over what was kept; an
option left at its default does not count as given (argparse cannot tell them
apart). ``--model-dir`` and ``MESOLIVE_MODEL_DIR`` win over the kept model
folder for the run and are not kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QSettings

from mesolive.env import env_path
from mesolive.models.registry import default_model
from mesolive.types import FAKE_THRESHOLD

ARCHS = ("meso4", "mesoinception4")
VARIANTS = ("df", "f2f")
DET_SIZES = (0, 320, 480, 640, 800)  # 0 = the pipeline's default
_MODEL = re.compile(r"^(meso4|mesoinception4)-(df|f2f)$")

SETTINGS_VERSION = 3  # 2: no models kept = the default model; 3: every 0 = auto
OLD_DEFAULT = "meso4-df"  # the default model of settings version 1

#: Testing hook: keep settings in this INI file instead of the user's.
SETTINGS_ENV = "MESOLIVE_GUI_SETTINGS"


@dataclass
class UiSettings:
    """The app's choices, as the controls show them."""

    source: str = ""
    models: tuple[str, ...] = field(default_factory=lambda: (default_model(),))
    threshold: float = FAKE_THRESHOLD
    det_size: int = 0
    every: int = 0  # analyse every N-th frame; 0 = auto (keep up with the source)
    alert_seconds: float = 3.0
    alert_sound: bool = False
    alert_notify: bool = True
    loop_files: bool = False
    model_dir: str = ""  # the offline model folder; "" = the cache (downloads)
    recent_sources: list[str] = field(default_factory=list)

    def remember_source(self, uri: str, keep: int = 10) -> None:
        self.source = uri
        self.recent_sources = [uri, *[u for u in self.recent_sources if u != uri]][:keep]

    def forget_source(self, uri: str) -> None:
        """``uri`` could not be opened: out of the recent list, and not the next start's."""
        self.recent_sources = [u for u in self.recent_sources if u != uri]
        if self.source == uri:
            self.source = self.recent_sources[0] if self.recent_sources else ""


def split_models(models: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """``("meso4-df", "meso4-f2f")`` → ``("meso4", ("df", "f2f"))``; None if not of that form."""
    parsed = [_MODEL.match(m) for m in models]
    if not models or any(p is None for p in parsed):
        return None
    archs = {p.group(1) for p in parsed if p is not None}
    if len(archs) != 1:
        return None
    return archs.pop(), tuple(p.group(2) for p in parsed if p is not None)


def open_settings() -> QSettings:
    """The app's QSettings: the user's, or the INI file named by ``MESOLIVE_GUI_SETTINGS``."""
    path = env_path(SETTINGS_ENV)
    if path:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings("mesolive", "mesolive")


def _get(qs: QSettings, key: str, default: Any, kind: type) -> Any:
    value = qs.value(key, default)
    try:
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        return kind(value)
    except (TypeError, ValueError):
        return default


def load(qs: QSettings) -> UiSettings:
    """Read the kept choices; anything missing or malformed falls back to its default.

    No models kept means "the default model", whatever it is now, so a newer
    default reaches users who never picked one. Settings written before that
    rule (no ``settings/version``) kept the old default, ``meso4-df``, by
    name: it is read as "the default" too. Likewise an interval of 1 kept
    before "auto" existed (version 3), the old default, is read as auto.
    """
    d = UiSettings()
    models_raw = qs.value("pipeline/models", [])
    if isinstance(models_raw, str):
        models_raw = [m for m in models_raw.split(",") if m]
    models = tuple(str(m) for m in (models_raw or d.models))
    version = _get(qs, "settings/version", 1, int)
    if version < 2 and models == (OLD_DEFAULT,):
        models = d.models
    recent = qs.value("source/recent", [])
    if isinstance(recent, str):
        recent = [recent] if recent else []
    s = UiSettings(
        source=_get(qs, "source/last", d.source, str),
        models=models or d.models,
        threshold=min(0.99, max(0.01, _get(qs, "pipeline/threshold", d.threshold, float))),
        det_size=_get(qs, "pipeline/det_size", d.det_size, int),
        every=max(0, _get(qs, "pipeline/every", d.every, int)),
        alert_seconds=max(0.0, _get(qs, "alert/seconds", d.alert_seconds, float)),
        alert_sound=_get(qs, "alert/sound", d.alert_sound, bool),
        alert_notify=_get(qs, "alert/notify", d.alert_notify, bool),
        loop_files=_get(qs, "source/loop_files", d.loop_files, bool),
        model_dir=_get(qs, "pipeline/model_dir", d.model_dir, str),
        recent_sources=[str(u) for u in (recent or [])][:10],
    )
    s.det_size = max(0, s.det_size)
    if version < 3 and s.every == 1:
        s.every = d.every
    return s


def save(qs: QSettings, s: UiSettings) -> None:
    qs.setValue("settings/version", SETTINGS_VERSION)
    qs.setValue("source/last", s.source)
    qs.setValue("source/recent", list(s.recent_sources))
    qs.setValue("source/loop_files", s.loop_files)
    follows_default = s.models == (default_model(),)
    qs.setValue("pipeline/models", [] if follows_default else list(s.models))
    qs.setValue("pipeline/threshold", float(s.threshold))
    qs.setValue("pipeline/det_size", int(s.det_size))
    qs.setValue("pipeline/every", int(s.every))
    qs.setValue("pipeline/model_dir", s.model_dir)
    qs.setValue("alert/seconds", float(s.alert_seconds))
    qs.setValue("alert/sound", bool(s.alert_sound))
    qs.setValue("alert/notify", bool(s.alert_notify))


def apply_cli(s: UiSettings, args: Any) -> UiSettings:
    """Every option given on the command line overrides the kept setting (and, like the
    Settings tab's values, is kept when the app closes).

    Options not given are None (the parser has no defaults for them), so a
    value equal to the default (``--threshold 0.5``) still wins.
    """
    if getattr(args, "models", None):
        s.models = tuple(args.models)
    threshold = getattr(args, "threshold", None)
    if threshold is not None:
        s.threshold = float(threshold)
    det_size = getattr(args, "det_size", None)
    if det_size:
        s.det_size = int(det_size)
    every = getattr(args, "every", None)
    if every is not None:
        s.every = 0 if every == "auto" else int(every)
    alert_seconds = getattr(args, "alert_seconds", None)
    if alert_seconds is not None:
        s.alert_seconds = float(alert_seconds)
    return s
