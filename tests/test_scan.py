"""``mesolive scan`` as a user runs it: real clips, bad inputs, exit codes, reports."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from mesolive.commands.scan import expand_inputs, sparkline

from .conftest import shrunk_clip, start_mesolive

GROUP = Path("videos") / "synthetic" / "group_pan_720p30.mp4"
OBAMA = Path("videos") / "real" / "inthewild_obama.mp4"


def mesolive(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mesolive", "scan", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_group_clip_six_faces_stable_ids_real(shared: Path, tmp_path: Path) -> None:
    js, cs = tmp_path / "scan.json", tmp_path / "scan.csv"
    proc = mesolive(
        str(shared / GROUP),
        "--max-frames",
        "60",
        "--models",
        "meso4-df",
        "--models",
        "meso4-f2f",
        "--json",
        str(js),
        "--csv",
        str(cs),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REAL" in proc.stdout and "60 frames (60 analysed)" in proc.stdout
    report = json.loads(js.read_text())
    (entry,) = report["inputs"]
    assert entry["verdict"] == "real" and entry["frames"] == 60 and entry["error"] is None
    assert report["config"]["models"] == ["meso4-df", "meso4-f2f"]
    long = [t for t in entry["tracks"] if t["frames_seen"] >= 55]
    assert len(long) == 6, entry["tracks"]  # six faces, each followed through the clip
    assert len(entry["tracks"]) <= 7
    for t in long:
        assert t["verdict"] == "real" and len(t["timeline"]) == t["n_scored"]
        assert set(t["model_means"]) == {"meso4-df", "meso4-f2f"}
    # The CSV: one row per face per analysed frame, the same IDs frame after frame.
    with open(cs, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"score_meso4-df", "score_meso4-f2f", "track_id", "fake_score"} <= set(rows[0])
    ids_by_frame = defaultdict(set)
    for r in rows:
        ids_by_frame[int(r["frame"])].add(int(r["track_id"]))
    assert len(ids_by_frame) == 60
    assert ids_by_frame[0] == ids_by_frame[30] == {t["track_id"] for t in long}


def test_every_3_and_a_low_threshold_give_exit_code_1(shared: Path, tmp_path: Path) -> None:
    # With the fake threshold at 0.02 these genuine faces score "fake": exit 1.
    js = tmp_path / "scan.json"
    proc = mesolive(
        str(shared / GROUP), "--max-frames", "45", "--every", "3", "--threshold", "0.02",
        "--alert-seconds", "0.5", "--json", str(js),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAKE" in proc.stdout
    report = json.loads(js.read_text())
    assert report["config"]["alert_seconds"] == 0.5
    entry = report["inputs"][0]
    assert entry["analysed"] == 15
    assert max(t["n_scored"] for t in entry["tracks"]) == 15
    # the app's alerts: a face FAKE (from its 5th scored frame) for 0.5 s of the video
    alerted = [t for t in entry["tracks"] if t["alerts"]]
    assert alerted and all(t["last_verdict"] == "fake" for t in alerted)
    for t in alerted:
        (alert,) = t["alerts"]  # one per stay in FAKE
        scored = [p["frame"] for p in t["timeline"]]
        assert alert["frame"] in scored and alert["frame"] >= scored[4] + 15  # 0.5 s at 30 fps


def test_bad_inputs_are_reported_and_the_scan_carries_on(shared: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(bytes(range(256)) * 40)
    cut = tmp_path / "cut.mp4"  # this file's index is at the front: it fails part-way
    data = (shared / OBAMA).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    js = tmp_path / "scan.json"
    proc = mesolive(
        str(tmp_path / "missing.mp4"),
        str(junk),
        str(shared / "facebox" / "dogs.jpg"),
        str(cut),
        str(shared / "facebox" / "2008_001009.jpg"),
        "--json",
        str(js),
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"{tmp_path / 'missing.mp4'}: ERROR: " in out and "no such file" in out
    assert f"{junk}: ERROR: " in out and "cannot open as a video" in out
    assert "dogs.jpg: no face found in 1 frames" in out
    assert "2008_001009.jpg: REAL" in out or "2008_001009.jpg: FAKE" in out
    assert "truncated or corrupt" in out
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mesolive: error: ")]
    assert len(errors) == 3
    last = out.strip().splitlines()[-1]  # the run's one-line summary
    assert last.startswith("5 inputs: 1 ") and last.endswith(", 1 no face, 3 failed"), last
    entries = {Path(e["input"]).name: e for e in json.loads(js.read_text())["inputs"]}
    assert entries["missing.mp4"]["verdict"] == "error"
    assert entries["dogs.jpg"]["verdict"] == "no face" and entries["dogs.jpg"]["error"] is None
    part = entries["cut.mp4"]
    assert part["error"] and 0 < part["frames"] < 49 and part["tracks"]  # what it had, kept


def test_a_face_too_small_to_judge_is_reported_as_such(shared: Path, tmp_path: Path) -> None:
    """A face of ~21 px span (OBAMA at a quarter size) is tracked, never called real."""
    clip, js, cs = tmp_path / "far.avi", tmp_path / "scan.json", tmp_path / "scan.csv"
    n = shrunk_clip(shared / OBAMA, clip, 0.25)
    proc = mesolive(str(clip), "--models", "meso4-df", "--json", str(js), "--csv", str(cs))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head, _columns, line = proc.stdout.splitlines()
    assert head == f"{clip}: UNKNOWN · 1 face track(s) in {n} frames ({n} analysed)"
    assert line.split()[:4] == ["#1", f"0-{n - 1}", str(n), "0"]
    assert line.endswith(f"unknown (face too small to judge in {n} frames)"), line
    (entry,) = json.loads(js.read_text())["inputs"]
    (track,) = entry["tracks"]
    assert entry["verdict"] == "unknown" and track["too_small_frames"] == n
    assert track["n_scored"] == 0 and track["timeline"] == []
    # never scored: no score, not a score of 0 (which would read as "surely real")
    assert track["mean_score"] is track["fake_share"] is track["running_score"] is None
    with open(cs, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n and all(r["too_small"] == "1" and r["fake_score"] == "" for r in rows)
    # asked to judge faces of any size, it does
    every = tmp_path / "every.json"
    proc = mesolive(str(clip), "--models", "meso4-df", "--min-face-span", "0", "--json", str(every))
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    (track,) = json.loads(every.read_text())["inputs"][0]["tracks"]
    assert track["too_small_frames"] == 0 and track["n_scored"] == n
    assert 0.0 <= track["mean_score"] <= 1.0
    proc = mesolive(str(clip), "--min-face-span", "-3")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1] == (
        "mesolive scan: error: argument --min-face-span: -3 is below 0 (see mesolive scan --help)"
    )


def test_an_image_with_no_face_is_not_an_error(shared: Path) -> None:
    proc = mesolive(str(shared / "facebox" / "dogs.jpg"))
    assert proc.returncode == 0 and "no face found" in proc.stdout
    assert proc.stderr.count("error") == 0


def test_a_folder_is_its_images_and_videos(shared: Path, tmp_path: Path) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(shared / "facebox" / "dogs.jpg", folder / "a_dogs.jpg")
    shutil.copy(shared / "facebox" / "Tom_Cruise_avp_2014_4.jpg", folder / "b_face.jpg")
    (folder / "notes.txt").write_text("not media")
    proc = mesolive(str(folder))
    *lines, summary = [ln for ln in proc.stdout.splitlines() if not ln.startswith(" ")]
    assert [ln.split(":")[0] for ln in lines] == [
        str(folder / "a_dogs.jpg"),
        str(folder / "b_face.jpg"),
    ]
    assert summary.startswith("2 inputs: ") and summary.endswith("1 no face"), summary
    assert proc.returncode in (0, 1)


def test_realtime_plays_through_the_capture_thread(shared: Path) -> None:
    proc = mesolive(str(shared / OBAMA), "--realtime", "--every", "2", "--max-frames", "20")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "face track(s) in" in proc.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_or_sighup_ends_a_scan_as_ctrl_c_does(
    shared: Path, tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    """timeout, systemd, docker stop, a closed terminal: the scan was killed where it stood,
    with no report, and its half-written CSV left behind as a hidden .part file. The inputs
    it never reached are named (an interrupted folder scan left them out without a word)."""
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    uri, later = "test:?faces=2&frames=100000&fps=30", str(shared / OBAMA)
    proc = start_mesolive("scan", uri, later, "--realtime", "--json", str(js), "--csv", str(cs))
    deadline = time.monotonic() + 120
    while sum(p.stat().st_size for p in tmp_path.glob(".r.csv*")) < 2000:  # rows written
        assert time.monotonic() < deadline and proc.poll() is None, "the scan never started"
        time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert err.rstrip().endswith("mesolive: interrupted; 1 input(s) not scanned")
    assert out.rstrip().endswith("(interrupted)")
    report = json.loads(js.read_text())
    (entry,) = report["inputs"]
    assert entry["interrupted"] and entry["frames"] > 0
    assert report["interrupted"] and report["not_scanned"] == [later]
    with open(cs, newline="") as f:
        assert len(list(csv.DictReader(f))) > 0  # the rows so far
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json"]  # no .part left


_CTRL_C_AS_ORT_LOADS = """
import importlib.machinery, signal, sys
from mesolive.cli import main

