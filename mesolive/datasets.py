"""Labelled data on disk: folders with real/ and fake/, or labels CSVs.

Shared by ``mesolive evaluate`` and ``mesolive train``. Every item carries a
*group*: the video it came from (for a DFDC fake, the original video it was
made from), so that a split by group never puts one video on both sides.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mesolive.errors import InputError
from mesolive.imageio import IMAGE_EXTS
from mesolive.metrics import video_of

VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})
_LABELS = {"real": 0, "0": 0, "fake": 1, "1": 1, "df": 1, "f2f": 1, "deepfake": 1}
_GROUP_COLUMNS = ("pair", "original_video", "video", "dfdc_video")


@dataclass(frozen=True)
class Item:
    """One labelled file: an image crop or a video (label 1 = fake).

    ``source`` names the data set it came from (its folder's name) and
    ``kind`` what it is (a labels CSV's ``kind`` column, else the label), so
    results can be reported per source and per kind of forgery.
    """

    path: Path
    label: int
    group: str
    source: str = ""
    kind: str = ""


def _label(value: str, where: str) -> int:
    lab = _LABELS.get(value.strip().lower())
    if lab is None:
        raise InputError(f"{where}: label {value!r} is neither real nor fake")
    return lab


def from_csv(path: Path) -> list[Item]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        key = "file" if "file" in cols else "path" if "path" in cols else None
        if key is None or "label" not in cols:
            raise InputError(f"{path}: a labels CSV needs the columns file (or path) and label")
        items = []
        source = path.parent.name
        for row in reader:
            file = path.parent / row[key]
            group = next((row[c] for c in _GROUP_COLUMNS if row.get(c)), "") or _group_of(
                file, path.parent
            )
            label = _label(row["label"], str(path))
            kind = (row.get("kind") or "").strip() or ("fake" if label else "real")
            # namespaced: two data sets may reuse a video or pair name
            items.append(Item(file, label, f"{source}:{group}", source, kind))
    return items


def _group_of(path: Path, root: Path) -> str:
    """``<video>_<frame>.jpg`` → ``<video>``; otherwise the file is its own group.

    A file's group is its path below ``root`` (the data set's folder), never
    the path as typed: the split hashes group names, so ``../data`` and
    ``/home/me/data`` must hold the same groups aside. A labels CSV may name
    a file by an absolute path elsewhere: that path is its name.
    """
    video = video_of(path.stem)
    if video:
        return video
    return (path.relative_to(root) if path.is_relative_to(root) else path).as_posix()


def from_folder(folder: Path) -> list[Item]:
    if (folder / "labels.csv").is_file():
        return from_csv(folder / "labels.csv")
    items = []
    for name, lab in (("real", 0), ("fake", 1)):
        d = folder / name
        if d.is_dir():
            for f in sorted(d.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:
                    items.append(Item(f, lab, _group_of(f, folder), folder.name, name))
    if not items:
        raise InputError(f"{folder}: needs real/ and fake/ subfolders or a labels.csv")
    return items


def collect(paths: Iterable[str | Path]) -> list[Item]:
    """Labelled items from folders (real/ + fake/ or labels.csv) and CSV files."""
    items: list[Item] = []
    for p in map(Path, paths):
        if p.is_dir():
            items += from_folder(p)
        elif p.is_file() and p.suffix.lower() == ".csv":
            items += from_csv(p)
        elif p.exists():
            raise InputError(f"{p}: give a folder with real/ and fake/, or a labels CSV")
        else:
            raise InputError(f"{p}: no such file or folder")
    return items
