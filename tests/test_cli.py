"""The command line, run as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from .conftest import MODELS, mesolive

SAMPLES_EXPECTED = {"df00204": "fake", "df01254": "fake", "real00240": "real", "real00772": "real"}


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, mesolive.cli as c; c.build_parser().format_help();"
        "print(sorted(m for m in ('numpy','onnxruntime','cv2','h5py','onnx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "classify" in mesolive("--help", check=True).stdout


@pytest.mark.parametrize("model", ["meso4-df", "mesoinception4-df"])
def test_classify_sample_faces(shared: Path, model: str) -> None:
    out = mesolive(
        "classify", str(shared / "samples" / "faces"), "--model", model, "--json", check=True
    )
    rows = json.loads(out.stdout)
    assert {Path(r["path"]).stem: r["label"] for r in rows} == SAMPLES_EXPECTED
    assert all(0.0 <= r["fake_score"] <= 1.0 for r in rows)


def test_classify_table(shared: Path) -> None:
    out = mesolive(
        "classify", str(shared / "samples" / "faces" / "real" / "real00240.jpg"), check=True
    )
    assert "real00240.jpg" in out.stdout and "real" in out.stdout


def test_classify_says_where_it_found_no_face(shared: Path) -> None:
    """A photo of dogs once came out as a plain "real" (its score is of no face at all)."""
    files = (str(shared / "facebox" / "dogs.jpg"), str(shared / "samples" / "faces" / "real"))
    rows = json.loads(mesolive("classify", *files, "--json", check=True).stdout)
    assert [r["face_found"] for r in rows] == [False, True, True]  # the default re-cuts crops
    table = mesolive("classify", *files, check=True).stdout.splitlines()
    assert table[1].endswith("dogs.jpg  (no face found: read whole)")
    assert not table[2].endswith(")")
    authors = json.loads(mesolive("classify", *files, "--json", "--model", "meso4-df").stdout)
    assert all("face_found" not in r for r in authors)  # it reads every crop whole anyway


@pytest.mark.parametrize("name", ["MESOLIVE_ENGINE_DIR", "MESOLIVE_CACHE_DIR"])
def test_a_folder_setting_that_names_a_file_is_one_line(
    shared: Path, tmp_path: Path, name: str
) -> None:
    """MESOLIVE_ENGINE_DIR=/etc/passwd was taken without a word."""
    notes = tmp_path / "notes.txt"
    notes.write_text("a file")
    out = mesolive("classify", str(shared / "samples" / "faces"), env={name: str(notes)})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"mesolive: error: {name}={notes}: not a folder\n"
    assert notes.read_text() == "a file"


@pytest.mark.parametrize(
    ("verb", "option"),
    [
        ("classify", ("--batch", "0")),
        ("classify", ("--threads", "-2")),
        ("evaluate", ("--batch", "-1")),
        ("evaluate", ("--every", "0")),  # a folder of crops only: it was taken
    ],
)
def test_a_bad_count_is_one_line_before_any_output(
    shared: Path, verb: str, option: tuple[str, str]
) -> None:
    """Checked before the model loads: no table header, no runtime's own wording."""
    out = mesolive(verb, str(shared / "samples" / "faces"), *option)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"mesolive: error: {' '.join(option)}: expected a whole number ≥ 1\n"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (("classify", "--threads", "100000"), "--threads 100000: at most "),  # it hung
        (("scan", "--threads", "100000"), "--threads 100000: at most "),
        (("build-engine", "--threads", "0"), "--threads 0: expected a whole number ≥ 1"),
        (("scan", "--threshold", "1"), "--threshold: 1 is not between 0 and 1 (both left out)"),
        (("scan", "--threshold", "0"), "--threshold: 0 is not between 0 and 1 (both left out)"),
        (("doctor", "--model-dir", "/nonexistent"), "--model-dir: /nonexistent: no such folder"),
        (("scan", "--model-dir", "/nonexistent"), "--model-dir: /nonexistent: no such folder"),
    ],
)
def test_an_option_out_of_range_is_one_line(shared: Path, argv: tuple[str, ...], said: str) -> None:
    """Not a hang, a download of what the folder lacked, or a threshold that decides nothing."""
    verb, *option = argv
    inputs = [] if verb in ("doctor", "build-engine") else [str(shared / "samples" / "faces")]
    out = mesolive(verb, *inputs, *option)
    assert out.returncode == 2 and out.stdout == "" and out.stderr.count("\n") == 1
    assert said in out.stderr, out.stderr


