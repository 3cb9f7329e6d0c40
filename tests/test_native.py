"""MesoInception-4's inception blocks in the C kernel built here, ONNX Runtime for the rest."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from mesolive.backends import native_build
from mesolive.backends.native import NativeInceptionRunner, open_native
from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.backends.select import open_runner
from mesolive.classify.preprocess import AUTHORS, Preprocess
from mesolive.errors import BackendUnavailable, InputError
from mesolive.models import cpu_precision, registry
from mesolive.models.inception_native import native_stages, why_not_native
from mesolive.models.keras_h5 import load_keras_weights
from mesolive.models.onnx_graph import build_onnx, build_tail_onnx

from .conftest import MODELS, mesolive

H5 = {"mesoinception4-df": "MesoInception_DF", "mesoinception4-f2f": "MesoInception_F2F"}


def _weights(name: str):
    return load_keras_weights(MODELS / f"{H5[name]}.h5", expect="mesoinception4")


@pytest.fixture(scope="module")
def kernel() -> None:
    """The kernel, built once (CI installs gcc: scripts/system-deps.sh)."""
    native_build.load_kernel()


@pytest.mark.parametrize("name", sorted(H5))
def test_logits_match_keras_golden(name: str, golden: dict[str, np.ndarray], kernel: None) -> None:
    with NativeInceptionRunner(_weights(name), AUTHORS, threads=2) as runner:
        out = runner.infer({"input": golden["images_u8"][..., ::-1]})  # BGR, as crops are held
    assert np.abs(out["logit"][:, 0] - golden[f"{H5[name]}_logit"]).max() < 1e-4
    np.testing.assert_allclose(out["p_real"], 1 / (1 + np.exp(-out["logit"])), atol=1e-6)


@pytest.mark.parametrize(
    "contract",
    [AUTHORS, Preprocess(colour="bgr"), Preprocess(value_range=(-1.0, 1.0))],
    ids=["authors", "bgr", "centred"],
)
def test_every_contract_reads_the_pixels_as_the_graph_does(
    contract: Preprocess, test_faces: np.ndarray, kernel: None
) -> None:
    """The colour order and the range are folded into the first 1×1 weights (low into the
    bias); ONNX Runtime's graph folds them its own way. 124 real crops, odd batches."""
    w = _weights("mesoinception4-f2f")
    with (
        NativeInceptionRunner(w, contract, threads=2) as native,
        OnnxRuntimeRunner(build_onnx(w, contract=contract).SerializeToString()) as ort,
    ):
        for batch in (test_faces[:1], test_faces[1:8], test_faces[8:]):
            got = native.infer({"input": batch})["logit"]
            ref = ort.infer({"input": batch})["logit"]
            assert got.shape == ref.shape == (len(batch), 1)
            assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def test_threads_and_batch_sizes_agree(test_faces: np.ndarray, kernel: None) -> None:
    w = _weights("mesoinception4-df")
    with (
        NativeInceptionRunner(w, AUTHORS, threads=1) as one,
        NativeInceptionRunner(w, AUTHORS, threads=3) as three,
    ):
        whole = one.infer({"input": test_faces[:7]})["logit"]
        assert np.array_equal(three.infer({"input": test_faces[:7]})["logit"], whole)
        assert three.infer({"input": test_faces[:0]})["logit"].shape == (0, 1)


def test_the_tail_graph_starts_where_the_kernel_stops() -> None:
    tail = build_tail_onnx(_weights("mesoinception4-df"), 2)
    (image,) = tail.graph.input
    assert [d.dim_value or d.dim_param for d in image.type.tensor_type.shape.dim] == [
        "N",
        12,
        64,
        64,
    ]
    assert [o.name for o in tail.graph.output] == ["logit", "p_real"]
    with pytest.raises(ValueError, match="first must be"):
        build_tail_onnx(_weights("mesoinception4-df"), 4)


def test_meso4_is_not_the_kernels() -> None:
    meso4 = load_keras_weights(MODELS / "Meso4_DF.h5")
    assert "does not start with 2 inception blocks" in why_not_native(meso4)
    with pytest.raises(ValueError, match="inception blocks"):
        native_stages(meso4, AUTHORS)
    with pytest.raises(BackendUnavailable, match="one MesoInception-4 network"):
        open_native(registry.get_spec("meso4-df"))


def test_bad_input_is_one_line(kernel: None) -> None:
    with NativeInceptionRunner(_weights("mesoinception4-df"), AUTHORS) as runner:
        with pytest.raises(InputError, match=r"uint8 crops, got \(2, 256, 256, 3\) float32"):
            runner.infer({"input": np.zeros((2, 256, 256, 3), np.float32)})
        runner.close()
        with pytest.raises(RuntimeError, match="closed"):
            runner.infer({"input": np.zeros((1, 256, 256, 3), np.uint8)})