# Ctrl+C, by its own handler, a millisecond into the initialisation of onnxruntime's
# compiled module (which takes 10-20 ms): as a key pressed while a scan starts
signal.signal(signal.SIGALRM, lambda _s, frame: signal.default_int_handler(signal.SIGINT, frame))
run = importlib.machinery.ExtensionFileLoader.exec_module


def exec_module(loader, module):
    if module.__name__ == "onnxruntime.capi.onnxruntime_pybind11_state":
        signal.setitimer(signal.ITIMER_REAL, 0.001)
    return run(loader, module)


importlib.machinery.ExtensionFileLoader.exec_module = exec_module
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_as_onnxruntime_loads_interrupts_the_scan(shared: Path, tmp_path: Path) -> None:
    """pybind11 turns Ctrl+C pressed while its module initialises into ImportError
    ('initialization failed'): the back-end probe took it for "onnxruntime not installed"
    (the key press was lost, the scan ran to its end and exited 0 or 1), elsewhere it
    ended the run as an internal error, with no report."""
    js = tmp_path / "r.json"
    face = shared / "samples" / "faces" / "fake" / "df00204.jpg"
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AS_ORT_LOADS, "scan", str(face), "--json", str(js)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.rstrip().endswith("mesolive: interrupted; 1 input(s) not scanned")
    report = json.loads(js.read_text())  # the report so far: nothing scanned
    assert report["interrupted"] and report["inputs"] == []
    assert report["not_scanned"] == [str(face)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every", "0"], "--every 0"),
        (["--max-frames", "0"], "--max-frames 0"),
        (["--detector", "/nonexistent/scrfd.onnx"], "no such detector file"),
        (["--detector", "/dev/null"], "/dev/null: not a detector file (--detector)"),
        (["--detector", "/"], "/: not a detector file (--detector)"),
        (["--models", "meso9"], "unknown model"),
        (["--det-size", "8"], "--det-size 8"),
    ],
)
def test_bad_options_are_one_line_errors(shared: Path, args: list[str], message: str) -> None:
    proc = mesolive(str(shared / "facebox" / "dogs.jpg"), *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("mesolive: error: ") and message in lines[-1], proc.stderr


def test_a_report_goes_where_asked_or_the_run_does_not_start(shared: Path, tmp_path: Path) -> None:
    dogs = str(shared / "facebox" / "dogs.jpg")
    proc = mesolive(dogs, "--csv", str(tmp_path / "new" / "x.csv"))
    assert proc.returncode == 0 and (tmp_path / "new" / "x.csv").is_file()  # folders are made
    (tmp_path / "file").write_text("")
    proc = mesolive(dogs, "--csv", str(tmp_path / "file" / "x.csv"))
    assert proc.returncode == 2 and proc.stderr.strip().endswith("file is not a folder")
    assert proc.stdout == ""  # refused before anything ran


def test_dash_sends_the_json_or_the_csv_to_stdout_and_the_report_to_stderr(
    shared: Path, tmp_path: Path
) -> None:
    faces = [str(p) for p in sorted((shared / "samples" / "faces").glob("*/*"))]
    run = [sys.executable, "-m", "mesolive", "scan", *faces, "--models", "meso4-df"]
    kept = tmp_path / "kept"
    kept.mkdir()

    def scan(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*run, *args], capture_output=True, text=True, cwd=kept, timeout=240)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    in_files = scan("--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"))
    piped = scan("--json", "-")
    assert piped.returncode == in_files.returncode == 1  # the authors' two fakes are caught
    report = json.loads(piped.stdout)  # stdout holds the JSON alone
    assert [i["input"] for i in report["inputs"]] == faces
    written = json.loads((tmp_path / "r.json").read_text())
    for a, b in zip(written["inputs"], report["inputs"], strict=True):
        assert a["verdict"] == b["verdict"] and a["tracks"] == b["tracks"]
    assert piped.stderr.endswith(in_files.stdout)  # the report a user reads, after the log
    rows = scan("--csv", "-")
    assert rows.returncode == 1 and rows.stderr.endswith(in_files.stdout)
    assert rows.stdout == (tmp_path / "r.csv").read_bytes().decode().replace("\r\n", "\n")
    both = scan("--json", "-", "--csv", "-")
    assert both.returncode == 2 and both.stdout == ""
    assert both.stderr == (
        "mesolive: error: --json - and --csv -: only one of them can go to standard output\n"
    )
    assert list(kept.iterdir()) == []  # no file named "-"


