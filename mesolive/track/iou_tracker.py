"""Stable face IDs across frames: greedy IoU matching with constant-velocity boxes.

Faces in a video move little between two analysed frames, so a box is
matched to the track whose *predicted* box overlaps it most (greedy, best
IoU first; with a handful of faces this equals the Hungarian assignment
almost always and needs no SciPy). The prediction moves the last detected
box by the track's velocity, which keeps IDs through pans and through the
frames skipped with ``--every``. A track that finds no box is kept, hidden,
for a while, so a face that is missed once or turns away briefly keeps its
ID.

A face gets its ID when it is detected in two analysed frames in a row
(SORT's and ByteTrack's confirmation), or at once on the first analysed
frame of an input (a photo has no second). Until then its track is
tentative: it has no ID (0), nobody shows or judges it, and it ends when the
next analysed frame has no box for it. A one-frame false detection (a patch
of a map behind a newsreader, a half-turned head in a crowd) so never
becomes a face of the session.

Given a :class:`~mesolive.track.appearance.Describer`, tracks also remember
what their face looks like. A face that no box continues is compared with
the hidden tracks and with those that expired less than ``reid_seconds``
ago; the one it resembles (similarity at least
:data:`~mesolive.track.appearance.SAME_FACE`, clearly ahead of the next)
gets its ID back, so someone who leaves the picture and returns, or a clip
that loops, keeps one ID per person. A match by position alone (the second,
nearest-centre pass) is refused when the faces look like different people.
Faces are described only when that decides something: a face no box
continued, a nearest-centre match, a young track's every match and an older
one's every :data:`LOOK_EVERY`-th; never a face cut by the frame's edge.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mesolive.track.appearance import NOT_SAME_FACE, SAME_FACE, Describer
from mesolive.types import FaceDetections

LOOK_EVERY = 10
"""A track's appearance is refreshed at every n-th match once it has :data:`FIRST_LOOKS`."""

FIRST_LOOKS = 5
"""Looks averaged before a track's appearance is trusted to refuse a match."""

YOUNG_LOOKS = 10
"""A track with fewer looks learns its look at every match, and may still prove to be an
earlier track (:meth:`IouTracker._fold_young`)."""

EDGE = 0.1
"""A face box closer to the frame's edge than this share of its side is not described."""

REID_MARGIN = 0.02
"""A returning face must resemble one earlier track by this much more than any other."""

GONE_KEPT = 32
"""Expired tracks remembered at most (the oldest are forgotten first)."""


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


