"""Meso-4 graphs laid out for OpenVINO on AMX: several networks or faces side by side.

:func:`mesolive.models.onnx_graph.build_onnx` lays its graph out for ONNX
Runtime. OpenVINO's CPU plugin runs bfloat16 convolutions on AMX tiles 16
output channels wide, and Meso-4's first two stages have 8 filters: half of
every tile computed nothing. The graph here computes the same function with
*lanes*: each lane is one network reading one face, and the lanes' channels
sit side by side in one tensor, so each convolution has 16 filters or more:

* a union of two Meso-4 (the default model) runs as one network: the first
  convolution holds both networks' kernels (16 filters reading the same image);
* one Meso-4 reads two faces at once: the batch is regrouped into rows of
  :data:`LANE_WIDTH` faces (``(N, S, S, 3)`` → ``(N/2, 6, S, S)``), so ``N``
  must be even (:class:`~mesolive.backends.openvino.OpenVinoRunner` pads an
  odd batch with one face and drops its result).

Later convolutions whose lanes read fewer than 16 channels each hold the
lanes' kernels on a block diagonal (the zeros cost arithmetic that AMX does
anyway); wider ones are grouped. The layers keep the authors' order
(convolution, ReLU, BatchNorm, max-pool), which OpenVINO fuses into one
convolution, and the dense layers are block-diagonal too. Outputs are those of
``build_onnx``: ``logit`` (N, 1), the smallest of the networks' logits, and
``p_real``.

Measured on 2 AMX cores, batch 8, bfloat16 (OpenVINO 2026.4, docs/cpu.md):
faces/s ×1.5 for one Meso-4 and ×1.7 for the union against ``build_onnx``'s
graph; ONNX Runtime runs this graph 0.8× as fast as its own, so it keeps that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from mesolive.classify.preprocess import Preprocess
from mesolive.errors import ModelError
from mesolive.models.arch import BN_EPSILON, LEAKY_ALPHA, Conv
from mesolive.models.keras_h5 import MesoWeights
from mesolive.models.onnx_graph import (
    INPUT_NAME,
    IR_VERSION,
    LOGIT_NAME,
    OPSET,
    PIXELS_SHAPE,
    PROB_NAME,
    _Builder,
)

LANE_WIDTH = 2
"""Lanes per graph: 2 × 8 filters fill a 16-wide AMX tile (4 lanes measured slower)."""
FACES_KEY = "mesolive.faces_per_row"
"""Graph metadata: how many faces one row of the graph reads (its batch is a multiple)."""
BLOCK_BELOW = 16
"""A later stage whose lanes read fewer channels than this is block-diagonal, else grouped."""


def lanes_apply(nets: Sequence[MesoWeights]) -> bool:
    """Whether ``nets`` can run as lanes: Meso-4 networks of one architecture."""
    return bool(nets) and all(
        n.arch == nets[0].arch and all(isinstance(s.body, Conv) for s in n.arch.stages)
        for n in nets
    )


def faces_per_row(model: onnx.ModelProto) -> int:
    """How many faces one row of ``model`` reads (1 for graphs without lanes).

    Raises
    ------
    ModelError
        The graph's :data:`FACES_KEY` is not a positive whole number.
    """
    value = next((p.value for p in model.metadata_props if p.key == FACES_KEY), "1")
    if not value.isdigit() or int(value) < 1:
        raise ModelError(f"graph metadata {FACES_KEY}={value!r}: expected a positive whole number")
    return int(value)


def build_lanes_onnx(nets: Sequence[MesoWeights], contract: Preprocess) -> onnx.ModelProto:
    """The graph of ``nets`` (their union where several) in lanes, reading uint8 BGR crops.

    Raises
    ------
    ValueError
        ``nets`` are not Meso-4 networks of one architecture (:func:`lanes_apply`).
    """
    if not lanes_apply(nets):
        raise ValueError("lanes are built for Meso-4 networks of one architecture")
    g = len(nets)
    rows = max(1, LANE_WIDTH // g)
    lanes = rows * g  # lane l = network l % g on face l // g of the row
    b = _Builder(np.float32, contract, faces_per_row=rows)
    x = b.image()
    for i, stage in enumerate(nets[0].arch.stages):
        kernels = [n.convs[i].kernel.transpose(3, 2, 0, 1).astype(np.float64) for n in nets]
        filters, cin, k, _ = kernels[0].shape
        groups = 1
        if i == 0:  # lane l reads the 3 channels of its face
            kernels = [b.fold(w) for w in kernels]
            weights = np.zeros((lanes * filters, 3 * rows, k, k))
            for lane in range(lanes):
                face = 3 * (lane // g)
                weights[lane * filters : (lane + 1) * filters, face : face + 3] = kernels[lane % g]
        elif cin < BLOCK_BELOW:
            weights = np.zeros((lanes * filters, lanes * cin, k, k))
            for lane in range(lanes):
                out, into = lane * filters, lane * cin
                weights[out : out + filters, into : into + cin] = kernels[lane % g]
        else:
            weights, groups = np.concatenate([kernels[lane % g] for lane in range(lanes)]), lanes
        bias = np.concatenate([n.convs[i].bias for n in nets] * rows)
        pad = (k - 1) // 2
        y = b.node(
            "Conv",
            [x, b.const("W", weights), b.const("B", bias)],
            "conv",
            kernel_shape=[k, k],
            pads=[pad] * 4,
            group=groups,
        )
        y = b.node("Relu", [y], "relu")
        bn = [
            b.const(f, np.concatenate([getattr(n.bns[i], f) for n in nets] * rows))
            for f in ("gamma", "beta", "mean", "var")
        ]
        y = b.node("BatchNormalization", [y, *bn], "bn", epsilon=BN_EPSILON)
        x = b.node("MaxPool", [y], "pool", kernel_shape=[stage.pool] * 2, strides=[stage.pool] * 2)
    c, h, w = nets[0].arch.feature_shape
    features = c * h * w
    # (N/rows, lanes·c, h, w) → one row per face: the face's g networks' features
    x = b.node("Reshape", [x, b.const("faces", np.array([-1, g * features]), np.int64)], "faces")
    hidden = nets[0].arch.hidden
    k1, k2 = np.zeros((g * features, g * hidden)), np.zeros((g * hidden, g))
    for j, n in enumerate(nets):
        # Keras flattened NHWC (h, w, c); the graph flattens (c, h, w): permute rows
        k1[j * features : (j + 1) * features, j * hidden : (j + 1) * hidden] = (
            n.dense[0].kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(features, -1)
        )
        k2[j * hidden : (j + 1) * hidden, j] = n.dense[1].kernel[:, 0]
    b1 = np.concatenate([n.dense[0].bias for n in nets])
    b2 = np.concatenate([n.dense[1].bias for n in nets])
    x = b.node("Gemm", [x, b.const("W", k1), b.const("B", b1)], "dense")
    x = b.node("LeakyRelu", [x], "leaky", alpha=LEAKY_ALPHA)
    x = b.node("Gemm", [x, b.const("W", k2), b.const("B", b2)], "dense")
    if g > 1:
        x = b.node("ReduceMin", [x], "union", axes=[1], keepdims=1)
    b.nodes.append(helper.make_node("Identity", [x], [LOGIT_NAME], name=LOGIT_NAME))
    b.nodes.append(helper.make_node("Sigmoid", [LOGIT_NAME], [PROB_NAME], name=PROB_NAME))
    graph = helper.make_graph(
        b.nodes,
        f"{'+'.join(n.arch.name for n in nets)}_lanes",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", *PIXELS_SHAPE])],
        [
            helper.make_tensor_value_info(LOGIT_NAME, TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info(PROB_NAME, TensorProto.FLOAT, ["N", 1]),
        ],
        b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mesolive"
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {FACES_KEY: str(rows)})
    onnx.checker.check_model(model)
    return model
