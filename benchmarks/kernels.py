"""The per-kernel benchmark cases: normreg, its NumPy reference and PyTorch, side by side.

Each case builds, for one shape, the callables of one direction ("fwd", "bwd" or "f+b"):

* ``normreg``: ``normreg.functional`` as users call it (fresh outputs; parameter gradients
  added into existing arrays, as ``Module.backward`` does);
* ``numpy``: the NumPy reference formulas of the tests;
* ``torch``: PyTorch as users run it: ``torch.nn.functional`` on tensors that require grad
  (forward), the ATen backward kernel with fresh outputs (backward), and autograd's
  ``y.backward(dy)`` after the forward (f+b);
* ``torch_out``: PyTorch's kernels with their outputs reused (the ATen ``.out`` overloads),
  so a ratio cannot come only from PyTorch's allocator.

Minimum bytes (E: the bytes of one activation): LayerNorm 2E forward, 3E backward;
BatchNorm 3E / 5E (statistics need a pass of their own before the output is written);
Dropout 2E / 2E (the 1-bit mask, E/32, is not counted); ReLU 2E / 3E.
"""

import numpy as np

import normreg.functional as F

torch = TF = None  # set by load_torch(): torch is optional, the benchmarks run without it


def load_torch():
    """Imports PyTorch if it is installed; returns it or None."""
    global torch, TF
    try:
        import torch as _torch
        import torch.nn.functional as _TF
    except ImportError:
        return None
    torch, TF = _torch, _TF
    return torch


EPS = 1e-5
P_DROP = 0.2
BYTES = {  # (forward, backward) in units of E: the minimum bytes each must move
    "layernorm": (2, 3),
    "batchnorm": (3, 5),
    "dropout": (2, 2),
    "relu": (2, 3),
}


def working_set(name, direction):
    """The arrays a direction touches, in units of E (what the roofline copy holds): the
    forward x and y, the backward dy, dx and x (dropout's: dy and dx and its 1-bit mask),
    both together x, y, dy and dx (masks and statistics are small)."""
    if direction == "bwd":
        return 2 if name == "dropout" else 3
    return {"fwd": 2, "f+b": 4}[direction]


def _t(a, grad=False):
    t = torch.from_numpy(a)
    return t.requires_grad_(True) if grad else t


def _combine(*fns):
    def run():
        for f in fns:
            f()

    return run


def _norm_inputs(N, D, rng):
    """float32 x (N, D) (offset, like a layer's input), dy (N, D), weight and bias (D,)."""
    x = rng.standard_normal((N, D), dtype=np.float32) * 3 + 5
    dy = rng.standard_normal((N, D), dtype=np.float32)
    w = rng.standard_normal(D, dtype=np.float32)
    b = rng.standard_normal(D, dtype=np.float32)
    return x, dy, w, b


def layernorm(N, D, rng):
    x, dy, w, b = _norm_inputs(N, D, rng)
    gw, gb = np.zeros_like(w), np.zeros_like(b)
    _, mean, rstd = F.layer_norm(x, (D,), w, b, EPS)

    def nr_f():
        F.layer_norm(x, (D,), w, b, EPS)

    def nr_b():
        F.layer_norm_backward(dy, x, mean, rstd, w, dweight=gw, dbias=gb)

    def np_f():
        mu = x.mean(1, keepdims=True)
        xc = x - mu
        r = 1 / np.sqrt((xc * xc).mean(1, keepdims=True) + EPS)
        return xc * r * w + b

    def np_b():
        xhat = (x - mean[:, None]) * rstd[:, None]
        g = dy * w
        dx = rstd[:, None] * (g - g.mean(1, keepdims=True) - xhat * (g * xhat).mean(1, keepdims=True))
        return dx, (dy * xhat).sum(0), dy.sum(0)

    cases = {
        "fwd": {"normreg": nr_f, "numpy": np_f},
        "bwd": {"normreg": nr_b, "numpy": np_b},
        "f+b": {"normreg": _combine(nr_f, nr_b), "numpy": _combine(np_f, np_b)},
    }
    if torch is not None:
        xt, dyt, wt, bt = _t(x), _t(dy), _t(w), _t(b)
        xg, wg, bg = _t(x.copy(), True), _t(w.copy(), True), _t(b.copy(), True)
        _, mt, rt = torch.ops.aten.native_layer_norm(xt, [D], wt, bt, EPS)
        y_o, m_o, r_o = torch.empty_like(xt), torch.empty_like(mt), torch.empty_like(rt)
        dx_o, dw_o, db_o = torch.empty_like(xt), torch.empty_like(wt), torch.empty_like(bt)

        def th_f():
            TF.layer_norm(xg, (D,), wg, bg, EPS)

        def th_b():
            torch.ops.aten.native_layer_norm_backward(dyt, xt, [D], mt, rt, wt, bt, [True] * 3)

        def th_fb():
            xg.grad = wg.grad = bg.grad = None
            TF.layer_norm(xg, (D,), wg, bg, EPS).backward(dyt)

        def tho_f():
            torch.ops.aten.native_layer_norm.out(xt, [D], wt, bt, EPS, out0=y_o, out1=m_o, out2=r_o)

        def tho_b():
            torch.ops.aten.native_layer_norm_backward.out(
                dyt, xt, [D], mt, rt, wt, bt, [True] * 3, out0=dx_o, out1=dw_o, out2=db_o
            )

        _add_torch(cases, th_f, th_b, th_fb, tho_f, tho_b)
    return cases


