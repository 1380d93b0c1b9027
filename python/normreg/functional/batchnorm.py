"""Batch normalization, and the pieces of it that a synchronized batch norm runs between
its collectives (PyTorch's ``batch_norm_stats`` / ``batch_norm_elemt`` /
``batch_norm_backward_reduce`` / ``batch_norm_backward_elemt``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _C
from .. import _validation as V
from ._common import affine_grads, affine_params, as_ncl, grad_and_input, stat_array, unchecked_grads

_INF = math.inf
_ndarray = np.ndarray
_batch_norm_forward = _C.batch_norm_forward  # the kernels of the as-is paths, bound once
_batch_norm_backward = _C.batch_norm_backward


def _nc_or_ncl(x: np.ndarray, name: str, where: str) -> np.ndarray:
    """x (N, C, *) as (N, C, L), L the product of the trailing sizes (1 for (N, C)), as
    PyTorch's batch_norm takes any input of 2 dimensions or more."""
    if x.ndim == 3:
        return x
    if x.ndim >= 2:
        return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))
    raise ValueError(f"{where}: {name} must be (N, C) or (N, C, *), 2 dimensions or more, got {x.shape}")


def _running(
    arr: Any, name: str, where: str, dtype: np.dtype[Any], C: int, training: bool
) -> np.ndarray | None:
    """A running estimate as the kernel takes it: ``arr`` itself, or a C-contiguous copy of a
    strided one (which the caller writes back after a training step, as PyTorch updates a
    strided tensor in place); writeable when training updates it."""
    if arr is None:
        return None
    # read-only is fine for evaluation, which only reads it
    usable = isinstance(arr, np.ndarray) and (arr.flags.writeable or not training)
    if usable and arr.dtype == dtype and arr.shape == (C,):
        if arr.flags.c_contiguous and arr.flags.aligned and arr.flags.writeable:
            return arr
        return np.array(arr, order="C")  # the kernel takes a writeable C-contiguous array
    return V.inplace_array(
        arr, name, where, (C,), dtype, dtype_from="the dtype of x", shape_from="the channels of x"
    )


def _global_mean(where: str, mean: Any, C: int) -> np.ndarray:
    """The per-channel mean (C,) of a synchronized batch norm, float32 or float64 for either
    dtype of x, as float64: the merged global mean is float64, and rounded to float32 a large
    mean (1e6: by up to 0.03) would cost every normalized value its accuracy."""
    arr = V.float_array(mean, "mean", where)
    V.check_shape(arr, "mean", where, (C,), "the channels of x")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _channel_stats(where: str, x: np.ndarray, C: int, **stats: Any) -> list[np.ndarray]:
    """Per-channel statistics (C,) saved by a forward, as arrays of x's dtype."""
    arrays = []
    for name, value in stats.items():
        arr = stat_array(value, name, where, x)
        V.check_shape(arr, name, where, (C,), "the channels of x")
        arrays.append(arr)
    return arrays


