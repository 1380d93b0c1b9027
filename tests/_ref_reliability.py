"""NumPy twins of normreg's ops and memory-layout helpers for the reliability tests.

The references compute in float64 from the formulas in DESIGN.md, independently of the
C kernels. ``layout(a, kind)`` returns an array equal to ``a`` in another memory layout.
"""
import numpy as np

LAYOUTS = ("C", "F", "strided", "negative", "unaligned", "readonly", "byteswapped")


def layout(a, kind):
    """An array with the values, shape and dtype (up to byte order) of ``a``, laid out as
    ``kind``: C order, Fortran order, a strided slice of a larger array, a view with
    negative strides, an unaligned buffer (offset by one byte into a bytearray), a
    read-only array, or non-native byte order."""
    a = np.asarray(a)
    if kind == "C":
        return np.array(a, order="C", copy=True)
    if kind == "F":
        return np.array(a, order="F", copy=True)
    if kind == "strided":
        if a.ndim == 0:
            return a.copy()
        big = np.zeros(tuple(2 * s + 1 for s in a.shape), dtype=a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if kind == "negative":
        if a.ndim == 0:
            return a.copy()
        rev = np.array(a[tuple(slice(None, None, -1) for _ in a.shape)], order="C")
        view = rev[tuple(slice(None, None, -1) for _ in a.shape)]
        return view
    if kind == "unaligned":
        buf = bytearray(a.nbytes + a.dtype.itemsize + 1)
        view = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        view[...] = a
        return view
    if kind == "readonly":
        r = a.copy()
        r.flags.writeable = False
        return r
    if kind == "byteswapped":
        return a.astype(a.dtype.newbyteorder())
    raise ValueError(kind)


def snapshot(*arrays):
    """Copies of the arrays (and their bytes) to check later that they were not modified."""
    return [(a, np.array(a, copy=True), a.tobytes()) for a in arrays if isinstance(a, np.ndarray)]


def assert_unmodified(snap):
    for arr, copy, raw in snap:
        assert np.array_equal(arr, copy, equal_nan=True), "an input array was modified"
        assert arr.tobytes() == raw, "an input array's bytes were modified"


# ---- references (float64) ------------------------------------------------------------


def f64(a):
    return np.asarray(a, dtype=np.float64)


def linear(x, w, b):
    y = f64(x) @ f64(w)
    return y if b is None else y + f64(b)


def linear_backward(dy, x, w):
    m = int(np.prod(x.shape[:-1]))
    dy2 = f64(dy).reshape(m, w.shape[1])
    x2 = f64(x).reshape(m, w.shape[0])
    return (dy2 @ f64(w).T).reshape(x.shape), x2.T @ dy2, dy2.sum(axis=0)


def relu(x):
    x = f64(x)
    return np.where(x < 0, 0.0, x)


def relu_backward(dy, y):
    return np.where(f64(y) > 0, f64(dy), 0.0)


def layer_norm(x, k, w, b, eps):
    """Normalizes over the last k dims. -> (y, mean, rstd)"""
    x = f64(x)
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = x.mean(axis=axes, keepdims=True) if x.size else np.zeros(x.shape[:x.ndim - k] + (1,) * k)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True) if x.size else np.zeros_like(mean)
    rstd = 1.0 / np.sqrt(var + eps)
    y = (x - mean) * rstd
    if w is not None:
        y = y * f64(w)
    if b is not None:
        y = y + f64(b)
    return y, mean.reshape(x.shape[:x.ndim - k]), rstd.reshape(x.shape[:x.ndim - k])


def layer_norm_backward(dy, x, k, w, eps):
    """-> (dx, dw, db) for y = xhat * w + b, xhat over the last k dims."""
    x, dy = f64(x), f64(dy)
    axes = tuple(range(x.ndim - k, x.ndim))
    D = int(np.prod(x.shape[x.ndim - k:]))
    mean = x.mean(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    g = dy * (1.0 if w is None else f64(w))
    # d/dx of xhat: rstd (g - mean(g) - xhat mean(g xhat))
    dx = rstd * (g - g.sum(axis=axes, keepdims=True) / D
                 - xhat * (g * xhat).sum(axis=axes, keepdims=True) / D)
    lead = tuple(range(x.ndim - k))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)


def _ncl(x):
    x = f64(x)
    return x[:, :, None] if x.ndim == 2 else x


def batch_norm_train(x, w, b, rm, rv, momentum, eps):
    """-> (y, mean, rstd, new_running_mean, new_running_var)"""
    x3 = _ncl(x)
    n = x3.shape[0] * x3.shape[2]
    mean = x3.mean(axis=(0, 2))
    var = ((x3 - mean[None, :, None]) ** 2).mean(axis=(0, 2))
    rstd = 1.0 / np.sqrt(var + eps)
    y = (x3 - mean[None, :, None]) * rstd[None, :, None]
    if w is not None:
        y = y * f64(w)[None, :, None]
    if b is not None:
        y = y + f64(b)[None, :, None]
    new_rm = None if rm is None else (1 - momentum) * f64(rm) + momentum * mean
    new_rv = None if rv is None else (1 - momentum) * f64(rv) + momentum * var * n / (n - 1)
    return y.reshape(np.shape(x)), mean, rstd, new_rm, new_rv


