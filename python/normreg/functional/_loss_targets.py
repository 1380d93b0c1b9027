"""The cross-entropy's forms of input beyond logits (B, K) with labels (B,), which loss.py
takes to the kernels' rows: the classes on axis 1 of (N, C, d1, ..., dk) or alone (C,)
(one sample), and class-probability targets of the shape of the logits, computed here on
whole arrays in float64. The log-softmax both use."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _validation as V


def log_softmax(logits: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(log softmax, log-sum-exp) along ``axis`` of logits, in float64: ``(z - max) -
    log(sum(exp(z - max)))``, which keeps the log of the sum at any offset (``lse - z`` from
    a log-sum-exp rounded to float32 is off by up to half its unit in the last place: 5e-4 at
    logits of 1e4, all of it from 1e8), and ``max + log(sum)`` (``axis`` removed). NaN
    along a NaN or +Inf logit, as the kernels' log-sum-exp."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        z = logits.astype(np.float64)
        mx = z.max(axis=axis, keepdims=True, initial=-np.inf)  # no class: nothing to take
        shifted = z - mx
        log_sum = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return shifted - log_sum, np.squeeze(mx + log_sum, axis)


def class_axis(logits: np.ndarray) -> int:
    """The axis of the classes: 0 of unbatched logits (C,), else 1."""
    return 0 if logits.ndim == 1 else 1


def sample_shape(logits: np.ndarray) -> tuple[int, ...]:
    """The shape of the labels of class indices, and of the loss per sample: logits' but
    the class axis, () for unbatched logits (C,)."""
    return logits.shape[:1] + logits.shape[2:] if logits.ndim > 1 else ()


def is_probabilities(labels: np.ndarray, logits: np.ndarray) -> bool:
    """Whether labels are class probabilities: of the shape of logits and not integers
    (integers are class indices, whose shape is then wrong)."""
    return labels.shape == logits.shape and labels.dtype.kind not in "iu"


def label_name(shape: tuple[int, ...], i: int) -> str:
    """How an error names the label at flat position ``i`` of labels of ``shape``."""
    if len(shape) == 1:
        return f"labels[{i}]"
    if not shape:
        return "labels"
    return "labels[" + ", ".join(str(int(j)) for j in np.unravel_index(i, shape)) + "]"


def check_labels(labels: np.ndarray, classes: int, ignore_index: int, where: str) -> None:
    """ValueError for a label (int64) outside [0, classes) that is not ``ignore_index``,
    named by its position in labels."""
    bad = np.flatnonzero((labels != ignore_index) & ((labels < 0) | (labels >= classes)))
    if bad.size:
        i = int(bad[0])
        value = int(labels.reshape(-1)[i])
        raise ValueError(f"{where}: {label_name(labels.shape, i)} = {value} is out of range [0, {classes})")


def to_rows(x: np.ndarray) -> np.ndarray:
    """Logits (C,), (N, C) or (N, C, d1, ..., dk) as C-contiguous rows (samples, C), the
    class axis last: a view of unbatched and 2-D logits (C-contiguous), else a copy."""
    if x.ndim == 1:
        return x.reshape(1, x.shape[0])
    if x.ndim == 2:
        return x
    shape = sample_shape(x)
    return np.ascontiguousarray(np.moveaxis(x, 1, -1).reshape(math.prod(shape), x.shape[1]))


def from_rows(d: np.ndarray, shape: tuple[int, ...], out: np.ndarray | None) -> np.ndarray:
    """Rows (samples, C) back to logits of ``shape`` (N, C, d1, ..., dk), the class axis on
    1: into ``out``, or a new C-contiguous array."""
    moved = np.moveaxis(d.reshape(shape[:1] + shape[2:] + shape[1:2]), -1, 1)
    if out is None:
        return np.ascontiguousarray(moved)
    np.copyto(out, moved)
    return out


def target(labels: np.ndarray, logits: np.ndarray, given: Any, where: str) -> np.ndarray:
    """Class probabilities (``labels`` as an array, ``given`` as passed) of logits' float
    dtype (TypeError otherwise); a list is taken in that dtype, as class weights are."""
    if labels.dtype.kind != "f":
        raise TypeError(
            f"{where}: labels of the shape of logits {logits.shape} are class probabilities and "
            f"must have the dtype of logits ({logits.dtype}), got {labels.dtype}; class indices "
            f"(integers) have shape {sample_shape(logits)}"
        )
    if not isinstance(given, np.ndarray):
        labels = labels.astype(logits.dtype)
    return V.float_array(
        labels, "labels", where, logits.dtype, "class probabilities take the dtype of logits"
    )


def no_ignore_index(ignore_index: int, where: str) -> None:
    """ValueError for an ``ignore_index`` >= 0 with class probabilities, as PyTorch's; a
    negative one (the default -100) does not apply to them and is let through."""
    if ignore_index >= 0:
        raise ValueError(
            f"{where}: ignore_index = {ignore_index} does not apply to class probabilities "
            "(labels of the shape of logits); leave it negative (the default -100)"
        )


def upstream(dloss: Any, reduction: str, shape: tuple[int, ...], where: str) -> Any:
    """The backward's ``dloss``: with ``reduction="none"`` an array of the loss's ``shape``
    (float64) or a number for every sample, else a number (a 0-d array too), as a float."""
    if reduction == "none" and isinstance(dloss, (np.ndarray, list, tuple)):
        g = V.float_array(dloss, "dloss", where).astype(np.float64)
        V.check_shape(g, "dloss", where, shape, "the samples of logits")
        return g
    if isinstance(dloss, np.ndarray) and dloss.ndim == 0 and dloss.dtype.kind in "fiu":
        dloss = float(dloss)
    return V.real(dloss, "dloss", where, allow_inf=True, allow_nan=True)


def _weighted_target(
    target: np.ndarray, axis: int, weight: np.ndarray | None, smoothing: float
) -> np.ndarray:
    """``w_c t_c`` in float64, the target smoothed first: ``t (1 - e) + e / C``."""
    classes = target.shape[axis]
    t = target.astype(np.float64)
    if smoothing and classes:
        t = t * (1 - smoothing) + smoothing / classes
    if weight is not None:
        t = t * weight.astype(np.float64).reshape((classes,) + (1,) * (target.ndim - axis - 1))
    return t


def probabilities_forward(
    logits: np.ndarray, target: np.ndarray, weight: np.ndarray | None, reduction: str, smoothing: float
) -> tuple[Any, np.ndarray]:
    """(loss, lse) of class probabilities: per sample ``-sum_c w_c t_c log softmax(z)_c``
    (``t`` smoothed); the mean divides the sum by the number of samples (PyTorch's: not by
    the weights), NaN when logits are empty."""
    axis = class_axis(logits)
    logp, lse = log_softmax(logits, axis)
    tw = _weighted_target(target, axis, weight, smoothing)
    with np.errstate(invalid="ignore"):  # a target 0 where log p is -inf: NaN, as PyTorch's
        per_sample = -(logp * tw).sum(axis=axis)
    lse = np.asarray(lse, logits.dtype)  # 0-d arrays for unbatched logits, not scalars
    if reduction == "none":
        return np.asarray(per_sample, logits.dtype), lse
    total = float(np.sum(per_sample))
    if reduction == "sum":
        return total, lse
    return (total / per_sample.size if logits.size else float("nan")), lse


def probabilities_backward(
    logits: np.ndarray,
    target: np.ndarray,
    g: Any,
    weight: np.ndarray | None,
    reduction: str,
    smoothing: float,
) -> np.ndarray:
    """The gradient (float64) of :func:`probabilities_forward` with respect to logits:
    ``g (softmax(z) sum_c w_c t_c - w t)`` per sample, ``g`` the upstream gradient (a number,
    or with ``reduction="none"`` an array of the samples' shape), over the number of
    samples for the mean; the softmax taken again from logits in float64."""
    axis = class_axis(logits)
    logp, _ = log_softmax(logits, axis)
    tw = _weighted_target(target, axis, weight, smoothing)
    g = np.asarray(g, np.float64)
    if reduction == "mean":
        g = g / max(math.prod(sample_shape(logits)), 1)
    if g.ndim:
        g = np.expand_dims(g, axis)
    with np.errstate(invalid="ignore", over="ignore"):
        return g * (np.exp(logp) * tw.sum(axis=axis, keepdims=True) - tw)
