"""``mesolive build-engine`` where it cannot build: one line, exit code 2, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mesolive.cli import main
from mesolive.commands.build_engine import load_faces

from .gpu_fakes import run_mesolive, without_gpu_stack


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
