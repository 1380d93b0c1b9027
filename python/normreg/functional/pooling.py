"""2-d pooling in NCHW: max, average and adaptive average, and their backwards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _C
from .. import _validation as V
from .conv import as_nchw


def _input_hw(input_shape: Any, dy4: np.ndarray, unbatched: bool, where: str) -> tuple[int, int]:
    """(H, W) from ``input_shape`` (the shape of the pooling's input), checked against dy."""
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)):
        raise TypeError(
            f"{where}: input_shape must be a tuple of ints (the shape of x), got {type(input_shape).__name__}"
        )
    shape = tuple(V.integer(d, "input_shape", where, low=0) for d in input_shape)
    expect = dy4.shape[1:2] if unbatched else dy4.shape[:2]
    if len(shape) != (3 if unbatched else 4) or shape[: len(expect)] != expect:
        dy_shape = dy4.shape[1:] if unbatched else dy4.shape
        raise ValueError(f"{where}: input_shape {shape} does not match dy of shape {dy_shape}")
    return shape[-2], shape[-1]


def _out4(out: Any, unbatched: bool, x: np.ndarray, where: str) -> Any:
    """``out=`` for the 4-D call (the binding checks it), refused when it overlaps x."""
    V.out_apart(out, where, x=x)
    return out[None] if unbatched and isinstance(out, np.ndarray) and out.ndim == 3 else out


def _grad_out(
    out: Any, dy4: np.ndarray, hw: tuple[int, int], unbatched: bool, where: str
) -> np.ndarray | None:
    """``out=`` of a backward, checked against the input's shape and refused when it overlaps
    dy."""
    if out is None:
        return None
    shape = (dy4.shape[0], dy4.shape[1]) + hw
    out = V.out_array(out, where, shape[1:] if unbatched else shape, dy4.dtype)
    V.out_apart(out, where, dy=dy4)
    return out[None] if unbatched else out


def _avg_window(
    kernel_size: V.IntPair,
    stride: Any,
    padding: V.IntPair,
    ceil_mode: Any,
    count_include_pad: Any,
    divisor_override: Any,
    where: str,
) -> tuple[int, int, int, int, int, int, bool, bool, int]:
    """Average pooling's window arguments as the kernels take them: (kH, kW, sH, sW, pH, pW,
    ceil_mode, count_include_pad, divisor_override or 0)."""
    return V.pool_window(kernel_size, stride, padding, ceil_mode, where) + (
        V.boolean(count_include_pad, "count_include_pad", where),
        V.divisor_override(divisor_override, where),
    )


