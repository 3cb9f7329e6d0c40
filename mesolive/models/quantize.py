"""The INT8 variant of a MesoNet graph: explicit Q/DQ nodes, scales calibrated in ONNX Runtime.

TensorRT 11 removed ``BuilderFlag.INT8`` and the INT8 calibrators: a network is
strongly typed and INT8 exists only where the ONNX graph says so, through
QuantizeLinear/DequantizeLinear pairs ("explicit quantization"; TensorRT docs,
*Explicit Quantization* and the 10.x-to-11.x migration guide). TensorRT 10
builds the same graph with a strongly typed network. What TensorRT requires of
the pairs, and this module does:

* symmetric INT8: zero points are int8 zeros, scales are positive float32;
* activations quantized per tensor, weights per output channel (axis 0 of the
  OIHW convolution kernel);
* Q/DQ on the *inputs* of the weighted layers (here every ``Conv``), so that
  TensorRT fuses ``DQ → Conv (→ ReLU)`` into an INT8 convolution;
* pre-quantized weights: INT8 initializers followed by a DequantizeLinear.

Only the convolutions are quantized: they are >99 % of the arithmetic. The two
dense layers (16 and 1 outputs) stay float32, as does everything after them.

Activation scales come from a calibration pass: the float32 graph runs in ONNX
Runtime (CPU) over a folder of face crops with every convolution input exposed
as an extra output, and each tensor's scale is its calibrated range / 127.
:func:`int8_graph` does it all: calibrate, equalize channel ranges
(:func:`equalize`, exact in float), calibrate again, insert the Q/DQ pairs.

``int8_graph(..., target="cpu")`` makes the variant ONNX Runtime's CPU
provider runs as integer convolutions (:func:`quantize_cpu`; ONNX Runtime docs,
*Quantize ONNX models*: QDQ, activations uint8 and weights int8 ("U8S8"), whose
VPMADDUBSW saturation issue does not exist on CPUs with VNNI, the only ones
mesolive runs it on). ONNX Runtime fuses ``DQ → Conv → Relu → Q`` into one
``QLinearConv`` only when the convolution's *output* is quantized too, so
that graph also quantizes every ReLU after a quantized convolution and runs
the max-pools on the integers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger(__name__)

QMAX = 127
"""Symmetric INT8 range [-127, 127]: TensorRT's quantization is symmetric."""

DEFAULT_PERCENTILE = 99.99
"""Percentile of |activation| used as the range (the rare largest values clip)."""

_SAMPLES_PER_BATCH = 1 << 13
"""Pixel positions (all channels) of each tensor kept per batch for the percentiles."""


@dataclass(frozen=True)
class Calibration:
    """Calibrated ranges of tensors of one graph (by default its convolution inputs).

    Attributes
    ----------
    amax
        Tensor name -> range (float, > 0): the ``percentile`` of |x| over all
        its values; the scale of its QuantizeLinear is ``amax / 127``.
    channel_amax
        Tensor name -> (C,) float64 per-channel ranges (for :func:`equalize`).
    low, high
        Tensor name -> the ``100 - percentile`` and ``percentile`` of x itself
        (signed): the asymmetric range :func:`quantize_cpu` maps onto uint8.
    images
        How many face crops the calibration pass saw.
    method
        ``"percentile-<p>"``.
    """

    amax: dict[str, float]
    channel_amax: dict[str, np.ndarray]
    images: int
    method: str
    low: dict[str, float]
    high: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {"images": self.images, "method": self.method, "tensors": len(self.amax)}


def conv_inputs(model: onnx.ModelProto) -> list[str]:
    """Names of the tensors read by ``Conv`` nodes as data, in graph order, unique."""
    seen: dict[str, None] = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            seen.setdefault(node.input[0], None)
    return list(seen)