def test_bad_inputs_are_one_line_each_and_the_rest_still_runs(shared: Path, tmp_path: Path) -> None:
    good = shared / "samples" / "faces" / "fake" / "df00204.jpg"
    (tmp_path / "notes.jpg").write_text("this is text, not a JPEG")
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:3000])
    Image.new("RGB", (10, 12)).save(tmp_path / "tiny.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = mesolive(
        "classify",
        str(good),
        str(tmp_path / "notes.jpg"),
        str(tmp_path / "cut.jpg"),
        str(tmp_path / "tiny.png"),
        str(empty),
        str(tmp_path / "nope.jpg"),
        "--json",
    )
    assert out.returncode == 2
    errors = out.stderr.strip().splitlines()
    assert any("notes.jpg: not an image" in e for e in errors)
    assert any("cut.jpg" in e and "truncated" in e for e in errors)
    assert any("tiny.png" in e and "smaller than 16" in e for e in errors)
    assert any("empty: folder holds no images" in e for e in errors)
    assert any("nope.jpg: no such file" in e for e in errors)
    rows = json.loads(out.stdout)
    assert [Path(r["path"]).name for r in rows] == ["df00204.jpg"]
    assert rows[0]["label"] == "fake"


def test_an_app_option_before_a_verb_is_refused_not_ignored(shared: Path) -> None:
    """``mesolive --models X scan …`` once scanned with the default model, saying nothing."""
    face = str(shared / "samples" / "faces" / "real")
    for argv in (
        ["--models", "meso4-f2f", "scan", face],
        ["--every", "5", "scan", face],
        ["--threshold", "0.1", "classify", face],
        ["--source", "test:", "evaluate", face],
    ):
        out = mesolive(*argv)
        assert out.returncode == 2 and out.stdout == "", argv
        line = out.stderr.strip()
        assert "\n" not in line and f"{argv[0]} before the command is an option of the app" in line
    # the options every verb shares may come before it
    out = mesolive("-q", "--backend", "onnxruntime", "scan", face, "--models", "meso4-f2f")
    assert out.returncode == 0 and "2 inputs: 2 real" in out.stdout, out.stderr


def test_a_bare_file_or_source_uri_is_the_apps_source(shared: Path, tmp_path: Path) -> None:
    """``mesolive clip.mp4`` was "invalid choice: 'clip.mp4'"; a mistyped command still is."""
    from mesolive.cli import parse_args

    clip = str(shared / "videos" / "real" / "hamilton_clip.mp4")
    for argv, source in (
        ([clip], clip),
        (["--every", "3", "camera:0"], "camera:0"),  # --every's value is not the source
        (
            ["-v", "--models", "meso4-df", "rtsp://127.0.0.1:8554/call"],
            "rtsp://127.0.0.1:8554/call",
        ),
    ):
        args = parse_args(argv)
        assert args.command is None and args.source == source, argv
    assert parse_args(["scan", clip]).command == "scan"
    out = mesolive("scna", clip)
    assert out.returncode == 2 and "invalid choice: 'scna'" in out.stderr
    for word in (str(tmp_path / "missing.mp4"), "scna.mp4"):
        out = mesolive(word)
        assert out.returncode == 2, word
        assert out.stderr == f"mesolive: error: {word}: no such file (and not a command)\n"
    out = mesolive(str(tmp_path))
    assert out.returncode == 2 and out.stderr.startswith(f"mesolive: error: {tmp_path}: a folder")


