"""Stateless forward and backward functions over normreg's C kernels.

Every op has a forward that returns what its backward needs, and a backward that
returns the input gradient. Conventions (as the kernels, see ``csrc/kernels``):

* dtypes float32 and float64; every float argument of one call has the same dtype,
  else ``TypeError``. Integer or other input is a ``TypeError``.
* Any memory layout is accepted (non-contiguous input is copied to a contiguous
  buffer first); inputs are never written to.
* Parameter gradients accumulate: when ``dweight``/``dbias`` arrays are passed, the
  gradient is **added** into them in place (as ``Module.backward`` does with
  ``.grad``); when they are ``None``, fresh arrays are returned. Input gradients are
  always new arrays (or ``out=``).
* ``out=``: an optional C-contiguous array of the output's shape and dtype to write
  the result into; it is returned.
"""
import math
import numbers

import numpy as np

from . import _C
from .random import Generator, default_generator

__all__ = [
    "linear", "linear_backward",
    "relu", "relu_backward",
    "layer_norm", "layer_norm_backward",
    "batch_norm", "batch_norm_backward",
    "dropout", "dropout_backward",
    "cross_entropy", "cross_entropy_backward",
]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _as_float_array(x, name, dtype=None, dtype_from="the other arguments"):
    """``x`` as a C-contiguous, aligned, native-order float32/float64 ndarray.

    Raises TypeError naming ``name`` for anything that is not a float array, and for a
    dtype other than ``dtype`` when that is given.
    """
    if not isinstance(x, np.ndarray):
        if x is None:
            raise TypeError(f"{name} must be an array, not None")
        try:
            x = np.asarray(x)
        except Exception as exc:  # an object whose __array__ raises, a ragged list, ...
            raise TypeError(f"{name} could not be converted to an array: {exc}") from exc
    dt = x.dtype
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        raise TypeError(f"{name} must have dtype float32 or float64, got {dt}")
    if not dt.isnative:
        x = x.astype(dt.newbyteorder("="))
        dt = x.dtype
    if dtype is not None and dt != dtype:
        raise TypeError(f"{name} has dtype {dt}, expected {np.dtype(dtype)} ({dtype_from})")
    if not (x.flags.c_contiguous and x.flags.aligned):
        x = np.require(x, requirements="CA")
    return x


def _optional_float_array(x, name, dtype, dtype_from):
    return None if x is None else _as_float_array(x, name, dtype, dtype_from)


def _check_shape(arr, name, shape, what):
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} ({what}), got {arr.shape}")


def _real(value, name):
    if type(value) is float:  # the common case, without the abstract-class check below
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def _probability(p):
    p = _real(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
    return p


def _eps(eps):
    eps = _real(eps, "eps")
    if not eps >= 0.0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return eps


def _check_out(out, shape, dtype):
    """``out`` checked before anything is computed or drawn: an ndarray of the output's
    dtype and shape, C-contiguous, aligned and writeable (a reshaped copy would leave the
    caller's array unwritten)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray or None, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype}, expected {np.dtype(dtype)}")
    _check_shape(out, "out", shape, "the output's shape")
    if not (out.flags.c_contiguous and out.flags.aligned and out.flags.writeable):
        raise ValueError("out is written in place and must be C-contiguous, aligned and writeable")
    return out


def _generator(generator):
    """``generator`` (a :class:`normreg.Generator`), or the default one for None."""
    if generator is None:
        return default_generator
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a normreg.Generator or None, got {type(generator).__name__}")
    return generator


def _accumulator(acc, name, shape, dtype):
    """The array a parameter gradient is added into: ``acc`` (checked) or fresh zeros."""
    if acc is None:
        return np.zeros(shape, dtype=dtype)
    if not isinstance(acc, np.ndarray) or acc.dtype != dtype:
        raise TypeError(f"{name} must be a {np.dtype(dtype)} ndarray")
    _check_shape(acc, name, shape, "the parameter's shape")
    if not (acc.flags.c_contiguous and acc.flags.aligned and acc.flags.writeable):
        raise ValueError(f"{name} is added to in place and must be C-contiguous and writeable")
    return acc


def _affine_grads(weight, has_bias, dweight, dbias, shape, what, dtype):
    """Check ``weight`` (or None) against ``shape`` and return the (dweight, dbias)
    accumulators of a normalization's backward: ``dweight`` when ``weight`` is given,
    ``dbias`` when ``has_bias`` (None: when ``weight`` is given); None for the others."""
    if has_bias is None:
        has_bias = weight is not None
    if weight is not None:
        _check_shape(weight, "weight", shape, what)
        dweight = _accumulator(dweight, "dweight", shape, dtype)
    else:
        dweight = None
    dbias = _accumulator(dbias, "dbias", shape, dtype) if has_bias else None
    return dweight, dbias


def _affine_params(weight, bias, x, shape, what):
    """``weight`` and ``bias`` (each an array or None) as arrays of x's dtype, checked
    against ``shape`` (``what`` names where it comes from)."""
    weight = _optional_float_array(weight, "weight", x.dtype, "the dtype of x")
    bias = _optional_float_array(bias, "bias", x.dtype, "the dtype of x")
    for arr, name in ((weight, "weight"), (bias, "bias")):
        if arr is not None:
            _check_shape(arr, name, shape, what)
    return weight, bias


# ---- linear ---------------------------------------------------------------------------


def linear(x, weight, bias=None, *, out=None):
    """``y = x @ weight + bias``.

    x (..., in_features), weight (in_features, out_features), bias (out_features,)
    or None -> y (..., out_features).
    """
    x = _as_float_array(x, "x")
    weight = _as_float_array(weight, "weight", x.dtype, "the dtype of x")
    bias = _optional_float_array(bias, "bias", x.dtype, "the dtype of x")
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D (in_features, out_features), got shape {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[0]:
        raise ValueError(f"x must have shape (..., {weight.shape[0]}) to match weight "
                         f"{weight.shape}, got {x.shape}")
    if bias is not None:
        _check_shape(bias, "bias", (weight.shape[1],), "out_features of weight")
    lead = x.shape[:-1]
    rows = math.prod(lead)  # explicit: reshape(-1, 0) is ambiguous for in_features == 0
    out2d = None
    if out is not None:
        _check_out(out, lead + (weight.shape[1],), x.dtype)
        if np.may_share_memory(out, x) or np.may_share_memory(out, weight):
            raise ValueError("out must not overlap x or weight")
        out2d = out.reshape(rows, weight.shape[1])
    y = _C.linear_forward(x.reshape(rows, weight.shape[0]), weight, bias, out2d)
    return out if out is not None else y.reshape(lead + (weight.shape[1],))


def linear_backward(dy, x, weight, *, has_bias=True, need_dx=True, dweight=None, dbias=None):
    """Gradients of :func:`linear`.

    dy (..., out_features), x (..., in_features), weight (in_features, out_features)
    -> (dx (..., in_features) or None, dweight (in_features, out_features),
    dbias (out_features,) or None when ``has_bias`` is false).
    ``dweight``/``dbias``, when given, are added to in place and returned.
    """
    x = _as_float_array(x, "x")
    dy = _as_float_array(dy, "dy", x.dtype, "the dtype of x")
    weight = _as_float_array(weight, "weight", x.dtype, "the dtype of x")
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[0]:
        raise ValueError(f"x {x.shape} and weight {weight.shape} do not match")
    _check_shape(dy, "dy", x.shape[:-1] + (weight.shape[1],), "the shape of linear's output")
    dweight = _accumulator(dweight, "dweight", weight.shape, x.dtype)
    dbias = _accumulator(dbias, "dbias", (weight.shape[1],), x.dtype) if has_bias else None
    rows = math.prod(x.shape[:-1])
    dx = _C.linear_backward(dy.reshape(rows, weight.shape[1]), x.reshape(rows, weight.shape[0]),
                            weight, None, dweight, dbias, bool(need_dx))
    if dx is not None:
        dx = dx.reshape(x.shape)
    return dx, dweight, dbias


# ---- relu -----------------------------------------------------------------------------


def relu(x, *, out=None):
    """``y = max(x, 0)`` elementwise (NaN stays NaN). Any shape."""
    x = _as_float_array(x, "x")
    return _C.relu_forward(x, out)


def relu_backward(dy, y, *, out=None):
    """``dx = dy where y > 0 else 0``, with ``y`` the output of :func:`relu`."""
    y = _as_float_array(y, "y")
    dy = _as_float_array(dy, "dy", y.dtype, "the dtype of y")
    _check_shape(dy, "dy", y.shape, "the shape of y")
    return _C.relu_backward(dy, y, out)


# ---- layer norm -----------------------------------------------------------------------


def _normalized_shape(normalized_shape):
    if type(normalized_shape) is tuple and all(type(d) is int and d >= 0 for d in normalized_shape):
        return normalized_shape
    if type(normalized_shape) is int and normalized_shape >= 0:
        return (normalized_shape,)
    if isinstance(normalized_shape, (numbers.Integral, np.integer)):
        normalized_shape = (normalized_shape,)
    try:
        dims = tuple(normalized_shape)
    except TypeError:
        dims = None
    if (dims is None or isinstance(normalized_shape, (str, bytes))
            or not all(isinstance(d, (numbers.Integral, np.integer)) and not isinstance(d, (bool, np.bool_))
                       for d in dims)):
        raise TypeError(f"normalized_shape must be an int or a sequence of ints, got {normalized_shape!r}")
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        raise ValueError(f"normalized_shape must not be negative, got {shape}")
    return shape


def _lead_dims(x, shape):
    """The leading dimensions of x, which must end with ``shape`` (a normalized_shape)."""
    k = len(shape)
    if k == 0 or x.ndim < k or x.shape[x.ndim - k:] != shape:
        raise ValueError(f"x of shape {x.shape} does not end with normalized_shape {shape}")
    return x.shape[:x.ndim - k]


def _normalized_dims(x, stat, name):
    """The trailing dimensions of x after those of ``stat`` (a per-row statistic from the
    forward, named ``name``), which must lead x's shape."""
    if x.ndim - stat.ndim < 1 or x.shape[:stat.ndim] != stat.shape:
        raise ValueError(f"{name} of shape {stat.shape} does not match x of shape {x.shape}")
    return x.shape[stat.ndim:]


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, out=None):
    """Layer normalization over the trailing ``normalized_shape`` dimensions.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance of the
    last ``len(normalized_shape)`` dims. x (*, *normalized_shape), weight and bias of
    ``normalized_shape`` or None -> (y like x, mean (*), rstd (*)), where
    ``rstd = 1 / sqrt(var + eps)``.
    """
    x = _as_float_array(x, "x")
    shape = _normalized_shape(normalized_shape)
    eps = _eps(eps)
    lead = _lead_dims(x, shape)
    weight, bias = _affine_params(weight, bias, x, shape, "normalized_shape")
    D = math.prod(shape)
    rows = math.prod(lead)  # explicit: reshape(-1, 0) is ambiguous for an empty shape
    if out is not None:
        out = _check_out(out, x.shape, x.dtype).reshape(rows, D)
    y, mean, rstd = _C.layer_norm_forward(
        x.reshape(rows, D), None if weight is None else weight.reshape(D),
        None if bias is None else bias.reshape(D), eps, out)
    return y.reshape(x.shape), mean.reshape(lead), rstd.reshape(lead)


