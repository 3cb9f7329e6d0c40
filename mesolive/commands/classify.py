"""``mesolive classify PATH…``: a fake score per face-crop image."""

from __future__ import annotations

import argparse
import json
import sys

from mesolive.commands.common import open_classifier, report_error, score_files
from mesolive.imageio import expand_paths

THRESHOLD = 0.5


def run(args: argparse.Namespace) -> int:
    files, errors = expand_paths(args.paths)
    for e in errors:
        report_error(e)
    results = []
    if files:
        with open_classifier(args) as clf:
            results, bad = score_files(clf, files, args.batch, model_dir=args.model_dir)
        errors.extend(bad)
    if args.json:
        out = [
            {
                "path": str(r.path),
                "fake_score": round(r.fake_score, 6),
                "label": "fake" if r.fake_score > THRESHOLD else "real",
                "model": args.model,
            }
            for r in results
        ]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif results:
        width = max(len(str(r.path)) for r in results)
        print(f"{'file':<{width}}  fake_score  label")  # noqa: T201
        for r in results:
            label = "FAKE" if r.fake_score > THRESHOLD else "real"
            print(f"{r.path!s:<{width}}  {r.fake_score:10.4f}  {label}")  # noqa: T201
    return 2 if errors else 0
