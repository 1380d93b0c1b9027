"""Helpers shared by the functional op families: affine parameters and their gradients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _validation as V


def accumulator(acc: Any, name: str, where: str, shape: Sequence[int], dtype: npt.DTypeLike) -> np.ndarray:
    """The array a parameter gradient is added into: ``acc`` (checked) or fresh zeros."""
    if acc is None:
        return np.zeros(shape, dtype=dtype)
    return V.inplace_array(
        acc,
        name,
        where,
        shape,
        dtype,
        dtype_from="the dtype of x",
        shape_from="the parameter's shape",
        purpose="added to in place",
    )


def affine_params(
    weight: Any, bias: Any, x: np.ndarray, where: str, shape: Sequence[int], what: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``weight`` and ``bias`` (each an array or None) as arrays of x's dtype, checked
    against ``shape`` (``what`` names where it comes from)."""
    weight = V.optional_float_array(weight, "weight", where, x.dtype, "the dtype of x")
    bias = V.optional_float_array(bias, "bias", where, x.dtype, "the dtype of x")
    for arr, name in ((weight, "weight"), (bias, "bias")):
        if arr is not None:
            V.check_shape(arr, name, where, shape, what)
    return weight, bias


def affine_grads(
    weight: np.ndarray | None,
    has_bias: bool | None,
    dweight: Any,
    dbias: Any,
    where: str,
    shape: Sequence[int],
    what: str,
    dtype: npt.DTypeLike,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Check ``weight`` (or None) against ``shape`` and return the (dweight, dbias)
    accumulators of a normalization's backward: ``dweight`` when ``weight`` is given,
    ``dbias`` when ``has_bias`` (None: when ``weight`` is given); None for the others."""
    if has_bias is None:
        has_bias = weight is not None
    if weight is not None:
        V.check_shape(weight, "weight", where, shape, what)
        dweight = accumulator(dweight, "dweight", where, shape, dtype)
    else:
        dweight = None
    dbias = accumulator(dbias, "dbias", where, shape, dtype) if has_bias else None
    return dweight, dbias


def unchecked_grads(
    weight: np.ndarray | None,
    has_bias: bool | None,
    dweight: Any,
    dbias: Any,
    size: int,
    dtype: npt.DTypeLike,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """:func:`affine_grads`'s (dweight, dbias), without its checks, for a backward that hands
    them to a kernel which checks them itself (weight, dweight, dbias None or arrays, has_bias
    None or a bool): new zeros of ``size`` for an accumulator wanted but not given."""
    dw = None if weight is None else np.zeros(size, dtype) if dweight is None else dweight
    with_bias = weight is not None if has_bias is None else has_bias
    db = None if not with_bias else np.zeros(size, dtype) if dbias is None else dbias
    return dw, db


def grad_and_input(dy: Any, x: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(dy, x)`` of a backward whose dy has x's shape, as float arrays of x's dtype."""
    x = V.float_array(x, "x", where)
    dy = V.float_array(dy, "dy", where, x.dtype, "the dtype of x")
    V.check_shape(dy, "dy", where, x.shape, "the shape of x")
    return dy, x


def stat_array(stat: Any, name: str, where: str, x: np.ndarray) -> np.ndarray:
    """A statistic saved by a forward (mean, rstd, ...) as a float array of x's dtype."""
    return V.float_array(stat, name, where, x.dtype, "the dtype of x")


def as_ncl(x: np.ndarray, name: str, where: str) -> np.ndarray:
    """x (N, C, *) viewed as (N, C, L) with L the product of the trailing dimensions."""
    if x.ndim < 2:
        raise ValueError(
            f"{where}: {name} must have shape (N, C, *) with at least 2 dimensions, got {x.shape}"
        )
    if x.ndim == 3:
        return x
    return x.reshape(x.shape[0], x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64)))
