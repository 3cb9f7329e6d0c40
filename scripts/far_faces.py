"""Judge labelled whole videos as if filmed from farther: every frame shrunk before detection.

    MESOLIVE_MODEL_DIR=../shared/models python scripts/far_faces.py held.csv \\
        --models meso4-live --scales 1 0.5 0.33 [--json FILE]

Each video (a folder with ``real/`` and ``fake/`` or a labels CSV, as
``mesolive evaluate`` takes) runs through the app's pipeline (SCRFD, the
model's crop, the classifier, tracks and the paper's verdict per track) once
per scale, its frames shrunk by that factor with area averaging first, as a
camera farther away records the face on fewer pixels. Per video and scale it
prints the verdict (``evaluate``'s: fake if any face is), the video score and
the median side in frame pixels of the crops the faces were cut from; per
scale, reals kept and fakes caught. ``--every`` and ``--max-frames`` bound
the work (default: every 3rd frame of the first 150).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import cv2

    from mesolive.align.crop import crop_transform
    from mesolive.commands.evaluate import video_score
    from mesolive.commands.scan import InputReport
    from mesolive.datasets import collect
    from mesolive.imageio import VIDEO_EXTS
    from mesolive.models.registry import default_model, get_spec
    from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig
    from mesolive.types import Frame

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", help="folders with real/ and fake/, or labels CSVs")
    ap.add_argument("--models", nargs="+", default=[default_model()])
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 0.33])
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--max-frames", type=int, default=150)
    ap.add_argument(
        "--min-face-span",
        type=float,
        default=None,
        metavar="PX",
        help="judge faces of this span and up (default: the pipeline's; 0: every face, "
        "as the measurement in docs/training.md did)",
    )
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    span = {} if args.min_face_span is None else {"min_face_span": args.min_face_span}

    videos = [it for it in collect(args.data) if it.path.suffix.lower() in VIDEO_EXTS]
    scale = get_spec(args.models[0]).preprocess.scale
    pipe = FramePipeline(PipelineConfig(models=tuple(args.models), every=args.every, **span))
    out: dict[str, dict[str, object]] = {}
    right = {f: [0, 0, 0, 0] for f in args.scales}  # reals kept, reals, fakes caught, fakes
    try:
        for it in videos:
            label = "fake" if it.label else "real"
            row = {}
            for f in args.scales:
                pipe.reset()
                cap = cv2.VideoCapture(str(it.path))
                sides: list[float] = []
                for i in range(args.max_frames):
                    ok, image = cap.read()
                    if not ok:
                        break
                    if f != 1.0:
                        image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                    result = pipe.process(Frame(index=i, image=image, t_capture=0.0, pts=i / 30))
                    sides += [
                        crop_transform(face.kps, scale=scale)[1]
                        for face in result.faces
                        if face.fake_score is not None
                    ]
                cap.release()
                report = InputReport(str(it.path), tracks=pipe.summaries())
                row[str(f)] = {
                    "verdict": report.verdict,
                    "score": video_score(report.tracks),
                    "crop_side_px": float(np.median(sides)) if sides else None,
                }
                k = 2 if it.label else 0
                right[f][k] += report.verdict == label
                right[f][k + 1] += 1
            out[str(it.path)] = {"label": label, "scales": row}
            cells = "  ".join(
                f"x{f}: {v['verdict']:<9} {v['score'] or 0:.3f} ({v['crop_side_px'] or 0:.0f} px)"
                for f, v in row.items()
            )
            print(f"{label:<4} {it.path.name[:36]:<36} {cells}", flush=True)
    finally:
        pipe.close()
    for f, (rk, nr, fc, nf) in right.items():
        print(f"x{f}: reals kept {rk}/{nr}, fakes caught {fc}/{nf}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
