"""Pure-NumPy twins of the extra normalization layers, in float64, for the tests."""
import numpy as np


def offset_randn(rng, shape, dtype=np.float64):
    """Inputs deliberately away from zero (5 randn + 12), as cs231n's gradient checks."""
    return (5 * rng.standard_normal(shape) + 12).astype(dtype)


def rms_norm(x, k, weight=None, eps=None):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last k axes."""
    if eps is None:
        eps = np.finfo(x.dtype).eps
    x = x.astype(np.float64)
    axes = tuple(range(x.ndim - k, x.ndim))
    rstd = 1 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
    y = x * rstd
    return y if weight is None else y * weight


def rms_norm_backward(dy, x, k, weight=None, eps=None):
    """Gradient of rms_norm: with r = rstd, g = dy w, dx = r g - x r^3 mean(g x)."""
    if eps is None:
        eps = np.finfo(x.dtype).eps
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    axes = tuple(range(x.ndim - k, x.ndim))
    r = 1 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
    g = dy if weight is None else dy * weight
    dx = r * g - x * r ** 3 * np.mean(g * x, axis=axes, keepdims=True)
    lead = tuple(range(x.ndim - k))
    dw = None if weight is None else np.sum(dy * x * r, axis=lead)
    return dx, dw


def _group_view(x, G):
    N, C = x.shape[:2]
    return x.reshape(N, G, -1)


def group_norm(x, G, weight=None, bias=None, eps=1e-5):
    """Each sample's group of C/G channels normalized over its channels and positions."""
    x = x.astype(np.float64)
    xg = _group_view(x, G)
    mean = xg.mean(axis=2, keepdims=True)
    var = xg.var(axis=2, keepdims=True)
    y = ((xg - mean) / np.sqrt(var + eps)).reshape(x.shape)
    cshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(cshape)
    if bias is not None:
        y = y + bias.reshape(cshape)
    return y, mean.reshape(x.shape[0], G), (1 / np.sqrt(var + eps)).reshape(x.shape[0], G)


def group_norm_backward(dy, x, G, weight=None, eps=1e-5):
    """dx = rstd (g - mean(g) - xhat mean(g xhat)) per group, g = dy w[c]."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    cshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    g = dy if weight is None else dy * weight.reshape(cshape)
    xg, gg = _group_view(x, G), _group_view(g, G)
    mean = xg.mean(axis=2, keepdims=True)
    rstd = 1 / np.sqrt(xg.var(axis=2, keepdims=True) + eps)
    xhat = (xg - mean) * rstd
    dx = rstd * (gg - gg.mean(axis=2, keepdims=True) - xhat * (gg * xhat).mean(axis=2, keepdims=True))
    axes = (0,) + tuple(range(2, x.ndim))
    xhat_full = xhat.reshape(x.shape)
    dw = np.sum(dy * xhat_full, axis=axes)
    db = np.sum(dy, axis=axes)
    return dx.reshape(x.shape), dw, db


def batch_norm_2d_train(x, weight, bias, eps=1e-5):
    """Training batch norm of (N, C, H, W): statistics over N, H, W per channel."""
    x = x.astype(np.float64)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    c = (1, -1, 1, 1)
    y = (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + eps) * weight.reshape(c) + bias.reshape(c)
    return y, mean, var


def batch_norm_2d_backward(dy, x, weight, eps=1e-5):
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    c = (1, -1, 1, 1)
    axes = (0, 2, 3)
    mean = x.mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    g = dy * weight.reshape(c)
    dx = rstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return dx, np.sum(dy * xhat, axis=axes), np.sum(dy, axis=axes)


def layer_norm(x, k, weight=None, bias=None, eps=1e-5):
    x = x.astype(np.float64)
    axes = tuple(range(x.ndim - k, x.ndim))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y
