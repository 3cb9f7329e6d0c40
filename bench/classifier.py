"""Classifier throughput on this machine, as a share of its own matmul rate.

Prints faces per second at batch 1, 8 and 32 for Meso-4, MesoInception-4, a
union of two Meso-4 (``meso4-df+meso4-f2f``, the kind ``train --keep-init``
registers) and the default model, each in float32 and INT8 (ONNX Runtime on
the CPU; INT8 where the CPU has VNNI/AMX), bfloat16 and float32 on OpenVINO
(``bf16``, ``ov-fp32``; bfloat16 where the CPU has AMX/AVX-512 BF16; Meso-4
in OpenVINO's lanes graph, :mod:`mesolive.models.lanes_graph`), MesoInception-4
with its inception blocks in the C kernel built here (``native``), each fed
uint8 crops in its runner's input buffer, as the pipeline feeds it; the
machine's float32 matrix-multiply rate (numpy's BLAS, all cores), and each graph's achieved rate
of the *authors'* FLOPs (what the folded and quantized graphs save counts as
speed, not as work) as a percentage of it. Every number comes from the same
run: the measurements are interleaved in rounds (matmul included) and each
is the median over the rounds, so a machine shared with other work shifts
them all alike. Then the ratios: each precision / float32, union / one
Meso-4, default / meso4-df. Run on a quiet machine:

    MESOLIVE_MODEL_DIR=../shared/models python bench/classifier.py \\
        [--calibration ../shared/train/dfdc] [--rounds 8] [--seconds 0.25]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numpy as np

from mesolive.backends.base import Runner
from mesolive.backends.native import open_native
from mesolive.backends.select import open_runner
from mesolive.errors import MesoliveError
from mesolive.models.arch import ARCHS, INPUT_SIZE, Arch, Conv, Inception
from mesolive.models.cpu_precision import CALIBRATION_ENV
from mesolive.models.onnx_graph import PIXELS_SHAPE
from mesolive.models.registry import default_model, get_spec, networks

SHARED_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "train" / "dfdc"


def conv_flops(arch: Arch) -> float:
    """Multiply-adds x2 of the convolutions and dense layers, per face."""
    flops = 0.0
    side, cin = INPUT_SIZE, 3
    for stage in arch.stages:
        convs: list[tuple[Conv, int]] = []
        if isinstance(stage.body, Inception):
            specs = stage.body.convs()
            for i, c in enumerate(specs):
                convs.append((c, cin if c.kernel == 1 else specs[i - 1].filters))
        else:
            convs.append((stage.body, cin))
        for c, src in convs:
            flops += 2.0 * side * side * c.filters * src * c.kernel * c.kernel
        cin = stage.out_channels
        side //= stage.pool
    c, h, w = arch.feature_shape
    flops += 2.0 * c * h * w * arch.hidden + 2.0 * arch.hidden
    return flops


def matmul_rate(seconds: float, n: int = 1024) -> float:
    """Sustained float32 GEMM rate in FLOP/s over one window of ``seconds``."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b  # warm-up
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        calls += 1
    return calls * 2.0 * n**3 / (time.perf_counter() - t0)


def faces_per_second(runner: Runner, faces: np.ndarray, seconds: float) -> float:
    """Faces/s of ``runner`` on the uint8 crops ``faces`` over one window of ``seconds``.

    The crops go into the runner's input buffer, as the pipeline cuts them
    (:meth:`mesolive.classify.mesonet.MesoClassifier.cut`); that write is the
    crop stage's, so it is left out of the time.
    """
    x = runner.input_buffer(len(faces))
    x[...] = faces
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        runner.infer({"input": x})
        n += len(x)
    return n / (time.perf_counter() - t0)


RUNS = {
    "fp32": (None, "fp32"),
    "int8": (None, "int8"),
    "bf16": ("openvino", "bf16"),
    "ov-fp32": ("openvino", "fp32"),
    "native": ("native", "fp32"),
}
"""``--precisions`` label -> (back end, precision); None: ``--backend``'s; ``native``: the C
kernel for MesoInception-4's blocks (:mod:`mesolive.backends.native`), MesoInception-4 only."""


