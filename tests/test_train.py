"""Training: the torch mirror is exact, and a short real run registers a usable model."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the [train] extra (torch)")

from mesolive.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from mesolive.errors import InputError  # noqa: E402
from mesolive.models.keras_h5 import load_keras_weights  # noqa: E402
from mesolive.models.onnx_graph import build_onnx  # noqa: E402
from mesolive.train.h5_writer import write_keras_h5  # noqa: E402
from mesolive.train.torch_model import MesoNetTorch  # noqa: E402

from .conftest import (  # noqa: E402
    H5_OF,
    MODEL_NAMES,
    MODELS,
    ROOT,
    mesolive,
    nchw,
    start_mesolive,
)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_torch_module_matches_keras_golden(name: str, golden: dict[str, np.ndarray]) -> None:
    w = load_keras_weights(MODELS / f"{H5_OF[name]}.h5")
    model = MesoNetTorch(w.arch).load_meso_weights(w).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(nchw(golden["images_u8"]))).numpy()
    assert np.abs(logits - golden[f"{H5_OF[name]}_logit"]).max() < 1e-4


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_exported_onnx_matches_torch(
    name: str, golden: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """Torch → Keras-layout .h5 → the shared ONNX builder, within 1e-5.

    Float32 sums in a different order differ by a few ulps of the largest
    intermediate values; MesoInception's logits reach |34| (one ulp: 4e-6) and
    a row near 0 inherits that absolute error. So the bound is 1e-5 times
    max(1, largest |logit| of the batch): absolute 1e-5 for Meso-4's logits.
    """
    w = load_keras_weights(MODELS / f"{H5_OF[name]}.h5")
    model = MesoNetTorch(w.arch).load_meso_weights(w).eval()
    # perturb so the test also covers weights the authors never shipped
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 0.05 * torch.randn_like(p))
        ref = model(torch.from_numpy(nchw(golden["images_u8"]))).numpy()
    h5 = write_keras_h5(model.to_meso_weights(), tmp_path / "m.h5")
    back = load_keras_weights(h5, expect=w.arch.name)
    with OnnxRuntimeRunner(build_onnx(back).SerializeToString()) as runner:
        logits = runner.infer({"input": nchw(golden["images_u8"])})["logit"][:, 0]
    assert np.abs(logits - ref).max() < 1e-5 * max(1.0, float(np.abs(ref).max()))


@pytest.fixture(scope="module")
def small_data(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 real and 60 fake DFDC training crops with their labels (links, not copies)."""
    root = tmp_path_factory.mktemp("small")
    src = shared / "train" / "dfdc"
    lines = (src / "labels.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    keep = [r for r in rows if r.split(",")[1] == "real"][:60]
    keep += [r for r in rows if r.split(",")[1] == "fake"][:60]
    for r in keep:
        f = r.split(",")[0]
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).symlink_to(src / f)
    (root / "labels.csv").write_text("\n".join([header, *keep]) + "\n")
    return root


TRAIN = ("--arch", "meso4", "--init", "meso4-df", "--batch", "20", "--val-split", "0.25")


