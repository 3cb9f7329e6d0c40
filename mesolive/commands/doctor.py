"""``mesolive doctor``: what this machine offers, and whether each piece works.

Prints the GPU, driver, CUDA, TensorRT, pycuda, ONNX Runtime and its
providers, whether the CPU multiplies 8-bit integers natively (VNNI/AMX, which
``--precision auto`` needs for INT8), whether MesoInception-4's C kernel
builds here (:mod:`mesolive.backends.native_build`; building it is the one
thing doctor writes, into the cache), the engines in the engine folder and
whether each matches this machine, and which back end ``--backend auto``
would pick, and where scans take the face detector from. It downloads
nothing. Exit code 0 when the CPU path (ONNX Runtime on the CPU) works and a
scan would find its detector, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mesolive import __version__, paths
from mesolive.backends import engine_cache as ec
from mesolive.backends.gpuinfo import GpuStack, ModuleStatus, nvidia_smi_driver, probe_stack
from mesolive.detect.scrfd import detector_status
from mesolive.errors import InputError
from mesolive.models import registry


def _say(text: str = "") -> None:
    print(text)  # noqa: T201 - the command's report


def _module_text(m: ModuleStatus) -> str:
    if m.state == "ok":
        return m.version or "installed"
    if m.state == "missing":
        return "not installed"
    return f"installed but does not load: {m.error}"


def _local_onnx(name: str, model_dir: str | None) -> Path | None:
    """The float32 ONNX of ``name`` if it can be had without a download, else ``None``."""
    try:
        spec = registry.get_spec(name)
    except Exception:  # noqa: BLE001 - an unknown model in the engine folder is just reported
        return None
    from mesolive.commands.models import _status  # the same test `models list` makes

    if _status(spec, model_dir) not in ("present", "cached", "packaged"):
        return None
    return registry.onnx_path(spec, "fp32", model_dir, progress=False)


def _cpu_check(model_dir: str | None, threads: int | None) -> dict[str, Any]:
    """Run ONNX Runtime on the CPU: the default model if its weights are here, else a tiny graph."""
    try:
        from mesolive.backends.onnxruntime import OnnxRuntimeRunner

        model = registry.default_model()
        onnx_file = _local_onnx(model, model_dir)
        if onnx_file is not None:
            from mesolive.models.onnx_graph import PIXELS_SHAPE

            x = np.random.default_rng(0).integers(0, 256, (8, *PIXELS_SHAPE), dtype=np.uint8)
            with OnnxRuntimeRunner(onnx_file, threads=threads) as runner:
                runner.infer({"input": x[:1]})
                t = time.perf_counter()
                out = runner.infer({"input": x})
                ms = (time.perf_counter() - t) * 1e3
            if not np.all(np.isfinite(out["logit"])):
                return {"ok": False, "detail": f"{model} gave non-finite logits"}
            return {"ok": True, "detail": f"{model} scored 8 faces in {ms:.0f} ms"}
        with OnnxRuntimeRunner(_tiny_graph(), threads=threads) as runner:
            y = runner.infer({"x": np.ones((1, 4), np.float32)})["y"]
        if not np.allclose(y, 1 / (1 + np.exp(-1.0))):
            return {"ok": False, "detail": "ONNX Runtime computed a wrong sigmoid"}
        return {
            "ok": True,
            "detail": f"ONNX Runtime runs; {model} is not downloaded yet "
            f"(mesolive models fetch {model})",
        }
    except Exception as e:  # noqa: BLE001 - doctor reports any failure as a finding
        return {"ok": False, "detail": f"{type(e).__name__}: {e}"}


def _tiny_graph() -> bytes:
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["y"])],
        "doctor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def _engines(stack: GpuStack, folder: Path, model_dir: str | None) -> list[dict[str, Any]]:
    from mesolive.models.download import sha256_file

    rows = []
    shas: dict[str, str | None] = {}
    gpu = stack.gpu
    for f in ec.list_engines(folder):
        model = f.name.split(".", 1)[0]
        if model not in shas:
            onnx_file = _local_onnx(model, model_dir)
            shas[model] = sha256_file(onnx_file) if onnx_file else None
        sha = shas[model]
        target = None
        if gpu is not None and stack.tensorrt.ok and sha:
            target = ec.Target(model, sha, stack.tensorrt.version, gpu.name, gpu.cc)
        entry = ec.check(f, target)
        problem = entry.problem
        if target is None and entry.sidecar is not None:
            if gpu is None or not stack.tensorrt.ok:
                problem = "cannot run here: " + stack.summary(hints=False)
            else:
                problem = f"cannot check: the weights of {model} are not downloaded"
        row: dict[str, Any] = {"file": f.name, "matches": not problem, "problem": problem}
        if entry.sidecar is not None:
            s = entry.sidecar
            row.update(
                precision=s.precision,
                profile=s.profile,
                built=s.build_time,
                gpu=s.gpu_name,
                trt=s.trt_version,
            )
        if problem and target is not None:
            row["fix"] = ec.rebuild_hint(entry, model, folder, target)
        rows.append(row)
    return rows


def _auto_choice(stack: GpuStack, engines: list[dict[str, Any]], providers: list[str]) -> str:
    from mesolive.backends.select import _ort_cuda_problem

    model = registry.default_model()
    if stack.ready and any(e["matches"] and e["file"].startswith(model + ".") for e in engines):
        return f"TensorRT (a matching {model} engine)"
    why = stack.summary(hints=False) if not stack.ready else f"no matching {model} engine"
    problem = _ort_cuda_problem(providers)
    if not problem:
        return f"ONNX Runtime CUDA (TensorRT not used: {why})"
    # which CPU runtime and precision: the INT8 and bf16 rows
    return f"CPU (TensorRT not used: {why}; {problem})"


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Everything doctor reports, as plain data (the ``--json`` output)."""
    stack = probe_stack()
    from mesolive.backends.onnxruntime import available_providers

    ort = ModuleStatus("onnxruntime", "missing")
    try:
        import onnxruntime

        ort = ModuleStatus("onnxruntime", "ok", onnxruntime.__version__)
    except ImportError as e:
        ort = ModuleStatus("onnxruntime", "broken", error=str(e))
    providers = available_providers()
    folder = paths.engine_dir(getattr(args, "engine_dir", None))
    engines = _engines(stack, folder, args.model_dir)
    cpu = _cpu_check(args.model_dir, args.threads)
    return {
        "cpu_int8": _cpu_int8(),
        "cpu_bf16": _cpu_bf16(),
        "cpu_kernel": _cpu_kernel(),
        "mesolive": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "compute_capability": f"{g.cc[0]}.{g.cc[1]}",
                "memory_gib": round(g.memory_bytes / 2**30, 1),
            }
            for g in stack.driver.gpus
        ],
        "gpu_problem": stack.driver.error,
        "driver": nvidia_smi_driver() if stack.driver.library else "",
        "cuda_driver_api": stack.driver.cuda_version,
        "tensorrt": _module_text(stack.tensorrt),
        "pycuda": _module_text(stack.pycuda),
        "onnxruntime": _module_text(ort),
        "onnxruntime_providers": providers,
        "engine_dir": str(folder),
        "engines": engines,
        "tensorrt_path": "ready" if stack.ready else stack.summary(),
        "auto_backend": _auto_choice(stack, engines, providers),
        "cpu_path": cpu,
        "detector": dict(zip(("ok", "detail"), detector_status(args.model_dir), strict=True)),
    }


