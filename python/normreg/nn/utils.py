"""``normreg.nn.utils``: helpers over parameters and modules (PyTorch's ``torch.nn.utils``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Union

import numpy as np

from .. import _validation as V
from .batchnorm import BatchNormBase
from .parameter import Module, Parameter

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "freeze_batch_norm_stats"]

Parameters = Union[Parameter, Iterable[Parameter]]


def _grads(parameters: Parameters, where: str) -> list[np.ndarray]:
    """The gradients of ``parameters`` to change in place, each checked before any is
    written: a float32 or float64 ndarray of its parameter's dtype (as the optimizers take
    it; TypeError otherwise) and writeable (ValueError otherwise)."""
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    grads = []
    for i, p in enumerate(parameters):
        if not isinstance(p, Parameter):
            raise TypeError(f"{where}: parameters must be Parameters, item {i} is {type(p).__name__}")
        g = p.grad
        if g is None:
            continue
        name = f"parameters[{i}].grad"
        if not isinstance(g, np.ndarray):
            raise TypeError(
                f"{where}: {name} must be a numpy.ndarray of float32 or float64 (it is changed "
                f"in place), got {type(g).__name__}"
            )
        V.not_masked(g, name, where)
        if g.dtype.kind != "f" or g.dtype.itemsize not in (4, 8):
            raise TypeError(f"{where}: {name} must have dtype float32 or float64, got {g.dtype}")
        if g.dtype != p.data.dtype:
            raise TypeError(
                f"{where}: {name} has dtype {g.dtype}, expected {p.data.dtype} (the dtype of the parameter)"
            )
        if not g.flags.writeable:
            raise ValueError(f"{where}: {name} is changed in place and must be writeable")
        grads.append(g)
    return grads


def _norm_type(norm_type: Any, where: str) -> float:
    if isinstance(norm_type, str) and norm_type == "inf":
        return math.inf
    return V.real(norm_type, "norm_type", where, allow_inf=True)


def _vector_norm(a: np.ndarray, norm_type: float) -> float:
    a = a.reshape(-1)
    if a.size == 0:
        return 0.0
    if norm_type == math.inf:
        return float(np.max(np.abs(a)))
    if norm_type == -math.inf:
        return float(np.min(np.abs(a)))
    return float(np.linalg.norm(a, ord=norm_type))


def get_total_norm(grads: np.ndarray | Sequence[Any], norm_type: float | str = 2.0) -> float:
    """The ``norm_type``-norm of all arrays ``grads`` taken together as one vector (the norm
    of their norms); ``grads`` one array or a sequence of them, as PyTorch's."""
    where = "get_total_norm"
    norm = _norm_type(norm_type, where)
    if isinstance(grads, np.ndarray):
        grads = [grads]
    arrays = [V.array(g, f"grads[{i}]", where) for i, g in enumerate(grads)]
    if not arrays:
        return 0.0
    norms = np.array([_vector_norm(g, norm) for g in arrays])
    return _vector_norm(norms, norm)


def clip_grad_norm_(
    parameters: Parameters, max_norm: float, norm_type: float | str = 2.0, error_if_nonfinite: bool = False
) -> float:
    """Scale the gradients of ``parameters`` in place so that their total norm is at most
    ``max_norm``, as PyTorch's ``clip_grad_norm_``.

    parameters: a Parameter or an iterable of them (e.g. ``model.parameters()``). The
    total norm is the ``norm_type``-norm of all gradients as one vector (``norm_type``
    may be ``math.inf``/``'inf'``: the largest absolute value). Every gradient is
    multiplied by ``min(1, max_norm / (total_norm + 1e-6))`` (``max_norm=inf``: never
    clipped). Returns the total norm (before clipping) as a float. With
    ``error_if_nonfinite=True`` a NaN or infinite total norm raises RuntimeError and leaves
    the gradients untouched.

    Every gradient is checked before any is scaled: a float32 or float64 ndarray of its
    parameter's dtype (TypeError otherwise, as the optimizers) and writeable (ValueError
    otherwise); a call that raises has changed no gradient.
    """
    where = "clip_grad_norm_"
    grads = _grads(parameters, where)
    max_norm = V.real(max_norm, "max_norm", where, allow_inf=True)
    error_if_nonfinite = V.boolean(error_if_nonfinite, "error_if_nonfinite", where)
    norm = _norm_type(norm_type, where)
    total = get_total_norm(grads, norm)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm} for gradients is non-finite, so it "
            "cannot be clipped. To disable this error and scale the gradients by "
            "the non-finite norm anyway, set error_if_nonfinite=False"
        )
    coef = max_norm / (total + 1e-6)
    if coef < 1.0 or math.isnan(coef):
        for g in grads:
            g *= g.dtype.type(coef)
    return total


def clip_grad_value_(parameters: Parameters, clip_value: float) -> None:
    """Clip every gradient of ``parameters`` in place to ``[-clip_value, clip_value]``.

    The gradients are checked first, as :func:`clip_grad_norm_` checks them: a call that
    raises has changed no gradient."""
    where = "clip_grad_value_"
    clip_value = V.real(clip_value, "clip_value", where, allow_inf=True)
    for g in _grads(parameters, where):
        np.clip(g, -clip_value, clip_value, out=g)


def freeze_batch_norm_stats(module: Module, freeze: bool = True) -> int:
    """Set ``freeze_stats`` on every BatchNorm1d/BatchNorm2d in ``module``: they normalize
    with their running estimates and stop updating them, while their weight and bias keep
    training, even in training mode (``module.train()`` does not undo it; call again with
    ``freeze=False``). Layers with ``track_running_stats=False`` are left alone.
    Returns the number of layers changed."""
    if not isinstance(module, Module):
        raise TypeError(f"freeze_batch_norm_stats: module must be a Module, got {type(module).__name__}")
    changed = 0
    for m in module.modules():
        if isinstance(m, BatchNormBase) and m.track_running_stats:
            m.freeze_stats = bool(freeze)
            changed += 1
    return changed