def calibrate(
    model: onnx.ModelProto,
    batches: Iterable[np.ndarray],
    *,
    percentile: float = DEFAULT_PERCENTILE,
    threads: int | None = None,
    tensors: Sequence[str] | None = None,
) -> Calibration:
    """Measure the range of every convolution input (or of ``tensors``) over calibration batches.

    Parameters
    ----------
    model
        A float32 MesoNet graph (``build_onnx(w, "fp32")``, or :func:`equalize` of it).
    batches
        Graph inputs: for mesolive's graphs (N, 256, 256, 3) uint8 face crops
        (:meth:`mesolive.classify.preprocess.Preprocess.pixels`).
    percentile
        Range = this percentile of |x|. It is computed on a fixed-seed sample
        of pixel positions of each batch (all channels of each position), so
        the same crops always give the same scales.
    """
    from mesolive.backends.onnxruntime import OnnxRuntimeRunner
    from mesolive.models.onnx_graph import INPUT_NAME, image_ranges

    names = conv_inputs(model) if tensors is None else list(tensors)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(helper.make_empty_tensor_value_info(name))
    rng = np.random.default_rng(0)
    samples: dict[str, list[np.ndarray]] = {n: [] for n in names}
    images = 0
    with OnnxRuntimeRunner(probe.SerializeToString(), threads=threads) as runner:
        for x in batches:
            out = runner.infer({INPUT_NAME: np.ascontiguousarray(x)})
            images += len(x)
            for n in names:
                a = out[n]  # (N, C, H, W)
                per_channel = a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)
                k = min(per_channel.shape[1], _SAMPLES_PER_BATCH)
                keep = rng.choice(per_channel.shape[1], k, replace=False)
                samples[n].append(per_channel[:, keep])
    if images == 0:
        raise ValueError("calibration needs at least one face crop")
    amax: dict[str, float] = {}
    channel_amax: dict[str, np.ndarray] = {}
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for n in names:
        values = np.concatenate(samples[n], axis=1)
        magnitude = np.abs(values)
        channel_amax[n] = np.percentile(magnitude, percentile, axis=1)
        # A tensor that never left zero still needs a valid (positive) scale.
        amax[n] = float(np.percentile(magnitude, percentile)) or 1.0
        low[n], high[n] = (float(v) for v in np.percentile(values, [100 - percentile, percentile]))
    for n, (lo, hi) in image_ranges(model).items():
        if n in amax:  # the image's range is known exactly: pixels are 0..255
            low[n], high[n], amax[n] = lo, hi, max(abs(lo), abs(hi))
    return Calibration(amax, channel_amax, images, f"percentile-{percentile:g}", low, high)


