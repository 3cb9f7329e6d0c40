"""``mesolive classify PATH…``: a fake score per face-crop image.

Rows are printed as each batch is scored, so a long run shows its results as
it goes and an interrupted one keeps what it printed; ``--json`` writes one
array whose items come the same way (closed even after Ctrl+C). A bad file
is one line on stderr and the rest still run; the exit status is 2 when any
file could not be scored, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from mesolive.commands.common import FileScore, open_classifier, report_error, stream_scores
from mesolive.errors import InputError
from mesolive.imageio import expand_paths
from mesolive.types import FAKE_THRESHOLD


class _Printer:
    """The table or the JSON array on ``out``, a batch at a time."""

    def __init__(self, out: TextIO, as_json: bool, model: str) -> None:
        self.out, self.as_json, self.model = out, as_json, model
        self.rows = 0

    def begin(self) -> None:
        self.out.write("[" if self.as_json else f"{'fake_score':>10}  label  file\n")

    def batch(self, scores: list[FileScore]) -> None:
        for r in scores:
            fake = r.fake_score > FAKE_THRESHOLD
            if self.as_json:
                item = {
                    "path": str(r.path),
                    "fake_score": round(r.fake_score, 6),
                    "label": "fake" if fake else "real",
                    "model": self.model,
                    **({} if r.face_found is None else {"face_found": r.face_found}),
                }
                self.out.write(("," if self.rows else "") + "\n  " + json.dumps(item))
            else:
                note = "  (no face found: read whole)" if r.face_found is False else ""
                label = "FAKE" if fake else "real"
                self.out.write(f"{r.fake_score:10.4f}  {label:<5}  {r.path}{note}\n")
            self.rows += 1
        self.out.flush()

    def end(self) -> None:
        if self.as_json:
            self.out.write("\n]\n" if self.rows else "]\n")
        self.out.flush()


def run(args: argparse.Namespace) -> int:
    files, errors = expand_paths(args.paths)
    for e in errors:
        report_error(e)
    if files:
        bad: list[InputError] = []
        with open_classifier(args) as clf:
            printer = _Printer(sys.stdout, args.json, args.model)
            printer.begin()
            try:
                for scores in stream_scores(
                    clf,
                    files,
                    args.batch,
                    bad,
                    detector=args.detector,
                    model_dir=args.model_dir,
                    threads=args.threads,
                ):
                    printer.batch(scores)
            finally:
                printer.end()
        errors.extend(bad)
    elif args.json:
        sys.stdout.write("[]\n")
    return 2 if errors else 0