def test_sparkline() -> None:
    assert sparkline(()) == ""
    assert sparkline(((0, None, 0.0), (1, None, 0.99))) == "▁█"
    assert len(sparkline(tuple((i, None, 0.5) for i in range(1000)))) == 24


def test_scan_input_in_process_stops_its_capture_thread(shared: Path) -> None:
    from mesolive.commands.scan import scan_input
    from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig

    with FramePipeline(PipelineConfig(every=2)) as p:
        rep = scan_input(p, str(shared / OBAMA), realtime=True, max_frames=15, progress=False)
        assert rep.frames >= 1 and rep.error is None and not rep.interrupted
        assert rep.tracks and rep.tracks[0].track_id == 1
        again = scan_input(p, str(shared / OBAMA), max_frames=15, progress=False)
    assert again.frames == 15 and again.analysed == 8
    assert [t.track_id for t in again.tracks][:1] == [1]  # IDs start again per input


def test_a_stream_that_cannot_open_is_reported_once() -> None:
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"rtsp://127.0.0.1:{port}/live"
    proc = mesolive(uri)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{uri}: ERROR: " in proc.stdout
    said = [ln for ln in proc.stderr.splitlines() if f"127.0.0.1:{port}" in ln]
    assert said == [f"mesolive: error: {uri}: cannot open the stream: connection refused, "
                    f"nothing listens on 127.0.0.1:{port}"], proc.stderr  # fmt: skip


