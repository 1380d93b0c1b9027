"""Softmax cross-entropy of integer labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _C
from .. import _validation as V


def _labels(labels: Any, logits: np.ndarray, where: str) -> np.ndarray:
    batch, classes = logits.shape
    labels = V.array(labels, "labels", where)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    if labels.shape != (batch,):
        raise ValueError(f"{where}: labels must have shape ({batch},) to match logits, got {labels.shape}")
    if labels.dtype.kind == "u" and labels.dtype.itemsize == 8 and batch:
        # values from 2**63 on would wrap around to negative int64 values: report them as given
        big = np.flatnonzero(labels > np.uint64(np.iinfo(np.int64).max))
        if big.size:
            i = int(big[0])
            raise ValueError(f"{where}: labels[{i}] = {int(labels[i])} is out of range [0, {classes})")
    return np.require(labels, np.int64, ("C", "A"))  # C-contiguous, aligned, native int64


def _logits(logits: Any, where: str) -> np.ndarray:
    logits = V.float_array(logits, "logits", where)
    if logits.ndim != 2:
        raise ValueError(f"{where}: logits must be 2-D (batch, classes), got shape {logits.shape}")
    return logits


def cross_entropy(logits: Any, labels: Any) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of integer labels.

    logits (B, K), labels (B,) integers in [0, K) -> (loss as a Python float, lse (B,)),
    ``lse`` being log-sum-exp of each row (computed stably), which the backward takes.
    """
    logits = _logits(logits, "cross_entropy")
    labels = _labels(labels, logits, "cross_entropy")
    return _C.cross_entropy_forward(logits, labels)


def cross_entropy_backward(
    logits: Any, labels: Any, lse: Any, dloss: float = 1.0, *, out: np.ndarray | None = None
) -> np.ndarray:
    """``dlogits = dloss * (softmax(logits) - onehot(labels)) / B``.

    ``dloss`` is the upstream gradient of the loss (any real number: NaN and Inf
    propagate, they are data here, not a setting)."""
    where = "cross_entropy_backward"
    logits = _logits(logits, where)
    labels = _labels(labels, logits, where)
    lse = V.float_array(lse, "lse", where, logits.dtype, "the dtype of logits")
    V.check_shape(lse, "lse", where, (logits.shape[0],), "the rows of logits")
    dloss = V.real(dloss, "dloss", where, allow_inf=True, allow_nan=True)
    if out is not None:
        V.out_array(out, where, logits.shape, logits.dtype)
    return _C.cross_entropy_backward(logits, labels, lse, dloss, out)
