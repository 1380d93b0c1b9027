"""``normreg.nn.utils``: helpers over parameters and modules (PyTorch's ``torch.nn.utils``)."""
import math
import numbers

import numpy as np

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "freeze_batch_norm_stats"]


def _grads(parameters):
    from .nn import Parameter  # nn imports this module at its end

    if isinstance(parameters, Parameter):
        parameters = [parameters]
    grads = []
    for i, p in enumerate(parameters):
        if not isinstance(p, Parameter):
            raise TypeError(f"parameters must be Parameters, item {i} is {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad)
    return grads


def _norm_type(norm_type):
    if isinstance(norm_type, str) and norm_type == "inf":
        return math.inf
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a real number or 'inf', got {type(norm_type).__name__}")
    norm_type = float(norm_type)
    if math.isnan(norm_type):
        raise ValueError("norm_type must not be NaN")
    return norm_type


def _vector_norm(a, norm_type):
    a = a.reshape(-1)
    if a.size == 0:
        return 0.0
    if norm_type == math.inf:
        return float(np.max(np.abs(a)))
    if norm_type == -math.inf:
        return float(np.min(np.abs(a)))
    return float(np.linalg.norm(a, ord=norm_type))


def get_total_norm(grads, norm_type=2.0):
    """The ``norm_type``-norm of all arrays ``grads`` taken together as one vector (the norm
    of their norms)."""
    norm_type = _norm_type(norm_type)
    if not grads:
        return 0.0
    norms = np.array([_vector_norm(np.asarray(g), norm_type) for g in grads])
    return _vector_norm(norms, norm_type)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients of ``parameters`` in place so that their total norm is at most
    ``max_norm``, as PyTorch's ``clip_grad_norm_``.

    parameters: a Parameter or an iterable of them (e.g. ``model.parameters()``). The
    total norm is the ``norm_type``-norm of all gradients as one vector (``norm_type``
    may be ``math.inf``/``'inf'``: the largest absolute value). Every gradient is
    multiplied by ``min(1, max_norm / (total_norm + 1e-6))``. Returns the total norm
    (before clipping) as a float. With ``error_if_nonfinite=True`` a NaN or infinite
    total norm raises RuntimeError and leaves the gradients untouched.
    """
    grads = _grads(parameters)
    max_norm = float(max_norm) if isinstance(max_norm, numbers.Real) and not isinstance(max_norm, bool) else None
    if max_norm is None:
        raise TypeError("max_norm must be a real number")
    total = get_total_norm(grads, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {float(_norm_type(norm_type))} for gradients "
                           "is non-finite, so it cannot be clipped. To disable this error and "
                           "scale the gradients by the non-finite norm anyway, set "
                           "error_if_nonfinite=False")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0 or math.isnan(coef):
        for g in grads:
            g *= g.dtype.type(coef)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clip every gradient of ``parameters`` in place to ``[-clip_value, clip_value]``."""
    if isinstance(clip_value, bool) or not isinstance(clip_value, numbers.Real):
        raise TypeError("clip_value must be a real number")
    clip_value = float(clip_value)
    for g in _grads(parameters):
        np.clip(g, -clip_value, clip_value, out=g)


def freeze_batch_norm_stats(module, freeze=True):
    """Set ``freeze_stats`` on every BatchNorm1d/BatchNorm2d in ``module``: they normalize
    with their running estimates and stop updating them, while their weight and bias keep
    training, even in training mode (``module.train()`` does not undo it; call again with
    ``freeze=False``). Layers with ``track_running_stats=False`` are left alone.
    Returns the number of layers changed."""
    from .nn import Module, _BatchNorm

    if not isinstance(module, Module):
        raise TypeError(f"module must be a Module, got {type(module).__name__}")
    changed = 0
    for m in module.modules():
        if isinstance(m, _BatchNorm) and m.track_running_stats:
            m.freeze_stats = bool(freeze)
            changed += 1
    return changed