def test_train_register_and_use(small_data: Path, shared: Path, tmp_path: Path) -> None:
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path)}
    out = mesolive(
        "train",
        str(small_data),
        "--name",
        "tiny",
        "--epochs",
        "1",
        "--self-blend",
        "0.5",
        "--blend-style",
        "inswap",
        "--ema",
        "0.95",
        "--val-sizes",
        "96",
        "--balance-sources",
        *TRAIN,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "validation AUC" in out.stdout
    card = json.loads((tmp_path / "models" / "tiny.card.json").read_text())
    assert card["commands"] == ["mesolive " + " ".join(out.args[3:])]  # how to redo it
    assert card["recipe"]["self_blend"] == 0.5
    assert card["recipe"]["blend_style"] == "inswap"
    assert card["recipe"]["ema"] == 0.95
    assert card["recipe"]["val_sizes"] == [96]
    assert card["recipe"]["balance_sources"] is True
    epoch = card["history"][-1]  # chosen on near and far faces; the own size kept beside
    assert 0 <= epoch["val_auc"] <= 1 and 0 <= epoch["val_auc_own_size"] <= 1
    said = next(ln for ln in out.stderr.splitlines() if "epoch 1:" in ln)  # which AUC is which
    assert f"val AUC {epoch['val_auc']:.4f} over its own size and --val-sizes 96" in said
    assert f"own size {epoch['val_auc_own_size']:.4f}" in said
    assert card["arch"] == "meso4"
    assert card["seed"] == 0
    assert card["data"]["validation_faces"] > 0
    assert {"auc", "real_accuracy", "fake_accuracy"} <= set(card["validation"])
    listed = mesolive("models", "list", env=env)
    assert "tiny" in listed.stdout
    scored = mesolive(
        "classify", str(shared / "samples" / "faces"), "--model", "tiny", "--json", env=env
    )
    assert scored.returncode == 0, scored.stderr
    assert len(json.loads(scored.stdout)) == 4
    for name, said in (
        ("tiny", "a model named 'tiny' already exists"),
        ("TINY", "a model named 'tiny' already exists"),  # one file where case is ignored
        ("MESO4-DF", "a model named 'meso4-df' already exists"),
        ("Scratch", "--name scratch: that word means random weights to --init"),
    ):
        again = mesolive("train", str(small_data), "--name", name, *TRAIN, env=env)
        assert again.returncode == 2 and said in again.stderr, again.stderr


def test_a_run_that_never_beats_its_start_says_so(small_data: Path, tmp_path: Path) -> None:
    """No epoch better than the starting weights: a model's are registered, and the headline
    says so (it read as a trained model, the warning only on stderr); random ones are not
    (they scored every face 0.51 under a success headline)."""
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path)}
    # a step too small to move any weight: only batch norm's running statistics change
    args = ("train", str(small_data), "--name", "still", "--epochs", "3", "--lr", "1e-12")
    out = mesolive(*args, "--patience", "1", *TRAIN, env=env)
    assert out.returncode == 0, out.stderr
    card = json.loads((tmp_path / "models" / "still.card.json").read_text())
    assert card["best_epoch"] == 0 and card["history"][-1]["improved"] is False
    # stopped by --patience after one epoch, and said so
    assert card["stopped"] == "patience" and len(card["history"]) == 2
    said = "stopped after epoch 1: no better validation AUC in its last 1 epoch(s) (--patience)"
    assert said in out.stderr
    assert out.stdout.startswith(
        "still: holds meso4-df's weights unchanged: no epoch beat them; validation AUC "
    )
    assert f"per source (pooled {card['validation']['auc']:.4f}) at epoch 0" in out.stdout

    def weights(path: Path) -> dict[str, torch.Tensor]:
        w = load_keras_weights(path)
        return MesoNetTorch(w.arch).load_meso_weights(w).state_dict()

    kept, start = weights(tmp_path / "models" / card["file"]), weights(MODELS / "Meso4_DF.h5")
    assert all(torch.equal(kept[k], start[k]) for k in start)
    # nothing trained, so nothing to put in the package
    manifest = ROOT / "resources" / "models.json"
    before = manifest.read_bytes()
    ship = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ship_model.py"), "still", "--as", "x",
         "--reason", "y", "--description", "z"],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=120,
    )  # fmt: skip
    assert ship.returncode != 0
    assert ship.stderr == "still: no epoch beat its starting weights; nothing trained to ship\n"
    assert manifest.read_bytes() == before
    assert not (ROOT / "resources" / "weights" / "x.h5").exists()
    # from random weights, nothing is registered (a random start is nearly always beaten
    # by the first epoch's batch-norm statistics, so the rule is checked as such)
    from mesolive.train.trainer import TrainConfig, TrainingError, check_learned

    never = {"history": [{"epoch": 0}, {"epoch": 1, "improved": False}], "epoch": 1}
    never["best_auc"] = 0.5
    scratch = TrainConfig(name="noise", data=(), init="scratch", patience=1)
    with pytest.raises(TrainingError) as e:
        check_learned(scratch, never, stale=1)
    assert str(e.value) == (
        "no epoch of 1 beat the random starting weights (validation AUC 0.5000); nothing is "
        "registered: go on with --resume and a larger --patience, or change the data or --lr"
    )
    check_learned(TrainConfig(name="kept", data=(), init="meso4-df"), never, stale=1)
    learned = {**never, "history": [{"epoch": 0}, {"epoch": 1, "improved": True}]}
    with pytest.raises(TrainingError) as e:  # it beat the start, but by a constant's 0.5
        check_learned(scratch, learned, stale=0)
    assert str(e.value).startswith(
        "the best epoch (1 of 1) ranks the validation faces no better than chance (validation "
        "AUC 0.5000); nothing is registered: go on with --resume and more --epochs"
    )
    check_learned(scratch, {**learned, "best_auc": 0.62}, stale=0)


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ({"epochs": 0}, "--epochs 0"),
        ({"batch": -5}, "--batch -5"),
        ({"lr": 0.0}, "--lr 0"),
        ({"lr": float("nan")}, "--lr nan"),
        ({"lr_step": 0}, "--lr-step 0"),
        ({"patience": 0}, "--patience 0"),
        ({"val_fraction": 1.5}, "--val-split 1.5"),
        ({"max_minutes": 0.0}, "--max-minutes 0"),
        ({"dropout": 1.0}, "--dropout 1"),
        ({"anchor": -1.0}, "--anchor -1"),
        ({"seed": -1}, "--seed -1"),
        ({"threads": 0}, "--threads 0"),
        ({"threads": 10**6}, "--threads 1000000"),
        ({"workers": 0}, "--workers 0"),
        ({"workers": 1000}, "--workers 1000"),
        ({"crop_scale": 0.0}, "--crop-scale 0"),  # was "preprocessing field 'scale'"
        ({"crop_scale": float("nan")}, "--crop-scale nan"),
        ({"val_sizes": (96, 0)}, "--val-sizes 0"),
        ({"kind_weights": (("GAN face", 0),)}, "--kind-weight GAN face=0"),
    ],
)
def test_a_setting_no_run_can_honour_is_refused(setting: dict, said: str) -> None:
    from mesolive.train.trainer import TrainConfig

    with pytest.raises(InputError, match="^" + re.escape(said + ":")):
        TrainConfig(name="x", data=(), **setting)


def test_a_bad_setting_stops_the_verb_before_any_face_is_cut(
    small_data: Path, tmp_path: Path
) -> None:
    """--epochs 0 once meant the default 30; now it is one line, and nothing is read."""
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path)}
    out = mesolive("train", str(small_data), "--name", "none", "--epochs", "0", *TRAIN, env=env)
    assert out.returncode == 2
    assert out.stderr == "mesolive: error: --epochs 0: expected a whole number ≥ 1\n"
    assert not (tmp_path / "train").exists() and not (tmp_path / "models").exists()


def test_a_time_limit_before_the_first_epoch_registers_nothing(
    small_data: Path, tmp_path: Path
) -> None:
    """It registered the starting weights under the new name, exit 0, as if trained."""
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path)}
    out = mesolive("train", str(small_data), "--name", "hasty", "--max-minutes", "1e-4", *TRAIN,
                   env=env)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == (
        "mesolive: error: --max-minutes 0.0001 ended before the first epoch; nothing is "
        "registered (the cut faces are cached: run again with more minutes)"
    )
    assert not (tmp_path / "models" / "hasty.card.json").exists()


def test_an_unseen_kind_is_validated_never_trained_on(small_data: Path, tmp_path: Path) -> None:
    """--unseen-kind: a forgery method left out of training, judged as something new."""
    rows = (small_data / "labels.csv").read_text().splitlines()
    fakes = [r for r in rows[1:] if r.split(",")[1] == "fake"]
    data = tmp_path / "kinds"
    data.mkdir()
    (data / "labels.csv").write_text(
        "file,label,kind\n"
        + "".join(
            f"{small_data / r.split(',')[0]},{r.split(',')[1]},"
            + ("new method" if r in fakes[:20] else "old")
            + "\n"
            for r in rows[1:]
        ),
        encoding="utf-8",
    )
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path)}
    args = ("train", str(data), "--name", "unseen", "--epochs", "1", *TRAIN)
    out = mesolive(*args, "--unseen-kind", "new method", env=env)
    assert out.returncode == 0, out.stderr
    card = json.loads((tmp_path / "models" / "unseen.card.json").read_text())
    assert card["recipe"]["unseen_kinds"] == ["new method"]
    assert 0 <= card["history"][-1]["val_unseen_auc"]["new method"] <= 1  # its own curve
    new = card["validation"]["per_kind"]["fake: new method"]
    # all of them held aside (a crop without a detectable face gives none): the split
    # alone would hold a quarter of them
    assert new["faces"] >= 18
    total = card["data"]["train_faces"] + card["data"]["validation_faces"]
    assert total == card["data"]["loading"]["faces"]
    bad = mesolive(*args[:3], "unseen-2", *args[4:], "--unseen-kind", "deepfake", env=env)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "'new method'" in bad.stderr, bad.stderr


