"""Classifier throughput on this machine, as a share of its own matmul rate.

Prints faces per second at batch 1, 8 and 32 for Meso-4, MesoInception-4 and a
union of two Meso-4 (``meso4-df+meso4-f2f``, the kind ``train --keep-init``
registers) on the chosen back end, the union's rate as a share of one Meso-4's,
the machine's float32 matrix-multiply rate measured in the same run (numpy's
BLAS, all cores), and the classifier's achieved FLOP rate as a percentage of
it. Run on a quiet machine:

    MESOLIVE_MODEL_DIR=../shared/models python bench/classifier.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from mesolive.backends.base import Runner
from mesolive.backends.select import open_runner
from mesolive.models.arch import ARCHS, INPUT_SIZE, Arch, Conv, Inception
from mesolive.models.registry import default_model, get_spec, networks


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
    """Best sustained float32 GEMM rate in FLOP/s over ``seconds``."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b  # warm-up
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2.0 * n**3 / (time.perf_counter() - t))
    return best


def faces_per_second(runner: Runner, batch: int, seconds: float) -> float:
    x = np.random.default_rng(batch).random((batch, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for _ in range(3):
        runner.infer({"input": x})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        runner.infer({"input": x})
        n += batch
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args()

    peak = matmul_rate(args.seconds)
    print(f"machine: {os.cpu_count()} cores, float32 matmul {peak / 1e9:.1f} GFLOP/s (numpy BLAS)")
    print(
        f"{'model':<20} {'GFLOP/face':>10} {'batch':>5} {'faces/s':>9} "
        f"{'GFLOP/s':>8} {'% matmul':>8}"
    )
    measured: dict[tuple[str, int], float] = {}
    default = get_spec(default_model())
    models = {
        default.name: [ARCHS[n.arch] for n in networks(default)],
        "meso4-df": [ARCHS["meso4"]],
        "mesoinception4-df": [ARCHS["mesoinception4"]],
        "meso4-df+meso4-f2f": [ARCHS["meso4"]] * 2,
    }
    for model, archs in models.items():
        f = sum(conv_flops(a) for a in archs)
        with open_runner(model, backend=args.backend, progress=False) as runner:
            for b in args.batches:
                fps = measured[model, b] = faces_per_second(runner, b, args.seconds)
                rate = fps * f
                print(
                    f"{model:<20} {f / 1e9:>10.3f} {b:>5} {fps:>9.0f} {rate / 1e9:>8.1f} "
                    f"{100 * rate / peak:>7.0f}%"
                )
    for b in args.batches:
        ratio = measured["meso4-df+meso4-f2f", b] / measured["meso4-df", b]
        print(f"union of two Meso-4 / one Meso-4 at batch {b}: x{ratio:.2f} the faces/s")
        ratio = measured[default.name, b] / measured["meso4-df", b]
        print(f"default {default.name} / meso4-df at batch {b}: x{ratio:.2f} the faces/s")
    print(f"matmul re-measured after the runs: {matmul_rate(args.seconds) / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
