import numpy as np
import pytest

from normreg import functional as F, nn

import reference as R
from common import DTYPES, assert_close, frozen, noncontig
from gradcheck import check_grads, offset_randn

SHAPES = [(8, 3), (2, 1), (5, 4, 3), (1, 3, 4), (2, 1, 1), (256, 64), (16, 8, 32)]


def _params(rng, C, dtype, affine):
    if not affine:
        return None, None
    return (1 + 0.5 * rng.standard_normal(C)).astype(dtype), rng.standard_normal(C).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_functional_training(rng, dtype, shape, affine):
    C = shape[1]
    x = offset_randn(rng, shape).astype(dtype)
    w, b = _params(rng, C, dtype, affine)
    rm0 = rng.standard_normal(C).astype(dtype)
    rv0 = (1 + rng.random(C)).astype(dtype)
    rm, rv = rm0.copy(), rv0.copy()
    y, smean, srstd = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3, eps=1e-4)
    ry, rrm, rrv, rmean, rrstd = R.batch_norm_train(x, w, b, rm0, rv0, momentum=0.3, eps=1e-4)
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, ry, dtype)
    assert_close(smean, rmean, dtype)
    assert_close(srstd, rrstd, dtype, scale=np.abs(rrstd).max())
    assert_close(rm, rrm, dtype)
    assert_close(rv, rrv, dtype)

    dy = rng.standard_normal(shape).astype(dtype)
    dx, dw, db = F.batch_norm_backward(dy, x, smean, srstd, w, training=True)
    rdx, rdw, rdb = R.batch_norm_train_backward(dy, x, w, eps=1e-4)
    assert_close(dx, rdx, dtype, scale=np.abs(rrstd).max() * max(np.abs(dy).max() * 10, 1))
    if affine:
        assert_close(dw, rdw, dtype)
        assert_close(db, rdb, dtype)
    else:
        assert dw is None and db is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(1, 3)])   # one row is fine in evaluation
@pytest.mark.parametrize("affine", [True, False])
def test_functional_eval(rng, dtype, shape, affine):
    C = shape[1]
    x = offset_randn(rng, shape).astype(dtype)
    w, b = _params(rng, C, dtype, affine)
    rm = (12 + rng.standard_normal(C)).astype(dtype)
    rv = (20 + rng.random(C)).astype(dtype)
    rm_c, rv_c = rm.copy(), rv.copy()
    y, smean, srstd = F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-4)
    assert_close(y, R.batch_norm_eval(x, rm, rv, w, b, eps=1e-4), dtype)
    np.testing.assert_array_equal(rm, rm_c)   # evaluation never updates
    np.testing.assert_array_equal(rv, rv_c)
    dy = rng.standard_normal(shape).astype(dtype)
    dx, dw, db = F.batch_norm_backward(dy, x, smean, srstd, w, training=False)
    rdx, rdw, rdb = R.batch_norm_eval_backward(dy, x, rm, rv, w, eps=1e-4)
    assert_close(dx, rdx, dtype)
    if affine:
        assert_close(dw, rdw, dtype)
        assert_close(db, rdb, dtype)


@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2), (2, 1)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(rng, shape, affine, training):
    C = shape[1]
    x = offset_randn(rng, shape)
    w, b = _params(rng, C, np.float64, affine)
    rm = 12 + rng.standard_normal(C)
    rv = 25 + rng.random(C)
    dy = rng.standard_normal(shape)

    def f():  # running stats untouched by the finite differences: momentum 0
        return F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.0, eps=1e-5)[0]

    _, smean, srstd = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.0, eps=1e-5)
    dx, dw, db = F.batch_norm_backward(dy, x, smean, srstd, w, training=training)
    arrays = [x] + ([w, b] if affine else [])
    grads = [dx] + ([dw, db] if affine else [])
    check_grads(f, arrays, grads, dy)


