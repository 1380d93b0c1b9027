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


def _out4(out: Any, unbatched: bool) -> Any:
    """``out=`` for the 4-D call (the binding checks it)."""
    return out[None] if unbatched and isinstance(out, np.ndarray) and out.ndim == 3 else out


def _grad_out(
    out: Any, dy4: np.ndarray, hw: tuple[int, int], unbatched: bool, where: str
) -> np.ndarray | None:
    """``out=`` of a backward, checked against the input's shape."""
    if out is None:
        return None
    shape = (dy4.shape[0], dy4.shape[1]) + hw
    out = V.out_array(out, where, shape[1:] if unbatched else shape, dy4.dtype)
    return out[None] if unbatched else out


def _avg_window(
    kernel_size: Any, stride: Any, padding: Any, count_include_pad: Any, where: str
) -> tuple[int, int, int, int, int, int, bool]:
    """Average pooling's window arguments as the kernels take them: (kH, kW, sH, sW, pH, pW,
    count_include_pad)."""
    return V.pool_window(kernel_size, stride, padding, where) + (
        V.boolean(count_include_pad, "count_include_pad", where),
    )


def max_pool2d(
    x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, *, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling (PyTorch's ``F.max_pool2d`` with ``return_indices=True``).

    x (N, C, H, W) or (C, H, W); kernel_size, stride (default: kernel_size) and padding
    (at most half the kernel; padded positions never win) an int or a pair
    -> (y (N, C, OH, OW), indices): ``indices`` (int64, y's shape) holds the flat position
    ``h * W + w`` of each maximum in its plane, which :func:`max_pool2d_backward` takes.
    With ties the first position in row-major order wins (-0.0 and +0.0 tie); NaN wins
    over any number, a later NaN over an earlier one (as PyTorch's CPU kernel). Planes of
    more than 2**31 - 1 values are refused (ValueError).
    """
    where = "max_pool2d"
    x = V.float_array(x, "x", where)
    x4, unbatched = as_nchw(x, "x", where)
    kh, kw, sh, sw, ph, pw = V.pool_window(kernel_size, stride, padding, where)
    y, idx = _C.max_pool2d_forward(x4, kh, kw, sh, sw, ph, pw, _out4(out, unbatched))
    return (y[0], idx[0]) if unbatched else (y, idx)


def max_pool2d_backward(
    dy: Any, indices: Any, input_shape: Sequence[int], *, out: np.ndarray | None = None
) -> np.ndarray:
    """Gradient of :func:`max_pool2d`: dy added at the position of each window's maximum.

    dy and indices (from the forward) of y's shape; input_shape the shape of x
    -> dx of shape input_shape.
    """
    where = "max_pool2d_backward"
    dy = V.float_array(dy, "dy", where)
    dy4, unbatched = as_nchw(dy, "dy", where)
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
        raise TypeError(f"{where}: indices must be the integer array returned by max_pool2d")
    V.check_shape(indices, "indices", where, dy.shape, "the shape of dy")
    idx4 = np.require(indices, np.int64, ("C", "A")).reshape(dy4.shape)
    hw = _input_hw(input_shape, dy4, unbatched, where)
    dx = _C.max_pool2d_backward(dy4, idx4, hw[0], hw[1], _grad_out(out, dy4, hw, unbatched, where))
    return dx[0] if unbatched else dx


def avg_pool2d(
    x: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    count_include_pad: bool = True,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Average pooling (PyTorch's ``F.avg_pool2d``).

    x (N, C, H, W) or (C, H, W); kernel_size, stride (default: kernel_size) and padding
    (at most half the kernel) an int or a pair -> y (N, C, OH, OW): each window's sum over
    the image divided by ``kH * kW`` (``count_include_pad=True``: the zero padding counts)
    or by its number of positions inside the image.
    """
    where = "avg_pool2d"
    x = V.float_array(x, "x", where)
    x4, unbatched = as_nchw(x, "x", where)
    window = _avg_window(kernel_size, stride, padding, count_include_pad, where)
    y = _C.avg_pool2d_forward(x4, *window, _out4(out, unbatched))
    return y[0] if unbatched else y


def avg_pool2d_backward(
    dy: Any,
    input_shape: Sequence[int],
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    count_include_pad: bool = True,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`avg_pool2d` (same window arguments): each dy divided as in the
    forward and added over its window. -> dx of shape input_shape."""
    where = "avg_pool2d_backward"
    dy = V.float_array(dy, "dy", where)
    dy4, unbatched = as_nchw(dy, "dy", where)
    window = _avg_window(kernel_size, stride, padding, count_include_pad, where)
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
    y = _C.adaptive_avg_pool2d_forward(x4, oh, ow, _out4(out, unbatched))
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
