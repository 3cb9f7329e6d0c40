"""Reports never destroy what the user had, and never carry a password."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import stat
import threading
from pathlib import Path
from urllib.parse import unquote

import pytest

from mesolive.errors import InputError
from mesolive.outputs import AtomicFile, check_outputs, write_atomic
from mesolive.paths import replacing, write_bytes_atomic
from mesolive.redact import RedactingFormatter, redact
from tests.conftest import mesolive

FACE = Path("samples") / "faces" / "real" / "real00240.jpg"

#: Passwords that broke or could break redaction: ``@`` and ``:`` inside,
#: percent-encoded, non-ASCII, a slash, a lone percent sign.
PASSWORDS = ["S3cretPW", "p@ss", "a:b:c", "p%40ss9", "пароль7", "x/y/zz", "50%off", "tail@"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("rtsp://admin:p@ss@10.0.0.2/live", "rtsp://admin:***@10.0.0.2/live"),
        ("rtsp://u:a:b@h:554/x", "rtsp://u:***@h:554/x"),
        ("https://TOKEN@host/feed", "https://***@host/feed"),
        ("http://h/feed?user=me&token=abc&x=1", "http://h/feed?user=me&token=***&x=1"),
        ("rtsp://10.0.0.2/live", "rtsp://10.0.0.2/live"),
        ("a: rtsp://u:p@h/x, then rtsp://v:q@@g/y", "a: rtsp://u:***@h/x, then rtsp://v:***@g/y"),
        ("/home/me/clip@2x.mp4", "/home/me/clip@2x.mp4"),
        # a message's colon after a URI is the message's, the token's own colons are not
        ("http://h/x?token=abc: cannot open", "http://h/x?token=***: cannot open"),
        ("http://h/x?token=a:b:c&x=1", "http://h/x?token=***&x=1"),
    ],
)
def test_redact(text: str, want: str) -> None:
    assert redact(text) == want


def test_log_lines_are_redacted_with_their_tracebacks() -> None:
    fmt = RedactingFormatter("%(message)s")
    try:
        raise OSError("cannot open rtsp://admin:hunter2@cam/live")
    except OSError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "%s", ("rtsp://a:pw1@h",), None)
        record.exc_info = sys.exc_info()
    line = fmt.format(record)
    assert "hunter2" not in line and "pw1" not in line and "rtsp://admin:***@cam" in line


def test_no_password_in_any_output(tmp_path: Path) -> None:
    uris = [f"rtsp://admin:{pw}@127.0.0.1:9/live" for pw in PASSWORDS]
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    proc = mesolive("-v", "scan", *uris, "--json", str(js), "--csv", str(cs))
    assert proc.returncode == 2
    outputs = {
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "json": js.read_text(),
        "csv": cs.read_text(),
    }
    for name, text in outputs.items():
        for pw in PASSWORDS:
            assert pw not in text and unquote(pw) not in text, f"{pw!r} leaked into {name}"
        # nothing of a password is left between the user name and the host
        assert text.count("@127.0.0.1") == text.count("rtsp://admin:***@127.0.0.1"), name
        if name != "csv":  # the CSV has a row per face: none here
            assert text.count("@127.0.0.1") >= len(PASSWORDS), name
    inputs = [e["input"] for e in json.loads(js.read_text())["inputs"]]
    assert inputs == ["rtsp://admin:***@127.0.0.1:9/live"] * len(PASSWORDS)


def test_an_output_that_is_an_input_is_refused_before_anything_runs(
    shared: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "a.jpg"
    clip.write_bytes((shared / FACE).read_bytes())
    before = _digest(clip)
    proc = mesolive("scan", str(clip), "--csv", str(clip))
    assert proc.returncode == 2 and "--csv" in proc.stderr and "is an input" in proc.stderr
    # argparse gives --json the first name: an existing file the run did not write
    other = tmp_path / "b.jpg"
    other.write_bytes(clip.read_bytes())
    proc = mesolive("scan", "--json", str(clip), str(other))
    assert proc.returncode == 2 and "exists; pass --force" in proc.stderr
    proc = mesolive("scan", str(clip), "--json", str(clip), "--force")
    assert proc.returncode == 2 and "is an input" in proc.stderr  # --force never reaches inputs
    # a file: URI names the same file, and file:DIR the files in it
    for uri in (f"file:{clip}", clip.as_uri(), f"file:{tmp_path}"):
        proc = mesolive("scan", uri, "--json", str(clip), "--force")
        assert proc.returncode == 2 and "is an input" in proc.stderr, (uri, proc.stderr)
    assert _digest(clip) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.jpg"]


def test_a_failed_run_leaves_the_old_report_alone(shared: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.csv"
    old.write_text("input,frame\nprevious,1\n")
    proc = mesolive("scan", str(shared / FACE), "--csv", str(old))
    assert proc.returncode == 2 and "pass --force" in proc.stderr
    proc = mesolive("scan", str(shared / FACE), "--csv", str(old), "--force", "--models", "nope")
    assert proc.returncode == 2 and "nope" in proc.stderr
    assert old.read_text() == "input,frame\nprevious,1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["old.csv"]  # no temporary file left
    proc = mesolive(
        "scan", str(shared / FACE), "--csv", str(old), "--force", "--models", "meso4-df"
    )
    assert proc.returncode == 0, proc.stderr
    assert old.read_text().startswith("input,frame,pts,track_id")


def test_evaluate_plot_into_a_place_that_cannot_hold_it(shared: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    proc = mesolive(
        "evaluate", str(shared / "samples" / "faces"), "--plot", str(blocker / "roc.png")
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("is not a folder")
    assert blocker.read_text() == "a file, not a folder"
    # a format matplotlib cannot write: one line before any work, not an internal error after it
    proc = mesolive(
        "evaluate", str(shared / "samples" / "faces"), "--plot", str(tmp_path / "roc.txt")
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "cannot write a .txt plot" in proc.stderr and "converted" not in proc.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX pipes and devices")
def test_a_pipe_or_device_is_written_into_never_replaced(shared: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    proc = mesolive("scan", str(shared / FACE), "--json", str(fifo), "--models", "meso4-df")
    reader.join(60)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still the pipe, with no --force
    assert json.loads(got[0])["inputs"][0]["input"] == str(shared / FACE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.fifo"]  # no temporary file
    proc = mesolive("scan", str(shared / FACE), "--csv", os.devnull, "--force")
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(Path(os.devnull).stat().st_mode)  # --force never replaces a device
    if Path("/dev/full").exists():  # a device that cannot take it: one line
        proc = mesolive("scan", str(shared / FACE), "--json", "/dev/full")
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1].endswith("No space left on device)")
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        proc = mesolive("scan", str(shared / FACE), "--json", str(sock_path), "--force")
    assert proc.returncode == 2 and "not a regular file" in proc.stderr
    assert stat.S_ISSOCK(sock_path.lstat().st_mode)


def test_check_outputs_rules(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    check_outputs({"--json": a, "--csv": None}, [])
    with pytest.raises(InputError, match="the same file as --json"):
        check_outputs({"--json": a, "--csv": tmp_path / "." / "a.json"}, [])
    b.write_text("{}")
    with pytest.raises(InputError, match="exists"):
        check_outputs({"--json": b}, [])
    check_outputs({"--json": b}, [], force=True)
    (tmp_path / "dir").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        check_outputs({"--json": tmp_path / "dir"}, [], force=True)
    link = tmp_path / "link.mp4"
    link.symlink_to(b)
    with pytest.raises(InputError, match="is an input"):
        check_outputs({"--json": b}, [link], force=True)
    # a link whose target is gone is the user's too: it was replaced without --force
    dangling = tmp_path / "old.json"
    dangling.symlink_to(tmp_path / "gone.json")
    with pytest.raises(InputError, match="exists; pass --force"):
        check_outputs({"--json": dangling}, [])
    check_outputs({"--json": dangling}, [], force=True)


def test_an_output_that_names_no_file_is_one_line(shared: Path, tmp_path: Path) -> None:
    """--json '' was taken as not given (no report, exit 0); --json new/ wrote a file 'new'."""
    face = str(shared / "samples" / "faces" / "real" / "real00240.jpg")
    folder = f"{tmp_path / 'new'}/"
    for given, said in (("", "--json: an empty file name"), (folder, f"--json {folder}: names")):
        out = mesolive("scan", face, "--json", given)
        assert out.returncode == 2 and out.stdout == "", out.stdout
        assert out.stderr.startswith(f"mesolive: error: {said}") and out.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_commits_or_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "r.csv"
    target.write_text("old")
    with AtomicFile(target, "--csv") as out:
        out.file.write("half")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.csv"]
    with AtomicFile(target, "--csv") as out:
        out.file.write("new")
        out.commit()
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["r.csv"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize(("umask", "want"), [(0o022, 0o644), (0o077, 0o600)])
def test_a_report_or_cache_file_is_as_readable_as_any_file_its_user_writes(
    tmp_path: Path, umask: int, want: int
) -> None:
    """The user's umask decides, as for open(); a temporary file's private 0o600 did before."""
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "r.json", "--json", lambda f: f.write("{}"))
        write_bytes_atomic(tmp_path / "cache" / "c.npz", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == want
    assert stat.S_IMODE((tmp_path / "cache" / "c.npz").stat().st_mode) == want


def test_replacing_lets_two_writers_race_and_keeps_the_old_file_on_failure(
    tmp_path: Path,
) -> None:
    """Two processes writing one cache file (torchrun's ranks) must both succeed."""
    target = tmp_path / "sub" / "faces.npz"
    with replacing(target) as first, replacing(target) as second:
        assert first != second  # unique temporary names: no rename under the other writer
        first.write_bytes(b"one")
        second.write_bytes(b"two")
    assert target.read_bytes() == b"one"  # the outer block renamed last

    def interrupted() -> None:
        with replacing(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted()
    assert target.read_bytes() == b"one"
    assert sorted(p.name for p in target.parent.iterdir()) == ["faces.npz"]
