"""INT8 graphs for ONNX Runtime on the CPU: calibrated once, cached, judged against float32.

:func:`int8_graph_path` builds a model's INT8 graph
(:func:`mesolive.models.quantize.int8_graph` with ``target="cpu"``) from a
fixed sample of face crops, read through the model's preprocessing contract:
the folder named by ``MESOLIVE_CALIBRATION`` (:data:`CALIBRATION_ENV`), its
images shuffled with seed 0, the first :data:`CALIBRATION_CROPS` to calibrate
on and the next :data:`HELD_OUT_CROPS` to judge. It is cached next to the
float32 graph it came from, keyed by that graph's checksum, the crops' bytes
and :data:`QUANTIZER_VERSION`, with its sha256 recorded beside it like every
cached graph (:func:`mesolive.models.registry.graph_problem`) and a verdict
(``*.verdict.json``): how many held-out decisions (fake/real at 0.5) flip
against float32 and both graphs' faces/s here, measured once, interleaved.

``--precision auto`` (:func:`cpu_graph`) runs the INT8 graph only where the
CPU has VNNI/AMX (:mod:`mesolive.backends.cpuinfo`), a calibration folder is
set, and the verdict says it flips at most :data:`MAX_FLIPPED` of the
decisions and runs at least :data:`MIN_SPEEDUP` times faster; else float32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mesolive.env import env_path
from mesolive.errors import BackendUnavailable, InputError, ModelError
from mesolive.models import registry
from mesolive.paths import cannot_write, write_bytes_atomic

log = logging.getLogger(__name__)

CALIBRATION_ENV = "MESOLIVE_CALIBRATION"
CALIBRATION_CROPS = 128
HELD_OUT_CROPS = 256
MIN_CROPS = 32
"""A calibration folder needs this many readable crops (half calibrate, half judge)."""

MAX_FLIPPED = 0.02
"""Largest share of held-out decisions INT8 may flip for ``auto`` to run it."""

MIN_SPEEDUP = 1.05
"""``auto`` runs INT8 only when it measured at least this many times float32's faces/s."""

QUANTIZER_VERSION = 2
"""Bumped whenever :func:`mesolive.models.quantize.quantize_cpu` changes its output."""

_BATCH = 8
_TIMING_ROUNDS = 10
_TIMING_WINDOW_S = 0.15


@dataclass(frozen=True)
class Verdict:
    """How a cached INT8 graph compared with its float32 graph (the ``*.verdict.json``)."""

    held_out: int
    flipped: int
    fp32_faces_per_s: float
    int8_faces_per_s: float
    speedup: float
    calibration: dict[str, Any] = field(default_factory=dict)
    cpu_flags: tuple[str, ...] = ()

    def why_not(self) -> str:
        """Why ``auto`` keeps float32 (``""``: INT8 qualifies)."""
        if self.flipped > MAX_FLIPPED * self.held_out:
            return (
                f"INT8 flips {self.flipped} of {self.held_out} held-out decisions "
                f"(more than {MAX_FLIPPED:.0%})"
            )
        if self.speedup < MIN_SPEEDUP:
            return f"INT8 measured x{self.speedup:.2f} the float32 faces/s here"
        return ""

    def line(self) -> str:
        return (
            f"{self.flipped}/{self.held_out} held-out decisions flip, "
            f"x{self.speedup:.2f} faces/s ({self.int8_faces_per_s:.0f} vs "
            f"{self.fp32_faces_per_s:.0f} float32, batch {_BATCH})"
        )


def calibration_folder() -> Path | None:
    """The folder of face crops named by ``MESOLIVE_CALIBRATION``, or None when unset."""
    folder = env_path(CALIBRATION_ENV)
    if folder is not None and not folder.is_dir():
        raise InputError(f"{CALIBRATION_ENV}={folder}: not a folder of face crops")
    return folder


