"""The ``mesolive`` command line.

Only argparse is imported at module level so that ``mesolive --help`` stays
fast; each verb imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

log = logging.getLogger("mesolive")

MODEL_NAMES_HINT = "meso4-df, meso4-f2f, mesoinception4-df, mesoinception4-f2f or a trained one"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model-dir",
        metavar="DIR",
        help="folder holding the model files (offline use); also MESOLIVE_MODEL_DIR",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "tensorrt", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda"],
        help="inference back end (default: auto, the fastest that works here)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for ONNX Runtime")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mesolive",
        description="Real-time deepfake detection with MesoNet. "
        "Without a command, opens the desktop app.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("classify", help="fake score of aligned face-crop images")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images or folders of images")
    p.add_argument("--model", default="meso4-df", help=MODEL_NAMES_HINT)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--batch", type=int, default=32, help="faces per inference call")
    _common(p)

    p = sub.add_parser("evaluate", help="accuracy and ROC AUC on a labelled folder of crops")
    p.add_argument("folder", metavar="FOLDER", help="holds real/ and fake/, or a labels CSV")
    p.add_argument(
        "--labels", metavar="CSV", help="labels CSV (file,label); default FOLDER/labels.csv"
    )
    p.add_argument("--model", default="meso4-df", help=MODEL_NAMES_HINT)
    p.add_argument("--json", action="store_true", help="print JSON instead of a report")
    p.add_argument("--plot", metavar="FILE.png", help="write ROC curve and score histograms")
    p.add_argument("--batch", type=int, default=32, help="faces per inference call")
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
    q.add_argument("--arch", choices=["meso4", "mesoinception4"], help="expected architecture")
    q.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    q.add_argument("-o", "--output", metavar="PATH", help="output file (one model) or folder")
    _common(q)
    return parser


def _dispatch(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    if args.command == "classify":
        from mesolive.commands.classify import run
    elif args.command == "evaluate":
        from mesolive.commands.evaluate import run
    elif args.command == "models":
        from mesolive.commands.models import run
    else:
        raise AssertionError(args.command)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from mesolive import __version__

        print(__version__)  # noqa: T201
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    from mesolive.errors import MesoliveError
    from mesolive.log import setup_logging

    setup_logging(-1 if getattr(args, "quiet", False) else getattr(args, "verbose", 0))
    try:
        return _dispatch(args)(args)
    except MesoliveError as e:
        print(f"mesolive: error: {e}", file=sys.stderr)  # noqa: T201
        return e.exit_code
    except KeyboardInterrupt:
        print("mesolive: interrupted", file=sys.stderr)  # noqa: T201
        return 130


if __name__ == "__main__":
    sys.exit(main())
