"""``mesolive doctor``: its report and exit code, here (no GPU) and with stand-ins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mesolive.backends import cpuinfo
from mesolive.backends import engine_cache as ec
from mesolive.backends.openvino import openvino_version
from mesolive.cli import main
from mesolive.models.registry import default_model

from .gpu_fakes import broken_package, fake_libcuda, run_mesolive, stub_package, without_gpu_stack

MODEL = default_model()


def _rows(text: str) -> dict[str, str]:
    """First-column label -> rest of the line (labels are padded to 14 characters)."""
    return {ln[:14].strip(): ln[14:] for ln in text.splitlines() if not ln.startswith(" ")}


@without_gpu_stack
def test_doctor_on_a_cpu_machine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows["GPU"] == "none: no NVIDIA driver (libcuda.so.1 not found)"
    assert rows["driver"] == "none"
    assert rows["TensorRT"] == "not installed"
    assert rows["pycuda"] == "not installed"
    assert "CPUExecutionProvider" in rows["ONNX Runtime"]
    assert rows["engines"].endswith(": none")
    assert rows["auto backend"].startswith("CPU (TensorRT not used: no NVIDIA driver")
    assert rows["CPU path"].startswith(f"ok: {MODEL} scored 8 faces in ")
    vnni = cpuinfo.int8_flags()  # this machine's, read from /proc/cpuinfo
    assert rows["INT8 (CPU)"].startswith(f"VNNI/AMX: {', '.join(vnni)};" if vnni else "no VNNI")
    assert "pip install 'mesolive[gpu]'" in rows["TensorRT path"]


@pytest.fixture
def fake_cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A /proc/cpuinfo stand-in, first listing AVX-512 without VNNI, AMX or BF16; no calibration."""
    fake = tmp_path / "cpuinfo"
    monkeypatch.setattr(cpuinfo, "CPUINFO", fake)
    monkeypatch.delenv("MESOLIVE_CALIBRATION", raising=False)
    fake.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    return fake


@without_gpu_stack
def test_doctor_says_whether_int8_runs_on_this_cpu(
    fake_cpuinfo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["doctor"]) == 0
    assert _rows(capsys.readouterr().out)["INT8 (CPU)"] == (
        "no VNNI/AMX (none of amx_int8, avx512_vnni, avx_vnni): --precision auto runs fp32"
    )
    fake_cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    monkeypatch.setenv("MESOLIVE_CALIBRATION", str(tmp_path))
    assert main(["doctor"]) == 0
    assert _rows(capsys.readouterr().out)["INT8 (CPU)"] == (
        f"VNNI/AMX: avx512_vnni; INT8 runs here where faster (calibrates on {tmp_path})"
    )
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cpu_int8"] == {
        "flags": ["avx512_vnni"],
        "calibration": str(tmp_path),
        "calibration_problem": "",
    }
    # a folder that is not there stops every other command; doctor says so and goes on
    monkeypatch.setenv("MESOLIVE_CALIBRATION", str(tmp_path / "nowhere"))
    assert main(["doctor"]) == 0
    assert _rows(capsys.readouterr().out)["INT8 (CPU)"] == (
        f"MESOLIVE_CALIBRATION={tmp_path / 'nowhere'}: not a folder of face crops: every "
        "command but doctor stops on it"
    )


@without_gpu_stack
def test_doctor_says_whether_bf16_runs_on_this_cpu(
    fake_cpuinfo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["doctor"]) == 0
    assert _rows(capsys.readouterr().out)["bf16 (CPU)"] == (
        "no AMX/AVX-512 BF16 (none of amx_bf16, avx512_bf16): not run here"
    )
    fake_cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16\n")
    monkeypatch.setenv("MESOLIVE_CALIBRATION", str(tmp_path))
    version = openvino_version()
    assert main(["doctor"]) == 0
    assert _rows(capsys.readouterr().out)["bf16 (CPU)"] == (
        f"AMX/AVX-512 BF16: amx_bf16, avx512_bf16; OpenVINO {version} runs it here where "
        f"faster (judged on {tmp_path})"
        if version
        else "AMX/AVX-512 BF16: amx_bf16, avx512_bf16; pip install 'mesolive[openvino]' to run it"
    )
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cpu_bf16"] == {"flags": ["amx_bf16", "avx512_bf16"], "openvino": version}


@without_gpu_stack
def test_doctor_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gpus"] == []
    assert report["tensorrt"] == "not installed"
    assert report["cpu_path"]["ok"] is True
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]


