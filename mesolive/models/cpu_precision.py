"""The precision a model runs in on the CPU: float32, INT8 or bfloat16, judged against float32.

Two reduced-precision paths exist, each judged here against ONNX Runtime's
float32 graph before ``--precision auto`` may choose it:

* **INT8** (ONNX Runtime): :func:`int8_graph_path` builds a model's INT8
  graph (:func:`mesolive.models.quantize.int8_graph` with ``target="cpu"``)
  from a fixed sample of face crops, cached next to the float32 graph it came
  from, keyed by that graph's checksum, the crops' bytes and
  :data:`QUANTIZER_VERSION`, with its sha256 recorded beside it like every
  cached graph (:func:`mesolive.models.registry.graph_problem`).
* **bfloat16** (OpenVINO, :mod:`mesolive.backends.openvino`): OpenVINO's
  float32 graph (:func:`mesolive.models.registry.openvino_graph`: Meso-4 in
  lanes, :mod:`mesolive.models.lanes_graph`), computed in bfloat16 where the
  CPU has AMX or AVX-512 BF16; nothing is calibrated, only judged
  (:func:`bf16_verdict`), keyed by both graphs, the held-out crops and
  OpenVINO's version.

A third path is float32 still, computed another way: MesoInception-4's
inception blocks in the C kernel built here (:mod:`mesolive.backends.native`,
:func:`native_verdict`), judged the same way, on the held-out crops where
``MESOLIVE_CALIBRATION`` is set, else on random pixels (nothing to calibrate;
its decisions can only differ by the order of float sums).

The crops are read through the model's preprocessing contract from the
folder named by ``MESOLIVE_CALIBRATION`` (:data:`CALIBRATION_ENV`), its
images shuffled with seed 0: the first :data:`CALIBRATION_CROPS` calibrate
INT8, the next :data:`HELD_OUT_CROPS` judge both paths. Each verdict
(``*.verdict.json`` beside the float32 graph) says how many held-out decisions
(fake/real at 0.5) flip against float32 and both runners' faces/s here,
measured once, interleaved.

``auto`` (:func:`cpu_graph`) takes, among the paths this CPU and install
have and whose verdict flips at most :data:`MAX_FLIPPED` of the decisions
and runs at least :data:`MIN_SPEEDUP` times faster, the fastest; else
float32.
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

from mesolive.backends.onnxruntime import CPU_LAYOUT
from mesolive.env import env_folder
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
"""Largest share of held-out decisions INT8 or bfloat16 may flip for ``auto`` to run it."""

MIN_SPEEDUP = 1.05
"""``auto`` runs INT8 or bfloat16 only where it measured this many times float32's faces/s."""

QUANTIZER_VERSION = 2
"""Bumped whenever :func:`mesolive.models.quantize.quantize_cpu` changes its output."""

_BATCH = 8
_TIMING_ROUNDS = 10
_TIMING_WINDOW_S = 0.15


@dataclass(frozen=True)
class Verdict:
    """How a reduced-precision path compared with float32 here (a ``*.verdict.json``).

    ``faces_per_s`` is the path's (``precision``: ``int8`` or ``bf16``),
    ``fp32_faces_per_s`` ONNX Runtime's float32 graph's, both at batch 8.
    """

    held_out: int
    flipped: int
    fp32_faces_per_s: float
    faces_per_s: float
    speedup: float
    precision: str = "int8"
    calibration: dict[str, Any] = field(default_factory=dict)
    cpu_flags: tuple[str, ...] = ()

    def why_not(self) -> str:
        """Why ``auto`` does not run this path (``""``: it qualifies)."""
        label = _LABELS[self.precision]
        if self.flipped > MAX_FLIPPED * self.held_out:
            return (
                f"{label} flips {self.flipped} of {self.held_out} held-out decisions "
                f"(more than {MAX_FLIPPED:.0%})"
            )
        if self.speedup < MIN_SPEEDUP:
            return f"{label} measured x{self.speedup:.2f} the float32 faces/s here"
        return ""

    def line(self) -> str:
        return (
            f"{self.flipped}/{self.held_out} held-out decisions flip, "
            f"x{self.speedup:.2f} faces/s ({self.faces_per_s:.0f} vs "
            f"{self.fp32_faces_per_s:.0f} float32, batch {_BATCH})"
        )