def batchnorm(N, D, rng):
    x, dy, w, b = _norm_inputs(N, D, rng)
    rm, rv = np.zeros(D, np.float32), np.ones(D, np.float32)
    gw, gb = np.zeros_like(w), np.zeros_like(b)
    _, sm, sr = F.batch_norm(x, rm, rv, w, b, training=True)

    def nr_f():
        F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=EPS)

    def nr_b():
        F.batch_norm_backward(dy, x, sm, sr, w, training=True, dweight=gw, dbias=gb)

    def np_f():
        mu = x.mean(0)
        xc = x - mu
        var = (xc * xc).mean(0)
        rm[...] = 0.9 * rm + 0.1 * mu
        rv[...] = 0.9 * rv + 0.1 * var * N / max(N - 1, 1)
        return xc * (w / np.sqrt(var + EPS)) + b

    def np_b():
        xhat = (x - sm) * sr
        sdy, sdyx = dy.sum(0), (dy * xhat).sum(0)
        dx = (w * sr) * (dy - sdy / N - xhat * (sdyx / N))
        return dx, sdyx, sdy

    cases = {
        "fwd": {"normreg": nr_f, "numpy": np_f},
        "bwd": {"normreg": nr_b, "numpy": np_b},
        "f+b": {"normreg": _combine(nr_f, nr_b), "numpy": _combine(np_f, np_b)},
    }
    if torch is not None:
        xt, dyt, wt, bt, rmt, rvt = _t(x), _t(dy), _t(w), _t(b), _t(rm.copy()), _t(rv.copy())
        xg, wg, bg = _t(x.copy(), True), _t(w.copy(), True), _t(b.copy(), True)
        _, smt, sit = torch.ops.aten.native_batch_norm(xt, wt, bt, rmt, rvt, True, 0.1, EPS)
        y_o, m_o, r_o = torch.empty_like(xt), torch.empty_like(smt), torch.empty_like(sit)
        dx_o, dw_o, db_o = torch.empty_like(xt), torch.empty_like(wt), torch.empty_like(bt)

        def th_f():
            TF.batch_norm(xg, rmt, rvt, wg, bg, training=True, momentum=0.1, eps=EPS)

        def th_b():
            torch.ops.aten.native_batch_norm_backward(dyt, xt, wt, rmt, rvt, smt, sit, True, EPS, [True] * 3)

        def th_fb():
            xg.grad = wg.grad = bg.grad = None
            TF.batch_norm(xg, rmt, rvt, wg, bg, training=True, momentum=0.1, eps=EPS).backward(dyt)

        def tho_f():
            torch.ops.aten.native_batch_norm.out(
                xt, wt, bt, rmt, rvt, True, 0.1, EPS, out=y_o, save_mean=m_o, save_invstd=r_o
            )

        def tho_b():
            torch.ops.aten.native_batch_norm_backward.out(
                dyt, xt, wt, rmt, rvt, smt, sit, True, EPS, [True] * 3, out0=dx_o, out1=dw_o, out2=db_o
            )

        _add_torch(cases, th_f, th_b, th_fb, tho_f, tho_b)
    return cases


