"""The dense layer: ``y = x @ weight + bias``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _memory
from .. import _validation as V
from .. import functional as F
from ..random import Generator, as_generator
from . import init
from .parameter import Module, Parameter, grad_of, store_grad

_ndarray = np.ndarray


class Linear(Module):
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
        dt = V.float_dtype(dtype, where)
        self.weight = Parameter(_memory.empty((self.in_features, self.out_features), dt, f"{where} weight"))
        self.bias = Parameter(_memory.empty((self.out_features,), dt, f"{where} bias")) if bias else None
        self.reset_parameters(generator)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the parameters (and of the input and output)."""
        return self.weight.dtype

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

    def forward(self, x: Any) -> np.ndarray:
        w = self.weight.data
        if type(x) is not _ndarray or x.dtype is not w.dtype:  # else F.linear checks the rest
            x = self._input(x, "x")
        y = F.linear(x, w, None if self.bias is None else self.bias.data)
        self.save_for_backward(x)
        return y

    __call__ = forward  # a leaf: saves last, calls no module (see Module.__call__)

    #: backward takes ``input_grad=False`` (see :meth:`backward`)
    input_grad_optional = True

    def backward(self, dy: Any, *, input_grad: bool = True) -> np.ndarray | None:
        """Adds the parameter gradients into ``.grad`` and returns dx, or, with
        ``input_grad=False`` (the input is data: no gradient wanted), skips the product
        that computes dx and returns None (``Sequential.backward`` passes it on)."""
        (x,) = self.saved()
        if type(dy) is not _ndarray or dy.dtype is not x.dtype:  # else F.linear_backward checks
            dy = self._input(dy, "dy")
        dx, dweight, dbias = F.linear_backward(
            dy,
            x,
            self.weight.data,
            has_bias=self.bias is not None,
            dweight=self.weight.grad,
            dbias=grad_of(self.bias),
            need_dx=bool(input_grad),
        )
        store_grad(self.weight, dweight)
        store_grad(self.bias, dbias)
        return dx

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )
