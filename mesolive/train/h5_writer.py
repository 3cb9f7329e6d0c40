"""Write MesoNet weights as a Keras-2 weights-only ``.h5`` (the authors' format).

Layers are named with creation indices from 1 (``conv2d_1`` …), so
:func:`mesolive.models.keras_h5.load_keras_weights` maps them back exactly and
every tool that takes the official files takes a trained one too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mesolive.models.keras_h5 import MesoWeights
from mesolive.paths import replacing


def write_keras_h5(weights: MesoWeights, path: str | os.PathLike[str]) -> Path:
    """Write ``weights`` to ``path`` atomically (temp file + rename)."""
    import h5py

    path = Path(path)
    layers: list[tuple[str, dict[str, np.ndarray]]] = []
    for i, c in enumerate(weights.convs, 1):
        layers.append((f"conv2d_{i}", {"kernel:0": c.kernel, "bias:0": c.bias}))
    for i, b in enumerate(weights.bns, 1):
        layers.append(
            (
                f"batch_normalization_{i}",
                {
                    "gamma:0": b.gamma,
                    "beta:0": b.beta,
                    "moving_mean:0": b.mean,
                    "moving_variance:0": b.var,
                },
            )
        )
    for i, d in enumerate(weights.dense, 1):
        layers.append((f"dense_{i}", {"kernel:0": d.kernel, "bias:0": d.bias}))
    with replacing(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.5"
        f.attrs["mesolive_arch"] = weights.arch.name.encode()
        f.attrs["layer_names"] = np.array([n.encode() for n, _ in layers])
        for name, arrays in layers:
            g = f.create_group(name)
            names = [f"{name}/{k}".encode() for k in arrays]
            g.attrs["weight_names"] = np.array(names)
            sub = g.create_group(name)
            for k, v in arrays.items():
                sub.create_dataset(k, data=np.asarray(v, dtype=np.float32))
    return path