def _batch_norm_as_is(
    x: Any, rm: Any, rv: Any, weight: Any, bias: Any, training: Any, momentum: Any, eps: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The kernel's (y, save_mean, save_rstd) for arguments it takes as they are (x a
    C-contiguous (N, C) or (N, C, L) float array with values per channel, more than one in
    training; weight, bias and the running estimates arrays of its dtype or None; training a
    bool; momentum a float in [0, 1]; eps a finite float); None for anything else, which the
    checked path converts or refuses. The kernel checks every array before it changes
    anything, the running estimates included."""
    if (
        type(x) is _ndarray
        and (x.ndim == 2 or x.ndim == 3)
        and type(training) is bool
        and type(momentum) is float
        and 0.0 <= momentum <= 1.0
        and type(eps) is float
        and (0.0 < eps < _INF or (eps == 0.0 and training is False))
        and (weight is None or type(weight) is _ndarray)
        and (bias is None or type(bias) is _ndarray)
        and (rm is None or type(rm) is _ndarray)
        and (rv is None or type(rv) is _ndarray)
        and (rm is None) == (rv is None)
    ):
        x3 = x if x.ndim == 3 else x.reshape(x.shape[0], x.shape[1], 1)
        values = x3.shape[0] * x3.shape[2]
        if values > 1 or (values == 1 and not training):
            try:
                y, mean, rstd = _batch_norm_forward(x3, weight, bias, rm, rv, training, momentum, eps, None)
            except (TypeError, ValueError):
                return None  # something to convert, or an error to explain
            return y.reshape(x.shape), mean, rstd
    return None


def batch_norm(
    x: Any,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalization per channel, PyTorch's ``F.batch_norm``.

    x (N, C) or (N, C, *) (as PyTorch's: each trailing position a value of its channel);
    running_mean, running_var, weight, bias (C,) or None.
    Training normalizes with the batch mean and biased variance over N (and L), and
    updates the running estimates in place: ``running := (1 - momentum) * running +
    momentum * stat`` (running_var gets the unbiased variance). Evaluation normalizes
    with the running estimates. Returns (y like x, save_mean (C,), save_rstd (C,)): the
    statistics used, which :func:`batch_norm_backward` takes.

    A batch with no values (no rows, or feature maps of no positions) returns an empty y
    and leaves the running estimates untouched, as PyTorch does.
    An (N, C) or (N, C, L) array goes to the kernel as it is when nothing needs converting.
    """
    if out is None:
        res = _batch_norm_as_is(x, running_mean, running_var, weight, bias, training, momentum, eps)
        if res is not None:
            return res
    where = "batch_norm"
    x = V.float_array(x, "x", where)
    x3 = _nc_or_ncl(x, "x", where)
    N, C, L = x3.shape
    training = V.boolean(training, "training", where)
    momentum = V.real(momentum, "momentum", where, low=0.0, high=1.0)
    eps = V.eps(eps, where)
    if training and eps == 0.0:  # PyTorch's: a channel of equal values would give 0 / 0
        raise ValueError(f"{where}: eps must be positive during training, got {eps}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{where}: running_mean and running_var must both be None or neither be None")
    rm = _running(running_mean, "running_mean", where, x.dtype, C, training)
    rv = _running(running_var, "running_var", where, x.dtype, C, training)
    weight, bias = affine_params(weight, bias, x, where, (C,), "the channels of x")
    if not training and (rm is None or rv is None):
        raise ValueError(f"{where}: evaluation needs running_mean and running_var")
    given = out
    if out is not None:
        V.out_array(out, where, x.shape, x.dtype)
    if N * L == 0:  # no rows, or feature maps of no positions: nothing to normalize
        nan = np.full(C, np.nan, dtype=x.dtype)
        return np.empty_like(x) if out is None else out, nan, nan.copy()
    if training and N * L <= 1:
        raise ValueError(
            f"{where}: Expected more than 1 value per channel when training, got input size {x.shape}"
        )
    if out is not None:
        out = out.reshape(x3.shape)
    target = V.out_target(out, x3, weight, bias, rm, rv)
    y, save_mean, save_rstd = _C.batch_norm_forward(x3, weight, bias, rm, rv, training, momentum, eps, target)
    if training:
        for arr, given_arr in ((rm, running_mean), (rv, running_var)):
            if arr is not None and given_arr is not None and arr is not given_arr:
                np.copyto(given_arr, arr)  # updated in a contiguous copy: back into the caller's
    return V.out_result(out, y, given, x.shape), save_mean, save_rstd


