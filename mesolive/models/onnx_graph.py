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

The graph computes the authors' function, not their layer list. Where a
BatchNorm has a positive scale on every channel (all published and shipped
weights) it commutes with max-pooling, and the graph is rearranged for the CPU
(measured with ONNX Runtime 1.32 on 2 AVX-512 cores, batch 8; docs/cpu.md):

* a 2×2-pooled convolution with fewer than 16 filters is *folded*
  (:meth:`_Builder.pooled_conv_relu`): one stride-2 convolution computes the
  four positions of each pooling window as 4× the channels and a channel max
  pools them. Meso-4's first two stages ran 1.6-1.7× faster (their 8 filters
  were padded to ONNX Runtime's 16-channel blocks and the full-resolution
  activation was written, reordered and pooled);
* each inception branch is pooled on its own before the concatenation, so the
  Concat copies a quarter of the values (about +10 %);
* MesoInception's 1-, 2- and 4-filter branches lose 4-16× to the padding of
  ONNX Runtime's blocked (NCHWc) layout and the reorders around it: its graph
  carries ``mesolive.layout = nchw`` (:data:`LAYOUT_KEY`), which
  :mod:`mesolive.backends.onnxruntime` reads to keep plain NCHW (1.7× faster).
  Merging the branches' 1×1 convolutions into one, then splitting, was slower
  in both layouts: the Split copies a full-resolution tensor that the separate
  convolutions never write twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mesolive.models.arch import BN_EPSILON, INPUT_SIZE, LEAKY_ALPHA, Conv, Inception
from mesolive.models.keras_h5 import BNWeights, ConvWeights, MesoWeights

Precision = Literal["fp32", "fp16"]
OPSET = 17
INPUT_NAME = "input"
LOGIT_NAME = "logit"
PROB_NAME = "p_real"
LAYOUT_KEY = "mesolive.layout"
"""Graph metadata: ``nchw`` where a blocked channel layout is known to be slower."""

FOLD_BELOW = 16
"""A 2×2-pooled convolution with fewer filters than this is folded (module docstring)."""


class _Builder:
    def __init__(self, dtype: type[np.floating]) -> None:
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, prefix: str, value: np.ndarray, dtype: type[np.generic] | None = None) -> str:
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(value.astype(dtype or self.dtype), n))
        return n

    def node(self, op: str, inputs: list[str], prefix: str, **attrs: object) -> str:
        out = self.name(prefix)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv_relu(self, x: str, spec: Conv, w: ConvWeights) -> str:
        pad = spec.dilation * (spec.kernel - 1) // 2  # Keras 'same' at stride 1, odd kernel
        kernel = np.ascontiguousarray(w.kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        return self._conv_relu(x, kernel, w.bias, pad, spec.dilation, 1)

    def _conv_relu(
        self, x: str, kernel: np.ndarray, bias: np.ndarray, pad: int, dilation: int, stride: int
    ) -> str:
        k = kernel.shape[-1]
        y = self.node(
            "Conv",
            [x, self.const("W", kernel), self.const("B", bias)],
            "conv",
            kernel_shape=[k, k],
            pads=[pad, pad, pad, pad],
            dilations=[dilation, dilation],
            strides=[stride, stride],
        )
        return self.node("Relu", [y], "relu")

    def pooled_conv_relu(self, x: str, spec: Conv, w: ConvWeights, pool: int, side: int) -> str:
        """``MaxPool(pool)(Relu(Conv(x)))`` without the full-resolution activation.

        Output pixel (i, j) pools conv outputs (p·i + a, p·j + b), 0 <= a, b < p.
        Each of those is the k×k kernel placed at offset (a, b) inside a
        (k+p-1)×(k+p-1) window read at stride p, so one strided convolution
        with the p² shifted kernels side by side (channel (a·p + b)·F + f)
        computes all of them; ReLU commutes with max, and a channel max over
        the p² groups pools. ``side`` is the input's height (= width).
        """
        f = spec.filters
        k = spec.dilation * (spec.kernel - 1) + 1  # extent of the (dilated) kernel
        kernel = w.kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        window = np.zeros((pool, pool, f, kernel.shape[1], k + pool - 1, k + pool - 1))
        for a in range(pool):
            for b in range(pool):
                window[a, b, :, :, a : a + k : spec.dilation, b : b + k : spec.dilation] = kernel
        y = self._conv_relu(
            x,
            window.reshape(pool * pool * f, *window.shape[3:]),
            np.tile(w.bias, pool * pool),
            (k - 1) // 2,
            1,
            pool,
        )
        shape = np.array([-1, pool * pool, f, side // pool, side // pool], np.int64)
        y = self.node("Reshape", [y, self.const("shape", shape, np.int64)], "windows")
        return self.node("ReduceMax", [y], "pool", axes=[1], keepdims=0)

    def network(self, x: str, weights: MesoWeights) -> str:
        """Add one MesoNet reading ``x``; return the name of its logit tensor."""
        convs = iter(weights.convs)
        side = INPUT_SIZE
        for stage, bn in zip(weights.arch.stages, weights.bns, strict=True):
            pool = {"kernel_shape": [stage.pool] * 2, "strides": [stage.pool] * 2}
            # A per-channel affine map with positive scale is monotonic, so it
            # commutes with max-pooling exactly (float rounding is monotonic
            # too): normalising after the pool touches 4-16x fewer values.
            pool_first = bool(np.all(bn.gamma > 0))
            if isinstance(stage.body, Inception):
                specs = stage.body.convs()
                branches = [self.conv_relu(x, specs[0], next(convs))]
                for i in (1, 3, 5):
                    y = self.conv_relu(x, specs[i], next(convs))
                    branches.append(self.conv_relu(y, specs[i + 1], next(convs)))
                if pool_first:
                    branches = [self.node("MaxPool", [b], "pool", **pool) for b in branches]
                x = self.node("Concat", branches, "concat", axis=1)
            elif pool_first and stage.pool == 2 and stage.body.filters < FOLD_BELOW:
                x = self.pooled_conv_relu(x, stage.body, next(convs), stage.pool, side)
            else:
                x = self.conv_relu(x, stage.body, next(convs))
                if pool_first:
                    x = self.node("MaxPool", [x], "pool", **pool)
            x = self.batch_norm(x, bn)
            if not pool_first:
                x = self.node("MaxPool", [x], "pool", **pool)
            side //= stage.pool
        x = self.node("Flatten", [x], "flatten", axis=1)
        c, h, w = weights.arch.feature_shape
        d1, d2 = weights.dense
        # Keras flattened NHWC (h, w, c); ONNX flattens NCHW (c, h, w): permute rows.
        k1 = d1.kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
        x = self.node("Gemm", [x, self.const("W", k1), self.const("B", d1.bias)], "dense")
        x = self.node("LeakyRelu", [x], "leaky", alpha=LEAKY_ALPHA)
        x = self.node("Gemm", [x, self.const("W", d2.kernel), self.const("B", d2.bias)], "dense")
        return x

    def batch_norm(self, x: str, bn: BNWeights) -> str:
        inputs = [self.const(n, getattr(bn, n)) for n in ("gamma", "beta", "mean", "var")]
        return self.node("BatchNormalization", [x, *inputs], "bn", epsilon=BN_EPSILON)


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
    if any(isinstance(s.body, Inception) for w in nets for s in w.arch.stages):
        helper.set_model_props(model, {LAYOUT_KEY: "nchw"})
    onnx.checker.check_model(model)
    return model
