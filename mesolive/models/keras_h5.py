"""Read the authors' weights-only Keras 2 ``.h5`` files, without TensorFlow.

The result is a :class:`MesoWeights`: per-layer arrays in the architecture's
creation order, in Keras layout (conv kernels HWIO, dense kernels (in, out),
dense input in NHWC flatten order). Graph builders convert layouts themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mesolive.errors import ModelError
from mesolive.models.arch import ARCHS, Arch, Inception

_LAYER = re.compile(r"^(conv2d|batch_normalization|dense)_(\d+)$")


@dataclass(frozen=True)
class ConvWeights:
    """kernel (kh, kw, in, out) float32 HWIO; bias (out,) float32."""

    kernel: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class BNWeights:
    """Four (channels,) float32 arrays of a Keras BatchNormalization."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray


@dataclass(frozen=True)
class DenseWeights:
    """kernel (in, out) float32; bias (out,) float32."""

    kernel: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class MesoWeights:
    """All weights of one MesoNet, in creation order.

    ``convs`` has 4 entries for Meso-4 and 16 for MesoInception-4; ``bns`` and
    ``dense`` have 4 and 2. ``dense[0].kernel`` rows are in Keras' NHWC
    flatten order (h, w, c) of the last stage's (8, 8, 16) output.
    """

    arch: Arch
    convs: tuple[ConvWeights, ...]
    bns: tuple[BNWeights, ...]
    dense: tuple[DenseWeights, ...]


def _not_mesonet(path: Path, reason: object) -> ModelError:
    text = " ".join(str(reason).split())  # h5py messages may span lines
    return ModelError(f"not a MesoNet Keras .h5 file: {path} ({text[:200]})")


def _layer_groups(path: Path) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """The conv/batch-norm/dense layers' arrays by kind and creation index.

    A damaged or foreign HDF5 file can fail anywhere in h5py (a missing
    group, undecodable names, a bad B-tree, an unreadable chunk) with almost
    any exception type; every one becomes a :class:`ModelError`.
    """
    try:
        return _read_layer_groups(path)
    except ModelError:
        raise
    except Exception as e:  # h5py raises KeyError, OSError, RuntimeError, … here
        raise _not_mesonet(path, f"{type(e).__name__}: {e}") from e


def _read_layer_groups(path: Path) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    import h5py

    groups: dict[str, dict[int, dict[str, np.ndarray]]] = {
        "conv2d": {},
        "batch_normalization": {},
        "dense": {},
    }
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise _not_mesonet(path, e) from e
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        names = [
            n.decode() if isinstance(n, bytes) else str(n)
            for n in root.attrs.get("layer_names", [])
        ]
        if not names:
            raise _not_mesonet(path, "no Keras layer list inside")
        for name in names:
            m = _LAYER.match(name)
            if not m:
                continue
            g = root[name]
            arrays: dict[str, np.ndarray] = {}
            for wname in g.attrs.get("weight_names", []):
                wname = wname.decode() if isinstance(wname, bytes) else str(wname)
                short = wname.rsplit("/", 1)[-1].split(":")[0]
                arrays[short] = np.asarray(g[wname], dtype=np.float32)
                if not np.isfinite(arrays[short]).all():
                    raise _not_mesonet(path, f"{wname} holds values that are not finite")
            groups[m.group(1)][int(m.group(2))] = arrays
    return groups


def detect_arch(n_convs: int) -> Arch:
    for arch in ARCHS.values():
        if arch.n_convs == n_convs:
            return arch
    raise ModelError(f"{n_convs} convolution layers match no MesoNet architecture")


def _expected_conv_shapes(arch: Arch) -> list[tuple[int, int, int, int]]:
    shapes = []
    cin = 3
    for stage in arch.stages:
        if isinstance(stage.body, Inception):
            convs = stage.body.convs()
            for i, c in enumerate(convs):
                # 1x1 convs read the block input; a 3x3 conv reads its 1x1 sibling.
                src = cin if c.kernel == 1 else convs[i - 1].filters
                shapes.append((c.kernel, c.kernel, src, c.filters))
        else:
            c = stage.body
            shapes.append((c.kernel, c.kernel, cin, c.filters))
        cin = stage.out_channels
    return shapes


def load_keras_weights(path: str | Path, expect: str | None = None) -> MesoWeights:
    """Load a weights-only Keras ``.h5`` and map layers by creation index.

    Parameters
    ----------
    path
        The ``.h5`` file written by the authors' ``model.save_weights``.
    expect
        Architecture name the caller wants (``meso4`` or ``mesoinception4``);
        a file of the other architecture raises :class:`ModelError`.
    """
    path = Path(path)
    groups = _layer_groups(path)
    convs = [groups["conv2d"][k] for k in sorted(groups["conv2d"])]
    bns = [groups["batch_normalization"][k] for k in sorted(groups["batch_normalization"])]
    dense = [groups["dense"][k] for k in sorted(groups["dense"])]
    arch = detect_arch(len(convs))
    if expect is not None and arch.name != expect:
        raise ModelError(
            f"{path}: holds {arch.name} weights, expected {expect} "
            "(weights of the wrong architecture)"
        )
    if len(bns) != len(arch.stages) or len(dense) != 2:
        raise ModelError(f"{path}: layer counts do not match {arch.name}")
    try:
        conv_w = tuple(ConvWeights(c["kernel"], c["bias"]) for c in convs)
        bn_w = tuple(
            BNWeights(b["gamma"], b["beta"], b["moving_mean"], b["moving_variance"]) for b in bns
        )
        dense_w = tuple(DenseWeights(d["kernel"], d["bias"]) for d in dense)
    except KeyError as e:
        raise ModelError(f"{path}: missing weight {e} in a layer") from e
    for i, (cw, shape) in enumerate(zip(conv_w, _expected_conv_shapes(arch), strict=True)):
        if cw.kernel.shape != shape:
            raise ModelError(
                f"{path}: convolution {i + 1} has shape {cw.kernel.shape}, "
                f"{arch.name} expects {shape}"
            )
        if cw.bias.shape != shape[-1:]:
            raise ModelError(f"{path}: convolution {i + 1} has a bias of the wrong size")
    for bw, stage in zip(bn_w, arch.stages, strict=True):
        if any(a.shape != (stage.out_channels,) for a in (bw.gamma, bw.beta, bw.mean, bw.var)):
            raise ModelError(f"{path}: batch-norm sizes do not match {arch.name}")
    c, h, w = arch.feature_shape
    expected_dense = [((c * h * w, arch.hidden), (arch.hidden,)), ((arch.hidden, 1), (1,))]
    if [(d.kernel.shape, d.bias.shape) for d in dense_w] != expected_dense:
        raise ModelError(f"{path}: dense layer sizes do not match {arch.name}")
    return MesoWeights(arch, conv_w, bn_w, dense_w)
