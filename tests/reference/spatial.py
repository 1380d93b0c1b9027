"""The references of the spatial ops on NCHW arrays: conv2d, max_pool2d, avg_pool2d and
adaptive_avg_pool2d. These are written independently of the kernels' im2col scheme: the
convolution is a sum over the kernel offsets of strided slices of the zero-padded input (one
einsum per offset), the pooling a loop over output positions whose windows are read from the
input directly.
"""

import math

import numpy as np

from .core import f64

# ---- conv2d and pooling (NCHW) --------------------------------------------------------------


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def out_size(size, k, s, p, ceil_mode=False):
    """PyTorch's output size as its documentation states it: floor((size + 2 p - k) / s) + 1,
    or with ceil_mode ceil(...) + 1, less one if that last window would start at or past
    size + p (in the padding on the right)."""
    n = (math.ceil if ceil_mode else math.floor)((size + 2 * p - k) / s) + 1
    if ceil_mode and (n - 1) * s >= size + p:
        n -= 1
    return n


def _conv_offsets(x, w, stride, padding, OH, OW):
    """The zero-padded x, and for each kernel offset (kh, kw) the slice of it that meets
    w[:, :, kh, kw] at every output position."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    rows = [slice(kh, kh + sh * (OH - 1) + 1, sh) for kh in range(w.shape[2])]
    cols = [slice(kw, kw + sw * (OW - 1) + 1, sw) for kw in range(w.shape[3])]
    return xp, [
        (kh, kw, (slice(None), slice(None), r, c)) for kh, r in enumerate(rows) for kw, c in enumerate(cols)
    ]


def conv2d(x, w, b=None, stride=1, padding=0):
    """y[n, o, i, j] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] xpad[n, c, i sh + kh, j sw + kw]."""
    x, w, b = f64(x, w, b)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    OH, OW = out_size(x.shape[2], w.shape[2], sh, ph), out_size(x.shape[3], w.shape[3], sw, pw)
    xp, offsets = _conv_offsets(x, w, stride, padding, OH, OW)
    y = np.zeros((x.shape[0], w.shape[0], OH, OW))
    for kh, kw, sl in offsets:
        y += np.einsum("nchw,oc->nohw", xp[sl], w[:, :, kh, kw])
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def conv2d_backward(dy, x, w, stride=1, padding=0):
    """(dx, dw, db) of sum(dy * conv2d(x, w, b)): the transpose of each offset's slice."""
    dy, x, w = f64(dy, x, w)
    ph, pw = _pair(padding)
    xp, offsets = _conv_offsets(x, w, stride, padding, *dy.shape[2:])
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for kh, kw, sl in offsets:
        dxp[sl] += np.einsum("nohw,oc->nchw", dy, w[:, :, kh, kw])
        dw[:, :, kh, kw] = np.einsum("nohw,nchw->oc", dy, xp[sl])
    dx = dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]
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


def _pool_geometry(H, W, kernel_size, stride, padding, ceil_mode=False):
    """((kh, kw), (sh, sw), (ph, pw), (OH, OW)) of a pooling of an H x W plane (stride None:
    the kernel size)."""
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    (sh, sw) = _pair(kernel_size if stride is None else stride)
    OH, OW = out_size(H, kh, sh, ph, ceil_mode), out_size(W, kw, sw, pw, ceil_mode)
    return (kh, kw), (sh, sw), (ph, pw), (OH, OW)


def _pool_windows(H, W, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True, divisor=None):
    """(i, j, h0, h1, w0, w1, divisor) for every output position (i, j): the window's rows
    and columns in the input, and ``divisor`` when given, else its size in the padded input
    (count_include_pad) or its number of input positions."""
    (kh, kw), (sh, sw), (ph, pw), (OH, OW) = _pool_geometry(H, W, kernel_size, stride, padding, ceil_mode)
    for i, (h0, h1, hl) in enumerate(_windows(H, kh, sh, ph, OH)):
        for j, (w0, w1, wl) in enumerate(_windows(W, kw, sw, pw, OW)):
            size = hl * wl if count_include_pad else (h1 - h0) * (w1 - w0)
            yield i, j, h0, h1, w0, w1, size if divisor is None else divisor


def _adaptive_windows(H, W, output_size):
    """As _pool_windows for an adaptive pooling: output (i, j) covers the rows floor(i H / OH)
    .. ceil((i + 1) H / OH) - 1 and the columns likewise; the divisor is its size."""
    OH, OW = _pair(output_size)
    for i in range(OH):
        h0, h1 = (i * H) // OH, -((-(i + 1) * H) // OH)
        for j in range(OW):
            w0, w1 = (j * W) // OW, -((-(j + 1) * W) // OW)
            yield i, j, h0, h1, w0, w1, (h1 - h0) * (w1 - w0)


def _mean_pool(x, out_hw, windows):
    """y[:, :, i, j]: the sum of each window of x divided by its divisor."""
    y = np.empty(x.shape[:2] + tuple(out_hw))
    for i, j, h0, h1, w0, w1, div in windows:
        y[:, :, i, j] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / div
    return y


def _mean_pool_backward(dy, input_hw, windows):
    """dx: each dy[:, :, i, j] divided by its window's divisor, added over the window."""
    dx = np.zeros(dy.shape[:2] + tuple(input_hw))
    for i, j, h0, h1, w0, w1, div in windows:
        dx[:, :, h0:h1, w0:w1] += (dy[:, :, i, j] / div)[:, :, None, None]
    return dx


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """(y, indices): the max of each window and its flat position h W + w in the plane. The
    first maximum in row-major order wins a tie; NaN wins over every number (the last NaN
    of a window is the one reported, as PyTorch's CPU kernel does)."""
    x = f64(x)
    N, C, H, W = x.shape
    out_shape = (N, C) + _pool_geometry(H, W, kernel_size, stride, padding, ceil_mode)[3]
    y, idx = np.empty(out_shape), np.empty(out_shape, np.int64)
    for i, j, h0, h1, w0, w1, _ in _pool_windows(H, W, kernel_size, stride, padding, ceil_mode):
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
    dy = f64(dy)
    N, C = dy.shape[:2]
    H, W = input_hw
    dx = np.zeros((N * C, H * W))
    rows = np.repeat(np.arange(N * C), dy.shape[2] * dy.shape[3])
    np.add.at(dx, (rows, indices.reshape(-1)), dy.reshape(-1))
    return dx.reshape(N, C, H, W)


def avg_pool2d(
    x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    """The mean of each window: its sum over the input positions divided by divisor_override
    when given, else by the window's size in the padded input (count_include_pad) or by its
    number of input positions."""
    x = f64(x)
    geometry = (kernel_size, stride, padding, ceil_mode)
    out_hw = _pool_geometry(*x.shape[2:], *geometry)[3]
    return _mean_pool(x, out_hw, _pool_windows(*x.shape[2:], *geometry, count_include_pad, divisor_override))


def avg_pool2d_backward(
    dy,
    input_hw,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    windows = _pool_windows(
        *input_hw, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    return _mean_pool_backward(f64(dy), input_hw, windows)


def adaptive_avg_pool2d(x, output_size):
    x = f64(x)
    return _mean_pool(x, _pair(output_size), _adaptive_windows(*x.shape[2:], output_size))


def adaptive_avg_pool2d_backward(dy, input_hw):
    dy = f64(dy)
    return _mean_pool_backward(dy, input_hw, _adaptive_windows(*input_hw, dy.shape[2:]))
