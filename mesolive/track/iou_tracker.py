"""Stable face IDs across frames: greedy IoU matching with constant-velocity boxes.

Faces in a video move little between two analysed frames, so a box is
matched to the track whose *predicted* box overlaps it most (greedy, best
IoU first; with a handful of faces this equals the Hungarian assignment
almost always and needs no SciPy). The prediction moves the last detected
box by the track's velocity, which keeps IDs through pans and through the
frames skipped with ``--every``. A track that finds no box is kept, hidden,
for a while, so a face that is missed once or turns away briefly keeps its
ID.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mesolive.types import FaceDetections


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b``.

    Parameters
    ----------
    a, b
        (n, 4) and (m, 4) float boxes, x1 y1 x2 y2.

    Returns
    -------
    np.ndarray
        (n, m) float64 IoU in [0, 1].
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def greedy_match(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` taken best IoU first, each row and column at most once."""
    if iou.size == 0:
        return []
    rows, cols = np.nonzero(iou >= min_iou)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


@dataclass
class Track:
    """One face followed across frames (mutable; lives in the pipeline's thread).

    Attributes
    ----------
    track_id
        Stable ID, 1, 2, … in order of appearance.
    xyxy
        (4,) float32 box of the last detection, frame pixels.
    kps
        (5, 2) float32 keypoints of the last detection, frame pixels.
    frame
        Frame index of the last detection.
    velocity
        (4,) float32 box change per frame (x1 y1 x2 y2), smoothed.
    first_frame, last_frame
        Frame indices of the first and last detection.
    hits
        Detections matched to this track.
    visible
        Matched at the latest analysed frame (hidden tracks wait to be
        re-found, or expire).
    """

    track_id: int
    xyxy: np.ndarray
    kps: np.ndarray
    frame: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    first_frame: int = 0
    last_frame: int = 0
    hits: int = 1
    visible: bool = True

    def predict(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Box (4,) and keypoints (5, 2) moved by the velocity to ``frame``."""
        dt = frame - self.frame
        if dt <= 0 or not self.velocity.any():
            return self.xyxy, self.kps
        box = (self.xyxy + self.velocity * dt).astype(np.float32)
        shift = (box[:2] + box[2:] - self.xyxy[:2] - self.xyxy[2:]) / 2.0  # centre shift
        return box, (self.kps + shift).astype(np.float32)


class IouTracker:
    """Assigns detections to tracks.

    Parameters
    ----------
    min_iou
        Least IoU between a predicted box and a detection to be the same face.
    max_missed
        A hidden track expires when it has not been detected for more than
        this many frames (and at least two analysed frames).
    velocity_smoothing
        Weight of the old velocity when a new one is measured (0: newest only).
    near, near_max
        Second pass: a detection whose centre lies within ``near`` × the
        track's box size per frame since its last detection (at most
        ``near_max`` box sizes) of its prediction, and of similar size,
        continues it. 0.4 follows someone walking past a 1080p camera
        (0.3 box sizes per frame in ``street_talk.mp4``) at ``--every 3``.
    """

    def __init__(
        self,
        *,
        min_iou: float = 0.3,
        max_missed: int = 15,
        velocity_smoothing: float = 0.5,
        near: float = 0.4,
        near_max: float = 1.5,
    ) -> None:
        self.min_iou = float(min_iou)
        self.near = float(near)
        self.near_max = float(near_max)
        self.max_missed = int(max_missed)
        self.velocity_smoothing = float(velocity_smoothing)
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_analysed: list[int] = []  # frame indices of the last analysed frames

    def reset(self) -> None:
        self.tracks = []
        self._next_id = 1
        self._last_analysed = []

    def update(self, detections: FaceDetections, frame: int) -> list[tuple[Track, int]]:
        """Match one analysed frame's detections; returns ``(track, detection index)`` pairs.

        Every detection gets a track (a new one if nothing matched); the
        pairs are in detection order. Unmatched tracks become hidden and
        expire after ``max_missed`` frames.
        """
        n = len(detections)
        live = self.tracks
        if live and n:
            predicted = np.stack([t.predict(frame)[0] for t in live])
            pairs = greedy_match(iou_matrix(predicted, detections.xyxy), self.min_iou)
            gaps = np.array([frame - t.frame for t in live], np.float64)
            pairs += self._match_near(predicted, detections.xyxy, gaps, pairs)
        else:
            pairs = []
        matched: dict[int, Track] = {}
        for r, c in pairs:
            track = live[r]
            self._observe(track, detections.xyxy[c], detections.kps[c], frame)
            matched[c] = track
        for t in live:
            t.visible = any(t is m for m in matched.values())
        for c in range(n):
            if c not in matched:
                track = Track(
                    self._next_id,
                    detections.xyxy[c].astype(np.float32),
                    detections.kps[c].astype(np.float32),
                    frame,
                    first_frame=frame,
                    last_frame=frame,
                )
                self._next_id += 1
                self.tracks.append(track)
                matched[c] = track
        self._last_analysed = ([*self._last_analysed, frame])[-2:]
        # Keep a hidden track while it is younger than max_missed frames, or
        # has missed only this analysed frame (with --every k > max_missed).
        horizon = min(frame - self.max_missed, self._last_analysed[0])
        self.tracks = [t for t in self.tracks if t.visible or t.last_frame >= horizon]
        return [(matched[c], c) for c in range(n)]

    def _match_near(
        self,
        predicted: np.ndarray,
        boxes: np.ndarray,
        gaps: np.ndarray,
        taken: list[tuple[int, int]],
    ) -> list[tuple[int, int]]:
        """Second pass for what IoU left: nearest centres, for faces that moved fast.

        A face that moved more than about half its width since its last
        detection (someone walking past with ``--every 3``, a track without
        a velocity yet) overlaps its old box too little. It is the same face
        when its centre lies within ``near`` box sizes per elapsed frame of
        the prediction (at most ``near_max``) and its size changed by less
        than half.
        """
        rows = [r for r in range(len(predicted)) if r not in {p[0] for p in taken}]
        cols = [c for c in range(len(boxes)) if c not in {p[1] for p in taken}]
        if not rows or not cols:
            return []
        a, b = predicted[rows].astype(np.float64), boxes[cols].astype(np.float64)
        ca, cb = (a[:, :2] + a[:, 2:]) / 2, (b[:, :2] + b[:, 2:]) / 2
        sa = np.maximum(a[:, 2:] - a[:, :2], 1e-6).max(axis=1)
        sb = np.maximum(b[:, 2:] - b[:, :2], 1e-6).max(axis=1)
        dist = np.hypot(*(ca[:, None, :] - cb[None, :, :]).transpose(2, 0, 1)) / sa[:, None]
        ratio = sb[None, :] / sa[:, None]
        radius = np.minimum(self.near * np.maximum(gaps[rows], 1.0), self.near_max)
        ok = (dist <= radius[:, None]) & (ratio > 0.5) & (ratio < 2.0)
        closeness = np.where(ok, 1.0 / (1.0 + dist), 0.0)  # larger is better, 0 = no
        return [(rows[r], cols[c]) for r, c in greedy_match(closeness, 1e-9)]

    def visible(self) -> list[Track]:
        """Tracks matched at the latest analysed frame, by ID."""
        return [t for t in self.tracks if t.visible]

    def _observe(self, track: Track, box: np.ndarray, kps: np.ndarray, frame: int) -> None:
        dt = frame - track.frame
        if dt > 0:
            v = (box - track.xyxy) / dt
            a = self.velocity_smoothing if track.hits > 1 else 0.0
            track.velocity = (a * track.velocity + (1.0 - a) * v).astype(np.float32)
        track.xyxy = box.astype(np.float32)
        track.kps = kps.astype(np.float32)
        track.frame = frame
        track.last_frame = frame
        track.hits += 1
