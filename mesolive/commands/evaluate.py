"""``mesolive evaluate FOLDER``: accuracy, per-class accuracy and ROC AUC."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mesolive.commands.common import open_classifier, score_files
from mesolive.datasets import from_csv, from_folder
from mesolive.errors import InputError
from mesolive.imageio import IMAGE_EXTS
from mesolive.metrics import Report, evaluate, roc_curve


def labelled_files(folder: Path, labels_csv: Path | None) -> list[tuple[Path, int]]:
    """(image, label) pairs from ``real/`` + ``fake/`` or a labels CSV (file,label)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    if labels_csv is not None and not labels_csv.is_file():
        raise InputError(f"{labels_csv}: no such labels CSV")
    items = from_csv(labels_csv) if labels_csv is not None else from_folder(folder)
    return [(it.path, it.label) for it in items if it.path.suffix.lower() in IMAGE_EXTS]


def write_plot(path: Path, labels: np.ndarray, scores: np.ndarray, rep: Report, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr = roc_curve(labels, scores)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100)
    ax1.plot(fpr, tpr, color="#c0392b", lw=2, label=f"AUC = {rep.auc:.3f}")
    ax1.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax1.set(xlabel="false positive rate (real called fake)", ylabel="true positive rate")
    ax1.set_title("ROC")
    ax1.legend(loc="lower right")
    bins = np.linspace(0, 1, 26)
    ax2.hist(scores[labels == 0], bins=bins, alpha=0.6, color="#27ae60", label="real")
    ax2.hist(scores[labels == 1], bins=bins, alpha=0.6, color="#c0392b", label="fake")
    ax2.axvline(rep.threshold, color="black", lw=1, ls=":")
    ax2.set(xlabel="fake score", ylabel="faces")
    ax2.set_title("score histograms")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    pairs = labelled_files(folder, Path(args.labels) if args.labels else None)
    if not pairs:
        raise InputError(f"{folder}: no labelled images found")
    label_of = dict(pairs)
    with open_classifier(args) as clf:
        results, errors = score_files(clf, [p for p, _ in pairs], args.batch)
    if not results:
        raise InputError(f"{folder}: none of the {len(pairs)} images could be read")
    labels = np.array([label_of[r.path] for r in results])
    scores = np.array([r.fake_score for r in results])
    rep = evaluate(labels, scores, [r.path.stem for r in results])
    if args.plot:
        write_plot(Path(args.plot), labels, scores, rep, f"{args.model} on {folder}")
    if args.json:
        out = {"model": args.model, "folder": str(folder), **asdict(rep), "errors": len(errors)}
        out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        lines = [
            f"model           {args.model} ({clf.backend})",
            f"images          {rep.n} ({rep.n_real} real, {rep.n_fake} fake)"
            + (f", {len(errors)} unreadable" if errors else ""),
            f"accuracy        {_fmt(rep.accuracy)}  (fake score > {rep.threshold})",
            f"real accuracy   {_fmt(rep.real_accuracy)}",
            f"fake accuracy   {_fmt(rep.fake_accuracy)}",
            f"ROC AUC         {_fmt(rep.auc)}",
        ]
        if rep.video_accuracy is not None:
            lines.append(f"video accuracy  {_fmt(rep.video_accuracy)}  ({rep.n_videos} videos)")
        if args.plot:
            lines.append(f"plot            {args.plot}")
        print("\n".join(lines))  # noqa: T201
    return 2 if errors else 0