def batch_norm_eval(x, w, b, rm, rv, eps):
    x3 = _ncl(x)
    rstd = 1.0 / np.sqrt(f64(rv) + eps)
    y = (x3 - f64(rm)[None, :, None]) * rstd[None, :, None]
    if w is not None:
        y = y * f64(w)[None, :, None]
    if b is not None:
        y = y + f64(b)[None, :, None]
    return y.reshape(np.shape(x))


def batch_norm_backward(dy, x, mean, rstd, w, training):
    """-> (dx, dw, db) given the statistics used in the forward."""
    x3, dy3 = _ncl(x), _ncl(dy)
    n = x3.shape[0] * x3.shape[2]
    mean, rstd = f64(mean)[None, :, None], f64(rstd)[None, :, None]
    xhat = (x3 - mean) * rstd
    wv = 1.0 if w is None else f64(w)[None, :, None]
    db = dy3.sum(axis=(0, 2))
    dw = (dy3 * xhat).sum(axis=(0, 2))
    if training:
        dx = wv * rstd * (dy3 - db[None, :, None] / n - xhat * dw[None, :, None] / n)
    else:
        dx = wv * rstd * dy3
    return dx.reshape(np.shape(x)), dw, db


def unpack_mask(mask, n):
    return np.unpackbits(np.asarray(mask, dtype=np.uint8), bitorder="little")[:n].astype(bool)


def dropout(x, keep, p):
    x = f64(x)
    return np.where(keep.reshape(x.shape), x / (1 - p), 0.0) if p < 1 else np.zeros_like(x)


def cross_entropy(logits, labels):
    """-> (mean loss, lse)"""
    z = f64(logits)
    if z.shape[0] == 0:
        return float("nan"), np.zeros(0)
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(lse - z[np.arange(z.shape[0]), labels])), lse


def cross_entropy_backward(logits, labels, dloss):
    z = f64(logits)
    B = z.shape[0]
    if B == 0:
        return np.zeros_like(z)
    m = z.max(axis=1, keepdims=True)
    p = np.exp(z - m)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(B), labels] -= 1
    return p * dloss / B


def sgd_step(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    """PyTorch's SGD rule in float64 -> (new param, new buf)."""
    p, g = f64(param), f64(grad)
    d = g + weight_decay * p
    new_buf = None
    if momentum != 0:
        new_buf = d.copy() if first else momentum * f64(buf) + (1 - dampening) * d
        d = d + momentum * new_buf if nesterov else new_buf
    return p - lr * d, new_buf


def adam_step(param, grad, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """PyTorch's Adam/AdamW rule in float64 -> (param, m, v, vmax)."""
    p, g = f64(param), f64(grad)
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m = beta1 * f64(m) + (1 - beta1) * g
    v = beta2 * f64(v) + (1 - beta2) * g * g
    denom_v = v
    if vmax is not None:
        vmax = np.maximum(f64(vmax), v)
        denom_v = vmax
    bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
    p = p - lr / bc1 * m / (np.sqrt(denom_v / bc2) + eps)
    return p, m, v, vmax


def rms_norm(x, k, w, eps):
    """-> (y, rstd) over the last k dims."""
    x = f64(x)
    axes = tuple(range(x.ndim - k, x.ndim))
    rstd = 1.0 / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    y = x * rstd * (1.0 if w is None else f64(w))
    return y, rstd.reshape(x.shape[:x.ndim - k])


def rms_norm_backward(dy, x, k, w, eps):
    x, dy = f64(x), f64(dy)
    axes = tuple(range(x.ndim - k, x.ndim))
    rstd = 1.0 / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    xhat = x * rstd
    g = dy * (1.0 if w is None else f64(w))
    dx = rstd * (g - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return dx, (dy * xhat).sum(axis=tuple(range(x.ndim - k)))


def group_norm(x, G, w, b, eps):
    """x (N, C, *) -> (y, mean (N, G), rstd (N, G))"""
    x = f64(x)
    N, C = x.shape[:2]
    if N == 0:
        return x.copy(), np.zeros((0, G)), np.zeros((0, G))
    xg = x.reshape(N, G, -1)
    mean = xg.mean(axis=2, keepdims=True)
    rstd = 1.0 / np.sqrt(((xg - mean) ** 2).mean(axis=2, keepdims=True) + eps)
    y = ((xg - mean) * rstd).reshape(x.shape)
    cshape = (1, C) + (1,) * (x.ndim - 2)
    if w is not None:
        y = y * f64(w).reshape(cshape)
    if b is not None:
        y = y + f64(b).reshape(cshape)
    return y, mean[:, :, 0], rstd[:, :, 0]


def group_norm_backward(dy, x, G, w, eps):
    x, dy = f64(x), f64(dy)
    N, C = x.shape[:2]
    cshape = (1, C) + (1,) * (x.ndim - 2)
    xg = x.reshape(N, G, -1)
    mean = xg.mean(axis=2, keepdims=True)
    rstd = 1.0 / np.sqrt(((xg - mean) ** 2).mean(axis=2, keepdims=True) + eps)
    xhat = ((xg - mean) * rstd).reshape(x.shape)
    g = (dy * (1.0 if w is None else f64(w).reshape(cshape))).reshape(N, G, -1)
    xh = xhat.reshape(N, G, -1)
    dx = rstd * (g - g.mean(axis=2, keepdims=True) - xh * (g * xh).mean(axis=2, keepdims=True))
    red = (0,) + tuple(range(2, x.ndim))
    return dx.reshape(x.shape), (dy * xhat).sum(axis=red), dy.sum(axis=red)
