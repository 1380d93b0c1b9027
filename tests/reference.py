"""Pure-NumPy reference implementations of normreg's ops, forward and backward.

Written from the math (DESIGN.md, PyTorch's documentation), independently of normreg's
kernels. Everything is computed in float64 and returned in float64; tests compare the
library's result against these within a dtype-dependent tolerance.
"""
import numpy as np


def _f64(*arrays):
    return [None if a is None else np.asarray(a, dtype=np.float64) for a in arrays]


# ---- linear: y = x W + b, W (in, out) -----------------------------------------------------

def linear(x, W, b=None):
    x, W, b = _f64(x, W, b)
    y = np.einsum("...i,io->...o", x, W)
    return y if b is None else y + b


def linear_backward(dy, x, W):
    """-> (dx, dW, db)."""
    dy, x, W = _f64(dy, x, W)
    dx = np.einsum("...o,io->...i", dy, W)
    rows = int(np.prod(x.shape[:-1]))
    x2 = x.reshape(rows, W.shape[0])
    dy2 = dy.reshape(rows, W.shape[1])
    return dx, x2.T @ dy2, dy2.sum(axis=0)


# ---- relu -----------------------------------------------------------------------------------

def relu(x):
    (x,) = _f64(x)
    return np.where(x > 0, x, 0.0)


def relu_backward(dy, x):
    dy, x = _f64(dy, x)
    return np.where(x > 0, dy, 0.0)


# ---- layer norm over the trailing normalized_shape dims -------------------------------------

def _ln_axes(x, normalized_shape):
    k = len(normalized_shape)
    return tuple(range(x.ndim - k, x.ndim))


def layer_norm(x, normalized_shape, w=None, b=None, eps=1e-5):
    """-> (y, mean, rstd); mean and rstd have the leading shape of x."""
    x, w, b = _f64(x, w, b)
    ax = _ln_axes(x, normalized_shape)
    mu = x.mean(axis=ax, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=ax, keepdims=True)        # biased
    rstd = 1.0 / np.sqrt(var + eps)                             # eps inside the sqrt
    xhat = (x - mu) * rstd
    y = xhat
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    lead = x.shape[:x.ndim - len(ax)]
    return y, mu.reshape(lead), rstd.reshape(lead)


def layer_norm_backward(dy, x, normalized_shape, w=None, eps=1e-5):
    """-> (dx, dw, db) from the closed form of the layer-norm Jacobian."""
    dy, x, w = _f64(dy, x, w)
    ax = _ln_axes(x, normalized_shape)
    lead_axes = tuple(range(x.ndim - len(ax)))
    D = int(np.prod(normalized_shape))
    mu = x.mean(axis=ax, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=ax, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    g = dy if w is None else dy * w                              # d loss / d xhat
    dx = rstd / D * (D * g - g.sum(axis=ax, keepdims=True)
                     - xhat * (g * xhat).sum(axis=ax, keepdims=True))
    dw = (dy * xhat).sum(axis=lead_axes)
    db = dy.sum(axis=lead_axes)
    return dx, dw, db


# ---- batch norm over (N, C) and (N, C, L) -----------------------------------------------------

def _bn_axes(x):
    return (0,) if x.ndim == 2 else (0, 2)


def _bn_bcast(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batch_norm_train(x, w=None, b=None, running_mean=None, running_var=None,
                     momentum=0.1, eps=1e-5):
    """Training mode. -> (y, new_running_mean, new_running_var, batch_mean, batch_rstd).

    Normalizes with the biased batch variance; the running variance is fed the unbiased one.
    """
    x, w, b, rm, rv = _f64(x, w, b, running_mean, running_var)
    ax = _bn_axes(x)
    n = x.size // x.shape[1]
    mu = x.mean(axis=ax)
    var = ((x - _bn_bcast(mu, x)) ** 2).mean(axis=ax)
    rstd = 1.0 / np.sqrt(var + eps)
    y = (x - _bn_bcast(mu, x)) * _bn_bcast(rstd, x)
    if w is not None:
        y = y * _bn_bcast(w, x)
    if b is not None:
        y = y + _bn_bcast(b, x)
    new_rm = new_rv = None
    if rm is not None:
        new_rm = (1 - momentum) * rm + momentum * mu
    if rv is not None:
        new_rv = (1 - momentum) * rv + momentum * var * n / (n - 1)
    return y, new_rm, new_rv, mu, rstd


def batch_norm_eval(x, running_mean, running_var, w=None, b=None, eps=1e-5):
    x, rm, rv, w, b = _f64(x, running_mean, running_var, w, b)
    y = (x - _bn_bcast(rm, x)) / np.sqrt(_bn_bcast(rv, x) + eps)
    if w is not None:
        y = y * _bn_bcast(w, x)
    if b is not None:
        y = y + _bn_bcast(b, x)
    return y


def batch_norm_train_backward(dy, x, w=None, eps=1e-5):
    """-> (dx, dw, db) in training mode (gradient flows through the batch statistics)."""
    dy, x, w = _f64(dy, x, w)
    ax = _bn_axes(x)
    n = x.size // x.shape[1]
    mu = _bn_bcast(x.mean(axis=ax), x)
    var = _bn_bcast(((x - mu) ** 2).mean(axis=ax), x)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    g = dy if w is None else dy * _bn_bcast(w, x)
    dx = rstd / n * (n * g - g.sum(axis=ax, keepdims=True)
                     - xhat * (g * xhat).sum(axis=ax, keepdims=True))
    return dx, (dy * xhat).sum(axis=ax), dy.sum(axis=ax)


def batch_norm_eval_backward(dy, x, running_mean, running_var, w=None, eps=1e-5):
    """-> (dx, dw, db) in evaluation mode (running statistics are constants)."""
    dy, x, rm, rv, w = _f64(dy, x, running_mean, running_var, w)
    ax = _bn_axes(x)
    rstd = 1.0 / np.sqrt(_bn_bcast(rv, x) + eps)
    xhat = (x - _bn_bcast(rm, x)) * rstd
    scale = rstd if w is None else rstd * _bn_bcast(w, x)
    return dy * scale, (dy * xhat).sum(axis=ax), dy.sum(axis=ax)


# ---- dropout ----------------------------------------------------------------------------------

def dropout_keep(mask_bits, shape):
    """Boolean keep-array from a packed mask (bit i % 8 of byte i // 8 is element i)."""
    size = int(np.prod(shape))
    bits = np.unpackbits(np.asarray(mask_bits, dtype=np.uint8), bitorder="little")
    return bits[:size].astype(bool).reshape(shape)


def dropout(x, keep, p):
    (x,) = _f64(x)
    return np.where(keep, x / (1.0 - p), 0.0)


def dropout_backward(dy, keep, p):
    (dy,) = _f64(dy)
    return np.where(keep, dy / (1.0 - p), 0.0)


# ---- softmax cross-entropy, mean reduction --------------------------------------------------

def logsumexp(z):
    (z,) = _f64(z)
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def cross_entropy(logits, labels):
    """-> (mean loss, lse per row)."""
    (z,) = _f64(logits)
    lse = logsumexp(z)
    B = z.shape[0]
    return float(np.mean(lse - z[np.arange(B), labels])), lse


def cross_entropy_backward(logits, labels, dloss=1.0):
    (z,) = _f64(logits)
    B = z.shape[0]
    p = np.exp(z - logsumexp(z)[:, None])
    p[np.arange(B), labels] -= 1.0
    return dloss * p / B
