"""MesoNet in PyTorch, built from the same architecture specs as the ONNX graph.

Layer order, padding, BatchNorm epsilon, dropout and the flatten order follow
the authors' Keras model, so the authors' weights load exactly and trained
weights go back to :func:`mesolive.models.onnx_graph.build_onnx` unchanged.

Flatten order: torch flattens (C, H, W); Keras flattened (H, W, C). The first
dense layer's weight is permuted on the way in and out (as the ONNX builder does).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mesolive.models.arch import BN_EPSILON, LEAKY_ALPHA, Arch, Conv, Inception
from mesolive.models.keras_h5 import BNWeights, ConvWeights, DenseWeights, MesoWeights

# Keras BatchNormalization momentum 0.99 = torch momentum 0.01.
BN_MOMENTUM = 0.01


def _conv(cin: int, spec: Conv) -> nn.Conv2d:
    pad = spec.dilation * (spec.kernel - 1) // 2  # Keras 'same', stride 1
    return nn.Conv2d(cin, spec.filters, spec.kernel, padding=pad, dilation=spec.dilation)


class _InceptionBlock(nn.Module):
    def __init__(self, cin: int, spec: Inception) -> None:
        super().__init__()
        specs = spec.convs()
        # Creation order a1, b1, b3, c1, c3, d1, d3 (ModuleList keeps it).
        self.convs = nn.ModuleList(
            [_conv(cin if s.kernel == 1 else specs[i - 1].filters, s) for i, s in enumerate(specs)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.convs
        a = torch.relu(c[0](x))
        b = torch.relu(c[2](torch.relu(c[1](x))))
        cc = torch.relu(c[4](torch.relu(c[3](x))))
        d = torch.relu(c[6](torch.relu(c[5](x))))
        return torch.cat([a, b, cc, d], dim=1)


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, spec: Conv) -> None:
        super().__init__()
        self.conv = _conv(cin, spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class MesoNetTorch(nn.Module):
    """Input (N, 3, 256, 256) float RGB in [0, 1]; output (N,) logits (positive: real)."""

    def __init__(self, arch: Arch, dropout: float = 0.5) -> None:
        super().__init__()
        self.arch = arch
        bodies: list[nn.Module] = []
        bns: list[nn.BatchNorm2d] = []
        pools: list[nn.MaxPool2d] = []
        cin = 3
        for stage in arch.stages:
            body = stage.body
            bodies.append(
                _InceptionBlock(cin, body) if isinstance(body, Inception) else _ConvBlock(cin, body)
            )
            bns.append(nn.BatchNorm2d(stage.out_channels, eps=BN_EPSILON, momentum=BN_MOMENTUM))
            pools.append(nn.MaxPool2d(stage.pool, stage.pool))
            cin = stage.out_channels
        self.bodies = nn.ModuleList(bodies)
        self.bns = nn.ModuleList(bns)
        self.pools = nn.ModuleList(pools)
        c, h, w = arch.feature_shape
        self.drop1 = nn.Dropout(dropout)
        self.dense1 = nn.Linear(c * h * w, arch.hidden)
        self.drop2 = nn.Dropout(dropout)
        self.dense2 = nn.Linear(arch.hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for body, bn, pool in zip(self.bodies, self.bns, self.pools, strict=True):
            x = pool(bn(body(x)))
        x = torch.flatten(x, 1)
        x = nn.functional.leaky_relu(self.dense1(self.drop1(x)), LEAKY_ALPHA)
        return self.dense2(self.drop2(x)).squeeze(1)

    def _conv_modules(self) -> list[nn.Conv2d]:
        convs: list[nn.Conv2d] = []
        for body in self.bodies:
            if isinstance(body, _InceptionBlock):
                convs.extend(body.convs)  # type: ignore[arg-type]
            else:
                convs.append(body.conv)  # type: ignore[union-attr]
        return convs

    @torch.no_grad()
    def load_meso_weights(self, w: MesoWeights) -> MesoNetTorch:
        """Copy Keras-layout weights in (HWIO kernels, NHWC flatten order)."""
        if w.arch.name != self.arch.name:
            raise ValueError(f"weights are {w.arch.name}, module is {self.arch.name}")
        for conv, cw in zip(self._conv_modules(), w.convs, strict=True):
            conv.weight.copy_(torch.from_numpy(cw.kernel.transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(cw.bias))
        for bn, bw in zip(self.bns, w.bns, strict=True):
            bn.weight.copy_(torch.from_numpy(bw.gamma))
            bn.bias.copy_(torch.from_numpy(bw.beta))
            bn.running_mean.copy_(torch.from_numpy(bw.mean))
            bn.running_var.copy_(torch.from_numpy(bw.var))
        c, h, wd = self.arch.feature_shape
        k1 = w.dense[0].kernel.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(c * h * wd, -1)
        self.dense1.weight.copy_(torch.from_numpy(k1.T.copy()))
        self.dense1.bias.copy_(torch.from_numpy(w.dense[0].bias))
        self.dense2.weight.copy_(torch.from_numpy(w.dense[1].kernel.T.copy()))
        self.dense2.bias.copy_(torch.from_numpy(w.dense[1].bias))
        return self

    @torch.no_grad()
    def to_meso_weights(self) -> MesoWeights:
        """The inverse of :meth:`load_meso_weights`: Keras layout, float32 numpy."""

        def f(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy().astype(np.float32)

        convs = tuple(
            ConvWeights(np.ascontiguousarray(f(c.weight).transpose(2, 3, 1, 0)), f(c.bias))
            for c in self._conv_modules()
        )
        bns = tuple(
            BNWeights(f(b.weight), f(b.bias), f(b.running_mean), f(b.running_var)) for b in self.bns
        )
        c, h, wd = self.arch.feature_shape
        k1 = (
            f(self.dense1.weight)
            .T.reshape(c, h, wd, -1)
            .transpose(1, 2, 0, 3)
            .reshape(c * h * wd, -1)
        )
        dense = (
            DenseWeights(np.ascontiguousarray(k1), f(self.dense1.bias)),
            DenseWeights(np.ascontiguousarray(f(self.dense2.weight).T), f(self.dense2.bias)),
        )
        return MesoWeights(self.arch, convs, bns, dense)