@dataclass(eq=False)
class Track:
    """One face followed across frames (mutable; lives in the pipeline's thread; equal only
    to itself).

    Attributes
    ----------
    track_id
        Stable ID, 1, 2, … in order of confirmation; 0 while the track is
        tentative (one detection so far; see the module docstring).
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
    appearance: np.ndarray | None = None
    looks: int = 0
    gone_at: float = 0.0

    def look(self, descriptor: np.ndarray) -> None:
        """Fold one (D,) unit descriptor into :attr:`appearance` (a running mean, unit length)."""
        self.looks += 1
        if self.appearance is None:
            self.appearance = descriptor.astype(np.float32)
            return
        w = 1.0 / min(self.looks, 2 * FIRST_LOOKS)  # equal weights, then a slow average
        mean = (1.0 - w) * self.appearance + w * descriptor
        self.appearance = (mean / np.linalg.norm(mean)).astype(np.float32)

    @property
    def confirmed(self) -> bool:
        return self.track_id > 0

    @property
    def known_look(self) -> bool:
        return self.appearance is not None and self.looks >= FIRST_LOOKS

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
    describe
        Describes faces (module docstring); None: position and size only.
    reid_seconds
        How long an expired track may still be recognised and get its ID
        back (0: once expired, never), in the time given to :meth:`update`.
    """

    def __init__(
        self,
        *,
        min_iou: float = 0.3,
        max_missed: int = 15,
        velocity_smoothing: float = 0.5,
        near: float = 0.4,
        near_max: float = 1.5,
        describe: Describer | None = None,
        reid_seconds: float = 0.0,
    ) -> None:
        self.min_iou = float(min_iou)
        self.describe = describe
        self.reid_seconds = float(reid_seconds)
        self._gone: deque[Track] = deque(maxlen=GONE_KEPT)
        self.merged: dict[int, int] = {}
        """IDs of young tracks folded into earlier ones at the last :meth:`update`."""
        self.near = float(near)
        self.near_max = float(near_max)
        self.max_missed = int(max_missed)
        self.velocity_smoothing = float(velocity_smoothing)
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_analysed: list[int] = []  # frame indices of the last analysed frames

    def reset(self) -> None:
        self.tracks = []
        self._gone.clear()
        self._next_id = 1
        self._last_analysed = []

    def update(
        self,
        detections: FaceDetections,
        frame: int,
        image: np.ndarray | None = None,
        now: float = 0.0,
    ) -> list[tuple[Track, int]]:
        """Match one analysed frame's detections; returns ``(track, detection index)`` pairs.

        Every detection gets a track (an earlier one it resembles, else a new
        one, if no box matched); the pairs are in detection order, tentative
        tracks (ID 0) included. Unmatched tracks become hidden and expire
        after ``max_missed`` frames; an unmatched tentative track ends.
        ``image`` (the frame) lets the tracker describe faces; ``now`` is the
        frame's time in seconds, for ``reid_seconds``.
        """
        n = len(detections)
        looks = _Looks(self.describe, image, detections)
        live = self.tracks
        if live and n:
            predicted = np.stack([t.predict(frame)[0] for t in live])
            pairs = greedy_match(iou_matrix(predicted, detections.xyxy), self.min_iou)
            gaps = np.array([frame - t.frame for t in live], np.float64)
            near = self._match_near(predicted, detections.xyxy, gaps, pairs)
            pairs += [(r, c) for r, c in near if not looks.unlike(live[r], c)]
        else:
            pairs = []
        matched: dict[int, Track] = {}
        for r, c in pairs:
            matched[c] = live[r]
        self.merged = {}
        self._fold_young(looks, matched, detections, now)
        areas = np.prod(detections.xyxy[:, 2:] - detections.xyxy[:, :2], axis=1)
        for c in sorted(set(range(n)) - set(matched), key=lambda c: -areas[c]):  # clearest first
            back = self._recognise(looks, c, detections.xyxy[c], matched, now)
            if back is not None:
                # it was away: start again from here, with no motion to carry on
                back.xyxy, back.frame = detections.xyxy[c].astype(np.float32), frame
                back.velocity = np.zeros(4, np.float32)
                matched[c] = back
        for c, track in matched.items():
            self._observe(track, detections.xyxy[c], detections.kps[c], frame)
            if track.looks < YOUNG_LOOKS or track.hits % LOOK_EVERY == 0:
                looks.add_to(track, c)
        for t in self.tracks:
            t.visible = any(t is m for m in matched.values())
            if t.visible and not t.confirmed:  # its second detection in a row
                self._confirm(t)
        self.tracks = [t for t in self.tracks if t.confirmed or t.visible]
        first = not self._last_analysed  # the input's first analysed frame
        for c in range(n):
            if c not in matched:
                track = Track(
                    0,
                    detections.xyxy[c].astype(np.float32),
                    detections.kps[c].astype(np.float32),
                    frame,
                    first_frame=frame,
                    last_frame=frame,
                )
                if first:
                    self._confirm(track)
                self.tracks.append(track)
                matched[c] = track
                looks.add_to(track, c)
        self._last_analysed = ([*self._last_analysed, frame])[-2:]
        # Keep a hidden track while it is younger than max_missed frames, or
        # has missed only this analysed frame (with --every k > max_missed).
        horizon = min(frame - self.max_missed, self._last_analysed[0])
        for t in self.tracks:
            if not t.visible and t.last_frame < horizon and t.appearance is not None:
                t.gone_at = now
                self._gone.append(t)
        self.tracks = [t for t in self.tracks if t.visible or t.last_frame >= horizon]
        while self._gone and now - self._gone[0].gone_at > self.reid_seconds:
            self._gone.popleft()
        return [(matched[c], c) for c in range(n)]

    def _confirm(self, track: Track) -> None:
        track.track_id = self._next_id
        self._next_id += 1

    def _candidates(self, matched: dict[int, Track], now: float) -> list[Track]:
        """Tracks a face may turn out to be: hidden ones, and recently expired ones."""
        taken = {id(t) for t in matched.values()}
        cands = [
            t
            for t in self.tracks
            if id(t) not in taken and t.appearance is not None and t.confirmed
        ]
        if self.reid_seconds > 0:
            cands += [t for t in self._gone if now - t.gone_at <= self.reid_seconds]
        return cands

    def _recognise(
        self,
        looks: _Looks,
        col: int,
        box: np.ndarray,
        matched: dict[int, Track],
        now: float,
        look: np.ndarray | None = None,
    ) -> Track | None:
        """The earlier track that detection ``col`` (at ``box``) is, if one is clear.

        The most similar candidate counts when its similarity reaches
        ``SAME_FACE``, or ``NOT_SAME_FACE`` where the face is back where that
        track was last seen (the same place and size), and beats every
        candidate that looks like someone else by ``REID_MARGIN`` (two earlier
        tracks of one person do not block each other). ``look`` replaces the
        detection's own descriptor (a young track's running appearance).
        """
        if look is None:
            if not looks.usable(col):
                return None
            look = looks.of(col)
        cands = self._candidates(matched, now)
        if not cands:
            return None
        sims = np.stack([t.appearance for t in cands]) @ look
        best = int(np.argmax(sims))
        track = cands[best]
        bar = NOT_SAME_FACE if _same_place(track.xyxy, box) else SAME_FACE
        rivals = [
            float(s)
            for t, s in zip(cands, sims, strict=True)
            if t is not track and float(t.appearance @ track.appearance) < SAME_FACE
        ]
        if sims[best] < bar or (rivals and sims[best] - max(rivals) < REID_MARGIN):
            return None
        if track in self._gone:
            self._gone.remove(track)
            self.tracks.append(track)
        return track

    def _fold_young(
        self, looks: _Looks, matched: dict[int, Track], detections: FaceDetections, now: float
    ) -> None:
        """A track begun in the last few frames that proves to be an earlier one gives way.

        A face returning half-turned or blurred is not recognised at once, and
        gets a new track; once its first looks are averaged it may resemble an
        earlier track clearly enough. Then the earlier track takes this frame's
        detection and the young one ends; :attr:`merged` maps its ID to the
        earlier one, so that whoever keeps per-ID records can fold them.
        """
        if looks.describe is None:
            return
        for c, young in list(matched.items()):
            if not 2 <= young.looks < YOUNG_LOOKS:
                continue
            old = self._recognise(looks, c, detections.xyxy[c], matched, now, look=young.appearance)
            if old is None or old.track_id > young.track_id:
                continue
            old.look(young.appearance)
            old.xyxy, old.frame = detections.xyxy[c].astype(np.float32), young.frame
            old.velocity = young.velocity
            matched[c] = old
            self.tracks = [t for t in self.tracks if t is not young]
            self.merged[young.track_id] = old.track_id

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
        """Confirmed tracks matched at the latest analysed frame, by ID."""
        return [t for t in self.tracks if t.visible and t.confirmed]

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


