"""Linear layer: ``y = x @ weight + bias``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _C
from .. import _validation as V
from ._common import accumulator

# Bound once: the hot path of small layers, where each lookup is a visible part of a call.
_ndarray = np.ndarray
_linear_forward = _C.linear_forward
_linear_backward = _C.linear_backward
_linear_grads = _C.linear_grads


def linear(x: Any, weight: Any, bias: Any = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """``y = x @ weight + bias``.

    x (..., in_features), weight (in_features, out_features), bias (out_features,)
    or None -> y (..., out_features).
    """
    if (
        out is None
        and type(x) is _ndarray
        and type(weight) is _ndarray
        and (bias is None or type(bias) is _ndarray)
        and x.ndim == 2
    ):
        # 2-D ndarrays as the kernel takes them are handed over as they are (its checks
        # accept a subset of what this function does); anything it refuses takes the
        # path below, which converts it or raises the error that names it
        try:
            return _linear_forward(x, weight, bias, None)
        except (TypeError, ValueError):
            pass
    where = "linear"
    x = V.float_array(x, "x", where)
    weight = V.float_array(weight, "weight", where, x.dtype, "the dtype of x")
    bias = V.optional_float_array(bias, "bias", where, x.dtype, "the dtype of x")
    if weight.ndim != 2:
        raise ValueError(f"{where}: weight must be 2-D (in_features, out_features), got shape {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[0]:
        raise ValueError(
            f"{where}: x must have shape (..., {weight.shape[0]}) to match weight "
            f"{weight.shape}, got {x.shape}"
        )
    if bias is not None:
        V.check_shape(bias, "bias", where, (weight.shape[1],), "out_features of weight")
    lead = x.shape[:-1]
    rows = math.prod(lead)  # explicit: reshape(-1, 0) is ambiguous for in_features == 0
    out2d = None
    if out is not None:
        V.out_array(out, where, lead + (weight.shape[1],), x.dtype)
        V.out_apart(out, where, x=x, weight=weight, bias=bias)
        out2d = out.reshape(rows, weight.shape[1])
    y = _C.linear_forward(x.reshape(rows, weight.shape[0]), weight, bias, out2d)
    return out if out is not None else y.reshape(lead + (weight.shape[1],))


def linear_backward(
    dy: Any,
    x: Any,
    weight: Any,
    *,
    has_bias: bool = True,
    need_dx: bool = True,
    dweight: np.ndarray | None = None,
    dbias: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`linear`.

    dy (..., out_features), x (..., in_features), weight (in_features, out_features)
    -> (dx (..., in_features) or None, dweight (in_features, out_features),
    dbias (out_features,) or None when ``has_bias`` is false).
    ``dweight``/``dbias``, when given, are added to in place and returned.
    """
    if type(has_bias) is not bool or type(need_dx) is not bool:
        has_bias = V.boolean(has_bias, "has_bias", "linear_backward")
        need_dx = V.boolean(need_dx, "need_dx", "linear_backward")
    if (
        type(dy) is _ndarray
        and type(x) is _ndarray
        and type(weight) is _ndarray
        and x.ndim == 2
        and (dweight is None or type(dweight) is _ndarray)
        and (dbias is None or type(dbias) is _ndarray)
        and weight.ndim == 2
    ):
        # as in linear: what the kernel takes goes straight to it, and what it refuses takes
        # the checked path; with no accumulators the gradients are written into fresh arrays
        # (not added to zeros: a pass over dweight fewer)
        try:
            if dweight is None and (dbias is None or not has_bias):
                return _linear_grads(dy, x, weight, bool(has_bias), bool(need_dx))
            dw = np.zeros(weight.shape, x.dtype) if dweight is None else dweight
            db = None if not has_bias else np.zeros(weight.shape[1], x.dtype) if dbias is None else dbias
            dx = _linear_backward(dy, x, weight, None, dw, db, bool(need_dx))
        except (TypeError, ValueError):
            pass
        else:
            return dx, dw, db
    where = "linear_backward"
    x = V.float_array(x, "x", where)
    dy = V.float_array(dy, "dy", where, x.dtype, "the dtype of x")
    weight = V.float_array(weight, "weight", where, x.dtype, "the dtype of x")
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[0]:
        raise ValueError(f"{where}: x {x.shape} and weight {weight.shape} do not match")
    V.check_shape(dy, "dy", where, x.shape[:-1] + (weight.shape[1],), "the shape of linear's output")
    rows = math.prod(x.shape[:-1])
    dy2, x2 = dy.reshape(rows, weight.shape[1]), x.reshape(rows, weight.shape[0])
    if dweight is None and (dbias is None or not has_bias):
        dx, dweight, dbias = _C.linear_grads(dy2, x2, weight, bool(has_bias), bool(need_dx))
    else:
        dweight = accumulator(dweight, "dweight", where, weight.shape, x.dtype)
        dbias = accumulator(dbias, "dbias", where, (weight.shape[1],), x.dtype) if has_bias else None
        dx = _C.linear_backward(dy2, x2, weight, None, dweight, dbias, bool(need_dx))
    if dx is not None:
        dx = dx.reshape(x.shape)
    return dx, dweight, dbias
