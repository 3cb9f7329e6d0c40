"""Back-end choice when TensorRT, pycuda, the driver or a GPU is missing or broken.

The GPU stack cannot exist here, so its absence is real, and its *partial*
presence is made of real files (see :mod:`tests.gpu_fakes`): a package that
raises the ``ImportError`` of a missing shared library, stub packages, and a
compiled stand-in ``libcuda.so.1``. mesolive runs in a subprocess that
imports them for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mesolive.backends import engine_cache as ec
from mesolive.backends.gpuinfo import probe_module
from mesolive.models.registry import default_model

from .gpu_fakes import (
    CPU_FP32,
    broken_package,
    run_mesolive,
    stub_package,
    without_gpu_stack,
)

MODEL = default_model()

FACE = "samples/faces/real/real00240.jpg"


def _backend_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "backend:" in ln]


def test_probe_tells_missing_from_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert probe_module("mesolive_test_no_such_module").state == "missing"
    pkg = tmp_path / "mesolive_test_needs_dep"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import mesolive_test_absent_dependency\n")
    broken_package(tmp_path, "mesolive_test_no_lib", "libnvinfer.so.10")
    monkeypatch.syspath_prepend(str(tmp_path))
    dep = probe_module("mesolive_test_needs_dep")
    assert dep.state == "broken"
    assert "mesolive_test_absent_dependency" in dep.error
    lib = probe_module("mesolive_test_no_lib")
    assert lib.state == "broken"
    assert lib.error.startswith("libnvinfer.so.10: cannot open shared object file")
    assert probe_module("json").state == "ok"


@without_gpu_stack
def test_auto_falls_back_to_cpu_with_one_line(shared: Path) -> None:
    r = run_mesolive(["classify", str(shared / FACE), *CPU_FP32])
    assert r.returncode == 0, r.stderr
    lines = _backend_lines(r.stderr)
    assert len(lines) == 1
    assert lines[0].startswith("mesolive: backend: ONNX Runtime CPU (TensorRT not used: ")
    assert "the tensorrt module is not installed" in lines[0]
    assert "pycuda is not installed" in lines[0]


def test_broken_tensorrt_is_named_with_its_library_error(tmp_path: Path, shared: Path) -> None:
    fakes = broken_package(tmp_path, "tensorrt", "libnvinfer.so.10")
    r = run_mesolive(["classify", str(shared / FACE), *CPU_FP32], pythonpath=[fakes])
    assert r.returncode == 0, r.stderr
    (line,) = _backend_lines(r.stderr)
    assert "backend: ONNX Runtime CPU" in line
    assert (
        "the tensorrt module does not load: libnvinfer.so.10: cannot open shared object file"
        in line
    )
    assert "Traceback" not in r.stderr


def test_broken_pycuda_is_named_with_its_library_error(tmp_path: Path, shared: Path) -> None:
    stub_package(tmp_path, "pycuda", "2024.1.2")
    (tmp_path / "pycuda" / "driver.py").write_text(
        'raise ImportError("libcuda.so.1: cannot open shared object file: No such file")\n'
    )
    r = run_mesolive(["classify", str(shared / FACE)], pythonpath=[tmp_path])
    (line,) = _backend_lines(r.stderr)
    assert "pycuda does not load: libcuda.so.1: cannot open shared object file" in line


@without_gpu_stack
def test_backend_tensorrt_without_it_is_one_line_and_exit_2(shared: Path) -> None:
    r = run_mesolive(["classify", "--backend", "tensorrt", str(shared / FACE)])
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    assert err[0].startswith("mesolive: error: TensorRT cannot run here: no NVIDIA driver")
    assert "pip install 'mesolive[gpu]'" in err[0]


def test_fake_driver_is_read_through_ctypes(libcuda: Path) -> None:
    code = (
        "from mesolive.backends.gpuinfo import probe_driver; d = probe_driver(); "
        "print(d.library, d.cuda_version, d.gpus[0].name, d.gpus[0].cc, d.gpus[0].sm, "
        "d.gpus[0].memory_bytes >> 30, repr(d.error))"
    )
    r = run_mesolive([], libdir=libcuda, code=code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        "libcuda.so.1",
        "12.4",
        "NVIDIA",
        "Fake",
        "GPU",
        "9000",
        "(8,",
        "9)",
        "sm89",
        "24",
        "''",
    ]


@pytest.mark.parametrize(
    ("init", "problem"),
    [
        (
            "100",
            "no NVIDIA GPU visible (cuInit: CUDA_ERROR_NO_DEVICE) "
            "(check nvidia-smi and CUDA_VISIBLE_DEVICES)",
        ),
        (
            "35",
            "the CUDA driver does not start (cuInit: CUDA_ERROR_INSUFFICIENT_DRIVER) "
            "(update the NVIDIA driver (or reboot after an update)",
        ),
    ],
)
def test_driver_that_does_not_start(libcuda: Path, init: str, problem: str) -> None:
    code = "from mesolive.backends.gpuinfo import probe_stack; print(probe_stack().summary())"
    r = run_mesolive([], libdir=libcuda, env={"FAKE_CUDA_INIT": init}, code=code)
    assert r.stdout.startswith(problem), r.stdout


@without_gpu_stack
def test_gpu_without_tensorrt_names_only_the_python_packages(libcuda: Path) -> None:
    r = run_mesolive(["build-engine"], libdir=libcuda)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("mesolive: error: TensorRT engines cannot be built here: ")
    assert "driver" not in line.split("pycuda")[0]  # the GPU is there: not mentioned
    assert "the tensorrt module is not installed (pip install 'mesolive[gpu]')" in line
    assert "pycuda is not installed" in line


@pytest.fixture
def gpu_stack_stubs(tmp_path: Path) -> Path:
    """tensorrt 10.8.0.43 and pycuda that import: the stack check passes, engines decide."""
    stub_package(tmp_path, "tensorrt", "10.8.0.43")
    stub_package(tmp_path, "pycuda", "2024.1.2", submodules=("driver",))
    return tmp_path


def test_no_engine_tells_the_build_command(
    libcuda: Path, gpu_stack_stubs: Path, tmp_path: Path, shared: Path
) -> None:
    engines = tmp_path / "engines"
    r = run_mesolive(
        ["classify", str(shared / FACE), *CPU_FP32],
        pythonpath=[gpu_stack_stubs],
        libdir=libcuda,
        env={"MESOLIVE_ENGINE_DIR": str(engines)},
    )
    assert r.returncode == 0, r.stderr
    (line,) = _backend_lines(r.stderr)
    assert line == (
        f"mesolive: backend: ONNX Runtime CPU (TensorRT not used: no TensorRT engine for "
        f"{MODEL} in {engines}; build one: mesolive build-engine --model {MODEL} "
        "--precision fp16; ONNX Runtime has no CUDA provider)"
    )


def test_engine_from_another_tensorrt_is_refused_with_the_rebuild_command(
    libcuda: Path, gpu_stack_stubs: Path, tmp_path: Path, shared: Path
) -> None:
    from mesolive.models.download import sha256_file
    from mesolive.models.registry import get_spec, onnx_path

    sha = sha256_file(onnx_path(get_spec(MODEL), "fp32"))
    engines = tmp_path / "engines"
    side = ec.Sidecar(
        model=MODEL,
        onnx_sha256=sha,
        trt_version="10.7.0.23",
        gpu_name="NVIDIA Fake GPU 9000",
        compute_capability="8.9",
        precision="fp16",
        profile={"min": 1, "opt": 8, "max": 64},
    )
    old = engines / ec.engine_name(MODEL, sha, side.gpu_name, (8, 9), "10.7.0.23", "fp16")
    ec.write_engine(old, b"plan", side)
    env = {"MESOLIVE_ENGINE_DIR": str(engines)}
    r = run_mesolive(
        ["classify", str(shared / FACE)], pythonpath=[gpu_stack_stubs], libdir=libcuda, env=env
    )
    (line,) = _backend_lines(r.stderr)
    assert (
        f"TensorRT not used: {old}: built with TensorRT 10.7.0.23, this is TensorRT 10.8.0.43 "
        "(engines do not move across TensorRT versions); rebuild: mesolive build-engine "
        f"--model {MODEL} --precision fp16;" in line
    )
    r = run_mesolive(
        ["classify", "--backend", "tensorrt", str(shared / FACE)],
        pythonpath=[gpu_stack_stubs],
        libdir=libcuda,
        env=env,
    )
    assert r.returncode == 2
    (err,) = r.stderr.strip().splitlines()
    assert err.startswith(f"mesolive: error: {old}: built with TensorRT 10.7.0.23")
