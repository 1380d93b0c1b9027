"""Property-based tests (hypothesis): every op's forward and backward on random shapes
(including 0- and 1-sized dimensions where the op defines them), float32/float64, memory
layouts (C, Fortran, strided slices, negative strides, unaligned buffers, read-only and
byte-swapped arrays) and values, against the float64 NumPy references of
``tests/reference/``; inputs are never modified.

Examples per op: ``NORMREG_PROPERTY_EXAMPLES`` (default 100).
"""

import os

import numpy as np
import pytest
import reference as R
from helpers import LAYOUTS, assert_unmodified, layout, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import normreg
from normreg import functional as F

pytestmark = pytest.mark.sanitize

EXAMPLES = int(os.environ.get("NORMREG_PROPERTY_EXAMPLES", "100"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

dtypes = st.sampled_from([np.float32, np.float64])
layouts = st.sampled_from(LAYOUTS)
seeds = st.integers(0, 2**32 - 1)


# A layer-wise norm (LayerNorm, RMSNorm): x of shape lead + norm, normalized over norm; lx,
# lw, ldy the memory layouts of x, the weight and dy.
row_norm_args = dict(
    lead=st.lists(st.integers(0, 4), max_size=2),
    norm=st.lists(st.integers(1, 7), min_size=1, max_size=2),
    dtype=dtypes,
    lx=layouts,
    lw=layouts,
    ldy=layouts,
)


def tol(dtype, scale=1.0):
    if dtype == np.float32:
        return dict(rtol=1e-4, atol=2e-5 * scale)
    return dict(rtol=1e-9, atol=1e-9 * scale)


def assert_param_grad(got, ref, start, present, **t):
    """A parameter's gradient: None when the layer has no such parameter, else the
    reference's added to the gradient it started from (``start``; None: from zero)."""
    if not present:
        assert got is None
        return
    np.testing.assert_allclose(got, ref + (0 if start is None else start), **t)


class Data:
    """Random arrays from one seed: offset + scale * randn, cast to the dtype."""

    def __init__(self, seed, dtype, offset=0.0, scale=1.0):
        self.rng = np.random.default_rng(seed)
        self.dtype, self.offset, self.scale = dtype, offset, scale

    def __call__(self, shape, kind="C", offset=None, scale=None):
        a = (self.offset if offset is None else offset) + (
            self.scale if scale is None else scale
        ) * self.rng.standard_normal(shape)
        return layout(a.astype(self.dtype), kind)


# ---- linear ---------------------------------------------------------------------------


@SETTINGS
@given(
    lead=st.lists(st.integers(0, 4), max_size=2),
    K=st.integers(0, 9),
    N=st.integers(0, 9),
    dtype=dtypes,
    lx=layouts,
    lw=layouts,
    lb=layouts,
    ldy=layouts,
    has_bias=st.booleans(),
    accumulate=st.booleans(),
    seed=seeds,
)
def test_linear(lead, K, N, dtype, lx, lw, lb, ldy, has_bias, accumulate, seed):
    d = Data(seed, dtype)
    lead = tuple(lead)
    x, w = d(lead + (K,), lx), d((K, N), lw)
    b = d((N,), lb) if has_bias else None
    dy = d(lead + (N,), ldy)
    snap = snapshot(x, w, b, dy)

    y = F.linear(x, w, b)
    assert y.dtype == dtype and y.shape == lead + (N,)
    np.testing.assert_allclose(y, R.linear(x, w, b), **tol(dtype, max(K, 1)))

    dw0 = d((K, N)) if accumulate else None
    db0 = d((N,)) if accumulate and has_bias else None
    dw_start = None if dw0 is None else dw0.copy()
    db_start = None if db0 is None else db0.copy()
    dx, dw, db = F.linear_backward(dy, x, w, has_bias=has_bias, dweight=dw0, dbias=db0)
    rdx, rdw, rdb = R.linear_backward(dy, x, w)
    m = int(np.prod(lead)) if lead else 1
    np.testing.assert_allclose(dx, rdx, **tol(dtype, max(N, 1)))
    assert_param_grad(dw, rdw, dw_start, True, **tol(dtype, max(m, 1)))
    assert_param_grad(db, rdb, db_start, has_bias, **tol(dtype, max(m, 1)))
    if accumulate:
        assert dw is dw0  # added in place
    assert_unmodified(snap)


# ---- relu -----------------------------------------------------------------------------


@SETTINGS
@given(shape=st.lists(st.integers(0, 5), max_size=3), dtype=dtypes, lx=layouts, ldy=layouts, seed=seeds)
def test_relu(shape, dtype, lx, ldy, seed):
    d = Data(seed, dtype)
    base = d(tuple(shape))
    base.reshape(-1)[::3] = 0  # exact zeros: the gradient there is 0
    x = layout(base, lx)
    dy = d(tuple(shape), ldy)
    snap = snapshot(x, dy)
    y = F.relu(x)
    assert y.dtype == dtype and y.shape == tuple(shape)
    np.testing.assert_array_equal(y, R.relu(x))  # exact
    ly = layout(y, ldy)
    dx = F.relu_backward(dy, ly)
    np.testing.assert_array_equal(dx, R.relu_backward(dy, y))
    assert_unmodified(snap)


# ---- layer norm -----------------------------------------------------------------------


@SETTINGS
@given(
    **row_norm_args,
    affine=st.sampled_from(["none", "w", "wb"]),
    eps=st.sampled_from([1e-5, 1e-3, 0.5]),
    offset=st.sampled_from([0.0, 12.0, -300.0]),
    scale=st.sampled_from([1.0, 5.0, 0.01]),
    accumulate=st.booleans(),
    seed=seeds,
)
def test_layer_norm(lead, norm, dtype, lx, lw, ldy, affine, eps, offset, scale, accumulate, seed):
    d = Data(seed, dtype, offset, scale)
    lead, norm = tuple(lead), tuple(norm)
    x = d(lead + norm, lx)
    w = d(norm, lw, offset=1.0, scale=0.5) if affine != "none" else None
    b = d(norm, lw, offset=0.0, scale=0.5) if affine == "wb" else None
    dy = d(lead + norm, ldy, offset=0.0, scale=1.0)
    snap = snapshot(x, w, b, dy)

    y, mean, rstd = F.layer_norm(x, norm, w, b, eps)
    ry, rmean, rrstd = R.layer_norm(x, norm, w, b, eps)
    assert y.dtype == dtype and y.shape == x.shape and mean.shape == lead and rstd.shape == lead
    # float32: the normalization error scales with how far the mean sits from the spread
    t = tol(dtype, 1.0 + abs(offset) / scale * (np.finfo(dtype).eps / 1e-7 if dtype == np.float32 else 1))
    np.testing.assert_allclose(y, ry, **t)
    np.testing.assert_allclose(mean, rmean, **tol(dtype, abs(offset) + scale))
    np.testing.assert_allclose(rstd, rrstd, rtol=t["rtol"] * 10)

    has_bias = affine == "wb"
    dw0 = d(norm, scale=1.0, offset=0.0) if accumulate and w is not None else None
    db0 = d(norm, scale=1.0, offset=0.0) if accumulate and has_bias else None
    starts = [None if a is None else a.copy() for a in (dw0, db0)]
    dx, dw, db = F.layer_norm_backward(dy, x, mean, rstd, w, has_bias=has_bias, dweight=dw0, dbias=db0)
    rdx, rdw, rdb = R.layer_norm_backward(dy, x, norm, w, eps)
    gscale = float(np.max(rrstd)) if rrstd.size else 1.0
    np.testing.assert_allclose(dx, rdx, **tol(dtype, gscale * t["atol"] / tol(dtype)["atol"]))
    rows = max(int(np.prod(lead)), 1)
    assert_param_grad(dw, rdw, starts[0], w is not None, **tol(dtype, rows * t["atol"] / tol(dtype)["atol"]))
    assert_param_grad(db, rdb, starts[1], has_bias, **tol(dtype, rows))
    assert_unmodified(snap)


# ---- batch norm -----------------------------------------------------------------------


@SETTINGS
@given(
    N=st.integers(0, 7),
    C=st.integers(1, 5),
    L=st.one_of(st.none(), st.integers(0, 4)),
    dtype=dtypes,
    lx=layouts,
    lw=layouts,
    ldy=layouts,
    affine=st.booleans(),
    training=st.booleans(),
    track=st.booleans(),
    momentum=st.one_of(st.sampled_from([0.0, 0.1, 0.5, 1.0]), st.floats(0, 1)),
    eps=st.sampled_from([1e-5, 1e-2]),
    offset=st.sampled_from([0.0, 12.0]),
    scale=st.sampled_from([1.0, 5.0]),
    seed=seeds,
)
def test_batch_norm(N, C, L, dtype, lx, lw, ldy, affine, training, track, momentum, eps, offset, scale, seed):
    d = Data(seed, dtype, offset, scale)
    shape = (N, C) if L is None else (N, C, L)
    x = d(shape, lx)
    w = d((C,), lw, offset=1.0, scale=0.5) if affine else None
    b = d((C,), lw, offset=0.0, scale=0.5) if affine else None
    if not training:
        track = True  # evaluation needs running statistics
    rm = d((C,), offset=0.0, scale=1.0) if track else None
    rv = (np.abs(d((C,), offset=0.0, scale=1.0)) + 0.5).astype(dtype) if track else None
    rm0 = None if rm is None else rm.copy()
    rv0 = None if rv is None else rv.copy()
    dy = d(shape, ldy, offset=0.0, scale=1.0)
    snap = snapshot(x, w, b, dy)
    per_channel = N * (1 if L is None else L)

    if training and N > 0 and per_channel <= 1:
        with pytest.raises(ValueError):
            F.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum, eps=eps)
        if track:  # a failed call changes nothing
            assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)
        assert_unmodified(snap)
        return

    y, smean, srstd = F.batch_norm(x, rm, rv, w, b, training=training, momentum=momentum, eps=eps)
    assert y.dtype == dtype and y.shape == shape and smean.shape == (C,) and srstd.shape == (C,)
    if N == 0:
        assert y.size == 0
        if track:
            assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)
        dx, dw, db = F.batch_norm_backward(dy, x, smean, srstd, w, training=training)
        assert dx.shape == shape
        assert_unmodified(snap)
        return
    if per_channel == 0:  # evaluation of (N, C, 0): nothing to normalize
        assert y.size == 0
        assert_unmodified(snap)
        return
    t = tol(dtype, 1.0 + offset / scale)
    if training:
        ry, rrm, rrv, rmean, rrstd = R.batch_norm_train(x, w, b, rm0, rv0, momentum, eps)
        np.testing.assert_allclose(y, ry, **t)
        np.testing.assert_allclose(smean, rmean, **tol(dtype, offset + scale))
        np.testing.assert_allclose(srstd, rrstd, rtol=t["rtol"] * 10)
        if track:
            np.testing.assert_allclose(rm, rrm, **tol(dtype, offset + scale))
            np.testing.assert_allclose(rv, rrv, **tol(dtype, scale * scale + 1))
    else:
        np.testing.assert_allclose(y, R.batch_norm_eval(x, rm0, rv0, w, b, eps), **t)
        np.testing.assert_array_equal(rm, rm0)
        np.testing.assert_array_equal(rv, rv0)

    dx, dw, db = F.batch_norm_backward(dy, x, smean, srstd, w, training=training, has_bias=affine)
    if training:
        rdx, rdw, rdb = R.batch_norm_train_backward(dy, x, w, eps)
    else:
        rdx, rdw, rdb = R.batch_norm_eval_backward(dy, x, rm0, rv0, w, eps)
    gscale = float(np.max(R.f64(srstd)))
    np.testing.assert_allclose(dx, rdx, **tol(dtype, gscale * (1.0 + offset / scale)))
    if affine:
        np.testing.assert_allclose(dw, rdw, **tol(dtype, per_channel * (1.0 + offset / scale)))
        np.testing.assert_allclose(db, rdb, **tol(dtype, per_channel))
    else:
        assert dw is None and db is None
    assert_unmodified(snap)