def layer_norm_backward(dy, x, mean, rstd, weight=None, *, has_bias=None, dweight=None, dbias=None):
    """Gradients of :func:`layer_norm`.

    dy and x (*, *normalized_shape), mean and rstd (*) from the forward, weight or None
    -> (dx like x, dweight or None, dbias or None). ``dweight`` is computed when
    ``weight`` is given; ``dbias`` when ``has_bias`` (default: when ``weight`` is given).
    ``dweight``/``dbias``, when given, are added to in place and returned.
    """
    x = _as_float_array(x, "x")
    dy = _as_float_array(dy, "dy", x.dtype, "the dtype of x")
    mean = _as_float_array(mean, "mean", x.dtype, "the dtype of x")
    rstd = _as_float_array(rstd, "rstd", x.dtype, "the dtype of x")
    weight = _optional_float_array(weight, "weight", x.dtype, "the dtype of x")
    _check_shape(dy, "dy", x.shape, "the shape of x")
    shape = _normalized_dims(x, mean, "mean")
    _check_shape(rstd, "rstd", mean.shape, "the shape of mean")
    D = math.prod(shape)
    rows = mean.size
    dweight, dbias = _affine_grads(weight, has_bias, dweight, dbias, shape, "normalized_shape",
                                   x.dtype)
    dx = _C.layer_norm_backward(
        dy.reshape(rows, D), x.reshape(rows, D), mean.reshape(-1), rstd.reshape(-1),
        None if weight is None else weight.reshape(D),
        None if dweight is None else dweight.reshape(D),
        None if dbias is None else dbias.reshape(D), None)
    return dx.reshape(x.shape), dweight, dbias


# ---- batch norm -----------------------------------------------------------------------


def _as_ncl(x, name):
    if x.ndim == 2:
        return x.reshape(x.shape[0], x.shape[1], 1)
    if x.ndim == 3:
        return x
    raise ValueError(f"{name} must be 2-D (N, C) or 3-D (N, C, L), got shape {x.shape}")


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, out=None):
    """Batch normalization per channel, PyTorch's ``F.batch_norm``.

    x (N, C) or (N, C, L); running_mean, running_var, weight, bias (C,) or None.
    Training normalizes with the batch mean and biased variance over N (and L), and
    updates the running estimates in place: ``running := (1 - momentum) * running +
    momentum * stat`` (running_var gets the unbiased variance). Evaluation normalizes
    with the running estimates. Returns (y like x, save_mean (C,), save_rstd (C,)): the
    statistics used, which :func:`batch_norm_backward` takes.

    A batch with no rows returns an empty y and leaves the running estimates untouched.
    """
    x = _as_float_array(x, "x")
    x3 = _as_ncl(x, "x")
    N, C, L = x3.shape
    momentum = _real(momentum, "momentum")
    eps = _eps(eps)
    training = bool(training)
    rm = _running(running_mean, "running_mean", x.dtype, C)
    rv = _running(running_var, "running_var", x.dtype, C)
    weight, bias = _affine_params(weight, bias, x, (C,), "the channels of x")
    if not training and (rm is None or rv is None):
        raise ValueError("batch_norm in evaluation needs running_mean and running_var")
    if training and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    if out is not None:
        _check_out(out, x.shape, x.dtype)
    if N == 0:
        nan = np.full(C, np.nan, dtype=x.dtype)
        return np.empty_like(x) if out is None else out, nan, nan.copy()
    if training and N * L <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")
    if out is not None:
        out = out.reshape(x3.shape)
    y, save_mean, save_rstd = _C.batch_norm_forward(x3, weight, bias, rm, rv, training,
                                                    momentum, eps, out)
    return y.reshape(x.shape), save_mean, save_rstd


def _running(arr, name, dtype, C):
    if arr is None:
        return None
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be an ndarray (it is updated in place), got {type(arr).__name__}")
    if arr.dtype != dtype:
        raise TypeError(f"{name} has dtype {arr.dtype}, expected {np.dtype(dtype)} (the dtype of x)")
    _check_shape(arr, name, (C,), "the channels of x")
    if not (arr.flags.c_contiguous and arr.flags.aligned and arr.flags.writeable):
        raise ValueError(f"{name} is updated in place and must be C-contiguous and writeable")
    return arr