def batch_norm_backward(
    dy: Any,
    x: Any,
    save_mean: Any,
    save_rstd: Any,
    weight: Any = None,
    training: bool = True,
    *,
    has_bias: bool | None = None,
    dweight: np.ndarray | None = None,
    dbias: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`batch_norm`.

    dy and x (N, C) or (N, C, *); save_mean, save_rstd (C,) from the forward; weight
    (C,) or None; ``training`` as in the forward (batch statistics: the gradient flows
    through the mean and variance; evaluation: they are constants).
    -> (dx like x, dweight or None, dbias or None), as :func:`layer_norm_backward`.
    (N, C) or (N, C, L) arrays go to the kernel as they are when nothing needs converting.
    """
    if (
        type(dy) is _ndarray
        and type(x) is _ndarray
        and (x.ndim == 2 or x.ndim == 3)
        and x.size > 0
        and dy.shape == x.shape
        and type(training) is bool
        and (weight is None or type(weight) is _ndarray)
        and type(save_mean) is _ndarray
        and type(save_rstd) is _ndarray
        and (has_bias is None or type(has_bias) is bool)
        and (dweight is None or type(dweight) is _ndarray)
        and (dbias is None or type(dbias) is _ndarray)
    ):
        # as it is: the kernel at once (it checks every array before it adds to the
        # accumulators, new zeros for those not given); what it refuses takes the path below
        dw, db = unchecked_grads(weight, has_bias, dweight, dbias, x.shape[1], x.dtype)
        shape = x.shape if x.ndim == 3 else (x.shape[0], x.shape[1], 1)
        try:
            dx = _batch_norm_backward(
                dy.reshape(shape), x.reshape(shape), save_mean, save_rstd, weight, dw, db, training, None
            )
        except (TypeError, ValueError):
            pass
        else:
            return dx.reshape(x.shape), dw, db
    where = "batch_norm_backward"
    dy, x = grad_and_input(dy, x, where)
    training = V.boolean(training, "training", where)
    x3 = _nc_or_ncl(x, "x", where)
    N, C, L = x3.shape
    save_mean, save_rstd = _channel_stats(where, x, C, save_mean=save_mean, save_rstd=save_rstd)
    weight = V.optional_float_array(weight, "weight", where, x.dtype, "the dtype of x")
    dweight, dbias = affine_grads(weight, has_bias, dweight, dbias, where, (C,), "the channels of x", x.dtype)
    if N * L == 0:
        return np.empty_like(x), dweight, dbias
    dx = _C.batch_norm_backward(
        dy.reshape(x3.shape), x3, save_mean, save_rstd, weight, dweight, dbias, training, None
    )
    return dx.reshape(x.shape), dweight, dbias


# ---- the pieces of a synchronized batch norm -----------------------------------------------


def batch_norm_stats(x: Any) -> np.ndarray:
    """This process's per-channel statistics of x (N, C, *), to be merged with the other
    processes' (``normreg.distributed.merge_moments``): a float64 array (2, C), row 0 the
    channel means and row 1 the sums of squared deviations from them (M2); zeros when x
    has no values per channel."""
    where = "batch_norm_stats"
    x = V.float_array(x, "x", where)
    return _C.sync_batch_norm_stats(as_ncl(x, "x", where))


def batch_norm_elemt(
    x: Any, mean: Any, rstd: Any, weight: Any = None, bias: Any = None, *, out: np.ndarray | None = None
) -> np.ndarray:
    """``y = (x - mean) * rstd * weight + bias`` per channel of x (N, C, *), with given
    statistics mean, rstd (C,) (e.g. of the global batch) and weight, bias (C,) or None.
    ``mean`` may be float64 whatever x's dtype (the global mean as merged), and is used so."""
    where = "batch_norm_elemt"
    x = V.float_array(x, "x", where)
    x3 = as_ncl(x, "x", where)
    C = x3.shape[1]
    mean = _global_mean(where, mean, C)
    (rstd,) = _channel_stats(where, x, C, rstd=rstd)
    weight, bias = affine_params(weight, bias, x, where, (C,), "the channels of x")
    given = out
    if out is not None:
        out = V.out_array(out, where, x.shape, x.dtype).reshape(x3.shape)
    y = _C.sync_batch_norm_forward(
        x3, mean, rstd, weight, bias, V.out_target(out, x3, mean, rstd, weight, bias)
    )
    return V.out_result(out, y, given, x.shape)


def batch_norm_backward_reduce(dy: Any, x: Any, mean: Any, rstd: Any) -> np.ndarray:
    """This process's per-channel sums for the backward of a batch norm with statistics
    mean, rstd (C,): a float64 array (2, C), row 0 ``sum(dy)`` and row 1
    ``sum(dy * xhat)`` with ``xhat = (x - mean) * rstd``, over N and * of dy and x
    (N, C, *). Row 0 is also the bias gradient and row 1 the weight gradient. ``mean`` may
    be float64 whatever x's dtype, as in :func:`batch_norm_elemt`."""
    where = "batch_norm_backward_reduce"
    dy, x = grad_and_input(dy, x, where)
    x3 = as_ncl(x, "x", where)
    mean = _global_mean(where, mean, x3.shape[1])
    (rstd,) = _channel_stats(where, x, x3.shape[1], rstd=rstd)
    return _C.sync_batch_norm_grad_sums(dy.reshape(x3.shape), x3, mean, rstd)


def batch_norm_backward_elemt(
    dy: Any, x: Any, mean: Any, rstd: Any, weight: Any, sums: Any, count: float
) -> np.ndarray:
    """The input gradient of a batch norm in training whose statistics mean, rstd (C,) are
    those of ``count`` values per channel (over all processes), given ``sums`` (2, C), the
    :func:`batch_norm_backward_reduce` rows added over those processes::

        dx = weight * rstd * (dy - sums[0] / count - xhat * sums[1] / count)
    """
    where = "batch_norm_backward_elemt"
    dy, x = grad_and_input(dy, x, where)
    x3 = as_ncl(x, "x", where)
    C = x3.shape[1]
    mean = _global_mean(where, mean, C)
    (rstd,) = _channel_stats(where, x, C, rstd=rstd)
    weight, _ = affine_params(weight, None, x, where, (C,), "the channels of x")
    sums = V.float_array(sums, "sums", where, np.float64, "the sums are float64")
    V.check_shape(sums, "sums", where, (2, C), "sum(dy) and sum(dy * xhat) per channel")
    count = V.real(count, "count", where, low=0.0, low_open=True)
    dx = _C.sync_batch_norm_backward(dy.reshape(x3.shape), x3, mean, rstd, weight, sums, count, None)
    return dx.reshape(x.shape)