def dropout(N, D, rng):
    x = rng.standard_normal((N, D), dtype=np.float32)
    dy = rng.standard_normal((N, D), dtype=np.float32)
    _, mask = F.dropout(x, P_DROP)
    scale = np.float32(1 / (1 - P_DROP))
    nprng = np.random.default_rng(0)
    keep = nprng.random((N, D), dtype=np.float32) >= P_DROP

    def nr_f():
        F.dropout(x, P_DROP)

    def nr_b():
        F.dropout_backward(dy, mask, P_DROP)

    def np_f():
        k = nprng.random((N, D), dtype=np.float32) >= P_DROP
        return np.where(k, x * scale, np.float32(0)), k

    def np_b():
        return np.where(keep, dy * scale, np.float32(0))

    cases = {
        "fwd": {"normreg": nr_f, "numpy": np_f},
        "bwd": {"normreg": nr_b, "numpy": np_b},
        "f+b": {"normreg": _combine(nr_f, nr_b), "numpy": _combine(np_f, np_b)},
    }
    if torch is not None:
        xt, dyt = _t(x), _t(dy)
        xg = _t(x.copy(), True)
        _, mt = torch.ops.aten.native_dropout(xt, P_DROP, True)
        y_o, m_o, dx_o = torch.empty_like(xt), torch.empty_like(mt), torch.empty_like(xt)

        def th_f():
            TF.dropout(xg, P_DROP, training=True)

        def th_b():
            torch.ops.aten.native_dropout_backward(dyt, mt, float(scale))

        def th_fb():
            xg.grad = None
            TF.dropout(xg, P_DROP, training=True).backward(dyt)

        def tho_f():
            torch.ops.aten.native_dropout.out(xt, P_DROP, True, out0=y_o, out1=m_o)

        def tho_b():
            torch.ops.aten.native_dropout_backward.out(dyt, mt, float(scale), out=dx_o)

        _add_torch(cases, th_f, th_b, th_fb, tho_f, tho_b)
    return cases


def relu(N, D, rng):
    x = rng.standard_normal((N, D), dtype=np.float32)
    dy = rng.standard_normal((N, D), dtype=np.float32)
    y = np.maximum(x, 0)

    def nr_f():
        F.relu(x)

    def nr_b():
        F.relu_backward(dy, y)

    def np_f():
        return np.maximum(x, np.float32(0))

    def np_b():
        return np.where(y > 0, dy, np.float32(0))

    cases = {
        "fwd": {"normreg": nr_f, "numpy": np_f},
        "bwd": {"normreg": nr_b, "numpy": np_b},
        "f+b": {"normreg": _combine(nr_f, nr_b), "numpy": _combine(np_f, np_b)},
    }
    if torch is not None:
        xt, dyt, yt = _t(x), _t(dy), _t(y)
        xg = _t(x.copy(), True)
        y_o, dx_o = torch.empty_like(xt), torch.empty_like(xt)

        def th_f():
            TF.relu(xg)

        def th_b():
            torch.ops.aten.threshold_backward(dyt, yt, 0)

        def th_fb():
            xg.grad = None
            TF.relu(xg).backward(dyt)

        def tho_f():
            torch.clamp_min(xt, 0, out=y_o)

        def tho_b():
            torch.ops.aten.threshold_backward.grad_input(dyt, yt, 0, grad_input=dx_o)

        _add_torch(cases, th_f, th_b, th_fb, tho_f, tho_b)
    return cases


def _add_torch(cases, th_f, th_b, th_fb, tho_f, tho_b):
    cases["fwd"].update(torch=th_f, torch_out=tho_f)
    cases["bwd"].update(torch=th_b, torch_out=tho_b)
    cases["f+b"].update(torch=th_fb, torch_out=_combine(tho_f, tho_b))


KERNELS = {"layernorm": layernorm, "batchnorm": batchnorm, "dropout": dropout, "relu": relu}