# ---- dropout --------------------------------------------------------------------------


@SETTINGS
@given(
    shape=st.lists(st.integers(0, 9), max_size=3),
    dtype=dtypes,
    lx=layouts,
    ldy=layouts,
    p=st.one_of(st.sampled_from([0.0, 0.2, 0.5, 0.9, 1.0]), st.floats(0, 1)),
    gseed=st.integers(0, 2**64 - 1),
    seed=seeds,
)
def test_dropout(shape, dtype, lx, ldy, p, gseed, seed):
    d = Data(seed, dtype)
    shape = tuple(shape)
    x = d(shape, lx)
    dy = d(shape, ldy)
    snap = snapshot(x, dy)
    gen = normreg.Generator(gseed)
    y, mask = F.dropout(x, p, True, generator=gen)
    assert y.dtype == dtype and y.shape == shape
    if p == 0.0:
        assert mask is None
        np.testing.assert_array_equal(y, x)
        np.testing.assert_array_equal(F.dropout_backward(dy, None, p), dy)
        assert_unmodified(snap)
        return
    n = int(np.prod(shape))
    assert mask.dtype == np.uint8 and mask.shape == ((n + 7) // 8,)
    bits = np.unpackbits(mask, bitorder="little")
    assert not bits[n:].any(), "mask bits past the last element must be 0"
    keep = bits[:n].astype(bool)
    if p == 1.0:
        assert not keep.any()
    np.testing.assert_allclose(y, R.dropout(x, keep, p), **tol(dtype))
    # the mask depends only on (seed, counter): not on dtype or layout
    _, mask_c = F.dropout(np.zeros(shape, np.float64), p, True, generator=normreg.Generator(gseed))
    np.testing.assert_array_equal(mask, mask_c)
    dx = F.dropout_backward(dy, mask, p)
    np.testing.assert_allclose(dx, R.dropout(dy, keep, p), **tol(dtype))
    assert_unmodified(snap)


# ---- cross-entropy --------------------------------------------------------------------


@SETTINGS
@given(
    B=st.integers(0, 7),
    K=st.integers(1, 9),
    dtype=dtypes,
    lz=layouts,
    ll=layouts,
    ldt=st.sampled_from([np.int64, np.int32, np.uint8, np.int16]),
    scale=st.one_of(st.sampled_from([1.0, 10.0, 100.0]), st.floats(0.01, 50)),
    dloss=st.floats(-3, 3),
    seed=seeds,
)
def test_cross_entropy(B, K, dtype, lz, ll, ldt, scale, dloss, seed):
    d = Data(seed, dtype, 0.0, scale)
    z = d((B, K), lz)
    labels = layout(d.rng.integers(0, K, B).astype(ldt), ll)
    snap = snapshot(z, labels)
    loss, lse = F.cross_entropy(z, labels)
    rloss, rlse = R.cross_entropy(z, labels)
    assert isinstance(loss, float) and lse.dtype == dtype and lse.shape == (B,)
    if B == 0:
        assert np.isnan(loss)
    else:
        np.testing.assert_allclose(loss, rloss, **tol(dtype, scale))
        np.testing.assert_allclose(lse, rlse, **tol(dtype, scale))
    dz = F.cross_entropy_backward(z, labels, lse, dloss)
    assert dz.dtype == dtype and dz.shape == (B, K)
    rdz = R.cross_entropy_backward(z, labels, dloss)
    np.testing.assert_allclose(dz, rdz, **tol(dtype, 1.0))
    if B:  # softmax(z) is known to the precision of z itself: |z| * eps absolute
        bound = 4 * np.finfo(dtype).eps * max(float(np.abs(R.f64(z)).max()), 1.0) * max(abs(dloss), 1.0)
        np.testing.assert_allclose(dz, rdz, rtol=0, atol=bound)
    assert_unmodified(snap)


# ---- optimizer steps --------------------------------------------------------------------

hyper = st.sampled_from([0.0, 0.01, 0.5])


@SETTINGS
@given(
    shape=st.lists(st.integers(0, 6), max_size=3),
    dtype=dtypes,
    lg=layouts,
    lr=st.sampled_from([0.0, 1e-3, 0.1]),
    momentum=hyper,
    dampening=st.sampled_from([0.0, 0.3]),
    weight_decay=hyper,
    nesterov=st.booleans(),
    first=st.booleans(),
    seed=seeds,
)
def test_sgd_step(shape, dtype, lg, lr, momentum, dampening, weight_decay, nesterov, first, seed):
    d = Data(seed, dtype)
    shape = tuple(shape)
    param, grad = d(shape), d(shape, lg)
    buf = d(shape) if momentum != 0 else None
    p0, b0 = param.copy(), None if buf is None else buf.copy()
    snap = snapshot(grad)
    out = F.sgd_step_(
        param,
        grad,
        buf,
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
        first_step=first,
    )
    assert out is param
    rp, rbuf = R.sgd_step(p0, grad, b0, lr, momentum, dampening, weight_decay, nesterov, first)
    np.testing.assert_allclose(param, rp, **tol(dtype, 4.0))
    if buf is not None:
        np.testing.assert_allclose(buf, rbuf, **tol(dtype, 4.0))
    assert_unmodified(snap)


@SETTINGS
@given(
    shape=st.lists(st.integers(0, 6), max_size=3),
    dtype=dtypes,
    lg=layouts,
    lr=st.sampled_from([1e-3, 0.1]),
    betas=st.sampled_from([(0.9, 0.999), (0.0, 0.5), (0.5, 0.0)]),
    eps=st.sampled_from([1e-8, 1e-3]),
    weight_decay=hyper,
    decoupled=st.booleans(),
    amsgrad=st.booleans(),
    step=st.integers(1, 50),
    seed=seeds,
)
def test_adam_step(shape, dtype, lg, lr, betas, eps, weight_decay, decoupled, amsgrad, step, seed):
    d = Data(seed, dtype)
    shape = tuple(shape)
    param, grad = d(shape), d(shape, lg)
    m = d(shape)
    v = np.array(np.abs(d(shape)) + 0.1, dtype=dtype)
    vmax = np.array(v + np.abs(d(shape)), dtype=dtype) if amsgrad else None
    p0, m0, v0 = param.copy(), m.copy(), v.copy()
    vmax0 = None if vmax is None else vmax.copy()
    snap = snapshot(grad)
    F.adam_step_(
        param,
        grad,
        m,
        v,
        vmax,
        step=step,
        lr=lr,
        beta1=betas[0],
        beta2=betas[1],
        eps=eps,
        weight_decay=weight_decay,
        decoupled=decoupled,
    )
    rp, rm, rv, rvmax = R.adam_step(
        p0, grad, m0, v0, vmax0, step, lr, betas[0], betas[1], eps, weight_decay, decoupled
    )
    t = tol(dtype, 4.0)
    np.testing.assert_allclose(param, rp, rtol=t["rtol"] * 10, atol=t["atol"])
    np.testing.assert_allclose(m, rm, **t)
    np.testing.assert_allclose(v, rv, **t)
    if amsgrad:
        np.testing.assert_allclose(vmax, rvmax, **t)
    assert_unmodified(snap)


# ---- RMSNorm and GroupNorm ------------------------------------------------------------------


@SETTINGS
@given(
    **row_norm_args,
    affine=st.booleans(),
    eps=st.sampled_from([None, 1e-5, 0.5]),
    offset=st.sampled_from([0.0, 12.0]),
    scale=st.sampled_from([1.0, 5.0]),
    accumulate=st.booleans(),
    seed=seeds,
)
def test_rms_norm(lead, norm, dtype, lx, lw, ldy, affine, eps, offset, scale, accumulate, seed):
    d = Data(seed, dtype, offset, scale)
    lead, norm = tuple(lead), tuple(norm)
    x = d(lead + norm, lx)
    w = d(norm, lw, offset=1.0, scale=0.5) if affine else None
    dy = d(lead + norm, ldy, offset=0.0, scale=1.0)
    snap = snapshot(x, w, dy)
    e = float(np.finfo(dtype).eps) if eps is None else eps
    y, rstd = F.rms_norm(x, norm, w, eps)
    ry, rrstd = R.rms_norm(x, norm, w, e)
    assert y.dtype == dtype and y.shape == x.shape and rstd.shape == lead
    np.testing.assert_allclose(y, ry, **tol(dtype, 1.0))
    np.testing.assert_allclose(rstd, rrstd, rtol=tol(dtype)["rtol"] * 10)
    dw0 = d(norm, offset=0.0, scale=1.0) if accumulate and affine else None
    start = None if dw0 is None else dw0.copy()
    dx, dw = F.rms_norm_backward(dy, x, rstd, w, dweight=dw0)
    rdx, rdw = R.rms_norm_backward(dy, x, norm, w, e)
    gscale = float(np.max(rrstd)) if rrstd.size else 1.0
    np.testing.assert_allclose(dx, rdx, **tol(dtype, gscale))
    assert_param_grad(dw, rdw, start, affine, **tol(dtype, max(int(np.prod(lead)), 1)))
    assert_unmodified(snap)


@SETTINGS
@given(
    N=st.integers(0, 4),
    G=st.integers(1, 3),
    per_group=st.integers(1, 3),
    spatial=st.lists(st.integers(1, 4), max_size=2),
    dtype=dtypes,
    lx=layouts,
    lw=layouts,
    ldy=layouts,
    affine=st.booleans(),
    eps=st.sampled_from([1e-5, 0.5]),
    offset=st.sampled_from([0.0, 12.0]),
    scale=st.sampled_from([1.0, 5.0]),
    seed=seeds,
)
def test_group_norm(N, G, per_group, spatial, dtype, lx, lw, ldy, affine, eps, offset, scale, seed):
    d = Data(seed, dtype, offset, scale)
    C = G * per_group
    shape = (N, C) + tuple(spatial)
    x = d(shape, lx)
    w = d((C,), lw, offset=1.0, scale=0.5) if affine else None
    b = d((C,), lw, offset=0.0, scale=0.5) if affine else None
    dy = d(shape, ldy, offset=0.0, scale=1.0)
    snap = snapshot(x, w, b, dy)
    y, mean, rstd = F.group_norm(x, G, w, b, eps)
    ry, rmean, rrstd = R.group_norm(x, G, w, b, eps)
    assert y.dtype == dtype and y.shape == shape and mean.shape == (N, G) and rstd.shape == (N, G)
    t = tol(dtype, 1.0 + offset / scale)
    np.testing.assert_allclose(y, ry, **t)
    np.testing.assert_allclose(mean, rmean, **tol(dtype, offset + scale))
    np.testing.assert_allclose(rstd, rrstd, rtol=t["rtol"] * 10)
    dx, dw, db = F.group_norm_backward(dy, x, mean, rstd, w, has_bias=affine)
    assert dx.shape == shape
    if N:
        rdx, rdw, rdb = R.group_norm_backward(dy, x, G, w, eps)
        gscale = float(np.max(rrstd))
        np.testing.assert_allclose(dx, rdx, **tol(dtype, gscale * (1.0 + offset / scale)))
        if affine:
            n = N * int(np.prod(spatial))
            np.testing.assert_allclose(dw, rdw, **tol(dtype, n * (1.0 + offset / scale)))
            np.testing.assert_allclose(db, rdb, **tol(dtype, n))
    if not affine:
        assert dw is None and db is None
    assert_unmodified(snap)
