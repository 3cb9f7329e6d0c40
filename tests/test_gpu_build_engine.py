"""``mesolive build-engine``: where it cannot build, and how it verifies what it built.

Where it cannot build: one line, exit code 2, no traceback. The build and its
verification run in a subprocess on the stand-in GPU stack (``tests/gpu_stack``,
a compiled stand-in ``libcuda.so.1``): the stand-in engine computes what the
graph it was built from computes, plus ``FAKE_TRT_KERNEL_ERROR`` (a TensorRT
kernel that is off); everything else (ONNX Runtime, the graphs, the engine
folder) is real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mesolive.backends import engine_cache as ec
from mesolive.cli import main
from mesolive.commands.build_engine import load_faces
from mesolive.models.registry import default_model

from .gpu_fakes import GPU_STACK, run_mesolive, without_gpu_stack

MODEL = default_model()


@without_gpu_stack
def test_no_gpu_is_one_line_naming_each_missing_piece() -> None:
    r = run_mesolive(["build-engine", "--model", "all"])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("mesolive: error: TensorRT engines cannot be built here: ")
    for piece in (
        "no NVIDIA driver (libcuda.so.1 not found) (install the NVIDIA driver",
        "the tensorrt module is not installed (pip install 'mesolive[gpu]')",
        "pycuda is not installed (pip install 'mesolive[gpu]'; pycuda compiles against the "
        "CUDA toolkit, see docs/gpu.md)",
    ):
        assert piece in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-batch", "0"], "--max-batch must be at least 1, got 0"),
        (["--opt-batch", "65"], "--opt-batch must be between 1 and --max-batch (64), got 65"),
        (["--workspace", "8"], "--workspace must be at least 16 MB, got 8"),
        (["--precision", "int8"], "--precision int8 needs --calibration FOLDER"),
        (["--calibration", "/no/such/folder"], "/no/such/folder: --calibration needs a folder"),
        (["--model", "meso5"], "unknown model 'meso5'"),
    ],
)
def test_bad_arguments_are_reported_before_looking_for_a_gpu(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build-engine", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("mesolive: error: " + message)


def test_calibration_faces_are_read_spread_and_bad_files_skipped(
    shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for f in sorted((shared / "faces" / "dfdc" / "real").glob("*.jpg"))[:10]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "zz_broken.jpg").write_bytes(b"not a jpeg")
    faces = load_faces(str(tmp_path), 100)
    assert len(faces) == 10
    assert all(f.ndim == 3 and f.shape[2] == 3 and f.dtype.name == "uint8" for f in faces)
    assert "zz_broken.jpg: not an image file" in capsys.readouterr().err
    (tmp_path / "zz_broken.jpg").unlink()
    assert len(load_faces(str(tmp_path), 4)) == 4  # spread over the folder, not the first 4
    assert load_faces(None, 4) == []


def _build_engine(
    libcuda: Path, engines: Path, *args: str, kernel_error: float = 0.0
) -> subprocess.CompletedProcess[str]:
    env = {"MESOLIVE_ENGINE_DIR": str(engines), "FAKE_TRT_KERNEL_ERROR": str(kernel_error)}
    argv = ["build-engine", "--model", MODEL, "--precision", "fp16", "--max-batch", "8", *args]
    r = run_mesolive(argv, pythonpath=[GPU_STACK], libdir=libcuda, env=env)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def _files(engines: Path) -> list[str]:
    """The engine folder's files of MODEL, by what follows the TensorRT version in the name."""
    return sorted(p.name.split(".trt10.8.0.43.", 1)[1] for p in engines.glob(f"{MODEL}.*"))


