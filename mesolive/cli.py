"""The ``mesolive`` command line.

Only argparse and the names in :mod:`mesolive.backends` are imported at module
level, so that ``mesolive --help`` stays fast; each verb imports what it needs
when it runs.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import select
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from mesolive.backends import BACKENDS
from mesolive.backends.cpuinfo import PRECISIONS

log = logging.getLogger("mesolive")

MODEL_NAMES_HINT = (
    "the default (see 'mesolive models list'), meso4-df, meso4-f2f, mesoinception4-df, "
    "mesoinception4-f2f or a trained one"
)


def _non_negative(text: str) -> float:
    """An argparse type: a number, 0 or more (seconds, pixels)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0.0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text} is below 0")
    return value


def _share(text: str) -> float:
    """An argparse type: a number from 0 to 1 (argparse turns the error into one line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _threshold(text: str) -> float:
    """An argparse type: a fake-score threshold, above 0 and below 1 (0 or 1 decides nothing)."""
    value = _share(text)
    if value in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (both left out)")
    return value


def _model_dir(text: str) -> str:
    """An argparse type: a folder that exists (a typo would otherwise mean a download)."""
    if not Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return text


def _every(text: str) -> int | str:
    """An argparse type of the app: a whole number ≥ 1, or ``auto`` (as often as it keeps up)."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number or 'auto'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def _decay(text: str) -> float:
    """An argparse type: an averaging decay, 0 (off) or above 0 and below 1."""
    value = _share(text)
    if value == 1.0:
        raise argparse.ArgumentTypeError(
            "1 never moves the average; give a decay below 1 (e.g. 0.998), or 0 for off"
        )
    return value


def _kind_weight(text: str) -> tuple[str, int]:
    """An argparse type of ``train``: ``KIND=N``, N a whole number ≥ 1 (KIND may hold ``=``)."""
    kind, eq, n = text.rpartition("=")
    try:
        weight = int(n)
    except ValueError:
        weight = 0
    if not (eq and kind and weight >= 1):
        raise argparse.ArgumentTypeError(f"{text!r} is not KIND=N with N a whole number ≥ 1")
    return kind, weight


def _backend(text: str) -> str:
    """An argparse type: a back-end name, or ``triton://HOST:PORT`` (checked when it opens)."""
    if text in BACKENDS or text.startswith("triton://"):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a back end; choose one of {', '.join(BACKENDS)} or triton://HOST:PORT"
    )


def _name_list(text: str) -> list[str]:
    """An argparse type: comma-separated model names (``a,b``)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one model name")
    return names


def _common(p: argparse.ArgumentParser, *, top: bool = False) -> None:
    """Options every verb takes, also before the verb (``mesolive -q scan …``).

    A verb's copy has no defaults of its own (SUPPRESS), so it cannot reset a
    value given before the verb; the top-level parser supplies the defaults.
    """

    def d(value: object) -> object:
        return value if top else argparse.SUPPRESS

    p.add_argument(
        "--model-dir",
        metavar="DIR",
        type=_model_dir,
        default=d(None),
        help="folder holding the model files (offline use); also MESOLIVE_MODEL_DIR",
    )
    p.add_argument(
        "--backend",
        default=d("auto"),
        type=_backend,
        metavar="BACKEND",
        help="inference back end: auto (default: the fastest that works here), tensorrt, "
        "onnxruntime, onnxruntime-cpu, onnxruntime-cuda, openvino (the CPU through OpenVINO: "
        "fp32, or bf16 where it qualifies), or triton://HOST:PORT (a Triton Inference Server "
        "over gRPC)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=d(None),
        help="CPU threads for ONNX Runtime or OpenVINO (the detector's too); in train, also "
        "PyTorch's",
    )
    p.add_argument("-v", "--verbose", action="count", default=d(0), help="more log output")
    p.add_argument(
        "-q", "--quiet", action="store_true", default=d(False), help="warnings and errors only"
    )


class _Parser(argparse.ArgumentParser):
    """No abbreviated options (they collide across verbs); a usage error is one line."""

    verbs: tuple[str, ...] = ()  # the top parser's commands (build_parser)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


APP_DEST = "app_"
"""Prefix of the destinations of the app's own options (:func:`_settle_app_options`)."""