def batch_norm_backward(dy, x, save_mean, save_rstd, weight=None, training=True, *,
                        has_bias=None, dweight=None, dbias=None):
    """Gradients of :func:`batch_norm`.

    dy and x (N, C) or (N, C, L); save_mean, save_rstd (C,) from the forward; weight
    (C,) or None; ``training`` as in the forward (batch statistics: the gradient flows
    through the mean and variance; evaluation: they are constants).
    -> (dx like x, dweight or None, dbias or None), as :func:`layer_norm_backward`.
    """
    x = _as_float_array(x, "x")
    dy = _as_float_array(dy, "dy", x.dtype, "the dtype of x")
    _check_shape(dy, "dy", x.shape, "the shape of x")
    x3 = _as_ncl(x, "x")
    N, C, L = x3.shape
    save_mean = _as_float_array(save_mean, "save_mean", x.dtype, "the dtype of x")
    save_rstd = _as_float_array(save_rstd, "save_rstd", x.dtype, "the dtype of x")
    _check_shape(save_mean, "save_mean", (C,), "the channels of x")
    _check_shape(save_rstd, "save_rstd", (C,), "the channels of x")
    weight = _optional_float_array(weight, "weight", x.dtype, "the dtype of x")
    dweight, dbias = _affine_grads(weight, has_bias, dweight, dbias, (C,), "the channels of x",
                                   x.dtype)
    if N * L == 0:
        return np.empty_like(x), dweight, dbias
    dx = _C.batch_norm_backward(dy.reshape(x3.shape), x3, save_mean, save_rstd, weight,
                                dweight, dbias, bool(training), None)
    return dx.reshape(x.shape), dweight, dbias


# ---- dropout --------------------------------------------------------------------------


def dropout(x, p=0.5, training=True, *, generator=None, out=None):
    """Inverted dropout: keep each element with probability ``1 - p`` and scale it by
    ``1 / (1 - p)``, else set it to 0 (exactly 0, also for NaN or Inf input).

    Returns (y, mask): mask is a packed bit array (uint8, ``ceil(x.size / 8)`` bytes,
    bit ``i % 8`` of byte ``i // 8`` set where element ``i`` is kept), or None when
    nothing is dropped (``training=False`` or ``p=0``), in which case y is x itself (as a
    contiguous float array: a copy only when x was not one) and ``out`` is not written.
    The mask comes from ``generator`` (default: normreg's default generator) and
    depends only on its seed and counter, not on the number of threads.
    """
    x = _as_float_array(x, "x")
    p = _probability(p)
    if not training or p == 0.0:
        return x, None
    if out is not None:  # checked before the generator's counter advances
        _check_out(out, x.shape, x.dtype)
    gen = _generator(generator)
    return _C.dropout_forward(x, p, gen.initial_seed(), gen.next_offset(), out)


def dropout_backward(dy, mask, p):
    """``dx = dy / (1 - p)`` where the mask keeps, else 0; ``mask=None`` gives dy."""
    dy = _as_float_array(dy, "dy")
    p = _probability(p)
    if mask is None:
        return dy
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 1:
        raise TypeError("mask must be the 1-D uint8 array returned by dropout")
    if mask.size != (dy.size + 7) // 8:
        raise ValueError(f"mask has {mask.size} bytes, dy of size {dy.size} needs {(dy.size + 7) // 8}")
    return _C.dropout_backward(dy, np.ascontiguousarray(mask), p, None)


# ---- softmax cross-entropy --------------------------------------------------------------


def _labels(labels, batch):
    if not isinstance(labels, np.ndarray):
        try:
            labels = np.asarray(labels)
        except Exception as exc:
            raise TypeError(f"labels could not be converted to an array: {exc}") from exc
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.shape != (batch,):
        raise ValueError(f"labels must have shape ({batch},) to match logits, got {labels.shape}")
    return np.require(labels, np.int64, "CA")  # C-contiguous, aligned, native int64