def _sample(folder: Path) -> tuple[list[Path], list[Path]]:
    """The calibration and held-out files: the folder's images shuffled with seed 0."""
    from mesolive.imageio import expand_paths

    files, _ = expand_paths([folder])
    if len(files) < MIN_CROPS:
        raise InputError(f"{folder}: INT8 calibration needs at least {MIN_CROPS} face crops")
    order = np.random.default_rng(0).permutation(len(files))
    picked = [files[i] for i in order[: CALIBRATION_CROPS + HELD_OUT_CROPS]]
    n_cal = min(CALIBRATION_CROPS, len(picked) // 2)
    return picked[:n_cal], picked[n_cal:]


def _key(fp32: Path, files: list[Path]) -> str:
    """What the INT8 graph depends on: the float32 graph, the crops' bytes, the quantizer."""
    from mesolive.models.download import sha256_file

    h = hashlib.sha256(f"{QUANTIZER_VERSION}:{sha256_file(fp32)}".encode())
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def _batch(spec: registry.ModelSpec, files: list[Path], model_dir: str | None) -> np.ndarray:
    """The graph input of ``files`` read through ``spec``'s contract (unreadable ones skipped)."""
    from mesolive.classify.crops import CropReader

    crops = []
    with CropReader(spec.preprocess, model_dir=model_dir) as reader:
        for f in files:
            try:
                crops.append(reader.read(f))
            except InputError as e:
                log.warning("%s; not used for INT8 calibration", e)
    if not crops:
        raise InputError("no readable face crops for INT8 calibration")
    return spec.preprocess.pixels(crops)


def _logits(runner: Any, x: np.ndarray) -> np.ndarray:
    parts = [runner.infer({"input": x[i : i + 64]})["logit"] for i in range(0, len(x), 64)]
    return np.concatenate(parts).reshape(-1)


def _faces_per_s(runners: list[Any], x: np.ndarray) -> np.ndarray:
    """(rounds, runners) faces/s at batch 8: in each round every runner in turn."""
    batch = np.resize(x, (_BATCH, *x.shape[1:]))
    rates = np.zeros((_TIMING_ROUNDS, len(runners)))
    for r in range(_TIMING_ROUNDS):
        for i, runner in enumerate(runners):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < _TIMING_WINDOW_S:
                runner.infer({"input": batch})
                n += _BATCH
            rates[r, i] = n / (time.perf_counter() - t0)
    return rates


def _judge(
    fp32: Path, int8: bytes, held: np.ndarray, threads: int | None
) -> tuple[int, np.ndarray]:
    """Decisions that flip on ``held``, and (rounds, 2) faces/s of float32 and INT8."""
    from mesolive.backends.onnxruntime import OnnxRuntimeRunner

    with (
        OnnxRuntimeRunner(fp32, threads=threads) as a,
        OnnxRuntimeRunner(int8, threads=threads) as b,
    ):
        flipped = int(np.sum((_logits(a, held) > 0) != (_logits(b, held) > 0)))
        return flipped, _faces_per_s([a, b], held)


def int8_graph_path(
    spec: registry.ModelSpec,
    fp32: Path,
    model_dir: str | None = None,
    *,
    threads: int | None = None,
) -> tuple[Path, Verdict]:
    """The cached INT8 graph of ``spec`` (built from its float32 graph ``fp32`` if needed).

    Raises
    ------
    InputError
        No calibration folder is set, or it holds too few readable crops.
    """
    from mesolive.backends.cpuinfo import int8_flags
    from mesolive.models.quantize import int8_graph

    folder = calibration_folder()
    if folder is None:
        raise InputError(
            f"INT8 needs face crops to calibrate on: set {CALIBRATION_ENV} to a folder of them"
        )
    cal_files, held_files = _sample(folder)
    key = _key(fp32, cal_files + held_files)
    out = fp32.with_name(fp32.name.replace(".fp32.onnx", f".int8cpu-{key[:12]}.onnx"))
    verdict_file = out.with_name(out.name + ".verdict.json")
    if out.is_file():
        problem = registry.graph_problem(out)
        verdict = _read_verdict(verdict_file) if not problem else None
        if verdict is not None:
            return out, verdict
        log.warning("%s %s; rebuilding it", out, problem or "has no readable verdict")
    log.info("%s: calibrating an INT8 graph on %d crops of %s", spec.name, len(cal_files), folder)
    import onnx

    cal = _batch(spec, cal_files, model_dir)
    held = _batch(spec, held_files, model_dir)
    model, calibration = int8_graph(
        onnx.load(str(fp32)),
        lambda: (cal[i : i + 32] for i in range(0, len(cal), 32)),
        threads=threads,
        target="cpu",
    )
    data = model.SerializeToString()
    flipped, rates = _judge(fp32, data, held, threads)
    fp32_rate, int8_rate = np.median(rates, axis=0)
    verdict = Verdict(
        held_out=len(held),
        flipped=flipped,
        fp32_faces_per_s=round(float(fp32_rate), 1),
        int8_faces_per_s=round(float(int8_rate), 1),
        # the median of paired rounds: other work on the machine slows both of a round
        speedup=round(float(np.median(rates[:, 1] / rates[:, 0])), 3),
        calibration={**calibration.as_dict(), "folder": str(folder)},
        cpu_flags=int8_flags(),
    )
    try:
        write_bytes_atomic(out, data)
        registry.record_graph(out)
        write_bytes_atomic(verdict_file, json.dumps(asdict(verdict), indent=2).encode())
    except OSError as e:
        raise ModelError(cannot_write(out, e)) from e
    log.info("%s: INT8 graph %s: %s", spec.name, out.name, verdict.line())
    return out, verdict


def _read_verdict(path: Path) -> Verdict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["cpu_flags"] = tuple(data.get("cpu_flags", ()))
        return Verdict(**data)
    except (OSError, ValueError, TypeError):
        return None


def cpu_graph(
    spec: registry.ModelSpec,
    fp32: Path,
    precision: str,
    model_dir: str | None = None,
    *,
    threads: int | None = None,
) -> tuple[Path, str, str]:
    """The graph ONNX Runtime runs on this CPU for ``precision``: (file, precision, why).

    ``why`` says why ``auto`` kept float32 although this machine built the
    INT8 graph (its verdict); a CPU without VNNI/AMX or an unset calibration
    folder is only logged at debug level (``mesolive doctor`` shows both), so
    that the back-end line does not nag every CPU user.

    Raises
    ------
    BackendUnavailable
        ``int8`` on a CPU without VNNI/AMX.
    InputError
        ``int8`` without a usable calibration folder.
    """
    from mesolive.backends.cpuinfo import INT8_FLAGS, PRECISIONS, int8_flags

    if precision not in PRECISIONS:
        raise ModelError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return fp32, "fp32", ""
    if not int8_flags():
        why = f"this CPU has none of {', '.join(INT8_FLAGS)}"
        if precision == "int8":
            raise BackendUnavailable(f"--precision int8: {why}; use fp32 or auto")
        log.debug("INT8 not used: %s", why)
        return fp32, "fp32", ""
    try:
        path, verdict = int8_graph_path(spec, fp32, model_dir, threads=threads)
    except InputError as e:
        if precision == "int8":
            raise
        log.debug("INT8 not used: %s", e)
        return fp32, "fp32", ""
    if precision == "int8":
        return path, "int8", ""
    why = verdict.why_not()
    return (fp32, "fp32", f"INT8 not used: {why}") if why else (path, "int8", "")