def test_keep_init_registers_the_union_with_the_starting_model(
    small_data: Path, shared: Path, tmp_path: Path
) -> None:
    """The registered model scores each face as fake as the more suspicious of the two."""
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path)}
    out = mesolive(
        "train", str(small_data), "--name", "kept", "--epochs", "1", "--keep-init", *TRAIN, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "kept (union with meso4-df): validation AUC" in out.stdout
    card = json.loads((tmp_path / "models" / "kept.card.json").read_text())
    assert card["union"] == ["meso4-df"]
    assert card["recipe"]["keep_init"] is True
    assert {"auc", "real_accuracy", "fake_accuracy"} <= set(card["network_validation"])
    listed = mesolive("models", "list", env=env).stdout.splitlines()
    assert any(line.split()[:2] == ["kept", "meso4+meso4"] for line in listed)

    def scores(model: str) -> dict[str, float]:
        proc = mesolive(
            "classify", str(shared / "samples" / "faces"), "--model", model, "--json", env=env
        )
        assert proc.returncode == 0, proc.stderr
        return {r["path"]: r["fake_score"] for r in json.loads(proc.stdout)}

    from mesolive.classify.crops import CropReader
    from mesolive.classify.mesonet import MesoClassifier
    from mesolive.classify.preprocess import Preprocess
    from mesolive.imageio import expand_paths
    from mesolive.models import registry
    from mesolive.train.trainer import predict_fake

    # Both networks of the union read the union's contract: the trained model's
    # (its faces re-cut from the sample crops), not the authors' as-is reading.
    contract = Preprocess.from_dict(card["preprocess"], "card")
    assert contract.precut == "recut"
    files, _ = expand_paths([shared / "samples" / "faces"])
    with CropReader(contract) as reader:
        crops = [reader.read(f) for f in files]
    w = load_keras_weights(tmp_path / "models" / card["file"])
    net = MesoNetTorch(w.arch).load_meso_weights(w).eval()
    alone = predict_fake(net, np.stack(crops), "cpu", contract)
    runner = OnnxRuntimeRunner(registry.onnx_path(registry.get_spec("meso4-df")))
    with MesoClassifier(runner, preprocess=contract) as init_net:
        init = init_net.score(crops).fake
    union = scores("kept")
    assert len(union) == len(files) == 4
    for f, a, i in zip(files, alone, init, strict=True):
        assert union[str(f)] == pytest.approx(max(a, i), abs=1e-4)

    scratch = mesolive(
        "train", str(small_data), "--name", "y", "--init", "scratch", "--keep-init", env=env
    )
    assert scratch.returncode == 2
    assert "--keep-init needs --init MODEL" in scratch.stderr
    from_union = mesolive(
        "train", str(small_data), "--name", "z", "--init", "kept", "--epochs", "1", env=env
    )
    assert from_union.returncode == 2
    assert "union of several networks" in from_union.stderr
    assert len(from_union.stderr.strip().splitlines()) == 1


def test_resume_continues_from_checkpoint(small_data: Path, tmp_path: Path) -> None:
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path)}
    # A run stopped by its time budget after one epoch leaves a checkpoint ...
    from mesolive.train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        name="resumed",
        data=(str(small_data),),
        init="meso4-df",
        epochs=2,
        batch=20,
        val_fraction=0.25,
        ema=0.9,  # the averaged weights travel in the checkpoint too
    )
    seen: list[int] = []

    class Stop(Exception):
        pass

    def stop_after_first(record: dict) -> None:
        seen.append(record["epoch"])
        raise Stop

    old = os.environ.get("MESOLIVE_CACHE_DIR")
    os.environ["MESOLIVE_CACHE_DIR"] = str(tmp_path)
    try:
        with pytest.raises(Stop):
            Trainer(cfg, progress=False, on_epoch=stop_after_first).run()
    finally:
        os.environ["MESOLIVE_CACHE_DIR"] = old or ""
    fresh = mesolive("train", str(small_data), "--name", "resumed", *TRAIN, env=env)
    assert fresh.returncode == 2
    work = tmp_path / "train" / "resumed"
    assert fresh.stderr.strip().splitlines() == [
        f"mesolive: error: an unfinished run named 'resumed' exists in {work}; continue it with "
        "--resume, choose another --name, or delete that folder to start this run over"
    ]
    moved = tmp_path / "other-data"  # the same files under another name: other groups
    moved.mkdir()
    for part in ("real", "fake", "labels.csv"):
        (moved / part).symlink_to(small_data / part)
    regrouped = mesolive(
        "train", str(moved), "--name", "resumed", "--epochs", "2", "--resume", "--ema", "0.9",
        *TRAIN, env=env,
    )  # fmt: skip  # other faces held out: the network trained on some of them
    assert regrouped.returncode == 2
    assert "validation split differs" in regrouped.stderr
    assert regrouped.stderr.count("error") == 1, regrouped.stderr
    # another recipe: the card would describe weights trained half under the first one
    changes = (
        ("--dropout", "0.5"), ("--crop-scale", "0.77"), ("--augment", "call"),
        ("--kind-weight", "fake=2"), ("--balance-sources",), ("--balance-pairs",),
    )  # fmt: skip
    for change in (*changes, ("--val-split", "0.5")):
        other = mesolive(
            "train", str(small_data), "--name", "resumed", "--epochs", "2", "--resume",
            "--ema", "0.9", *TRAIN, *change, env=env,
        )  # fmt: skip
        assert other.returncode == 2, other.stderr
        assert other.stderr.startswith(f"mesolive: error: {change[0]}: this run's setting differs")
        assert other.stderr.count("\n") == 1, other.stderr
    out = mesolive(
        "train",
        str(small_data),
        "--name",
        "resumed",
        "--epochs",
        "2",
        "--resume",
        "--ema",
        "0.9",
        *TRAIN,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    card = json.loads((tmp_path / "models" / "resumed.card.json").read_text())
    assert "resumed resumed at epoch 1 of 2" in out.stderr  # says how far it got
    assert card["runs"] == 2
    assert card["training_minutes"] >= card["history"][-1]["minutes"] > 0
    assert seen == [1]
    assert [h["epoch"] for h in card["history"]][-1] == 2
    # and it trained as a run never stopped would have (dropout's random state included)
    straight = mesolive(
        "train", str(small_data), "--name", "straight", "--epochs", "2", "--ema", "0.9", *TRAIN,
        env=env,
    )  # fmt: skip
    assert straight.returncode == 0, straight.stderr
    unbroken = json.loads((tmp_path / "models" / "straight.card.json").read_text())
    keys = ("train_loss", "val_auc")
    assert [[h.get(k) for k in keys] for h in card["history"]] == [
        [h.get(k) for k in keys] for h in unbroken["history"]
    ]


def test_ctrl_c_says_how_far_training_got(small_data: Path, tmp_path: Path) -> None:
    """Interrupted as from a terminal: exit 130, the last finished epoch, how to go on."""
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path)}
    args = ("--epochs", "1000", "--patience", "1000")
    proc = start_mesolive("train", str(small_data), "--name", "cut", *args, *TRAIN, env=env)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # the first two epochs finish, then Ctrl+C
        lines.append(line)
        if line.startswith("mesolive: epoch 2:"):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, "".join(lines) + rest
    # the epoch said is the one whose checkpoint is on disk; an epoch logged is one saved
    ck = torch.load(tmp_path / "train" / "cut" / "checkpoint.pt", weights_only=False)
    said = (
        f"stopped after epoch {ck['state']['epoch']} of 1000: its checkpoint is kept; add --resume"
    )
    assert ck["state"]["epoch"] >= 2 and said in rest, rest
    assert rest.endswith("mesolive: interrupted\n") and "Traceback" not in rest
    # resumed, then SIGTERM (timeout, a batch system) before an epoch of it ends: it was
    # killed without a word; now it names the checkpoint it would go on from, exit 143
    proc = start_mesolive(
        "train", str(small_data), "--name", "cut", *args, *TRAIN, "--resume", env=env
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("mesolive: resumed cut at epoch"):
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, rest
    epoch = torch.load(tmp_path / "train" / "cut" / "checkpoint.pt", weights_only=False)
    said = f"checkpoint of epoch {ck['state']['epoch']} of 1000 is kept"
    assert epoch["state"]["epoch"] == ck["state"]["epoch"] and said in rest, rest


def test_ctrl_c_of_a_resumed_run_does_not_ask_for_another_resume() -> None:
    """A resumed run stopped after an epoch told its user to add --resume to a command
    that had it already."""
    from mesolive.commands.train import _how_far

    fresh = _how_far([{"epoch": 2}], 50)
    assert fresh.endswith("its checkpoint is kept; add --resume to the same command to go on")
    resumed = _how_far([{"epoch": 13}], 50, resumed_at=2)
    assert resumed == (
        "stopped after epoch 13 of 50: its checkpoint is kept; the same command goes on from it"
    )


def test_train_takes_the_detector_a_missing_one_names(small_data: Path, tmp_path: Path) -> None:
    """Offline with no detector, train said "pass --detector PATH.onnx", an option it lacked."""
    env = {"MESOLIVE_MODEL_DIR": "", "MESOLIVE_CACHE_DIR": str(tmp_path), "MESOLIVE_OFFLINE": "1"}
    out = mesolive("train", str(small_data), "--name", "d", *TRAIN, env=env)
    assert out.returncode == 2 and "pass --detector PATH.onnx" in out.stderr, out.stderr
    out = mesolive(
        "train", str(small_data), "--name", "d", *TRAIN, "--detector", str(tmp_path / "no.onnx"),
        env=env,
    )  # fmt: skip
    assert out.returncode == 2
    assert (
        out.stderr
        == f"mesolive: error: {tmp_path / 'no.onnx'}: no such detector file (--detector)\n"
    )


def test_two_runs_of_one_name_at_once_are_refused(small_data: Path, tmp_path: Path) -> None:
    """Both once trained into one checkpoint and registered over each other."""
    env = {**os.environ, "MESOLIVE_CACHE_DIR": str(tmp_path)}
    argv = [sys.executable, "-m", "mesolive", "train", str(small_data), "--name", "twice",
            "--epochs", "1000", "--patience", "1000", *TRAIN]  # fmt: skip
    first = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert first.stderr is not None
        for line in first.stderr:  # the name is held before the faces are cut
            if line.startswith("mesolive: faces cut from"):
                break
        second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 2
        assert second.stderr == (
            "mesolive: error: a run named 'twice' is training now in another process; "
            "let it finish or choose another --name\n"
        )
        assert first.poll() is None  # the first trains on
    finally:
        first.kill()
        first.communicate()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("one_class", "no fake faces"),
        ("few", "too few faces"),
        ("missing", "no such file"),
    ],
)
def test_bad_training_data(setup: str, message: str, small_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    if setup in ("one_class", "few"):
        (data / "real").mkdir(parents=True)
        (data / "fake").mkdir()
        for f in sorted((small_data / "real").iterdir())[:30]:
            (data / "real" / f.name).symlink_to(f.resolve())
        if setup == "few":
            for f in sorted((small_data / "fake").iterdir())[:5]:
                (data / "fake" / f.name).symlink_to(f.resolve())
    out = mesolive(
        "train", str(data), "--name", "x", *TRAIN, env={"MESOLIVE_CACHE_DIR": str(tmp_path)}
    )
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_labels_row_naming_a_missing_file_is_counted_not_fatal(
    small_data: Path, tmp_path: Path
) -> None:
    """It was an internal error (FileNotFoundError) before any face was cut."""
    data = tmp_path / "data"
    data.mkdir()
    for part in ("real", "fake"):
        (data / part).symlink_to(small_data / part)
    rows = (small_data / "labels.csv").read_text()
    (data / "labels.csv").write_text(rows + "real/ghost.jpg,real,ghost.mp4,\n")
    out = mesolive(
        "train", str(data), "--name", "g", *TRAIN, "--epochs", "1",
        env={"MESOLIVE_CACHE_DIR": str(tmp_path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "ghost.jpg" in out.stderr and "1 unreadable" in out.stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--self-blend", "1.5", "argument --self-blend: 1.5 is not between 0 and 1"),
        ("--blend-style", "oval", "argument --blend-style: invalid choice: 'oval'"),
        ("--ema", "1", "argument --ema: 1 never moves the average"),
        ("--ema", "x", "argument --ema: 'x' is not a number"),
        ("--kind-weight", "swap", "argument --kind-weight: 'swap' is not KIND=N"),
        ("--kind-weight", "swap=1.5", "argument --kind-weight: 'swap=1.5' is not KIND=N"),
        ("--kind-weight", "=3", "argument --kind-weight: '=3' is not KIND=N"),
        # one way to even the classes: the value here is the second flag
        ("--balance", "--balance-pairs", "argument --balance-pairs: not allowed with argument"),
    ],
)
def test_recipe_values_out_of_range_are_refused(
    option: str, value: str, message: str, tmp_path: Path
) -> None:
    out = mesolive("train", str(tmp_path), "--name", "x", option, value)
    assert out.returncode == 2
    assert message in out.stderr.strip().splitlines()[-1]


def test_full_disk_while_checkpointing(small_data: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the checkpoint write fail as a full disk does (EFBIG)."""
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000));"
        "from mesolive.cli import main; sys.exit(main(sys.argv[1:]))"
    )

    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "train",
            str(small_data),
            "--name",
            "full",
            "--epochs",
            "1",
            *TRAIN,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MESOLIVE_CACHE_DIR": str(tmp_path)},
    )
    assert proc.returncode == 2, proc.stderr
    assert "disk full" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "models" / "user_models.json").exists()


def test_faces_are_cut_on_the_threads_asked_for(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``train --threads 1`` kept PyTorch on one core while the face cutting's detector ran
    on ONNX Runtime's default, every core."""
    from mesolive.classify.preprocess import AUTHORS
    from mesolive.train.faces import FaceCutter

    photo = shared / "facebox" / "2008_001009.jpg"
    for threads in (1, 2):
        monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path / str(threads)))  # nothing cached
        with FaceCutter(AUTHORS, threads=threads) as cutter:
            (cut,) = cutter.stills([photo])
            assert cut.face is not None
            session = cutter._reader._detector.runner._session  # the detector's own session
            assert session.get_session_options().intra_op_num_threads == threads


def test_faces_from_labelled_videos(shared: Path, tmp_path: Path) -> None:
    """Labelled videos become crops through the live pipeline's detector and crop."""

    import cv2

    from mesolive.classify.preprocess import AUTHORS
    from mesolive.train.faces import FaceCutter

    old = os.environ["MESOLIVE_CACHE_DIR"]
    os.environ["MESOLIVE_CACHE_DIR"] = str(tmp_path)
    cutter = FaceCutter(AUTHORS)
    extract_faces = cutter.video
    try:
        faces = extract_faces(shared / "videos" / "real" / "inthewild_obama.mp4", max_faces=8)
        assert len(faces) == 8
        assert all(f.shape == (256, 256, 3) and f.dtype == np.uint8 for f in faces)
        again = FaceCutter(AUTHORS).video(
            shared / "videos" / "real" / "inthewild_obama.mp4", max_faces=8
        )
        assert all(np.array_equal(a, b) for a, b in zip(faces, again, strict=True))
        # a video with no face gives no crops (the trainer skips it with a warning)
        noise = tmp_path / "noise.avi"
        out = cv2.VideoWriter(str(noise), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
        rng = np.random.default_rng(0)
        for _ in range(10):
            out.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
        out.release()
        assert extract_faces(noise, max_faces=5) == []
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"not a video")
        with pytest.raises(InputError, match=r"bad\.mp4"):
            extract_faces(bad)
    finally:
        cutter.close()
        os.environ["MESOLIVE_CACHE_DIR"] = old


def _torchrun_two() -> list[str]:
    """``torchrun`` (beside this Python) starting two processes on this machine."""
    import shutil

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    return [torchrun, "--standalone", "--nproc-per-node", "2"]


def test_torchrun_two_processes_train_one_model(small_data: Path, tmp_path: Path) -> None:
    """`torchrun --nproc-per-node 2 -m mesolive train …`: PyTorch's own DDP (gloo on CPU).

    Both processes take the same number of steps (each its share of the batches),
    rank 0 alone validates and registers, and one model with one card comes out.
    """
    proc = subprocess.run(
        [
            *_torchrun_two(),
            "-m",
            "mesolive",
            "train",
            str(small_data),
            "--name",
            "ddp",
            "--epochs",
            "2",
            "--threads",
            "1",
            *TRAIN,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MESOLIVE_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.count("validation AUC") == 1  # rank 0 reports, once
    assert "2 processes (DDP" in proc.stderr
    card = json.loads((tmp_path / "models" / "ddp.card.json").read_text())
    assert [h["epoch"] for h in card["history"]] == [0, 1, 2]
    # 120 faces, a quarter of the videos held out, batch 20: each rank steps
    # through half of the full batches per epoch.
    per_rank = (card["data"]["train_faces"] // 20) // 2
    assert card["history"][-1]["iteration"] == 2 * per_rank
    listed = mesolive("models", "list", env={"MESOLIVE_CACHE_DIR": str(tmp_path)})
    assert listed.stdout.count("ddp") == 1


_GLOO_THREADS_AFTER_CLOSE = """
import os

import torch

from mesolive.train import distributed
group = distributed.setup("cpu")
torch.optim.Adam(torch.nn.Linear(3, 1).parameters())  # imports torch._dynamo, as training does
group.close(finished=True)
tasks = [open(f"/proc/self/task/{t}/comm").read() for t in os.listdir("/proc/self/task")]
left = [name.strip() for name in tasks if "gloo" in name]
if left:
    raise SystemExit(f"gloo threads left after close(): {left}")
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names from /proc")
def test_leaving_the_group_stops_gloo_threads(tmp_path: Path) -> None:
    """After close() no gloo thread is left: three ran on into the interpreter's exit,
    where now and then they aborted a finished run (SIGABRT after it had registered)."""
    script = tmp_path / "group.py"
    script.write_text(_GLOO_THREADS_AFTER_CLOSE)
    proc = subprocess.run(
        [*_torchrun_two(), str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr


def test_each_rank_takes_the_same_number_of_batches() -> None:
    from mesolive.train.distributed import Dist

    starts = list(range(0, 700, 100))  # 7 batches
    one = Dist().my_batches(starts)
    assert one == starts
    ranks = [Dist(rank=r, world=3).my_batches(starts) for r in range(3)]
    assert [len(b) for b in ranks] == [2, 2, 2]  # the 7th waits for the next shuffle
    assert len({s for b in ranks for s in b}) == 6  # no batch twice in an epoch
    tiny = [Dist(rank=r, world=4).my_batches([0, 20]) for r in range(4)]
    assert all(len(b) == 1 for b in tiny)  # fewer batches than ranks: all still step


def test_self_blend_fills_fake_slots_with_real_faces() -> None:
    """Pseudo-fakes take fake positions only, come from real faces, and keep the balance."""
    from mesolive.train.data import FaceSet
    from mesolive.train.trainer import TrainConfig, Trainer

    labels = np.array([0, 1] * 500)
    names = np.arange(1000).astype(str)
    faces = FaceSet(np.zeros((1000, 1, 1, 3), np.uint8), labels, names, names, names, names)
    order = np.random.default_rng(0).permutation(1000)
    none = Trainer(TrainConfig(name="x", data=()))._blend_sources(faces, order, 1)
    assert (none == -1).all()
    trainer = Trainer(TrainConfig(name="x", data=(), self_blend=0.3))
    src = trainer._blend_sources(faces, order, 1)
    used = src >= 0
    assert (labels[order][used] == 1).all()  # only fake slots are filled
    assert (labels[src[used]] == 0).all()  # ... from real faces
    assert 0.2 < used.sum() / 500 < 0.4
    assert np.array_equal(src, trainer._blend_sources(faces, order, 1))  # repeatable
    assert not np.array_equal(src, trainer._blend_sources(faces, order, 2))  # new each epoch


def test_batches_are_the_same_for_any_number_of_data_threads() -> None:
    """--workers only changes how fast batches come: each face's randomness is its own."""
    from concurrent.futures import ThreadPoolExecutor

    from mesolive.train.augment import PRESETS
    from mesolive.train.data import FaceSet
    from mesolive.train.trainer import TrainConfig, Trainer

    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 1] * 8)
    names = np.arange(24).astype(str)
    images = rng.integers(0, 256, (24, 64, 64, 3), dtype=np.uint8)
    faces = FaceSet(images, labels, names, names, names, names)
    got = []
    for workers in (1, 3):
        cfg = TrainConfig(
            name="x", data=(), batch=5, self_blend=0.5, augment=PRESETS["call"], workers=workers
        )
        with ThreadPoolExecutor(workers) as pool:
            got.append(list(Trainer(cfg)._batches(faces, 2, pool, workers)))
    one, three = got
    assert len(one) == len(three) == 4
    for (a, la), (b, lb) in zip(one, three, strict=True):
        assert np.array_equal(la, lb)
        assert np.array_equal(a, b)
    assert not np.array_equal(one[0][0], images[:5])  # augmented, so the check can fail


@pytest.mark.parametrize(
    ("device", "workers", "cores", "local", "want"),
    [
        ("cpu", None, 16, None, 1),  # PyTorch takes the cores
        ("cuda", None, 16, None, 6),
        ("cuda", None, 4, None, 3),
        ("cuda", None, 16, "4", 3),  # four torchrun processes share the 16 cores
        ("cuda", None, 2, None, 1),
        ("cuda", 9, 2, None, 9),  # asked for
    ],
)
def test_data_threads_by_default_take_a_share_of_the_cores_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
    device: str,
    workers: int | None,
    cores: int,
    local: str | None,
    want: int,
) -> None:
    from mesolive.train.trainer import TrainConfig, data_workers

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    if local is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
    cfg = TrainConfig(name="x", data=(), device=device, workers=workers)
    assert data_workers(cfg) == want


def test_balance_draws_the_smaller_class_again() -> None:
    from mesolive.train.data import FaceSet
    from mesolive.train.trainer import TrainConfig, Trainer

    labels = np.array([0] * 90 + [1] * 10)
    names = np.arange(100).astype(str)
    faces = FaceSet(np.zeros((100, 1, 1, 3), np.uint8), labels, names, names, names, names)
    plain = Trainer(TrainConfig(name="x", data=()))._epoch_order(faces, 1)
    assert sorted(plain) == list(range(100))
    trainer = Trainer(TrainConfig(name="x", data=(), balance=True))
    order = trainer._epoch_order(faces, 1)
    assert (labels[order] == 0).sum() == (labels[order] == 1).sum() == 90
    assert set(order) == set(range(100))  # every face still comes once at least
    assert np.array_equal(order, trainer._epoch_order(faces, 1))
    assert not np.array_equal(order, trainer._epoch_order(faces, 2))


def test_balance_sources_evens_the_classes_within_each_data_set() -> None:
    """No data set keeps a class prior; pseudo-fakes come from their slot's data set."""
    from mesolive.train.data import FaceSet
    from mesolive.train.trainer import TrainConfig, Trainer

    labels = np.array([0] * 70 + [1] * 10 + [0] * 10 + [1] * 30 + [0] * 20)
    sources = np.array(["photos"] * 80 + ["videos"] * 40 + ["mine"] * 20)
    names = np.arange(140).astype(str)
    faces = FaceSet(np.zeros((140, 1, 1, 3), np.uint8), labels, names, sources, names, names)
    trainer = Trainer(TrainConfig(name="x", data=(), balance_sources=True, self_blend=0.5))
    order = trainer._epoch_order(faces, 1)
    drawn = {
        s: np.bincount(labels[order][sources[order] == s], minlength=2).tolist()
        for s in ("photos", "videos", "mine")
    }
    assert drawn == {"photos": [70, 70], "videos": [30, 30], "mine": [20, 0]}
    assert set(order) == set(range(140))
    overall = Trainer(TrainConfig(name="x", data=(), balance=True))._epoch_order(faces, 1)
    assert np.bincount(labels[overall][sources[overall] == "photos"]).tolist() != [70, 70]
    blend = trainer._blend_sources(faces, order, 1)
    used = blend >= 0
    assert used.any()
    assert (labels[blend[used]] == 0).all()
    assert (sources[blend[used]] == sources[order][used]).all()


def test_balance_pairs_evens_each_pair_then_each_data_set_without_them() -> None:
    """A swap is drawn as often as its original; a data set's other faces even among themselves."""
    from mesolive.train.data import FaceSet
    from mesolive.train.trainer import TrainConfig, Trainer

    # videos: pair p1 (30 fake, 10 real), pair p2 (5 fake, 5 real), 40 unpaired reals,
    # 10 unpaired fakes; photos: 50 reals, 10 fakes, each its own group
    labels = np.array([1] * 30 + [0] * 10 + [1] * 5 + [0] * 5 + [0] * 40 + [1] * 10
                      + [0] * 50 + [1] * 10)  # fmt: skip
    groups = np.array(["p1"] * 40 + ["p2"] * 10 + [f"v{i}" for i in range(50)]
                      + [f"f{i}" for i in range(60)])  # fmt: skip
    sources = np.array(["videos"] * 100 + ["photos"] * 60)
    names = np.arange(160).astype(str)
    faces = FaceSet(np.zeros((160, 1, 1, 3), np.uint8), labels, groups, sources, names, names)
    trainer = Trainer(TrainConfig(name="x", data=(), balance_pairs=True, self_blend=0.5))
    order = trainer._epoch_order(faces, 1)

    def drawn(mask: np.ndarray) -> list[int]:
        return np.bincount(labels[order][mask[order]], minlength=2).tolist()

    assert drawn(groups == "p1") == [30, 30]
    assert drawn(groups == "p2") == [5, 5]
    assert drawn((sources == "videos") & ~np.isin(groups, ["p1", "p2"])) == [40, 40]
    assert drawn(sources == "photos") == [50, 50]
    assert set(order) == set(range(160))
    assert np.array_equal(order, trainer._epoch_order(faces, 1))
    # evening the videos as a whole (--balance-sources) leaves the first pair's swap
    # drawn at least 3 times as often as its original
    plain = Trainer(TrainConfig(name="x", data=(), balance_sources=True))._epoch_order(faces, 1)
    real, fake = np.bincount(labels[plain][groups[plain] == "p1"])
    assert fake >= 3 * real
    blend = trainer._blend_sources(faces, order, 1)
    used = blend >= 0
    assert used.any()
    assert (sources[blend[used]] == sources[order][used]).all()


def test_kind_weight_draws_that_kind_n_times_before_the_balance() -> None:
    from mesolive.train.data import FaceSet
    from mesolive.train.trainer import TrainConfig, Trainer

    labels = np.array([0] * 90 + [1] * 10)
    kinds = np.array(["real"] * 90 + ["swap=x"] * 4 + ["gan"] * 6)  # a kind may hold "="
    names = np.arange(100).astype(str)
    faces = FaceSet(np.zeros((100, 1, 1, 3), np.uint8), labels, names, names, kinds, names)
    plain = Trainer(TrainConfig(name="x", data=(), kind_weights=(("swap=x", 3),)))
    order = plain._epoch_order(faces, 1)
    assert len(order) == 108 and set(order) == set(range(100))
    assert np.bincount(order, minlength=100)[90:].tolist() == [3] * 4 + [1] * 6
    trainer = Trainer(TrainConfig(name="x", data=(), balance=True, kind_weights=(("swap=x", 3),)))
    order = trainer._epoch_order(faces, 1)
    drawn = kinds[order]
    assert (drawn == "real").sum() == (labels[order] == 1).sum() == 90
    assert 0.5 < (drawn == "swap=x").sum() / 90 < 0.8  # 12 of 18 fake slots, in expectation


def test_a_kind_weight_naming_no_kind_is_refused_before_training(
    small_data: Path, tmp_path: Path
) -> None:
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path)}
    out = mesolive(
        "train", str(small_data), "--name", "w", "--kind-weight", "inswapper=4", *TRAIN, env=env
    )
    assert out.returncode == 2
    assert out.stderr.startswith("mesolive: error: --kind-weight 'inswapper': nothing of that kind")
    assert not (tmp_path / "models").exists()


