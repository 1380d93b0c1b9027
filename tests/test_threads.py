"""Large inputs (threaded kernels) vs the references, for 1 and 2 threads."""
import numpy as np
import pytest

import normreg
from normreg import functional as F

import reference as R
from common import DTYPES, assert_close
from gradcheck import offset_randn


@pytest.fixture(params=[1, 2])
def nthreads(request):
    n = normreg.get_num_threads()
    normreg.set_num_threads(request.param)
    yield request.param
    normreg.set_num_threads(n)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_large(rng, nthreads, dtype):
    x = offset_randn(rng, (1031, 257)).astype(dtype)
    w = rng.standard_normal(257).astype(dtype)
    b = rng.standard_normal(257).astype(dtype)
    y, mean, rstd = F.layer_norm(x, 257, w, b)
    assert_close(y, R.layer_norm(x, (257,), w, b)[0], dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, dw, db = F.layer_norm_backward(dy, x, mean, rstd, w)
    rdx, rdw, rdb = R.layer_norm_backward(dy, x, (257,), w)
    assert_close(dx, rdx, dtype, scale=np.abs(rdx).max() * 10)
    assert_close(dw, rdw, dtype)
    assert_close(db, rdb, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4099, 17), (37, 9, 513)])
def test_batch_norm_large(rng, nthreads, dtype, shape):
    x = offset_randn(rng, shape).astype(dtype)
    C = shape[1]
    w = rng.standard_normal(C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    rm, rv = np.zeros(C, dtype), np.ones(C, dtype)
    y, sm, sr = F.batch_norm(x, rm, rv, w, b, training=True)
    ry, rrm, rrv, _, _ = R.batch_norm_train(x, w, b, np.zeros(C), np.ones(C))
    assert_close(y, ry, dtype)
    assert_close(rm, rrm, dtype)
    assert_close(rv, rrv, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    dx, dw, db = F.batch_norm_backward(dy, x, sm, sr, w)
    rdx, rdw, rdb = R.batch_norm_train_backward(dy, x, w)
    assert_close(dx, rdx, dtype, scale=np.abs(rdx).max() * 10)
    assert_close(dw, rdw, dtype, scale=np.abs(rdw).max() * 10)
    assert_close(db, rdb, dtype, scale=np.abs(rdb).max() * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_large_mean_is_stable(rng, dtype):
    x = (1e4 + rng.standard_normal((512, 4))).astype(dtype)
    rm, rv = np.zeros(4, dtype), np.ones(4, dtype)
    y, _, _ = F.batch_norm(x, rm, rv, training=True, momentum=1.0)
    np.testing.assert_allclose(y, R.batch_norm_train(x)[0], atol=2e-3 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(rv, x.astype(np.float64).var(0, ddof=1), rtol=1e-3 if dtype == np.float32 else 1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_relu_loss_large(rng, nthreads, dtype):
    x = rng.standard_normal((513, 300)).astype(dtype)
    W = rng.standard_normal((300, 129)).astype(dtype)
    b = rng.standard_normal(129).astype(dtype)
    y = F.linear(x, W, b)
    assert_close(y, R.linear(x, W, b), dtype)
    r = F.relu(y)
    assert_close(r, R.relu(y), dtype)
    labels = rng.integers(0, 129, 513)
    loss, lse = F.cross_entropy(r, labels)
    assert_close(loss, R.cross_entropy(r, labels)[0], dtype)
    dz = F.cross_entropy_backward(r, labels, lse)
    assert_close(dz, R.cross_entropy_backward(r, labels), dtype, scale=1 / 513)


def test_dropout_odd_size_threads(rng):
    x = rng.standard_normal(100_003)
    masks = []
    for n in (1, 2):
        old = normreg.get_num_threads()
        normreg.set_num_threads(n)
        try:
            normreg.manual_seed(5)
            y, mask = F.dropout(x, 0.25)
        finally:
            normreg.set_num_threads(old)
        keep = R.dropout_keep(mask, x.shape)
        assert_close(y, R.dropout(x, keep, 0.25), np.float64)
        masks.append(mask)
    np.testing.assert_array_equal(masks[0], masks[1])