def _precision_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="precision on the CPU: int8 (ONNX Runtime, CPUs with VNNI/AMX; calibrated once "
        "on the face crops of MESOLIVE_CALIBRATION), bf16 (OpenVINO, CPUs with AMX/AVX-512 "
        "BF16; pip install 'mesolive[openvino]'), fp32, or auto (default): the fastest of "
        "int8 and bf16 that measured faster here and agreeing with fp32 on those crops, "
        "else fp32",
    )


def _min_face_span_option(add: Callable[..., Any]) -> None:
    add(
        "--min-face-span",
        type=_non_negative,
        default=None,
        metavar="PX",
        help="faces smaller than this (eye-to-eye or eyes-to-mouth, in frame pixels) are "
        "tracked but not judged, shown as 'too small'; 0 judges every face (default: 32)",
    )


DETECTOR_HELP = (
    "an SCRFD detector ONNX file to find faces with (default: the model folder's, else "
    "insightface's, downloaded on first use)"
)


def _detector_option(p: argparse.ArgumentParser) -> None:
    """``--detector`` for the verbs without the pipeline's options that find faces (crops
    a model re-cuts, training data, evaluate's videos): the one a missing detector's
    message names."""
    p.add_argument("--detector", metavar="PATH.onnx", help=DETECTOR_HELP)


