"""``mesolive evaluate`` on labelled videos, run as a user runs it: real clips, real model.

Each video goes through the live pipeline as ``mesolive scan`` runs it and is
judged by the pipeline's own verdict; ``--every 10`` keeps these runs short.
"""

from __future__ import annotations

import csv
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mesolive.commands.evaluate import CALLS, VideoResult, summarize_videos, video_score
from mesolive.commands.scan import InputReport
from mesolive.datasets import Item
from mesolive.types import TrackSummary, Verdict

from .conftest import mesolive, shrunk_clip, start_mesolive

OBAMA_REAL = Path("videos") / "real" / "inthewild_obama.mp4"
OBAMA_FAKE = Path("videos") / "fake" / "inthewild_obama.mp4"
HAMILTON = Path("videos") / "real" / "hamilton_clip.mp4"
VERDICTS = {"real", "uncertain", "fake", "unknown", "no face"}


def write_labels(
    path: Path, rows: list[tuple[Path, str, str]], pairs: tuple[str, ...] = ()
) -> Path:
    """A labels CSV with absolute paths in a ``path`` column, as shared/videos has;
    ``pairs``, one per row, adds a ``pair`` column."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "kind", *(["pair"] if pairs else [])])
        w.writerows(
            (str(p), label, kind, *([pairs[i]] if pairs else []))
            for i, (p, label, kind) in enumerate(rows)
        )
    return path


def check_consistent(rep: dict) -> None:
    """What every video section must satisfy, whatever the model calls."""
    table = rep["confusion"]
    assert set(table) == {"real", "fake"}
    assert all(set(row) == set(CALLS) for row in table.values())
    assert sum(sum(row.values()) for row in table.values()) == rep["n"]
    assert sum(table["real"].values()) == rep["n_real"]
    assert sum(table["fake"].values()) == rep["n_fake"]
    assert rep["uncertain"] == table["real"]["uncertain"] + table["fake"]["uncertain"]
    judged = [v for v in rep["per_video"] if v["verdict"] != "error"]
    assert len(judged) == rep["n"] and len(rep["per_video"]) == rep["n"] + rep["failed"]
    for v in rep["per_video"]:
        assert v["verdict"] in VERDICTS | {"error"}
        assert v["right"] == (v["verdict"] == v["label"])
        assert v["score"] is None or 0.0 <= v["score"] <= 1.0
    assert rep["accuracy"] == pytest.approx(np.mean([v["right"] for v in judged]))
    assert rep["auc"] is None or 0.0 <= rep["auc"] <= 1.0
    scored = {v["label"] for v in judged if v["score"] is not None}
    assert (rep["auc"] is None) == (scored != {"real", "fake"})


def test_videos_from_a_labels_csv_judged_as_scan_judges_them(shared: Path, tmp_path: Path) -> None:
    clips = [
        (shared / OBAMA_REAL, "real", "in-the-wild real"),
        (shared / OBAMA_FAKE, "fake", "in-the-wild swap"),
        (shared / HAMILTON, "real", "stage"),
    ]
    labels = write_labels(tmp_path / "labels.csv", clips, pairs=("obama", "obama", ""))
    plot = tmp_path / "roc.png"
    args = ["--labels", str(labels), "--every", "10", "--model", "meso4-df"]
    proc = mesolive("evaluate", str(tmp_path), *args, "--json", "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "images" not in out and out["model"] == "meso4-df"
    rep = out["videos"]
    assert (rep["n"], rep["n_real"], rep["n_fake"], rep["failed"]) == (3, 2, 1, 0)
    assert rep["every"] == 10
    check_consistent(rep)
    assert [v["file"] for v in rep["per_video"]] == [str(p) for p, _, _ in clips]
    assert [v["kind"] for v in rep["per_video"]] == [k for _, _, k in clips]
    assert all(v["tracks"] and v["score"] is not None for v in rep["per_video"])
    assert sorted((k["label"], k["kind"], k["total"]) for k in rep["kinds"]) == [
        ("fake", "in-the-wild swap", 1),
        ("real", "in-the-wild real", 1),
        ("real", "stage", 1),
    ]
    # the Obama swap against its own original, the pair the CSV names
    above = int(rep["per_video"][1]["score"] > rep["per_video"][0]["score"])
    assert rep["pairs"] == {"pairs": 1, "fake_above_original": above}
    with Image.open(plot) as im:
        assert im.size[0] > 500

    # The same clip through `mesolive scan` with the same options: the same call.
    scan_json = tmp_path / "scan.json"
    scan = mesolive(
        "scan", str(shared / OBAMA_FAKE), "--every", "10", "--models", "meso4-df",
        "--json", str(scan_json),
    )  # fmt: skip
    assert scan.returncode in (0, 1), scan.stderr
    (entry,) = json.loads(scan_json.read_text())["inputs"]
    fake = rep["per_video"][1]
    assert fake["verdict"] == entry["verdict"]
    assert [t["mean_score"] for t in fake["tracks"]] == pytest.approx(
        [t["mean_score"] for t in entry["tracks"]], abs=1e-6
    )

    # The text report: the same numbers, one row per video; the CSV alone names the videos.
    text = mesolive("evaluate", str(labels), *args[2:])
    assert text.returncode == 0, text.stderr
    assert "videos          3 (2 real, 1 fake)" in text.stdout
    assert "per kind" in text.stdout and "confusion" in text.stdout
    assert f"pairs           {above} of 1: the fake scored above its own" in text.stdout
    for p, _, _ in clips:
        assert str(p) in text.stdout
    both = mesolive("evaluate", str(labels), *args)
    assert both.returncode == 2
    assert (
        both.stderr
        == f"mesolive: error: {labels}: a labels CSV already; give it or --labels, not both\n"
    )


def test_a_face_too_small_to_judge_leaves_a_video_unknown(shared: Path, tmp_path: Path) -> None:
    """A far face (the real clip at a quarter size, span ~21 px) is not called real."""
    n = shrunk_clip(shared / OBAMA_REAL, tmp_path / "far.avi", 0.25)
    labels = write_labels(tmp_path / "labels.csv", [(tmp_path / "far.avi", "real", "far")])
    args = ["--labels", str(labels), "--every", "10", "--model", "meso4-df", "--json"]
    runs = {}
    for span in ("32", "0"):
        proc = mesolive("evaluate", str(tmp_path), *args, "--min-face-span", span)
        assert proc.returncode == 0, proc.stderr
        (runs[span],) = json.loads(proc.stdout)["videos"]["per_video"]
    analysed = len(range(0, n, 10))
    (track,) = runs["32"]["tracks"]
    assert runs["32"]["verdict"] == "unknown" and runs["32"]["score"] is None
    assert track["too_small_frames"] == analysed and track["n_scored"] == 0
    (track,) = runs["0"]["tracks"]  # asked to judge every face, it does
    assert runs["0"]["score"] is not None and runs["0"]["verdict"] in {"real", "uncertain", "fake"}
    assert track["too_small_frames"] == 0 and track["n_scored"] == analysed


def test_a_corrupt_video_is_one_line_and_the_others_still_count(
    shared: Path, tmp_path: Path
) -> None:
    for label in ("real", "fake"):
        (tmp_path / label).mkdir()
    (tmp_path / "real" / "obama.mp4").symlink_to(shared / OBAMA_REAL)
    (tmp_path / "fake" / "obama.mp4").symlink_to(shared / OBAMA_FAKE)
    junk = tmp_path / "fake" / "x.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    proc = mesolive("evaluate", str(tmp_path), "--every", "10", "--json")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    named = [ln for ln in proc.stderr.splitlines() if "x.mp4" in ln]
    assert len(named) == 1 and named[0].startswith("mesolive: error: "), proc.stderr
    rep = json.loads(proc.stdout)["videos"]
    assert (rep["n"], rep["n_real"], rep["n_fake"], rep["failed"]) == (2, 1, 1, 1)
    check_consistent(rep)
    by_name = {Path(v["file"]).relative_to(tmp_path).as_posix(): v for v in rep["per_video"]}
    assert set(by_name) == {"real/obama.mp4", "fake/obama.mp4", "fake/x.mp4"}
    bad = by_name["fake/x.mp4"]
    assert bad["verdict"] == "error" and bad["error"] and bad["score"] is None
    assert rep["kinds"] is None  # a folder's items carry no kind beyond their label
    assert rep["pairs"] is None  # nor a pair: each file is a group of its own


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_interrupted_run_reports_the_videos_it_finished(shared: Path, tmp_path: Path) -> None:
    """Ctrl+C, or SIGTERM from timeout or systemd, after a long hour of videos printed
    nothing but "interrupted": every call so far was lost."""
    group = shared / "videos" / "synthetic" / "group_pan_720p30.mp4"  # 300 frames, 6 faces
    videos = [shared / OBAMA_REAL, group, shared / HAMILTON]
    labels = write_labels(tmp_path / "labels.csv", [(v, "real", "real") for v in videos])
    args = ["--labels", str(labels), "--every", "1", "--json"]
    proc = start_mesolive("evaluate", str(shared), *args)
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    while "1/3 " not in proc.stderr.readline():  # the first video was called
        assert time.monotonic() < deadline and proc.poll() is None, "no video ended"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert err.rstrip().endswith("mesolive: interrupted; 2 video(s) not evaluated")
    rep = json.loads(out)["videos"]
    assert rep["interrupted"] and rep["not_evaluated"] == [str(group), str(shared / HAMILTON)]
    assert [v["file"] for v in rep["per_video"]] == [str(shared / OBAMA_REAL)]
    assert (rep["n"], rep["n_real"], rep["failed"]) == (1, 1, 0)
    check_consistent(rep)


def test_images_and_videos_are_two_sections(shared: Path, tmp_path: Path) -> None:
    faces = shared / "samples" / "faces"
    for label in ("real", "fake"):
        (tmp_path / label).mkdir()
        for f in (faces / label).glob("*.jpg"):
            (tmp_path / label / f.name).symlink_to(f)
    (tmp_path / "real" / "obama.mp4").symlink_to(shared / OBAMA_REAL)
    plot = tmp_path / "out" / "roc.png"
    proc = mesolive("evaluate", str(tmp_path), "--every", "10", "--json", "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    images, videos = out["images"], out["videos"]
    assert images["n"] == 4 and images["accuracy"] == 1.0  # today's crop report, unchanged
    assert (videos["n"], videos["n_real"], videos["n_fake"]) == (1, 1, 0)
    assert videos["auc"] is None and videos["fake_accuracy"] is None
    check_consistent(videos)
    assert plot.is_file() and (plot.parent / "roc-videos.png").is_file()


# -- the rules, on made-up tracks (no model) ------------------------------------------


def track(mean: float, verdict: Verdict, n_scored: int = 10) -> TrackSummary:
    return TrackSummary(1, 0, 9, 10, n_scored, mean, 0.0, verdict)


def test_a_videos_score_is_its_most_suspicious_callable_face() -> None:
    # an UNKNOWN track (too few scored frames) does not outvote a called one
    assert video_score([track(0.2, Verdict.REAL), track(0.9, Verdict.UNKNOWN, 2)]) == 0.2
    assert video_score([track(0.2, Verdict.REAL), track(0.7, Verdict.UNCERTAIN)]) == 0.7
    # nothing callable: the highest of all
    assert video_score([track(0.3, Verdict.UNKNOWN, 2), track(0.6, Verdict.UNKNOWN, 1)]) == 0.6
    assert video_score([]) is None


def test_summary_counts_no_face_and_uncertain_as_not_right() -> None:
    def result(label: int, tracks: list[TrackSummary], error: str | None = None) -> VideoResult:
        item = Item(Path(f"v{len(tracks)}{label}.mp4"), label, "g")
        return VideoResult(item, InputReport(str(item.path), tracks=tracks, error=error))

    rep = summarize_videos(
        [
            result(0, [track(0.1, Verdict.REAL)]),
            result(0, []),  # no face
            result(1, [track(0.55, Verdict.UNCERTAIN)]),
            result(1, [track(0.9, Verdict.FAKE), track(0.1, Verdict.REAL)]),
            result(1, [], error="x.mp4: cannot open as a video"),
        ]
    )
    assert (rep.n, rep.n_real, rep.n_fake, rep.failed) == (4, 2, 2, 1)
    assert rep.confusion == {
        "real": {"real": 1, "uncertain": 0, "fake": 0, "unknown/no face": 1},
        "fake": {"real": 0, "uncertain": 1, "fake": 1, "unknown/no face": 0},
    }
    assert (rep.accuracy, rep.real_accuracy, rep.fake_accuracy) == (0.5, 0.5, 0.5)
    assert rep.uncertain == 1 and (rep.scored, rep.unscored) == (3, 1)
    assert rep.auc == 1.0  # 0.1 (real) below 0.55 and 0.9 (fake); the faceless one left out
    assert rep.pairs == {"pairs": 1, "fake_above_original": 1}  # all in one group "g"


def test_pairs_count_fakes_scored_above_their_own_originals() -> None:
    """A model that reads the footage scores a pair alike; videos in no pair are left out."""

    def result(label: int, group: str, score: float) -> VideoResult:
        item = Item(Path(f"{group}{label}.mp4"), label, group)
        verdict = Verdict.FAKE if score > 0.5 else Verdict.REAL
        return VideoResult(item, InputReport(str(item.path), tracks=[track(score, verdict)]))

    results = [
        result(0, "studio", 0.8), result(1, "studio", 0.8),  # alike: not above
        result(0, "webcam", 0.1), result(1, "webcam", 0.3),  # told apart, both "real"
        result(0, "alone", 0.2),  # no fake of its own
    ]  # fmt: skip
    assert summarize_videos(results).pairs == {"pairs": 2, "fake_above_original": 1}
    assert summarize_videos(results[-1:]).pairs is None
