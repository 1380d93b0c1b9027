"""Softmax cross-entropy: logits (B, K) with integer labels, the rows the kernels take; the
other forms of PyTorch's (the classes on axis 1 of (N, C, d1, ..., dk), unbatched logits (C,),
class probabilities) through _loss_targets."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _C
from .. import _validation as V
from . import _loss_targets as _T

# Bound once for the plain call (no option), which the kernels take at once: its Python
# overhead was most of the time of a small batch's loss (benchmarks/layers_vs_torch.py)
_ndarray = np.ndarray
_cross_entropy_forward = _C.cross_entropy_forward
_cross_entropy_backward = _C.cross_entropy_backward


def _plain(weight: Any, ignore_index: Any, reduction: Any, label_smoothing: Any) -> bool:
    """Whether the options are the defaults (no weight, ignore_index -100, the mean, no
    smoothing), the call the kernels do alone unless a label is the ignored one."""
    return (
        weight is None
        and type(ignore_index) is int
        and ignore_index == -100
        and type(reduction) is str
        and reduction == "mean"
        and type(label_smoothing) is float
        and label_smoothing == 0.0
    )


def _labels(labels: Any, logits: np.ndarray, where: str) -> np.ndarray:
    """Class indices: integers of logits' samples' shape ((B,) for logits (B, K)), as
    C-contiguous native int64 (their range is checked apart)."""
    shape, classes = _T.sample_shape(logits), logits.shape[_T.class_axis(logits)]
    labels = V.array(labels, "labels", where)
    if labels.dtype.kind not in "iu":
        raise TypeError(
            f"{where}: labels must be class indices (integers) of shape {shape}, or class "
            f"probabilities of the shape of logits {logits.shape}; got {labels.dtype} of shape {labels.shape}"
        )
    if labels.shape != shape:
        hint = " (integers are class indices, floats probabilities)" if labels.shape == logits.shape else ""
        raise ValueError(
            f"{where}: labels must have shape {shape} to match logits of shape {logits.shape}, "
            f"got {labels.shape}{hint}"
        )
    if labels.dtype.kind == "u" and labels.dtype.itemsize == 8 and labels.size:
        # values from 2**63 on would wrap around to negative int64 values: report them as given
        big = np.flatnonzero(labels > np.uint64(np.iinfo(np.int64).max))
        if big.size:
            i = int(big[0])
            value = int(labels.reshape(-1)[i])
            raise ValueError(f"{where}: {_T.label_name(shape, i)} = {value} is out of range [0, {classes})")
    return np.require(labels, np.int64, ("C", "A"))  # C-contiguous, aligned, native int64


def _logits(logits: Any, where: str) -> np.ndarray:
    logits = V.float_array(logits, "logits", where)
    if logits.ndim == 0:
        raise ValueError(
            f"{where}: logits must have a class axis: (C,), (N, C) or (N, C, d1, ..., dk), got shape ()"
        )
    return logits


class _Options:
    """PyTorch's options of the cross-entropy, checked: class weights (K,) or None, the
    ignored label, the reduction, the label smoothing. ``simple`` when they ask for nothing
    the kernels do not do themselves (the mean over every row, no weight, no smoothing)."""

    def __init__(
        self,
        K: int,
        dtype: np.dtype[Any],
        weight: Any,
        ignore_index: Any,
        reduction: Any,
        label_smoothing: Any,
        where: str,
    ) -> None:
        self.K = K
        self.weight = None
        if _plain(weight, ignore_index, reduction, label_smoothing):  # nothing to check
            self.ignore_index, self.reduction, self.smoothing, self.simple = -100, "mean", 0.0, True
            return
        if weight is not None:
            # class weights in the logits' dtype (a NumPy list of floats is float64 where
            # float32 logits are the rule)
            self.weight = V.float_array(weight, "weight", where).astype(dtype, copy=False)
            V.check_shape(self.weight, "weight", where, (K,), "the classes of logits")
        self.ignore_index, self.reduction, self.smoothing = V.cross_entropy_options(
            ignore_index, reduction, label_smoothing, where
        )
        self.simple = self.weight is None and self.reduction == "mean" and self.smoothing == 0.0

    def kernels_alone(self, labels: np.ndarray, kernel: Any, *args: Any) -> Any:
        """``kernel(*args)`` when the options ask for nothing more than it does (the mean over
        every row), else None. A label equal to ignore_index outside [0, K) is found only
        when the kernel refuses it, so the common call looks at the labels once."""
        if not self.simple:
            return None
        if 0 <= self.ignore_index < self.K:
            return None if np.any(labels == self.ignore_index) else kernel(*args)
        try:
            return kernel(*args)
        except ValueError:
            if np.any(labels == self.ignore_index):
                return None
            raise

    def rows(self, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
        """(labels with the ignored ones replaced by 0, the kept rows as a mask); ValueError
        for any other label outside [0, K)."""
        keep = labels != self.ignore_index
        safe = np.where(keep, labels, 0)
        bad = np.flatnonzero((safe < 0) | (safe >= self.K))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{where}: labels[{i}] = {int(labels[i])} is out of range [0, {self.K})")
        return safe, keep

    def row_weights(self, safe: np.ndarray, keep: np.ndarray, dtype: Any) -> np.ndarray:
        """Each row's weight: its label's class weight (1 without weights), 0 if ignored."""
        w = np.ones(safe.shape, dtype) if self.weight is None else self.weight[safe]
        return np.where(keep, w, 0).astype(dtype, copy=False)


def cross_entropy(
    logits: Any,
    labels: Any,
    weight: Any = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> tuple[Any, np.ndarray]:
    """Softmax cross-entropy, with PyTorch's forms of input and options (``F.cross_entropy``'s
    ``weight``, ``ignore_index``, ``reduction``, ``label_smoothing``; all but ``weight`` by
    keyword, since PyTorch's positions hold its deprecated ``size_average`` and ``reduce``).

    logits (B, K), labels (B,) integers in [0, K) or ``ignore_index``
    -> (loss, lse (B,)), ``lse`` being log-sum-exp of each row (computed stably), which
    the backward takes. Per row, ``l = w[y] (lse - z[y])`` (w = 1 without ``weight``), 0 for
    an ignored row; with ``label_smoothing`` e, ``(1 - e) l + e / K * sum_c w[c] (lse - z[c])``.
    ``reduction="mean"`` divides the sum by the summed weights of the rows kept (NaN when
    none is), ``"sum"`` returns the sum (both as a Python float), ``"none"`` the (B,) array.

    As PyTorch's, logits may also be (N, C, d1, ..., dk) with labels (N, d1, ..., dk) (the
    classes on axis 1, each position a sample), or unbatched: (C,) with a 0-d label; the
    loss with ``"none"`` and ``lse`` have the samples' shape (logits' but the class axis).
    Labels of the shape of logits and their float dtype are class probabilities ``t``
    (integers are always class indices; a list is taken in the logits' dtype): per sample
    ``-sum_c w[c] t[c] log softmax(z)[c]``, ``t`` smoothed first to ``t (1 - e) + e / C``;
    the mean divides by the number of samples, not by the weights (NaN when logits are
    empty); ``ignore_index`` must be negative (it does not apply to them; ValueError).
    """
    if (
        type(logits) is _ndarray
        and type(labels) is _ndarray
        and _plain(weight, ignore_index, reduction, label_smoothing)
    ):
        # as they are: the kernel at once (it checks every argument); what it refuses (a
        # conversion, an error to explain, a label -100 to ignore) takes the path below
        try:
            return _cross_entropy_forward(logits, labels)
        except (TypeError, ValueError):
            pass
    where = "cross_entropy"
    given = labels
    logits = _logits(logits, where)
    labels = V.array(labels, "labels", where)
    if logits.ndim != 2 or _T.is_probabilities(labels, logits):
        return _forward_nd(logits, labels, given, weight, ignore_index, reduction, label_smoothing, where)
    labels = _labels(labels, logits, where)
    opts = _Options(logits.shape[1], logits.dtype, weight, ignore_index, reduction, label_smoothing, where)
    return _forward_rows(logits, labels, opts, where)


def _forward_rows(
    logits: np.ndarray, labels: np.ndarray, opts: _Options, where: str
) -> tuple[Any, np.ndarray]:
    """The forward of logits (B, K) and checked labels (B,) int64."""
    res = opts.kernels_alone(labels, _C.cross_entropy_forward, logits, labels)
    if res is not None:
        return res
    B, K = logits.shape
    safe, keep = opts.rows(labels, where)
    logp, lse64 = _T.log_softmax(logits)
    lse = lse64.astype(logits.dtype)  # the kernel's log-sum-exp, without a second pass
    wy = opts.row_weights(safe, keep, np.float64)
    # an ignored row counts for nothing, whatever its logits hold (Inf, NaN)
    with np.errstate(invalid="ignore"):
        rows = np.where(keep, -logp[np.arange(B), safe] * wy, 0.0)
        if opts.smoothing:
            per_class = logp if opts.weight is None else logp * opts.weight.astype(np.float64)
            smooth = np.where(keep, -per_class.sum(axis=1), 0.0)
            rows = (1 - opts.smoothing) * rows + (opts.smoothing / K) * smooth
    if opts.reduction == "none":
        return rows.astype(logits.dtype), lse
    total = float(np.sum(rows))
    if opts.reduction == "sum":
        return total, lse
    denom = float(np.sum(wy))
    return (total / denom if denom != 0 else float("nan")), lse


def _forward_nd(
    logits: np.ndarray,
    labels: np.ndarray,
    given: Any,
    weight: Any,
    ignore_index: Any,
    reduction: Any,
    label_smoothing: Any,
    where: str,
) -> tuple[Any, np.ndarray]:
    """The forward of the other forms: class probabilities on whole arrays, class indices
    of logits (C,) or (N, C, d1, ..., dk) as the rows (samples, C)."""
    C = logits.shape[_T.class_axis(logits)]
    if _T.is_probabilities(labels, logits):
        target = _T.target(labels, logits, given, where)
        opts = _Options(C, logits.dtype, weight, ignore_index, reduction, label_smoothing, where)
        _T.no_ignore_index(opts.ignore_index, where)
        return _T.probabilities_forward(logits, target, opts.weight, opts.reduction, opts.smoothing)
    labels = _labels(labels, logits, where)
    opts = _Options(C, logits.dtype, weight, ignore_index, reduction, label_smoothing, where)
    _T.check_labels(labels, C, opts.ignore_index, where)
    loss, lse = _forward_rows(_T.to_rows(logits), labels.reshape(-1), opts, where)
    if opts.reduction == "none":
        loss = loss.reshape(labels.shape)
    return loss, lse.reshape(labels.shape)


def cross_entropy_backward(
    logits: Any,
    labels: Any,
    lse: Any,
    dloss: Any = 1.0,
    weight: Any = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`cross_entropy` (the same forms of input and options) with respect
    to the logits; for logits (B, K) with no option ``dlogits = dloss * (softmax(logits) -
    onehot(labels)) / B``; class probabilities: ``dloss (softmax(z) sum_c w[c] t[c] - w t)``
    per sample, over the number of samples for the mean.

    ``dloss`` is the upstream gradient of the loss: a real number (NaN and Inf propagate,
    they are data here, not a setting), or with ``reduction="none"`` one per sample (an
    array of the labels' shape, (B,) for logits (B, K), 0-d for unbatched ones; a number
    stands for every sample). ``lse`` is the forward's; with any option, K-dimensional
    logits or class probabilities the softmax is taken again from the logits in float64
    (``lse`` is rounded to their dtype)."""
    if (
        type(dloss) is float
        and out is None
        and type(logits) is _ndarray
        and type(labels) is _ndarray
        and type(lse) is _ndarray
        and _plain(weight, ignore_index, reduction, label_smoothing)
    ):
        # as they are, as the forward's
        try:
            return _cross_entropy_backward(logits, labels, lse, dloss, None)
        except (TypeError, ValueError):
            pass
    where = "cross_entropy_backward"
    given = labels
    logits = _logits(logits, where)
    labels = V.array(labels, "labels", where)
    if logits.ndim != 2 or _T.is_probabilities(labels, logits):
        options = (weight, ignore_index, reduction, label_smoothing)
        return _backward_nd(logits, labels, given, lse, dloss, options, out, where)
    labels = _labels(labels, logits, where)
    lse = V.float_array(lse, "lse", where, logits.dtype, "the dtype of logits")
    V.check_shape(lse, "lse", where, (logits.shape[0],), "the rows of logits")
    opts = _Options(logits.shape[1], logits.dtype, weight, ignore_index, reduction, label_smoothing, where)
    return _backward_rows(logits, labels, lse, dloss, opts, out, where)


def _backward_rows(
    logits: np.ndarray,
    labels: np.ndarray,
    lse: np.ndarray,
    dloss: Any,
    opts: _Options,
    out: np.ndarray | None,
    where: str,
) -> np.ndarray:
    """The backward of logits (B, K), checked labels (B,) int64 and lse (B,)."""
    if out is not None:
        V.out_array(out, where, logits.shape, logits.dtype)
    B, K = logits.shape
    scalar_array = isinstance(dloss, np.ndarray) and dloss.ndim == 0 and dloss.dtype.kind in "fiu"
    if scalar_array and opts.reduction != "none":
        dloss = float(dloss)  # a 0-d array, as a scalar loss's gradient comes from NumPy
    if opts.reduction == "none" and isinstance(dloss, (np.ndarray, list, tuple)):
        g = V.float_array(dloss, "dloss", where).astype(np.float64)
        V.check_shape(g, "dloss", where, (B,), "the rows of logits")
    else:
        g0 = V.real(dloss, "dloss", where, allow_inf=True, allow_nan=True)
        res = opts.kernels_alone(labels, _C.cross_entropy_backward, logits, labels, lse, g0, out)
        if res is not None:
            return res
        g = np.full(B, g0)
    safe, keep = opts.rows(labels, where)
    wy = opts.row_weights(safe, keep, np.float64)
    if opts.reduction == "mean":
        denom = float(np.sum(wy))
        g = g / denom if denom != 0 else np.full(B, np.nan)
    a = (1 - opts.smoothing) * wy * g  # the coefficient of softmax - onehot(y) of each row
    b = (opts.smoothing / K) * np.where(keep, g, 0)  # of sum_c w[c] softmax - w
    w = np.ones(K) if opts.weight is None else opts.weight.astype(np.float64)
    p = np.exp(_T.log_softmax(logits)[0])
    with np.errstate(invalid="ignore"):
        d = p * (a + b * w.sum())[:, None] - b[:, None] * w
    d[np.arange(B), safe] -= a
    d[~keep] = 0  # an ignored row gets no gradient, whatever its logits hold (Inf, NaN)
    if out is None:
        return d.astype(logits.dtype)
    np.copyto(out, d, casting="same_kind")
    return out


def _backward_nd(
    logits: np.ndarray,
    labels: np.ndarray,
    given: Any,
    lse: Any,
    dloss: Any,
    options: tuple[Any, Any, Any, Any],
    out: np.ndarray | None,
    where: str,
) -> np.ndarray:
    """The backward of the other forms (see :func:`_forward_nd`); ``options`` are
    (weight, ignore_index, reduction, label_smoothing) as given."""
    C, shape = logits.shape[_T.class_axis(logits)], _T.sample_shape(logits)
    probabilities = _T.is_probabilities(labels, logits)
    if probabilities:
        target = _T.target(labels, logits, given, where)
    else:
        labels = _labels(labels, logits, where)
    lse = V.float_array(lse, "lse", where, logits.dtype, "the dtype of logits")
    V.check_shape(lse, "lse", where, shape, "the samples of logits")
    opts = _Options(C, logits.dtype, *options, where)
    if out is not None:
        V.out_array(out, where, logits.shape, logits.dtype)
    g = _T.upstream(dloss, opts.reduction, shape, where)
    if probabilities:
        _T.no_ignore_index(opts.ignore_index, where)
        d = _T.probabilities_backward(logits, target, g, opts.weight, opts.reduction, opts.smoothing)
        if out is None:
            return d.astype(logits.dtype)
        np.copyto(out, d, casting="same_kind")
        return out
    _T.check_labels(labels, C, opts.ignore_index, where)
    rows, g_rows = _T.to_rows(logits), (g if isinstance(g, float) else g.reshape(-1))
    if logits.ndim == 1:  # one row, a view of logits and out
        out_rows = None if out is None else out.reshape(rows.shape)
        d = _backward_rows(rows, labels.reshape(-1), lse.reshape(-1), g_rows, opts, out_rows, where)
        return out if out is not None else d.reshape(logits.shape)
    d = _backward_rows(rows, labels.reshape(-1), lse.reshape(-1), g_rows, opts, None, where)
    return _T.from_rows(d, logits.shape, out)
