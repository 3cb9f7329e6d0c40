"""How far each CPU precision moves a model's decisions: flips and ROC AUC against float32.

    MESOLIVE_MODEL_DIR=../shared/models MESOLIVE_CALIBRATION=../shared/train/dfdc \\
        python scripts/precision_agreement.py ../shared/faces/dfdc \\
        --models meso4-live meso4-df --precisions int8 bf16

The labelled crops (a folder with ``real/`` and ``fake/`` or a labels CSV, as
``mesolive evaluate`` takes) are read through each model's preprocessing
contract and scored by ONNX Runtime's float32 graph and by each precision
(``int8``: ONNX Runtime's INT8 graph, calibrated on ``MESOLIVE_CALIBRATION``;
``bf16``: OpenVINO). Per model and precision it prints the decisions (fake/real
at 0.5) that differ from float32, the largest logit difference, and both ROC
AUCs. A precision this machine cannot run is reported and skipped.

``--record`` writes the bfloat16 result into each model's card
(``bf16_agreement``, keyed by the float32 graph's file name): where no
``MESOLIVE_CALIBRATION`` is set, ``--precision auto`` then takes the card's
word for the decisions and measures only the speed on the user's machine
(:func:`mesolive.models.cpu_precision.bf16_verdict`). A model without a card
(the authors') is left as it is.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mesolive.models.registry import ModelSpec

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from mesolive.backends.openvino import OpenVinoRunner
    from mesolive.backends.select import open_runner
    from mesolive.backends.verify import logits
    from mesolive.classify.crops import CropReader
    from mesolive.datasets import collect
    from mesolive.errors import MesoliveError
    from mesolive.metrics import roc_auc
    from mesolive.models.registry import default_model, get_spec, openvino_graph

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("crops", nargs="+", help="labelled face crops")
    ap.add_argument("--models", nargs="+", default=None, help="default: the default model")
    ap.add_argument("--precisions", nargs="+", default=["int8", "bf16"])
    ap.add_argument("--record", action="store_true", help="write bf16's result into model cards")
    args = ap.parse_args()

    items = collect(args.crops)
    labels = np.array([item.label for item in items])
    print(f"{len(items)} crops ({int(labels.sum())} labelled fake)")
    for model in args.models or [default_model()]:
        spec = get_spec(model)
        with CropReader(spec.preprocess) as reader:
            x = spec.preprocess.pixels([reader.read(item.path) for item in items])
        with open_runner(model, backend="onnxruntime-cpu", precision="fp32") as runner:
            ref = logits(runner, x, 64)
        for precision in args.precisions:
            try:
                runner = (
                    OpenVinoRunner(openvino_graph(spec, progress=False), precision="bf16")
                    if precision == "bf16"  # judged here: no verdict needed to open it
                    else open_runner(model, backend="auto", precision=precision, progress=False)
                )
            except MesoliveError as e:
                print(f"{model} {precision}: not run ({e})")
                continue
            with runner:
                got = logits(runner, x, 64)
            flipped = int(np.sum((got > 0) != (ref > 0)))
            if args.record and precision == "bf16":
                on = ", ".join(os.path.relpath(c, ROOT) for c in args.crops)
                record(spec, flipped, len(x), on)
            print(
                f"{model} {precision} ({runner.name}): {flipped}/{len(x)} decisions flip "
                f"({flipped / len(x):.1%}), max |logit difference| "
                f"{np.abs(got - ref).max():.3g}, ROC AUC {roc_auc(labels, -ref):.4f} -> "
                f"{roc_auc(labels, -got):.4f}"
            )
    return 0


def record(spec: ModelSpec, flipped: int, crops: int, on: str) -> None:
    """Write bfloat16's agreement into ``spec``'s model card (where it has one)."""
    import json

    from mesolive.backends.openvino import openvino_version
    from mesolive.models import registry
    from mesolive.models.cpu_precision import AGREEMENT_KEY

    if not spec.card:
        print(f"{spec.name}: no model card; bf16 agreement not recorded")
        return
    path = registry.card_path(spec)
    card = json.loads(path.read_text(encoding="utf-8"))
    graph = registry.openvino_graph(spec, progress=False)
    card[AGREEMENT_KEY] = {
        "crops": crops,
        "flipped": flipped,
        "on": on,
        "graph": graph.name,
        "openvino": openvino_version(),
    }
    path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{spec.name}: bf16 agreement recorded in {path}")


if __name__ == "__main__":
    sys.exit(main())
