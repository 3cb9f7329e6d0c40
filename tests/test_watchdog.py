"""StepWatchdog: a step that does not return is reported once, and its return too."""

from __future__ import annotations

import re
import threading
import time

import pytest

from mesolive.pipeline.watchdog import StepWatchdog


def test_a_stuck_step_is_reported_then_its_return() -> None:
    stalls: list[str] = []
    resumes: list[str] = []
    stalled = threading.Event()

    def on_stall(message: str) -> None:
        stalls.append(message)
        stalled.set()

    with StepWatchdog("inference", 0.2, on_stall=on_stall, on_resume=resumes.append) as watchdog:
        with watchdog.step("frame 1"):
            pass  # quick: nothing to say
        with watchdog.step("frame 2"):
            # a step blocked in a driver; here it waits for the watchdog's word
            assert stalled.wait(20), "the stall was never reported"
            time.sleep(0.3)  # still stuck after the report: reported once only
        with watchdog.step("frame 3"):
            pass
    assert watchdog.stalls == 1
    assert len(stalls) == 1 and re.fullmatch(
        r"inference: frame 2 has not returned for \d+\.\d s", stalls[0]
    )
    assert len(resumes) == 1 and re.fullmatch(
        r"inference: frame 2 returned after \d+\.\d s", resumes[0]
    )
    assert float(resumes[0].split()[-2]) >= 0.2


def test_a_failing_callback_does_not_stop_the_watchdog() -> None:
    def explode(message: str) -> None:
        raise RuntimeError("callback bug")

    with StepWatchdog("inference", 0.1, on_stall=explode) as watchdog:
        for i in range(2):
            with watchdog.step(f"frame {i}"):
                deadline = time.monotonic() + 20
                while watchdog.stalls <= i:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
    assert watchdog.stalls == 2


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        StepWatchdog("inference", 0)
