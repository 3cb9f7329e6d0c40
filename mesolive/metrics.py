"""Binary classification metrics in plain numpy (label 1 = fake)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mesolive.types import FAKE_THRESHOLD

_FRAME = re.compile(r"^(?P<video>.+)_(?P<frame>\d+)$")


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction)."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates for every threshold, from (0, 0) to (1, 1)."""
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    s = np.asarray(scores)[order]
    y = labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(1, y.sum())]
    fpr = np.r_[0.0, fps / max(1, (~y).sum())]
    return fpr, tpr


@dataclass(frozen=True)
class Report:
    """Frame- (or image-) level metrics, and video-level ones where available."""

    n: int
    n_real: int
    n_fake: int
    accuracy: float
    real_accuracy: float
    fake_accuracy: float
    auc: float
    threshold: float
    n_videos: int = 0
    video_accuracy: float | None = None


def paired_groups(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The groups (sorted) that hold both classes: a labels CSV's pairs (a swap and its
    original), DFDC originals with the fakes made from them."""
    return np.intersect1d(groups[labels == 1], groups[labels == 0])


@dataclass(frozen=True)
class PairReport:
    """How scores tell each fake from its own original, over the groups that hold both
    classes (:func:`paired_groups`). A swap and its original share the footage, so a
    model that reads the footage rather than the forgery scores both alike (0.5)
    while its pooled numbers may still look good."""

    groups: int
    auc_within: float  # the mean of each group's ROC AUC of its fakes against its reals
    fake_above: int  # the groups whose fakes' mean score is above their reals'


def pair_report(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> PairReport | None:
    """:class:`PairReport` of fake scores against labels (1 = fake); None without a pair."""
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups)
    both = paired_groups(groups, labels)
    if not len(both):
        return None
    aucs, above = [], 0
    for g in both:
        at = groups == g
        aucs.append(roc_auc(labels[at], scores[at]))
        above += scores[at & (labels == 1)].mean() > scores[at & (labels == 0)].mean()
    return PairReport(len(both), float(np.mean(aucs)), int(above))


def video_of(stem: str) -> str | None:
    """``<video>_<frame>`` → ``<video>``; None where the name has no frame number."""
    m = _FRAME.match(stem)
    return m.group("video") if m else None


def evaluate(
    labels: np.ndarray,
    scores: np.ndarray,
    stems: Sequence[str] | None = None,
    threshold: float = FAKE_THRESHOLD,
) -> Report:
    """Metrics of fake scores against labels (1 = fake).

    Video level follows the authors' rule: a video is called fake when more
    than half of its frames have a fake score above ``threshold``. It is
    computed only when every file is named ``<video>_<frame>``.
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    pred = scores > threshold
    correct = pred == labels
    n_videos, video_acc = 0, None
    if stems is not None and len(stems) and all(video_of(s) for s in stems):
        groups: dict[tuple[str, bool], list[bool]] = defaultdict(list)
        for stem, lab, p in zip(stems, labels, pred, strict=True):
            groups[(video_of(stem) or stem, bool(lab))].append(bool(p))
        video_correct = [(np.mean(v) > 0.5) == lab for (_, lab), v in groups.items()]
        n_videos, video_acc = len(groups), float(np.mean(video_correct))

    def _acc(mask: np.ndarray) -> float:
        return float(correct[mask].mean()) if mask.any() else float("nan")

    return Report(
        n=len(labels),
        n_real=int((~labels).sum()),
        n_fake=int(labels.sum()),
        accuracy=float(correct.mean()) if len(labels) else float("nan"),
        real_accuracy=_acc(~labels),
        fake_accuracy=_acc(labels),
        auc=roc_auc(labels, scores),
        threshold=threshold,
        n_videos=n_videos,
        video_accuracy=video_acc,
    )
