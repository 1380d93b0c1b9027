"""The dense layer: ``y = x @ weight + bias``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _validation as V
from .. import functional as F
from ..random import Generator, as_generator
from . import init
from ._weighted import WeightedLayer


class Linear(WeightedLayer):
    """``y = x @ weight + bias``; weight (in_features, out_features), bias (out_features,).

    Initialized as PyTorch does (:meth:`reset_parameters`): weight and bias uniform in
    ``(-1/sqrt(in_features), 1/sqrt(in_features))``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: npt.DTypeLike = np.float32,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.in_features = V.integer(in_features, "in_features", where, low=0)
        self.out_features = V.integer(out_features, "out_features", where, low=0)
        weight_shape = (self.in_features, self.out_features)
        self._init_parameters(weight_shape, self.out_features, bias, dtype, generator)

    def reset_parameters(self, generator: Generator | None = None) -> None:
        """PyTorch's default: ``init.kaiming_uniform_(weight, a=sqrt(5))``, i.e. U(-b, b) with
        ``b = gain * sqrt(3 / fan_in) = 1/sqrt(in_features)`` (gain = sqrt(2 / (1 + 5)),
        fan_in = in_features), and the bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        Draws from ``generator`` (default: normreg's default generator)."""
        as_generator(generator, type(self).__name__)  # TypeError naming it, even when nothing is drawn
        if self.weight.data.size:
            init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def _forward(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        return F.linear(x, weight, bias)

    def _backward(
        self, dy: np.ndarray, x: np.ndarray, weight: np.ndarray, **grads: Any
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        return F.linear_backward(dy, x, weight, **grads)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )
