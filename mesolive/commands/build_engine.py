"""``mesolive build-engine``: compile TensorRT engines and check them against ONNX Runtime.

Without an NVIDIA GPU, driver, tensorrt or pycuda this exits with code 2 and
one line naming what is missing and how to get it (raised before anything
heavy is imported).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from pathlib import Path

import numpy as np

from mesolive import __version__, paths
from mesolive.backends import engine_cache as ec
from mesolive.backends.gpuinfo import GpuStack, fast_fp16, require_stack
from mesolive.errors import InputError, MesoliveError
from mesolive.models import registry

log = logging.getLogger(__name__)

CALIBRATION_MAX = 512
"""At most this many crops are read for INT8 calibration (evenly spread over the folder)."""

VERIFY_FACES = 16
"""Face crops (from --calibration) added to the verification inputs."""

TARGET_FACES_PER_S = 20_000
"""Issue target: Meso-4 FP16 at batch 64 on a data-centre GPU."""

TARGET_FRAME_MS = 1.0
"""Issue target: the 1 to 8 faces of one frame classified in under 1 ms."""


def _say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - the command's report


def _spread(items: list[Path], n: int) -> list[Path]:
    if len(items) <= n:
        return items
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def load_faces(folder: str | None, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` BGR uint8 crops from ``folder``; bad files are reported and skipped."""
    if not folder:
        return []
    from mesolive.commands.common import report_error
    from mesolive.imageio import expand_paths, read_image

    files, errors = expand_paths([folder])
    if errors:
        raise errors[0]
    crops = []
    for f in _spread(files, limit):
        try:
            crops.append(read_image(f))
        except InputError as e:
            report_error(e)
    if not crops:
        raise InputError(f"{folder}: no readable face crops")
    return crops


def framed(spec: registry.ModelSpec, crops: list[np.ndarray], args: argparse.Namespace) -> list:
    """Face crops as ``spec`` reads them (its contract's ``precut``, classify/crops.py), with
    the verb's ``--detector``, ``--model-dir`` and ``--threads``."""
    from mesolive.classify.crops import CropReader

    with CropReader(
        spec.preprocess, detector=args.detector, model_dir=args.model_dir, threads=args.threads
    ) as reader:
        return [reader.frame(c) for c in crops]


def _int8_graph(
    spec: registry.ModelSpec, onnx32: Path, faces: list[np.ndarray], threads: int | None
) -> tuple[bytes, dict]:
    """The Q/DQ graph of ``onnx32``, calibrated (twice, around equalization) on ``faces``."""
    import onnx

    from mesolive.models.quantize import int8_graph

    def batches():
        return (spec.preprocess.pixels(faces[i : i + 32]) for i in range(0, len(faces), 32))

    model, cal = int8_graph(onnx.load(str(onnx32)), batches, threads=threads)
    _say(f"  calibrated {len(cal.amax)} activations on {cal.images} crops ({cal.method})")
    return model.SerializeToString(), cal.as_dict()


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _targets(spec: registry.ModelSpec, side: ec.Sidecar, rates: dict[int, object]) -> None:
    """Print the issue's targets next to what was measured (met or not)."""
    from mesolive.backends.verify import Throughput

    small = [t for b, t in rates.items() if b <= 8 and isinstance(t, Throughput)]
    if small:
        worst = max(t.ms_per_call for t in small)
        mark = "met" if worst < TARGET_FRAME_MS else "not met"
        _say(f"  target: 1-8 faces per frame < {TARGET_FRAME_MS:g} ms: {worst:.3f} ms ({mark})")
    t64 = rates.get(64)
    single_meso4 = spec.arch == "meso4" and not spec.union
    if single_meso4 and side.precision == "fp16" and isinstance(t64, Throughput):
        mark = "met" if t64.faces_per_s >= TARGET_FACES_PER_S else "not met"
        _say(
            f"  target: Meso-4 FP16 >= {TARGET_FACES_PER_S:,} faces/s at batch 64 (data-centre "
            f"GPU): {t64.faces_per_s:,.0f} ({mark})"
        )


def verify_engine(
    engine: Path,
    side: ec.Sidecar,
    spec: registry.ModelSpec,
    onnx32: Path,
    compiled: bytes,
    faces: list[np.ndarray],
    threads: int | None,
) -> bool:
    """Engine vs ONNX Runtime CPU on faces + random + smooth images, then faces/s.

    On failure every input's logits and differences are printed (and for FP16
    whether FP16 rounding or TensorRT is to blame); faces/s are measured only
    for an engine that passes.
    """
    from mesolive.backends.tensorrt import open_engine
    from mesolive.backends.verify import check_engine, throughput, verification_inputs

    names, x = verification_inputs(faces[:VERIFY_FACES], preprocess=spec.preprocess)
    if not faces:
        _say("  (no face crops given: --calibration FOLDER adds faces to the check)")
    with open_engine(engine, sidecar=side) as trt_runner:
        result = check_engine(trt_runner, side.precision, onnx32, compiled, names, x, threads)
        for line in result.lines():
            _say(f"  {line}")
        if not result.passed:
            return False
        rates: dict[int, object] = {}
        for b in sorted({1, 8, side.max_batch}):
            if b <= side.max_batch:
                rates[b] = throughput(trt_runner, b)
                _say(f"  {rates[b].line()}")  # type: ignore[attr-defined]
        _targets(spec, side, rates)
    return True


def _compiled_graph(
    spec: registry.ModelSpec, side: ec.Sidecar, engine: Path, args: argparse.Namespace
) -> bytes | None:
    """The graph ``engine`` was compiled from, checked against its sidecar (``None``: not here)."""
    if side.precision == "int8":
        path = engine.with_suffix(".onnx")
    else:
        tty = sys.stderr.isatty()
        path = registry.onnx_path(spec, side.precision, args.model_dir, progress=tty)
    graph = path.read_bytes() if path.is_file() else b""
    if _sha256(graph) != side.graph_sha256:
        _say(f"  {path.name}, the graph it was compiled from, is missing or changed: cannot verify")
        return None
    return graph


def _header(stack: GpuStack) -> str:
    g = stack.gpu
    if g is None:
        return "no GPU"
    return (
        f"GPU {g.index}: {g.name} (compute capability {g.cc[0]}.{g.cc[1]}, "
        f"{g.memory_bytes / 2**30:.0f} GiB), CUDA driver {stack.driver.cuda_version}, "
        f"TensorRT {stack.tensorrt.version}, pycuda {stack.pycuda.version}"
    )


def _build_one(
    spec: registry.ModelSpec,
    args: argparse.Namespace,
    stack: GpuStack,
    precision: str,
    folder: Path,
    faces: list[np.ndarray],
) -> bool:
    from mesolive.backends.trt_build import BuildOptions, build_serialized
    from mesolive.models.download import sha256_file

    gpu = stack.gpu
    if gpu is None:
        return False
    tty = sys.stderr.isatty()
    onnx32 = registry.onnx_path(spec, "fp32", args.model_dir, progress=tty)
    target = ec.Target(spec.name, sha256_file(onnx32), stack.tensorrt.version, gpu.name, gpu.cc)
    engine = folder / ec.engine_name(
        spec.name, target.onnx_sha256, gpu.name, gpu.cc, target.trt_version, precision
    )
    want = {"min": 1, "opt": args.opt_batch, "max": args.max_batch}
    if engine.is_file() and not args.force:
        entry = ec.check(engine, target)
        if entry.matches and entry.sidecar is not None and entry.sidecar.profile == want:
            _say(f"{spec.name}: {engine} is up to date (--force rebuilds it, --verify checks it)")
            return True
    calibration: dict = {}
    if precision == "int8":
        graph, calibration = _int8_graph(spec, onnx32, faces, args.threads)
    elif precision == "fp16":
        graph = registry.onnx_path(spec, "fp16", args.model_dir, progress=tty).read_bytes()
    else:
        graph = onnx32.read_bytes()
    options = BuildOptions(args.max_batch, args.opt_batch, args.workspace, precision)
    _say(
        f"{spec.name}: building a {precision} engine for batch 1..{args.max_batch} "
        f"(tuned for {args.opt_batch}); this takes a minute or more"
    )
    started = time.perf_counter()
    cache = ec.timing_cache_path(folder, gpu.name, gpu.cc, target.trt_version)
    plan = build_serialized(graph, options, cache, show_progress=tty)
    side = ec.Sidecar(
        model=spec.name,
        onnx_sha256=target.onnx_sha256,
        trt_version=target.trt_version,
        gpu_name=gpu.name,
        compute_capability=ec.cc_text(gpu.cc),
        precision=precision,
        profile=want,
        build_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(time.perf_counter() - started, 1),
        graph_sha256=_sha256(graph),
        workspace_mb=args.workspace,
        calibration=calibration,
        mesolive_version=__version__,
    )
    extras = {".onnx": graph} if precision == "int8" else {}

    def verify(plan_file: Path) -> bool:
        return verify_engine(plan_file, side, spec, onnx32, graph, faces, args.threads)

    _say(f"{spec.name}: built in {side.build_seconds:.0f} s ({len(plan) / 1e6:.1f} MB); verifying")
    if ec.install_verified(engine, plan, side, verify, extras):
        _say(f"{spec.name}: wrote {engine}")
        return True
    _fail_line(
        f"{engine.name} failed verification against ONNX Runtime; kept as "
        f"{ec.failed_path(engine).name}, which is never loaded"
        + ("; the engine already there is unchanged" if engine.is_file() else "")
    )
    return False