@without_gpu_stack
def test_doctor_lists_engines_and_why_they_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    side = ec.Sidecar(
        "meso4-df",
        "ab" * 32,
        "10.8.0.43",
        "NVIDIA H100 80GB HBM3",
        "9.0",
        "fp16",
        {"min": 1, "opt": 8, "max": 64},
    )
    name = ec.engine_name("meso4-df", side.onnx_sha256, side.gpu_name, (9, 0), "10.8.0.43", "fp16")
    ec.write_engine(tmp_path / name, b"plan", side)
    (tmp_path / "meso4-f2f.orphan.engine").write_bytes(b"no sidecar")
    assert main(["doctor", "--engine-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"  {name} [fp16, batch 1..64]: cannot run here: no NVIDIA driver" in out
    assert "  meso4-f2f.orphan.engine: unreadable sidecar: no sidecar meso4-f2f.orphan.json" in out


def test_doctor_downloads_nothing(tmp_path: Path) -> None:
    env = {"MESOLIVE_MODEL_DIR": "", "MESOLIVE_CACHE_DIR": str(tmp_path), "MESOLIVE_OFFLINE": "1"}
    r = run_mesolive(["doctor"], env=env)
    # the default ships inside the package: it runs, and nothing is fetched
    assert f"ok: {MODEL} scored 8 faces" in r.stdout
    assert not (tmp_path / "models").exists()
    # but offline, with no detector cached, no scan can run: it said "ok" all the same
    assert r.returncode == 1, r.stderr
    assert _rows(r.stdout)["detector"].startswith(
        "MISSING: det_500m.onnx is not cached and MESOLIVE_OFFLINE is on: scans fail"
    )
    online = run_mesolive(["doctor"], env={**env, "MESOLIVE_OFFLINE": "0"})
    assert online.returncode == 0, online.stderr
    assert _rows(online.stdout)["detector"] == (
        "ok: downloaded on first use (det_500m.onnx of insightface's buffalo_sc pack)"
    )
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("threads", ["0", "100000"])
def test_doctor_refuses_a_thread_count_as_the_other_verbs_do(
    threads: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """It ran ONNX Runtime with any --threads (100,000 hangs it; 0 and negatives were
    taken as the default) where every other verb refuses the count in one line."""
    assert main(["doctor", "--threads", threads]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith(f"mesolive: error: --threads {threads}: ")
    assert out.err.count("\n") == 1, out.err


def test_an_engine_folder_that_is_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It listed the file's engines as "none", as if it were an empty folder."""
    afile = tmp_path / "engines.plan"
    afile.write_bytes(b"")
    assert main(["doctor", "--engine-dir", str(afile)]) == 2
    out = capsys.readouterr()
    assert out.err == f"mesolive: error: --engine-dir {afile}: not a folder\n"
    monkeypatch.setenv("MESOLIVE_ENGINE_DIR", str(afile))  # doctor skips the start's checks
    assert main(["doctor"]) == 2
    out = capsys.readouterr()
    assert out.err == f"mesolive: error: MESOLIVE_ENGINE_DIR={afile}: not a folder\n"


def test_doctor_fails_when_the_cpu_path_does_not_work(tmp_path: Path) -> None:
    fakes = broken_package(tmp_path, "onnxruntime", "libonnxruntime.so.1")
    r = run_mesolive(["doctor"], pythonpath=[fakes])
    assert r.returncode == 1
    rows = _rows(r.stdout)
    assert rows["ONNX Runtime"].startswith("installed but does not load: libonnxruntime.so.1")
    assert rows["CPU path"].startswith("FAILED: ImportError: libonnxruntime.so.1")
    assert "Traceback" not in r.stderr


def test_doctor_with_a_gpu_stack_checks_each_engine(tmp_path: Path) -> None:
    libcuda = fake_libcuda(tmp_path / "lib")
    if libcuda is None:
        pytest.skip("needs a C compiler (cc) on Linux to build the stand-in libcuda.so.1")
    stubs = stub_package(tmp_path / "py", "tensorrt", "10.8.0.43")
    stub_package(stubs, "pycuda", "2024.1.2", submodules=("driver",))
    from mesolive.models.download import sha256_file
    from mesolive.models.registry import get_spec, onnx_path

    sha = sha256_file(onnx_path(get_spec(MODEL), "fp32"))
    gpu = "NVIDIA Fake GPU 9000"
    engines = tmp_path / "engines"
    good = ec.Sidecar(MODEL, sha, "10.8.0.43", gpu, "8.9", "fp16", {"min": 1, "opt": 8, "max": 64})
    good_name = ec.engine_name(MODEL, sha, gpu, (8, 9), "10.8.0.43", "fp16")
    ec.write_engine(engines / good_name, b"plan", good)
    old = ec.Sidecar(
        MODEL,
        sha,
        "10.8.0.43",
        "NVIDIA GeForce RTX 3090",
        "8.6",
        "fp32",
        {"min": 1, "opt": 8, "max": 16},
    )
    old_name = ec.engine_name(MODEL, sha, old.gpu_name, (8, 6), "10.8.0.43", "fp32")
    ec.write_engine(engines / old_name, b"plan", old)

    r = run_mesolive(["doctor", "--engine-dir", str(engines)], pythonpath=[stubs], libdir=libcuda)
    assert r.returncode == 0, r.stderr
    rows = _rows(r.stdout)
    assert rows["GPU 0"] == "NVIDIA Fake GPU 9000, compute capability 8.9, 24.0 GiB"
    assert rows["driver"].endswith("(supports CUDA 12.4)")
    assert rows["TensorRT"] == "10.8.0.43"
    assert rows["pycuda"] == "2024.1.2"
    assert rows["TensorRT path"] == "ready"
    assert rows["auto backend"] == f"TensorRT (a matching {MODEL} engine)"
    assert f"  {good_name} [fp16, batch 1..64]: matches this machine" in r.stdout
    assert (
        f"  {old_name} [fp32, batch 1..16]: built for compute capability 8.6 "
        "(NVIDIA GeForce RTX 3090), this GPU is 8.9 (NVIDIA Fake GPU 9000)" in r.stdout
    )
    assert (
        f"    rebuild: mesolive build-engine --model {MODEL} --precision fp32 --max-batch 16 "
        f"--engine-dir {engines}" in r.stdout
    )


@without_gpu_stack
def test_doctor_says_whether_the_c_kernel_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mesolive.backends.native_build import library_path

    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    assert main(["doctor"]) == 0
    assert _rows(capsys.readouterr().out)["C kernel"] == (
        f"built, {library_path()[0]}: MesoInception-4 runs its inception blocks there where faster"
    )
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert main(["doctor", "--json"]) == 0  # the CPU path works without it
    report = json.loads(capsys.readouterr().out)
    assert report["cpu_kernel"]["library"] == ""
    assert report["cpu_kernel"]["problem"].startswith(
        f"the C compiler {tmp_path / 'no-such-cc'} does not run ("
    )
