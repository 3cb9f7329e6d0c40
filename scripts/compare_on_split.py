"""Score models on the validation groups that ``mesolive train`` holds aside.

    MESOLIVE_MODEL_DIR=../shared/models python scripts/compare_on_split.py \\
        --data ../shared/train/{dfdc,dfdc2,photos,videos} --val-split 0.15 --seed 0 \\
        --models meso4-live meso4-df

The split is the trainer's own (a hash of each group's name and the seed), so
a model trained on any subset of the same data sets with the same seed and
share never saw these groups. Each model's faces are cut by its own
preprocessing contract. ``--held-videos`` writes the held-out clips as a
labels CSV, so ``mesolive evaluate`` can judge them whole through the
pipeline. Prints, per model, the selection AUC (mean of the per-source
AUCs), then per source AUC / reals kept / fakes caught, and per held-out
video its mean score; ``--json FILE`` writes it all.

``--whole`` scores every face of ``--data`` instead: for material that no
compared model trained on (a kind of forgery left out of training). The
shipped models were split with the groups of their time (every numbered file
name read as ``<video>_<frame>``, other files named by their path as typed;
see docs/training.md); ``--legacy-split``, with ``--data`` typed as their
commands did (``/work/shared/train/…``), keeps only the faces held aside
under both that grouping and today's, the faces on which a new candidate and
the shipped networks can be compared fairly. ``--legacy-labels DIR`` writes
each labels-CSV data set of ``--data`` as ``DIR/<name>/labels.csv`` with that
grouping in a ``group`` column, so ``mesolive train DIR/<name> …`` holds
aside exactly what the shipped networks held aside (a candidate trained so can
be scored on every face they never saw; docs/training.md).

``--sizes 128 96`` also scores every face as if the pipeline had cut it from
that many frame pixels (:func:`mesolive.train.validation.as_if_cut_from`) and
prints per size and source the AUC, reals kept and fakes caught, then the mean
balanced accuracy (reals kept + fakes caught, halved) over the sources and
sizes, the faces' own included: how well a model keeps its one threshold on
faces far from the camera.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _fake_scores(clf, images: np.ndarray) -> np.ndarray:
    """Fake scores of (n, S, S, 3) uint8 BGR crops, 256 at a time."""
    return np.concatenate([clf.score(images[i : i + 256]).fake for i in range(0, len(images), 256)])


def _legacy_group(item) -> str:
    """The group ``mesolive.datasets`` gave an item before December 2026.

    Then as now a CSV row's group column and an image's ``<video>_<frame>``
    name in a folder were read. A file that is its own group today (a CSV row
    without a group, a video) was read as a frame too, and where it was not
    one it was named by its path as typed: give ``--data`` as the shipped
    models' commands did (``/work/shared/train/…``).
    """
    from mesolive.metrics import video_of

    prefix = f"{item.source}:"
    csv_row = item.group.startswith(prefix)
    own = item.group[len(prefix) :] if csv_row else item.group
    name = item.path.name
    if own != name and not own.endswith("/" + name):
        return item.group  # a group column or a frame name: unchanged
    return (prefix if csv_row else "") + (video_of(item.path.stem) or str(item.path))


def _write_labels(file: Path, items, groups) -> None:
    """``items`` as a labels CSV that ``mesolive.datasets`` reads: absolute file,
    label, kind and the group given for each."""
    with open(file, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "kind", "group"])
        for it, group in zip(items, groups, strict=True):
            w.writerow([it.path.resolve(), "fake" if it.label else "real", it.kind, group])


def _write_legacy_labels(items, folder: Path) -> None:
    """Each data set of ``items`` as ``folder/<name>/labels.csv`` with each row's
    group of before December 2026 (``_legacy_group``).

    Only a labels CSV's groups carry the data set's name; a data set of
    ``real/`` and ``fake/`` folders cannot be regrouped through a CSV and is
    refused. A labels file already there (the data set's own, if ``folder``
    is where the data lies) is never overwritten: nothing is written then.
    """
    by_source: dict[str, list] = {}
    for it in items:
        by_source.setdefault(it.source, []).append(it)
    planned: list[tuple[Path, list, list[str]]] = []  # (labels file, rows, groups)
    for source, rows in by_source.items():
        prefix = f"{source}:"
        legacy = [_legacy_group(it) for it in rows]
        if not all(g.startswith(prefix) for g in legacy):
            sys.exit(f"compare_on_split: error: {source}: --legacy-labels needs a labels CSV")
        out = folder / source / "labels.csv"
        if out.exists():
            sys.exit(f"compare_on_split: error: {out} exists already")
        planned.append((out, rows, [g[len(prefix) :] for g in legacy]))  # the reader adds it back
    for out, rows, groups in planned:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_labels(out, rows, groups)
        print(f"{out}: {len(rows)} rows, {len(set(groups))} groups")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from mesolive.classify.mesonet import load_classifier
    from mesolive.datasets import collect
    from mesolive.models.registry import get_spec
    from mesolive.train.data import load_faces, split_by_group
    from mesolive.train.validation import as_if_cut_from, breakdown, selection_auc

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--models", nargs="+", default=[])
    ap.add_argument("--val-split", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[],
        metavar="PX",
        help="also score the faces as if cut from this many frame pixels",
    )
    ap.add_argument("--whole", action="store_true", help="score every face of --data (no split)")
    ap.add_argument(
        "--legacy-split",
        action="store_true",
        help="only faces held aside under both today's groups and those before 3 December 2026",
    )
    ap.add_argument(
        "--legacy-labels",
        metavar="DIR",
        help="write each data set's labels with the groups of before 3 December 2026 to DIR",
    )
    ap.add_argument(
        "--held-videos",
        metavar="FILE.csv",
        help="write the held-out videos as a labels CSV, for 'mesolive evaluate'",
    )
    args = ap.parse_args()
    if not args.models and not args.legacy_labels:
        ap.error("give --models to score, or --legacy-labels DIR")

    items = collect(args.data)
    if args.legacy_labels:
        _write_legacy_labels(items, Path(args.legacy_labels))
    labels = np.array([it.label for it in items])
    if args.whole:
        held = items
    else:
        groups = np.array([it.group for it in items])
        _, val_idx = split_by_group(groups, labels, args.val_split, args.seed)
        if args.legacy_split:
            legacy = np.array([_legacy_group(it) for it in items])
            _, old_idx = split_by_group(legacy, labels, args.val_split, args.seed)
            val_idx = np.intersect1d(val_idx, old_idx)
        held = [items[i] for i in val_idx]
    if args.held_videos:
        from mesolive.imageio import VIDEO_EXTS

        videos = [it for it in held if it.path.suffix.lower() in VIDEO_EXTS]
        # the group: evaluate's pairs
        _write_labels(Path(args.held_videos), videos, [it.group for it in videos])
    out = {}
    cut = {}
    for name in args.models:
        contract = get_spec(name).preprocess
        if contract not in cut:
            cut[contract] = load_faces(held, contract)[0]
        faces = cut[contract]
        with load_classifier(name, progress=False) as clf:
            scores = _fake_scores(clf, faces.images)
            by_size = {
                side: breakdown(faces, _fake_scores(clf, as_if_cut_from(faces.images, side)))[
                    "per_source"
                ]
                for side in args.sizes
            }
        res = {"selection_auc": selection_auc(faces, scores), **breakdown(faces, scores)}
        out[name] = res
        print(f"{name}: selection AUC {res['selection_auc']:.3f} on {len(faces)} faces")
        for size, per_source in {"own": res["per_source"], **by_size}.items():
            for src, m in per_source.items():
                print(
                    f"  {size:>4} px {src:<8} {m['faces']:>5} faces  AUC {m['auc']:.3f}  reals "
                    f"kept {m['real_accuracy']:.3f}  fakes caught {m['fake_accuracy']:.3f}"
                )
        if by_size:
            res["sizes"] = by_size
            res["balanced_accuracy_over_sizes"] = float(
                np.mean(
                    [
                        (m["real_accuracy"] + m["fake_accuracy"]) / 2
                        for per_source in (res["per_source"], *by_size.values())
                        for m in per_source.values()
                    ]
                )
            )
            print(f"  balanced accuracy over sizes {res['balanced_accuracy_over_sizes']:.3f}")
        for src, m in res["pairs"].items():
            print(
                f"  {src:<8} within {m['groups']} pairs: AUC {m['auc_within']:.3f}, "
                f"fakes above their originals in {m['fake_above_real']:.3f} of them"
            )
        for kind, m in res["per_kind"].items():
            print(f"    {kind:<48} {m['faces']:>5}  right {m['share_right']:.3f}")
        for video, v in res["videos"].items():
            print(f"    video {video:<44} {v['label']:<5} {v['score']:.3f} right={v['right']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
