"""Build the ONNX graph of a MesoNet from its weights (onnx only, no TensorFlow).

The graphs mesolive runs take the face crops as the pipeline holds them
(``build_onnx(..., contract=...)``):

* input ``input``: (N, 256, 256, 3) uint8, BGR (OpenCV's order), the crops of
  :meth:`mesolive.classify.preprocess.Preprocess.pixels`, so a batch moves a
  quarter of the bytes of a float one;
* output ``logit``: (N, 1) float32, the pre-sigmoid value;
* output ``p_real``: (N, 1) float32, sigmoid(logit) = P(face is real).

The graph applies the contract's colour order and value range itself, and
without arithmetic of its own: a convolution is linear, so the 1/255 scale and
the BGR→RGB swap are folded into the weights of the convolutions that read
the image (exact up to float rounding); only a ``Cast`` (and a layout change)
remains. A range that does not start at 0 adds one ``Add`` of ``low / gain``
before them, so that a convolution's zero padding stays the network's zero.

Without a contract the graph reads what :meth:`Preprocess.to_batch` makes:
(N, 3, 256, 256) float32 in the model's colour order and range, the batch
the training path feeds torch (``mesolive train`` checks its export on it).

``precision="fp16"`` keeps the input and float32 outputs but casts after the
input and before the outputs, so every weight and activation in between is
float16: TensorRT 10/11 strongly typed networks take their precision from
exactly these types.

Given several networks, the graph is their *union*: each reads the same input
and ``logit`` is the smallest of their logits, so a face is as fake as the
network that finds it most fake (``1 - p_real`` = the largest fake score).

The graph computes the authors' function, not their layer list. Where a
BatchNorm has a positive scale on every channel (all published and shipped
weights) it commutes with max-pooling, and the graph is rearranged for the CPU
(measured with ONNX Runtime 1.32 on 2 AVX-512 cores, batch 8; docs/cpu.md;
OpenVINO runs Meso-4 from another layout, :mod:`mesolive.models.lanes_graph`):

* a 2×2-pooled convolution with fewer than 16 filters is *folded*
  (:meth:`_Builder.pooled_conv_relu`): one stride-2 convolution computes the
  four positions of each pooling window as 4× the channels and a channel max
  pools them. Meso-4's first two stages ran 1.6-1.7× faster (their 8 filters
  were padded to ONNX Runtime's 16-channel blocks and the full-resolution
  activation was written, reordered and pooled);
* each inception branch is pooled on its own before the concatenation, so the
  Concat copies a quarter of the values (about +10 %); the undilated 3×3
  branch of the first block (4 filters at 256×256) is folded like Meso-4's
  stages (×1.0-1.24 for MesoInception-4; its dilated branches' folded kernels are
  mostly zeros, and at 128×128 the second block's fold gained nothing);
* MesoInception's 1-, 2- and 4-filter branches lose 4-16× to the padding of
  ONNX Runtime's blocked (NCHWc) layout and the reorders around it: its graph
  carries ``mesolive.layout = nchw`` (:data:`LAYOUT_KEY`), which
  :mod:`mesolive.backends.onnxruntime` reads to keep those convolutions in
  plain NCHW while the 16-filter ones are blocked (``for_cpu``).
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

from mesolive.classify.preprocess import Preprocess
from mesolive.models.arch import BN_EPSILON, INPUT_SIZE, LEAKY_ALPHA, Conv, Inception
from mesolive.models.keras_h5 import BNWeights, ConvWeights, MesoWeights

Precision = Literal["fp32", "fp16"]
OPSET = 17
IR_VERSION = 8
"""Readable by ONNX Runtime >= 1.14 and TensorRT 10's parser."""
INPUT_NAME = "input"
LOGIT_NAME = "logit"
PROB_NAME = "p_real"
LAYOUT_KEY = "mesolive.layout"
"""Graph metadata: ``nchw`` where a blocked channel layout is known to be slower for the
convolutions of fewer filters than a block."""
IMAGE_KEY = "mesolive.image"
"""Graph metadata of a graph that reads pixels: ``<tensor> <low> <high>``, the float
tensor holding the image that convolutions read and the exact range of its values
(INT8 calibration takes it as it is, :func:`mesolive.models.quantize.calibrate`)."""
PIXELS_SHAPE = (INPUT_SIZE, INPUT_SIZE, 3)
"""One face of a graph that reads pixels: (height, width, BGR channel), uint8."""

FOLD_BELOW = 16
"""A 2×2-pooled convolution with fewer filters than this is folded (module docstring)."""

_IMAGE = "<image>"
"""Stands for the network's input in :meth:`_Builder.network` (no tensor has this name)."""


class _Builder:
    def __init__(
        self, dtype: type[np.floating], contract: Preprocess | None, faces_per_row: int = 1
    ) -> None:
        self.dtype = dtype
        self.contract = contract
        self.faces_per_row = faces_per_row
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self._n = 0
        self._image: str | None = None
        if contract is None:
            self.channels, self.gain, self.low = (0, 1, 2), 1.0, 0.0
        else:
            self.channels, self.gain, self.low = contract.pixel_map()

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

    # -- the image ------------------------------------------------------------------
    def image(self) -> str:
        """The image as (N, 3, S, S): pixel units for a contract's graph, else the input.

        For a contract's graph: the uint8 input cast to floats of the graph's
        type (+ low/gain), NHWC to NCHW; with ``faces_per_row`` R > 1, R faces
        stacked on channels, (N/R, 3R, S, S) (:mod:`mesolive.models.lanes_graph`).
        """
        if self._image is None:
            to = TensorProto.FLOAT16 if self.dtype == np.float16 else TensorProto.FLOAT
            if self.contract is None:
                x = INPUT_NAME
                if self.dtype == np.float16:
                    x = self.node("Cast", [x], "to_fp16", to=to)
            else:
                x = self.node("Cast", [INPUT_NAME], "pixels", to=to)
                if self.low:
                    low = self.const("low", np.array(self.low / self.gain))
                    x = self.node("Add", [x, low], "low")
                rows = self.faces_per_row
                if rows == 1:
                    x = self.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
                else:
                    shape = np.array([-1, rows, *PIXELS_SHAPE], np.int64)
                    x = self.node("Reshape", [x, self.const("rows", shape, np.int64)], "rows")
                    x = self.node("Transpose", [x], "nchw", perm=[0, 1, 4, 2, 3])
                    shape = np.array([-1, 3 * rows, INPUT_SIZE, INPUT_SIZE], np.int64)
                    x = self.node("Reshape", [x, self.const("stack", shape, np.int64)], "stack")
            self._image = x
        return self._image

    def fold(self, kernel: np.ndarray) -> np.ndarray:
        """An OIHW kernel over the network's input channels → one over the graph's image.

        Network channel c is ``low + gain × pixel channel channels[c]``; the
        image holds ``pixel + low/gain`` (:meth:`image`), so the
        kernel is scaled by ``gain`` and its input channels permuted.
        """
        out = np.empty(kernel.shape, np.float64)
        out[:, list(self.channels)] = kernel * self.gain
        return out

    # -- layers ---------------------------------------------------------------------
    def conv_relu(self, x: str, spec: Conv, w: ConvWeights) -> str:
        pad = spec.dilation * (spec.kernel - 1) // 2  # Keras 'same' at stride 1, odd kernel
        kernel = np.ascontiguousarray(w.kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        return self._conv_relu(x, kernel, w.bias, pad, spec.dilation, 1)

    def _conv_relu(
        self, x: str, kernel: np.ndarray, bias: np.ndarray, pad: int, dilation: int, stride: int
    ) -> str:
        if x == _IMAGE:
            x, kernel = self.image(), self.fold(kernel)
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

    def branch_end(self, x: str, spec: Conv, w: ConvWeights, pool: int, side: int) -> str:
        """An inception branch's last convolution, max-pooled by ``pool`` (0: not pooled).

        The undilated 3×3 branch at the full input size is folded
        (:meth:`pooled_conv_relu`, module docstring).
        """
        if pool == 2 and side == INPUT_SIZE and spec.dilation == 1 and spec.kernel > 1:
            return self.pooled_conv_relu(x, spec, w, pool, side)
        y = self.conv_relu(x, spec, w)
        if not pool:
            return y
        return self.node("MaxPool", [y], "pool", kernel_shape=[pool] * 2, strides=[pool] * 2)

    def network(self, weights: MesoWeights, first: int = 0) -> str:
        """Add one MesoNet reading the image; return the name of its logit tensor.

        ``first`` > 0 starts at that stage instead, reading the previous
        stage's output from the input tensor (:func:`build_tail_onnx`).
        """
        stages = weights.arch.stages
        convs = iter(weights.convs[sum(s.n_convs for s in stages[:first]) :])
        side = weights.arch.side(first)
        x = _IMAGE if first == 0 else INPUT_NAME
        for stage, bn in zip(stages[first:], weights.bns[first:], strict=True):
            pool = {"kernel_shape": [stage.pool] * 2, "strides": [stage.pool] * 2}
            # A per-channel affine map with positive scale is monotonic, so it
            # commutes with max-pooling exactly (float rounding is monotonic
            # too): normalising after the pool touches 4-16x fewer values.
            pool_first = bool(np.all(bn.gamma > 0))
            if isinstance(stage.body, Inception):
                specs = stage.body.convs()
                pooled = stage.pool if pool_first else 0
                branches = [self.branch_end(x, specs[0], next(convs), pooled, side)]
                for i in (1, 3, 5):
                    y = self.conv_relu(x, specs[i], next(convs))
                    branches.append(self.branch_end(y, specs[i + 1], next(convs), pooled, side))
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
    weights: MesoWeights | Sequence[MesoWeights],
    precision: Precision = "fp32",
    contract: Preprocess | None = None,
) -> onnx.ModelProto:
    """Return the ONNX model equal to the authors' Keras network in inference mode.

    A sequence of several networks gives their union. With ``contract`` the
    graph reads uint8 BGR crops and applies the contract's colour order and
    value range; without, the float batch of ``Preprocess.to_batch`` (module
    docstring).
    """
    nets = [weights] if isinstance(weights, MesoWeights) else list(weights)
    if not nets:
        raise ValueError("build_onnx needs at least one network")
    dtype = np.float16 if precision == "fp16" else np.float32
    b = _Builder(dtype, contract)
    logits = [b.network(w) for w in nets]
    x = logits[0] if len(logits) == 1 else b.node("Min", logits, "union")
    if precision == "fp16":
        x = b.node("Cast", [x], "to_fp32", to=TensorProto.FLOAT)
    props = {}
    if contract is None:
        image = helper.make_tensor_value_info(
            INPUT_NAME, TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE]
        )
    else:
        image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", *PIXELS_SHAPE])
        low = b.low / b.gain
        props[IMAGE_KEY] = f"{b.image()} {low!r} {255 + low!r}"
    if any(isinstance(s.body, Inception) for w in nets for s in w.arch.stages):
        props[LAYOUT_KEY] = "nchw"
    return _model(b, x, image, f"{'+'.join(w.arch.name for w in nets)}_{precision}", props)


def build_tail_onnx(weights: MesoWeights, first: int) -> onnx.ModelProto:
    """The float32 graph of one network from stage ``first`` on.

    Input ``input``: (N, C, S, S) float32, what stage ``first - 1`` outputs
    (after its BatchNorm and max-pool) in NCHW order; outputs as
    :func:`build_onnx`. :mod:`mesolive.backends.native` computes the stages
    before it.
    """
    stages = weights.arch.stages
    if not 0 < first < len(stages):
        raise ValueError(f"first must be 1..{len(stages) - 1}, got {first}")
    side = weights.arch.side(first)
    b = _Builder(np.float32, None)
    x = b.network(weights, first)
    features = helper.make_tensor_value_info(
        INPUT_NAME, TensorProto.FLOAT, ["N", stages[first - 1].out_channels, side, side]
    )
    return _model(b, x, features, f"{weights.arch.name}_from_stage_{first}", {})


def _model(
    b: _Builder, logit: str, image: onnx.ValueInfoProto, name: str, props: dict[str, str]
) -> onnx.ModelProto:
    """The checked model of ``b``'s nodes: ``logit`` named :data:`LOGIT_NAME`, its sigmoid
    :data:`PROB_NAME`, ``image`` the input and ``props`` its metadata."""
    b.nodes.append(helper.make_node("Identity", [logit], [LOGIT_NAME], name=LOGIT_NAME))
    b.nodes.append(helper.make_node("Sigmoid", [LOGIT_NAME], [PROB_NAME], name=PROB_NAME))
    graph = helper.make_graph(
        b.nodes,
        name,
        [image],
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
    model.ir_version = IR_VERSION
    if props:
        helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def image_ranges(model: onnx.ModelProto) -> dict[str, tuple[float, float]]:
    """The image tensor of a graph that reads pixels and its exact (low, high) range.

    Empty for a graph that reads the float batch (its input's range is the
    contract's, which the graph does not know).
    """
    value = next((p.value for p in model.metadata_props if p.key == IMAGE_KEY), "")
    if not value:
        return {}
    name, low, high = value.split()
    return {name: (float(low), float(high))}
