"""Check a compiled model against ONNX Runtime on the CPU, and time it.

The inputs follow the golden set of ``shared/golden`` (faces, uniform random
images, smooth synthetic images): faces exercise the range the network was
trained on, random images its extremes. Both runners see the same batch of
uint8 crops (the graphs' input); the largest logit difference is compared
with a tolerance relative to the logits' scale, ``max(1, max |reference
logit|)`` (MesoInception logits reach |90| on random images, Meso-4 about |8|).

Tolerances (relative to that scale) and why:

``fp32``: 1e-3
    Same arithmetic up to summation order and convolution algorithm
    (TensorRT may pick Winograd/FFT kernels); measured ORT-vs-Keras
    differences are ~1e-5 relative.
``fp16``: 0.02
    FP16 keeps 11 significant bits (unit roundoff u = 2^-11 ≈ 4.9e-4). The
    FP16 graph run by ONNX Runtime differs from float32 by at most 0.16 %
    (Meso-4) and 0.41 % (MesoInception-4 F2F) of the scale, measured on 200
    DFDC faces, the 4 sample faces, 20 random and 20 smooth images. ONNX
    Runtime's CPU provider computes most FP16 nodes in float32 (it inserts
    casts around kernels it lacks), rounding to FP16 between them; TensorRT
    may also *accumulate* in FP16, and a K-term dot product then errs by about
    u·√K: ≈ 1.6 % for the 1024-input dense layer. 2 % of the scale covers that
    with the measured error 5x inside it. A per-row relative bound does not
    work: a smooth image with a logit near 0 has FP16 error of the network's
    scale, not of its own logit (6 % of max(1, |logit|) measured).
``int8``: 0.05, against the same Q/DQ graph in ONNX Runtime
    Both run the identical integer arithmetic; they differ where a value lands
    on the other side of a rounding boundary of a QuantizeLinear (one step,
    1/127 of that tensor's range), which the following layers amplify. The
    INT8 graph's distance from float32 is a calibration question, reported
    separately and tested on the DFDC faces.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mesolive.backends.base import Runner
from mesolive.classify.preprocess import AUTHORS, Preprocess
from mesolive.models.onnx_graph import INPUT_NAME, LOGIT_NAME, PIXELS_SHAPE

TOLERANCE = {"fp32": 1e-3, "fp16": 0.02, "int8": 0.05}
"""Largest allowed |logit difference| / max(1, max |reference logit|), per precision."""


def verification_inputs(
    faces_bgr: Sequence[np.ndarray] = (),
    n_random: int = 6,
    n_smooth: int = 4,
    seed: int = 0,
    preprocess: Preprocess = AUTHORS,
) -> tuple[list[str], np.ndarray]:
    """Row names and the (N, 256, 256, 3) uint8 BGR batch: faces, random, smooth.

    Parameters
    ----------
    faces_bgr
        Face crops, (H, W, 3) uint8 BGR of any size, batched by the model's
        preprocessing contract ``preprocess``.
    n_random
        Images of independent uniform values in 0..255.
    n_smooth
        Smooth images: 8x8 random colours upsampled bilinearly to 256x256.
    """
    import cv2

    rng = np.random.default_rng(seed)
    parts = []
    names = [f"face{i}" for i in range(len(faces_bgr))]
    if len(faces_bgr):
        parts.append(preprocess.pixels(faces_bgr))
    parts.append(rng.integers(0, 256, (n_random, *PIXELS_SHAPE), dtype=np.uint8))
    names += [f"random{i}" for i in range(n_random)]
    for i in range(n_smooth):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        big = cv2.resize(small, PIXELS_SHAPE[1::-1], interpolation=cv2.INTER_LINEAR)
        parts.append(big[None])
        names.append(f"smooth{i}")
    return names, np.ascontiguousarray(np.concatenate(parts))


@dataclass(frozen=True)
class Comparison:
    """Candidate logits against reference logits, both (N,) float32."""

    names: tuple[str, ...]
    candidate: np.ndarray
    reference: np.ndarray
    precision: str

    @property
    def scale(self) -> float:
        return max(1.0, float(np.abs(self.reference).max(initial=0.0)))

    @property
    def max_diff(self) -> float:
        return float(np.abs(self.candidate - self.reference).max(initial=0.0))

    @property
    def worst(self) -> str:
        if not len(self.names):
            return ""
        return self.names[int(np.argmax(np.abs(self.candidate - self.reference)))]

    @property
    def tolerance(self) -> float:
        return TOLERANCE[self.precision] * self.scale

    @property
    def decisions_differ(self) -> int:
        """Rows where real/fake flips, among those farther than the tolerance from 0."""
        clear = np.abs(self.reference) > self.tolerance
        return int(np.sum(((self.candidate > 0) != (self.reference > 0)) & clear))

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.tolerance and self.decisions_differ == 0

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"largest logit difference {self.max_diff:.4g} (row {self.worst}) vs tolerance "
            f"{self.tolerance:.4g} = {TOLERANCE[self.precision]:g} x {self.scale:.3g}; "
            f"{len(self.names)} inputs, {self.decisions_differ} decisions differ: {verdict}"
        )


REFERENCES = {
    "fp32": ("float32 graph", None),
    "fp16": ("float32 graph", "FP16 graph"),
    "int8": ("INT8 Q/DQ graph", "float32 graph"),
}
"""Per precision: the graph an engine must match, and the other graph it is shown against.