def test_a_failed_build_falls_back_to_onnx_runtime(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A compiler that fails: one line saying why, nothing half-written in the cache, and
    ``auto`` runs ONNX Runtime's graph."""
    cc = tmp_path / "cc"  # a compiler that answers --version and fails every build
    cc.write_text(
        '#!/bin/sh\n[ "$1" = --version ] && { echo cc 1.0; exit 0; }\n'
        'echo "In file included from x.h:1:" >&2; echo "x.h:1: error: no" >&2; exit 1\n'
    )
    cc.chmod(0o755)
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.delenv(cpu_precision.CALIBRATION_ENV, raising=False)
    out, command = native_build.library_path()
    assert command[0] == str(cc) and out.parent == tmp_path / "native"
    with pytest.raises(BackendUnavailable) as e:
        native_build.load_kernel()
    assert str(e.value) == f"the C kernel did not build ({cc}: x.h:1: error: no)"
    assert not any((tmp_path / "native").iterdir())
    with caplog.at_level(logging.DEBUG, "mesolive"):
        with open_runner("mesoinception4-df", progress=False) as runner:
            assert runner.name == "onnxruntime-cpu"
    assert "the C kernel not used: the C kernel did not build" in caplog.text
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(BackendUnavailable, match="does not run"):
        native_build.library_path()


def test_auto_runs_the_kernel_where_it_measured_faster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kernel: None
) -> None:
    """The verdict is measured once (no calibration folder: random pixels) and cached; auto
    takes the kernel only where it qualifies, and fp32 stays ONNX Runtime's graph."""
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(cpu_precision.CALIBRATION_ENV, raising=False)
    spec = registry.get_spec("mesoinception4-df")
    fp32 = registry.onnx_path(spec, "fp32", progress=False)
    verdict = cpu_precision.native_verdict(spec, fp32)
    assert verdict.precision == "native" and verdict.flipped == 0
    assert verdict.held_out == cpu_precision.HELD_OUT_CROPS
    assert verdict.calibration == {"pixels": "random, seed 0"}
    (cached,) = tmp_path.glob("onnx/*.native-*.verdict.json")
    with monkeypatch.context() as m:
        m.setattr(cpu_precision, "_compare", lambda *a, **k: pytest.fail("judged twice"))
        assert cpu_precision.native_verdict(spec, fp32) == verdict
    expected = "native-cpu" if not verdict.why_not() else "onnxruntime-cpu"
    with open_runner("mesoinception4-df", progress=False) as runner:
        assert runner.name == expected
    with open_runner("mesoinception4-df", precision="fp32", progress=False) as runner:
        assert runner.name == "onnxruntime-cpu"
    with open_runner("mesoinception4-df", backend="onnxruntime", progress=False) as runner:
        assert runner.name == "onnxruntime-cpu"
    # a slower kernel is not taken
    slow = cpu_precision.Verdict(**{**verdict.__dict__, "speedup": 0.9})
    cpu_precision._write_verdict(cached, slow)
    with open_runner("mesoinception4-df", progress=False) as runner:
        assert runner.name == "onnxruntime-cpu"


def test_classify_runs_the_kernel_as_a_user_would(shared: Path, kernel: None) -> None:
    """End to end: the back-end line names what ran, and the scores are ONNX Runtime's."""
    samples = str(shared / "samples" / "faces")
    runs = {}
    for precision in ("auto", "fp32"):
        proc = mesolive(
            "classify", samples, "--model", "mesoinception4-df", "--json",
            "--precision", precision, check=True,
        )  # fmt: skip
        runs[precision] = (json.loads(proc.stdout), proc.stderr)
    spec = registry.get_spec("mesoinception4-df")
    verdict = cpu_precision.native_verdict(spec, registry.onnx_path(spec, progress=False))
    label = "ONNX Runtime CPU" if verdict.why_not() else "C kernel + ONNX Runtime CPU"
    assert f"mesolive: backend: {label} (" in runs["auto"][1]
    assert "mesolive: backend: ONNX Runtime CPU (" in runs["fp32"][1]
    auto, fp32 = runs["auto"][0], runs["fp32"][0]
    assert (
        [r["label"] for r in auto] == [r["label"] for r in fp32] == ["fake", "fake", "real", "real"]
    )
    assert np.allclose([r["fake_score"] for r in auto], [r["fake_score"] for r in fp32], atol=1e-5)


def test_the_kernel_is_judged_on_the_calibration_crops_where_set(
    calibration_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kernel: None
) -> None:
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path / "cache"))
    spec = registry.get_spec("mesoinception4-f2f")
    verdict = cpu_precision.native_verdict(spec, registry.onnx_path(spec, progress=False))
    assert verdict.calibration == {"folder": str(calibration_folder)}
    assert (verdict.held_out, verdict.flipped) == (24, 0)  # 48 crops: the second half judges
    for f in sorted(calibration_folder.glob("*.jpg"))[8:]:
        f.unlink()
    with pytest.raises(InputError, match="needs at least 32 face crops"):
        cpu_precision.native_verdict(spec, registry.onnx_path(spec, progress=False))