def _logits(logits):
    logits = _as_float_array(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (batch, classes), got shape {logits.shape}")
    return logits


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of integer labels.

    logits (B, K), labels (B,) integers in [0, K) -> (loss as a Python float, lse (B,)),
    ``lse`` being log-sum-exp of each row (computed stably), which the backward takes.
    """
    logits = _logits(logits)
    labels = _labels(labels, logits.shape[0])
    return _C.cross_entropy_forward(logits, labels)


def cross_entropy_backward(logits, labels, lse, dloss=1.0, *, out=None):
    """``dlogits = dloss * (softmax(logits) - onehot(labels)) / B``."""
    logits = _logits(logits)
    labels = _labels(labels, logits.shape[0])
    lse = _as_float_array(lse, "lse", logits.dtype, "the dtype of logits")
    _check_shape(lse, "lse", (logits.shape[0],), "the rows of logits")
    return _C.cross_entropy_backward(logits, labels, lse, _real(dloss, "dloss"), out)


# ---- optimizer updates ----------------------------------------------------------------
# In-place steps on a parameter array and its state, one fused C pass each (normreg.optim
# validates the hyperparameters and keeps the state; these check the arrays).

__all__ += ["sgd_step_", "adam_step_"]


def _param_array(param):
    if not isinstance(param, np.ndarray):
        raise TypeError(f"param must be a numpy.ndarray, not {type(param).__name__}")
    if param.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"param must have dtype float32 or float64, got {param.dtype}")
    if not (param.flags.c_contiguous and param.flags.aligned and param.flags.writeable
            and param.dtype.isnative):
        raise ValueError("param is updated in place and must be C-contiguous, aligned and writeable")
    return param


def _state_array(buf, name, param):
    if buf is None:
        return None
    if not isinstance(buf, np.ndarray) or buf.dtype != param.dtype:
        raise TypeError(f"{name} must be a {param.dtype} ndarray (the dtype of param)")
    _check_shape(buf, name, param.shape, "the shape of param")
    if not (buf.flags.c_contiguous and buf.flags.aligned and buf.flags.writeable):
        raise ValueError(f"{name} is updated in place and must be C-contiguous and writeable")
    return buf


def sgd_step_(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0,
              weight_decay=0.0, nesterov=False, first_step=False):
    """One SGD step on ``param`` in place (PyTorch's rule)::

        d = grad + weight_decay * param
        buf = d (first step) or momentum * buf + (1 - dampening) * d   (momentum != 0)
        d = d + momentum * buf (nesterov) or buf
        param -= lr * d

    ``momentum_buffer`` (param's shape and dtype, updated in place) is needed when
    ``momentum != 0``; ``first_step=True`` initializes it with ``d``.
    """
    param = _param_array(param)
    grad = _as_float_array(grad, "grad", param.dtype, "the dtype of param")
    _check_shape(grad, "grad", param.shape, "the shape of param")
    momentum_buffer = _state_array(momentum_buffer, "momentum_buffer", param)
    if momentum != 0 and momentum_buffer is None:
        raise ValueError("momentum_buffer is required when momentum != 0")
    _C.sgd_step(param, grad, momentum_buffer if momentum != 0 else None, float(lr),
                float(momentum), float(dampening), float(weight_decay), bool(nesterov),
                bool(first_step))
    return param


def adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step, lr, beta1,
               beta2, eps, weight_decay=0.0, decoupled=False):
    """One Adam (``decoupled=False``) or AdamW (``decoupled=True``) step on ``param`` in
    place; ``step`` is the 1-based step count after this update (PyTorch's rule)::

        param *= 1 - lr * weight_decay (AdamW)  |  g = grad + weight_decay * param (Adam)
        exp_avg    = beta1 * exp_avg + (1 - beta1) * g
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g**2
        max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq)   (amsgrad: when given, used below)
        param -= lr / (1 - beta1**step) * exp_avg / (sqrt(exp_avg_sq / (1 - beta2**step)) + eps)
    """
    param = _param_array(param)
    grad = _as_float_array(grad, "grad", param.dtype, "the dtype of param")
    _check_shape(grad, "grad", param.shape, "the shape of param")
    exp_avg = _state_array(exp_avg, "exp_avg", param)
    exp_avg_sq = _state_array(exp_avg_sq, "exp_avg_sq", param)
    if exp_avg is None or exp_avg_sq is None:
        raise TypeError("exp_avg and exp_avg_sq must be arrays, not None")
    max_exp_avg_sq = _state_array(max_exp_avg_sq, "max_exp_avg_sq", param)
    bias_correction1 = 1.0 - float(beta1) ** step
    bias_correction2 = 1.0 - float(beta2) ** step
    _C.adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, float(lr), float(beta1),
                 float(beta2), float(eps), float(weight_decay), bool(decoupled),
                 bias_correction1, bias_correction2)
    return param


# ---- RMS norm and group norm ------------------------------------------------------------

__all__ += ["rms_norm", "rms_norm_backward", "group_norm", "group_norm_backward"]


def _rms_eps(eps, dtype):
    """``eps=None`` is the dtype's machine epsilon, as PyTorch's ``F.rms_norm``."""
    return float(np.finfo(dtype).eps) if eps is None else _eps(eps)


def rms_norm(x, normalized_shape, weight=None, eps=None, *, out=None):
    """RMS normalization over the trailing ``normalized_shape`` dimensions (PyTorch's
    ``F.rms_norm``): ``y = x / sqrt(mean(x**2) + eps) * weight``.

    x (*, *normalized_shape), weight of ``normalized_shape`` or None; ``eps=None`` means
    ``np.finfo(x.dtype).eps``. Returns (y like x, rstd (*)) with
    ``rstd = 1 / sqrt(mean(x**2) + eps)``, which :func:`rms_norm_backward` takes.
    """
    x = _as_float_array(x, "x")
    shape = _normalized_shape(normalized_shape)
    eps = _rms_eps(eps, x.dtype)
    lead = _lead_dims(x, shape)
    weight, _ = _affine_params(weight, None, x, shape, "normalized_shape")
    M, D = math.prod(lead), math.prod(shape)
    if out is not None:
        out = _check_out(out, x.shape, x.dtype).reshape(M, D)
    y, rstd = _C.rms_norm_forward(x.reshape(M, D), None if weight is None else weight.reshape(D),
                                  eps, out)
    return y.reshape(x.shape), rstd.reshape(lead)


def rms_norm_backward(dy, x, rstd, weight=None, *, dweight=None):
    """Gradients of :func:`rms_norm`.

    dy and x (*, *normalized_shape), rstd (*) from the forward, weight or None
    -> (dx like x, dweight or None). ``dweight`` is computed when ``weight`` is given;
    when passed, it is added to in place and returned.
    """
    x = _as_float_array(x, "x")
    dy = _as_float_array(dy, "dy", x.dtype, "the dtype of x")
    rstd = _as_float_array(rstd, "rstd", x.dtype, "the dtype of x")
    weight = _optional_float_array(weight, "weight", x.dtype, "the dtype of x")
    _check_shape(dy, "dy", x.shape, "the shape of x")
    shape = _normalized_dims(x, rstd, "rstd")
    M, D = math.prod(rstd.shape), math.prod(shape)
    dweight, _ = _affine_grads(weight, False, dweight, None, shape, "normalized_shape", x.dtype)
    dx = _C.rms_norm_backward(dy.reshape(M, D), x.reshape(M, D), rstd.reshape(M),
                              None if weight is None else weight.reshape(D),
                              None if dweight is None else dweight.reshape(D), None)
    return dx.reshape(x.shape), dweight


def _num_groups(num_groups, C):
    if isinstance(num_groups, (bool, np.bool_)) or not isinstance(num_groups, (numbers.Integral, np.integer)):
        raise TypeError(f"num_groups must be an int, got {type(num_groups).__name__}")
    num_groups = int(num_groups)
    if num_groups < 1 or C % num_groups != 0:
        raise ValueError(f"num_groups must be >= 1 and divide the number of channels {C}, got {num_groups}")
    return num_groups


def _as_ncs(x, name):
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (N, C, *) with at least 2 dimensions, got {x.shape}")
    return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, out=None):
    """Group normalization (PyTorch's ``F.group_norm``) of x (N, C, *).

    The C channels form ``num_groups`` groups of consecutive channels; each sample's group
    is normalized with its own mean and biased variance over its channels and all spatial
    positions, then each channel c gets ``* weight[c] + bias[c]`` (weight, bias (C,) or
    None). Returns (y like x, mean (N, G), rstd (N, G)) with ``rstd = 1 / sqrt(var + eps)``.
    """
    x = _as_float_array(x, "x")
    x3 = _as_ncs(x, "x")
    N, C, S = x3.shape
    G = _num_groups(num_groups, C)
    eps = _eps(eps)
    weight, bias = _affine_params(weight, bias, x, (C,), "the channels of x")
    if out is not None:
        out = _check_out(out, x.shape, x.dtype).reshape(x3.shape)
    y, mean, rstd = _C.group_norm_forward(x3, weight, bias, G, eps, out)
    return y.reshape(x.shape), mean, rstd


def group_norm_backward(dy, x, mean, rstd, weight=None, *, has_bias=None, dweight=None,
                        dbias=None):
    """Gradients of :func:`group_norm`.

    dy and x (N, C, *), mean and rstd (N, G) from the forward (G is taken from their
    shape), weight (C,) or None -> (dx like x, dweight or None, dbias or None), as
    :func:`layer_norm_backward`.
    """
    x = _as_float_array(x, "x")
    dy = _as_float_array(dy, "dy", x.dtype, "the dtype of x")
    _check_shape(dy, "dy", x.shape, "the shape of x")
    x3 = _as_ncs(x, "x")
    N, C, S = x3.shape
    mean = _as_float_array(mean, "mean", x.dtype, "the dtype of x")
    rstd = _as_float_array(rstd, "rstd", x.dtype, "the dtype of x")
    if mean.ndim != 2 or mean.shape[0] != N:
        raise ValueError(f"mean must have shape (N, num_groups) = ({N}, G), got {mean.shape}")
    G = mean.shape[1]
    if G < 1 or C % G != 0:
        raise ValueError(f"mean of shape {mean.shape} does not match x: its {G} groups do not "
                         f"divide the {C} channels")
    _check_shape(rstd, "rstd", mean.shape, "the shape of mean")
    weight = _optional_float_array(weight, "weight", x.dtype, "the dtype of x")
    dweight, dbias = _affine_grads(weight, has_bias, dweight, dbias, (C,), "the channels of x",
                                   x.dtype)
    dx = _C.group_norm_backward(dy.reshape(x3.shape), x3, mean, rstd, weight, dweight, dbias,
                                G, None)
    return dx.reshape(x.shape), dweight, dbias


# ---- convolution and pooling (NCHW) -------------------------------------------------------

__all__ += ["conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d",
            "avg_pool2d_backward", "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward"]


def _int_arg(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _pair(value, name, minimum):
    """An int or a pair of ints (each >= ``minimum``) as a pair, as PyTorch's ``_pair``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {len(value)} values")
        return (_int_arg(value[0], name, minimum), _int_arg(value[1], name, minimum))
    v = _int_arg(value, name, minimum)
    return (v, v)


def _as_nchw(x, name):
    """x (N, C, H, W), or unbatched (C, H, W) as one sample; -> (x4, unbatched)."""
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        return x[None], True
    raise ValueError(f"{name} must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {x.shape}")


def _input_hw(input_shape, dy4, unbatched):
    """(H, W) from ``input_shape`` (the shape of the pooling's input), checked against dy."""
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"input_shape must be a tuple of ints (the shape of x), got "
                        f"{type(input_shape).__name__}")
    shape = tuple(_int_arg(d, "input_shape", 0) for d in input_shape)
    expect = dy4.shape[1:2] if unbatched else dy4.shape[:2]
    if len(shape) != (3 if unbatched else 4) or shape[:len(expect)] != expect:
        raise ValueError(f"input_shape {shape} does not match dy of shape "
                         f"{dy4.shape[1:] if unbatched else dy4.shape}")
    return shape[-2], shape[-1]


def _unbatch(a, unbatched):
    return a[0] if unbatched else a


def _out_4d(out, shape, dtype, unbatched):
    if out is None:
        return None
    out = _check_out(out, shape[1:] if unbatched else shape, dtype)
    return out[None] if unbatched else out


def conv2d(x, weight, bias=None, stride=1, padding=0, *, out=None):
    """2-d convolution (cross-correlation, PyTorch's ``F.conv2d``) in NCHW.

    x (N, C, H, W) or (C, H, W); weight (O, C, KH, KW) (PyTorch's layout); bias (O,) or
    None; stride and padding an int or a pair (zero padding on both sides)
    -> y (N, O, OH, OW), ``OH = (H + 2 padding - KH) // stride + 1``::

        y[n, o, i, j] = bias[o] + sum over c, kh, kw of
                        weight[o, c, kh, kw] * x[n, c, i*sh - ph + kh, j*sw - pw + kw]

    (x is 0 outside the image). The backward needs x and weight, which the caller has.
    """
    x = _as_float_array(x, "x")
    weight = _as_float_array(weight, "weight", x.dtype, "the dtype of x")
    bias = _optional_float_array(bias, "bias", x.dtype, "the dtype of x")
    x4, unbatched = _as_nchw(x, "x")
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if weight.ndim != 4:
        raise ValueError(f"weight must be 4-D (out_channels, in_channels, kH, kW), got shape {weight.shape}")
    if weight.shape[1] != x4.shape[1]:
        raise ValueError(f"weight {weight.shape} expects {weight.shape[1]} input channels, "
                         f"x of shape {x.shape} has {x4.shape[1]}")
    if bias is not None:
        _check_shape(bias, "bias", (weight.shape[0],), "out_channels of weight")
    if out is not None:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray or None, got {type(out).__name__}")
        if np.may_share_memory(out, x) or np.may_share_memory(out, weight):
            raise ValueError("out must not overlap x or weight")
        out = out[None] if unbatched and out.ndim == 3 else out
    y = _C.conv2d_forward(x4, weight, bias, sh, sw, ph, pw, out)
    return _unbatch(y, unbatched)


def conv2d_backward(dy, x, weight, stride=1, padding=0, *, has_bias=True, need_dx=True,
                    dweight=None, dbias=None):
    """Gradients of :func:`conv2d`.

    dy (N, O, OH, OW), x (N, C, H, W), weight (O, C, KH, KW) (or all unbatched), stride and
    padding as in the forward -> (dx like x or None (``need_dx=False``), dweight like
    weight, dbias (O,) or None when ``has_bias`` is false). ``dweight``/``dbias``, when
    given, are added to in place and returned.
    """
    x = _as_float_array(x, "x")
    dy = _as_float_array(dy, "dy", x.dtype, "the dtype of x")
    weight = _as_float_array(weight, "weight", x.dtype, "the dtype of x")
    x4, unbatched = _as_nchw(x, "x")
    dy4, dy_unbatched = _as_nchw(dy, "dy")
    if dy_unbatched != unbatched:
        raise ValueError(f"dy of shape {dy.shape} does not match x of shape {x.shape}")
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if weight.ndim != 4:
        raise ValueError(f"weight must be 4-D (out_channels, in_channels, kH, kW), got shape {weight.shape}")
    dweight = _accumulator(dweight, "dweight", weight.shape, x.dtype)
    dbias = _accumulator(dbias, "dbias", (weight.shape[0],), x.dtype) if has_bias else None
    dx = _C.conv2d_backward(dy4, x4, weight, sh, sw, ph, pw, dweight, dbias, bool(need_dx))
    if dx is not None:
        dx = _unbatch(dx, unbatched)
    return dx, dweight, dbias


def _pool_args(kernel_size, stride, padding):
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding ({ph}, {pw}) must be at most half the kernel_size ({kh}, {kw})")
    return kh, kw, sh, sw, ph, pw


def max_pool2d(x, kernel_size, stride=None, padding=0, *, out=None):
    """Max pooling (PyTorch's ``F.max_pool2d`` with ``return_indices=True``).

    x (N, C, H, W) or (C, H, W); kernel_size, stride (default: kernel_size) and padding
    (at most half the kernel; padded positions never win) an int or a pair
    -> (y (N, C, OH, OW), indices): ``indices`` (int64, y's shape) holds the flat position
    ``h * W + w`` of each maximum in its plane, which :func:`max_pool2d_backward` takes.
    With ties the first position in row-major order wins (-0.0 and +0.0 tie); NaN wins
    over any number, a later NaN over an earlier one (as PyTorch's CPU kernel). Planes of
    more than 2**31 - 1 values are refused (ValueError).
    """
    x = _as_float_array(x, "x")
    x4, unbatched = _as_nchw(x, "x")
    kh, kw, sh, sw, ph, pw = _pool_args(kernel_size, stride, padding)
    if out is not None and unbatched and isinstance(out, np.ndarray) and out.ndim == 3:
        out = out[None]
    y, idx = _C.max_pool2d_forward(x4, kh, kw, sh, sw, ph, pw, out)
    return _unbatch(y, unbatched), _unbatch(idx, unbatched)


def max_pool2d_backward(dy, indices, input_shape, *, out=None):
    """Gradient of :func:`max_pool2d`: dy added at the position of each window's maximum.

    dy and indices (from the forward) of y's shape; input_shape the shape of x
    -> dx of shape input_shape.
    """
    dy = _as_float_array(dy, "dy")
    dy4, unbatched = _as_nchw(dy, "dy")
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
        raise TypeError("indices must be the integer array returned by max_pool2d")
    _check_shape(indices, "indices", dy.shape, "the shape of dy")
    idx4 = np.require(indices, np.int64, "CA").reshape(dy4.shape)
    H, W = _input_hw(input_shape, dy4, unbatched)
    dx = _C.max_pool2d_backward(dy4, idx4, H, W, _out_4d(out, (dy4.shape[0], dy4.shape[1], H, W),
                                                          dy.dtype, unbatched))
    return _unbatch(dx, unbatched)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True, *, out=None):
    """Average pooling (PyTorch's ``F.avg_pool2d``).

    x (N, C, H, W) or (C, H, W); kernel_size, stride (default: kernel_size) and padding
    (at most half the kernel) an int or a pair -> y (N, C, OH, OW): each window's sum over
    the image divided by ``kH * kW`` (``count_include_pad=True``: the zero padding counts)
    or by its number of positions inside the image.
    """
    x = _as_float_array(x, "x")
    x4, unbatched = _as_nchw(x, "x")
    kh, kw, sh, sw, ph, pw = _pool_args(kernel_size, stride, padding)
    if out is not None and unbatched and isinstance(out, np.ndarray) and out.ndim == 3:
        out = out[None]
    y = _C.avg_pool2d_forward(x4, kh, kw, sh, sw, ph, pw, bool(count_include_pad), out)
    return _unbatch(y, unbatched)


def avg_pool2d_backward(dy, input_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True, *, out=None):
    """Gradient of :func:`avg_pool2d` (same window arguments): each dy divided as in the
    forward and added over its window. -> dx of shape input_shape."""
    dy = _as_float_array(dy, "dy")
    dy4, unbatched = _as_nchw(dy, "dy")
    kh, kw, sh, sw, ph, pw = _pool_args(kernel_size, stride, padding)
    H, W = _input_hw(input_shape, dy4, unbatched)
    dx = _C.avg_pool2d_backward(dy4, H, W, kh, kw, sh, sw, ph, pw, bool(count_include_pad),
                                _out_4d(out, (dy4.shape[0], dy4.shape[1], H, W), dy.dtype, unbatched))
    return _unbatch(dx, unbatched)


def _adaptive_size(output_size, x4):
    """PyTorch's output_size: an int, or a pair whose None entries keep the input's size."""
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"output_size must be an int or a pair, got {len(output_size)} values")
        return tuple(x4.shape[2 + i] if v is None else _int_arg(v, "output_size", 1)
                     for i, v in enumerate(output_size))
    v = _int_arg(output_size, "output_size", 1)
    return (v, v)


def adaptive_avg_pool2d(x, output_size, *, out=None):
    """Adaptive average pooling (PyTorch's ``F.adaptive_avg_pool2d``) to ``output_size``.

    x (N, C, H, W) or (C, H, W) -> y (N, C, OH, OW): output ``i`` along an axis of size
    ``S`` averages positions ``floor(i S / OH) .. ceil((i + 1) S / OH) - 1``.
    ``output_size=1`` is global average pooling.
    """
    x = _as_float_array(x, "x")
    x4, unbatched = _as_nchw(x, "x")
    oh, ow = _adaptive_size(output_size, x4)
    if out is not None and unbatched and isinstance(out, np.ndarray) and out.ndim == 3:
        out = out[None]
    y = _C.adaptive_avg_pool2d_forward(x4, oh, ow, out)
    return _unbatch(y, unbatched)


def adaptive_avg_pool2d_backward(dy, input_shape, *, out=None):
    """Gradient of :func:`adaptive_avg_pool2d` (the output size is dy's): each dy divided by
    its window's size and added over the window. -> dx of shape input_shape."""
    dy = _as_float_array(dy, "dy")
    dy4, unbatched = _as_nchw(dy, "dy")
    H, W = _input_hw(input_shape, dy4, unbatched)
    dx = _C.adaptive_avg_pool2d_backward(dy4, H, W, _out_4d(out, (dy4.shape[0], dy4.shape[1], H, W),
                                                            dy.dtype, unbatched))
    return _unbatch(dx, unbatched)
