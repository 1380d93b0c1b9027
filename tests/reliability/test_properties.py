"""Property-based tests (hypothesis): every op's forward and backward on random shapes
(including 0- and 1-sized dimensions where the op defines them), float32/float64, memory
layouts (C, Fortran, strided slices, negative strides, unaligned buffers, read-only and
byte-swapped arrays) and values, against the float64 NumPy references of
``tests/reference/``; inputs are never modified. This file: linear, relu, dropout,
cross-entropy and the optimizer steps; the normalizations are in test_properties_norms.py,
what both share in properties.py.

Examples per op: ``NORMREG_PROPERTY_EXAMPLES`` (default 100).
"""

import numpy as np
import pytest
import reference as R
from helpers import assert_unmodified, layout, snapshot
from hypothesis import given
from hypothesis import strategies as st
from properties import SETTINGS, Data, assert_param_grad, dtype_layouts, dtypes, layouts, seeds, shapes, tol

import normreg
from normreg import functional as F

pytestmark = pytest.mark.sanitize


# ---- linear ---------------------------------------------------------------------------


@SETTINGS
@given(
    lead=shapes(4, max_dims=2),
    K=st.integers(0, 9),
    N=st.integers(0, 9),
    **dtype_layouts,
    lb=layouts,
    has_bias=st.booleans(),
    accumulate=st.booleans(),
    seed=seeds,
)
def test_linear(lead, K, N, dtype, lx, lw, lb, ldy, has_bias, accumulate, seed):
    d = Data(seed, dtype)
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
@given(shape=shapes(5), dtype=dtypes, lx=layouts, ldy=layouts, seed=seeds)
def test_relu(shape, dtype, lx, ldy, seed):
    d = Data(seed, dtype)
    base = d(shape)
    base.reshape(-1)[::3] = 0  # exact zeros: the gradient there is 0
    x = layout(base, lx)
    dy = d(shape, ldy)
    snap = snapshot(x, dy)
    y = F.relu(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(y, R.relu(x))  # exact
    ly = layout(y, ldy)
    dx = F.relu_backward(dy, ly)
    np.testing.assert_array_equal(dx, R.relu_backward(dy, y))
    assert_unmodified(snap)


# ---- dropout --------------------------------------------------------------------------


@SETTINGS
@given(
    shape=shapes(9),
    dtype=dtypes,
    lx=layouts,
    ldy=layouts,
    p=st.one_of(st.sampled_from([0.0, 0.2, 0.5, 0.9, 1.0]), st.floats(0, 1)),
    gseed=st.integers(0, 2**64 - 1),
    seed=seeds,
)
def test_dropout(shape, dtype, lx, ldy, p, gseed, seed):
    d = Data(seed, dtype)
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

# The hyperparameters of a step are drawn as one dict, given by keyword to the op and to its
# reference alike.
hyper = st.sampled_from([0.0, 0.01, 0.5])
sgd_settings = st.fixed_dictionaries(
    dict(
        lr=st.sampled_from([0.0, 1e-3, 0.1]),
        momentum=hyper,
        dampening=st.sampled_from([0.0, 0.3]),
        weight_decay=hyper,
        nesterov=st.booleans(),
    )
)
adam_settings = st.builds(
    lambda betas, **rest: dict(beta1=betas[0], beta2=betas[1], **rest),  # (beta1, beta2) drawn as a pair
    betas=st.sampled_from([(0.9, 0.999), (0.0, 0.5), (0.5, 0.0)]),
    step=st.integers(1, 50),
    lr=st.sampled_from([1e-3, 0.1]),
    eps=st.sampled_from([1e-8, 1e-3]),
    weight_decay=hyper,
    decoupled=st.booleans(),
)


@SETTINGS
@given(shape=shapes(6), dtype=dtypes, lg=layouts, hp=sgd_settings, first=st.booleans(), seed=seeds)
def test_sgd_step(shape, dtype, lg, hp, first, seed):
    d = Data(seed, dtype)
    param, grad = d(shape), d(shape, lg)
    buf = d(shape) if hp["momentum"] != 0 else None
    p0, b0 = param.copy(), None if buf is None else buf.copy()
    snap = snapshot(grad)
    out = F.sgd_step_(param, grad, buf, **hp, first_step=first)
    assert out is param
    rp, rbuf = R.sgd_step(p0, grad, b0, **hp, first=first)
    np.testing.assert_allclose(param, rp, **tol(dtype, 4.0))
    if buf is not None:
        np.testing.assert_allclose(buf, rbuf, **tol(dtype, 4.0))
    assert_unmodified(snap)


@SETTINGS
@given(shape=shapes(6), dtype=dtypes, lg=layouts, hp=adam_settings, amsgrad=st.booleans(), seed=seeds)
def test_adam_step(shape, dtype, lg, hp, amsgrad, seed):
    d = Data(seed, dtype)
    param, grad = d(shape), d(shape, lg)
    m = d(shape)
    v = np.array(np.abs(d(shape)) + 0.1, dtype=dtype)
    vmax = np.array(v + np.abs(d(shape)), dtype=dtype) if amsgrad else None
    p0, m0, v0 = param.copy(), m.copy(), v.copy()
    vmax0 = None if vmax is None else vmax.copy()
    snap = snapshot(grad)
    F.adam_step_(param, grad, m, v, vmax, **hp)
    rp, rm, rv, rvmax = R.adam_step(p0, grad, m0, v0, vmax0, **hp)
    t = tol(dtype, 4.0)
    np.testing.assert_allclose(param, rp, rtol=t["rtol"] * 10, atol=t["atol"])
    np.testing.assert_allclose(m, rm, **t)
    np.testing.assert_allclose(v, rv, **t)
    if amsgrad:
        np.testing.assert_allclose(vmax, rvmax, **t)
    assert_unmodified(snap)