def test_an_engine_that_passes_is_installed_and_one_that_fails_is_kept_aside(
    libcuda: Path, tmp_path: Path
) -> None:
    engines = tmp_path / "engines"
    good = _build_engine(libcuda, engines)
    assert good.returncode == 0, good.stdout + good.stderr
    (engine,) = ec.list_engines(engines, MODEL)
    assert _files(engines) == ["fp16.engine", "fp16.json"]
    out = good.stdout
    assert "vs ONNX Runtime CPU (float32 graph): largest logit difference" in out
    assert ": ok" in out
    own = "vs the FP16 graph it compiled (TensorRT's own error): largest logit difference 0 "
    assert own in out
    assert "FP16 graph vs float32 graph, both in ONNX Runtime (the FP16 rounding)" in out
    assert "  row  " not in out  # no per-row table for an engine that passes
    plan, sidecar = engine.read_bytes(), ec.sidecar_path(engine).read_text()

    bad = _build_engine(libcuda, engines, "--force", kernel_error=0.5)
    assert bad.returncode == 1
    assert engine.read_bytes() == plan  # the good engine is untouched
    assert ec.list_engines(engines, MODEL) == [engine]  # the failed one is never loaded
    assert _files(engines) == [
        "fp16.engine",
        "fp16.engine.failed",
        "fp16.engine.failed.json",
        "fp16.json",
    ]
    assert ec.sidecar_path(engine).read_text() == sidecar
    assert bad.stderr.strip().splitlines()[-1] == (
        f"mesolive: error: {engine.name} failed verification against ONNX Runtime; kept as "
        f"{engine.name}.failed, which is never loaded; the engine already there is unchanged"
    )
    assert "  row  " in bad.stdout
    rows = [ln.split() for ln in bad.stdout.splitlines() if ln.startswith("  random")]
    assert len(rows) == 6
    for row in rows:  # float32, FP16 graph, engine, engine - float32, engine - FP16, marks
        assert float(row[5]) == pytest.approx(0.5, abs=1e-4)  # exactly the kernel's error
        assert abs(float(row[4]) - 0.5) < 0.02 * 10  # plus FP16 rounding, within tolerance
        assert " ".join(row[6:]).startswith("over the tolerance")
    assert "cause: the FP16 graph passes this check in ONNX Runtime and the engine" in bad.stdout
    assert "faces/s" not in bad.stdout  # an engine that fails is not timed


def test_a_first_build_that_fails_leaves_no_engine(libcuda: Path, tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    r = _build_engine(libcuda, engines, kernel_error=-0.5)
    assert r.returncode == 1
    assert ec.list_engines(engines, MODEL) == []
    assert _files(engines) == ["fp16.engine.failed", "fp16.engine.failed.json"]
    assert r.stderr.strip().splitlines()[-1].endswith(".failed, which is never loaded")


def test_verify_moves_an_engine_that_fails_aside(libcuda: Path, tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    assert _build_engine(libcuda, engines).returncode == 0
    (engine,) = ec.list_engines(engines, MODEL)
    assert _build_engine(libcuda, engines, "--verify").returncode == 0
    r = _build_engine(libcuda, engines, "--verify", kernel_error=0.5)
    assert r.returncode == 1
    assert ec.list_engines(engines, MODEL) == []  # later runs no longer load it
    assert _files(engines) == ["fp16.engine.failed", "fp16.engine.failed.json"]
    assert r.stderr.strip().splitlines()[-1] == (
        f"mesolive: error: {engine.name} failed verification against ONNX Runtime; moved to "
        f"{engine.name}.failed, which is never loaded; rebuild: mesolive build-engine --model "
        f"{MODEL} --precision fp16 --max-batch 8"  # the engine folder is MESOLIVE_ENGINE_DIR
    )


def test_verify_needs_the_graph_the_engine_was_compiled_from(libcuda: Path, tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    assert _build_engine(libcuda, engines).returncode == 0
    (engine,) = ec.list_engines(engines, MODEL)
    side = ec.sidecar_path(engine)
    side.write_text(json.dumps({**json.loads(side.read_text()), "graph_sha256": "0" * 64}))
    r = _build_engine(libcuda, engines, "--verify")
    assert r.returncode == 1
    assert "the graph it was compiled from, is missing or changed: cannot verify" in r.stdout
    assert ec.list_engines(engines, MODEL) == [engine]  # not judged, so not moved


def test_an_int8_engine_keeps_its_graph_and_is_verified_against_it(
    libcuda: Path, tmp_path: Path, shared: Path
) -> None:
    crops = tmp_path / "crops"
    crops.mkdir()
    for f in sorted((shared / "train" / "dfdc" / "real").glob("*.jpg"))[:8]:
        shutil.copy(f, crops / f.name)
    engines = tmp_path / "engines"
    built = _build_engine(libcuda, engines, "--precision", "int8", "--calibration", str(crops))
    assert built.returncode == 0, built.stdout + built.stderr
    assert _files(engines) == ["int8.engine", "int8.json", "int8.onnx"]
    assert "vs ONNX Runtime CPU (INT8 Q/DQ graph): largest logit difference 0 " in built.stdout
    assert "vs the float32 graph (information): largest logit difference" in built.stdout
    verified = _build_engine(libcuda, engines, "--precision", "int8", "--verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "(INT8 Q/DQ graph): largest logit difference 0 " in verified.stdout
    (engine,) = ec.list_engines(engines, MODEL)
    engine.with_suffix(".onnx").unlink()
    missing = _build_engine(libcuda, engines, "--precision", "int8", "--verify")
    assert missing.returncode == 1
    assert f"{engine.stem}.onnx, the graph it was compiled from, is missing" in missing.stdout