def _pipeline_options(p: argparse.ArgumentParser, *, app: bool = False) -> None:
    """The pipeline's options: a verb's (``scan``), or with ``app`` the app's, before any verb."""
    prefix = APP_DEST if app else ""

    def option(flag: str, **kw: Any) -> None:
        name = flag.removeprefix("--").replace("-", "_")
        kw.setdefault("metavar", name.upper())  # not the app's APP_… destination
        p.add_argument(flag, dest=prefix + name, **kw)

    option(
        "--models",
        type=_name_list,
        action="extend",  # --models a,b or --models a --models b; never swallows inputs
        default=None,
        metavar="NAME,…",
        help="classifier models to run together, comma-separated or repeated (default: the "
        "default model, see 'mesolive models list')",
    )
    option("--detector", metavar="PATH.onnx", help=DETECTOR_HELP)
    option("--det-size", type=int, default=None, help="detector input side in pixels")
    # None = not given: the app's kept settings apply, else the pipeline's defaults
    if app:
        option(
            "--every",
            type=_every,
            default=None,
            metavar="N|auto",
            help="detect and classify every N-th frame, track in between; auto (default): N "
            "raised or lowered to keep up with the source, shown in the status bar",
        )
    else:
        option(
            "--every",
            type=int,
            default=None,
            metavar="N",
            help="detect and classify every N-th frame, track in between (default: 1)",
        )
    option(
        "--threshold",
        type=_threshold,
        default=None,
        help="fake-score threshold, above 0 and below 1 (default: 0.5)",
    )
    option(
        "--alert-seconds",
        type=_non_negative,
        default=None,
        metavar="S",
        help="alert when a face stays FAKE this long (default: 3)",
    )
    option(
        "--reid-seconds",
        type=_non_negative,
        default=None,
        metavar="S",
        help="a face that leaves and returns within S seconds keeps its ID, recognised by its "
        "look; 0: follow faces by position only (default: 10)",
    )
    _min_face_span_option(option)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mesolive",  # no abbreviations: the app's --models must not swallow --model
        description="Real-time deepfake detection with MesoNet. "
        "Without a command, opens the desktop app.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--source", dest=f"{APP_DEST}source", metavar="URI", help="start the app on this source"
    )
    _pipeline_options(parser, app=True)
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("classify", help="fake score of aligned face-crop images")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images or folders of images")
    p.add_argument("--model", default=None, help=MODEL_NAMES_HINT)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--batch", type=int, default=32, help="faces per inference call")
    _detector_option(p)
    _precision_option(p)
    _common(p)

    p = sub.add_parser(
        "evaluate", help="accuracy and ROC AUC on labelled face crops or whole videos"
    )
    p.add_argument(
        "folder",
        metavar="FOLDER",
        help="holds real/ and fake/ (crops and/or videos) or a labels.csv, or is a labels "
        "CSV itself; each video is scanned as `mesolive scan` does and judged by its verdict",
    )
    p.add_argument(
        "--labels",
        metavar="CSV",
        help="labels CSV (file or path, label, optional kind) whose rows name files in FOLDER; "
        "default FOLDER/labels.csv",
    )
    p.add_argument("--model", default=None, help=MODEL_NAMES_HINT)
    p.add_argument("--json", action="store_true", help="print JSON instead of a report")
    p.add_argument("--plot", metavar="FILE.png", help="write ROC curve and score histograms")
    p.add_argument("--force", action="store_true", help="replace an existing --plot file")
    p.add_argument("--batch", type=int, default=32, help="faces per inference call (crops)")
    p.add_argument(
        "--every",
        type=int,
        default=3,
        metavar="N",
        help="videos: detect and classify every N-th frame, track in between (default: 3)",
    )
    _min_face_span_option(p.add_argument)
    _detector_option(p)
    _precision_option(p)
    _common(p)

    p = sub.add_parser("models", help="list, fetch or convert models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    q = msub.add_parser("list", help="the registered models and whether they are cached")
    q.add_argument("--json", action="store_true")
    _common(q)
    q = msub.add_parser("fetch", help="download models into the per-user cache")
    q.add_argument("names", nargs="*", default=["all"], metavar="NAME", help="model names or all")
    _common(q)
    q = msub.add_parser("convert", help="convert Keras .h5 weights to ONNX")
    q.add_argument("names", nargs="*", default=["all"], metavar="NAME|FILE.h5")
    q.add_argument(
        "--arch",
        choices=["meso4", "mesoinception4"],
        help="expected architecture (with all: only the models of it)",
    )
    q.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    q.add_argument("-o", "--output", metavar="PATH", help="output file (one model) or folder")
    q.add_argument("--force", action="store_true", help="replace existing output files")
    _common(q)

    p = sub.add_parser(
        "scan",
        help="detect, track and score faces in videos, streams, images",
        epilog="exit status: 0 every face real, uncertain or no face; 1 a face is fake; "
        "2 an input or option failed (the others still ran); 130 interrupted",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="file, folder, or source URI")
    _pipeline_options(p)
    p.add_argument(
        "--json",
        metavar="FILE",
        help="write every track's timeline and verdict (-: to stdout, the report to stderr)",
    )
    p.add_argument(
        "--csv",
        metavar="FILE",
        help="write one row per face per analysed frame (-: to stdout, the report to stderr)",
    )
    p.add_argument(
        "--realtime", action="store_true", help="play files at their frame rate (drop frames)"
    )
    p.add_argument("--max-frames", type=int, default=None, help="stop each input after N frames")
    p.add_argument("--force", action="store_true", help="replace existing --json/--csv files")
    _precision_option(p)
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="scan each input as a task on a Ray cluster: auto (the running one), "
        "local[:N] (start one here with N CPUs), or ray://HOST:PORT (a remote one); "
        "needs pip install 'mesolive[cluster]'",
    )
    _common(p)

    p = sub.add_parser("build-engine", help="compile TensorRT engines (NVIDIA GPUs)")
    p.add_argument("--model", default=None, help=f"{MODEL_NAMES_HINT}, or all")
    p.add_argument(
        "--precision",
        choices=["fp16", "fp32", "int8"],
        default=None,
        help="default: fp16 where the GPU computes it fast, else fp32",
    )
    p.add_argument("--max-batch", type=int, default=64, help="largest batch of the profile")
    p.add_argument("--opt-batch", type=int, default=8, help="batch TensorRT tunes for")
    p.add_argument("--workspace", type=int, default=1024, metavar="MB", help="builder workspace")
    p.add_argument("--calibration", metavar="FOLDER", help="face crops for INT8 calibration")
    p.add_argument("--engine-dir", metavar="DIR", help="where engines go (MESOLIVE_ENGINE_DIR)")
    p.add_argument("--force", action="store_true", help="rebuild even if a matching one exists")
    p.add_argument(
        "--verify",
        action="store_true",
        help="only verify existing engines against ONNX Runtime (one that fails is moved to "
        "<engine>.failed, which is never loaded)",
    )
    _detector_option(p)
    _common(p)

    p = sub.add_parser("export", help="write models for other servers")
    esub = p.add_subparsers(dest="export_command", metavar="FORMAT", required=True)
    q = esub.add_parser("triton", help="a model repository for NVIDIA Triton Inference Server")
    q.add_argument("dir", metavar="DIR", help="the repository folder (made if missing)")
    q.add_argument(
        "--models",
        type=_name_list,
        action="extend",  # --models a,b or --models a --models b
        default=None,
        metavar="NAME,…",
        help="models to export, comma-separated or repeated (default: every shipped model)",
    )
    q.add_argument(
        "--max-batch", type=int, default=64, help="Triton's max_batch_size (default: 64)"
    )
    q.add_argument(
        "--tensorrt",
        choices=["fp16", "fp32"],
        default=None,
        help="have Triton run the models through TensorRT at this precision (default: off)",
    )
    q.add_argument("--force", action="store_true", help="replace existing model folders")
    _common(q)

    p = sub.add_parser("doctor", help="what this machine offers: GPU, CUDA, TensorRT, engines")
    p.add_argument("--engine-dir", metavar="DIR", help="where engines live")
    p.add_argument("--json", action="store_true")
    _common(p)

    p = sub.add_parser("train", help="train or fine-tune MesoNet on labelled faces or videos")
    p.add_argument("data", nargs="+", metavar="DATA", help="folders of crops, CSVs or videos")
    p.add_argument("--arch", choices=["meso4", "mesoinception4"], default="meso4")
    p.add_argument("--init", default="scratch", help="a model name to fine-tune, or scratch")
    p.add_argument("--name", required=True, help="name of the new model")
    p.add_argument("--epochs", type=int, default=30, help="epochs at most (default: 30)")
    p.add_argument("--batch", type=int, default=75)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="threads that make the next batches (pseudo-fakes, augmentation) while one "
        "trains (default: 1 on the CPU; with --device cuda the cores less one, at most 6); "
        "the batches are the same for any N",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--loss",
        choices=["bce", "mse"],
        default="bce",
        help="cross-entropy (default, measured better) or the paper's squared error",
    )
    p.add_argument("--lr", type=float, default=1e-3, help="initial Adam learning rate")
    p.add_argument(
        "--lr-step",
        type=int,
        default=1000,
        help="iterations between divisions of the learning rate by 10 (the paper: 1000)",
    )
    p.add_argument("--val-split", type=float, default=0.1, help="share of videos held out")
    p.add_argument("--patience", type=int, default=5, help="epochs without a better val AUC")
    p.add_argument(
        "--val-sizes",
        type=int,
        nargs="+",
        default=[],
        metavar="PX",
        help="also validate on the held-out faces as if cut from this many frame pixels "
        "(e.g. 128 96); the best epoch is the one whose per-source AUC over all sizes "
        "together is highest, so one threshold serves near and far faces",
    )
    p.add_argument(
        "--unseen-kind",
        action="append",
        default=[],
        metavar="KIND",
        help="never train on this kind of face (a labels CSV's kind column, e.g. a "
        "forgery method), nor on the rest of its groups; validate on it as something "
        "new, and count it in the best-epoch choice (repeatable)",
    )
    p.add_argument(
        "--kind-weight",
        action="append",
        default=[],
        type=_kind_weight,
        metavar="KIND=N",
        help="draw each training face of this kind (a labels CSV's kind column) N times "
        "an epoch, before --balance evens the classes: more of what you most need to "
        "catch (repeatable)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="do not start an epoch that would end after this many minutes",
    )
    p.add_argument(
        "--amp",
        choices=["auto", "bf16", "off"],
        default="auto",
        help="bfloat16 autocast on CPUs with native bf16 (auto)",
    )
    p.add_argument(
        "--augment",
        choices=["full", "light", "wide", "call", "sizes", "flip"],
        default="light",
        help="augmentation preset (light: the paper's families, mild; call: light plus "
        "a call's and an upload's damage, scaling, blur, noise, exposure; sizes: call "
        "with most faces rescaled, as far faces are cut from few pixels)",
    )
    even = p.add_mutually_exclusive_group()
    even.add_argument(
        "--balance",
        action="store_true",
        help="each epoch, draw the smaller class again until both classes are as large",
    )
    even.add_argument(
        "--balance-sources",
        action="store_true",
        help="as --balance, but within each DATA set (one that holds one class is left as "
        "it is; each pseudo-fake is made from a real face of its own data set): a data set "
        "whose classes are uneven would give the network a prior it can read from its look",
    )
    even.add_argument(
        "--balance-pairs",
        action="store_true",
        help="as --balance-sources, but first within each group that holds both classes (a "
        "labels CSV's pair, a DFDC original with its fakes), then within each DATA set among "
        "its other faces: a swap drawn more often than its original teaches the network "
        "that their shared look is fake",
    )
    p.add_argument(
        "--crop-scale",
        type=float,
        default=1.0,
        metavar="S",
        help="side of the face crop against the authors' square (1.0: theirs; 0.77: "
        "without their 1.3 margin); the model's preprocessing contract records it",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=0.2,
        help="dropout before the dense layers (the authors used 0.5; 0.2 measured better)",
    )
    p.add_argument(
        "--anchor",
        type=float,
        default=0.0,
        help="L2-SP strength pulling weights towards --init (keeps what they knew)",
    )
    p.add_argument(
        "--self-blend",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="share of fake slots filled by real faces blended into themselves "
        "(pseudo-fakes with generic swap traces; 0 = the data's fakes only)",
    )
    p.add_argument(
        "--blend-style",
        choices=["ellipse", "inswap"],
        default="ellipse",
        help="how --self-blend pastes the face: 'ellipse' over the inner face, or 'inswap' "
        "as a live face-swapper pastes its 128-px aligned square (roop and its kin)",
    )
    p.add_argument(
        "--ema",
        type=_decay,
        default=0.0,
        metavar="DECAY",
        help="keep an exponential moving average of the weights (decay per iteration, "
        "e.g. 0.998, below 1) and validate and register the average; 0 = off",
    )
    p.add_argument(
        "--keep-init",
        action="store_true",
        help="register the union of the trained network and --init: a face is as fake as "
        "the more suspicious of the two finds it, so what --init caught stays caught",
    )
    _detector_option(p)
    _common(p)
    parser.verbs = tuple(sub.choices)
    return parser


