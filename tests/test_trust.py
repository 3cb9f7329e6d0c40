"""Hostile and broken input: environment values, model names, the user registry,
corrupt weights and tampered cached graphs."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mesolive import env
from mesolive.errors import InputError, ModelError
from mesolive.models import registry
from mesolive.models.keras_h5 import load_keras_weights
from mesolive.models.onnx_graph import build_onnx

from .conftest import MODELS, mesolive

H5 = MODELS / "Meso4_DF.h5"


@pytest.fixture
def warnings_of(warnings_from: Callable[[str], list[str]]) -> list[str]:
    return warnings_from("mesolive")


# -- environment values ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" On ", True),
        ("", False),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_env_flag_accepts_the_usual_spellings(value: str, expected: bool) -> None:
    assert env.env_flag("MESOLIVE_OFFLINE", {"MESOLIVE_OFFLINE": value}) is expected


def test_env_flag_refuses_anything_else_in_one_line() -> None:
    with pytest.raises(InputError, match=r"^MESOLIVE_OFFLINE=maybe: expected one of 1, true"):
        env.env_flag("MESOLIVE_OFFLINE", {"MESOLIVE_OFFLINE": "maybe"})
    assert env.env_flag("MESOLIVE_OFFLINE", {}) is False


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_env_int_names_variable_and_bound(value: str) -> None:
    with pytest.raises(InputError) as info:
        env.env_int("MESOLIVE_ORT_THREADS", 0, minimum=1, env={"MESOLIVE_ORT_THREADS": value})
    assert str(info.value) == f"MESOLIVE_ORT_THREADS={value}: expected a whole number ≥ 1"
    assert env.env_int("MESOLIVE_ORT_THREADS", 7, 1, {"MESOLIVE_ORT_THREADS": " 3 "}) == 3
    assert env.env_int("MESOLIVE_ORT_THREADS", 7, 1, {}) == 7


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "-1"])
def test_env_float_refuses_non_numbers(value: str) -> None:
    with pytest.raises(InputError, match=rf"^X={value}: expected a number ≥ 0$"):
        env.env_float("X", 1.0, minimum=0.0, env={"X": value})
    assert env.env_float("X", 1.0, minimum=0.0, env={"X": "2.5"}) == 2.5


def test_env_url_wants_a_scheme_it_can_fetch() -> None:
    assert env.env_url("B", {"B": "https://mirror.example/m/"}) == "https://mirror.example/m"
    for bad in ("mirror.example/m", "ftp://mirror.example", "https://"):
        with pytest.raises(InputError, match=r"^B=.*: expected a URL starting with http://"):
            env.env_url("B", {"B": bad})


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("MESOLIVE_OFFLINE", "maybe", "expected one of"),
        ("MESOLIVE_DOWNLOAD_BASE", "ftp://x", "expected a URL"),
        ("MESOLIVE_CALIBRATION", "/nonexistent", "not a folder of face crops"),
    ],
)
def test_settings_read_late_are_checked_at_every_start(name: str, value: str, said: str) -> None:
    """Read only when a download came (or, for the calibration folder, when --precision
    auto judged bfloat16 and quietly ran float32), a bad value went unsaid."""
    out = mesolive("models", "list", env={name: value})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"mesolive: error: {name}={value}: {said}")
    assert out.stderr.count("\n") == 1


def test_offline_true_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESOLIVE_MODEL_DIR")
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MESOLIVE_DOWNLOAD_BASE", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("MESOLIVE_OFFLINE", "true")
    with pytest.raises(ModelError, match="MESOLIVE_OFFLINE is on"):
        registry.weights_path(registry.get_spec("meso4-df"), progress=False)


def test_bad_thread_count_is_not_reported_as_a_broken_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mesolive.backends.onnxruntime import OnnxRuntimeRunner

    graph = registry.onnx_path(registry.get_spec("meso4-df"), progress=False)
    monkeypatch.setenv("MESOLIVE_ORT_THREADS", "abc")
    with pytest.raises(InputError) as info:
        OnnxRuntimeRunner(graph)
    assert str(info.value) == "MESOLIVE_ORT_THREADS=abc: expected a whole number ≥ 1"


# -- model names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../../../x", "a/b", "..", "a..b", ".hidden", "-x", "", "x" * 65, "naïve", "a b"],
)
def test_unsafe_model_names_are_refused(name: str) -> None:
    with pytest.raises(ModelError, match="use 1-64 letters") as info:
        registry.get_spec(name)
    assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match="use 1-64 letters"):
        registry.get_spec(f"meso4-df+{name}")


def test_safe_names_pass() -> None:
    for name in ("meso4-df", "A.b_c-1", "x" * 64):
        assert registry.check_model_name(name) == name


def test_registering_an_unsafe_name_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    spec = registry.ModelSpec("../evil", "meso4", "custom", "evil.h5", "0" * 64, user=True)
    with pytest.raises(ModelError, match=r"'\.\./evil'"):
        registry.register_user_model(spec)
    assert not tmp_path.exists() or not any(tmp_path.rglob("*"))


def test_train_name_is_checked_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mesolive.train.trainer import TrainConfig, Trainer

    cache = tmp_path / "cache"
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(cache))
    trainer = Trainer(TrainConfig(name="../../../x", data=(str(MODELS),)), progress=False)
    with pytest.raises(ModelError, match=r"^--name '../../../x': use 1-64 letters"):
        trainer.run()
    assert not cache.exists()


def test_ship_model_refuses_an_unsafe_name() -> None:
    import subprocess
    import sys

    from .conftest import ROOT

    manifest = ROOT / "resources" / "models.json"
    before = manifest.read_bytes()
    proc = subprocess.run(
        [
            *(sys.executable, str(ROOT / "scripts" / "ship_model.py"), "meso4-df"),
            *("--as", "../x", "--reason", "r", "--description", "d"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "ship_model: error: --as '../x': use 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit (no '..')"
    )
    assert manifest.read_bytes() == before


# -- the user registry ----------------------------------------------------------------


def _user_entry(models: Path, name: str = "mine") -> dict:
    shutil.copy(H5, models / f"{name}.h5")
    return {
        "name": name,
        "arch": "meso4",
        "forgery": "custom",
        "file": f"{name}.h5",
        "sha256": registry.get_spec("meso4-df").sha256,
    }


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    models = tmp_path / "models"
    models.mkdir()
    return models


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("[]", "not a user model registry"),
        ('"models"', "not a user model registry"),
        ('{"models": {"a": 1}}', "not a user model registry"),
        ("{not json", "unreadable user model registry"),
        (b"\xff\xfe{}", "unreadable user model registry"),
    ],
)
def test_a_malformed_user_registry_leaves_the_builtin_models_working(
    user_dir: Path, warnings_of: list[str], content: str | bytes, complaint: str
) -> None:
    path = user_dir / "user_models.json"
    raw = content if isinstance(content, bytes) else content.encode()
    path.write_bytes(raw)
    names = [s.name for s in registry.list_specs()]
    assert "meso4-df" in names and not [s for s in registry.list_specs() if s.user]
    assert registry.get_spec("meso4-df").name == "meso4-df"
    assert any(str(path) in w and complaint in w for w in warnings_of), warnings_of
    assert path.read_bytes() == raw  # never rewritten behind the user's back


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"name": None}, "lacks name"),
        ({"sha256": None}, "lacks sha256"),
        ({"name": "../../x"}, "model name '../../x': use 1-64"),
        ({"file": "../../etc/passwd"}, "file '../../etc/passwd': not a plain file name"),
        ({"card": "/etc/passwd"}, "card file '/etc/passwd': not a plain file name"),
        ({"arch": "resnet"}, "unknown arch 'resnet'"),
        ({"sha256": "abc"}, "sha256 is not 64"),
        ({"union": "meso4-df"}, "union is not a list"),
        ({"union": ["../x"]}, "union member '../x'"),
        ({"preprocess": [1, 2]}, "preprocessing block is not an object"),
        ({"preprocess": {"crop": "authors"}}, "preprocessing field 'scale' is missing"),
        ({"name": "meso4-df"}, "model 'meso4-df' is already defined"),
    ],
)
def test_a_bad_user_entry_is_ignored_with_a_warning(
    user_dir: Path, warnings_of: list[str], change: dict, complaint: str
) -> None:
    good = _user_entry(user_dir, "good")
    bad = {k: v for k, v in {**_user_entry(user_dir, "bad"), **change}.items() if v is not None}
    path = user_dir / "user_models.json"
    path.write_text(json.dumps({"schema": 1, "models": [good, bad, 42]}))
    users = [s.name for s in registry.list_specs() if s.user]
    assert users == ["good"]
    assert not registry.get_spec("meso4-df").user  # never shadowed by a user entry
    assert any(f"{path} entry 2" in w and complaint in w for w in warnings_of), warnings_of
    assert any(f"{path} entry 3: a model entry is int" in w for w in warnings_of)
    if "name" not in change:
        with pytest.raises(ModelError, match=rf"^{path} entry 2: .*{complaint}"):
            registry.get_spec("bad")


def test_a_user_registry_entry_of_a_list_does_not_break_any_verb(
    user_dir: Path, shared: Path
) -> None:
    (user_dir / "user_models.json").write_text("[]")
    proc = mesolive("models", "list", env={"MESOLIVE_CACHE_DIR": str(user_dir.parent)})
    assert proc.returncode == 0
    assert "not a user model registry" in proc.stderr and "meso4-df" in proc.stdout


def test_registering_next_to_a_broken_registry_keeps_a_copy(
    user_dir: Path, warnings_of: list[str]
) -> None:
    path = user_dir / "user_models.json"
    good = _user_entry(user_dir, "good")
    original = json.dumps({"schema": 1, "models": [good, {"name": "half"}]})
    path.write_text(original)
    new = registry.ModelSpec("fresh", "meso4", "custom", "good.h5", good["sha256"], user=True)
    registry.register_user_model(new)
    backups = list(user_dir.glob("user_models.json.broken-*"))
    assert len(backups) == 1 and backups[0].read_text() == original
    assert [s.name for s in registry.list_specs() if s.user] == ["good", "fresh"]
    assert any(str(backups[0]) in w for w in warnings_of)


# -- corrupt weights files ------------------------------------------------------------


def _corrupt_copies(folder: Path, n: int = 45, seed: int = 13) -> list[Path]:
    """``n`` damaged copies of Meso4_DF.h5: truncations and bursts of bit flips."""
    rng = random.Random(seed)
    data = H5.read_bytes()
    out = []
    for i in range(n):
        buf = bytearray(data)
        if i % 3 == 0:
            buf = buf[: rng.randrange(0, len(data))]
        else:
            # flips in the first 4 KB hit HDF5 metadata (superblock, B-trees, headers)
            span = 4096 if i % 3 == 1 else len(buf)
            for _ in range(rng.randint(1, 24)):
                buf[rng.randrange(span)] ^= 1 << rng.randrange(8)
        path = folder / f"corrupt_{i:02d}.h5"
        path.write_bytes(bytes(buf))
        out.append(path)
    return out


def test_corrupt_weights_load_right_or_fail_as_model_error(tmp_path: Path) -> None:
    refused: list[str] = []
    for path in _corrupt_copies(tmp_path):
        try:
            w = load_keras_weights(path, expect="meso4")
        except ModelError as e:  # anything else escapes and fails the test
            refused.append(f"{path}|{e}")
            continue
        assert w.arch.name == "meso4"
        build_onnx(w)  # what loads also converts
    assert len(refused) >= 15  # the damage was real
    for line in refused:
        path, message = line.split("|", 1)
        assert path in message and "\n" not in message


def test_a_foreign_hdf5_file_is_not_a_mesonet(tmp_path: Path) -> None:
    import h5py
    import numpy as np

    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv2d_1", b"dense_1"]
        f["conv2d_1"] = np.zeros(3)  # a dataset where a layer group belongs
    with pytest.raises(ModelError, match=rf"^not a MesoNet Keras \.h5 file: {path} \("):
        load_keras_weights(path)


# -- cached ONNX graphs ---------------------------------------------------------------


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_a_swapped_cached_graph_is_rebuilt(fresh_cache: Path, warnings_of: list[str]) -> None:
    df = registry.onnx_path(registry.get_spec("meso4-df"), progress=False)
    good = df.read_bytes()
    f2f = registry.onnx_path(registry.get_spec("meso4-f2f"), progress=False)
    df.write_bytes(f2f.read_bytes())  # meso4-f2f's graph under meso4-df's name
    assert registry.onnx_path(registry.get_spec("meso4-df"), progress=False) == df
    assert df.read_bytes() == good
    assert any(str(df) in w and "rebuilding" in w for w in warnings_of), warnings_of


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no-record", "bad-record"])
def test_a_damaged_cached_graph_is_rebuilt(
    fresh_cache: Path, warnings_of: list[str], damage: str
) -> None:
    from mesolive.backends.onnxruntime import OnnxRuntimeRunner

    spec = registry.get_spec("meso4-df")
    graph = registry.onnx_path(spec, progress=False)
    good = graph.read_bytes()
    record = registry.graph_record_path(graph)
    if damage == "truncate":
        graph.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        graph.write_bytes(random.Random(0).randbytes(len(good)))
    elif damage == "no-record":
        record.unlink()
    else:
        record.write_bytes(b"\xff\xfe")
    assert registry.onnx_path(spec, progress=False).read_bytes() == good
    assert registry.graph_record_path(graph).is_file()
    assert len(warnings_of) == 1 and "rebuilding" in warnings_of[0]
    with OnnxRuntimeRunner(graph) as runner:
        assert runner.output_names


@pytest.mark.parametrize("model_dir", [True, False], ids=["convert", "download"])
def test_a_cache_that_cannot_be_written_is_one_line(tmp_path: Path, model_dir: bool) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {"MESOLIVE_CACHE_DIR": str(blocker / "cache"), "MESOLIVE_OFFLINE": "0"}
    if not model_dir:
        env["MESOLIVE_MODEL_DIR"] = ""
        env["MESOLIVE_DOWNLOAD_BASE"] = "http://127.0.0.1:9"
    face = MODELS.parent / "samples" / "faces" / "real" / "real00240.jpg"
    proc = mesolive("classify", str(face), "--model", "meso4-df", env=env)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith("cannot write (Not a directory); point MESOLIVE_CACHE_DIR at a writable folder")
    ), proc.stderr
