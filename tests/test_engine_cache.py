"""Engine file names, sidecars, and the one-line reasons an engine is not used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mesolive.backends import engine_cache as ec
from mesolive.backends.gpuinfo import fast_fp16, gpu_slug
from mesolive.backends.trt_build import BuildOptions
from mesolive.errors import EngineBuildError, EngineIncompatible

SHA = "1a2b3c4d" + "0" * 56
OTHER_SHA = "ffee0011" + "0" * 56
TRT = "10.8.0.43"
GPU = "NVIDIA GeForce RTX 4090"
CC = (8, 9)
TARGET = ec.Target("meso4-df", SHA, TRT, GPU, CC)


def _sidecar(**over: object) -> ec.Sidecar:
    fields: dict[str, object] = {
        "model": "meso4-df",
        "onnx_sha256": SHA,
        "trt_version": TRT,
        "gpu_name": GPU,
        "compute_capability": "8.9",
        "precision": "fp16",
        "profile": {"min": 1, "opt": 8, "max": 64},
        "build_time": "2025-01-01T00:00:00+00:00",
    }
    fields.update(over)
    return ec.Sidecar(**fields)  # type: ignore[arg-type]


def _engine(folder: Path, side: ec.Sidecar, name: str | None = None) -> Path:
    cc = tuple(int(p) for p in side.compute_capability.split("."))
    name = name or ec.engine_name(
        side.model, side.onnx_sha256, side.gpu_name, cc, side.trt_version, side.precision
    )
    path = folder / name
    ec.write_engine(path, b"plan bytes", side)
    return path


def test_engine_name_encodes_model_checksum_gpu_version_precision() -> None:
    name = ec.engine_name("meso4-df", SHA, GPU, CC, TRT, "fp16")
    assert name == "meso4-df.1a2b3c4d.rtx-4090-sm89.trt10.8.0.43.fp16.engine"
    assert ec.sidecar_path(Path(name)).name == name.removesuffix(".engine") + ".json"
    with pytest.raises(ValueError, match="precision"):
        ec.engine_name("meso4-df", SHA, GPU, CC, TRT, "bf16")


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("NVIDIA H100 80GB HBM3", "h100-80gb-hbm3"),
        ("Tesla T4", "tesla-t4"),
        ("NVIDIA RTX A6000", "rtx-a6000"),
        ("", "gpu"),
    ],
)
def test_gpu_slug(name: str, slug: str) -> None:
    assert gpu_slug(name) == slug


@pytest.mark.parametrize(
    ("cc", "fast"),
    [
        ((6, 1), False),
        ((5, 2), False),
        ((5, 3), True),
        ((6, 0), True),
        ((7, 5), True),
        ((8, 9), True),
        ((12, 0), True),
    ],
)
def test_fp16_default_follows_compute_capability(cc: tuple[int, int], fast: bool) -> None:
    assert fast_fp16(cc) is fast


def test_sidecar_round_trip(tmp_path: Path) -> None:
    side = _sidecar(calibration={"images": 300, "method": "percentile-99.99"})
    path = _engine(tmp_path, side)
    assert path.read_bytes() == b"plan bytes"
    back = ec.read_sidecar(path)
    assert back == side
    assert back.max_batch == 64
    data = json.loads(ec.sidecar_path(path).read_text())
    for key in (
        "model",
        "onnx_sha256",
        "trt_version",
        "gpu_name",
        "compute_capability",
        "precision",
        "profile",
        "build_time",
    ):
        assert key in data
    assert not list(tmp_path.glob(".*part"))  # atomic writes leave no temporaries


_BAD_PROFILE = json.dumps(
    {**_sidecar(profile={}).__dict__, "schema": 1, "profile": "PROFILE"}
).replace('"PROFILE"', "PROFILE")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"schema": 99}', "schema 99"),
        ('{"schema": 1, "model": "meso4-df"}', "lacks onnx_sha256"),
        # a profile that is no batch range made `doctor` and engine loading an internal error
        (_BAD_PROFILE.replace("PROFILE", "[1, 8, 64]"), "profile is not a batch range"),
        (_BAD_PROFILE.replace("PROFILE", '{"max": "64"}'), "profile is not a batch range"),
    ],
)
def test_bad_sidecars_are_reported_not_raised(tmp_path: Path, text: str, why: str) -> None:
    engine = tmp_path / ec.engine_name("meso4-df", SHA, GPU, CC, TRT, "fp16")
    engine.write_bytes(b"x")
    ec.sidecar_path(engine).write_text(text)
    entry = ec.check(engine, TARGET)
    assert not entry.matches
    assert why in entry.problem


def test_missing_sidecar(tmp_path: Path) -> None:
    engine = tmp_path / "meso4-df.x.engine"
    engine.write_bytes(b"x")
    assert "no sidecar meso4-df.x.json" in ec.check(engine, TARGET).problem


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({}, ""),
        ({"model": "meso4-f2f"}, "built for model meso4-f2f, not meso4-df"),
        (
            {"onnx_sha256": OTHER_SHA},
            "built from a different ONNX graph (sha256 ffee0011, this model's is 1a2b3c4d): "
            "the weights or the converter changed",
        ),
        (
            {"trt_version": "10.7.0.23"},
            "built with TensorRT 10.7.0.23, this is TensorRT 10.8.0.43 "
            "(engines do not move across TensorRT versions)",
        ),
        (
            {"compute_capability": "8.6", "gpu_name": "NVIDIA GeForce RTX 3090"},
            "built for compute capability 8.6 (NVIDIA GeForce RTX 3090), this GPU is 8.9 "
            "(NVIDIA GeForce RTX 4090) (engines do not move across GPU architectures)",
        ),
        ({"gpu_name": "NVIDIA RTX 4000 Ada Generation"}, ""),  # same architecture: allowed
    ],
)
def test_mismatch_messages(over: dict[str, str], expected: str) -> None:
    assert ec.mismatch(_sidecar(**over), TARGET) == expected


def test_no_engine_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(EngineIncompatible) as info:
        ec.find_matching(tmp_path, TARGET)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg == (
        f"no TensorRT engine for meso4-df in {tmp_path}; build one: mesolive build-engine "
        f"--model meso4-df --precision fp16 --engine-dir {tmp_path}"
    )


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"onnx_sha256": OTHER_SHA}, "built from a different ONNX graph"),
        ({"trt_version": "10.7.0.23"}, "built with TensorRT 10.7.0.23"),
        ({"compute_capability": "8.6"}, "built for compute capability 8.6"),
    ],
)
def test_each_mismatch_gives_one_line_with_the_rebuild_command(
    tmp_path: Path, over: dict[str, str], why: str
) -> None:
    engine = _engine(tmp_path, _sidecar(**over, profile={"min": 1, "opt": 4, "max": 32}))
    with pytest.raises(EngineIncompatible) as info:
        ec.find_matching(tmp_path, TARGET)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{engine}: {why}")
    # The rebuilt engine gets another name, so no --force; the profile is kept.
    assert msg.endswith(
        "; rebuild: mesolive build-engine --model meso4-df --precision fp16 --max-batch 32 "
        f"--opt-batch 4 --engine-dir {tmp_path}"
    )


def test_unreadable_sidecar_of_the_same_name_needs_force(tmp_path: Path) -> None:
    engine = tmp_path / ec.engine_name("meso4-df", SHA, GPU, CC, TRT, "int8")
    engine.write_bytes(b"x")
    ec.sidecar_path(engine).write_text("{")
    with pytest.raises(EngineIncompatible, match=r"--calibration FOLDER .*--force$"):
        ec.find_matching(tmp_path, TARGET)


def test_default_engine_dir_is_not_repeated_in_the_command(tmp_path: Path) -> None:
    from mesolive import paths

    cmd = ec.rebuild_command("meso4-df", "fp32", engine_dir=paths.engine_dir())
    assert cmd == "mesolive build-engine --model meso4-df --precision fp32"


def test_newest_matching_engine_wins_and_others_are_ignored(tmp_path: Path) -> None:
    _engine(tmp_path, _sidecar(trt_version="9.0"), name="meso4-df.old.engine")
    _engine(tmp_path, _sidecar(precision="fp32", build_time="2025-01-01T00:00:00+00:00"))
    newest = _engine(tmp_path, _sidecar(precision="fp16", build_time="2025-02-01T00:00:00+00:00"))
    _engine(tmp_path, _sidecar(model="meso4-f2f"))  # another model: not even considered
    path, side = ec.find_matching(tmp_path, TARGET)
    assert path == newest and side.precision == "fp16"


def test_several_bad_engines_are_counted(tmp_path: Path) -> None:
    _engine(tmp_path, _sidecar(trt_version="9.0"), name="meso4-df.a.engine")
    _engine(tmp_path, _sidecar(trt_version="9.1"), name="meso4-df.b.engine")
    with pytest.raises(EngineIncompatible, match=r"\(and 1 more that do not match\)"):
        ec.find_matching(tmp_path, TARGET)


def _names(folder: Path) -> list[str]:
    return sorted(
        p.name.replace("meso4-df.1a2b3c4d.rtx-4090-sm89.trt10.8.0.43.", "*.")
        for p in folder.iterdir()
    )


def test_a_verified_plan_is_installed_and_its_failed_files_go(tmp_path: Path) -> None:
    engine = tmp_path / ec.engine_name("meso4-df", SHA, GPU, CC, TRT, "int8")
    seen: list[tuple[str, ...]] = []

    def verify(plan_file: Path) -> bool:
        seen.append((plan_file.name, plan_file.read_bytes().decode()))
        assert _names(tmp_path) == [
            "*.int8.engine.failed",
            "*.int8.engine.failed.json",
            "*.int8.engine.failed.onnx",
        ]
        return True

    assert ec.install_verified(
        engine, b"new plan", _sidecar(precision="int8"), verify, {".onnx": b"qdq"}
    )
    assert seen == [(engine.name + ".failed", "new plan")]
    assert _names(tmp_path) == ["*.int8.engine", "*.int8.json", "*.int8.onnx"]
    assert engine.read_bytes() == b"new plan" and engine.with_suffix(".onnx").read_bytes() == b"qdq"
    assert ec.read_sidecar(engine).precision == "int8"


def test_a_plan_that_fails_stays_failed_and_the_engine_there_is_kept(tmp_path: Path) -> None:
    engine = _engine(tmp_path, _sidecar())  # a good engine: "plan bytes"
    assert not ec.install_verified(engine, b"bad plan", _sidecar(workspace_mb=7), lambda p: False)
    assert engine.read_bytes() == b"plan bytes"
    assert ec.read_sidecar(engine).workspace_mb == 0
    failed = ec.failed_path(engine)
    assert failed.read_bytes() == b"bad plan"
    assert json.loads(Path(f"{failed}.json").read_text())["workspace_mb"] == 7
    assert ec.list_engines(tmp_path) == [engine]  # a .failed plan is never loaded


def test_retire_moves_an_engine_and_its_files_to_failed(tmp_path: Path) -> None:
    engine = _engine(tmp_path, _sidecar(precision="int8"))
    engine.with_suffix(".onnx").write_bytes(b"qdq")
    failed = ec.retire(engine)
    assert failed == ec.failed_path(engine)
    assert _names(tmp_path) == [
        "*.int8.engine.failed",
        "*.int8.engine.failed.json",
        "*.int8.engine.failed.onnx",
    ]
    assert ec.list_engines(tmp_path) == []
    other = _engine(tmp_path, _sidecar())  # no INT8 graph: only what is there moves
    ec.retire(other)
    assert ec.list_engines(tmp_path) == []


def test_timing_cache_is_per_gpu_and_version(tmp_path: Path) -> None:
    a = ec.timing_cache_path(tmp_path, GPU, CC, TRT)
    assert a.name == "timing.rtx-4090-sm89.trt10.8.0.43.cache"
    assert a != ec.timing_cache_path(tmp_path, GPU, CC, "10.9.0.34")


def test_timing_cache_lock_times_out_with_one_line(tmp_path: Path) -> None:
    from filelock import FileLock

    cache = tmp_path / "timing.cache"
    with ec.locked(cache):
        pass  # free again
    held = FileLock(str(cache) + ".lock")
    with held, pytest.raises(EngineBuildError, match=r"another build holds its lock"):
        with ec.locked(cache, timeout=0.1):
            pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch": 0}, "--max-batch must be at least 1"),
        ({"max_batch": 8, "opt_batch": 9}, "--opt-batch must be between 1 and --max-batch"),
        ({"workspace_mb": 4}, "--workspace must be at least 16 MB"),
    ],
)
def test_build_options_are_checked(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BuildOptions(**kwargs).validate()


def test_profile_shapes() -> None:
    assert BuildOptions(max_batch=32, opt_batch=4).shapes() == (
        (1, 256, 256, 3),
        (4, 256, 256, 3),
        (32, 256, 256, 3),
    )
