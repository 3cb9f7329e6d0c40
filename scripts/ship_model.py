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
import shutil
import sys
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
    from mesolive.models import registry
    from mesolive.models.download import sha256_file

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trained", help="the name the model was registered under by mesolive train")
    p.add_argument("--as", dest="name", required=True, help="the shipped model's name")
    p.add_argument("--reason", required=True, help="why it is the default (models list says it)")
    args = p.parse_args()

    spec = registry.get_spec(args.trained)
    card_file = registry.card_path(spec)
    if not spec.user or not spec.card or not card_file.is_file():
        sys.exit(f"{args.trained}: not a trained model with a model card")
    card = json.loads(card_file.read_text())
    weights = registry.weights_path(spec)
    out = ROOT / "resources" / "weights"
    out.mkdir(exist_ok=True)
    shutil.copyfile(weights, out / f"{args.name}.h5")
    card = {
        **card,
        "name": args.name,
        "trained_as": args.trained,
        "file": f"{args.name}.h5",
        "licence": LICENCE,
        "default_reason": args.reason,
    }
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
        "description": "Meso-4 trained by mesolive on today's forgeries, faces cut as live",
        "preprocess": card["preprocess"],
        "builtin": True,
        "card": f"{args.name}.card.json",
        "default_reason": args.reason,
    }
    manifest["models"] = [m for m in manifest["models"] if m["name"] != args.name] + [entry]
    manifest["default"] = args.name
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"shipped {args.trained} as {args.name} ({entry['sha256'][:12]}…), the default")
    return 0


if __name__ == "__main__":
    sys.exit(main())
