"""``mesolive scan --cluster``: a real local Ray cluster, started and stopped by each CLI run.

Ray runs in the CLI's process (never in pytest's), so its threads and
processes end with it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from importlib.util import find_spec
from pathlib import Path

import pytest

from mesolive.cli import main

from .conftest import ctrl_c_as_from_a_terminal, mesolive, start_mesolive

pytestmark = pytest.mark.skipif(
    find_spec("ray") is None, reason="needs Ray: pip install 'mesolive[cluster]'"
)

CLIPS = [
    Path("videos") / "real" / "hamilton_clip.mp4",
    Path("videos") / "fake" / "inthewild_obama.mp4",
    Path("videos") / "synthetic" / "group_pan_720p30.mp4",
    Path("videos") / "fake" / "ffpp_deepfakes_519_515.mp4",
]
SHORT = ("--max-frames", "30", "--every", "3", "--models", "meso4-df")


def _scan(*args: str, tmp: Path, name: str) -> tuple[subprocess.CompletedProcess[str], dict, list]:
    js, cs = tmp / f"{name}.json", tmp / f"{name}.csv"
    proc = mesolive("scan", *args, "--json", str(js), "--csv", str(cs), timeout=180)
    with open(cs, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return proc, json.loads(js.read_text()), rows


def test_cluster_scan_gives_the_local_scan(shared: Path, tmp_path: Path) -> None:
    clips = [str(shared / c) for c in CLIPS]
    here, local, local_rows = _scan(*clips, *SHORT, tmp=tmp_path, name="local")
    there, cluster, cluster_rows = _scan(
        *clips, *SHORT, "--cluster", "local:2", tmp=tmp_path, name="cluster"
    )
    assert there.returncode == here.returncode, there.stderr
    assert there.stdout == here.stdout  # the same reports, printed in input order
    assert cluster_rows == local_rows and len(local_rows) > 90
    assert cluster["config"] == local["config"]
    assert [i["input"] for i in cluster["inputs"]] == clips
    for a, b in zip(local["inputs"], cluster["inputs"], strict=True):
        assert (b["verdict"], b["frames"], b["analysed"], b["error"]) == (
            a["verdict"], a["frames"], a["analysed"], a["error"]
        )  # fmt: skip
        assert len(b["tracks"]) == len(a["tracks"]) > 0
        for s, t in zip(a["tracks"], b["tracks"], strict=True):
            assert t["verdict"] == s["verdict"]
            assert t["mean_score"] == pytest.approx(s["mean_score"], abs=1e-6)
            assert [p["frame"] for p in t["timeline"]] == [p["frame"] for p in s["timeline"]]
            got = [p["fake_score"] for p in t["timeline"]]
            assert got == pytest.approx([p["fake_score"] for p in s["timeline"]], abs=1e-6)


@pytest.mark.parametrize(
    ("address", "env", "says"),
    [
        ("ray://127.0.0.1:1", {}, "cannot reach 127.0.0.1:1"),
        ("auto", {"RAY_ADDRESS": "127.0.0.1:1"}, "cannot reach"),
        ("local:0", {}, "give at least 1 CPU"),
        ("127.0.0.1:6379", {}, "expected auto, local, local:N or ray://HOST:PORT"),
    ],
)
def test_an_unusable_address_is_one_line_at_once(
    shared: Path, address: str, env: dict[str, str], says: str
) -> None:
    t0 = time.monotonic()
    proc = mesolive("scan", str(shared / CLIPS[0]), "--cluster", address, env=env, timeout=60)
    assert time.monotonic() - t0 < 20
    assert proc.returncode == 2 and proc.stdout == ""
    # (a model converted into a fresh cache first is logged above it)
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("mesolive: error:")]
    assert proc.stderr.endswith(line + "\n")
    assert line.startswith(f"mesolive: error: --cluster {address}: ") and says in line


def test_without_ray_says_how_to_install(
    shared: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is absent
    assert main(["scan", str(shared / CLIPS[0]), "--cluster", "local"]) == 2
    err = capsys.readouterr().err
    assert err == "mesolive: error: --cluster needs Ray: pip install 'mesolive[cluster]'\n"


def _ray_task_pid(text: str) -> int | None:
    """The process of the Ray task scanning an input whose name holds ``text``, if running.

    Ray titles a worker process ``ray::<task name>`` while the task runs, and
    scan names each task ``scan <input>``.
    """
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::scan ") and text.encode() in title:
            return int(cmdline.parent.name)
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker in /proc")
def test_a_worker_killed_mid_scan_is_that_inputs_error(shared: Path, tmp_path: Path) -> None:
    doomed = tmp_path / f"doomed-{uuid.uuid4().hex[:12]}.mp4"
    doomed.symlink_to(shared / "videos" / "real" / "ffpp_youtube_519.mp4")  # 751 frames
    images = [str(shared / "facebox" / f) for f in ("dogs.jpg", "Tom_Cruise_avp_2014_4.jpg")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesolive", "scan", images[0], str(doomed), images[1],
         "--models", "meso4-df", "--cluster", "local:2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (pid := _ray_task_pid(doomed.name)) is None and proc.poll() is None:
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.02)
        assert pid is not None, proc.communicate()
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert "Traceback" not in err, err
    assert proc.returncode == 2, out + err
    heads = [line for line in out.splitlines() if not line.startswith(" ")]
    assert heads == [
        f"{images[0]}: no face found in 1 frames (1 analysed)",
        f"{doomed}: ERROR: the worker scanning it died (killed, out of memory, or crashed)",
        f"{images[1]}: REAL · 1 face track(s) in 1 frames (1 analysed)",
        "3 inputs: 1 real, 1 no face, 1 failed",
    ]
    assert f"mesolive: error: {doomed}: the worker scanning it died" in err


def test_a_node_copy_failing_its_checksum_is_refused(shared: Path, tmp_path: Path) -> None:
    # The node's copy of the detector, kept under its sha256, was changed.
    detector = (shared / "models" / "scrfd_500m_bnkps_dynamic.onnx").read_bytes()
    copy = tmp_path / "cache" / "cluster" / f"{hashlib.sha256(detector).hexdigest()}.onnx"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(detector[:-1] + b"\0")
    clips = [str(shared / c) for c in CLIPS[:2]]
    proc = mesolive(
        "scan", *clips, "--max-frames", "3", "--models", "meso4-df", "--cluster", "local:2",
        env={"MESOLIVE_CACHE_DIR": str(tmp_path / "cache")}, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for clip in clips:
        assert f"{clip}: ERROR: on node " in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mesolive: error:")]
    assert len(errors) == 2
    for line in errors:
        assert (
            f"{copy}: this node's copy of scrfd_500m_bnkps_dynamic.onnx fails its checksum" in line
        )
    assert copy.read_bytes() == detector[:-1] + b"\0"  # refused, not silently replaced


def test_a_nodes_tasks_share_what_it_judged_of_the_precisions(shared: Path, tmp_path: Path) -> None:
    # --precision auto judges bfloat16/INT8 once per model and machine; each task's
    # private cache is removed after it, so the node keeps the verdicts for its next tasks.
    images = [str(p) for p in sorted((shared / "faces" / "dfdc" / "real").iterdir())[:2]]
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path / "cache"), "MESOLIVE_CALIBRATION": ""}

    def backend(name: str) -> str:
        js = tmp_path / f"{name}.json"
        proc = mesolive("scan", *images, "--cluster", "local:1", "--json", str(js), env=env)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        return json.loads(js.read_text())["backend"]

    first = backend("first")
    kept = list((tmp_path / "cache" / "cluster" / "judged").glob("*/*.verdict.json"))
    if first == "onnxruntime-cpu":
        pytest.skip("this CPU or install has no reduced precision for the default model")
    assert first == "openvino-cpu-bf16" and len(kept) == 1
    verdict = json.loads(kept[0].read_text())
    kept[0].write_text(json.dumps({**verdict, "speedup": 0.5}))  # as if measured slower here
    assert backend("second") == "onnxruntime-cpu"  # read, not measured again
    assert json.loads(kept[0].read_text())["speedup"] == 0.5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker in /proc")
def test_ctrl_c_cancels_and_writes_the_partial_report(shared: Path, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:12]
    long = shared / "videos" / "real" / "ffpp_youtube_519.mp4"  # 751 frames
    clips = [tmp_path / f"long-{tag}-{i}.mp4" for i in range(3)]
    for clip in clips:
        clip.symlink_to(long)
    js = tmp_path / "scan.json"
    proc = start_mesolive(
        "scan", *map(str, clips), "--models", "meso4-df", "--cluster", "local:1", "--json",
        str(js),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _ray_task_pid(clips[0].name) is None and proc.poll() is None:
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.02)
        time.sleep(2.0)  # into the scan (models load in well under a second)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert "Traceback" not in err, err
    assert proc.returncode == 130, out + err
    assert err.endswith("mesolive: interrupted; 2 input(s) not scanned\n")
    # one CPU: the first clip was running and reports what it saw; the others never started
    report = json.loads(js.read_text())
    (entry,) = report["inputs"]
    assert entry["input"] == str(clips[0]) and entry["interrupted"]
    assert report["interrupted"] and report["not_scanned"] == [str(c) for c in clips[1:]]
    assert 0 < entry["frames"] < 751
    assert out.rstrip().endswith("(interrupted)")


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_while_a_local_cluster_starts_waits_for_it(
    monkeypatch: pytest.MonkeyPatch, sig: signal.Signals, status: int
) -> None:
    """Interrupted half-way, ray.init left agents running for a minute after the scan
    exited (and now and then the process crashed); Ctrl+C, or SIGTERM, now lands after it
    returns, where connect() shuts Ray down."""
    from mesolive import signals

    monkeypatch.setattr(signals, "_received", [])  # this process's record of the signal
    steps: list[str] = []

    def start_a_cluster() -> None:
        with signals.held():
            signal.raise_signal(sig)  # half-way through ray.init
            steps.append("ray.init went on to its end")

    with ctrl_c_as_from_a_terminal(), pytest.raises(KeyboardInterrupt):
        start_a_cluster()
    assert steps == ["ray.init went on to its end"]
    assert signals.exit_status() == status
