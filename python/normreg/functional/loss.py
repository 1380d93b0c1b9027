"""Softmax cross-entropy of integer labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _C
from .. import _validation as V


def _labels(labels: Any, batch: int, where: str) -> np.ndarray:
    if not isinstance(labels, np.ndarray):
        try:
            labels = np.asarray(labels)
        except Exception as exc:
            raise TypeError(f"{where}: labels could not be converted to an array: {exc}") from exc
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    if labels.shape != (batch,):
        raise ValueError(f"{where}: labels must have shape ({batch},) to match logits, got {labels.shape}")
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
    labels = _labels(labels, logits.shape[0], "cross_entropy")
    return _C.cross_entropy_forward(logits, labels)


def cross_entropy_backward(
    logits: Any, labels: Any, lse: Any, dloss: float = 1.0, *, out: np.ndarray | None = None
) -> np.ndarray:
    """``dlogits = dloss * (softmax(logits) - onehot(labels)) / B``.

    ``dloss`` is the upstream gradient of the loss (any real number: NaN and Inf
    propagate, they are data here, not a setting)."""
    where = "cross_entropy_backward"
    logits = _logits(logits, where)
    labels = _labels(labels, logits.shape[0], where)
    lse = V.float_array(lse, "lse", where, logits.dtype, "the dtype of logits")
    V.check_shape(lse, "lse", where, (logits.shape[0],), "the rows of logits")
    dloss = V.real(dloss, "dloss", where, allow_inf=True, allow_nan=True)
    if out is not None:
        V.out_array(out, where, logits.shape, logits.dtype)
    return _C.cross_entropy_backward(logits, labels, lse, dloss, out)
