"""Activations: ReLU."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _C
from .. import _validation as V


def relu(x: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """``y = max(x, 0)`` elementwise (NaN stays NaN). Any shape."""
    x = V.float_array(x, "x", "relu")
    if out is not None:
        V.out_array(out, "relu", x.shape, x.dtype)
    return _C.relu_forward(x, out)


def relu_backward(dy: Any, y: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """``dx = 0 where y <= 0 else dy``, with ``y`` the output of :func:`relu` (so dy passes
    where y is NaN, as in PyTorch)."""
    where = "relu_backward"
    y = V.float_array(y, "y", where)
    dy = V.float_array(dy, "dy", where, y.dtype, "the dtype of y")
    V.check_shape(dy, "dy", where, y.shape, "the shape of y")
    if out is not None:
        V.out_array(out, where, y.shape, y.dtype)
    return _C.relu_backward(dy, y, out)
