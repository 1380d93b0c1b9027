"""The 2-d convolution layer (NCHW, PyTorch's weight layout)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _validation as V
from .. import functional as F
from ..random import Generator, as_generator
from . import init
from .parameter import Module, Parameter, data_of, grad_of, store_grad


class Conv2d(Module):
    """2-d convolution (PyTorch's ``nn.Conv2d``, without groups and dilation) of
    (N, C, H, W) input, or unbatched (C, H, W).

    ``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
    dtype=np.float32, generator=None)``: kernel_size, stride and padding an int or a pair;
    weight (out_channels, in_channels, kH, kW) (PyTorch's layout), bias (out_channels,).
    ``y[n, o] = bias[o] + sum_c weight[o, c] (cross-correlated with) x[n, c]`` with zero
    padding; see :func:`normreg.functional.conv2d`.

    Initialized as PyTorch does (:meth:`reset_parameters`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        bias: bool = True,
        dtype: npt.DTypeLike = np.float32,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.in_channels = V.integer(in_channels, "in_channels", where, low=1)
        self.out_channels = V.integer(out_channels, "out_channels", where, low=1)
        self.kernel_size = V.int_pair(kernel_size, "kernel_size", where, low=1)
        self.stride = V.int_pair(stride, "stride", where, low=1)
        self.padding = V.int_pair(padding, "padding", where, low=0)
        dt = V.float_dtype(dtype, where)
        self.weight = Parameter(np.empty((self.out_channels, self.in_channels) + self.kernel_size, dtype=dt))
        self.bias = Parameter(np.empty(self.out_channels, dtype=dt)) if bias else None
        self.reset_parameters(generator)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the parameters (and of the input and output)."""
        return self.weight.dtype

    def reset_parameters(self, generator: Generator | None = None) -> None:
        """PyTorch's default: ``kaiming_uniform_(weight, a=sqrt(5))`` with PyTorch's fan_in
        ``in_channels * kH * kW``, i.e. U(-b, b) with ``b = gain * sqrt(3 / fan_in) =
        1/sqrt(fan_in)`` (gain = sqrt(2 / (1 + 5))), and the bias from U(-b, b) with the same
        b. (The fan is given explicitly: ``init``'s fans read a weight in normreg's Linear
        layout (in, out, ...), the transpose of this one.) Draws from ``generator``."""
        as_generator(generator, type(self).__name__)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = init.calculate_gain("leaky_relu", math.sqrt(5)) * math.sqrt(3.0 / fan_in)
        init.uniform_(self.weight, -bound, bound, generator=generator)
        if self.bias is not None:
            init.uniform_(self.bias, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in), generator=generator)

    def forward(self, x: Any) -> np.ndarray:
        x = self._input(x, "x")
        y = F.conv2d(x, self.weight.data, data_of(self.bias), self.stride, self.padding)
        self.save_for_backward(x)
        return y

    #: backward takes ``input_grad=False`` (see :meth:`backward`)
    input_grad_optional = True

    def backward(self, dy: Any, *, input_grad: bool = True) -> np.ndarray | None:
        """Adds the parameter gradients into ``.grad`` and returns dx, or, with
        ``input_grad=False`` (the input is data: no gradient wanted), skips the product
        that computes dx and returns None (``Sequential.backward`` passes it on)."""
        (x,) = self.saved()
        dy = self._input(dy, "dy")
        dx, dweight, dbias = F.conv2d_backward(
            dy,
            x,
            self.weight.data,
            self.stride,
            self.padding,
            has_bias=self.bias is not None,
            dweight=self.weight.grad,
            dbias=grad_of(self.bias),
            need_dx=bool(input_grad),
        )
        store_grad(self.weight, dweight)
        store_grad(self.bias, dbias)
        return dx

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s
