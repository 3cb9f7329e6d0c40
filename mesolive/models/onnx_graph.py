"""Build the ONNX graph of a MesoNet from its weights (onnx only, no TensorFlow).

The graph is NCHW with a dynamic batch:

* input ``input``: (N, 3, 256, 256) float32, RGB in [0, 1];
* output ``logit``: (N, 1) float32, the pre-sigmoid value;
* output ``p_real``: (N, 1) float32, sigmoid(logit) = P(face is real).

``precision="fp16"`` keeps float32 input and outputs but casts after the
input and before the outputs, so every weight and activation in between is
float16: TensorRT 10/11 strongly typed networks take their precision from
exactly these types.

Given several networks, the graph is their *union*: each reads the same input
and ``logit`` is the smallest of their logits, so a face is as fake as the
network that finds it most fake (``1 - p_real`` = the largest fake score).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mesolive.models.arch import BN_EPSILON, INPUT_SIZE, LEAKY_ALPHA, Conv, Inception
from mesolive.models.keras_h5 import ConvWeights, MesoWeights

Precision = Literal["fp32", "fp16"]
OPSET = 17
INPUT_NAME = "input"
LOGIT_NAME = "logit"
PROB_NAME = "p_real"


class _Builder:
    def __init__(self, dtype: type[np.floating]) -> None:
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(value.astype(self.dtype), n))
        return n

    def node(self, op: str, inputs: list[str], prefix: str, **attrs: object) -> str:
        out = self.name(prefix)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv_relu(self, x: str, spec: Conv, w: ConvWeights) -> str:
        k = spec.kernel
        pad = spec.dilation * (k - 1) // 2  # Keras 'same' at stride 1, odd kernel
        kernel = np.ascontiguousarray(w.kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        y = self.node(
            "Conv",
            [x, self.const("W", kernel), self.const("B", w.bias)],
            "conv",
            kernel_shape=[k, k],
            pads=[pad, pad, pad, pad],
            dilations=[spec.dilation, spec.dilation],
            strides=[1, 1],
        )
        return self.node("Relu", [y], "relu")

    def network(self, x: str, weights: MesoWeights) -> str:
        """Add one MesoNet reading ``x``; return the name of its logit tensor."""
        convs = iter(weights.convs)
        for stage, bn in zip(weights.arch.stages, weights.bns, strict=True):
            if isinstance(stage.body, Inception):
                specs = stage.body.convs()
                branches = [self.conv_relu(x, specs[0], next(convs))]
                for i in (1, 3, 5):
                    y = self.conv_relu(x, specs[i], next(convs))
                    branches.append(self.conv_relu(y, specs[i + 1], next(convs)))
                x = self.node("Concat", branches, "concat", axis=1)
            else:
                x = self.conv_relu(x, stage.body, next(convs))
            bn_inputs = [
                self.const("gamma", bn.gamma),
                self.const("beta", bn.beta),
                self.const("mean", bn.mean),
                self.const("var", bn.var),
            ]
            pool = {"kernel_shape": [stage.pool] * 2, "strides": [stage.pool] * 2}
            if np.all(bn.gamma > 0):
                # A per-channel affine map with positive scale is monotonic, so it
                # commutes with max-pooling exactly (float rounding is monotonic
                # too): normalising after the pool touches 4-16x fewer values.
                x = self.node("MaxPool", [x], "pool", **pool)
                x = self.node("BatchNormalization", [x, *bn_inputs], "bn", epsilon=BN_EPSILON)
            else:
                x = self.node("BatchNormalization", [x, *bn_inputs], "bn", epsilon=BN_EPSILON)
                x = self.node("MaxPool", [x], "pool", **pool)
        x = self.node("Flatten", [x], "flatten", axis=1)
        c, h, w = weights.arch.feature_shape
        d1, d2 = weights.dense
        # Keras flattened NHWC (h, w, c); ONNX flattens NCHW (c, h, w): permute rows.
        k1 = d1.kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
        x = self.node("Gemm", [x, self.const("W", k1), self.const("B", d1.bias)], "dense")
        x = self.node("LeakyRelu", [x], "leaky", alpha=LEAKY_ALPHA)
        x = self.node("Gemm", [x, self.const("W", d2.kernel), self.const("B", d2.bias)], "dense")
        return x


def build_onnx(
    weights: MesoWeights | Sequence[MesoWeights], precision: Precision = "fp32"
) -> onnx.ModelProto:
    """Return the ONNX model equal to the authors' Keras network in inference mode.

    A sequence of several networks gives their union (module docstring).
    """
    nets = [weights] if isinstance(weights, MesoWeights) else list(weights)
    if not nets:
        raise ValueError("build_onnx needs at least one network")
    dtype = np.float16 if precision == "fp16" else np.float32
    b = _Builder(dtype)
    x = INPUT_NAME
    if precision == "fp16":
        x = b.node("Cast", [x], "to_fp16", to=TensorProto.FLOAT16)
    logits = [b.network(x, w) for w in nets]
    x = logits[0] if len(logits) == 1 else b.node("Min", logits, "union")
    if precision == "fp16":
        x = b.node("Cast", [x], "to_fp32", to=TensorProto.FLOAT)
    b.nodes.append(helper.make_node("Identity", [x], [LOGIT_NAME], name=LOGIT_NAME))
    b.nodes.append(helper.make_node("Sigmoid", [LOGIT_NAME], [PROB_NAME], name=PROB_NAME))

    graph = helper.make_graph(
        b.nodes,
        f"{'+'.join(w.arch.name for w in nets)}_{precision}",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE]
            )
        ],
        [
            helper.make_tensor_value_info(LOGIT_NAME, TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info(PROB_NAME, TensorProto.FLOAT, ["N", 1]),
        ],
        b.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mesolive",
    )
    model.ir_version = 8  # readable by ONNX Runtime >= 1.14 and TensorRT 10's parser
    onnx.checker.check_model(model)
    return model
