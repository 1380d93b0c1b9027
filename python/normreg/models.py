"""Ready-made networks built from :mod:`normreg.nn` modules.

* :class:`MLP`: ``Linear -> norm -> ReLU -> Dropout`` per hidden layer, then a ``Linear``
  to the classes.
* :class:`MLPResNet`: the residual MLP of the CMU deep-learning-systems course (needle, hw2):
  ``Linear -> ReLU``, then residual blocks
  ``ReLU(x + norm(Linear(Dropout(ReLU(norm(Linear(x)))))))``, then a ``Linear`` to the classes.

Both are :class:`normreg.nn.Sequential` subclasses, so ``forward``, ``backward``,
``parameters()``, ``train()``/``eval()`` and ``state_dict()`` work as on any module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from . import _validation as V
from . import nn

__all__ = ["MLP", "MLPResNet", "ResidualBlock", "make_norm", "NORMS"]

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