def _fail_line(text: str) -> None:
    print(f"mesolive: error: {text}", file=sys.stderr)  # noqa: T201 - the command's verdict


def _verify_existing(
    spec: registry.ModelSpec,
    args: argparse.Namespace,
    stack: GpuStack,
    folder: Path,
    faces: list[np.ndarray],
) -> bool | None:
    """Verify every engine of ``spec`` in the folder; ``None`` when it has none."""
    from mesolive.models.download import sha256_file

    files = ec.list_engines(folder, spec.name)
    if not files:
        return None
    gpu = stack.gpu
    if gpu is None:
        return False
    onnx32 = registry.onnx_path(spec, "fp32", args.model_dir, progress=sys.stderr.isatty())
    target = ec.Target(spec.name, sha256_file(onnx32), stack.tensorrt.version, gpu.name, gpu.cc)
    ok = True
    for f in files:
        entry = ec.check(f, target)
        side = entry.sidecar
        if not entry.matches or side is None:
            _say(f"{f.name}: {entry.problem}; {ec.rebuild_hint(entry, spec.name, folder, target)}")
            ok = False
            continue
        _say(f"{f.name}:")
        graph = _compiled_graph(spec, side, f, args)
        if graph is None:
            ok = False
        elif not verify_engine(f, side, spec, onnx32, graph, faces, args.threads):
            opt = side.profile.get("opt", ec.DEFAULT_OPT_BATCH)
            rebuild = ec.rebuild_command(spec.name, side.precision, side.max_batch, opt, folder)
            _fail_line(
                f"{f.name} failed verification against ONNX Runtime; moved to "
                f"{ec.retire(f).name}, which is never loaded; rebuild: {rebuild}"
            )
            ok = False
    return ok


def run(args: argparse.Namespace) -> int:
    from mesolive.backends.trt_build import BuildOptions

    # Arguments first: a mistake there is reported the same with or without a GPU.
    try:
        BuildOptions(args.max_batch, args.opt_batch, args.workspace).validate()
    except ValueError as e:
        raise InputError(str(e)) from e
    if args.precision == "int8" and not args.calibration and not args.verify:
        raise InputError(
            "--precision int8 needs --calibration FOLDER: a few hundred face crops like "
            "those the app will see (the activation ranges are measured on them)"
        )
    if args.calibration and not Path(args.calibration).is_dir():
        raise InputError(f"{args.calibration}: --calibration needs a folder of face crops")
    specs = registry.list_specs() if args.model == "all" else [registry.get_spec(args.model)]
    stack = require_stack("TensorRT engines cannot be built here")
    gpu = stack.gpu
    if gpu is None:
        raise MesoliveError("no GPU")
    precision = args.precision or ("fp16" if fast_fp16(gpu.cc) else "fp32")
    folder = paths.engine_dir(args.engine_dir)
    limit = CALIBRATION_MAX if precision == "int8" and not args.verify else VERIFY_FACES
    faces = load_faces(args.calibration, limit)
    _say(_header(stack))

    results: list[bool | None] = []
    for spec in specs:
        mine = framed(spec, faces, args)
        if args.verify:
            results.append(_verify_existing(spec, args, stack, folder, mine))
        else:
            results.append(_build_one(spec, args, stack, precision, folder, mine))
    if args.verify and all(r is None for r in results):
        raise InputError(
            f"no engines for {args.model} in {folder}; build one: "
            f"{ec.rebuild_command(specs[0].name, precision, engine_dir=folder)}"
        )
    return 0 if all(r is not False for r in results) else 1