def open_all(
    models: dict[str, float], precisions: list[str], backend: str
) -> dict[tuple[str, str], Runner]:
    """A runner per model and precision; one that cannot open is reported and left out."""
    runners = {}
    for model in models:
        for label in precisions:
            where, precision = RUNS[label]
            try:
                if where == "native":
                    if get_spec(model).arch == "mesoinception4" and "+" not in model:
                        runners[model, label] = open_native(get_spec(model))
                    continue
                runners[model, label] = open_runner(
                    model, backend=where or backend, progress=False, precision=precision
                )
            except MesoliveError as e:
                print(f"{model} {label}: not measured ({e})")
    return runners


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.25, help="per window")
    ap.add_argument("--rounds", type=int, default=8, help="interleaved windows per measurement")
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument(
        "--precisions",
        nargs="+",
        default=list(RUNS),
        choices=list(RUNS),
        help="bf16 and ov-fp32 run on OpenVINO (mesolive[openvino]), the others on --backend",
    )
    ap.add_argument(
        "--calibration",
        default=os.environ.get(CALIBRATION_ENV) or (SHARED_TRAIN if SHARED_TRAIN.is_dir() else ""),
        help=f"face crops INT8 calibrates on and bf16 is judged on (sets {CALIBRATION_ENV})",
    )
    args = ap.parse_args()
    if args.calibration:
        os.environ[CALIBRATION_ENV] = str(args.calibration)

    default = get_spec(default_model())
    flops = {
        name: sum(conv_flops(ARCHS[n.arch]) for n in networks(get_spec(name)))
        for name in (default.name, "meso4-df", "mesoinception4-df", "meso4-df+meso4-f2f")
    }
    runners = open_all(flops, args.precisions, args.backend)
    inputs = {
        b: np.random.default_rng(b).integers(0, 256, (b, *PIXELS_SHAPE), dtype=np.uint8)
        for b in args.batches
    }
    for runner in runners.values():
        for x in inputs.values():
            faces_per_second(runner, x, 0.0)  # warm-up
    rates: dict[tuple[str, str, int], list[float]] = {}
    peaks: list[float] = []
    for _ in range(args.rounds):
        peaks.append(matmul_rate(args.seconds))
        for (model, precision), runner in runners.items():
            for b, x in inputs.items():
                fps = faces_per_second(runner, x, args.seconds)
                rates.setdefault((model, precision, b), []).append(fps)
    peak = float(np.median(peaks))
    fps_of = {k: float(np.median(v)) for k, v in rates.items()}

    print(
        f"machine: {os.cpu_count()} cores, float32 matmul {peak / 1e9:.1f} GFLOP/s "
        f"(numpy BLAS; median of {args.rounds} windows, {min(peaks) / 1e9:.0f}-"
        f"{max(peaks) / 1e9:.0f})"
    )
    print(
        f"{'model':<20} {'prec':<7} {'GFLOP/face':>10} {'batch':>5} {'faces/s':>9} "
        f"{'GFLOP/s':>8} {'% matmul':>8}"
    )
    for (model, precision, b), fps in fps_of.items():
        f = flops[model]
        print(
            f"{model:<20} {precision:<7} {f / 1e9:>10.3f} {b:>5} {fps:>9.0f} "
            f"{fps * f / 1e9:>8.1f} {100 * fps * f / peak:>7.0f}%"
        )
    for b in args.batches:
        for model, label in itertools.product(flops, args.precisions):
            if label != "fp32" and (model, label, b) in fps_of and (model, "fp32", b) in fps_of:
                ratio = fps_of[model, label, b] / fps_of[model, "fp32", b]
                print(f"{model} {label} / fp32 at batch {b}: x{ratio:.2f} the faces/s")
        for precision in args.precisions:
            pair = ("meso4-df+meso4-f2f", precision, b), ("meso4-df", precision, b)
            if all(k in fps_of for k in pair):
                ratio = fps_of[pair[0]] / fps_of[pair[1]]
                print(f"union of two Meso-4 / one Meso-4, {precision}, batch {b}: x{ratio:.2f}")
            pair = (default.name, precision, b), ("meso4-df", precision, b)
            if all(k in fps_of for k in pair):
                ratio = fps_of[pair[0]] / fps_of[pair[1]]
                print(f"default {default.name} / meso4-df, {precision}, batch {b}: x{ratio:.2f}")


if __name__ == "__main__":
    main()
