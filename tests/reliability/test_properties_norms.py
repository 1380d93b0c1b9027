"""Property-based tests (hypothesis) of the normalizations: layer norm, batch norm, RMSNorm and
group norm, forward and backward, on random shapes, float32/float64, memory layouts and
values, against the float64 NumPy references of ``tests/reference/``; inputs are never
modified. (The other ops: test_properties.py; what both share: properties.py.)
"""

import numpy as np
import pytest
import reference as R
from helpers import assert_unmodified, snapshot
from hypothesis import given
from hypothesis import strategies as st
from properties import (
    SETTINGS,
    Data,
    assert_param_grad,
    dtype_layouts,
    norm_values,
    row_norm_args,
    seeds,
    shapes,
    tol,
)

from normreg import functional as F

pytestmark = pytest.mark.sanitize


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
    **dtype_layouts,
    affine=st.booleans(),
    training=st.booleans(),
    track=st.booleans(),
    momentum=st.one_of(st.sampled_from([0.0, 0.1, 0.5, 1.0]), st.floats(0, 1)),
    eps=st.sampled_from([1e-5, 1e-2]),
    **norm_values,
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

    if training and per_channel == 1:
        with pytest.raises(ValueError):
            F.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum, eps=eps)
        if track:  # a failed call changes nothing
            assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)
        assert_unmodified(snap)
        return

    y, smean, srstd = F.batch_norm(x, rm, rv, w, b, training=training, momentum=momentum, eps=eps)
    assert y.dtype == dtype and y.shape == shape and smean.shape == (C,) and srstd.shape == (C,)
    if per_channel == 0:  # no rows, or (N, C, 0): nothing to normalize (PyTorch's empty output)
        assert y.size == 0
        if track:
            assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)
        dx, dw, db = F.batch_norm_backward(dy, x, smean, srstd, w, training=training)
        assert dx.shape == shape
        if affine:  # sums over no values
            assert np.array_equal(dw, np.zeros(C, dtype)) and np.array_equal(db, np.zeros(C, dtype))
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


# ---- RMSNorm and GroupNorm ------------------------------------------------------------------


@SETTINGS
@given(
    **row_norm_args,
    affine=st.booleans(),
    eps=st.sampled_from([None, 1e-5, 0.5]),
    **norm_values,
    accumulate=st.booleans(),
    seed=seeds,
)
def test_rms_norm(lead, norm, dtype, lx, lw, ldy, affine, eps, offset, scale, accumulate, seed):
    d = Data(seed, dtype, offset, scale)
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
    spatial=shapes(4, max_dims=2, min_side=1),
    **dtype_layouts,
    affine=st.booleans(),
    eps=st.sampled_from([1e-5, 0.5]),
    **norm_values,
    seed=seeds,
)
def test_group_norm(N, G, per_group, spatial, dtype, lx, lw, ldy, affine, eps, offset, scale, seed):
    d = Data(seed, dtype, offset, scale)
    C = G * per_group
    shape = (N, C) + spatial
    x = d(shape, lx)
    w = d((C,), lw, offset=1.0, scale=0.5) if affine else None
    b = d((C,), lw, offset=0.0, scale=0.5) if affine else None
    dy = d(shape, ldy, offset=0.0, scale=1.0)
    snap = snapshot(x, w, b, dy)
    if x.size == G:  # one value in each group of a batch of one: PyTorch's ValueError
        with pytest.raises(ValueError, match="more than 1 value"):
            F.group_norm(x, G, w, b, eps)
        assert_unmodified(snap)
        return
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
