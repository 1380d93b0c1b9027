"""Optimizer updates: in-place steps on a parameter array and its state, one fused C pass
each. ``normreg.optim`` keeps the state and the parameter groups and calls these.

The parameter and state arrays may have any memory layout (Fortran-ordered, strided,
unaligned): the kernels update a C-contiguous copy of such an array, which is then copied
back into it, so the array given is the one updated, in place."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _C
from .. import _validation as V


def _working(arr: np.ndarray, name: str, where: str) -> np.ndarray:
    """The array a step updates for ``arr``, which it writes into: ``arr`` itself when it is
    C-contiguous and aligned, else a C-contiguous copy whose result :func:`write_back`
    copies into ``arr`` (a Fortran-ordered, strided or unaligned array is updated in place
    all the same, as a tensor of any layout is by PyTorch's optimizers)."""
    if not arr.flags.writeable:
        raise ValueError(f"{where}: {name} is updated in place and must be writeable")
    if arr.flags.c_contiguous and arr.flags.aligned:
        return arr
    return np.require(arr, requirements=("C", "A"))


def write_back(*pairs: tuple[np.ndarray | None, np.ndarray | None]) -> None:
    """After a step: copy each working array (see :func:`check_step_arrays`) that is a copy
    into the array it stands for."""
    for arr, work in pairs:
        if arr is not None and work is not None and work is not arr:
            np.copyto(arr, work)


def _param_array(param: Any, where: str) -> np.ndarray:
    if not isinstance(param, np.ndarray):
        raise TypeError(f"{where}: param must be a numpy.ndarray, not {type(param).__name__}")
    if param.dtype not in V.FLOAT_DTYPES:
        raise TypeError(f"{where}: param must have dtype float32 or float64, got {param.dtype}")
    return _working(param, "param", where)


def _state_array(buf: Any, name: str, where: str, param: np.ndarray) -> np.ndarray | None:
    if buf is None:
        return None
    if isinstance(buf, np.ndarray):
        buf = _working(buf, name, where)
    return V.inplace_array(
        buf,
        name,
        where,
        param.shape,
        param.dtype,
        dtype_from="the dtype of param",
        shape_from="the shape of param",
    )


def check_step_arrays(
    param: Any, grad: Any, where: str, **state: Any
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
    """The arrays of one in-place step, checked as the steps below check them:
    ``(param, grad as a float array of param's dtype, [each state array or None])``, each
    C-contiguous: ``param`` and the state arrays are the arrays given, or, for one of
    another layout, a C-contiguous copy that the caller updates and then copies back
    (:func:`write_back`). Nothing is written; an optimizer calls this for every parameter
    before it updates any, so that a step that raises changes nothing."""
    param = _param_array(param, where)
    grad = V.float_array(grad, "grad", where, param.dtype, "the dtype of param")
    V.check_shape(grad, "grad", where, param.shape, "the shape of param")
    return param, grad, [_state_array(buf, name, where, param) for name, buf in state.items()]


def sgd_step_(
    param: np.ndarray,
    grad: Any,
    momentum_buffer: np.ndarray | None = None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    first_step: bool = False,
) -> np.ndarray:
    """One SGD step on ``param`` in place (PyTorch's rule)::

        d = grad + weight_decay * param
        buf = d (first step) or momentum * buf + (1 - dampening) * d   (momentum != 0)
        d = d + momentum * buf (nesterov) or buf
        param -= lr * d

    ``momentum_buffer`` (param's shape and dtype, updated in place) is needed when
    ``momentum != 0``; ``first_step=True`` initializes it with ``d``. With
    ``weight_decay == 0`` the L2 term is left out (``0 * inf`` would be NaN), as in PyTorch.
    """
    where = "sgd_step_"
    work, grad, (buf_work,) = check_step_arrays(param, grad, where, momentum_buffer=momentum_buffer)
    lr = V.real(lr, "lr", where)
    momentum = V.real(momentum, "momentum", where)
    dampening = V.real(dampening, "dampening", where)
    weight_decay = V.real(weight_decay, "weight_decay", where)
    if momentum != 0 and momentum_buffer is None:
        raise ValueError(f"{where}: momentum_buffer is required when momentum != 0")
    _C.sgd_step(
        work,
        grad,
        buf_work if momentum != 0 else None,
        lr,
        momentum,
        dampening,
        weight_decay,
        V.boolean(nesterov, "nesterov", where),
        V.boolean(first_step, "first_step", where),
    )
    write_back((param, work), (momentum_buffer, buf_work) if momentum != 0 else (None, None))
    return param


def adam_step_(
    param: np.ndarray,
    grad: Any,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    max_exp_avg_sq: np.ndarray | None = None,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    decoupled: bool = False,
) -> np.ndarray:
    """One Adam (``decoupled=False``) or AdamW (``decoupled=True``) step on ``param`` in
    place; ``step`` is the 1-based step count after this update (PyTorch's rule)::

        param *= 1 - lr * weight_decay (AdamW)  |  g = grad + weight_decay * param (Adam)
        exp_avg    = beta1 * exp_avg + (1 - beta1) * g
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g**2
        max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq)   (amsgrad: when given, used below)
        param -= lr / (1 - beta1**step) * exp_avg / (sqrt(exp_avg_sq / (1 - beta2**step)) + eps)

    Adam's L2 term is left out when ``weight_decay == 0`` (``0 * inf`` would be NaN), as in
    PyTorch; AdamW's ``g`` is always the plain gradient.
    """
    where = "adam_step_"
    work, grad, (avg, avg_sq, max_avg_sq) = check_step_arrays(
        param, grad, where, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, max_exp_avg_sq=max_exp_avg_sq
    )
    if avg is None or avg_sq is None:
        raise TypeError(f"{where}: exp_avg and exp_avg_sq must be arrays, not None")
    step_count = V.integer(step, "step", where, low=1)
    beta1 = V.real(beta1, "beta1", where)
    beta2 = V.real(beta2, "beta2", where)
    bias_correction1 = bias_correction(beta1, step_count)
    bias_correction2 = bias_correction(beta2, step_count)
    _C.adam_step(
        work,
        grad,
        avg,
        avg_sq,
        max_avg_sq,
        V.real(lr, "lr", where),
        beta1,
        beta2,
        V.real(eps, "eps", where),
        V.real(weight_decay, "weight_decay", where),
        V.boolean(decoupled, "decoupled", where),
        bias_correction1,
        bias_correction2,
    )
    write_back((param, work), (exp_avg, avg), (exp_avg_sq, avg_sq), (max_exp_avg_sq, max_avg_sq))
    return param


def bias_correction(beta: float, step: int) -> float:
    """Adam's bias correction ``1 - beta**step`` after ``step`` (1-based) updates of an
    average with decay ``beta``: what :func:`adam_step_` and ``optim.Adam`` divide by."""
    return 1.0 - beta**step


# The steps of several parameters in one call, what normreg.optim runs for a parameter group
# (as PyTorch's multi-tensor optimizers): the bindings themselves, whose C side checks every
# parameter's arrays (dtype, shape, layout, writability) before it writes any, so a TypeError
# or ValueError from them has changed nothing. Their first arguments are tuples of one entry
# per parameter, the hyperparameters (already checked by the optimizer) hold for all:
#   sgd_steps(params, grads, momentum_buffers, first_steps, lr, momentum, dampening,
#             weight_decay, nesterov)
#   adam_steps(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, bias_corrections1,
#              bias_corrections2, lr, beta1, beta2, eps, weight_decay, decoupled)
sgd_steps = _C.sgd_steps
adam_steps = _C.adam_steps