def test_models_is_a_comma_list_or_repeated_and_never_swallows_an_input(
    shared: Path, tmp_path: Path
) -> None:
    face = str(shared / "samples" / "faces" / "real" / "real00240.jpg")
    for models in (
        ["--models", "meso4-df,meso4-f2f"],
        ["--models", "meso4-df", "--models", "meso4-f2f"],
    ):
        js = tmp_path / f"{len(models)}.json"
        proc = mesolive(*models, face, "--json", str(js))
        assert proc.returncode == 0, proc.stderr
        report = json.loads(js.read_text())
        assert report["config"]["models"] == ["meso4-df", "meso4-f2f"]
        assert [e["input"] for e in report["inputs"]] == [face]


def test_a_folder_is_its_videos_and_images_however_it_is_named(tmp_path: Path) -> None:
    """DIR and file:DIR expand alike, to every video container a file alone would play."""
    names = ["a.flv", "b.wmv", "c.MTS", "d.gif", "e.jpg", "notes.txt", "sub/f.mp4"]
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    want = [str(tmp_path / n) for n in names if n != "notes.txt"]
    assert expand_inputs([str(tmp_path)]) == want
    assert expand_inputs([f"file:{tmp_path}"]) == want
    assert expand_inputs([tmp_path.as_uri(), "webcam:0"]) == [*want, "webcam:0"]


def test_each_error_line_names_its_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A screen that cannot be read said why but not which input it was."""
    monkeypatch.delenv("DISPLAY", raising=False)  # no screen to read
    proc = mesolive("screen:1", str(tmp_path / "nosuch.mp4"), "--max-frames", "2")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mesolive: error:")]
    assert [e.split(": ")[2] for e in errors] == ["screen:1", str(tmp_path / "nosuch.mp4")]
