"""MesoInception-4's weights as the C kernel reads them (``resources/native/inception.c``).

The kernel computes the network's first :data:`NATIVE_STAGES` stages (the two
inception blocks with their BatchNorm and max-pool) from the uint8 BGR crops
of :meth:`mesolive.classify.preprocess.Preprocess.pixels`; ONNX Runtime runs
the rest (:func:`mesolive.models.onnx_graph.build_tail_onnx`). As in the ONNX
graphs, the contract's colour order and value range are folded into the
weights that read the pixels: here the first block's 1×1 convolutions, where
the range's low end goes into the bias (a 1×1 convolution has no padding to
keep at zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mesolive.classify.preprocess import Preprocess
from mesolive.models.arch import BN_EPSILON, Inception
from mesolive.models.keras_h5 import MesoWeights

NATIVE_STAGES = 2
"""Stages the kernel computes: MesoInception-4's two inception blocks."""

WIDTHS = (1, 2, 4)
"""Widths of a 3×3 branch the kernel has code for."""


@dataclass(frozen=True)
class NativeStages:
    """The kernel's parameters for the first :data:`NATIVE_STAGES` stages of one network.

    ``widths``: per stage the four branch widths (a, b, c, d), int32 (2, 4);
    ``params``: per stage one contiguous float32 vector in the kernel's order
    (``inception.c``'s header); ``out_shape``: (channels, side, side) of what
    the last of them outputs, which the ONNX tail reads.
    """

    widths: np.ndarray
    params: tuple[np.ndarray, ...]
    out_shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        if self.widths.shape != (NATIVE_STAGES, 4) or self.widths.dtype != np.int32:
            raise ValueError(f"widths must be int32 ({NATIVE_STAGES}, 4)")
        if len(self.params) != NATIVE_STAGES or any(
            p.dtype != np.float32 or p.ndim != 1 or not p.flags.c_contiguous for p in self.params
        ):
            raise ValueError(f"params must be {NATIVE_STAGES} contiguous float32 vectors")


def why_not_native(weights: MesoWeights) -> str:
    """Why the kernel cannot compute this network's first stages (``""``: it can)."""
    stages = weights.arch.stages[:NATIVE_STAGES]
    if not all(isinstance(s.body, Inception) and s.pool == 2 for s in stages):
        return f"{weights.arch.name} does not start with {NATIVE_STAGES} inception blocks"
    if any(w not in WIDTHS for s in stages for w in (s.body.b, s.body.c, s.body.d)):
        return "its inception branches are wider than the kernel's (1, 2 or 4 filters)"
    return ""


def native_stages(weights: MesoWeights, contract: Preprocess) -> NativeStages:
    """Pack ``weights``' first stages for the kernel, reading pixels as ``contract`` maps them.

    Raises
    ------
    ValueError
        The network is not one the kernel computes (:func:`why_not_native`).
    """
    why = why_not_native(weights)
    if why:
        raise ValueError(why)
    channels, gain, low = contract.pixel_map()
    convs = iter(weights.convs)
    widths, params = [], []
    cin = 3
    for i in range(NATIVE_STAGES):
        body, bn = weights.arch.stages[i].body, weights.bns[i]
        assert isinstance(body, Inception)  # why_not_native
        a1, b1, b3, c1, c3, d1, d3 = (next(convs) for _ in range(7))
        ones, threes = [], []
        for conv in (a1, b1, c1, d1):
            w = conv.kernel[0, 0].T.astype(np.float64)  # HWIO 1×1 -> (out, in)
            bias = conv.bias.astype(np.float64)
            if i == 0:  # network channel c = low + gain × pixel channel channels[c]
                bias = bias + low * w.sum(axis=1)
                folded = np.empty_like(w)
                folded[:, list(channels)] = w * gain
                w = folded
            ones.append(np.concatenate([w.ravel(), bias]))
        for conv in (b3, c3, d3):
            threes.append(np.concatenate([conv.kernel.transpose(3, 2, 0, 1).ravel(), conv.bias]))
        scale = bn.gamma.astype(np.float64) / np.sqrt(bn.var.astype(np.float64) + BN_EPSILON)
        shift = bn.beta - bn.mean * scale
        params.append(np.concatenate([*ones, *threes, scale, shift]).astype(np.float32))
        widths.append((body.a, body.b, body.c, body.d))
        cin = body.out_channels
    side = weights.arch.side(NATIVE_STAGES)
    return NativeStages(np.array(widths, np.int32), tuple(params), (cin, side, side))
