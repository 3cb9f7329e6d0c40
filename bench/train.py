"""Training throughput: images per second, forward and backward, against the data side.

    python bench/train.py [--seconds 8] [--batch 75] [--device cpu|cuda] [--workers N…]

Prints float32 and bfloat16-autocast rates for both architectures, channels-last,
with the paper's batch size, on the CPU or a CUDA GPU, measured in one run, and what
the data side costs per image on one thread (augmentation alone, a pseudo-fake of each
``--blend-style`` plus augmentation). The data side runs in ``train --workers`` threads
beside the training step: the last line gives its rate at each count asked for (the
'call' preset with an inswap pseudo-fake, the costliest mix), to set against the step.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from mesolive.models.arch import ARCHS
from mesolive.train.augment import PRESETS, augment
from mesolive.train.blend import pseudo_fake
from mesolive.train.torch_model import MesoNetTorch
from mesolive.train.trainer import TrainConfig, data_workers


def rate(arch: str, batch: int, seconds: float, bf16: bool, device: str) -> float:
    torch.manual_seed(0)
    model = MesoNetTorch(ARCHS[arch]).to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, 3, 256, 256, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device).float()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y).backward()
        opt.step()

    for _ in range(5):
        step()
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            step()
        sync()
        n += 10 * batch
    return n / (time.perf_counter() - t0)


def data_rate(seconds: float, style: str = "", preset: str = "light", threads: int = 1) -> float:
    """Images per second of the data side on ``threads`` threads together (a smooth
    synthetic face-sized image)."""
    yy, xx = np.mgrid[0:256, 0:256]
    img = np.stack([(xx + yy) % 256, (2 * xx) % 256, (3 * yy) % 256], axis=2).astype(np.uint8)

    def one(seed: int) -> int:
        rng = np.random.default_rng(seed)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            x = pseudo_fake(img, rng, style, 1 / 1.3) if style else img
            augment(x, rng, PRESETS[preset])
            n += 1
        return n

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        n = sum(pool.map(one, range(threads)))
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--batch", type=int, default=75)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    cores = os.cpu_count() or 1
    ap.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=sorted({1, data_workers(TrainConfig(name="bench", data=(), device="cuda"))}),
        help="data-side thread counts to measure (default: 1 and train's default on a GPU)",
    )
    args = ap.parse_args()
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(
        f"torch {torch.__version__} on {where}, {torch.get_num_threads()} CPU threads, "
        f"{cores} cores, batch {args.batch}"
    )
    print(f"{'arch':<16} {'fp32 img/s':>10} {'bf16 img/s':>10} {'bf16/fp32':>9}")
    for arch in ("meso4", "mesoinception4"):
        f32 = rate(arch, args.batch, args.seconds, bf16=False, device=args.device)
        b16 = rate(arch, args.batch, args.seconds, bf16=True, device=args.device)
        print(f"{arch:<16} {f32:>10.1f} {b16:>10.1f} {b16 / f32:>9.2f}")
    plain = data_rate(args.seconds / 2)
    ellipse = data_rate(args.seconds / 2, style="ellipse")
    inswap = data_rate(args.seconds / 2, style="inswap")
    call = data_rate(args.seconds / 2, preset="call")
    print(
        f"data side, 1 thread: augment {plain:.0f} img/s; pseudo-fake + augment: ellipse "
        f"{ellipse:.0f} img/s (x{ellipse / plain:.2f}), inswap {inswap:.0f} img/s "
        f"(x{inswap / plain:.2f}); 'call' augment {call:.0f} img/s (x{call / plain:.2f})"
    )
    mix = {n: data_rate(args.seconds / 2, "inswap", "call", threads=n) for n in args.workers}
    first = mix[args.workers[0]]
    print(
        "data side, inswap pseudo-fake + 'call' augment: "
        + ", ".join(f"{n} threads {r:.0f} img/s (x{r / first:.2f})" for n, r in mix.items())
    )


if __name__ == "__main__":
    main()
