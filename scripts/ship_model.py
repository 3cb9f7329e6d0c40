"""Ship a model that ``mesolive train`` registered as the package's default.

    python scripts/ship_model.py live-a --as meso4-live --reason "…"

Copies the trained weights and their model card from the user cache into
``resources/weights/`` (they travel inside the wheel), and writes the model's
manifest entry in ``resources/models.json`` (sha256, the preprocessing
contract from its card, ``builtin``) and makes it the default. A model that
has not finished validation has no card, so it cannot be shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LICENCE = (
    "Weights for research use only: trained on DFDC (research terms), Celeb-DF v2, "
    "FaceForensics++ and DeeperForensics frames (research only), photos under mixed licences "
    "(several state none), with faces found by insightface's SCRFD (non-commercial research "
    "only). mesolive's code is Apache-2.0; a commercial product must train its own model."
)


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from mesolive.errors import ModelError
    from mesolive.models import registry
    from mesolive.models.download import sha256_file
    from mesolive.train.validation import best_epoch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trained", help="the name the model was registered under by mesolive train")
    p.add_argument("--as", dest="name", required=True, help="the shipped model's name")
    p.add_argument("--reason", required=True, help="why it is chosen (models list says it)")
    p.add_argument(
        "--union",
        nargs="+",
        default=[],
        metavar="NAME",
        help="shipped models whose networks join this one's (a union, models/registry.py)",
    )
    p.add_argument(
        "--validation",
        metavar="FILE.json:KEY",
        help="the union's numbers on the held-aside groups (scripts/compare_on_split.py)",
    )
    p.add_argument("--no-default", action="store_true", help="ship it, keep the default")
    p.add_argument("--description", required=True, help="one line for models list --json")
    args = p.parse_args()

    try:  # the name becomes file names under resources/
        registry.check_model_name(args.name, "--as")
        for member in args.union:
            registry.check_model_name(member, "--union")
        spec = registry.get_spec(args.trained)
    except ModelError as e:
        sys.exit(f"ship_model: error: {e}")
    # registries written before cards were named keep them as <name>.card.json
    card_file = registry.card_path(replace(spec, card=spec.card or f"{spec.name}.card.json"))
    if not spec.user or not card_file.is_file():
        sys.exit(f"{args.trained}: not a trained model with a model card")
    card = json.loads(card_file.read_text())
    if best_epoch(card["history"]) == 0:
        sys.exit(f"{args.trained}: no epoch beat its starting weights; nothing trained to ship")
    weights = registry.weights_path(spec)
    out = ROOT / "resources" / "weights"
    out.mkdir(exist_ok=True)
    shutil.copyfile(weights, out / f"{args.name}.h5")
    # where the data lay, relative to the checkout (../shared/…), not this machine's paths
    card["data"]["sources"] = [
        os.path.relpath(src, ROOT) if os.path.isabs(src) else src for src in card["data"]["sources"]
    ]
    card = {
        **card,
        "name": args.name,
        "trained_as": args.trained,
        "file": f"{args.name}.h5",
        "licence": LICENCE,
        "default_reason": args.reason,
        "union": args.union,
    }
    if args.validation:
        file, key = args.validation.rsplit(":", 1)
        card["union_validation"] = json.loads(Path(file).read_text())[key]
    (out / f"{args.name}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    manifest_path = ROOT / "resources" / "models.json"
    manifest = json.loads(manifest_path.read_text())
    entry = {
        "name": args.name,
        "arch": spec.arch,
        "forgery": "mixed",
        "file": f"{args.name}.h5",
        "sha256": sha256_file(out / f"{args.name}.h5"),
        "license": "weights: research use only (trained on research-only data, see the card)",
        "description": args.description,
        "preprocess": card["preprocess"],
        "builtin": True,
        "card": f"{args.name}.card.json",
        "default_reason": args.reason,
        **({"union": args.union} if args.union else {}),
    }
    manifest["models"] = [m for m in manifest["models"] if m["name"] != args.name] + [entry]
    if not args.no_default:
        manifest["default"] = args.name
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    role = "the default" if not args.no_default else "not the default"
    print(f"shipped {args.trained} as {args.name} ({entry['sha256'][:12]}…), {role}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
