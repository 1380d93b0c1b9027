"""2-d convolution in NCHW: ``conv2d`` and its backward (im2col + GEMM kernels)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _C
from .. import _validation as V
from ._common import accumulator


def as_nchw(x: np.ndarray, name: str, where: str) -> tuple[np.ndarray, bool]:
    """x (N, C, H, W), or unbatched (C, H, W) as one sample -> (x4, unbatched)."""
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        return x[None], True
    raise ValueError(f"{where}: {name} must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {x.shape}")


def conv_padding(
    padding: Any, kernel: tuple[int, int], stride: tuple[int, int], where: str
) -> tuple[int, int]:
    """``padding`` as (ph, pw): an int or a pair >= 0, or PyTorch's strings: ``"valid"`` (no
    padding) and ``"same"`` (the output as large as the input: stride 1, each kernel size
    odd, padding k // 2 on both sides; an even size would need PyTorch's asymmetric padding,
    which is not built)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding != "same":
            raise ValueError(f"{where}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(
                f"{where}: padding='same' is not supported for strided convolutions (stride {stride})"
            )
        if kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
            raise ValueError(
                f"{where}: padding='same' with the even kernel size {kernel} needs more padding on one "
                "side than the other, which is not supported: pad x with numpy.pad and use padding=0"
            )
        return kernel[0] // 2, kernel[1] // 2
    return V.int_pair(padding, "padding", where, low=0)


def only_one(dilation: Any, groups: Any, where: str) -> None:
    """PyTorch's dilation and groups arguments, which take only their default 1 here."""
    if V.int_pair(dilation, "dilation", where, low=1) != (1, 1):
        raise ValueError(f"{where}: dilation other than 1 is not supported, got {dilation}")
    if V.integer(groups, "groups", where, low=1) != 1:
        raise ValueError(f"{where}: groups other than 1 is not supported, got {groups}")


def conv_weight(weight: np.ndarray, x4: np.ndarray, x_shape: tuple[int, ...], where: str) -> None:
    """``weight`` (out_channels, in_channels, kH, kW) with x's channels."""
    if weight.ndim != 4:
        raise ValueError(
            f"{where}: weight must be 4-D (out_channels, in_channels, kH, kW), got shape {weight.shape}"
        )
    if weight.shape[1] != x4.shape[1]:
        raise ValueError(
            f"{where}: weight {weight.shape} expects {weight.shape[1]} input channels, "
            f"x of shape {x_shape} has {x4.shape[1]}"
        )


def conv2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """2-d convolution (cross-correlation, PyTorch's ``F.conv2d``) in NCHW.

    x (N, C, H, W) or (C, H, W); weight (O, C, KH, KW) (PyTorch's layout); bias (O,) or
    None; stride and padding an int or a pair (zero padding on both sides; padding also
    ``"valid"`` or ``"same"``, see :func:`conv_padding`); dilation and groups as PyTorch's
    arguments, 1 only -> y (N, O, OH, OW), ``OH = (H + 2 padding - KH) // stride + 1``::

        y[n, o, i, j] = bias[o] + sum over c, kh, kw of
                        weight[o, c, kh, kw] * x[n, c, i*sh - ph + kh, j*sw - pw + kw]

    (x is 0 outside the image). The backward needs x and weight, which the caller has.
    """
    where = "conv2d"
    x = V.float_array(x, "x", where)
    weight = V.float_array(weight, "weight", where, x.dtype, "the dtype of x")
    bias = V.optional_float_array(bias, "bias", where, x.dtype, "the dtype of x")
    x4, unbatched = as_nchw(x, "x", where)
    sh, sw = V.int_pair(stride, "stride", where, low=1)
    only_one(dilation, groups, where)
    conv_weight(weight, x4, x.shape, where)
    ph, pw = conv_padding(padding, weight.shape[2:], (sh, sw), where)
    if bias is not None:
        V.check_shape(bias, "bias", where, (weight.shape[0],), "out_channels of weight")
    if out is not None:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"{where}: out must be a numpy.ndarray or None, got {type(out).__name__}")
        V.out_apart(out, where, x=x, weight=weight, bias=bias)
        out = out[None] if unbatched and out.ndim == 3 else out  # its shape is checked by the binding
    y = _C.conv2d_forward(x4, weight, bias, sh, sw, ph, pw, out)
    return y[0] if unbatched else y


def conv2d_backward(
    dy: Any,
    x: Any,
    weight: Any,
    stride: V.IntPair = 1,
    padding: V.IntPair = 0,
    *,
    has_bias: bool = True,
    need_dx: bool = True,
    dweight: np.ndarray | None = None,
    dbias: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d`.

    dy (N, O, OH, OW), x (N, C, H, W), weight (O, C, KH, KW) (or all unbatched), stride and
    padding as in the forward -> (dx like x or None (``need_dx=False``), dweight like
    weight, dbias (O,) or None when ``has_bias`` is false). ``dweight``/``dbias``, when
    given, are added to in place and returned.
    """
    where = "conv2d_backward"
    x = V.float_array(x, "x", where)
    dy = V.float_array(dy, "dy", where, x.dtype, "the dtype of x")
    weight = V.float_array(weight, "weight", where, x.dtype, "the dtype of x")
    x4, unbatched = as_nchw(x, "x", where)
    dy4, dy_unbatched = as_nchw(dy, "dy", where)
    if dy_unbatched != unbatched:
        raise ValueError(f"{where}: dy of shape {dy.shape} does not match x of shape {x.shape}")
    sh, sw = V.int_pair(stride, "stride", where, low=1)
    conv_weight(weight, x4, x.shape, where)
    ph, pw = conv_padding(padding, weight.shape[2:], (sh, sw), where)
    dweight = accumulator(dweight, "dweight", where, weight.shape, x.dtype)
    dbias = accumulator(dbias, "dbias", where, (weight.shape[0],), x.dtype) if has_bias else None
    dx = _C.conv2d_backward(dy4, x4, weight, sh, sw, ph, pw, dweight, dbias, bool(need_dx))
    if dx is not None and unbatched:
        dx = dx[0]
    return dx, dweight, dbias
