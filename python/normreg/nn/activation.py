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
        self.save_for_backward(y)
        return y

    def backward(self, dy: Any) -> np.ndarray:
        (y,) = self.saved()
        return F.relu_backward(dy, y)


class Flatten(Module):
    """Flatten dimensions ``start_dim`` to the last: (N, *rest) -> (N, prod(rest))."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = V.integer(start_dim, "start_dim", type(self).__name__)

    def forward(self, x: Any) -> np.ndarray:
        x = V.array(x, "x", type(self).__name__)
        if not 0 <= self.start_dim <= max(x.ndim - 1, 0):
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}) needs input with more dimensions, got {x.shape}"
            )
        self.save_for_backward(x.shape)
        return x.reshape(x.shape[: self.start_dim] + (-1,))

    def backward(self, dy: Any) -> np.ndarray:
        (shape,) = self.saved()
        dy = V.array(dy, "dy", type(self).__name__)
        if dy.size != math.prod(shape):
            raise ValueError(f"Flatten.backward: dy of shape {dy.shape} does not match input {shape}")
        return dy.reshape(shape)


class Identity(Module):
    """``y = x``."""

    def forward(self, x: Any) -> Any:
        self.save_for_backward()
        return x

    def backward(self, dy: Any) -> Any:
        self.saved()
        return dy