def equalize(model: onnx.ModelProto, calibration: Calibration) -> onnx.ModelProto:
    """Balance channel ranges between each convolution input and where it comes from.

    Activations are quantized with one scale per tensor, but MesoNet's channels
    differ wildly in range: a BatchNorm divides a near-constant channel by
    sqrt(var + eps) and blows it up 30x (Meso4_F2F: the second convolution's
    input has per-channel ranges from 0.04 to 29, so most channels got a
    handful of INT8 levels and 16 % of DFDC decisions flipped), and inception
    branches have channels that never fire next to busy ones.

    Cross-layer equalization (Nagel et al., "Data-Free Quantization Through
    Weight Equalization and Bias Correction", ICCV 2019): channel c of the
    tensor is divided by r_c where it is made (a BatchNorm's gamma and beta, or
    a convolution's output-channel weights and bias, through any ReLU and
    max-pool in between, which commute with a positive scale) and input
    channel c of every convolution reading it is multiplied by r_c, with
    r_c = sqrt(activation range_c / weight range_c). This is exact in real
    arithmetic, zero padding included; afterwards both ranges are proportional
    to sqrt(activation range_c x weight range_c).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name]).astype(np.float64)

    def replace(name: str, value: np.ndarray) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    def source(x: str) -> onnx.NodeProto | None:
        """The BatchNorm or Conv making ``x``, through single-use ReLU/MaxPool nodes."""
        node = producer.get(x)
        while node is not None and node.op_type in ("Relu", "MaxPool"):
            if len(consumers.get(node.input[0], [])) != 1:
                return None
            node = producer.get(node.input[0])
        if node is None or node.op_type not in ("BatchNormalization", "Conv"):
            return None
        if node.op_type == "Conv" and len(node.input) < 3:
            return None
        return node

    for x, act_range in calibration.channel_amax.items():
        convs = consumers.get(x, [])
        if not convs or any(c.op_type != "Conv" or list(c.input).index(x) != 0 for c in convs):
            continue
        src = source(x)
        if src is None or (x not in src.output and len(consumers.get(src.output[0], [])) != 1):
            continue
        weights = {c.input[1]: array(c.input[1]) for c in convs}
        w_range = np.max([np.abs(w).max(axis=(0, 2, 3)) for w in weights.values()], axis=0)
        ok = (act_range > 0) & (w_range > 0)
        r = np.ones_like(w_range)
        r[ok] = np.sqrt(act_range[ok] / w_range[ok])
        r /= np.exp(np.mean(np.log(r)))  # the overall scale is free: keep it near 1
        if src.op_type == "BatchNormalization":
            for i in (1, 2):  # gamma, beta
                replace(src.input[i], array(src.input[i]) / r)
        else:  # Conv: output channel c of weights (O, I, kh, kw) and bias (O,)
            replace(src.input[1], array(src.input[1]) / r[:, None, None, None])
            replace(src.input[2], array(src.input[2]) / r)
        for name, w in weights.items():
            replace(name, w * r[None, :, None, None])
    onnx.checker.check_model(out)
    return out


def bn_scale_into_convolutions(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where each BatchNorm's scale moves into the convolution before it.

    :func:`quantize_cpu` quantizes a convolution's (ReLU'd) output, and a
    BatchNorm after it multiplies that rounding error by its scale
    ``gamma / sqrt(var + eps)``, up to 30x on a near-constant channel
    (Meso4_F2F). With the scale ``k`` inside the convolution (weights and bias
    of output channel c times ``k[c]``, positive, so it commutes with the ReLU
    and the max-pools between) and the BatchNorm left with ``gamma =
    sqrt(var + eps)`` and ``mean × k``, the output is rounded in the units the
    next layer reads. Exact in real arithmetic. Only for a convolution whose
    output reaches the BatchNorm alone, through ReLU, max-pools and a folded
    pool's reshape (output channel c is BatchNorm channel c mod its channels).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name]).astype(np.float64)

    def replace(name: str, value: np.ndarray) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    for bn in (n for n in g.node if n.op_type == "BatchNormalization"):
        node = producer.get(bn.input[0])
        while node is not None and node.op_type in ("Relu", "MaxPool", "ReduceMax", "Reshape"):
            node = producer.get(node.input[0]) if consumers[node.output[0]] == 1 else None
        if node is None or node.op_type != "Conv" or consumers[node.output[0]] != 1:
            continue
        gamma, _, mean, var = (array(i) for i in bn.input[1:])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        k = gamma / np.sqrt(var + eps)
        w, b = array(node.input[1]), array(node.input[2])
        if np.any(k <= 0) or len(w) % len(k):
            continue
        per_output = np.tile(k, len(w) // len(k))
        replace(node.input[1], w * per_output[:, None, None, None])
        replace(node.input[2], b * per_output)
        replace(bn.input[1], np.sqrt(var + eps))
        replace(bn.input[3], mean * k)
    onnx.checker.check_model(out)
    return out


def int8_graph(
    model: onnx.ModelProto,
    batches: Callable[[], Iterable[np.ndarray]],
    *,
    threads: int | None = None,
    target: Literal["tensorrt", "cpu"] = "tensorrt",
) -> tuple[onnx.ModelProto, Calibration]:
    """The INT8 Q/DQ graph of a float32 graph: calibrate, equalize, calibrate again, quantize.

    ``batches`` is called twice (once per calibration pass) and must yield the
    same batches of the graph's input both times (:func:`calibrate`). ``target`` picks the
    Q/DQ layout: TensorRT's (:func:`quantize_qdq`) or ONNX Runtime CPU's
    (:func:`quantize_cpu`, of the graph whose convolutions carry the scale of
    the BatchNorm after them, :func:`bn_scale_into_convolutions`).
    """
    if target == "cpu":
        model = bn_scale_into_convolutions(model)
    first = calibrate(model, batches(), threads=threads)
    balanced = equalize(model, first)
    if target == "cpu":
        second = calibrate(balanced, batches(), threads=threads, tensors=cpu_ranges(balanced))
        return quantize_cpu(balanced, second), second
    second = calibrate(balanced, batches(), threads=threads)
    return quantize_qdq(balanced, second), second


def _weights_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel INT8 of an (O, I, kh, kw) kernel: (int8 kernel, (O,) scales)."""
    w_amax = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    w_scale = (np.where(w_amax > 0, w_amax, 1.0) / QMAX).astype(np.float32)
    w_q = np.clip(np.rint(w / w_scale[:, None, None, None]), -QMAX, QMAX).astype(np.int8)
    return w_q, w_scale


