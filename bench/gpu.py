"""Classifier throughput per back end: TensorRT, ONNX Runtime CUDA, ONNX Runtime CPU.

For each model, opens every back end that works here (a TensorRT engine must
have been built first: ``mesolive build-engine``), and prints faces/s and
milliseconds per call at each batch size, copies included and warm-up
excluded, plus each back end's speed-up over ONNX Runtime on the CPU measured
in the same run. Back ends that cannot run say why in one line. Run on a
quiet machine:

    MESOLIVE_MODEL_DIR=../shared/models python bench/gpu.py [--models meso4-df] \\
        [--batches 1 8 64] [--seconds 2]
"""

from __future__ import annotations

import argparse

from mesolive.backends.select import open_runner
from mesolive.backends.verify import Throughput, throughput
from mesolive.errors import MesoliveError

BACKENDS = ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=["meso4-df", "mesoinception4-df"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 64])
    p.add_argument("--seconds", type=float, default=2.0, help="timing per batch size")
    p.add_argument("--engine-dir", default=None)
    args = p.parse_args()

    for model in args.models:
        results: dict[str, dict[int, Throughput]] = {}
        for backend in BACKENDS:
            try:
                runner = open_runner(
                    model, backend=backend, engine_dir=args.engine_dir, progress=False
                )
            except MesoliveError as e:
                print(f"{model} {backend}: not measured: {e}")
                continue
            with runner:
                results[backend] = {
                    b: throughput(runner, b, seconds=args.seconds) for b in args.batches
                }
        cpu = results.get("onnxruntime-cpu", {})
        for backend, rates in results.items():
            for b, t in rates.items():
                ratio = f", {t.faces_per_s / cpu[b].faces_per_s:.1f}x CPU" if b in cpu else ""
                print(f"{model} {backend:<17} {t.line()}{ratio}")


if __name__ == "__main__":
    main()