_LABELS = {"int8": "INT8", "bf16": "bfloat16", "native": "the C kernel"}


def calibration_folder() -> Path | None:
    """The folder of face crops named by ``MESOLIVE_CALIBRATION``, or None when unset."""
    return env_folder(CALIBRATION_ENV, "face crops")


def _sample(folder: Path) -> tuple[list[Path], list[Path]]:
    """The calibration and held-out files: the folder's images shuffled with seed 0."""
    from mesolive.imageio import expand_paths

    files, _ = expand_paths([folder])
    if len(files) < MIN_CROPS:
        raise InputError(
            f"{folder}: judging INT8, bfloat16 or the C kernel needs at least {MIN_CROPS} "
            "face crops"
        )
    order = np.random.default_rng(0).permutation(len(files))
    picked = [files[i] for i in order[: CALIBRATION_CROPS + HELD_OUT_CROPS]]
    n_cal = min(CALIBRATION_CROPS, len(picked) // 2)
    return picked[:n_cal], picked[n_cal:]


def _key(tag: str, fp32: Path, files: list[Path], extra: bytes = b"") -> str:
    """What a cached INT8 graph or verdict depends on: ``tag`` (the path's version and
    :data:`~mesolive.backends.onnxruntime.CPU_LAYOUT`, under which its speed was
    measured), the float32 graph, the crops' bytes and anything ``extra``."""
    from mesolive.models.download import sha256_file

    h = hashlib.sha256(f"{tag}:{sha256_file(fp32)}".encode())
    for f in files:
        h.update(f.read_bytes())
    h.update(extra)
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
                log.warning("%s; not used to calibrate or judge", e)
    if not crops:
        raise InputError("no readable face crops to calibrate or judge on")
    return spec.preprocess.pixels(crops)


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


def _compare(
    fp32: Path,
    candidate: Any,
    held: np.ndarray,
    threads: int | None,
    *,
    recorded: tuple[int, int] | None = None,
    **facts: Any,
) -> Verdict:
    """Judge the open runner ``candidate`` against ONNX Runtime's float32 graph ``fp32``.

    ``recorded`` is (held out, flipped) where the decisions were judged
    elsewhere (a model card's record): ``held`` then only times the two.
    ``facts`` are the :class:`Verdict`'s other fields (``precision``,
    ``calibration``, ``cpu_flags``). ``candidate`` is closed on return.
    """
    from mesolive.backends.onnxruntime import OnnxRuntimeRunner
    from mesolive.backends.verify import logits

    with OnnxRuntimeRunner(fp32, threads=threads) as a, candidate as b:
        if recorded is None:
            flips = np.sum((logits(a, held, 64) > 0) != (logits(b, held, 64) > 0))
            recorded = len(held), int(flips)
        rates = _faces_per_s([a, b], held)
    fp32_rate, rate = np.median(rates, axis=0)
    return Verdict(
        held_out=recorded[0],
        flipped=recorded[1],
        fp32_faces_per_s=round(float(fp32_rate), 1),
        faces_per_s=round(float(rate), 1),
        # the median of paired rounds: other work on the machine slows both of a round
        speedup=round(float(np.median(rates[:, 1] / rates[:, 0])), 3),
        **facts,
    )


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
    from mesolive.backends.onnxruntime import OnnxRuntimeRunner
    from mesolive.models.quantize import int8_graph

    folder = calibration_folder()
    if folder is None:
        raise InputError(
            f"INT8 needs face crops to calibrate on: set {CALIBRATION_ENV} to a folder of them"
        )
    cal_files, held_files = _sample(folder)
    key = _key(f"{QUANTIZER_VERSION}:{CPU_LAYOUT}", fp32, cal_files + held_files)
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
    verdict = _compare(
        fp32,
        OnnxRuntimeRunner(data, threads=threads),
        held,
        threads,
        calibration={**calibration.as_dict(), "folder": str(folder)},
        cpu_flags=int8_flags(),
    )
    try:
        write_bytes_atomic(out, data)
        registry.record_graph(out)
    except OSError as e:
        raise ModelError(cannot_write(out, e)) from e
    _write_verdict(verdict_file, verdict)
    log.info("%s: INT8 graph %s: %s", spec.name, out.name, verdict.line())
    return out, verdict


def bf16_verdict(
    spec: registry.ModelSpec,
    fp32: Path,
    model_dir: str | None = None,
    *,
    threads: int | None = None,
) -> Verdict:
    """How OpenVINO's bfloat16 run of ``spec`` compares with ONNX Runtime's ``fp32`` (cached).

    OpenVINO runs :func:`mesolive.models.registry.openvino_graph`. The
    decisions are judged on the held-out crops of ``MESOLIVE_CALIBRATION``;
    where it is unset, a model card's record of them for that very graph
    (:data:`AGREEMENT_KEY`, written by ``scripts/precision_agreement.py
    --record``) stands in, and only the speed is measured here.

    Raises
    ------
    InputError
        No calibration folder is set (and the card records nothing for this
        graph), or it holds too few readable crops.
    BackendUnavailable
        OpenVINO is not installed, or would not run bfloat16 on this CPU.
    """
    from mesolive.backends.cpuinfo import bf16_flags
    from mesolive.backends.openvino import OpenVinoRunner, openvino_version
    from mesolive.models.onnx_graph import PIXELS_SHAPE

    graph = registry.openvino_graph(spec, model_dir, progress=False)
    folder = calibration_folder()
    card = card_agreement(spec, graph) if folder is None else None
    if folder is None and card is None:
        raise InputError(
            f"bfloat16 is judged on held-out face crops: set {CALIBRATION_ENV} to a folder of them"
        )
    held_files = _sample(folder)[1] if folder is not None else []
    record = json.dumps(card, sort_keys=True).encode() if card is not None else b""
    key = _key(f"bf16:{openvino_version()}:{graph.name}:{CPU_LAYOUT}", fp32, held_files, record)
    verdict_file, verdict = _cached_verdict(fp32, "bf16-openvino", key)
    if verdict is not None:
        return verdict
    if card is None:
        held = _batch(spec, held_files, model_dir)
        judged = {"folder": str(folder)}
    else:  # timing only: any pixels take the same time
        held = np.random.default_rng(0).integers(0, 256, (_BATCH, *PIXELS_SHAPE), np.uint8)
        judged = {"model_card": card["on"]}
    verdict = _compare(
        fp32,
        OpenVinoRunner(graph, threads=threads, precision="bf16"),
        held,
        threads,
        recorded=None if card is None else (card["crops"], card["flipped"]),
        precision="bf16",
        calibration={**judged, "openvino": openvino_version()},
        cpu_flags=bf16_flags(),
    )
    _write_verdict(verdict_file, verdict)
    log.info("%s: bfloat16 on OpenVINO: %s", spec.name, verdict.line())
    return verdict


def native_verdict(
    spec: registry.ModelSpec,
    fp32: Path,
    model_dir: str | None = None,
    *,
    threads: int | None = None,
) -> Verdict:
    """How the C kernel's run of ``spec`` compares with ONNX Runtime's ``fp32`` (cached).

    Keyed by the kernel's build (its source, compiler and processor), the
    float32 graph and the held-out crops; judged on those crops where
    ``MESOLIVE_CALIBRATION`` is set, else on :data:`HELD_OUT_CROPS` random
    faces (seed 0).

    Raises
    ------
    BackendUnavailable
        ``spec`` is not one MesoInception-4 network, or the kernel cannot be
        built or loaded here.
    InputError
        ``MESOLIVE_CALIBRATION`` is set but holds too few readable crops.
    """
    from mesolive.backends.native import check_native, open_native
    from mesolive.backends.native_build import library_path
    from mesolive.models.onnx_graph import PIXELS_SHAPE

    check_native(spec)
    folder = calibration_folder()
    held_files = _sample(folder)[1] if folder is not None else []
    key = _key(f"native:{library_path()[0].name}:{CPU_LAYOUT}", fp32, held_files)
    verdict_file, verdict = _cached_verdict(fp32, "native", key)
    if verdict is not None:
        return verdict
    if folder is not None:
        held = _batch(spec, held_files, model_dir)
        judged = {"folder": str(folder)}
    else:
        rng = np.random.default_rng(0)
        held = rng.integers(0, 256, (HELD_OUT_CROPS, *PIXELS_SHAPE), np.uint8)
        judged = {"pixels": "random, seed 0"}
    runner = open_native(spec, model_dir, threads=threads)
    verdict = _compare(fp32, runner, held, threads, precision="native", calibration=judged)
    _write_verdict(verdict_file, verdict)
    log.info("%s: the C kernel: %s", spec.name, verdict.line())
    return verdict


AGREEMENT_KEY = "bf16_agreement"
"""A model card's record of bfloat16's decisions against float32 (:func:`card_agreement`)."""


def card_agreement(spec: registry.ModelSpec, graph: Path) -> dict[str, Any] | None:
    """What ``spec``'s model card records of bfloat16's decisions when OpenVINO runs ``graph``.

    ``{"crops": N, "flipped": N, "on": "<the crops>", "graph": "<file name>"}``;
    None where the model has no card, the card records nothing, or it was
    recorded for another graph. The graph's file name
    (:func:`mesolive.models.registry.onnx_path`) names its weights' checksums,
    its contract's pixel map, its layout and the converter's version; its
    bytes could differ in the last bit between machines, its name cannot.
    """
    if not spec.card:
        return None
    try:
        card = json.loads(registry.card_path(spec).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    record = card.get(AGREEMENT_KEY) if isinstance(card, dict) else None
    if not isinstance(record, dict) or record.get("graph") != graph.name:
        return None
    try:
        crops, flipped = int(record["crops"]), int(record["flipped"])
    except (KeyError, TypeError, ValueError):
        return None
    return {**record, "crops": crops, "flipped": flipped, "on": str(record.get("on", ""))}


def _cached_verdict(fp32: Path, kind: str, key: str) -> tuple[Path, Verdict | None]:
    """Where the verdict of path ``kind`` under ``key`` lives beside ``fp32``, and the verdict
    it holds (None: not judged yet, or unreadable, which is logged)."""
    path = fp32.with_name(fp32.name.replace(".fp32.onnx", f".{kind}-{key[:12]}.verdict.json"))
    if path.is_file():
        verdict = _read_verdict(path)
        if verdict is not None:
            return path, verdict
        log.warning("%s is not a readable verdict; judging again", path)
    return path, None


def _write_verdict(path: Path, verdict: Verdict) -> None:
    try:
        write_bytes_atomic(path, json.dumps(asdict(verdict), indent=2).encode())
    except OSError as e:
        raise ModelError(cannot_write(path, e)) from e


def _read_verdict(path: Path) -> Verdict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["cpu_flags"] = tuple(data.get("cpu_flags", ()))
        if "int8_faces_per_s" in data:  # written before bfloat16 shared the verdict
            data["faces_per_s"] = data.pop("int8_faces_per_s")
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
    paths: tuple[str, ...] = ("int8", "bf16"),
) -> tuple[Path, str, str]:
    """What runs ``spec`` on this CPU for ``precision``: (file, precision, why).

    The precision says which runtime: ``fp32`` and ``int8`` are ONNX
    Runtime's graphs, ``bf16`` OpenVINO running the float32 file,
    ``native`` the C kernel with ONNX Runtime's tail (the float32 file is
    returned; :func:`mesolive.backends.native.open_native` opens it). ``paths``
    are the other paths than ONNX Runtime's float32 graph that the chosen back
    end can run; ``auto`` takes the fastest of them that its verdict
    qualifies, else float32. ``native`` is never forced: ``fp32`` is ONNX
    Runtime's graph.

    ``why`` says why ``auto`` kept float32 although this machine judged a
    path (its verdict); a CPU without the instructions, OpenVINO not
    installed or an unset calibration folder is only logged at debug level
    (``mesolive doctor`` shows each), so that the back-end line does not nag
    every CPU user.

    A forced ``bf16`` is not judged: OpenVINO needs no calibration, and the
    user asked for it (the authors' models, which have no card to record an
    agreement, were refused without ``MESOLIVE_CALIBRATION``). A forced
    ``int8`` needs the crops all the same, to quantize.

    Raises
    ------
    BackendUnavailable
        ``int8`` or ``bf16`` where this CPU or install cannot run it.
    InputError
        ``int8`` without a usable calibration folder.
    """
    from mesolive.backends.cpuinfo import PRECISIONS

    if precision not in PRECISIONS:
        raise ModelError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return fp32, "fp32", ""
    if precision != "auto":
        try:
            if precision == "bf16":
                return _bf16_graph(spec, model_dir), "bf16", ""
            path, _ = _judged(precision, spec, fp32, model_dir, threads)
        except BackendUnavailable as e:
            raise BackendUnavailable(f"--precision {precision}: {e}; use fp32 or auto") from e
        return path, precision, ""
    qualified: list[tuple[float, Path, str]] = []
    reasons: list[str] = []
    for candidate in paths:
        try:
            path, verdict = _judged(candidate, spec, fp32, model_dir, threads)
        except (BackendUnavailable, InputError) as e:
            log.debug("%s not used: %s", _LABELS[candidate], e)
            continue
        why = verdict.why_not()
        if why:
            reasons.append(f"{_LABELS[candidate]} not used: {why}")
        else:
            qualified.append((verdict.speedup, path, candidate))
    if qualified:
        _, path, candidate = max(qualified)
        return path, candidate, ""
    return fp32, "fp32", "; ".join(reasons)


def _judged(
    precision: str,
    spec: registry.ModelSpec,
    fp32: Path,
    model_dir: str | None,
    threads: int | None,
) -> tuple[Path, Verdict]:
    """The file that runs ``spec`` in ``precision`` here, and its verdict.

    Raises
    ------
    BackendUnavailable
        This CPU lacks the instructions, or OpenVINO is not installed.
    InputError
        No usable calibration folder.
    """
    from mesolive.backends import cpuinfo

    if precision == "int8":
        if not cpuinfo.int8_flags():
            raise BackendUnavailable(f"this CPU has none of {', '.join(cpuinfo.INT8_FLAGS)}")
        return int8_graph_path(spec, fp32, model_dir, threads=threads)
    if precision == "native":
        return fp32, native_verdict(spec, fp32, model_dir, threads=threads)
    return _bf16_graph(spec, model_dir), bf16_verdict(spec, fp32, model_dir, threads=threads)


def _bf16_graph(spec: registry.ModelSpec, model_dir: str | None) -> Path:
    """The file OpenVINO runs ``spec`` from in bfloat16, where this CPU has bfloat16."""
    from mesolive.backends import cpuinfo

    if not cpuinfo.bf16_flags():
        raise BackendUnavailable(f"this CPU has none of {', '.join(cpuinfo.BF16_FLAGS)}")
    return registry.openvino_graph(spec, model_dir, progress=False)
