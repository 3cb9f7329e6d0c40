"""Labelled data on disk: folders with real/ and fake/, or labels CSVs.

Shared by ``mesolive evaluate`` and ``mesolive train``. Every item carries a
*group*: the video it came from (for a DFDC fake, the original video it was
made from), so that a split by group never puts one video on both sides.

Only a labels CSV can say that rows belong together (its ``group``, ``pair``,
``original_video``, ``video`` or ``dfdc_video`` column); a row that names no
group is its own. File names are read as ``<video>_<frame>`` only for images
in ``real/`` and ``fake/`` folders, where no column can say it: a photo
collection's names end in numbers too (``real_1.jpg``, ``swapped_35.jpg``,
``IMG_0042.jpg``), and read as frames they made each collection one group,
held aside whole or not at all.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mesolive.errors import InputError
from mesolive.imageio import IMAGE_EXTS, VIDEO_EXTS
from mesolive.metrics import video_of

_LABELS = {"real": 0, "0": 0, "fake": 1, "1": 1, "df": 1, "f2f": 1, "deepfake": 1}
_GROUP_COLUMNS = ("group", "pair", "original_video", "video", "dfdc_video")


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
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        key = "file" if "file" in cols else "path" if "path" in cols else None
        if key is None or "label" not in cols:
            raise InputError(f"{path}: a labels CSV needs the columns file (or path) and label")
        items = []
        source = path.parent.name
        for row in reader:
            file = path.parent / row[key]
            group = next((row[c] for c in _GROUP_COLUMNS if row.get(c)), "") or _own_group(
                file, path.parent
            )
            label = _label(row["label"], str(path))
            kind = (row.get("kind") or "").strip() or ("fake" if label else "real")
            # namespaced: two data sets may reuse a video or pair name
            items.append(Item(file, label, f"{source}:{group}", source, kind))
    return items


def _own_group(path: Path, root: Path) -> str:
    """The file as a group of its own: its path below ``root``, the data set's folder.

    Never the path as typed: the split hashes group names, so ``../data`` and
    ``/home/me/data`` must hold the same files aside. A labels CSV may name a
    file by an absolute path elsewhere: that path is its name.
    """
    return (path.relative_to(root) if path.is_relative_to(root) else path).as_posix()


def _folder_group(path: Path, root: Path) -> str:
    """An image ``<video>_<frame>.jpg`` → ``<video>``; any other file is its own group."""
    video = video_of(path.stem) if path.suffix.lower() in IMAGE_EXTS else None
    return video or _own_group(path, root)


def from_folder(folder: Path) -> list[Item]:
    if (folder / "labels.csv").is_file():
        return from_csv(folder / "labels.csv")
    items = []
    for name, lab in (("real", 0), ("fake", 1)):
        d = folder / name
        if d.is_dir():
            for f in sorted(d.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:
                    items.append(Item(f, lab, _folder_group(f, folder), folder.name, name))
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
