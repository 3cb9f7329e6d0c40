"""bfloat16 on the CPU through OpenVINO: the runner, its verdict, and --precision bf16."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mesolive.backends import cpuinfo
from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.backends.openvino import (
    INSTALL_HINT,
    STATIC_MAX_BATCH,
    OpenVinoRunner,
    openvino_version,
)
from mesolive.backends.select import open_runner
from mesolive.backends.verify import logits
from mesolive.errors import BackendUnavailable, InputError, ModelError
from mesolive.models import cpu_precision, registry
from mesolive.models.cpu_precision import Verdict

from .conftest import mesolive

if not openvino_version():  # imported through mesolive: with its telemetry off
    pytest.skip("OpenVINO is an optional extra (mesolive[openvino])", allow_module_level=True)

BF16 = bool(cpuinfo.bf16_flags())
needs_bf16 = pytest.mark.skipif(not BF16, reason="this CPU has no AMX/AVX-512 BF16")


def _fp32(model: str) -> Path:
    return registry.onnx_path(registry.get_spec(model), "fp32", progress=False)


def _ov(model: str) -> Path:
    return registry.openvino_graph(registry.get_spec(model), progress=False)


@pytest.mark.parametrize("model", ["meso4-df", "mesoinception4-df", "meso4-live"])
def test_float32_equals_onnx_runtime(model: str, test_faces: np.ndarray) -> None:
    with OnnxRuntimeRunner(_fp32(model)) as a, OpenVinoRunner(_ov(model), precision="fp32") as b:
        assert b.name == "openvino-cpu"
        assert [(s.name, s.shape[1:], s.dtype) for s in b.input_specs] == [
            (s.name, s.shape[1:], s.dtype) for s in a.input_specs
        ]
        assert b.output_names == a.output_names
        ref, got = logits(a, test_faces), logits(b, test_faces)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))


@pytest.mark.parametrize("model", ["meso4-df", "meso4-live"])
def test_every_batch_size_and_odd_rows(model: str, test_faces: np.ndarray) -> None:
    # meso4-df in lanes reads faces two a row: an odd batch is padded by one face, in the
    # runner's own buffer or by a copy; batches above STATIC_MAX_BATCH run the dynamic model
    with OnnxRuntimeRunner(_fp32(model)) as a, OpenVinoRunner(_ov(model)) as b:
        for n in (1, 3, 8, 5, STATIC_MAX_BATCH + 3, 1):
            faces = test_faces[n : 2 * n]
            ref = a.infer({"input": faces})["logit"]
            x = b.input_buffer(n)
            x[:] = faces
            for feed in (x, faces.copy()):
                got = b.infer({"input": feed})
                assert got["logit"].shape == got["p_real"].shape == (n, 1)
                assert np.abs(got["logit"] - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


@needs_bf16
def test_bfloat16_keeps_the_decisions(test_faces: np.ndarray) -> None:
    with (
        OnnxRuntimeRunner(_fp32("meso4-live")) as a,
        OpenVinoRunner(_ov("meso4-live"), precision="bf16") as b,
    ):
        assert b.name == "openvino-cpu-bf16"
        x = b.input_buffer(len(test_faces))  # the crops written into the runner's buffer
        x[:] = test_faces
        ref, got = logits(a, test_faces), logits(b, x)
    assert 0 < np.abs(got - ref).max() < 0.5  # computed in bfloat16, not float32
    assert np.mean((got > 0) != (ref > 0)) <= cpu_precision.MAX_FLIPPED


def test_openvino_sends_no_telemetry() -> None:
    with OpenVinoRunner(_fp32("meso4-df")):
        # OpenVINO's converter sends a usage event through openvino_telemetry (and starts a
        # thread for it) unless that package cannot be imported; the thread check of every
        # test (conftest) fails on such a thread
        assert sys.modules["openvino_telemetry"] is None
        assert "openvino.tools.ovc.telemetry_stub" in sys.modules


def test_without_openvino_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an install without the extra sees
    with pytest.raises(
        BackendUnavailable, match=re.escape(f"OpenVINO is not installed; {INSTALL_HINT}")
    ):
        OpenVinoRunner(_fp32("meso4-df"))


def test_a_file_openvino_cannot_read(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(ModelError, match="not an ONNX graph") as e:
        OpenVinoRunner(bad)
    assert "\n" not in str(e.value)


@needs_bf16
def test_bf16_verdict_is_judged_once_and_cached(
    calibration_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = registry.get_spec("meso4-df")
    fp32 = _fp32("meso4-df")
    verdict = cpu_precision.bf16_verdict(spec, fp32)
    assert verdict.precision == "bf16" and verdict.held_out == 24
    assert verdict.flipped <= 1 and verdict.faces_per_s > 0 and verdict.fp32_faces_per_s > 0
    pattern = fp32.name.replace(".fp32.onnx", ".bf16-openvino-*.verdict.json")
    (file,) = fp32.parent.glob(pattern)
    assert json.loads(file.read_text())["speedup"] == verdict.speedup
    with monkeypatch.context() as m:
        m.setattr(cpu_precision, "_compare", lambda *a, **k: pytest.fail("judged again"))
        assert cpu_precision.bf16_verdict(spec, fp32) == verdict
    file.write_text("{")  # unreadable: judged again
    assert cpu_precision.bf16_verdict(spec, fp32).held_out == 24
    # other held-out crops, another verdict
    sorted(calibration_folder.glob("*.jpg"))[-1].unlink()
    cpu_precision.bf16_verdict(spec, fp32)
    assert len(list(fp32.parent.glob(pattern))) == 2


def test_auto_takes_the_fastest_qualified_path(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry.get_spec("meso4-df")
    fp32 = _fp32("meso4-df")
    int8 = fp32.with_name("int8.onnx")
    verdicts = {
        "int8": Verdict(256, 0, 500, 600, 1.2),
        "bf16": Verdict(256, 1, 500, 1000, 2.0, precision="bf16"),
    }

    def judged(precision: str, *_: object) -> tuple[Path, Verdict]:
        if precision not in verdicts:
            raise BackendUnavailable(f"no {precision} here")
        return (int8 if precision == "int8" else fp32), verdicts[precision]

    monkeypatch.setattr(cpu_precision, "_judged", judged)
    assert cpu_precision.cpu_graph(spec, fp32, "auto") == (fp32, "bf16", "")
    assert cpu_precision.cpu_graph(spec, fp32, "auto", paths=("int8",)) == (int8, "int8", "")
    verdicts["bf16"] = Verdict(256, 9, 500, 1000, 2.0, precision="bf16")
    assert cpu_precision.cpu_graph(spec, fp32, "auto") == (int8, "int8", "")
    verdicts["int8"] = Verdict(256, 0, 500, 510, 1.02)
    assert cpu_precision.cpu_graph(spec, fp32, "auto") == (
        fp32,
        "fp32",
        "INT8 not used: INT8 measured x1.02 the float32 faces/s here; "
        "bfloat16 not used: bfloat16 flips 9 of 256 held-out decisions (more than 2%)",
    )
    del verdicts["bf16"]  # not on this CPU or install: only logged
    assert cpu_precision.cpu_graph(spec, fp32, "auto") == (
        fp32,
        "fp32",
        "INT8 not used: INT8 measured x1.02 the float32 faces/s here",
    )
    # an explicit precision runs whatever its verdict says
    assert cpu_precision.cpu_graph(spec, fp32, "int8") == (int8, "int8", "")


def test_bf16_needs_the_instructions_not_crops(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry.get_spec("meso4-df")
    fp32 = _fp32("meso4-df")
    with monkeypatch.context() as m:
        m.setattr(cpuinfo, "bf16_flags", lambda: ())
        with pytest.raises(BackendUnavailable, match="--precision bf16: this CPU has none of"):
            cpu_precision.cpu_graph(spec, fp32, "bf16")
    if BF16:  # asked for, it is not judged: no crops needed (the authors' models were refused)
        monkeypatch.delenv(cpu_precision.CALIBRATION_ENV, raising=False)
        graph = registry.openvino_graph(spec)
        assert cpu_precision.cpu_graph(spec, fp32, "bf16") == (graph, "bf16", "")
        with pytest.raises(InputError, match=cpu_precision.CALIBRATION_ENV):
            cpu_precision.cpu_graph(spec, fp32, "int8")  # which must quantize on them


def test_cpuinfo_bf16_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile amx_bf16\n")
    monkeypatch.setattr(cpuinfo, "CPUINFO", fake)
    assert cpuinfo.bf16_flags() == ("amx_bf16", "avx512_bf16")
    assert cpuinfo.int8_flags() == ()
    fake.write_text("flags\t\t: fpu avx2\n")
    assert cpuinfo.bf16_flags() == ()


def test_open_runner_openvino() -> None:
    with open_runner("meso4-df", backend="openvino", precision="fp32") as r:
        assert r.name == "openvino-cpu"
    said = r"int8 runs in ONNX Runtime on the CPU, not in --backend openvino"
    with pytest.raises(BackendUnavailable, match=said):
        open_runner("meso4-df", backend="openvino", precision="int8")
    said = r"bf16 runs in OpenVINO on the CPU, not in --backend onnxruntime-cpu"
    with pytest.raises(BackendUnavailable, match=said):
        open_runner("meso4-df", backend="onnxruntime-cpu", precision="bf16")


@needs_bf16
def test_cli_bf16_reaches_the_runner(calibration_folder: Path, shared: Path) -> None:
    samples = str(shared / "samples" / "faces")
    env = {cpu_precision.CALIBRATION_ENV: str(calibration_folder)}
    words = {}
    for precision, label in (("bf16", "OpenVINO CPU bfloat16"), ("fp32", "ONNX Runtime CPU")):
        proc = mesolive("classify", samples, "--model", "meso4-df", "--precision", precision,
                        env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert f"mesolive: backend: {label}" in proc.stderr
        words[precision] = [line.split()[1] for line in proc.stdout.splitlines()[1:]]
    assert words["bf16"] == words["fp32"] == ["FAKE", "FAKE", "real", "real"]
    # asked for, bf16 needs no crops: an authors' model (no card) was refused without them
    proc = mesolive("classify", samples, "--model", "meso4-df", "--precision", "bf16",
                    env={cpu_precision.CALIBRATION_ENV: ""})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[1] for line in proc.stdout.splitlines()[1:]] == words["bf16"]
    proc = mesolive("classify", samples, "--precision", "bf16", "--backend", "onnxruntime")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mesolive: error: --precision bf16 runs in OpenVINO on the CPU, not in --backend "
        "onnxruntime"
    ]


@pytest.mark.parametrize("model", ["meso4-live", "meso4-live-hq"])
def test_packaged_cards_record_bf16_for_their_graphs(model: str) -> None:
    # fails when a converter or weights change leaves the record naming an older graph:
    # re-run scripts/precision_agreement.py --record
    record = cpu_precision.card_agreement(registry.get_spec(model), _ov(model))
    assert record is not None
    assert record["crops"] == 600 and record["flipped"] <= 0.02 * 600


@needs_bf16
def test_bf16_verdict_takes_the_cards_word_without_crops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(cpu_precision.CALIBRATION_ENV, raising=False)
    spec = registry.get_spec("meso4-live")
    fp32 = _fp32("meso4-live")
    record = cpu_precision.card_agreement(spec, _ov("meso4-live"))
    verdict = cpu_precision.bf16_verdict(spec, fp32)
    assert (verdict.held_out, verdict.flipped) == (record["crops"], record["flipped"])
    assert verdict.calibration["model_card"] == record["on"] and verdict.faces_per_s > 0
    # a record of another graph is not this graph's: crops are needed again
    card = json.loads(registry.card_path(spec).read_text())
    card[cpu_precision.AGREEMENT_KEY]["graph"] = "meso4-live.0000000000000000.v3.fp32.onnx"
    (tmp_path / spec.card).write_text(json.dumps(card))
    monkeypatch.setattr(registry, "card_path", lambda s: tmp_path / s.card)
    assert cpu_precision.card_agreement(spec, _ov("meso4-live")) is None
    with pytest.raises(InputError, match=cpu_precision.CALIBRATION_ENV):
        cpu_precision.bf16_verdict(spec, fp32)


@needs_bf16
def test_the_gui_preloads_openvino_where_auto_may_run_it() -> None:
    # a worker thread's first import of a large package while Qt's event loop runs can hang
    # (pipeline.preload): the GUI thread imports OpenVINO first, telemetry still off
    code = (
        "import sys; from mesolive.pipeline.pipeline import preload; "
        "assert 'openvino' not in sys.modules; preload(); "
        "print('openvino' in sys.modules, sys.modules['openvino_telemetry'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "None"]