def _cpu_int8() -> dict[str, Any]:
    """The CPU's native INT8 instructions and the INT8 calibration folder (none: empty)."""
    from mesolive.backends.cpuinfo import int8_flags
    from mesolive.models.cpu_precision import CALIBRATION_ENV, calibration_folder

    try:
        calibration_folder()
        problem = ""
    except InputError as e:  # told here; every other command stops on it
        problem = str(e)
    return {
        "flags": list(int8_flags()),
        "calibration": os.environ.get(CALIBRATION_ENV, ""),
        "calibration_problem": problem,
    }


def _cpu_bf16() -> dict[str, Any]:
    """The CPU's native bfloat16 instructions and OpenVINO's version (not installed: empty)."""
    from mesolive.backends.cpuinfo import bf16_flags
    from mesolive.backends.openvino import openvino_version

    return {"flags": list(bf16_flags()), "openvino": openvino_version()}


def _cpu_kernel() -> dict[str, Any]:
    """Whether MesoInception-4's C kernel builds and loads here: its library, or why not."""
    from mesolive.backends.native_build import library_path, load_kernel
    from mesolive.errors import BackendUnavailable

    try:
        load_kernel()
        return {"library": str(library_path()[0]), "problem": ""}
    except BackendUnavailable as e:
        return {"library": "", "problem": str(e)}


