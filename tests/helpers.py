"""Helpers shared by the tests: tolerances, inputs, memory layouts, the gradient-check
tolerance, a small float64 network and the peak allocation of a call. (Fixtures are in
conftest.py; the NumPy twins of the ops in reference/.)"""

import tracemalloc

import numpy as np
import reference as R

from normreg import nn

DTYPES = (np.float32, np.float64)

# Relative tolerance and absolute tolerance (relative to the largest expected magnitude)
# when a result in ``dtype`` is compared with a float64 reference.
_TOL = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-10, 1e-12)}

# Tolerances of a normalization layer's result against the reference in each dtype (the
# batch, group and RMS norm tests).
NORM_TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}

# normreg.testing.gradcheck's tolerances for the tests' float64 checks of every backward
# (central differences with eps = 1e-6): |analytic - numeric| <= atol + rtol * |numeric|.
GRADCHECK_TOL = dict(rtol=1e-5, atol=1e-8)


def assert_close(actual, expected, dtype, scale=None, err_msg=""):
    """``actual`` (computed in ``dtype``) equals the float64 ``expected`` within the dtype's
    tolerance; the absolute part is relative to ``scale`` (default: max |expected|, >= 1)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{err_msg}: shape {actual.shape} vs {expected.shape}"
    rtol, atol = _TOL[np.dtype(dtype)]
    if scale is None:
        scale = max(float(np.abs(expected).max()) if expected.size else 0.0, 1.0)
    np.testing.assert_allclose(
        actual.astype(np.float64), expected, rtol=rtol, atol=atol * scale, err_msg=err_msg
    )


def assert_norm_grads_close(grads, ref_grads, dtype, rstd, dy, affine):
    """A normalization's backward (dx, dweight, dbias) against the reference's. dx is about
    rstd * dy, so its float32 error is relative to that size; without affine parameters the
    backward returns no dweight and dbias."""
    (dx, dw, db), (rdx, rdw, rdb) = grads, ref_grads
    assert_close(dx, rdx, dtype, scale=np.abs(rstd).max() * max(np.abs(dy).max() * 10, 1))
    if affine:
        assert_close(dw, rdw, dtype)
        assert_close(db, rdb, dtype)
    else:
        assert dw is None and db is None


def norm_mlp64(norm, n_in, hidden, n_out):
    """The float64 network Linear, ``norm`` (a normalization class such as nn.LayerNorm),
    ReLU, Linear, of ``n_in`` inputs, ``hidden`` features and ``n_out`` outputs."""
    f64 = dict(dtype=np.float64)
    return nn.Sequential(
        nn.Linear(n_in, hidden, **f64), norm(hidden, **f64), nn.ReLU(), nn.Linear(hidden, n_out, **f64)
    )


def offset_randn(rng, shape, dtype=np.float64, shift=12.0, scale=5.0):
    """Inputs deliberately away from zero, ``5 * randn + 12`` (cs231n's gradient checks):
    a large mean and spread find more bugs in a normalization's backward."""
    return (scale * rng.standard_normal(shape) + shift).astype(dtype)


def affine_params(rng, shape, dtype, affine=True):
    """A normalization's weight (around 1) and bias of ``shape``, or (None, None)."""
    if not affine:
        return None, None
    return (1 + 0.5 * rng.standard_normal(shape)).astype(dtype), rng.standard_normal(shape).astype(dtype)


def randomize_params(module, rng):
    """Every parameter of ``module`` drawn from N(1, 1), so that no weight is the default 1
    and no bias the default 0."""
    for p in module.parameters():
        p.data[...] = rng.standard_normal(p.shape) + 1


def window_args(st, max_padding):
    """hypothesis strategies (``st``: hypothesis.strategies) of a 2-D window, convolution's
    or pooling's, over an image of 1..9 x 1..9: kernel kh, kw in 1..4, strides sh, sw in
    1..3, paddings ph, pw in 0..max_padding; keyword arguments of ``given``."""
    sizes, kernel, stride, pad = (
        st.integers(1, 9),
        st.integers(1, 4),
        st.integers(1, 3),
        st.integers(0, max_padding),
    )
    return dict(h=sizes, w=sizes, kh=kernel, kw=kernel, sh=stride, sw=stride, ph=pad, pw=pad)


def train_argv(data_dir, out, *extra, **options):
    """normreg-train's command line for a run on ``data_dir`` writing to ``out``, without
    progress bars: each keyword option a flag (``batch_size=64``: ``--batch-size 64``),
    then ``extra`` as they are."""
    argv = ["--data-dir", str(data_dir), "--out", str(out), "--no-progress"]
    for name, value in options.items():
        argv += ["--" + name.replace("_", "-"), str(value)]
    return argv + list(extra)


def frozen(a):
    """A read-only copy of ``a`` (to check inputs are never written)."""
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def noncontig(a):
    """``a`` as a non-contiguous view with the same values (every other element of a
    buffer twice as wide in the last dimension; the gaps hold NaN, so reading them shows)."""
    a = np.asarray(a)
    buf = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    buf[..., ::2] = a
    buf[..., 1::2] = np.nan if a.dtype.kind == "f" else -1
    v = buf[..., ::2]
    assert not v.flags.c_contiguous or a.shape[-1] <= 1
    return v


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
        return rev[tuple(slice(None, None, -1) for _ in a.shape)]
    if kind == "unaligned":
        buf = bytearray(a.nbytes + a.dtype.itemsize + 1)
        view = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        view[...] = a
        return view
    if kind == "readonly":
        return frozen(a)
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


def torch_forward_backward(layer, x, dy):
    """A PyTorch module's output and input gradient for NumPy ``x`` and upstream ``dy``
    (for the optional cross-checks; the test imports torch with ``pytest.importorskip``)."""
    import torch

    tx = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_()
    ty = layer(tx)
    ty.backward(torch.from_numpy(np.ascontiguousarray(dy)))
    return ty.detach().numpy(), tx.grad.numpy()


def train_steps(model, opt, x, y, steps=1):
    """``steps`` optimizer steps of softmax cross-entropy on the batch (x, y); -> the losses."""
    from normreg import nn

    loss_fn = nn.SoftmaxLoss()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        losses.append(loss_fn(model(x), y))
        model.backward(loss_fn.backward())
        opt.step()
    return losses


def set_grad(p, value):
    """Give Parameter ``p`` the gradient ``value`` (broadcast to its shape, in its dtype):
    ``.grad`` is None until a backward or this sets it."""
    p.grad = np.array(np.broadcast_to(value, p.shape), dtype=p.dtype)


def peak_bytes_of(fn, *args):
    """Peak bytes allocated (Python and NumPy) while ``fn(*args)`` runs; its exception is
    swallowed (the caller checks it separately)."""
    tracemalloc.start()
    try:
        fn(*args)
    except Exception:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def run_steps(opt, params, grads, t0, t1):
    """Optimizer steps t0 .. t1-1, each with the gradient grads[i](param, t) as each .grad."""
    for t in range(t0, t1):
        opt.zero_grad()
        for p, gf in zip(params, grads):
            assert p.grad is None
            p.grad = gf(p.data.astype(np.float64), t).astype(p.dtype)
        opt.step()


def bowl_grad(seed, shape, steps=25):
    """A gradient that depends on the parameter (a quadratic bowl) plus fixed noise per step
    (for steps 0 .. steps-1), so a wrong update shows up in the trajectory."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((steps,) + shape)
    scale = rng.uniform(0.5, 2.0, shape)

    def grad(p, t):
        return scale * (p - 1.0) + noise[t]

    return grad


def random_params(dtype, shapes=((5, 4), (4,)), seed=0):
    """Parameters of the shapes, 3 * standard normal values in ``dtype``."""
    from normreg.nn import Parameter

    rng = np.random.default_rng(seed)
    return [Parameter((3 * rng.standard_normal(s)).astype(dtype)) for s in shapes]


def pool_input(rng, shape, dtype, distinct=True):
    """A pooling test's input: distinct values (the max is unique, finite differences are
    valid), or standard normal ones."""
    if distinct:
        x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) / 7.0 - 3.0
    else:
        x = rng.standard_normal(shape)
    return x.astype(dtype)


def optim_tol(dtype):
    """The optimizer tests' tolerances for dtype (25 steps of float32 rounding)."""
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)


def adam_reference(
    p, g, st, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False
):
    """reference.adam_step with its state (step count and moments, starting at 0) in ``st``."""
    zeros = np.zeros_like(p)
    st["t"] = st.get("t", 0) + 1
    p, st["m"], st["v"], st["vmax"] = R.adam_step(
        p,
        g,
        st.get("m", zeros),
        st.get("v", zeros),
        st.get("vmax", zeros) if amsgrad else None,
        st["t"],
        lr,
        betas[0],
        betas[1],
        eps,
        weight_decay,
        decoupled,
    )
    return p
