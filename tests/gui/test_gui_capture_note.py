"""A source's note reaches the user: ``window:`` read from the screen, on an X server
without Composite, shows a warning in the banner and the status bar."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from mesolive.gui.presenter import Level, Presenter, State
from mesolive.pipeline.pipeline import PipelineConfig
from tests.conftest import run_xvfb
from tests.test_sources_x11 import BLUE, make_window

pytestmark = [
    pytest.mark.gui,
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (apt xvfb)"),
]


@pytest.fixture
def plain_display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``$DISPLAY``: an Xvfb server without the Composite extension."""
    for name in run_xvfb("-extension", "Composite"):
        monkeypatch.setenv("DISPLAY", name)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        yield name


def test_a_window_read_from_the_screen_says_so(qtbot, plain_display: str) -> None:
    from Xlib import display

    disp = display.Display(plain_display)
    presenter = Presenter()
    try:
        make_window(disp, "Video Call", 10, 10, 120, 90, BLUE)
        with qtbot.waitSignal(
            presenter.message,
            timeout=10_000,
            check_params_cb=lambda level, text: level is Level.WARNING and "Composite" in text,
        ) as shown:
            assert presenter.start("window:Video Call", PipelineConfig())
        text = shown.args[1]
        assert text == (
            "capturing window:Video Call at 30 fps (this X server has no Composite "
            "extension; capturing the screen under the window instead: whatever covers it "
            "is captured too, and the part off screen is cut)"
        )
        assert presenter.state in (State.STARTING, State.RUNNING)
    finally:
        assert presenter.shutdown()
        disp.close()
