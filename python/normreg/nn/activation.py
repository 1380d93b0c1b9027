"""Layers without parameters that change values or shapes: ReLU, Flatten, Identity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _validation as V
from .. import functional as F
from .parameter import Module


class ReLU(Module):
    """``y = max(x, 0)``."""

    def forward(self, x: Any) -> np.ndarray:
        y = F.relu(x)
        self._ctx = y
        return y

    def backward(self, dy: Any) -> np.ndarray:
        (y,) = self._cached("_ctx")
        return F.relu_backward(dy, y)


class Flatten(Module):
    """Flatten dimensions ``start_dim`` to the last: (N, *rest) -> (N, prod(rest))."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = V.integer(start_dim, "start_dim", type(self).__name__)

    def forward(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if not 0 <= self.start_dim <= max(x.ndim - 1, 0):
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}) needs input with more dimensions, got {x.shape}"
            )
        self._ctx = x.shape
        return x.reshape(x.shape[: self.start_dim] + (-1,))

    def backward(self, dy: Any) -> np.ndarray:
        (shape,) = self._cached("_ctx")
        dy = np.asarray(dy)
        if dy.size != math.prod(shape):
            raise ValueError(f"Flatten.backward: dy of shape {dy.shape} does not match input {shape}")
        return dy.reshape(shape)


class Identity(Module):
    """``y = x``."""

    def forward(self, x: Any) -> Any:
        return x

    def backward(self, dy: Any) -> Any:
        return dy
