"""Labelled data and its groups: what ``mesolive train`` holds aside together."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from mesolive.datasets import collect
from mesolive.errors import InputError
from mesolive.train.data import FaceSet, split_by_group, unseen_aside
from mesolive.train.validation import selection_auc, unseen_aucs

from .conftest import ROOT


def _held(items: list) -> list[Path]:
    groups = np.array([it.group for it in items])
    _, va = split_by_group(groups, np.array([it.label for it in items]), 0.15, 0)
    return [items[i].path.resolve() for i in va]


def test_split_is_by_group_and_repeatable() -> None:
    groups = np.array([f"v{i // 3}" for i in range(300)])
    labels = np.array([i % 2 for i in range(300)])
    tr, va = split_by_group(groups, labels, 0.2, seed=7)
    assert set(groups[tr]).isdisjoint(groups[va])
    _, va2 = split_by_group(groups, labels, 0.2, seed=7)
    assert np.array_equal(va, va2)
    assert 0.1 < len(va) / 300 < 0.3


def test_one_class_only_is_refused() -> None:
    with pytest.raises(InputError, match="one class"):
        split_by_group(np.array(["a", "b"]), np.array([1, 1]), 0.5, 0)


def test_the_split_does_not_depend_on_how_the_data_path_is_spelled(
    shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Photos are their own groups: typed relative or absolute, the same ones are held out."""
    photos = (shared / "train" / "photos").resolve()
    monkeypatch.chdir(photos.parent.parent)
    held = [
        _held(collect([spelling]))
        for spelling in (photos, Path("train") / "photos", Path("train/../train/photos"))
    ]
    assert len(held[0]) > 300 and held[0] == held[1] == held[2]


def test_every_kind_of_photo_is_held_aside_in_part(shared: Path) -> None:
    """Numbered photo names (``face-swapper_swapped_35.jpg``) are not frames of one video.

    Read as ``<video>_<frame>``, each of these collections was one group, so the
    inswapper swaps, the Unsplash and FFHQ photos and the StyleGAN2 faces were
    all trained on and never validated.
    """
    root = shared / "train" / "photos"
    items = collect([root])
    held = set(_held(items))
    with open(root / "labels.csv", newline="", encoding="utf-8") as f:
        kind_of = {(root / r["file"]).resolve(): r["kind"] for r in csv.DictReader(f)}
    for kind in (
        "face swap (InsightFace inswapper_128)",
        "Unsplash photo",
        "FFHQ/UTKFace crop",
        "GAN face (StyleGAN2)",
    ):
        files = [p for p, k in kind_of.items() if k == kind]
        share = sum(p in held for p in files) / len(files)
        assert 0.05 < share < 0.3, (kind, share)


def test_only_folder_images_are_read_as_frames(tmp_path: Path) -> None:
    """In real/ and fake/, ``clip_12.jpg`` is frame 12 of ``clip``; a video is its own group."""
    for label in ("real", "fake"):
        (tmp_path / label).mkdir()
        for name in (f"{label}clip_1.jpg", f"{label}clip_2.jpg", "talk_1.mp4", "talk_2.mp4"):
            (tmp_path / label / name).write_bytes(b"")
    groups = {it.path.name + it.path.parent.name: it.group for it in collect([tmp_path])}
    assert groups["realclip_1.jpgreal"] == groups["realclip_2.jpgreal"] == "realclip"
    assert groups["talk_1.mp4real"] == "real/talk_1.mp4"
    assert len({groups[f"talk_{i}.mp4{lab}"] for i in (1, 2) for lab in ("real", "fake")}) == 4


def test_a_labels_csv_names_its_groups(tmp_path: Path) -> None:
    """A row is its own group unless a column (``group`` first) says what it belongs to."""
    (tmp_path / "labels.csv").write_text(
        "file,label,group\n"
        "a_1.jpg,real,person-a\n"
        "a_2.jpg,fake,person-a\n"
        "b_1.jpg,real,\n"
        "b_2.jpg,fake,\n",
        encoding="utf-8",
    )
    groups = [it.group for it in collect([tmp_path])]
    src = tmp_path.name
    assert groups == [f"{src}:person-a", f"{src}:person-a", f"{src}:b_1.jpg", f"{src}:b_2.jpg"]