def test_training_faces_are_cut_by_the_models_contract(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stills and pre-cut crops go through the live detector and the model's crop;
    faceless and unreadable files are counted, and a second run reads the cache."""
    import shutil

    from mesolive.classify.preprocess import Preprocess
    from mesolive.datasets import Item
    from mesolive.train import faces as faces_mod
    from mesolive.train.data import load_faces

    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    dfdc = sorted((shared / "train" / "dfdc" / "real").iterdir())[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    dog = tmp_path / "dog.jpg"
    shutil.copy(shared / "facebox" / "dogs.jpg", dog)
    items = [Item(f, 0, f.stem, "dfdc", "real") for f in dfdc]
    items += [Item(dog, 1, "dog", "photos", "fake"), Item(broken, 1, "b", "photos", "fake")]
    tight = Preprocess(scale=1 / 1.3, precut="recut")
    faces, summary = load_faces(items, tight)
    assert (summary.faces, summary.no_face, summary.unreadable) == (3, 1, 1)
    assert "1 images without a detectable face, 1 unreadable" in summary.line()
    assert list(faces.sources) == ["dfdc"] * 3
    assert faces.images.shape == (3, 256, 256, 3)
    # the authors' wider square holds the same face smaller than the tight one
    wide, _ = load_faces(items[:1], Preprocess(precut="recut"))
    assert not np.array_equal(wide.images[0], faces.images[0])

    def no_detector(*a: object, **k: object) -> None:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(faces_mod.FaceCutter, "_cut_largest", no_detector)
    again, summary2 = load_faces(items, tight)
    assert np.array_equal(again.images, faces.images)
    assert summary2 == summary


def test_validation_weighs_each_source_once_and_judges_whole_videos() -> None:
    from mesolive.train.data import FaceSet
    from mesolive.train.validation import breakdown, selection_auc

    # a big source the model ranks perfectly, a small one it ranks backwards
    labels = np.array([0] * 50 + [1] * 50 + [0, 0, 1, 1])
    scores = np.r_[np.linspace(0, 0.4, 50), np.linspace(0.6, 1, 50), 0.9, 0.8, 0.2, 0.1]
    sources = np.array(["big"] * 100 + ["small"] * 4)
    clips = ["d/real/a.mp4", "d/real/a.mp4", "d/fake/a.mp4", "d/fake/a.mp4"]  # one name, twice
    files = np.array([f"img{i}.jpg" for i in range(100)] + clips)
    kinds = np.array(["real"] * 50 + ["fake"] * 50 + ["DF"] * 4)
    faces = FaceSet(np.zeros((104, 1, 1, 3), np.uint8), labels, files, sources, kinds, files)
    assert selection_auc(faces, scores) == pytest.approx(0.5)  # (1.0 + 0.0) / 2
    card = breakdown(faces, scores)
    assert card["per_source"]["big"]["auc"] == 1.0 and card["per_source"]["small"]["faces"] == 4
    assert card["per_kind"]["real: DF"]["share_right"] == 0.0  # a real clip called fake
    assert card["per_kind"]["fake: DF"]["faces"] == 2
    # files with several faces only, each under a name of its own
    assert set(card["videos"]) == {"real/a.mp4", "fake/a.mp4"}
    a = card["videos"]["real/a.mp4"]
    assert a == {"label": "real", "score": pytest.approx(0.85), "right": False}


def test_within_pairs_tells_a_forgery_from_its_own_original() -> None:
    """A network that reads the footage scores a pair alike: the per-source AUC looks
    good where the pairs hold their classes unevenly; within the pairs it is 0.5."""
    from mesolive.train.data import FaceSet
    from mesolive.train.validation import breakdown, within_pairs

    # pair a (studio footage, 1 real, 3 fakes) all scored 0.9; pair b (webcam, 3 reals,
    # 1 fake) all 0.1; pair c told apart; one photo source without pairs
    labels = np.r_[[0, 1, 1, 1], [0, 0, 0, 1], [0, 1], [0, 1]]
    scores = np.array([0.9] * 4 + [0.1] * 4 + [0.2, 0.6] + [0.3, 0.7])
    groups = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 2 + ["p0", "p1"])
    sources = np.array(["videos"] * 10 + ["photos"] * 2)
    faces = FaceSet(np.zeros((12, 1, 1, 3), np.uint8), labels, groups, sources, groups, groups)
    card = breakdown(faces, scores)
    assert card["per_source"]["videos"]["auc"] > 0.75
    pairs = within_pairs(faces, scores)
    assert card["pairs"] == pairs
    assert pairs == {
        "videos": {
            "groups": 3,
            "auc_within": pytest.approx((0.5 + 0.5 + 1.0) / 3),
            "fake_above_real": pytest.approx(1 / 3),
        }
    }  # no photo group holds both classes


def test_one_threshold_must_serve_faces_of_every_size() -> None:
    """A network that ranks each size perfectly but scores far faces higher loses."""
    from mesolive.train.data import FaceSet
    from mesolive.train.validation import selection_auc

    labels = np.array([0, 0, 1, 1])
    near = np.array([0.1, 0.2, 0.8, 0.9])
    far = np.array([0.85, 0.9, 0.95, 0.99])  # drifted towards fake, still in order
    names = np.array(["a", "b", "c", "d"])
    faces = FaceSet(
        np.zeros((4, 1, 1, 3), np.uint8), labels, names, np.array(["s"] * 4), names, names
    )
    assert selection_auc(faces, near) == 1.0 and selection_auc(faces, far) == 1.0
    assert selection_auc(faces, near, far) == pytest.approx(13.5 / 16)  # far reals pass near fakes
    assert selection_auc(faces, near, near) == 1.0


def test_every_augmentation_preset_and_blend_style_is_offered_and_sizes_resamples_most_faces(
    golden: dict[str, np.ndarray],
) -> None:
    """The CLI offers exactly the presets and pseudo-fake styles; ``sizes`` rescales far
    more faces than ``call``."""
    import argparse

    from mesolive.cli import build_parser
    from mesolive.train.augment import PRESETS, augment
    from mesolive.train.blend import BLEND_STYLES

    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train = verbs.choices["train"]._actions
    offered = next(a for a in train if a.dest == "augment").choices
    assert set(offered) == set(PRESETS)
    styles = next(a for a in train if a.dest == "blend_style").choices
    assert tuple(styles) == BLEND_STYLES

    # i.i.d. pixel noise: any down- and up-scaling averages it away
    face = np.random.default_rng(1).normal(128, 40, golden["images_u8"][0].shape)
    face = np.clip(face, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    softened = {}
    for name in ("call", "sizes"):
        outs = [augment(face, rng, PRESETS[name]) for _ in range(100)]
        assert all(o.shape == face.shape and o.dtype == np.uint8 for o in outs)
        softened[name] = np.mean([o.std() < 0.5 * face.std() for o in outs])
    assert softened["sizes"] > softened["call"] + 0.15


def test_a_face_as_if_cut_from_fewer_pixels_is_blown_up_in_blocks(
    golden: dict[str, np.ndarray],
) -> None:
    from mesolive.train.validation import as_if_cut_from

    faces = golden["images_u8"][:2]
    assert as_if_cut_from(faces, 256) is faces
    far = as_if_cut_from(faces, 64)
    assert far.shape == faces.shape and far.dtype == np.uint8
    blocks = far.reshape(2, 64, 4, 64, 4, 3)
    assert (blocks == blocks[:, :, :1, :, :1]).all()  # 4×4 blocks of one pixel each
    # each block holds its 4×4 area's mean (to rounding), not one sampled pixel
    means = faces.reshape(2, 64, 4, 64, 4, 3).mean(axis=(2, 4))
    assert np.abs(blocks[:, :, 0, :, 0].astype(float) - means).max() <= 0.5 + 1e-9
