"""2-d pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (no parameters, any float dtype)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V
from .. import functional as F
from .activation import check_dy, output_like
from .parameter import Module


class MaxPool2d(Module):
    """Max pooling of (N, C, H, W) or (C, H, W) input (PyTorch's ``nn.MaxPool2d``, same
    arguments in the same order): ``MaxPool2d(kernel_size, stride=None, padding=0,
    dilation=1, return_indices=False, ceil_mode=False)``; sizes an int or a pair; stride
    defaults to kernel_size; padding at most half the kernel (padded positions never win);
    ``dilation`` must be 1; ``ceil_mode`` rounds the output size up as
    :func:`normreg.functional.max_pool2d`. The forward returns y, or ``(y, indices)`` with
    ``return_indices=True``. The gradient goes to each window's maximum (the first one in
    row-major order on a tie, as PyTorch's CPU kernel)."""

    def __init__(
        self,
        kernel_size: V.IntPair,
        stride: V.IntPair | None = None,
        padding: V.IntPair = 0,
        dilation: V.IntPair = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        V.pool_window(kernel_size, stride, padding, ceil_mode, where)  # checked now, not at the first call
        V.pool_dilation(dilation, where)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.dilation = dilation
        self.return_indices = V.boolean(return_indices, "return_indices", where)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: Any) -> Any:
        y, idx = F.max_pool2d(x, self.kernel_size, self.stride, self.padding, 1, self.ceil_mode, True)
        self.save_for_backward(idx, np.shape(x), output_like(y))
        # the indices handed out are the caller's: a copy, so changing them cannot change
        # the backward (PyTorch's would refuse a saved tensor changed in place)
        return (y, idx.copy()) if self.return_indices else y

    def backward(self, dy: Any) -> np.ndarray:
        idx, shape, like = self.saved()
        return F.max_pool2d_backward(check_dy(dy, like, type(self).__name__), idx, shape)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """Average pooling of (N, C, H, W) or (C, H, W) input (PyTorch's ``nn.AvgPool2d``, same
    arguments in the same order): ``AvgPool2d(kernel_size, stride=None, padding=0,
    ceil_mode=False, count_include_pad=True, divisor_override=None)``; each window is divided
    by ``divisor_override`` when given, else by its size within the padded input (the zero
    padding counts) or, with ``count_include_pad=False``, by its number of positions inside
    the image; see :func:`normreg.functional.avg_pool2d`."""

    def __init__(
        self,
        kernel_size: V.IntPair,
        stride: V.IntPair | None = None,
        padding: V.IntPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        V.pool_window(kernel_size, stride, padding, ceil_mode, where)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = V.boolean(count_include_pad, "count_include_pad", where)
        V.divisor_override(divisor_override, where)
        self.divisor_override = divisor_override

    def _window(self) -> tuple[Any, ...]:
        """The window arguments of F.avg_pool2d and its backward, in their order."""
        return (
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def forward(self, x: Any) -> np.ndarray:
        y = F.avg_pool2d(x, *self._window())
        self.save_for_backward(np.shape(x), output_like(y))
        return y

    def backward(self, dy: Any) -> np.ndarray:
        shape, like = self.saved()
        return F.avg_pool2d_backward(check_dy(dy, like, type(self).__name__), shape, *self._window())

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
        self.save_for_backward(np.shape(x), output_like(y))
        return y

    def backward(self, dy: Any) -> np.ndarray:
        shape, like = self.saved()
        return F.adaptive_avg_pool2d_backward(check_dy(dy, like, type(self).__name__), shape)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