def max_pool2d(
    x: Any,
    kernel_size: V.IntPair,
    stride: V.IntPair | None = None,
    padding: V.IntPair = 0,
    dilation: V.IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max pooling (PyTorch's ``F.max_pool2d``, same arguments in the same order).

    x (N, C, H, W) or (C, H, W); kernel_size, stride (default: kernel_size) and padding
    (at most half the kernel; padded positions never win) an int or a pair
    -> y (N, C, OH, OW), or ``(y, indices)`` with ``return_indices=True``: ``indices``
    (int64, y's shape) holds the flat position ``h * W + w`` of each maximum in its plane,
    which :func:`max_pool2d_backward` takes. ``OH = floor((H + 2 pH - kH) / sH) + 1``, or
    with ``ceil_mode=True`` rounded up as long as the last window starts inside the image or
    its left padding (PyTorch's rule); likewise OW. ``dilation`` must be 1 (ValueError
    otherwise). With ties the first position in row-major order wins (-0.0 and +0.0 tie);
    NaN wins over any number, a later NaN over an earlier one (as PyTorch's CPU kernel).
    Planes of more than 2**31 - 1 values are refused (ValueError).
    """
    where = "max_pool2d"
    x = V.float_array(x, "x", where)
    x4, unbatched = as_nchw(x, "x", where)
    window = V.pool_window(kernel_size, stride, padding, ceil_mode, where)
    V.pool_dilation(dilation, where)
    indices = V.boolean(return_indices, "return_indices", where)
    y, idx = _C.max_pool2d_forward(x4, *window, _out4(out, unbatched, x4, where))
    if unbatched:
        y, idx = y[0], idx[0]
    return (y, idx) if indices else y


def max_pool2d_backward(
    dy: Any, indices: Any, input_shape: Sequence[int], *, out: np.ndarray | None = None
) -> np.ndarray:
    """Gradient of :func:`max_pool2d`: dy added at the position of each window's maximum.

    dy and indices (from the forward) of y's shape (a dy of another shape is a ValueError
    naming dy); input_shape the shape of x -> dx of shape input_shape.
    """
    where = "max_pool2d_backward"
    dy = V.float_array(dy, "dy", where)
    dy4, unbatched = as_nchw(dy, "dy", where)
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
        raise TypeError(f"{where}: indices must be the integer array returned by max_pool2d")
    V.check_shape(dy, "dy", where, indices.shape, "the shape of indices: max_pool2d's output")
    idx4 = np.require(indices, np.int64, ("C", "A")).reshape(dy4.shape)
    hw = _input_hw(input_shape, dy4, unbatched, where)
    V.out_apart(out, where, indices=idx4)
    dx = _C.max_pool2d_backward(dy4, idx4, hw[0], hw[1], _grad_out(out, dy4, hw, unbatched, where))
    return dx[0] if unbatched else dx


def avg_pool2d(
    x: Any,
    kernel_size: V.IntPair,
    stride: V.IntPair | None = None,
    padding: V.IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Average pooling (PyTorch's ``F.avg_pool2d``, same arguments in the same order).

    x (N, C, H, W) or (C, H, W); kernel_size, stride (default: kernel_size) and padding
    (at most half the kernel) an int or a pair; ``ceil_mode`` as :func:`max_pool2d`
    -> y (N, C, OH, OW): each window's sum over the image divided by ``divisor_override``
    when given, else by the window's size within the padded input (``count_include_pad=True``:
    ``kH * kW`` but for a ``ceil_mode`` window that reaches past the padding) or by its
    number of positions inside the image (``count_include_pad=False``).
    """
    where = "avg_pool2d"
    x = V.float_array(x, "x", where)
    x4, unbatched = as_nchw(x, "x", where)
    window = _avg_window(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, where)
    y = _C.avg_pool2d_forward(x4, *window, _out4(out, unbatched, x4, where))
    return y[0] if unbatched else y


def avg_pool2d_backward(
    dy: Any,
    input_shape: Sequence[int],
    kernel_size: V.IntPair,
    stride: V.IntPair | None = None,
    padding: V.IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`avg_pool2d` (same window arguments): each dy divided as in the
    forward and added over its window. -> dx of shape input_shape."""
    where = "avg_pool2d_backward"
    dy = V.float_array(dy, "dy", where)
    dy4, unbatched = as_nchw(dy, "dy", where)
    window = _avg_window(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, where)
    hw = _input_hw(input_shape, dy4, unbatched, where)
    dx = _C.avg_pool2d_backward(dy4, hw[0], hw[1], *window, _grad_out(out, dy4, hw, unbatched, where))
    return dx[0] if unbatched else dx


def adaptive_avg_pool2d(x: Any, output_size: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """Adaptive average pooling (PyTorch's ``F.adaptive_avg_pool2d``) to ``output_size``.

    x (N, C, H, W) or (C, H, W) -> y (N, C, OH, OW): output ``i`` along an axis of size
    ``S`` averages positions ``floor(i S / OH) .. ceil((i + 1) S / OH) - 1``.
    ``output_size=1`` is global average pooling.
    """
    where = "adaptive_avg_pool2d"
    x = V.float_array(x, "x", where)
    x4, unbatched = as_nchw(x, "x", where)
    size = V.output_size_pair(output_size, where)
    oh, ow = (x4.shape[2 + i] if v is None else v for i, v in enumerate(size))
    y = _C.adaptive_avg_pool2d_forward(x4, oh, ow, _out4(out, unbatched, x4, where))
    return y[0] if unbatched else y


def adaptive_avg_pool2d_backward(
    dy: Any, input_shape: Sequence[int], *, out: np.ndarray | None = None
) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool2d` (the output size is dy's): each dy divided by
    its window's size and added over the window. -> dx of shape input_shape."""
    where = "adaptive_avg_pool2d_backward"
    dy = V.float_array(dy, "dy", where)
    dy4, unbatched = as_nchw(dy, "dy", where)
    hw = _input_hw(input_shape, dy4, unbatched, where)
    dx = _C.adaptive_avg_pool2d_backward(dy4, hw[0], hw[1], _grad_out(out, dy4, hw, unbatched, where))
    return dx[0] if unbatched else dx
