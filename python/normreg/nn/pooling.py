"""2-d pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (no parameters, any float dtype)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V
from .. import functional as F
from .parameter import Module


class MaxPool2d(Module):
    """Max pooling of (N, C, H, W) or (C, H, W) input (PyTorch's ``nn.MaxPool2d``):
    ``MaxPool2d(kernel_size, stride=None, padding=0)``, each an int or a pair; stride
    defaults to kernel_size; padding at most half the kernel (padded positions never win).
    The gradient goes to each window's maximum (the first one in row-major order on a tie,
    as PyTorch's CPU kernel)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        V.pool_window(kernel_size, stride, padding, type(self).__name__)  # checked now, not at the first call
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x: Any) -> np.ndarray:
        y, idx = F.max_pool2d(x, self.kernel_size, self.stride, self.padding)
        self.save_for_backward(idx, np.shape(x))
        return y

    def backward(self, dy: Any) -> np.ndarray:
        idx, shape = self.saved()
        return F.max_pool2d_backward(dy, idx, shape)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling of (N, C, H, W) or (C, H, W) input (PyTorch's ``nn.AvgPool2d``):
    ``AvgPool2d(kernel_size, stride=None, padding=0, count_include_pad=True)``; each window
    is divided by ``kH * kW`` (the zero padding counts) or, with
    ``count_include_pad=False``, by its number of positions inside the image."""

    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, count_include_pad: bool = True
    ) -> None:
        super().__init__()
        where = type(self).__name__
        V.pool_window(kernel_size, stride, padding, where)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.count_include_pad = V.boolean(count_include_pad, "count_include_pad", where)

    def forward(self, x: Any) -> np.ndarray:
        y = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)
        self.save_for_backward(np.shape(x))
        return y

    def backward(self, dy: Any) -> np.ndarray:
        (shape,) = self.saved()
        return F.avg_pool2d_backward(
            dy, shape, self.kernel_size, self.stride, self.padding, self.count_include_pad
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Adaptive average pooling to ``output_size`` (PyTorch's ``nn.AdaptiveAvgPool2d``): an
    int or a pair (None keeps that input size); ``AdaptiveAvgPool2d(1)`` is global average
    pooling, (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        V.output_size_pair(output_size, type(self).__name__)
        if isinstance(output_size, list):
            output_size = tuple(output_size)
        self.output_size = output_size

    def forward(self, x: Any) -> np.ndarray:
        y = F.adaptive_avg_pool2d(x, self.output_size)
        self.save_for_backward(np.shape(x))
        return y

    def backward(self, dy: Any) -> np.ndarray:
        (shape,) = self.saved()
        return F.adaptive_avg_pool2d_backward(dy, shape)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
