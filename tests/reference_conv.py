"""Pure-NumPy float64 twins of the spatial ops (Conv2d, pooling) for the tests.

Written independently of the kernels' im2col scheme: the convolution is a sum over the
kernel offsets of strided slices of the zero-padded input (one einsum per offset), the
pooling a loop over output positions whose windows are read from the input directly.
Arrays are NCHW; every function returns float64.
"""

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def out_size(size, k, s, p):
    """PyTorch's output size (floor mode): (size + 2 p - k) // s + 1."""
    return (size + 2 * p - k) // s + 1


def conv2d(x, w, b=None, stride=1, padding=0):
    """y[n, o, i, j] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] xpad[n, c, i sh + kh, j sw + kw]."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    Co, _, KH, KW = w.shape
    OH, OW = out_size(H, KH, sh, ph), out_size(W, KW, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((N, Co, OH, OW))
    for kh in range(KH):
        for kw in range(KW):
            patch = xp[:, :, kh : kh + sh * (OH - 1) + 1 : sh, kw : kw + sw * (OW - 1) + 1 : sw]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, kh, kw])
    if b is not None:
        y += np.asarray(b, np.float64).reshape(1, Co, 1, 1)
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0):
    """(dx, dw, db) of sum(dy * conv2d(x, w, b)): the transpose of each offset's slice."""
    dy, x, w = (np.asarray(a, np.float64) for a in (dy, x, w))
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    Co, _, KH, KW = w.shape
    OH, OW = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for kh in range(KH):
        for kw in range(KW):
            sl = (
                slice(None),
                slice(None),
                slice(kh, kh + sh * (OH - 1) + 1, sh),
                slice(kw, kw + sw * (OW - 1) + 1, sw),
            )
            dxp[sl] += np.einsum("nohw,oc->nchw", dy, w[:, :, kh, kw])
            dw[:, :, kh, kw] = np.einsum("nohw,nchw->oc", dy, xp[sl])
    dx = dxp[:, :, ph : ph + H, pw : pw + W]
    return dx, dw, dy.sum(axis=(0, 2, 3))


def _windows(size, k, s, p, out):
    """For each output position along an axis: (window start, end) clipped to the input,
    and the window length clipped to the padded input (PyTorch's count_include_pad divisor)."""
    res = []
    for i in range(out):
        a = i * s - p
        b = min(a + k, size + p)
        res.append((max(a, 0), min(b, size), b - a))
    return res


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """(y, indices): the max of each window and its flat position h W + w in the plane. The
    first maximum in row-major order wins a tie; NaN wins over every number (the last NaN
    of a window is the one reported, as PyTorch's CPU kernel does)."""
    x = np.asarray(x, np.float64)
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(kernel_size if stride is None else stride)
    (ph, pw) = _pair(padding)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    y = np.empty((N, C, OH, OW))
    idx = np.empty((N, C, OH, OW), np.int64)
    for i, (h0, h1, _) in enumerate(_windows(H, kh, sh, ph, OH)):
        for j, (w0, w1, _) in enumerate(_windows(W, kw, sw, pw, OW)):
            m = np.full((N, C), -np.inf)
            mi = np.full((N, C), h0 * W + w0, np.int64)
            for a in range(h0, h1):
                for b in range(w0, w1):
                    v = x[:, :, a, b]
                    take = (v > m) | np.isnan(v)
                    m = np.where(take, v, m)
                    mi = np.where(take, a * W + b, mi)
            y[:, :, i, j], idx[:, :, i, j] = m, mi
    return y, idx


def max_pool2d_backward(dy, indices, input_hw):
    """dx: each dy added at its window's max position."""
    dy = np.asarray(dy, np.float64)
    N, C = dy.shape[:2]
    H, W = input_hw
    dx = np.zeros((N * C, H * W))
    rows = np.repeat(np.arange(N * C), dy.shape[2] * dy.shape[3])
    np.add.at(dx, (rows, indices.reshape(-1)), dy.reshape(-1))
    return dx.reshape(N, C, H, W)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """The mean of each window: its sum over the input positions divided by the window's
    size in the padded input (count_include_pad) or by its number of input positions."""
    x = np.asarray(x, np.float64)
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(kernel_size if stride is None else stride)
    (ph, pw) = _pair(padding)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    y = np.empty((N, C, OH, OW))
    for i, (h0, h1, hl) in enumerate(_windows(H, kh, sh, ph, OH)):
        for j, (w0, w1, wl) in enumerate(_windows(W, kw, sw, pw, OW)):
            div = hl * wl if count_include_pad else (h1 - h0) * (w1 - w0)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / div
    return y


def avg_pool2d_backward(dy, input_hw, kernel_size, stride=None, padding=0, count_include_pad=True):
    dy = np.asarray(dy, np.float64)
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(kernel_size if stride is None else stride)
    (ph, pw) = _pair(padding)
    N, C, OH, OW = dy.shape
    H, W = input_hw
    dx = np.zeros((N, C, H, W))
    for i, (h0, h1, hl) in enumerate(_windows(H, kh, sh, ph, OH)):
        for j, (w0, w1, wl) in enumerate(_windows(W, kw, sw, pw, OW)):
            div = hl * wl if count_include_pad else (h1 - h0) * (w1 - w0)
            dx[:, :, h0:h1, w0:w1] += (dy[:, :, i, j] / div)[:, :, None, None]
    return dx


def _adaptive(size, out):
    """Output i covers floor(i size / out) .. ceil((i + 1) size / out) - 1."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d(x, output_size):
    x = np.asarray(x, np.float64)
    OH, OW = _pair(output_size)
    N, C, H, W = x.shape
    y = np.empty((N, C, OH, OW))
    for i, (h0, h1) in enumerate(_adaptive(H, OH)):
        for j, (w0, w1) in enumerate(_adaptive(W, OW)):
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_backward(dy, input_hw):
    dy = np.asarray(dy, np.float64)
    N, C, OH, OW = dy.shape
    H, W = input_hw
    dx = np.zeros((N, C, H, W))
    for i, (h0, h1) in enumerate(_adaptive(H, OH)):
        for j, (w0, w1) in enumerate(_adaptive(W, OW)):
            dx[:, :, h0:h1, w0:w1] += (dy[:, :, i, j] / ((h1 - h0) * (w1 - w0)))[:, :, None, None]
    return dx
