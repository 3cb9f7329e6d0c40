"""Keras ``.h5`` weights → ONNX file (h5py and onnx only)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from mesolive.classify.preprocess import AUTHORS, Preprocess
from mesolive.errors import ModelError
from mesolive.models.keras_h5 import load_keras_weights
from mesolive.models.lanes_graph import build_lanes_onnx, lanes_apply
from mesolive.models.onnx_graph import Precision, build_onnx
from mesolive.paths import cannot_write, write_bytes_atomic

log = logging.getLogger(__name__)


def convert_to_onnx(
    weights: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    arch: str | Sequence[str] | None = None,
    precision: Precision | str = "fp32",
    contract: Preprocess = AUTHORS,
    lanes: bool = False,
) -> Path:
    """Convert a weights-only Keras file to ONNX, writing ``out`` atomically.

    ``arch`` (``meso4`` / ``mesoinception4``) makes weights of the other
    architecture an error instead of a silent surprise. Several files (and as
    many ``arch``) give their union's graph (:func:`build_onnx`). The graph
    reads uint8 BGR crops and applies ``contract``'s colour order and range.
    ``lanes``: OpenVINO's float32 layout of Meso-4 networks (:mod:`mesolive.models.lanes_graph`).

    Raises
    ------
    ModelError
        ``lanes`` for networks that are not all Meso-4, or ``out`` cannot be written.
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    files = [weights] if isinstance(weights, (str, os.PathLike)) else list(weights)
    archs = [arch] * len(files) if arch is None or isinstance(arch, str) else list(arch)
    nets = [load_keras_weights(f, expect=a) for f, a in zip(files, archs, strict=True)]
    if lanes:
        if precision != "fp32" or not lanes_apply(nets):
            raise ModelError("lanes are a float32 layout of Meso-4 networks")
        model = build_lanes_onnx(nets, contract)
    else:
        model = build_onnx(nets, precision, contract)  # type: ignore[arg-type]
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out, model.SerializeToString())
    except OSError as e:
        raise ModelError(cannot_write(out, e)) from e
    log.info(
        "converted %s -> %s (%s, %s%s)",
        ", ".join(map(str, files)),
        out,
        "+".join(n.arch.name for n in nets),
        precision,
        " in lanes" if lanes else "",
    )
    return out
