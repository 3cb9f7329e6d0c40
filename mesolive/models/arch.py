"""The two MesoNet architectures as data, in the authors' layer creation order.

Afchar et al. (WIFS 2018) define Meso-4 and MesoInception-4 in Keras
(``classifiers.py`` of DariusAf/MesoNet). Their weights-only ``.h5`` files name
each layer by its *creation* index (``conv2d_5``, ``batch_normalization_5``…),
so the only reliable mapping from file to network is: the k-th convolution
created is the k-th ``conv2d_*`` by numeric suffix. The ``layer_names``
attribute lists graph order, which differs inside the inception blocks.

Every graph builder (the ONNX builder here, the torch trainer) walks these
specs, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

INPUT_SIZE = 256
"""Side of the square RGB face crop the networks read."""

BN_EPSILON = 1e-3
"""Keras' BatchNormalization default epsilon, used by the authors."""

LEAKY_ALPHA = 0.1
"""Slope of the LeakyReLU after the first dense layer."""


@dataclass(frozen=True)
class Conv:
    """A 'same'-padded, stride-1 convolution followed by ReLU."""

    filters: int
    kernel: int
    dilation: int = 1


@dataclass(frozen=True)
class Inception:
    """The authors' inception block: four branches concatenated on channels.

    Branch 1 is a 1×1 conv with ``a`` filters; branches 2-4 are a 1×1 conv
    followed by a 3×3 conv with dilation 1, 2 and 3 (``b``, ``c``, ``d`` filters).
    Creation order of the seven convolutions: a1, b1, b3, c1, c3, d1, d3.
    """

    a: int
    b: int
    c: int
    d: int

    @property
    def out_channels(self) -> int:
        return self.a + self.b + self.c + self.d

    def convs(self) -> list[Conv]:
        """The seven convolutions in creation order."""
        return [
            Conv(self.a, 1),
            Conv(self.b, 1),
            Conv(self.b, 3),
            Conv(self.c, 1),
            Conv(self.c, 3, dilation=2),
            Conv(self.d, 1),
            Conv(self.d, 3, dilation=3),
        ]


@dataclass(frozen=True)
class Stage:
    """A feature stage: conv or inception, then BatchNorm, then max-pool."""

    body: Conv | Inception
    pool: int

    @property
    def out_channels(self) -> int:
        if isinstance(self.body, Inception):
            return self.body.out_channels
        return self.body.filters

    @property
    def n_convs(self) -> int:
        return len(self.body.convs()) if isinstance(self.body, Inception) else 1


ArchName = Literal["meso4", "mesoinception4"]


@dataclass(frozen=True)
class Arch:
    """A MesoNet architecture: four stages, then Dense(16)+LeakyReLU, Dense(1)."""

    name: ArchName
    stages: tuple[Stage, ...]
    hidden: int = 16

    @property
    def n_convs(self) -> int:
        return sum(s.n_convs for s in self.stages)

    def side(self, stage: int) -> int:
        """Height (= width) of what stage ``stage`` reads; ``len(stages)``: the last output's."""
        side = INPUT_SIZE
        for s in self.stages[:stage]:
            side //= s.pool
        return side

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the last stage's output."""
        side = self.side(len(self.stages))
        return (self.stages[-1].out_channels, side, side)


MESO4 = Arch(
    "meso4",
    (
        Stage(Conv(8, 3), 2),
        Stage(Conv(8, 5), 2),
        Stage(Conv(16, 5), 2),
        Stage(Conv(16, 5), 4),
    ),
)

MESOINCEPTION4 = Arch(
    "mesoinception4",
    (
        Stage(Inception(1, 4, 4, 2), 2),
        Stage(Inception(2, 4, 4, 2), 2),
        Stage(Conv(16, 5), 2),
        Stage(Conv(16, 5), 4),
    ),
)

ARCHS: dict[str, Arch] = {a.name: a for a in (MESO4, MESOINCEPTION4)}