@pytest.mark.parametrize("training", [True, False])
def test_module_gradcheck(rng, training):
    m = nn.BatchNorm1d(3, dtype=np.float64)
    m.weight.data[...] = rng.standard_normal(3)
    m.bias.data[...] = rng.standard_normal(3)
    m.running_mean[...] = 12 + rng.standard_normal(3)
    m.running_var[...] = 25 + rng.random(3)
    m.train(training)
    if training:
        m.momentum = 0.0     # keep the running statistics fixed while differencing
    x = offset_randn(rng, (5, 3, 2))
    dy = rng.standard_normal(x.shape)
    m(x)
    dx = m.backward(dy)
    check_grads(lambda: m(x), [x, m.weight.data, m.bias.data],
                [dx, m.weight.grad.copy(), m.bias.grad.copy()], dy)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(16, 4), (6, 4, 5)])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_module_running_stats_over_steps(rng, dtype, shape, momentum):
    C = shape[1]
    m = nn.BatchNorm1d(C, momentum=momentum, dtype=dtype)
    assert (m.running_mean == 0).all() and (m.running_var == 1).all()
    m.weight.data[...] = 1 + 0.5 * rng.standard_normal(C)
    m.bias.data[...] = rng.standard_normal(C)
    rm, rv = np.zeros(C), np.ones(C)
    batches = [offset_randn(rng, shape).astype(dtype) for _ in range(5)]
    for k, x in enumerate(batches):
        mom = 1.0 / (k + 1) if momentum is None else momentum
        ry, rm, rv, _, _ = R.batch_norm_train(x, m.weight.data, m.bias.data, rm, rv, momentum=mom)
        y = m(x)
        assert_close(y, ry, dtype)
        assert_close(m.running_mean, rm, dtype)
        assert_close(m.running_var, rv, dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        m.backward(dy)
    assert int(m.num_batches_tracked) == len(batches)
    if momentum is None:  # cumulative average of the batch statistics
        n = batches[0].size // C
        ax = (0,) if len(shape) == 2 else (0, 2)
        means = [b.astype(np.float64).mean(axis=ax) for b in batches]
        uvars = [b.astype(np.float64).var(axis=ax) * n / (n - 1) for b in batches]
        assert_close(m.running_mean, np.mean(means, axis=0), dtype)
        assert_close(m.running_var, np.mean(uvars, axis=0), dtype)

    # evaluation: running statistics, no update
    m.eval()
    x = offset_randn(rng, shape).astype(dtype)
    rm_c, rv_c = m.running_mean.copy(), m.running_var.copy()
    y = m(x)
    assert_close(y, R.batch_norm_eval(x, rm_c, rv_c, m.weight.data, m.bias.data), dtype)
    np.testing.assert_array_equal(m.running_mean, rm_c)
    np.testing.assert_array_equal(m.running_var, rv_c)
    assert int(m.num_batches_tracked) == len(batches)
    dy = rng.standard_normal(shape).astype(dtype)
    m.zero_grad()
    dx = m.backward(dy)
    rdx, rdw, rdb = R.batch_norm_eval_backward(dy, x, rm_c, rv_c, m.weight.data)
    assert_close(dx, rdx, dtype)
    assert_close(m.weight.grad, rdw, dtype)
    assert_close(m.bias.grad, rdb, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_module_no_running_stats(rng, dtype):
    m = nn.BatchNorm1d(3, track_running_stats=False, affine=False, dtype=dtype)
    assert m.running_mean is None and m.running_var is None
    assert m.parameters() == [] and list(m.state_dict()) == []
    x = offset_randn(rng, (6, 3)).astype(dtype)
    dy = rng.standard_normal((6, 3)).astype(dtype)
    for mode in (True, False):  # batch statistics in both modes
        m.train(mode)
        assert_close(m(x), R.batch_norm_train(x)[0], dtype)
        assert_close(m.backward(dy), R.batch_norm_train_backward(dy, x)[0], dtype, scale=10)


def test_module_affine_defaults():
    m = nn.BatchNorm1d(4)
    assert m.weight.dtype == np.float32 and (m.weight.data == 1).all() and (m.bias.data == 0).all()
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert set(m.state_dict()) == {"weight", "bias", "running_mean", "running_var",
                                   "num_batches_tracked"}


def test_momentum_one_and_zero(rng):
    x = offset_randn(rng, (10, 2))
    rm, rv = np.zeros(2), np.ones(2)
    F.batch_norm(x, rm, rv, training=True, momentum=1.0)
    np.testing.assert_allclose(rm, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv, x.var(0, ddof=1), rtol=1e-12)
    rm0, rv0 = rm.copy(), rv.copy()
    F.batch_norm(offset_randn(rng, (10, 2)), rm, rv, training=True, momentum=0.0)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_untouched_readonly_noncontiguous(rng, dtype):
    x = offset_randn(rng, (6, 4)).astype(dtype)
    w, b = _params(rng, 4, dtype, True)
    dy = rng.standard_normal((6, 4)).astype(dtype)
    ry = R.batch_norm_train(x, w, b)[0]
    rdx = R.batch_norm_train_backward(dy, x, w)[0]
    for xx, dd in [(frozen(x), frozen(dy)), (noncontig(x), noncontig(dy))]:
        xc, dc = xx.copy(), dd.copy()
        y, sm, sr = F.batch_norm(xx, None, None, frozen(w), frozen(b), training=True)
        assert_close(y, ry, dtype)
        dx, _, _ = F.batch_norm_backward(dd, xx, sm, sr, w)
        assert_close(dx, rdx, dtype, scale=10)
        np.testing.assert_array_equal(xx, xc)
        np.testing.assert_array_equal(dd, dc)
    m = nn.BatchNorm1d(4, dtype=dtype)
    assert_close(m(noncontig(x)), R.batch_norm_train(x)[0], dtype)
    x3 = offset_randn(rng, (4, 3, 5)).astype(dtype)
    x3nc = np.swapaxes(np.ascontiguousarray(np.swapaxes(x3, 1, 2)), 1, 2)   # (N, C, L) channels-last
    assert not x3nc.flags.c_contiguous
    assert_close(nn.BatchNorm1d(3, dtype=dtype)(frozen(x3nc)), R.batch_norm_train(x3)[0], dtype)


def test_outputs_are_not_overwritten(rng):
    m = nn.BatchNorm1d(4)
    y1 = m(rng.standard_normal((5, 4)).astype(np.float32))
    c = y1.copy()
    y2 = m(rng.standard_normal((5, 4)).astype(np.float32))
    np.testing.assert_array_equal(y1, c)
    assert not np.shares_memory(y1, y2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_constant_channels(rng, dtype, shape):
    x = np.full(shape, -4.1, dtype)
    w, b = _params(rng, shape[1], dtype, True)
    rm, rv = np.zeros(shape[1], dtype), np.ones(shape[1], dtype)
    y, sm, sr = F.batch_norm(x, rm, rv, w, b, training=True)
    ry, rrm, rrv, _, rrstd = R.batch_norm_train(x, w, b, np.zeros(shape[1]), np.ones(shape[1]))
    assert_close(y, ry, dtype)
    assert_close(rv, rrv, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    dx, _, _ = F.batch_norm_backward(dy, x, sm, sr, w)
    rdx = R.batch_norm_train_backward(dy, x, w)[0]
    assert np.isfinite(dx).all()
    assert_close(dx, rdx, dtype, scale=np.abs(rdx).max())
