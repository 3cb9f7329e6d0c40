"""``mesolive`` on a machine without a display: one line, exit code 2, no Qt loaded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from mesolive.gui.app import display_problem, unreachable_wayland


@pytest.mark.parametrize(
    ("env", "platform", "problem"),
    [
        ({}, "linux", True),
        ({"DISPLAY": ":0"}, "linux", False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({}, "win32", False),
        ({}, "darwin", False),
    ],
)
def test_display_problem(env, platform, problem):
    assert (display_problem(env, platform) is not None) is problem


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux display rules")
@pytest.mark.parametrize(
    ("display", "says"),
    [(None, "no display"), (":4711", "cannot connect to the X display :4711 (DISPLAY)")],
    ids=["unset", "unreachable"],
)
def test_no_display_gives_one_line_and_exit_code_2(display: str | None, says: str) -> None:
    """An unset DISPLAY, or one no X server answers (a stale SSH session's), where Qt
    itself would abort with a misleading hint about libxcb-cursor0."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    if display is not None:
        env["DISPLAY"] = display
    code = (
        "import sys\n"
        "from mesolive.cli import main\n"
        "rc = main([])\n"
        "assert 'PySide6' not in sys.modules, 'Qt was imported before the display check'\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"mesolive: error: {says}")
    assert "mesolive scan" in lines[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux display rules")
def test_a_dead_wayland_display_is_one_line_or_falls_back_to_x(tmp_path) -> None:
    """Qt aborted (exit 134) with eight lines ending in "Reinstalling the application may fix
    this problem" when WAYLAND_DISPLAY named no compositor."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    env |= {"WAYLAND_DISPLAY": "wayland-9", "XDG_RUNTIME_DIR": str(tmp_path)}
    assert unreachable_wayland(env) == "cannot connect to the Wayland display wayland-9 " + (
        "(WAYLAND_DISPLAY)"
    )
    with socket.socket(socket.AF_UNIX) as live:  # a compositor's socket: nothing to say
        live.bind(str(tmp_path / "wayland-9"))
        assert unreachable_wayland(env) is None
    assert unreachable_wayland({**env, "QT_QPA_PLATFORM": "xcb"}) is None  # not Wayland's
    proc = subprocess.run(
        [sys.executable, "-m", "mesolive", "--source", "test:"],
        env={**env, "XDG_RUNTIME_DIR": str(tmp_path / "none")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(
        "mesolive: error: cannot connect to the Wayland display wayland-9 (WAYLAND_DISPLAY)"
    )
    assert proc.stderr.count("\n") == 1 and "mesolive scan" in proc.stderr
    # with an X display as well, the app opens its window there instead (here: none answers)
    proc = subprocess.run(
        [sys.executable, "-m", "mesolive", "--source", "test:"],
        env={**env, "XDG_RUNTIME_DIR": str(tmp_path / "none"), "DISPLAY": ":4711"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "using the X display :4711 instead" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(
        "mesolive: error: cannot connect to the X display :4711 (DISPLAY)"
    )


def test_an_unknown_model_for_the_app_is_one_line_and_kept_nowhere(tmp_path) -> None:
    """A typo in ``--models`` was kept among the app's settings and failed every later start."""
    settings = tmp_path / "mesolive.ini"
    env = {**os.environ, "MESOLIVE_GUI_SETTINGS": str(settings), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-m", "mesolive", "--models", "meso4-df,nosuch", "--source", "test:"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("mesolive: error: --models: unknown model 'nosuch'")
    assert proc.stderr.count("\n") == 1 and not settings.exists()
