"""The session's read-only figures: what the status bar and the stats hook read."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mesolive.gui import hooks as gui_hooks
from tests.gui.conftest import make_face, make_result

pytestmark = pytest.mark.gui


def _two_results_then_a_paint(window, qtbot) -> None:
    p = window.presenter
    face = make_face(1, (100, 100, 300, 300), 0.2)
    p.take_result(make_result([face], index=0, t=1.0))
    p.take_result(make_result([face], index=1, t=1.1))  # before a paint: replaces the first
    qtbot.waitUntil(lambda: p.stats().painted == 1, timeout=5000)


def test_session_figures_are_a_read_only_copy(window, qtbot):
    p = window.presenter
    before = p.stats()
    _two_results_then_a_paint(window, qtbot)
    s = p.stats()
    assert (s.results, s.painted, s.superseded, s.dropped) == (2, 1, 1, 1)
    assert s.t_first_paint is not None and s.fps_since(before) > 0
    assert s.dropped_share is None  # nothing captured in this session
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.painted = 5  # type: ignore[misc]
    window.status.update_stats()
    assert window.status.drops_label.text().startswith("dropped 1 ")
    assert "1 results replaced before they were drawn" in window.status.drops_label.toolTip()

    assert not window.start_source("nosuchscheme:abc")  # a new session counts anew
    assert (p.stats().painted, p.stats().superseded) == (0, 0)


def test_the_stats_hook_writes_the_sessions_figures(window, qtbot, tmp_path):
    path = tmp_path / "stats.json"
    hooks = gui_hooks.TestingHooks(window, env={gui_hooks.ENV_STATS: str(path)})
    _two_results_then_a_paint(window, qtbot)
    hooks.write_stats()
    stats = json.loads(path.read_text())
    s = window.presenter.stats()
    assert (stats["results"], stats["painted"], stats["superseded"]) == (2, 1, 1)
    assert stats["backend"] == s.backend and stats["errors"] == 0
    assert stats["rss_mb"], "memory is sampled from the start"