@pytest.mark.parametrize(
    ("argv", "head"),
    [
        (("classify", str(Path("faces") / "dfdc")), "fake_score"),
        (("scan", str(Path("videos") / "real" / "hamilton_clip.mp4"), "--csv", "-"), "input,"),
    ],
)
def test_a_reader_that_leaves_early_ends_the_run_quietly(
    shared: Path, argv: tuple[str, ...], head: str
) -> None:
    """``mesolive classify DIR | head -1`` was an "internal error", exit 2; ``scan --csv -``
    blamed the input ("cannot read (Broken pipe)")."""
    verb, where, *rest = argv
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesolive", "-q", verb, str(shared / where), *rest],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().startswith(head)
    proc.stdout.close()  # as head does after its line
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 141, err  # 128 + SIGPIPE, as a shell reports such a tool
    assert "error" not in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_or_an_ascii_terminal_is_not_an_internal_error(
    shared: Path, tmp_path: Path
) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "mesolive", "scan", str(shared / "samples" / "faces")],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=240,
        )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "mesolive: error: cannot write (No space left on device)"
    photo = tmp_path / "vidéo ü.jpg"
    photo.write_bytes((shared / "samples" / "faces" / "real" / "real00240.jpg").read_bytes())
    out = mesolive("scan", str(photo), env={"PYTHONIOENCODING": "ascii"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{tmp_path}/vid\\xe9o \\xfc.jpg: ")  # escaped, not a crash


def test_a_usage_error_is_one_line() -> None:
    assert "APP_" not in mesolive("--help").stdout  # the app's options keep their own names
    for argv in (["scan", "x", "--every", "abc"], ["--every", "abc"], ["models", "bogus"]):
        out = mesolive(*argv)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "error: argument" in out.stderr and "--help)" in out.stderr


def test_unknown_model(shared: Path) -> None:
    out = mesolive("classify", str(shared / "samples" / "faces"), "--model", "meso9")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown model 'meso9'" in out.stderr


def test_convert_wrong_architecture(shared: Path, tmp_path: Path) -> None:
    out = mesolive(
        "models",
        "convert",
        str(shared / "models" / "MesoInception_F2F.h5"),
        "--arch",
        "meso4",
        "-o",
        str(tmp_path / "m.onnx"),
    )
    assert out.returncode == 2 and "wrong architecture" in out.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_models_list_and_convert(tmp_path: Path) -> None:
    out = mesolive("models", "list", check=True)
    for name in ("meso4-df", "meso4-f2f", "mesoinception4-df", "mesoinception4-f2f"):
        assert name in out.stdout
    out = mesolive("models", "convert", "meso4-f2f", "-o", str(tmp_path), check=True)
    assert len(list(tmp_path.glob("meso4-f2f.*.onnx"))) == 1
    # nothing of the user's is replaced without --force, and a file is no folder
    mine = tmp_path / "mine.onnx"
    mine.write_text("the user's own graph")
    notes = tmp_path / "notes.txt"
    notes.write_text("notes")
    for dest in (tmp_path, mine, notes):
        out = mesolive("models", "convert", "meso4-f2f", "-o", str(dest))
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "pass --force" in out.stderr or "is not a folder" in out.stderr
    assert mine.read_text() == "the user's own graph" and notes.read_text() == "notes"
    mesolive("models", "convert", "meso4-f2f", "-o", str(mine), "--force", check=True)
    assert mine.stat().st_size > 100_000


def test_fetch_goes_on_past_a_model_that_fails(shared: Path, tmp_path: Path) -> None:
    """It stopped at the first bad file: the models after it were never fetched."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "Meso4_DF.h5").write_bytes((shared / "models" / "Meso4_DF.h5").read_bytes()[:1000])
    (folder / "Meso4_F2F.h5").write_bytes((shared / "models" / "Meso4_F2F.h5").read_bytes())
    env = {"MESOLIVE_CACHE_DIR": str(tmp_path / "cache"), "MESOLIVE_OFFLINE": "1"}
    out = mesolive("models", "fetch", "meso4-df", "meso4-f2f", "--model-dir", str(folder), env=env)
    assert out.returncode == 2
    assert out.stdout == f"meso4-f2f: {folder / 'Meso4_F2F.h5'}\n"
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"mesolive: error: {folder / 'Meso4_DF.h5'}: checksum mismatch")


def test_models_fetch_and_convert_go_on_past_an_unknown_name(tmp_path: Path) -> None:
    """An unknown name (a typo) stopped the whole command: the good names after it were
    never fetched or converted, against "the others are still fetched"."""
    out = mesolive("models", "fetch", "meso4-dff", "meso4-f2f")
    assert out.returncode == 2 and out.stdout.startswith("meso4-f2f: "), out.stdout
    (line,) = out.stderr.splitlines()
    assert line.startswith("mesolive: error: unknown model 'meso4-dff'")
    out = mesolive("models", "convert", "meso4-dff", "meso4-f2f", "-o", str(tmp_path))
    assert out.returncode == 2 and out.stdout.startswith("meso4-f2f: "), out.stdout
    assert "unknown model 'meso4-dff'" in out.stderr
    assert len(list(tmp_path.glob("meso4-f2f.*.onnx"))) == 1
    # a model of another architecture is one line too, and the next is still converted
    out = mesolive(
        "models", "convert", "mesoinception4-f2f", "meso4-f2f", "--arch", "meso4",
        "-o", str(tmp_path / "again"),
    )  # fmt: skip
    assert out.returncode == 2 and out.stdout.startswith("meso4-f2f: "), out.stdout
    assert "mesoinception4-f2f is a mesoinception4 model, not meso4" in out.stderr
    # with all (no names), --arch picks: every model of another architecture was an error
    out = mesolive("models", "convert", "--arch", "mesoinception4", "-o", str(tmp_path / "inc"))
    assert out.returncode == 0 and "error" not in out.stderr, out.stderr
    converted = [line.split(":")[0] for line in out.stdout.splitlines()]
    assert converted and all(name.startswith("mesoinception4-") for name in converted)


def test_verbs_that_find_faces_in_crops_take_the_detector_their_error_names(
    shared: Path, tmp_path: Path
) -> None:
    """Offline with no detector, classify and evaluate said "pass --detector PATH.onnx",
    an option neither took."""
    env = {"MESOLIVE_MODEL_DIR": "", "MESOLIVE_CACHE_DIR": str(tmp_path), "MESOLIVE_OFFLINE": "1"}
    faces = str(shared / "samples" / "faces")
    for verb in ("classify", "evaluate"):
        out = mesolive(verb, faces, env=env)
        assert out.returncode == 2 and "pass --detector PATH.onnx" in out.stderr, out.stderr
        out = mesolive(
            verb, faces, "--json", "--detector", str(MODELS / "scrfd_500m_bnkps_dynamic.onnx"),
            env=env,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["auc"] == 1.0


def test_evaluate_dfdc_reproduces_the_authors_numbers(shared: Path, tmp_path: Path) -> None:
    """shared/README's table for the authors' Keras Meso4_DF on these 600 crops."""
    plot = tmp_path / "roc.png"
    out = mesolive(
        "evaluate", str(shared / "faces" / "dfdc"), "--model", "meso4-df", "--json",
        "--plot", str(plot), check=True,
    )  # fmt: skip
    rep = json.loads(out.stdout)
    assert rep["n"] == 600
    assert rep["accuracy"] == pytest.approx(0.537, abs=0.002)
    assert rep["real_accuracy"] == pytest.approx(0.950, abs=0.002)
    assert rep["fake_accuracy"] == pytest.approx(0.123, abs=0.002)
    assert rep["auc"] == pytest.approx(0.595, abs=0.002)
    with Image.open(plot) as im:
        assert im.size[0] > 500


@pytest.mark.parametrize("model", ["meso4-df", "mesoinception4-df"])
def test_evaluate_samples(shared: Path, model: str) -> None:
    out = mesolive("evaluate", str(shared / "samples" / "faces"), "--model", model, check=True)
    assert "accuracy        1.000" in out.stdout


def test_evaluate_plot_dash_is_refused_not_a_file_named_dash(shared: Path, tmp_path: Path) -> None:
    """``-`` is standard output to scan's --json and --csv; ``--plot -`` wrote a PNG into a
    file named ``-`` in the current folder and reported 'plot -'."""
    argv = [sys.executable, "-m", "mesolive", "evaluate", str(shared / "samples" / "faces")]
    out = subprocess.run(
        [*argv, "--plot", "-"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (
        "mesolive: error: --plot -: a plot goes to a file, not standard output; give FILE.png\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_evaluate_video_level_from_file_names(shared: Path, tmp_path: Path) -> None:
    src = shared / "samples" / "faces"
    for label, files in (("real", ["real00240", "real00772"]), ("fake", ["df00204", "df01254"])):
        (tmp_path / label).mkdir()
        for i, f in enumerate(files):
            (tmp_path / label / f"{label}vid_{i:03d}.jpg").write_bytes(
                (src / label / f"{f}.jpg").read_bytes()
            )
    args = ("evaluate", str(tmp_path), "--model", "meso4-df", "--json")
    rep = json.loads(mesolive(*args, check=True).stdout)
    assert rep["n_videos"] == 2 and rep["video_accuracy"] == 1.0


def test_evaluate_needs_labels(tmp_path: Path) -> None:
    out = mesolive("evaluate", str(tmp_path))
    assert out.returncode == 2 and "real/ and fake/" in out.stderr
    out = mesolive("evaluate", str(tmp_path / "nowhere"))
    assert out.returncode == 2 and out.stderr.endswith("nowhere: no such file or folder\n")


def test_evaluate_folder_with_labels_elsewhere(shared: Path, tmp_path: Path) -> None:
    """``evaluate FOLDER --labels CSV``: the rows name files in FOLDER, wherever the CSV is."""
    labels = tmp_path / "mine.csv"
    labels.write_text("file,label\nreal/real00240.jpg,real\nfake/df00204.jpg,fake\n")
    out = mesolive(
        "evaluate", str(shared / "samples" / "faces"), "--labels", str(labels),
        "--model", "meso4-df", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] == 2