def _bare_source(parser: _Parser, argv: list[str]) -> list[str]:
    """``mesolive clip.mp4``: a first word that is no command but an existing file
    or a source URI (``webcam:0``, ``rtsp://…``), is the app's ``--source``.

    A word that looks like a path (a ``/`` or a ``.``: no command has one) but names no
    file is one line saying so; anything else stays as typed, so a mistyped command is
    still argparse's one line.
    """
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--" or word in parser.verbs:
            return argv
        if word.startswith("-"):
            action = parser._option_string_actions.get(word)  # argparse: option -> action
            i += 2 if action is not None and action.nargs != 0 else 1
            continue
        given = any(w == "--source" or w.startswith("--source=") for w in argv[:i])
        if not given and (":" in word or Path(word).is_file()):
            return [*argv[:i], "--source", word, *argv[i + 1 :]]
        if "/" in word or os.sep in word or "." in word:  # no command has these: a path
            why = (
                "a folder: the app opens one file or source (mesolive scan takes folders)"
                if Path(word).is_dir()
                else "no such file (and not a command)"
            )
            parser.exit(2, f"mesolive: error: {word}: {why}\n")
        return argv
    return argv


def _dispatch(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    import importlib

    if args.command is None:
        return importlib.import_module("mesolive.gui.app").run
    module = "mesolive.commands." + args.command.replace("-", "_")
    return importlib.import_module(module).run


def _settle_app_options(args: argparse.Namespace) -> str | None:
    """Give the app its options under their own names; the message for one given before a verb.

    The app's options (``--source``, ``--models``, ``--every``…) parse into
    ``app_*`` destinations, so that ``mesolive --models X scan …`` cannot be
    silently overwritten by ``scan``'s own ``--models`` default: it is refused.
    """
    given = {k: v for k, v in vars(args).items() if k.startswith(APP_DEST)}
    for key in given:
        delattr(args, key)
    if args.command is None:
        for key, value in given.items():
            setattr(args, key.removeprefix(APP_DEST), value)
        return None
    early = [k.removeprefix(APP_DEST) for k, v in given.items() if v is not None]
    if not early:
        return None
    flag = "--" + early[0].replace("_", "-")
    return (
        f"{flag} before the command is an option of the app; give the command's own "
        f"options after it (mesolive {args.command} --help)"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, the app's options under their own names; a usage error exits 2."""
    parser = build_parser()
    args = parser.parse_args(_bare_source(parser, list(sys.argv[1:] if argv is None else argv)))
    misplaced = _settle_app_options(args)
    if misplaced is not None:
        parser.exit(2, f"mesolive: error: {misplaced}\n")
    return args


def _tolerant_streams() -> None:
    """A name or message the terminal's encoding cannot show is escaped, not a crash.

    An ASCII locale (``PYTHONIOENCODING=ascii``, ``LANG=C`` on old systems)
    cannot encode "vidéo.mp4"; Python's strict default made that an internal
    error after the work was done.
    """
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}
"""Write errors of the machine, not of mesolive: one line, not an internal error."""


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_streams()
    args = parse_args(argv)
    if args.command in (None, "scan"):  # the app and live scans run for hours
        from mesolive.heap import cap_arenas

        cap_arenas()  # before any other thread allocates
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for records
    if args.version:
        from mesolive import __version__

        print(__version__)  # noqa: T201
        return 0
    from mesolive import signals
    from mesolive.errors import MesoliveError
    from mesolive.log import setup_logging
    from mesolive.redact import redact

    setup_logging(-1 if getattr(args, "quiet", False) else getattr(args, "verbose", 0))
    try:
        from mesolive.env import check_settings, check_threads
        from mesolive.imageio import max_pixels

        max_pixels()  # a bad MESOLIVE_MAX_PIXELS is one line now, not one per image
        check_threads(args.threads)  # every verb takes it (build-engine passed 0 on)
        if args.command != "doctor":  # which tells what is wrong with them
            check_settings()
        if getattr(args, "model", "") is None:  # the verbs that score with one model
            from mesolive.models.registry import default_model

            args.model = default_model()
        if args.command is not None:  # the app quits on its own signals
            signals.stop_like_ctrl_c()
        status = _dispatch(args)(args)
        return signals.exit_status() if status == 130 else status  # 143: SIGTERM
    except MesoliveError as e:
        print(f"mesolive: error: {redact(str(e))}", file=sys.stderr)  # noqa: T201
        return e.exit_code
    except KeyboardInterrupt:
        print("mesolive: interrupted", file=sys.stderr)  # noqa: T201
        return signals.exit_status()
    except BrokenPipeError as e:
        if not _stdout_gone():
            return _internal_error(e, args)
        return 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader left
    except OSError as e:
        if e.errno not in _FULL:
            return _internal_error(e, args)
        where = f" {e.filename}" if e.filename else ""  # none: standard output
        print(f"mesolive: error: cannot write{where} ({e.strerror})", file=sys.stderr)  # noqa: T201
        _stdout_to_null()  # the flush at exit would fail the same way
        return 2
    except Exception as e:  # noqa: BLE001 - a bug: one line, logged there with its traceback
        if signals.by_interrupt(e):  # Ctrl+C as a compiled module loaded (an ImportError)
            print("mesolive: interrupted", file=sys.stderr)  # noqa: T201
            return signals.exit_status()
        return _internal_error(e, args)


def _stdout_gone() -> bool:
    """Whoever read stdout has gone (``mesolive scan … | head -1``); stdout then points
    at the null device, so that nothing more is said, at exit neither.

    A pipe whose reader closed polls as an error (POSIX); where poll is missing,
    a broken pipe that reaches here is taken to be stdout's.
    """
    fd = sys.stdout.fileno()
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if not any(ev & select.POLLERR for _, ev in poller.poll(0)):
            return False
    _stdout_to_null()
    return True


def _stdout_to_null() -> None:
    """Point stdout at the null device: nothing more is written there, at exit neither."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _internal_error(e: BaseException, args: argparse.Namespace) -> int:
    """A bug, not the user's doing: one line, the traceback with -v."""
    from mesolive.errors import describe
    from mesolive.redact import redact

    log.debug("internal error", exc_info=e)
    hint = "" if getattr(args, "verbose", 0) else "; run again with -v for the traceback"
    print(  # noqa: T201
        f"mesolive: internal error: {redact(describe(e))}{hint}; please report it",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
