"""``mesolive`` on a machine without a display: one line, exit code 2, no Qt loaded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mesolive.gui.app import display_problem


@pytest.mark.parametrize(
    ("env", "platform", "problem"),
    [
        ({}, "linux", True),
        ({"DISPLAY": ":0"}, "linux", False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({}, "win32", False),
        ({}, "darwin", False),
    ],
)
def test_display_problem(env, platform, problem):
    assert (display_problem(env, platform) is not None) is problem


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux display rules")
@pytest.mark.parametrize(
    ("display", "says"),
    [(None, "no display"), (":4711", "cannot connect to the X display :4711 (DISPLAY)")],
    ids=["unset", "unreachable"],
)
def test_no_display_gives_one_line_and_exit_code_2(display: str | None, says: str) -> None:
    """An unset DISPLAY, or one no X server answers (a stale SSH session's), where Qt
    itself would abort with a misleading hint about libxcb-cursor0."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    if display is not None:
        env["DISPLAY"] = display
    code = (
        "import sys\n"
        "from mesolive.cli import main\n"
        "rc = main([])\n"
        "assert 'PySide6' not in sys.modules, 'Qt was imported before the display check'\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"mesolive: error: {says}")
    assert "mesolive scan" in lines[0]


def test_an_unknown_model_for_the_app_is_one_line_and_kept_nowhere(tmp_path) -> None:
    """A typo in ``--models`` was kept among the app's settings and failed every later start."""
    settings = tmp_path / "mesolive.ini"
    env = {**os.environ, "MESOLIVE_GUI_SETTINGS": str(settings), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-m", "mesolive", "--models", "meso4-df,nosuch", "--source", "test:"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("mesolive: error: --models: unknown model 'nosuch'")
    assert proc.stderr.count("\n") == 1 and not settings.exists()