def _bf16_text(r: dict[str, Any], calibration: str) -> str:
    from mesolive.backends.cpuinfo import BF16_FLAGS
    from mesolive.backends.openvino import INSTALL_HINT
    from mesolive.models.cpu_precision import CALIBRATION_ENV

    if not r["flags"]:
        return f"no AMX/AVX-512 BF16 (none of {', '.join(BF16_FLAGS)}): not run here"
    have = f"AMX/AVX-512 BF16: {', '.join(r['flags'])}"
    if not r["openvino"]:
        return f"{have}; {INSTALL_HINT} to run it"
    where = (
        f"judged on {calibration}"
        if calibration
        else f"packaged models by their cards' record; for others set {CALIBRATION_ENV}"
    )
    return f"{have}; OpenVINO {r['openvino']} runs it here where faster ({where})"


def _int8_text(r: dict[str, Any]) -> str:
    from mesolive.backends.cpuinfo import INT8_FLAGS
    from mesolive.models.cpu_precision import CALIBRATION_ENV

    if r["calibration_problem"]:
        return f"{r['calibration_problem']}: every command but doctor stops on it"
    if not r["flags"]:
        return f"no VNNI/AMX (none of {', '.join(INT8_FLAGS)}): --precision auto runs fp32"
    where = (
        f"calibrates on {r['calibration']}"
        if r["calibration"]
        else f"set {CALIBRATION_ENV} to a folder of face crops to calibrate on"
    )
    return f"VNNI/AMX: {', '.join(r['flags'])}; INT8 runs here where faster ({where})"


def _row(label: str, text: str) -> None:
    _say(f"{label:<14}{text}")


def _print(r: dict[str, Any]) -> None:
    _say(f"mesolive {r['mesolive']}, Python {r['python']}, {r['platform']}")
    for g in r["gpus"]:
        _row(
            f"GPU {g['index']}",
            f"{g['name']}, compute capability {g['compute_capability']}, {g['memory_gib']} GiB",
        )
    if not r["gpus"]:
        _row("GPU", f"none: {r['gpu_problem']}")
    driver = r["driver"] or ("present" if r["cuda_driver_api"] else "none")
    cuda = f" (supports CUDA {r['cuda_driver_api']})" if r["cuda_driver_api"] else ""
    _row("driver", driver + cuda)
    _row("TensorRT", r["tensorrt"])
    _row("pycuda", r["pycuda"])
    _row("ONNX Runtime", f"{r['onnxruntime']}; providers: {', '.join(r['onnxruntime_providers'])}")
    _row("INT8 (CPU)", _int8_text(r["cpu_int8"]))
    _row("bf16 (CPU)", _bf16_text(r["cpu_bf16"], r["cpu_int8"]["calibration"]))
    kernel = r["cpu_kernel"]
    _row(
        "C kernel",
        f"built, {kernel['library']}: MesoInception-4 runs its inception blocks there where faster"
        if kernel["library"]
        else f"{kernel['problem']}: MesoInception-4 runs in ONNX Runtime alone",
    )
    _row("engines", f"{r['engine_dir']}: {len(r['engines']) or 'none'}")
    for e in r["engines"]:
        verdict = "matches this machine" if e["matches"] else e["problem"]
        what = (
            f" [{e['precision']}, batch 1..{e['profile'].get('max')}]" if "precision" in e else ""
        )
        _say(f"  {e['file']}{what}: {verdict}")
        if "fix" in e:
            _say(f"    {e['fix']}")
    _row("TensorRT path", r["tensorrt_path"])
    _row("auto backend", r["auto_backend"])
    cpu = r["cpu_path"]
    _row("CPU path", f"{'ok' if cpu['ok'] else 'FAILED'}: {cpu['detail']}")
    det = r["detector"]
    _row("detector", f"{'ok' if det['ok'] else 'MISSING'}: {det['detail']}")


def run(args: argparse.Namespace) -> int:
    report = collect(args)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print(report)
    return 0 if report["cpu_path"]["ok"] and report["detector"]["ok"] else 1
