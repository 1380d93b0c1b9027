"""Property-based checks over random shapes and values (hypothesis), vs the references."""
import numpy as np
import pytest

import normreg
from normreg import functional as F

import reference as R
from common import assert_close

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**32 - 1)


@SETTINGS
@given(rows=st.integers(1, 6), lead2=st.integers(1, 3), d=st.integers(1, 9), two=st.booleans(),
       affine=st.booleans(), dtype=dtypes, seed=seeds)
def test_layer_norm(rows, lead2, d, two, affine, dtype, seed):
    rng = np.random.default_rng(seed)
    nshape = (lead2, d) if two else (d,)
    x = (5 * rng.standard_normal((rows,) + nshape) + 12).astype(dtype)
    w = rng.standard_normal(nshape).astype(dtype) if affine else None
    b = rng.standard_normal(nshape).astype(dtype) if affine else None
    y, mean, rstd = F.layer_norm(x, nshape, w, b)
    assert_close(y, R.layer_norm(x, nshape, w, b)[0], dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, dw, db = F.layer_norm_backward(dy, x, mean, rstd, w)
    rdx, rdw, rdb = R.layer_norm_backward(dy, x, nshape, w)
    assert_close(dx, rdx, dtype, scale=max(np.abs(rdx).max(), float(rstd.max())) * 10)
    if affine:
        assert_close(dw, rdw, dtype, scale=np.abs(rdw).max() * 10 + 1)
        assert_close(db, rdb, dtype, scale=np.abs(rdb).max() * 10 + 1)


@SETTINGS
@given(n=st.integers(2, 7), c=st.integers(1, 4), length=st.one_of(st.none(), st.integers(1, 5)),
       affine=st.booleans(), momentum=st.floats(0, 1), dtype=dtypes, seed=seeds)
def test_batch_norm_training(n, c, length, affine, momentum, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = (n, c) if length is None else (n, c, length)
    x = (5 * rng.standard_normal(shape) + 12).astype(dtype)
    w = rng.standard_normal(c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    rm0, rv0 = rng.standard_normal(c), 1 + rng.random(c)
    rm, rv = rm0.astype(dtype), rv0.astype(dtype)
    before = rm.copy(), rv.copy()          # the update is in place
    y, sm, sr = F.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum)
    ry, rrm, rrv, _, _ = R.batch_norm_train(x, w, b, *before, momentum=momentum)
    assert_close(y, ry, dtype)
    assert_close(rm, rrm, dtype)
    assert_close(rv, rrv, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    dx, _, _ = F.batch_norm_backward(dy, x, sm, sr, w)
    rdx = R.batch_norm_train_backward(dy, x, w)[0]
    assert_close(dx, rdx, dtype, scale=max(np.abs(rdx).max(), float(sr.max())) * 10)


@SETTINGS
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3), p=st.floats(0, 1),
       dtype=dtypes, seed=seeds)
def test_dropout(shape, p, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    gen = normreg.Generator(seed)
    y, mask = F.dropout(x, p, generator=gen)
    if p == 0:
        assert mask is None
        np.testing.assert_array_equal(y, x)
        return
    keep = R.dropout_keep(mask, x.shape)
    assert_close(y, R.dropout(x, keep, p) if p < 1 else np.zeros(x.shape), dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = F.dropout_backward(dy, mask, p)
    assert_close(dx, R.dropout_backward(dy, keep, p) if p < 1 else np.zeros(x.shape), dtype)


@SETTINGS
@given(b=st.integers(1, 6), k=st.integers(1, 7), scale=st.floats(0.01, 50), dtype=dtypes, seed=seeds)
def test_cross_entropy(b, k, scale, dtype, seed):
    rng = np.random.default_rng(seed)
    z = (scale * rng.standard_normal((b, k))).astype(dtype)
    labels = rng.integers(0, k, b)
    loss, lse = F.cross_entropy(z, labels)
    rloss, rlse = R.cross_entropy(z, labels)
    assert_close(loss, rloss, dtype, scale=max(abs(rloss), 1.0))
    dz = F.cross_entropy_backward(z, labels, lse)
    atol = 4 * np.finfo(dtype).eps * max(np.abs(z).max(), 1.0)
    np.testing.assert_allclose(dz, R.cross_entropy_backward(z, labels), rtol=0, atol=atol)