def test_a_labels_csv_saved_by_a_spreadsheet_reads_the_same(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark and ends lines with CR LF."""
    text = "\ufefffile,label\r\na.jpg,FAKE\r\nb.jpg, Real \r\n"
    (tmp_path / "labels.csv").write_bytes(text.encode("utf-8"))
    items = collect([tmp_path])
    assert [(it.path.name, it.label) for it in items] == [("a.jpg", 1), ("b.jpg", 0)]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "file,label\na.jpg,real\na.jpg,fake\n",
            "line 3: a.jpg is labelled fake here and real on line 2",
        ),
        ("file,label\na.jpg\n", "line 2: no label on this row"),
        ("file,label\n,real\n", "line 2: no file on this row"),
        ("file,label\na.jpg,maybe\n", "line 2: label 'maybe' is neither real nor fake"),
        (
            "file,label\na.jpg,1\n",
            "line 2: label '1' is a number, which data sets read both ways (the authors' made "
            "real 1); write real or fake",
        ),
        ("file,label\ncaf\xe9.jpg,real\n", "not UTF-8 text; save the CSV as UTF-8"),
    ],
    ids=["both-labels", "no-label", "no-file", "unknown-label", "number-label", "latin-1"],
)
def test_a_labels_csv_that_cannot_be_read_right_is_one_line(
    tmp_path: Path, text: str, said: str
) -> None:
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError, match="^" + re.escape(f"{csv_path}")) as e:
        collect([csv_path])
    assert str(e.value).endswith(said)


def test_a_file_named_twice_is_counted_once(tmp_path: Path, caplog) -> None:
    """Repeated rows, or one data set given twice, once counted every face twice."""
    (tmp_path / "labels.csv").write_text(" File , LABEL \na.jpg,real\na.jpg,real\nb.jpg,fake\n")
    items = collect([tmp_path, tmp_path / "labels.csv"])
    assert [(it.path.name, it.label) for it in items] == [("a.jpg", 0), ("b.jpg", 1)]
    assert "1 repeated row(s) counted once" in caplog.text
    assert "2 file(s) given more than once" in caplog.text
    (tmp_path / "other.csv").write_text("file,label\nb.jpg,real\n")
    with pytest.raises(InputError, match=r"b\.jpg: labelled real in .*other\.csv and fake in"):
        collect([tmp_path, tmp_path / "other.csv"])


def test_the_legacy_grouping_reads_every_numbered_name_as_a_frame(tmp_path: Path) -> None:
    """scripts/compare_on_split.py --legacy-split rebuilds the groups the shipped models used."""
    spec = importlib.util.spec_from_file_location(
        "compare_on_split", ROOT / "scripts" / "compare_on_split.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data = tmp_path / "photos"
    data.mkdir()
    (data / "labels.csv").write_text(
        "file,label,video\nreal/x_swapped_3.jpg,real,\nfake/y_7.jpg,fake,clip9\nreal/z.jpg,real,\n",
        encoding="utf-8",
    )
    folder = tmp_path / "clips"
    for label in ("real", "fake"):
        (folder / label).mkdir(parents=True)
        (folder / label / f"talk_{label}_1.mp4").write_bytes(b"")
    legacy = [script._legacy_group(it) for it in collect([data, folder])]
    assert legacy == [
        "photos:x_swapped",
        "photos:clip9",
        f"photos:{data / 'real/z.jpg'}",
        "talk_real",
        "talk_fake",
    ]
    # --legacy-labels: the CSV data set written with those groups reads back as them
    script._write_legacy_labels(collect([data]), tmp_path / "out")
    again = collect([tmp_path / "out" / "photos"])
    assert [it.group for it in again] == legacy[:3]
    assert [(it.path, it.label) for it in again] == [
        (data / "real/x_swapped_3.jpg", 0),
        (data / "fake/y_7.jpg", 1),
        (data / "real/z.jpg", 0),
    ]
    with pytest.raises(SystemExit, match="clips: --legacy-labels needs a labels CSV"):
        script._write_legacy_labels(collect([folder]), tmp_path / "out")
    before = (data / "labels.csv").read_bytes()
    with pytest.raises(SystemExit, match=r"photos/labels\.csv exists already"):
        script._write_legacy_labels(collect([data]), tmp_path)  # the data set's own folder
    assert (data / "labels.csv").read_bytes() == before


def _faces(rows: list[tuple[int, str, str, str]]) -> FaceSet:
    """A FaceSet of (label, group, source, kind) rows; the pixels play no part."""
    labels, groups, sources, kinds = (np.array(col) for col in zip(*rows, strict=True))
    n = len(rows)
    return FaceSet(np.zeros((n, 2, 2, 3), np.uint8), labels, groups, sources, kinds, groups)


def test_an_unseen_kind_and_the_rest_of_its_groups_are_only_validated() -> None:
    faces = _faces(
        [
            (0, "roop", "videos", "roop target"),
            (1, "roop", "videos", "roop swap"),
            (1, "swap-1", "photos", "inswapper"),
            (0, "p1", "photos", "photo"),
            (1, "g1", "photos", "GAN"),
            (0, "p2", "photos", "photo"),
        ]
    )
    unseen = ["inswapper", "roop swap"]
    tr, va = unseen_aside(faces, np.array([0, 1, 2, 3, 4]), np.array([5]), unseen)
    assert tr.tolist() == [3, 4] and va.tolist() == [0, 1, 2, 5]
    with pytest.raises(InputError, match=r"^--unseen-kind 'deepfake': nothing of that kind") as e:
        unseen_aside(faces, np.arange(5), np.array([5]), ["deepfake"])
    assert "'GAN'" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="one class only"):
        unseen_aside(faces, np.arange(5), np.array([5]), ["GAN", "inswapper", "roop swap"])


def test_the_best_epoch_counts_each_unseen_kind_once() -> None:
    """A network that ranks its own sources perfectly but misses the new kind loses."""
    faces = _faces(
        [(0, f"r{i}", "photos", "photo") for i in range(4)]
        + [(1, f"g{i}", "photos", "GAN") for i in range(4)]
        + [(1, f"s{i}", "photos", "inswapper") for i in range(2)]
    )
    reals, gans, swaps = [0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.7, 0.6], [0.15, 0.15]
    scores = np.array(reals + gans + swaps)
    # pooled into photos' AUC, the two swaps weigh a third: (16 + 2) / 24 pairs
    assert selection_auc(faces, scores) == pytest.approx(0.75)
    # their own term: the photos without them (1.0), then swaps against reals (2 / 8)
    assert selection_auc(faces, scores, unseen=["inswapper"]) == pytest.approx((1.0 + 0.25) / 2)
    assert unseen_aucs(faces, scores, ["inswapper"]) == {"inswapper": pytest.approx(0.25)}


def test_data_sets_of_one_name_stay_apart(tmp_path: Path) -> None:
    """``train a/data b/data``: two sources, counted once each, with groups of their own."""
    for parent in ("a", "b"):
        root = tmp_path / parent / "data"
        root.mkdir(parents=True)
        (root / "labels.csv").write_text("file,label,group\nx.jpg,real,g1\ny.jpg,fake,g1\n")
    items = collect([tmp_path / "a" / "data", tmp_path / "b" / "data"])
    assert [it.source for it in items] == ["a/data", "a/data", "b/data", "b/data"]
    assert len({it.group for it in items}) == 2
    (only,) = {it.source for it in collect([tmp_path / "a" / "data"])}
    assert only == "data"  # alone, a data set keeps its folder's name
