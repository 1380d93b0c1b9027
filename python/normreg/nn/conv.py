"""The 2-d convolution layer (NCHW, PyTorch's weight layout)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _validation as V
from .. import functional as F
from ..functional.conv import conv_padding, only_one
from ..random import Generator, as_generator
from . import init
from ._weighted import WeightedLayer


class Conv2d(WeightedLayer):
    """2-d convolution (PyTorch's ``nn.Conv2d``, without groups and dilation) of
    (N, C, H, W) input, or unbatched (C, H, W).

    ``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
    groups=1, bias=True, padding_mode="zeros", device=None, dtype=np.float32,
    generator=None)``, PyTorch's arguments in its order (dilation and groups 1 only,
    padding_mode "zeros", device None or "cpu"): kernel_size, stride and padding an int or a
    pair, padding also "valid" or "same" (odd kernel sizes, stride 1);
    weight (out_channels, in_channels, kH, kW) (PyTorch's layout), bias (out_channels,).
    ``y[n, o] = bias[o] + sum_c weight[o, c] (cross-correlated with) x[n, c]`` with zero
    padding; see :func:`normreg.functional.conv2d`.

    Initialized as PyTorch does (:meth:`reset_parameters`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: V.IntPair,
        stride: V.IntPair = 1,
        padding: V.IntPair | str = 0,
        dilation: V.IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: npt.DTypeLike = np.float32,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.in_channels = V.integer(in_channels, "in_channels", where, low=1)
        self.out_channels = V.integer(out_channels, "out_channels", where, low=1)
        self.kernel_size = V.int_pair(kernel_size, "kernel_size", where, low=1)
        self.stride = V.int_pair(stride, "stride", where, low=1)
        self.padding = conv_padding(padding, self.kernel_size, self.stride, where)
        only_one(dilation, groups, where)
        V.choice(padding_mode, "padding_mode", where, ("zeros",))
        if device not in (None, "cpu"):
            raise ValueError(f"{where}: device must be None or 'cpu' (NumPy arrays), got {device!r}")
        weight_shape = (self.out_channels, self.in_channels) + self.kernel_size
        self._init_parameters(weight_shape, self.out_channels, bias, dtype, generator)

    def reset_parameters(self, generator: Generator | None = None) -> None:
        """PyTorch's default: ``init.kaiming_uniform_(weight, a=sqrt(5))``, i.e. U(-b, b) with
        ``b = gain * sqrt(3 / fan_in) = 1/sqrt(fan_in)`` (gain = sqrt(2 / (1 + 5)),
        fan_in = in_channels * kH * kW: ``init``'s fan of this (out, in, kH, kW) weight),
        and the bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Draws from ``generator``."""
        as_generator(generator, type(self).__name__)
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1.0 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def _forward(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        return F.conv2d(x, weight, bias, self.stride, self.padding)

    def _backward(
        self, dy: np.ndarray, x: np.ndarray, weight: np.ndarray, **grads: Any
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        return F.conv2d_backward(dy, x, weight, self.stride, self.padding, **grads)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s