An FP16 engine must match float32 (what a user cares about) and is also
compared with the FP16 graph it was compiled from: the engine against that
graph is TensorRT's own error, that graph against float32 the FP16 rounding.
An INT8 engine must match its Q/DQ graph; its distance from float32 is a
calibration question, shown for information.
"""


@dataclass(frozen=True)
class Verification:
    """An engine's logits against its reference graph's and (fp16, int8) the other graph's.

    All arrays are (N,) float32 logits of the same inputs, in ONNX Runtime on
    the CPU except ``engine``.
    """

    names: tuple[str, ...]
    engine: np.ndarray
    reference: np.ndarray
    precision: str
    other: np.ndarray | None = None

    @property
    def main(self) -> Comparison:
        return Comparison(self.names, self.engine, self.reference, self.precision)

    @property
    def passed(self) -> bool:
        return self.main.passed

    def lines(self) -> list[str]:
        """The report: the verdict, the other graph, and on failure every row and why."""
        ref_label, other_label = REFERENCES[self.precision]
        out = [f"vs ONNX Runtime CPU ({ref_label}): {self.main.line()}"]
        cause = ""
        if self.other is not None:
            vs_other = Comparison(self.names, self.engine, self.other, self.precision)
            if self.precision == "fp16":
                rounding = Comparison(self.names, self.other, self.reference, "fp16")
                out += [
                    f"vs the FP16 graph it compiled (TensorRT's own error): largest logit "
                    f"difference {vs_other.max_diff:.4g} (row {vs_other.worst})",
                    f"FP16 graph vs float32 graph, both in ONNX Runtime (the FP16 rounding): "
                    f"largest logit difference {rounding.max_diff:.4g} (row {rounding.worst})",
                ]
                cause = _FP16_CAUSE[rounding.passed]
            else:
                flips = int(np.sum((self.engine > 0) != (self.other > 0)))
                out.append(
                    f"vs the {other_label} (information): largest logit difference "
                    f"{vs_other.max_diff:.3g}, {flips} of {len(self.names)} decisions differ"
                )
        if not self.passed:
            out += self.row_lines()
            if cause:
                out.append(cause)
        return out

    def row_lines(self) -> list[str]:
        """Every input: the graphs' logits, the engine's, the differences; bad rows marked."""
        tolerance = self.main.tolerance
        ref_label, other_label = REFERENCES[self.precision]
        columns = [(ref_label, self.reference)]
        if self.other is not None:
            columns.append((str(other_label), self.other))
        columns.append(("engine", self.engine))
        columns += [(f"engine - {label.split()[0]}", self.engine - v) for label, v in columns[:-1]]
        out = ["  ".join(["row".ljust(9), *(label.rjust(16) for label, _ in columns)])]
        for i, name in enumerate(self.names):
            diff = self.engine[i] - self.reference[i]
            marks = ["over the tolerance"] if abs(diff) > tolerance else []
            clear = abs(self.reference[i]) > tolerance
            if clear and (self.engine[i] > 0) != (self.reference[i] > 0):
                marks.append("decision flips")
            row = "  ".join([name.ljust(9), *(f"{v[i]:>16.5f}" for _, v in columns)])
            out.append(f"{row}  {', '.join(marks)}".rstrip())
        return out


_FP16_CAUSE = {
    False: "cause: the FP16 graph itself fails this check in ONNX Runtime: FP16 precision, "
    "not TensorRT; build with --precision fp32",
    True: "cause: the FP16 graph passes this check in ONNX Runtime and the engine compiled "
    "from it does not: TensorRT's kernels; try --precision fp32, and report it with this output",
}
"""Why a failed FP16 engine failed, by whether its FP16 graph passes in ONNX Runtime."""


def logits(runner: Runner, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """(N,) float32 logits of ``runner`` on ``x`` in chunks of ``batch``."""
    out = [
        np.asarray(runner.infer({INPUT_NAME: x[i : i + batch]})[LOGIT_NAME], np.float32).reshape(-1)
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@dataclass(frozen=True)
class Throughput:
    batch: int
    faces_per_s: float
    ms_per_call: float

    def line(self) -> str:
        return (
            f"batch {self.batch:>3}: {self.faces_per_s:>9,.0f} faces/s, {self.ms_per_call:.3f} ms"
        )


def throughput(runner: Runner, batch: int, seconds: float = 1.0, min_calls: int = 5) -> Throughput:
    """Median time of one ``infer`` of ``batch`` random faces, copies included, warm-up excluded."""
    x = np.random.default_rng(batch).integers(0, 256, (batch, *PIXELS_SHAPE), dtype=np.uint8)
    feed = {INPUT_NAME: x}
    for _ in range(3):
        runner.infer(feed)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while len(times) < min_calls or time.perf_counter() < end:
        t = time.perf_counter()
        runner.infer(feed)
        times.append(time.perf_counter() - t)
    median = float(np.median(times))
    return Throughput(batch, batch / median, median * 1e3)


def check_engine(
    engine: Runner,
    precision: str,
    onnx32: Path | bytes,
    compiled: bytes,
    names: list[str],
    x: np.ndarray,
    threads: int | None,
) -> Verification:
    """``engine``'s logits on ``x`` against the graphs it must match, in ONNX Runtime.

    ``compiled`` is the graph TensorRT compiled: the float32 graph, the FP16
    graph, or the INT8 Q/DQ graph (see :data:`mesolive.backends.verify.REFERENCES`).
    """
    from mesolive.backends.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(onnx32, threads=threads) as ref32:
        float32 = logits(ref32, x)
    graph = None
    if precision != "fp32":
        with OnnxRuntimeRunner(compiled, threads=threads) as ref:
            graph = logits(ref, x)
    out = logits(engine, x)
    if precision == "int8" and graph is not None:
        return Verification(tuple(names), out, graph, precision, other=float32)
    return Verification(tuple(names), out, float32, precision, other=graph)
