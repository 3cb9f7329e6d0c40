"""The session report's plot (``timeline.png``): matplotlib's Agg canvas, no pyplot.

Drawn in the report's child process (:mod:`mesolive.gui.report_child` says
why), never in the app. Each curve is first cut to the plot's pixel columns
(:func:`envelope`: the same picture, at most two points a column): Agg
holds the GIL for each whole line it draws, and a ten-minute line of 18,000
points took 600 ms. This module imports only NumPy at the top.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The plot's size in inches at :data:`DPI`, and the axes' left and right edges
#: as shares of its width (fixed margins, see :func:`render_png`).
SIZE = (12.0, 4.5)
DPI = 100
AXES_X = (0.06, 0.76)
#: Pixel columns of the axes: a curve needs no more than two points per column.
COLUMNS = round(SIZE[0] * DPI * (AXES_X[1] - AXES_X[0]))


@dataclass(frozen=True)
class Curve:
    """One track's line: ``t`` (seconds) and ``y`` (running fake score), (n,) float64."""

    label: str
    t: np.ndarray
    y: np.ndarray


def envelope(t: np.ndarray, y: np.ndarray, bins: int = COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * bins + 2`` points of ``(t, y)`` that draw the same line at ``bins`` columns.

    The points are cut into ``bins`` runs of equal count; each run keeps its
    first lowest and first highest point, in time order, so a peak or a dip
    one frame long still shows; the first and the last point stay too (a
    live line ends at the newest score). ``t`` and ``y`` are (n,) float64; a
    series of at most ``2 * bins`` points comes back as it is.
    """
    n = len(t)
    if n <= 2 * bins:
        return t, y
    edges = np.linspace(0, n, bins + 1).astype(np.intp)
    run = np.repeat(np.arange(bins), np.diff(edges))  # the run of each point
    lo = np.minimum.reduceat(y, edges[:-1])[run]
    hi = np.maximum.reduceat(y, edges[:-1])[run]
    idx = np.arange(n)
    first_lo = np.full(bins, n, np.intp)
    first_hi = np.full(bins, n, np.intp)
    np.minimum.at(first_lo, run[y == lo], idx[y == lo])
    np.minimum.at(first_hi, run[y == hi], idx[y == hi])
    pairs = np.sort(np.stack([first_lo, first_hi], axis=1), axis=1).ravel()  # in time order
    keep = np.r_[0, pairs, n - 1]
    keep = keep[np.r_[True, keep[1:] != keep[:-1]]]  # a flat run's two are one point
    return t[keep], y[keep]


def render_png(curves: Sequence[Curve], threshold: float, title: str) -> bytes:
    """The plot as PNG bytes: each curve, the threshold, the legend beside the axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for c in curves:
        ax.plot(c.t, c.y, label=c.label, linewidth=1.5)
    ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("running fake score")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if curves:  # beside the plot, never over the curves
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=8)
    # fixed margins for the fixed figure size: tight_layout() would draw every text once more
    fig.subplots_adjust(left=AXES_X[0], right=AXES_X[1], bottom=0.11, top=0.92)
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