def quantize_qdq(
    model: onnx.ModelProto, calibration: Calibration, *, skip: Iterable[str] = ()
) -> onnx.ModelProto:
    """Return a copy of the float32 graph with INT8 Q/DQ on every convolution.

    Parameters
    ----------
    model
        The float32 graph the calibration was measured on.
    calibration
        Ranges of the convolution inputs (:func:`calibrate`).
    skip
        Convolution *input* tensors to leave in float32 (e.g. the image
        itself). A convolution whose input is skipped keeps float32
        weights too, so TensorRT runs it in float32.

    The inputs, outputs, their names and types are unchanged: the INT8 graph is a
    drop-in replacement for the float32 one.
    """
    skip = set(skip)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {i.name: i for i in g.initializer}
    nodes: list[onnx.NodeProto] = []
    dq_of: dict[str, str] = {}  # activation -> its dequantized copy (shared by branches)
    new_inits: list[TensorProto] = []
    dropped: set[str] = set()

    def scalar(name: str, value: float | int, dtype: type[np.generic]) -> str:
        new_inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    for node in g.node:
        x = node.input[0] if node.op_type == "Conv" else ""
        if not x or x in skip:
            nodes.append(node)
            continue
        if x not in calibration.amax:
            raise ValueError(f"no calibrated range for convolution input {x!r}")
        if x not in dq_of:
            s = scalar(f"{x}_scale", calibration.amax[x] / QMAX, np.float32)
            z = scalar(f"{x}_zp", 0, np.int8)
            nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{x}_q"], name=f"{x}_Q"))
            nodes.append(
                helper.make_node("DequantizeLinear", [f"{x}_q", s, z], [f"{x}_dq"], name=f"{x}_DQ")
            )
            dq_of[x] = f"{x}_dq"
        w_name = node.input[1]
        w = numpy_helper.to_array(inits[w_name]).astype(np.float32)  # (O, I, kh, kw)
        w_q, w_scale = _weights_int8(w)
        new_inits += [
            numpy_helper.from_array(w_q, f"{w_name}_int8"),
            numpy_helper.from_array(w_scale, f"{w_name}_wscale"),
            numpy_helper.from_array(np.zeros(w.shape[0], np.int8), f"{w_name}_wzp"),
        ]
        nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{w_name}_int8", f"{w_name}_wscale", f"{w_name}_wzp"],
                [f"{w_name}_dq"],
                name=f"{w_name}_DQ",
                axis=0,
            )
        )
        dropped.add(w_name)
        node.input[0] = dq_of[x]
        node.input[1] = f"{w_name}_dq"
        nodes.append(node)

    return _rewritten(out, nodes, dropped, new_inits, "_int8")


MIN_INT8_CHANNELS = 8
"""Fewest input and output channels of a convolution :func:`quantize_cpu` quantizes."""

_ON_INTEGERS = ("MaxPool", "Reshape", "ReduceMax")
"""Ops that run on the quantized tensor itself: exact, as max commutes with a monotone map."""


