"""What a trained model is judged by: the card's numbers per source, kind and video."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mesolive.metrics import Report, evaluate
from mesolive.train.data import FaceSet


def card_metrics(rep: Report) -> dict[str, float]:
    """The model card's per-set numbers."""
    return {
        "auc": rep.auc,
        "accuracy": rep.accuracy,
        "real_accuracy": rep.real_accuracy,
        "fake_accuracy": rep.fake_accuracy,
    }


def selection_auc(val: FaceSet, scores: np.ndarray) -> float:
    """What early stopping and the best epoch are chosen by: the mean of the
    per-source ROC AUCs (sources holding both classes), so that the largest
    data set (DFDC) cannot outvote the photos and videos."""
    aucs = [
        evaluate(val.labels[m], scores[m]).auc
        for m in (val.sources == s for s in np.unique(val.sources))
        if 0 < val.labels[m].sum() < m.sum()
    ]
    return float(np.mean(aucs)) if aucs else evaluate(val.labels, scores).auc


def breakdown(val: FaceSet, scores: np.ndarray, threshold: float = 0.5) -> dict[str, object]:
    """The card's validation per source, per kind, and per whole video.

    A video's score is the mean fake score of its faces; it is called fake
    above ``threshold``, the same threshold the faces are judged by.
    """
    per_source = {}
    for s in np.unique(val.sources):
        m = val.sources == s
        rep = evaluate(val.labels[m], scores[m], threshold=threshold)
        per_source[str(s)] = {"faces": int(m.sum()), **card_metrics(rep)}
    per_kind = {}
    for lab, k in sorted({(int(a), str(b)) for a, b in zip(val.labels, val.kinds, strict=True)}):
        m = (val.kinds == k) & (val.labels == lab)
        right = (scores[m] > threshold) == bool(lab)
        # keyed by label too: a data set may use one kind for its reals and fakes
        name = k if k in ("real", "fake") else f"{'fake' if lab else 'real'}: {k}"
        per_kind[name] = {"faces": int(m.sum()), "share_right": float(right.mean())}
    videos = {}
    for f in np.unique(val.files):
        m = val.files == f
        if m.sum() > 1:  # a file that gave several faces is a video
            score = float(scores[m].mean())
            videos[Path(str(f)).name] = {
                "label": "fake" if val.labels[m][0] else "real",
                "score": score,
                "right": (score > threshold) == bool(val.labels[m][0]),
            }
    return {"per_source": per_source, "per_kind": per_kind, "videos": videos}