class _Looks:
    """One frame's face descriptors, computed on first use and kept for the frame.

    A face cut by the frame's edge is never described: the aligned crop would
    be part face, part repeated border, and look like no one.
    """

    def __init__(
        self, describe: Describer | None, image: np.ndarray | None, detections: FaceDetections
    ) -> None:
        self.describe = describe if image is not None else None
        self.image = image
        self.kps = detections.kps
        self.n = len(detections)
        self._whole = np.zeros(self.n, bool)
        if image is not None and self.n:
            h, w = image.shape[:2]
            box = detections.xyxy
            m = EDGE * np.max(box[:, 2:] - box[:, :2], axis=1)
            self._whole = (
                (box[:, 0] > m) & (box[:, 1] > m) & (box[:, 2] < w - m) & (box[:, 3] < h - m)
            )
        self._rows: dict[int, np.ndarray] = {}

    def usable(self, col: int) -> bool:
        return self.describe is not None and bool(self._whole[col])

    def of(self, col: int) -> np.ndarray:
        """The (D,) descriptor of detection ``col`` (a usable one)."""
        if col not in self._rows:
            self._rows[col] = self.describe(self.image, self.kps[col : col + 1])[0]
        return self._rows[col]

    def unlike(self, track: Track, col: int) -> bool:
        """True when ``track``'s face and detection ``col`` look like different people."""
        if not self.usable(col) or not track.known_look:
            return False
        return float(track.appearance @ self.of(col)) < NOT_SAME_FACE

    def add_to(self, track: Track, col: int) -> None:
        if self.usable(col):
            track.look(self.of(col))


def _same_place(old: np.ndarray, new: np.ndarray) -> bool:
    """Boxes (x1 y1 x2 y2) with centres within one box side and sides within a factor 2."""
    side_old = max(float(old[2] - old[0]), float(old[3] - old[1]), 1e-6)
    side_new = max(float(new[2] - new[0]), float(new[3] - new[1]), 1e-6)
    dx = (old[0] + old[2] - new[0] - new[2]) / 2
    dy = (old[1] + old[3] - new[1] - new[3]) / 2
    return bool(np.hypot(dx, dy) <= side_old and 0.5 < side_new / side_old < 2.0)
