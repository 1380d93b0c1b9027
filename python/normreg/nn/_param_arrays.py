"""The arrays of a :class:`~normreg.nn.Parameter`: what it keeps as ``.data``, and the
accessors the layers use for a parameter that may be absent."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .. import _validation as V


class ParameterLike(Protocol):
    """What these helpers use of a Parameter (nn.parameter.Parameter, which imports them)."""

    data: np.ndarray
    grad: np.ndarray | None


def parameter_array(data: Any) -> np.ndarray:
    """``data`` itself when a Parameter can keep it, else a C-contiguous copy."""
    if isinstance(data, np.ma.MaskedArray):
        raise TypeError("Parameter: data is a masked array; pass data.filled(value) (masks are not kept)")
    if (
        type(data) is np.ndarray
        and data.dtype in V.FLOAT_DTYPES
        and data.dtype.isnative
        and data.flags.c_contiguous
        and data.flags.aligned
        and data.flags.writeable
    ):
        return data
    arr = np.array(data, copy=True, order="C")
    if arr.dtype not in V.FLOAT_DTYPES:
        raise TypeError(f"Parameter: data must be float32 or float64, got {arr.dtype}")
    return arr


def data_of(param: ParameterLike | None) -> np.ndarray | None:
    """``param.data``, or None for an absent parameter."""
    return None if param is None else param.data


def grad_of(param: ParameterLike | None) -> np.ndarray | None:
    """``param.grad``, or None for an absent parameter (or one without a gradient yet)."""
    return None if param is None else param.grad


def store_grad(param: ParameterLike | None, grad: np.ndarray | None) -> None:
    """After a functional backward was given ``grad_of(param)`` as its accumulator: keep
    what it returned (the same array, added into, or a fresh one when ``.grad`` was None)."""
    if param is not None:
        param.grad = grad


def add_to_grad(param: ParameterLike, fresh: np.ndarray) -> None:
    """``param.grad += fresh``; when ``.grad`` is None, ``fresh`` becomes ``.grad`` without a
    copy (so ``fresh`` must be an array nobody else holds)."""
    if param.grad is None:
        param.grad = fresh
    else:
        param.grad += fresh
