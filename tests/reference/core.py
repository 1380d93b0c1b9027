"""The references of the ops on flat and (N, C, *) arrays, and of the optimizer steps: linear,
relu, layer_norm, batch_norm (training, evaluation, the synchronized backward), rms_norm,
group_norm (instance norm is group norm with one channel per group), dropout (and the
Philox4x32-10 generator of its masks), cross_entropy, the SGD and Adam/AdamW steps.
See the package's docstring (reference/__init__.py) for what they are written from.
"""

import numpy as np


def f64(*arrays):
    """float64 copies of the arrays (None stays None); one array gives one array."""
    out = [None if a is None else np.asarray(a, dtype=np.float64) for a in arrays]
    return out[0] if len(out) == 1 else out


# ---- linear: y = x W + b, W stored (in, out) ---------------------------------------------


def linear(x, W, b=None):
    x, W, b = f64(x, W, b)
    y = np.einsum("...i,io->...o", x, W)
    return y if b is None else y + b


def linear_backward(dy, x, W):
    """-> (dx, dW, db): dx = dy W^T, dW = x^T dy and db = sum(dy) over every row."""
    dy, x, W = f64(dy, x, W)
    dx = np.einsum("...o,io->...i", dy, W)
    rows = int(np.prod(x.shape[:-1]))
    x2 = x.reshape(rows, W.shape[0])
    dy2 = dy.reshape(rows, W.shape[1])
    return dx, x2.T @ dy2, dy2.sum(axis=0)


# ---- relu --------------------------------------------------------------------------------


def relu(x):
    """max(x, 0); NaN stays NaN (PyTorch's rule)."""
    x = f64(x)
    return np.where(x < 0, 0.0, x)


def relu_backward(dy, x):
    """0 where x <= 0, else dy (also at NaN: PyTorch's threshold_backward). ``x`` may be the
    input or the output."""
    dy, x = f64(dy, x)
    return np.where(x <= 0, 0.0, dy)


# ---- layer norm over the trailing normalized_shape dims ----------------------------------


def _trailing(x, normalized_shape):
    """The axes of the trailing ``normalized_shape`` (an int or a tuple of sizes)."""
    k = 1 if np.isscalar(normalized_shape) else len(normalized_shape)
    return tuple(range(x.ndim - k, x.ndim))


def layer_norm(x, normalized_shape, w=None, b=None, eps=1e-5):
    """y = (x - E[x]) / sqrt(Var[x] + eps) * w + b over the trailing dims, Var biased (/N),
    eps inside the sqrt. -> (y, mean, rstd); mean and rstd have the leading shape of x."""
    x, w, b = f64(x, w, b)
    ax = _trailing(x, normalized_shape)
    lead = x.shape[: x.ndim - len(ax)]
    if x.size == 0:
        return x.copy(), np.zeros(lead), np.full(lead, 1.0 / np.sqrt(eps) if eps > 0 else np.inf)
    mu = x.mean(axis=ax, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=ax, keepdims=True)  # biased
    rstd = 1.0 / np.sqrt(var + eps)  # eps inside the sqrt
    y = (x - mu) * rstd
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y, mu.reshape(lead), rstd.reshape(lead)


