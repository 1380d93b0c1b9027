"""Ready-made networks built from :mod:`normreg.nn` modules.

* :class:`MLP`: ``Linear -> norm -> ReLU -> Dropout`` per hidden layer, then a ``Linear``
  to the classes.
* :class:`MLPResNet`: the residual MLP of the CMU deep-learning-systems course (needle, hw2):
  ``Linear -> ReLU``, then residual blocks
  ``ReLU(x + norm(Linear(Dropout(ReLU(norm(Linear(x)))))))``, then a ``Linear`` to the classes.
* :class:`CNN`: ``Conv2d 3x3 -> norm -> ReLU`` blocks with max pooling between stages,
  global average pooling and a ``Linear`` to the classes.

All are :class:`normreg.nn.Sequential` subclasses, so ``forward``, ``backward``,
``parameters()``, ``train()``/``eval()`` and ``state_dict()`` work as on any module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from . import _validation as V
from . import nn

__all__ = ["MLP", "MLPResNet", "ResidualBlock", "make_norm", "NORMS", "CNN", "make_norm2d", "NORMS_2D"]

#: The names ``norm=`` accepts (None and "none" mean no normalization).
NORMS = ("batch", "layer", "none")


def make_norm(norm: str | None, features: int, dtype: npt.DTypeLike = np.float32) -> nn.Module:
    """A normalization module over ``features``: ``"batch"`` -> BatchNorm1d, ``"layer"`` ->
    LayerNorm, ``None``/``"none"`` -> Identity."""
    if norm is None or norm == "none":
        return nn.Identity()
    if norm == "batch":
        return nn.BatchNorm1d(features, dtype=dtype)
    if norm == "layer":
        return nn.LayerNorm(features, dtype=dtype)
    raise ValueError(f"norm must be 'batch', 'layer' or None, got {norm!r}")


def _dropout_p(dropout: Any, where: str) -> float:
    return V.real(dropout, "dropout", where, low=0.0, high=1.0, high_open=True)


def _widths(hidden: int | Iterable[int], depth: int | None) -> list[int]:
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        depth = V.integer(1 if depth is None else depth, "depth", "MLP", low=0)
        widths = [int(hidden)] * depth
    else:
        if depth is not None:
            raise ValueError("MLP: depth is only used with an int hidden width, not with a list of widths")
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise TypeError(f"MLP: hidden must be an int or a list of ints, got {type(hidden).__name__}")
        hidden = list(cast(Iterable[int], hidden))
        if any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) for h in hidden):
            raise TypeError(f"MLP: hidden must be an int or a list of ints, got {hidden!r}")
        widths = [int(h) for h in hidden]
    if any(w < 1 for w in widths):
        raise ValueError(f"MLP: hidden widths must be positive, got {widths}")
    return widths


class MLP(nn.Sequential):
    """A multilayer perceptron for classification.

    ``MLP(in_features, hidden, num_classes, norm='batch', dropout=0.0, depth=None,
    dtype=np.float32)``: ``hidden`` is either a list of widths (``[1024, 512, 256]``) or one
    width repeated ``depth`` times (default 1). Every hidden layer is ``Linear -> norm ->
    ReLU -> Dropout(dropout)`` (the norm is BatchNorm1d, LayerNorm or nothing, and the dropout
    is left out when ``dropout=0``); a last ``Linear`` gives the ``num_classes`` logits.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int | Iterable[int],
        num_classes: int,
        norm: str | None = "batch",
        dropout: float = 0.0,
        depth: int | None = None,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        self.widths = _widths(hidden, depth)
        self.norm = None if norm == "none" else norm
        self.dropout = _dropout_p(dropout, "MLP")
        make_norm(self.norm, 1)  # validates norm before anything is built
        layers: list[nn.Module] = []
        d = in_features
        for w in self.widths:
            layers += [nn.Linear(d, w, dtype=dtype), make_norm(self.norm, w, dtype), nn.ReLU()]
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            d = w
        layers.append(nn.Linear(d, num_classes, dtype=dtype))
        super().__init__(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.in_features, self.num_classes = in_features, num_classes


class ResidualBlock(nn.Sequential):
    """``ReLU(x + norm(Linear(Dropout(ReLU(norm(Linear(x)))))))``: dim -> hidden_dim -> dim."""

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        norm: str | None = "batch",
        dropout: float = 0.1,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        body: list[nn.Module] = [
            nn.Linear(dim, hidden_dim, dtype=dtype),
            make_norm(norm, hidden_dim, dtype),
            nn.ReLU(),
        ]
        if _dropout_p(dropout, "ResidualBlock") > 0:
            body.append(nn.Dropout(dropout))
        body += [nn.Linear(hidden_dim, dim, dtype=dtype), make_norm(norm, dim, dtype)]
        body = [m for m in body if not isinstance(m, nn.Identity)]
        super().__init__(nn.Residual(nn.Sequential(*body)), nn.ReLU())


class MLPResNet(nn.Sequential):
    """The residual MLP of the deep-learning-systems course (needle hw2).

    ``MLPResNet(in_features, hidden=100, num_classes=10, num_blocks=3, norm='batch',
    dropout=0.1, dtype=np.float32)``: ``Linear(in, hidden) -> ReLU``, ``num_blocks``
    :class:`ResidualBlock` (hidden -> hidden // 2 -> hidden), then ``Linear(hidden, classes)``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int = 100,
        num_classes: int = 10,
        num_blocks: int = 3,
        norm: str | None = "batch",
        dropout: float = 0.1,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        where = "MLPResNet"
        hidden = V.integer(hidden, "hidden", where, low=2)
        num_blocks = V.integer(num_blocks, "num_blocks", where, low=0)
        self.norm = None if norm == "none" else norm
        self.dropout = _dropout_p(dropout, where)
        make_norm(self.norm, 1)
        blocks = [
            ResidualBlock(hidden, hidden // 2, self.norm, self.dropout, dtype) for _ in range(num_blocks)
        ]
        super().__init__(
            nn.Linear(in_features, hidden, dtype=dtype),
            nn.ReLU(),
            *blocks,
            nn.Linear(hidden, num_classes, dtype=dtype),
        )
        self.in_features, self.num_classes = in_features, num_classes


# ---- convolutional network -----------------------------------------------------------------

#: The names ``CNN(norm=...)`` accepts (None and "none" mean no normalization).
NORMS_2D = ("batch", "group", "layer", "instance", "none")


def make_norm2d(
    norm: str | None, channels: int, dtype: npt.DTypeLike = np.float32, groups: int = 8
) -> nn.Module:
    """A normalization of (N, C, H, W) feature maps with ``channels`` channels:

    * ``"batch"``: BatchNorm2d (statistics per channel over the batch and the positions);
    * ``"group"``: GroupNorm with ``min(groups, channels)`` groups: one group per channel up to
      ``groups`` channels (6 channels: GroupNorm(6, 6)); more channels must be a multiple of
      ``groups`` (ValueError naming the channels otherwise);
    * ``"layer"``: GroupNorm(1, C), i.e. LayerNorm over (C, H, W) with a per-channel affine
      transform. The statistics are those of ``nn.LayerNorm((C, H, W))``; the affine
      parameters are per channel (as every other norm here) instead of one per position,
      so the layer does not depend on the image size and a feature map's channels keep one
      scale each (the GroupNorm paper's LN baseline for convolutional networks);
    * ``"instance"``: InstanceNorm2d with affine parameters (statistics per sample and
      channel over the positions);
    * ``None``/``"none"``: Identity.
    """
    if norm is None or norm == "none":
        return nn.Identity()
    if norm == "batch":
        return nn.BatchNorm2d(channels, dtype=dtype)
    if norm == "group":
        if channels > groups and channels % groups:
            raise ValueError(
                f"norm='group' uses GroupNorm(min({groups}, C), C): {channels} channels are more than "
                f"{groups} and not a multiple of {groups}"
            )
        return nn.GroupNorm(min(groups, channels), channels, dtype=dtype)
    if norm == "layer":
        return nn.GroupNorm(1, channels, dtype=dtype)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True, dtype=dtype)
    raise ValueError(f"norm must be one of {NORMS_2D} or None, got {norm!r}")


class CNN(nn.Sequential):
    """A convolutional network for small images.

    ``CNN(in_channels=1, num_classes=10, channels=(32, 64, 128), norm='batch',
    input_shape=None, blocks=1, dtype=np.float32)``: one stage per entry of ``channels``, each
    ``blocks`` ``Conv2d(3x3, padding 1) -> norm -> ReLU`` blocks (the first one changes the
    number of channels), with ``MaxPool2d(2)`` between stages; then global average pooling
    (``AdaptiveAvgPool2d(1)``), ``Flatten`` and a ``Linear`` to the ``num_classes`` logits.
    ``norm`` is one of :data:`NORMS_2D` (see :func:`make_norm2d`); the convolutions have no
    bias before a batch or instance norm, which would subtract it. ``input_shape=(C, H, W)``
    puts an ``Unflatten`` first, so the network takes flat rows (N, C*H*W), as the
    Fashion-MNIST loader gives them; then the pools must leave at least 1x1 (at most 5 stages
    for 28x28 images), else ValueError.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        channels: int | Iterable[int] = (32, 64, 128),
        norm: str | None = "batch",
        input_shape: tuple[int, int, int] | None = None,
        blocks: int = 1,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        where = "CNN"
        in_channels = V.integer(in_channels, "in_channels", where, low=1)
        if isinstance(channels, (int, np.integer)) and not isinstance(channels, bool):
            channels = (int(channels),)
        if isinstance(channels, (bool, str, bytes)) or not isinstance(channels, Iterable):
            raise TypeError(
                f"{where}: channels must be an int or a list of ints, got {type(channels).__name__}"
            )
        self.channels = tuple(V.integer(c, "channels", where, low=1) for c in channels)
        if not self.channels:
            raise ValueError(f"{where}: channels must name at least one stage")
        self.norm = None if norm == "none" else norm
        make_norm2d(self.norm, 8)  # validates norm before anything is built
        self.blocks = V.integer(blocks, "blocks", where, low=1)
        if self.norm == "group":
            for c in self.channels:
                try:
                    make_norm2d("group", c)
                except ValueError as exc:
                    raise ValueError(f"{where}: channels {self.channels}: {exc}") from None
        layers: list[nn.Module] = []
        if input_shape is not None:
            input_shape = cast("tuple[int, int, int]", tuple(input_shape))
            if len(input_shape) != 3 or input_shape[0] != in_channels:
                raise ValueError(
                    f"{where}: input_shape must be (in_channels, H, W) = ({in_channels}, H, W), "
                    f"got {input_shape}"
                )
            layers.append(nn.Unflatten(1, input_shape))
            pools = len(self.channels) - 1
            smallest = min(input_shape[1:])
            if smallest >> pools < 1:  # each MaxPool2d(2) halves the size, rounding down
                raise ValueError(
                    f"{where}: channels has {len(self.channels)} stages, whose {pools} MaxPool2d(2) "
                    f"reduce input_shape's {input_shape[1]}x{input_shape[2]} to nothing: at most "
                    f"{smallest.bit_length()} stages for it"
                )
        c_in = in_channels
        bias = self.norm not in ("batch", "instance")
        for i, c in enumerate(self.channels):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(self.blocks):
                layers += [
                    nn.Conv2d(c_in, c, 3, padding=1, bias=bias, dtype=dtype),
                    make_norm2d(self.norm, c, dtype),
                    nn.ReLU(),
                ]
                c_in = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes, dtype=dtype)]
        super().__init__(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.in_channels, self.num_classes, self.input_shape = in_channels, num_classes, input_shape
