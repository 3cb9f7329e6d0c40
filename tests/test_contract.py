"""The preprocessing contract: declared per model, honoured by every path, refused when broken."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mesolive.align.crop import crop_transform
from mesolive.classify.crops import CropReader
from mesolive.classify.mesonet import load_classifier
from mesolive.classify.preprocess import AUTHORS, Preprocess
from mesolive.errors import ModelError
from mesolive.models import registry

from .conftest import MODEL_NAMES, MODELS, ROOT

TIGHT = Preprocess(scale=1 / 1.3, precut="recut")


def test_the_authors_models_keep_the_authors_contract_exactly() -> None:
    for name in MODEL_NAMES:
        assert registry.get_spec(name).preprocess == AUTHORS
    assert AUTHORS.to_dict() == {
        "crop": "authors",
        "scale": 1.0,
        "size": 256,
        "interpolation": "nearest",
        "colour": "rgb",
        "value_range": [0.0, 1.0],
        "precut": "as-is",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"crop": "mtcnn"}, "crop"),
        ({"interpolation": "lanczos"}, "interpolation"),
        ({"colour": "yuv"}, "colour"),
        ({"size": 224}, "size"),
        ({"precut": "stretch"}, "precut"),
        ({"scale": 0.0}, "scale"),
        ({"value_range": [1.0, 0.0]}, "value_range"),
        ({"mean": [0.5, 0.5, 0.5]}, "mean"),
    ],
)
def test_a_contract_no_path_can_honour_is_refused_naming_the_field(
    change: dict, field: str
) -> None:
    with pytest.raises(ModelError, match=f"'{field}'") as err:
        Preprocess.from_dict({**AUTHORS.to_dict(), **change}, "model x")
    assert "model x" in str(err.value)


def test_a_missing_field_is_named() -> None:
    block = AUTHORS.to_dict()
    del block["interpolation"]
    with pytest.raises(ModelError, match="field 'interpolation' is missing"):
        Preprocess.from_dict(block, "model x")


def test_batches_follow_colour_order_and_value_range() -> None:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    rgb_net = AUTHORS.to_batch(bgr, "bgr")
    np.testing.assert_allclose(rgb_net[:, 0], bgr[..., 2] / 255.0, atol=1e-7)
    assert np.array_equal(AUTHORS.to_batch(bgr[..., ::-1], "rgb"), rgb_net)
    bgr_net = Preprocess(colour="bgr").to_batch(bgr, "bgr")
    assert np.array_equal(bgr_net, rgb_net[:, ::-1])
    centred = Preprocess(value_range=(-1.0, 1.0)).to_batch(np.array([[[[0, 255, 0]]]], np.uint8))
    assert centred.min() == -1.0 and centred.max() == 1.0


def test_the_crop_scale_changes_how_much_of_the_frame_a_crop_holds() -> None:
    kps = np.array([[100, 100], [140, 100], [120, 125], [104, 150], [136, 150]], np.float32)
    m_wide, side_wide, _ = crop_transform(kps)
    m_tight, side_tight, _ = crop_transform(kps, scale=TIGHT.scale)
    assert side_wide / side_tight == pytest.approx(1.3)
    assert np.linalg.det(m_tight[:, :2]) / np.linalg.det(m_wide[:, :2]) == pytest.approx(1.69)


@pytest.fixture
def tight_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The authors' Meso-4 DF weights registered as a user model that reads faces tight."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(MODELS / "Meso4_DF.h5", models / "tight.h5")
    sha = hashlib.sha256((models / "tight.h5").read_bytes()).hexdigest()
    entry = {
        "name": "tight",
        "arch": "meso4",
        "forgery": "custom",
        "file": "tight.h5",
        "sha256": sha,
        "preprocess": TIGHT.to_dict(),
    }
    (models / "user_models.json").write_text(json.dumps({"schema": 1, "models": [entry]}))
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    return "tight"


def test_classify_recuts_precut_crops_for_a_model_that_asks(
    tight_model: str, shared: Path, tmp_path: Path
) -> None:
    """DFDC's tight crops are re-cut by the model's rule; the authors' models read them whole."""
    files = sorted((shared / "faces" / "dfdc" / "fake").iterdir())[:3]
    args = ["classify", *map(str, files), "--json", "--model", tight_model]
    proc = subprocess.run(
        [sys.executable, "-m", "mesolive", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    got = [r["fake_score"] for r in json.loads(proc.stdout)]
    with load_classifier(tight_model) as clf, CropReader(clf.preprocess) as reader:
        assert clf.preprocess == TIGHT
        recut = clf.score([reader.read(f) for f in files]).fake
        assert reader.unframed == set()
        whole = clf.run_batch(clf.batch([_read(f) for f in files]))
    np.testing.assert_allclose(got, recut, atol=1e-5)
    assert np.abs(recut - whole.fake).max() > 1e-3  # re-cutting changed what was scored


def _read(path: Path) -> np.ndarray:
    from mesolive.imageio import read_image

    return read_image(path)


def test_the_pipeline_cuts_once_per_contract(tight_model: str, shared: Path) -> None:
    """Two models that see faces differently each score their own cut of the frame."""
    import cv2

    from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig
    from mesolive.types import Frame

    cap = cv2.VideoCapture(str(shared / "videos" / "real" / "ffpp_youtube_519.mp4"))
    ok, image = cap.read()
    cap.release()
    assert ok
    with FramePipeline(PipelineConfig(models=("meso4-df", tight_model))) as pipe:
        result = pipe.process(Frame(index=0, image=image, t_capture=0.0, source="t"))
        assert len(result.faces) == 1
        face = result.faces[0]
        for clf in pipe.classifiers:  # each cut straight into its runner's input buffer
            cut = clf.preprocess.cut(image, face.kps[None])
            assert np.array_equal(clf.runner.input_buffer(1), cut)
        for clf in pipe.classifiers:
            expected = clf.score(clf.preprocess.cut(image, face.kps[None])).fake[0]
            assert face.model_scores[clf.model_name] == pytest.approx(expected, abs=1e-5)
    assert face.model_scores["meso4-df"] != pytest.approx(face.model_scores["tight"], abs=1e-3)


def test_a_union_of_models_that_see_faces_differently_is_refused(tight_model: str) -> None:
    with pytest.raises(ModelError, match=r"see faces differently.*'scale'.*--models meso4-df,"):
        registry.get_spec("meso4-df+tight")


def test_a_trained_model_and_the_authors_make_a_union(tight_model: str, tmp_path: Path) -> None:
    """``mesolive train``'s models re-cut pre-cut crops, the authors' read them whole: a
    frame's face is cut alike, so they combine (README: ``--model my-model+meso4-df``);
    the union reads a pre-cut crop as its first model does."""
    path = tmp_path / "models" / "user_models.json"
    data = json.loads(path.read_text())
    data["models"][0]["preprocess"] = Preprocess(precut="recut").to_dict()
    path.write_text(json.dumps(data))
    assert registry.get_spec("tight+meso4-df").preprocess.precut == "recut"
    assert registry.get_spec("meso4-df+tight").preprocess.precut == "as-is"


def test_a_broken_contract_in_the_user_registry_is_one_line(
    tight_model: str, tmp_path: Path, shared: Path
) -> None:
    path = tmp_path / "models" / "user_models.json"
    data = json.loads(path.read_text())
    del data["models"][0]["preprocess"]["crop"]
    path.write_text(json.dumps(data))
    proc = subprocess.run(
        [sys.executable, "-m", "mesolive", "classify", str(shared / "samples"), "--model", "tight"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"mesolive: error: {path} entry 1: model 'tight': preprocessing field 'crop' is missing"
    ]


def test_models_list_names_the_default_and_why(tight_model: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mesolive", "models", "list"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    default = registry.default_model()
    marked = [line.split()[1] for line in proc.stdout.splitlines() if line[:2] == "* "]
    assert marked == [default, "default"]  # its row, and the line saying why
    assert f"* default model {default}" in proc.stdout
    assert "tight" in proc.stdout and "0.769" in proc.stdout


def test_only_a_validated_model_can_become_the_default(tight_model: str) -> None:
    """scripts/ship_model.py wants the card that only a finished validation writes."""
    from mesolive import paths

    manifest = paths.resources_dir() / "models.json"
    before = manifest.read_bytes()
    script = str(ROOT / "scripts" / "ship_model.py")
    proc = subprocess.run(
        [sys.executable, script, tight_model, "--as", "x", "--reason", "y", "--description", "z"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"{tight_model}: not a trained model with a model card"
    assert manifest.read_bytes() == before
    assert not (paths.resources_dir() / "weights" / "x.h5").exists()


def test_a_trained_models_missing_weights_say_they_cannot_be_fetched(
    tight_model: str, tmp_path: Path
) -> None:
    """Not "copy it into the model folder or drop --model-dir to download it": neither helps.
    Nor "train it again" alone: train refuses the name, which stays registered."""
    (tmp_path / "models" / "tight.h5").unlink()
    with pytest.raises(ModelError, match="tight are missing; a model trained here cannot be"):
        registry.weights_path(registry.get_spec(tight_model), model_dir=tmp_path / "elsewhere")
    with pytest.raises(ModelError, match="train it again under another --name"):
        registry.weights_path(registry.get_spec(tight_model))
