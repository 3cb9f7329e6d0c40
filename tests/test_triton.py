"""Triton Inference Server: the exported model repository and the ``triton://`` back end.

The repository is checked against Triton's own config schema (tritonclient's
``model_config_pb2``) and its graphs against mesolive's runner. The client is
checked against :mod:`tests.triton_standin`, a real gRPC server speaking
Triton's protocol over that repository (no tritonserver binary can be had
here), and against a real ``tritonserver`` where one is on ``PATH``.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

pytest.importorskip("tritonclient.grpc", reason="no tritonclient: pip install 'mesolive[triton]'")

import onnxruntime as ort
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from mesolive.backends.base import TensorSpec
from mesolive.backends.select import open_runner
from mesolive.backends.triton import TritonRunner
from mesolive.classify.mesonet import load_classifier
from mesolive.commands.common import score_files
from mesolive.errors import BackendUnavailable, ModelError
from mesolive.imageio import expand_paths
from mesolive.models.registry import get_spec, list_specs

from .conftest import ROOT, mesolive

MAX_BATCH = 3
"""Below the 4 sample faces, so that every scoring run is split into two requests."""


def _shipped() -> list[str]:
    return [s.name for s in list_specs() if not s.user]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(folder: Path) -> mc.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())


def _faces(shared: Path) -> Path:
    return shared / "samples" / "faces"


def _local_scores(model: str, faces: Path) -> dict[str, float]:
    """Fake scores as ``classify`` computes them on this machine's ONNX Runtime."""
    files, problems = expand_paths([str(faces)])
    assert not problems
    with load_classifier(model, backend="onnxruntime-cpu", progress=False) as clf:
        scores, errors = score_files(clf, files)
    assert not errors
    return {str(s.path): s.fake_score for s in scores}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every shipped model exported as a user does, with a max batch below the sample count."""
    root = tmp_path_factory.mktemp("triton") / "models"
    out = mesolive("export", "triton", str(root), "--max-batch", str(MAX_BATCH), check=True)
    assert out.stdout.splitlines() == [f"{n}: {root / n}" for n in _shipped()]
    return root


def _other_input_model(folder: Path) -> None:
    """A model Triton serves happily whose input is not mesolive's: (N, 3, 128, 128)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 128, 128])
    y = helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Flatten", ["mean"], ["logit"], axis=1),
    ]
    graph = helper.make_graph(nodes, "other", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (folder / "1").mkdir(parents=True)
    onnx.save(model, folder / "1" / "model.onnx")
    (folder / "config.pbtxt").write_text(
        'name: "other-input"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
        'input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 128, 128 ] } ]\n'
        'output [ { name: "logit" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
    )


@pytest.fixture(scope="module")
def standin(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``triton://127.0.0.1:PORT`` of a stand-in serving the repository plus two bad models.

    ``broken`` has a damaged graph (Triton marks such a model UNAVAILABLE);
    ``other-input`` loads but takes another input than mesolive's contract.
    """
    served = tmp_path_factory.mktemp("standin") / "models"
    shutil.copytree(repo, served)
    broken = served / "broken"
    shutil.copytree(served / "meso4-df", broken)
    config = (broken / "config.pbtxt").read_text().replace('name: "meso4-df"', 'name: "broken"')
    (broken / "config.pbtxt").write_text(config)
    (broken / "1" / "model.onnx").write_bytes(b"not an onnx graph")
    _other_input_model(served / "other-input")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.triton_standin", str(served)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
        assert line.startswith("PORT "), f"the stand-in did not start: {line!r}"
        yield f"triton://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]


# -- the repository ---------------------------------------------------------------------


def test_repository_matches_triton_schema_and_mesolive(repo: Path, shared: Path) -> None:
    crops = [cv2.imread(str(p)) for p in sorted(_faces(shared).rglob("*.jpg"))]
    assert len(crops) == 4
    names = _shipped()
    assert sorted(p.name for p in repo.iterdir()) == sorted(names)  # no leftovers
    for name in names:
        config = _config(repo / name)
        assert (config.name, config.platform, config.max_batch_size) == (
            name,
            "onnxruntime_onnx",
            MAX_BATCH,
        )
        tensors = [
            (t.name, mc.DataType.Name(t.data_type), list(t.dims))
            for t in [*config.input, *config.output]
        ]
        assert tensors == [
            ("input", "TYPE_UINT8", [256, 256, 3]),
            ("logit", "TYPE_FP32", [1]),
            ("p_real", "TYPE_FP32", [1]),
        ]
        assert list(config.dynamic_batching.preferred_batch_size) == [MAX_BATCH]
        assert config.dynamic_batching.max_queue_delay_microseconds > 0
        assert not config.HasField("optimization")  # TensorRT only when asked
        # the comment header states the contract a client must honour
        p = get_spec(name).preprocess
        text = (repo / name / "config.pbtxt").read_text()
        for fact in (
            f"rule '{p.crop}' at scale {p.scale:.4g}",
            f"{p.size} x {p.size} pixels",
            f"UINT8 NHWC [batch, {p.size}, {p.size}, 3], BGR",
            f"to {p.colour.upper()} in {p.value_range[0]:g}..{p.value_range[1]:g} itself",
            "nearest neighbour" if p.interpolation == "nearest" else "bilinear",
        ):
            assert fact in text, (name, fact)

        batch = p.pixels(crops)
        served = ort.InferenceSession(str(repo / name / "1" / "model.onnx"))
        with open_runner(name, backend="onnxruntime-cpu", progress=False) as local:
            expected = local.infer({"input": batch})["logit"]
        np.testing.assert_allclose(
            served.run(["logit"], {"input": batch})[0], expected, rtol=1e-5, atol=1e-5
        )  # another session's kernel choices (layouts) may round differently


def test_tensorrt_option_and_what_export_refuses(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    export = ("export", "triton", str(root), "--models")
    mesolive(*export, "meso4-df", "--tensorrt", "fp16", check=True)
    config = _config(root / "meso4-df")
    assert config.max_batch_size == 64
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 64]
    (accel,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accel.name == "tensorrt"
    assert dict(accel.parameters) == {
        "precision_mode": "FP16",
        "max_workspace_size_bytes": str(1 << 30),
    }
    before = (root / "meso4-df" / "config.pbtxt").read_text()

    out = mesolive(*export, "meso4-df")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "meso4-df: the folder exists and is not empty; pass --force" in out.stderr
    assert (root / "meso4-df" / "config.pbtxt").read_text() == before

    out = mesolive(*export, "meso4-f2f,meso9")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "unknown model 'meso9'" in out.stderr
    assert not (root / "meso4-f2f").exists()  # names are checked before anything is written

    out = mesolive(*export, "meso4-f2f", "--models", "meso4-df", "--force", check=True)
    assert out.stdout.splitlines() == [f"{n}: {root / n}" for n in ("meso4-f2f", "meso4-df")]
    shutil.rmtree(root / "meso4-f2f")  # a repeated --models adds to the list, as scan's

    mesolive(*export, "meso4-df", "--tensorrt", "fp32", "--force", check=True)
    config = _config(root / "meso4-df")
    (accel,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accel.parameters["precision_mode"] == "FP32"
    assert [p.name for p in root.iterdir()] == ["meso4-df"]  # the old folder is gone, no temp


# -- the client against the stand-in -----------------------------------------------------


@pytest.mark.parametrize("model", ["meso4-live", "mesoinception4-df"])
def test_classify_through_triton_equals_local(standin: str, shared: Path, model: str) -> None:
    faces = _faces(shared)
    out = mesolive(
        "classify", str(faces), "--model", model, "--json", "--backend", standin, check=True
    )
    assert f"backend: Triton at {standin}, model {model}, batch <= {MAX_BATCH}" in out.stderr
    remote = {r["path"]: r["fake_score"] for r in json.loads(out.stdout)}
    local = _local_scores(model, faces)
    assert remote.keys() == local.keys() and len(local) == 4
    for path, score in local.items():
        assert remote[path] == pytest.approx(score, abs=1e-5), path


def test_runner_contract(standin: str, shared: Path) -> None:
    crops = [cv2.imread(str(p)) for p in sorted(_faces(shared).rglob("*.jpg"))][:MAX_BATCH]
    batch = get_spec("meso4-df").preprocess.pixels(crops)
    runner = TritonRunner(standin, "meso4-df")
    with runner:
        assert runner.input_specs == [TensorSpec("input", (-1, 256, 256, 3), np.uint8)]
        assert runner.max_batch == MAX_BATCH
        runner.warmup(2)
        with open_runner("meso4-df", backend="onnxruntime-cpu", progress=False) as local:
            expected = local.infer({"input": batch})["logit"]
        np.testing.assert_allclose(runner.infer({"input": batch})["logit"], expected, atol=1e-6)
    runner.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        runner.infer({"input": batch})


def test_no_server_and_missing_model_are_one_line(standin: str, shared: Path) -> None:
    faces = str(_faces(shared))
    url = f"triton://127.0.0.1:{_free_port()}"
    out = mesolive("classify", faces, "--backend", url)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert f"mesolive: error: {url}, model meso4-live: no Triton server answers" in out.stderr

    out = mesolive("classify", faces, "--backend", standin, "--model", "meso4-df+meso4-f2f")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert f"{standin}, model meso4-df+meso4-f2f: the server has no such model" in out.stderr
    assert "it serves broken, meso4-df," in out.stderr

    out = mesolive("classify", faces, "--backend", "triton://127.0.0.1:8001/v2")
    assert out.returncode == 2 and "expected triton://HOST:PORT" in out.stderr
    out = mesolive("classify", faces, "--backend", "tensorrt-int4")
    assert out.returncode == 2 and "'tensorrt-int4' is not a back end" in out.stderr


def test_model_not_ready_or_not_mesolives(standin: str) -> None:
    with pytest.raises(BackendUnavailable) as e:
        TritonRunner(standin, "broken")
    assert str(e.value).startswith(f"{standin}, model broken: the model is not ready (UNAVAILABLE")
    with pytest.raises(ModelError) as e:
        TritonRunner(standin, "other-input")
    assert str(e.value) == (
        f"{standin}, model other-input: the server's model takes input FP32[-1,3,128,128], "
        "mesolive's contract for it is input UINT8[-1,256,256,3]; re-export it with "
        "'mesolive export triton'"
    )


def test_a_silent_server_times_out() -> None:
    """A port that accepts connections but never speaks gRPC: the timeout bounds the wait."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"triton://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(BackendUnavailable, match="no Triton server answers"):
            TritonRunner(url, "meso4-df", timeout=0.5)
        assert time.monotonic() - start < 3


# -- a real tritonserver -------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("tritonserver") is None,
    reason="no tritonserver on PATH (it comes in NVIDIA's nvcr.io/nvidia/tritonserver image)",
)
def test_real_tritonserver(repo: Path, shared: Path, tmp_path: Path) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    port = _free_port()
    log = (tmp_path / "tritonserver.log").open("w")
    proc = subprocess.Popen(
        [
            "tritonserver",
            f"--model-repository={repo}",
            f"--grpc-port={port}",
            "--allow-http=false",
            "--allow-metrics=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        ready = False
        deadline = time.monotonic() + 180
        while not ready and time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = client.is_server_ready(client_timeout=2)
            except InferenceServerException:  # not listening yet
                ready = False
            if not ready:
                time.sleep(1)
        client.close()
        assert ready, (tmp_path / "tritonserver.log").read_text()[-2000:]
        faces = _faces(shared)
        out = mesolive(
            "classify", str(faces), "--json", "--backend", f"triton://127.0.0.1:{port}", check=True
        )
        remote = {r["path"]: r["fake_score"] for r in json.loads(out.stdout)}
        local = _local_scores("meso4-live", faces)
        assert remote.keys() == local.keys()
        for path, score in local.items():  # a GPU's convolutions round differently
            assert remote[path] == pytest.approx(score, abs=1e-4), path
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
