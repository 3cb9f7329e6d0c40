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
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mesolive.errors import InputError
from mesolive.imageio import IMAGE_EXTS, VIDEO_EXTS
from mesolive.metrics import video_of

_LABELS = {"real": 0, "fake": 1, "df": 1, "f2f": 1, "deepfake": 1}
# No numbers: data sets read them both ways (FF++ and DFDC metadata: 1 fake; the authors'
# Keras generator, classes in alphabetical order: df 0, real 1), so a 0/1 column would be
# read right or wholly inverted without a word.
_GROUP_COLUMNS = ("group", "pair", "original_video", "video", "dfdc_video")
_WORDS = ("real", "fake")

log = logging.getLogger(__name__)


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
    if lab is None and value.strip().isdigit():
        raise InputError(
            f"{where}: label {value!r} is a number, which data sets read both ways "
            "(the authors' made real 1); write real or fake"
        )
    if lab is None:
        raise InputError(f"{where}: label {value!r} is neither real nor fake")
    return lab


def from_csv(path: Path, root: Path | None = None, source: str | None = None) -> list[Item]:
    """The rows of a labels CSV as items, files relative to ``root`` (default: its folder),
    from the data set ``source`` (default: that folder's name).

    Column names are read without regard to case or surrounding spaces, and a
    spreadsheet's byte-order mark is skipped. A row repeated exactly is counted
    once (with a warning); a file labelled both ways, a row without a file or
    a label, and text that is not UTF-8 are refused in one line.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            root = path.parent if root is None else root
            return _rows(path, csv.DictReader(f), root, source or root.name)
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from e
    except csv.Error as e:
        raise InputError(f"{path}: not a readable CSV ({e})") from e


def _rows(path: Path, reader: csv.DictReader, root: Path, source: str) -> list[Item]:
    reader.fieldnames = [c.strip().lower() for c in reader.fieldnames or []]
    cols = set(reader.fieldnames)
    key = "file" if "file" in cols else "path" if "path" in cols else None
    if key is None or "label" not in cols:
        raise InputError(f"{path}: a labels CSV needs the columns file (or path) and label")
    items: dict[Path, tuple[int, Item]] = {}
    repeated = 0
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        name, value = (row.get(key) or "").strip(), row.get("label")
        if not name or value is None:
            raise InputError(f"{where}: no {key if not name else 'label'} on this row")
        file = root / name
        group = next((row[c] for c in _GROUP_COLUMNS if row.get(c)), "") or _own_group(file, root)
        label = _label(value, where)
        kind = (row.get("kind") or "").strip() or ("fake" if label else "real")
        # namespaced: two data sets may reuse a video or pair name
        item = Item(file, label, f"{source}:{group}", source, kind)
        if file in items:
            line, first = items[file]
            if first.label != label:
                raise InputError(
                    f"{where}: {name} is labelled {_WORDS[label]} here and "
                    f"{_WORDS[first.label]} on line {line}"
                )
            repeated += 1
            continue
        items[file] = (reader.line_num, item)
    if repeated:
        log.warning("%s: %d repeated row(s) counted once", path, repeated)
    return [item for _, item in items.values()]


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


def from_folder(folder: Path, source: str | None = None) -> list[Item]:
    """``folder/labels.csv``, else the files of ``real/`` and ``fake/``; ``source`` names
    the data set (default: the folder's name)."""
    source = source or folder.name
    if (folder / "labels.csv").is_file():
        return from_csv(folder / "labels.csv", source=source)
    items = []
    for name, lab in (("real", 0), ("fake", 1)):
        d = folder / name
        if d.is_dir():
            for f in sorted(d.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:
                    items.append(Item(f, lab, _folder_group(f, folder), source, name))
    if not items:
        raise InputError(f"{folder}: needs real/ and fake/ subfolders or a labels.csv")
    return items


def short_names(files: Sequence[Path]) -> list[str]:
    """Each path by its name, with as many parent folders as tell it from the others
    (``real/clip1.mp4`` beside ``fake/clip1.mp4``)."""
    depth = 1
    while True:
        names = ["/".join(f.parts[-depth:]) for f in files]
        if len(set(names)) == len(names) or all(depth >= len(f.parts) for f in files):
            return names
        depth += 1


def collect(paths: Iterable[str | Path]) -> list[Item]:
    """Labelled items from folders (real/ + fake/ or labels.csv) and CSV files.

    Each data set is named by its folder, with as many parent folders as tell
    it from the others (``a/data`` beside ``b/data``), so that each counts once
    and their groups never merge. A file that two of them name is counted once
    (with a warning); named as real by one and fake by another, it is refused
    in one line.
    """
    given = [Path(p) for p in paths]
    root = {p: Path(os.path.abspath(p if p.is_dir() else p.parent)) for p in given}
    roots = list(dict.fromkeys(root.values()))
    names = dict(zip(roots, short_names(roots), strict=True))
    items: dict[Path, Item] = {}
    repeated = 0
    for p in given:
        source = names[root[p]]
        if p.is_dir():
            found = from_folder(p, source)
        elif p.is_file() and p.suffix.lower() == ".csv":
            found = from_csv(p, source=source)
        elif p.exists():
            raise InputError(f"{p}: give a folder with real/ and fake/, or a labels CSV")
        else:
            raise InputError(f"{p}: no such file or folder")
        for item in found:
            key = Path(os.path.abspath(item.path))
            first = items.get(key)
            if first is None:
                items[key] = item
            elif first.label != item.label:
                raise InputError(
                    f"{item.path}: labelled {_WORDS[item.label]} in {p} and "
                    f"{_WORDS[first.label]} in {first.source or 'the data before it'}"
                )
            else:
                repeated += 1
    if repeated:
        log.warning("%d file(s) given more than once, counted once", repeated)
    return list(items.values())