def layer_norm_backward(dy, x, normalized_shape, w=None, eps=1e-5):
    """-> (dx, dw, db) from the closed form of the layer-norm Jacobian: with g = dy w and
    xhat the normalized x, dx = rstd (g - mean(g) - xhat mean(g xhat)) per row."""
    dy, x, w = f64(dy, x, w)
    ax = _trailing(x, normalized_shape)
    lead_axes = tuple(range(x.ndim - len(ax)))
    D = int(np.prod([x.shape[a] for a in ax]))
    mu = x.mean(axis=ax, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=ax, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    g = dy if w is None else dy * w  # d loss / d xhat
    dx = rstd / D * (D * g - g.sum(axis=ax, keepdims=True) - xhat * (g * xhat).sum(axis=ax, keepdims=True))
    return dx, (dy * xhat).sum(axis=lead_axes), dy.sum(axis=lead_axes)


# ---- batch norm over (N, C) and (N, C, *): statistics per channel -------------------------


def _bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batch_norm_train(x, w=None, b=None, running_mean=None, running_var=None, momentum=0.1, eps=1e-5):
    """Training mode. -> (y, new_running_mean, new_running_var, batch_mean, batch_rstd).

    Normalizes with the biased batch variance; the running estimates are updated as
    ``(1 - momentum) * running + momentum * batch``, the variance with the unbiased one
    (N - 1), as PyTorch does.
    """
    x, w, b, rm, rv = f64(x, w, b, running_mean, running_var)
    ax = _bn_axes(x)
    n = x.size // x.shape[1]
    mu = x.mean(axis=ax)
    var = ((x - _per_channel(mu, x)) ** 2).mean(axis=ax)
    rstd = 1.0 / np.sqrt(var + eps)
    y = (x - _per_channel(mu, x)) * _per_channel(rstd, x)
    if w is not None:
        y = y * _per_channel(w, x)
    if b is not None:
        y = y + _per_channel(b, x)
    new_rm = None if rm is None else (1 - momentum) * rm + momentum * mu
    new_rv = None if rv is None else (1 - momentum) * rv + momentum * var * n / (n - 1)
    return y, new_rm, new_rv, mu, rstd


def batch_norm_eval(x, running_mean, running_var, w=None, b=None, eps=1e-5):
    """Evaluation mode: (x - running_mean) / sqrt(running_var + eps) * w + b."""
    x, rm, rv, w, b = f64(x, running_mean, running_var, w, b)
    y = (x - _per_channel(rm, x)) / np.sqrt(_per_channel(rv, x) + eps)
    if w is not None:
        y = y * _per_channel(w, x)
    if b is not None:
        y = y + _per_channel(b, x)
    return y


def batch_norm_train_backward(dy, x, w=None, eps=1e-5):
    """-> (dx, dw, db) in training mode (the gradient flows through the batch statistics)."""
    dy, x, w = f64(dy, x, w)
    ax = _bn_axes(x)
    n = x.size // x.shape[1]
    mu = _per_channel(x.mean(axis=ax), x)
    var = _per_channel(((x - mu) ** 2).mean(axis=ax), x)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    g = dy if w is None else dy * _per_channel(w, x)
    dx = rstd / n * (n * g - g.sum(axis=ax, keepdims=True) - xhat * (g * xhat).sum(axis=ax, keepdims=True))
    return dx, (dy * xhat).sum(axis=ax), dy.sum(axis=ax)


def batch_norm_eval_backward(dy, x, running_mean, running_var, w=None, eps=1e-5):
    """-> (dx, dw, db) in evaluation mode (the running statistics are constants)."""
    dy, x, rm, rv, w = f64(dy, x, running_mean, running_var, w)
    ax = _bn_axes(x)
    rstd = 1.0 / np.sqrt(_per_channel(rv, x) + eps)
    xhat = (x - _per_channel(rm, x)) * rstd
    scale = rstd if w is None else rstd * _per_channel(w, x)
    return dy * scale, (dy * xhat).sum(axis=ax), dy.sum(axis=ax)


def batch_norm_stats(x):
    """Per channel of (N, C, *): -> (mean, M2) with M2 = sum((x - mean)**2), the moments one
    rank of a synchronized batch norm contributes."""
    x = f64(x)
    ax = _bn_axes(x)
    mean = x.mean(axis=ax)
    return mean, ((x - _per_channel(mean, x)) ** 2).sum(axis=ax)


def sync_batch_norm_backward(dy, x, mean, rstd, w, sums, count):
    """The input gradient of a batch norm whose batch spans several ranks: ``sums`` are the
    global per-channel sums of dy and dy * xhat, ``count`` the global number of values per
    channel: dx = w rstd (dy - sum(dy)/count - xhat sum(dy xhat)/count)."""
    dy, x, mean, rstd, w, sums = f64(dy, x, mean, rstd, w, sums)
    xhat = (x - _per_channel(mean, x)) * _per_channel(rstd, x)
    wr = rstd if w is None else w * rstd
    return _per_channel(wr, x) * (
        dy - _per_channel(sums[0], x) / count - xhat * _per_channel(sums[1], x) / count
    )


# ---- RMSNorm over the trailing dims ---------------------------------------------------------


def rms_norm(x, normalized_shape, w=None, eps=None):
    """y = x / sqrt(mean(x**2) + eps) * w over the trailing dims; eps=None is the machine
    epsilon of x's dtype. -> (y, rstd)."""
    if eps is None:
        eps = float(np.finfo(np.asarray(x).dtype).eps)
    x, w = f64(x, w)
    ax = _trailing(x, normalized_shape)
    rstd = 1.0 / np.sqrt((x * x).mean(axis=ax, keepdims=True) + eps)
    y = x * rstd
    if w is not None:
        y = y * w
    return y, rstd.reshape(x.shape[: x.ndim - len(ax)])


def rms_norm_backward(dy, x, normalized_shape, w=None, eps=None):
    """-> (dx, dw): with r = rstd and g = dy w, dx = r g - x r^3 mean(g x); dw is None
    without a weight."""
    if eps is None:
        eps = float(np.finfo(np.asarray(x).dtype).eps)
    dy, x, w = f64(dy, x, w)
    ax = _trailing(x, normalized_shape)
    r = 1.0 / np.sqrt((x * x).mean(axis=ax, keepdims=True) + eps)
    g = dy if w is None else dy * w
    dx = r * g - x * r**3 * (g * x).mean(axis=ax, keepdims=True)
    dw = None if w is None else (dy * x * r).sum(axis=tuple(range(x.ndim - len(ax))))
    return dx, dw


# ---- GroupNorm over (N, C, *): each sample's group of C/G channels -------------------------


def group_norm(x, G, w=None, b=None, eps=1e-5):
    """Each sample's group of C/G channels normalized over its channels and positions, then
    scaled and shifted per channel. -> (y, mean (N, G), rstd (N, G))."""
    x, w, b = f64(x, w, b)
    N, C = x.shape[:2]
    if N == 0:
        return x.copy(), np.zeros((0, G)), np.zeros((0, G))
    xg = x.reshape(N, G, -1)
    mean = xg.mean(axis=2, keepdims=True)
    rstd = 1.0 / np.sqrt(((xg - mean) ** 2).mean(axis=2, keepdims=True) + eps)
    y = ((xg - mean) * rstd).reshape(x.shape)
    if w is not None:
        y = y * _per_channel(w, x)
    if b is not None:
        y = y + _per_channel(b, x)
    return y, mean[:, :, 0], rstd[:, :, 0]


def group_norm_backward(dy, x, G, w=None, eps=1e-5):
    """-> (dx, dw, db): dx = rstd (g - mean(g) - xhat mean(g xhat)) per group, g = dy w[c]."""
    dy, x, w = f64(dy, x, w)
    N, C = x.shape[:2]
    xg = x.reshape(N, G, -1)
    mean = xg.mean(axis=2, keepdims=True)
    rstd = 1.0 / np.sqrt(((xg - mean) ** 2).mean(axis=2, keepdims=True) + eps)
    xh = (xg - mean) * rstd
    g = (dy if w is None else dy * _per_channel(w, x)).reshape(N, G, -1)
    dx = rstd * (g - g.mean(axis=2, keepdims=True) - xh * (g * xh).mean(axis=2, keepdims=True))
    ax = _bn_axes(x)
    return dx.reshape(x.shape), (dy * xh.reshape(x.shape)).sum(axis=ax), dy.sum(axis=ax)


def instance_norm(x, eps=1e-5):
    """Each (sample, channel) of (N, C, *) normalized over its positions."""
    return group_norm(x, np.shape(x)[1], eps=eps)[0]


# ---- dropout (inverted) -----------------------------------------------------------------------


def dropout_keep(mask_bits, shape):
    """Boolean keep-array from a packed mask (bit i % 8 of byte i // 8 is element i)."""
    size = int(np.prod(shape))
    bits = np.unpackbits(np.asarray(mask_bits, dtype=np.uint8), bitorder="little")
    return bits[:size].astype(bool).reshape(shape)


def dropout(x, keep, p):
    """x / (1 - p) where kept, else exactly 0 (also for NaN and Inf); p = 1 drops all."""
    x = f64(x)
    if p >= 1:
        return np.zeros_like(x)
    return np.where(np.reshape(keep, x.shape), x / (1.0 - p), 0.0)


def dropout_backward(dy, keep, p):
    return dropout(dy, keep, p)


_PHILOX_M0, _PHILOX_M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_PHILOX_W0, _PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 (Salmon et al. 2011) over uint64 arrays of 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    for _ in range(10):
        p0, p1 = _PHILOX_M0 * c0, _PHILOX_M1 * c2
        c0, c1, c2, c3 = (
            ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0)) & _MASK32,
            p1 & _MASK32,
            ((p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1)) & _MASK32,
            p0 & _MASK32,
        )
        k0, k1 = (k0 + _PHILOX_W0) & 0xFFFFFFFF, (k1 + _PHILOX_W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def _philox_at(c0, c1, offset, seed):
    """Philox4x32-10's 4 words at the counters (c0, c1, offset's low and high words)."""
    return philox4x32_10(
        c0,
        c1,
        np.full_like(c0, offset & 0xFFFFFFFF),
        np.full_like(c0, offset >> 32),
        seed & 0xFFFFFFFF,
        seed >> 32,
    )


def dropout_keep_philox(n, p, seed, offset):
    """The keep-array of a dropout mask: element i is kept when u(i) >= t = floor(p 2^32),
    with u(i)'s top byte byte i % 16 (little-endian) of Philox(counter=(i // 16, offset),
    key=seed) and, where that byte equals t's top byte, its low 24 bits the top 24 bits of
    word 0 of Philox(counter=(i with bit 63 set, offset), key=seed)."""
    t = 0 if not p > 0 else 2**32 if p >= 1 else int(p * 2**32)
    idx = np.arange(n, dtype=np.uint64)
    groups = np.arange((n + 15) // 16, dtype=np.uint64)
    words = _philox_at(groups & _MASK32, groups >> np.uint64(32), offset, seed)
    top = np.stack(words, axis=1).astype("<u4").view(np.uint8).reshape(-1)[:n].astype(np.uint64)
    tie_c1 = (idx >> np.uint64(32)) | np.uint64(1 << 31)
    low = _philox_at(idx & _MASK32, tie_c1, offset, seed)[0] >> np.uint64(8)
    u = (top << np.uint64(24)) | low
    return u >= np.uint64(t)


# ---- softmax cross-entropy, mean reduction -------------------------------------------------


def logsumexp(z):
    z = f64(z)
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def cross_entropy(logits, labels):
    """-> (mean over rows of lse - z[label], lse per row); no rows: (NaN, empty)."""
    z = f64(logits)
    if z.shape[0] == 0:
        return float("nan"), np.zeros(0)
    lse = logsumexp(z)
    labels = np.asarray(labels)
    return float(np.mean(lse - z[np.arange(z.shape[0]), labels])), lse


def cross_entropy_backward(logits, labels, dloss=1.0):
    """dloss * (softmax(z) - onehot(label)) / B."""
    z = f64(logits)
    B = z.shape[0]
    if B == 0:
        return np.zeros_like(z)
    p = np.exp(z - logsumexp(z)[:, None])
    p[np.arange(B), np.asarray(labels)] -= 1.0
    return dloss * p / B


def cross_entropy_options(
    logits, labels, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0
):
    """PyTorch's cross-entropy of class indices as its documentation writes it: each row's
    target distribution t = (1 - e) onehot(y) + e / K, its loss -sum_c w[c] t[c] log p[c]
    (0 for a row whose label is ignore_index); "mean" divides the sum by the summed
    w[y] of the kept rows, "sum" sums, "none" returns the rows."""
    z = f64(logits)
    B, K = z.shape
    labels = np.asarray(labels)
    w = np.ones(K) if weight is None else f64(weight)
    keep = labels != ignore_index
    y = np.where(keep, labels, 0)
    t = np.full((B, K), label_smoothing / K)
    t[np.arange(B), y] += 1 - label_smoothing
    logp = z - logsumexp(z)[:, None]
    rows = np.where(keep, -(t * w * logp).sum(axis=1), 0.0)
    if reduction == "none":
        return rows
    if reduction == "sum":
        return float(rows.sum())
    return float(rows.sum() / np.where(keep, w[y], 0.0).sum())


# ---- optimizer steps ------------------------------------------------------------------------


def sgd_step(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, first=None):
    """PyTorch's SGD rule -> (new param, new momentum buffer). The buffer starts as the
    first step's gradient (``first``; by default when ``buf`` is None). The L2 term is
    left out when ``weight_decay == 0`` (as PyTorch: ``0 * inf`` would be NaN)."""
    p, g = f64(param, grad)
    d = g + weight_decay * p if weight_decay != 0 else g
    new_buf = None
    if momentum != 0:
        if first is None:
            first = buf is None
        new_buf = d.copy() if first else momentum * f64(buf) + (1 - dampening) * d
        d = d + momentum * new_buf if nesterov else new_buf
    return p - lr * d, new_buf


def adam_step(param, grad, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """PyTorch's Adam (``decoupled=False``: weight decay added to the gradient) and AdamW
    (``decoupled=True``: the weights shrink by 1 - lr*wd) -> (param, m, v, vmax); ``step``
    counts from 1; ``vmax`` (amsgrad) is None when not used. Weight decay 0 adds or
    multiplies nothing (as PyTorch: ``0 * inf`` would be NaN)."""
    p, g = f64(param, grad)
    if weight_decay != 0 and decoupled:
        p = p * (1 - lr * weight_decay)
    elif weight_decay != 0:
        g = g + weight_decay * p
    m = beta1 * f64(m) + (1 - beta1) * g
    v = beta2 * f64(v) + (1 - beta2) * g * g
    denom_v = v
    if vmax is not None:
        vmax = np.maximum(f64(vmax), v)
        denom_v = vmax
    bc1, bc2 = 1 - beta1**step, 1 - beta2**step
    p = p - lr / bc1 * m / (np.sqrt(denom_v / bc2) + eps)
    return p, m, v, vmax