def _cpu_convs(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The convolutions :func:`quantize_cpu` quantizes: those with >= 8 input and output channels.

    ONNX Runtime's integer convolution beats its float one only there
    (measured on 2 AVX-512 VNNI cores, 5×5 or 3×3 kernels: 16→16 channels 2×
    faster, 8→16 1.3×, 8→8 even; 4→4 and 3→16 2× slower), so the image's
    convolutions and MesoInception's narrow branches stay float.
    """
    channels = {i.name: min(i.dims[:2]) for i in model.graph.initializer if len(i.dims) == 4}
    return [
        n
        for n in model.graph.node
        if n.op_type == "Conv" and channels.get(n.input[1], 0) >= MIN_INT8_CHANNELS
    ]


def cpu_ranges(model: onnx.ModelProto) -> list[str]:
    """The tensors :func:`quantize_cpu` needs ranges of: its convolutions' inputs and ReLUs."""
    convs = _cpu_convs(model)
    outputs = {n.output[0] for n in convs}
    relus = [n.output[0] for n in model.graph.node if n.op_type == "Relu" and n.input[0] in outputs]
    return list(dict.fromkeys([n.input[0] for n in convs] + relus))


def quantize_cpu(model: onnx.ModelProto, calibration: Calibration) -> onnx.ModelProto:
    """Return a copy of the float32 graph that ONNX Runtime's CPU provider runs in integers.

    Every convolution with enough channels (:func:`_cpu_convs`) gets:

    * its input as uint8 over its calibrated [low, high], widened to hold 0
      (zero padding stays exact; a ReLU's output gets zero point 0), which
      for a BatchNorm's skewed output is up to twice the levels of a
      symmetric range;
    * int8 weights per output channel (zero point 0) and an int32 bias of scale
      input scale x weight scale, both dequantized;
    * its ReLU's output quantized as uint8 the same way (zero point 0), so that
      ONNX Runtime fuses ``DQ → Conv → Relu → Q`` into a ``QLinearConv`` and
      drops the ReLU (a zero point at the bottom of uint8 clamps as it does).

    Max-pools (and the reshape and channel max of a folded pool) then run on
    the uint8 values; a float consumer reads a DequantizeLinear. Inputs,
    outputs, their names and types are unchanged (a drop-in replacement).

    Raises
    ------
    ValueError
        A tensor of :func:`cpu_ranges` has no calibrated range.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    conv_outputs = {n.output[0] for n in _cpu_convs(model)}
    nodes: list[onnx.NodeProto] = []
    new_inits: list[TensorProto] = []
    q: dict[str, tuple[str, str, str, float]] = {}  # tensor -> (uint8 name, scale, zp, scale)
    dq: dict[str, str] = {}  # tensor -> its DequantizeLinear output

    def add(name: str, value: np.ndarray) -> str:
        new_inits.append(numpy_helper.from_array(value, name))
        return name

    def quantize(x: str) -> tuple[str, str, str, float]:
        if x not in q:
            if x not in calibration.high:
                raise ValueError(f"no calibrated range for {x!r}")
            # [low, high] widened to hold 0, so that zero padding stays exact
            lo, hi = min(calibration.low[x], 0.0), max(calibration.high[x], 0.0)
            scale = (hi - lo) / 255 or 1.0
            s = add(f"{x}_scale", np.array(scale, np.float32))
            z = add(f"{x}_zp", np.array(np.clip(np.rint(-lo / scale), 0, 255), np.uint8))
            nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{x}_q"], name=f"{x}_Q"))
            q[x] = (f"{x}_q", s, z, scale)
        return q[x]

    def dequantized(x: str) -> str:
        if x not in dq:
            xq, s, z, _ = q[x]
            dq[x] = f"{x}_dq"
            nodes.append(helper.make_node("DequantizeLinear", [xq, s, z], [dq[x]], name=f"{x}_DQ"))
        return dq[x]

    for node in g.node:
        if node.op_type == "Conv" and node.output[0] in conv_outputs:
            _, _, _, x_scale = quantize(node.input[0])
            w_name, b_name = node.input[1], node.input[2]
            w_q, w_scale = _weights_int8(inits[w_name].astype(np.float32))
            b_scale = (w_scale * np.float32(x_scale)).astype(np.float32)
            b_q = np.rint(inits[b_name] / b_scale).astype(np.int32)
            zeros = np.zeros(len(w_scale), np.int8)
            w_in = [add(f"{w_name}_int8", w_q), add(f"{w_name}_wscale", w_scale)]
            b_in = [add(f"{b_name}_int32", b_q), add(f"{b_name}_bscale", b_scale)]
            w_in.append(add(f"{w_name}_wzp", zeros))
            b_in.append(add(f"{b_name}_bzp", zeros.astype(np.int32)))
            for name, ins in ((w_name, w_in), (b_name, b_in)):
                dq_node = helper.make_node("DequantizeLinear", ins, [f"{name}_dq"], axis=0)
                dq_node.name = f"{name}_DQ"
                nodes.append(dq_node)
            node.input[:] = [dequantized(node.input[0]), f"{w_name}_dq", f"{b_name}_dq"]
            nodes.append(node)
            continue
        if node.op_type in _ON_INTEGERS and node.input[0] in q:
            xq, s, z, scale = q[node.input[0]]
            y = node.output[0]
            node.input[0] = xq
            node.output[0] = f"{y}_q"
            nodes.append(node)
            q[y] = (f"{y}_q", s, z, scale)
            continue
        for i, x in enumerate(node.input):
            if x in q:
                node.input[i] = dequantized(x)
        nodes.append(node)
        if node.op_type == "Relu" and node.input[0] in conv_outputs:
            quantize(node.output[0])
    dropped = {n.input[i] for n in model.graph.node if n.output[0] in conv_outputs for i in (1, 2)}
    return _rewritten(out, nodes, dropped, new_inits, "_int8cpu")


def _rewritten(
    out: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    dropped: set[str],
    new_inits: list[TensorProto],
    suffix: str,
) -> onnx.ModelProto:
    """``out`` with ``nodes``, its initializers less ``dropped`` plus ``new_inits``, checked."""
    g = out.graph
    del g.node[:]
    g.node.extend(nodes)
    kept = [i for i in g.initializer if i.name not in dropped]
    del g.initializer[:]
    g.initializer.extend(kept + new_inits)
    g.name = g.name.replace("_fp32", "") + suffix
    onnx.checker.check_model(out)
    return out
