"""What a trained model is judged by: the card's numbers per source, kind and video."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from mesolive.datasets import short_names
from mesolive.metrics import Report, evaluate, pair_report
from mesolive.train.data import FaceSet
from mesolive.types import FAKE_THRESHOLD


def best_epoch(history: list[dict]) -> int:
    """The epoch whose weights a run keeps: the last that beat every one before it.

    ``history`` is the card's (or checkpoint's) per-epoch records. 0 means no
    epoch beat the starting weights (``--init``, or random ones), which are
    then what the run registers.
    """
    return max((h["epoch"] for h in history if h.get("improved")), default=0)


def card_metrics(rep: Report) -> dict[str, float]:
    """The model card's per-set numbers."""
    return {
        "auc": rep.auc,
        "accuracy": rep.accuracy,
        "real_accuracy": rep.real_accuracy,
        "fake_accuracy": rep.fake_accuracy,
    }


def _terms(
    labels: np.ndarray, sources: np.ndarray, kinds: np.ndarray, unseen: Sequence[str]
) -> Iterator[tuple[str, bool, np.ndarray]]:
    """(name, unseen?, mask) of each AUC the selection averages; one-class masks left out."""
    new = np.isin(kinds, unseen)
    terms = [(str(s), False, (sources == s) & ~new) for s in np.unique(sources)]
    for kind in unseen:
        where = np.unique(sources[kinds == kind])
        for s in where:
            mine = (kinds == kind) & (sources == s)
            missing = [c for c in (0, 1) if c not in labels[mine]]
            name = kind if len(where) == 1 else f"{kind} ({s})"
            terms.append((name, True, mine | ((sources == s) & ~new & np.isin(labels, missing))))
    return (t for t in terms if 0 < labels[t[2]].sum() < t[2].sum())


def selection_auc(
    val: FaceSet, scores: np.ndarray, *at_sizes: np.ndarray, unseen: Sequence[str] = ()
) -> float:
    """What early stopping and the best epoch are chosen by: the mean of the
    per-source ROC AUCs (sources holding both classes), so that the largest
    data set (DFDC) cannot outvote the photos and videos.

    ``at_sizes`` are more scores of the same faces, as if cut from fewer
    pixels (:func:`as_if_cut_from`); each source's AUC is then over its faces
    at every size together, so that one threshold must serve near and far
    faces alike and a network whose scores drift with a face's size loses.

    Each ``unseen`` kind (never trained on, :func:`mesolive.train.data.unseen_aside`)
    counts once more: its faces against the held-aside faces of the other
    class from the same source. Its faces stay out of their source's own AUC,
    so a network that learns its training forgeries ever more closely and
    forgets how to catch new ones loses on this term.
    """
    k = 1 + len(at_sizes)
    labels, sources, kinds = (np.tile(a, k) for a in (val.labels, val.sources, val.kinds))
    pooled = np.concatenate([scores, *at_sizes])
    terms = _terms(labels, sources, kinds, unseen)
    aucs = [evaluate(labels[m], pooled[m]).auc for _, _, m in terms]
    return float(np.mean(aucs)) if aucs else evaluate(labels, pooled).auc


def unseen_aucs(val: FaceSet, scores: np.ndarray, unseen: Sequence[str]) -> dict[str, float]:
    """Per unseen kind (and source, where it spans several), the AUC :func:`selection_auc`
    counts for it: one number per epoch."""
    terms = _terms(val.labels, val.sources, val.kinds, unseen)
    return {name: evaluate(val.labels[m], scores[m]).auc for name, new, m in terms if new}


def within_pairs(val: FaceSet, scores: np.ndarray) -> dict[str, dict[str, float]]:
    """Per source, how the model tells each forgery from its own original
    (:class:`~mesolive.metrics.PairReport`): ``groups``, ``auc_within`` and
    ``fake_above_real``, the share of groups whose fakes score above their reals.
    Sources without a group that holds both classes are left out.
    """
    out = {}
    for s in np.unique(val.sources):
        m = val.sources == s
        rep = pair_report(val.labels[m], scores[m], val.groups[m])
        if rep is not None:
            out[str(s)] = {
                "groups": rep.groups,
                "auc_within": rep.auc_within,
                "fake_above_real": rep.fake_above / rep.groups,
            }
    return out


def breakdown(
    val: FaceSet, scores: np.ndarray, threshold: float = FAKE_THRESHOLD
) -> dict[str, object]:
    """The card's validation per source, per kind, per whole video, and
    within the pairs (:func:`within_pairs`).

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
    multi = [f for f in np.unique(val.files) if (val.files == f).sum() > 1]  # videos
    for f, name in zip(multi, short_names([Path(str(f)) for f in multi]), strict=True):
        m = val.files == f
        score = float(scores[m].mean())
        videos[name] = {
            "label": "fake" if val.labels[m][0] else "real",
            "score": score,
            "right": (score > threshold) == bool(val.labels[m][0]),
        }
    return {
        "per_source": per_source,
        "per_kind": per_kind,
        "videos": videos,
        "pairs": within_pairs(val, scores),
    }


def as_if_cut_from(images: np.ndarray, side: int) -> np.ndarray:
    """(n, S, S, 3) uint8 crops as the pipeline would cut the same faces from ``side`` pixels.

    A face whose crop covers ``side`` × ``side`` frame pixels reaches the
    network blown up by the crop's nearest-neighbour warp; so each crop is
    averaged down to ``side`` (what a farther camera records) and enlarged
    back with nearest neighbours. ``side`` >= S returns ``images`` as they are.
    """
    s = images.shape[1]
    if side >= s:
        return images
    out = np.empty_like(images)
    for im, o in zip(images, out, strict=True):
        small = cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA)
        cv2.resize(small, (s, s), dst=o, interpolation=cv2.INTER_NEAREST)
    return out
