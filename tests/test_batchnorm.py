"""BatchNorm1d and BatchNorm2d: functional and module against reference.batch_norm_* in
training and evaluation, float32 and float64, running statistics over several steps, central
differences (normreg.testing.gradcheck), PyTorch when installed. (The kernels' paths, threads
and hostile batches: test_batchnorm_kernels.py; policies for empty batches, non-finite
statistics and frozen statistics: test_batchnorm_policies.py.)"""

import numpy as np
import pytest
import reference as R
from helpers import (
    DTYPES,
    GRADCHECK_TOL,
    LAYOUTS,
    NORM_TOL,
    affine_params,
    assert_close,
    assert_norm_grads_close,
    frozen,
    layout,
    noncontig,
    offset_randn,
    randomize_params,
)

from normreg import functional as F
from normreg import nn
from normreg.testing import gradcheck

SHAPES = [(8, 3), (2, 1), (5, 4, 3), (1, 3, 4), (2, 1, 1), (256, 64), (16, 8, 32)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_functional_training(rng, dtype, shape, affine):
    C = shape[1]
    x = offset_randn(rng, shape).astype(dtype)
    w, b = affine_params(rng, C, dtype, affine)
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
    assert_norm_grads_close(
        F.batch_norm_backward(dy, x, smean, srstd, w, training=True),
        R.batch_norm_train_backward(dy, x, w, eps=1e-4),
        dtype,
        rrstd,
        dy,
        affine,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(1, 3)])  # one row is fine in evaluation
@pytest.mark.parametrize("affine", [True, False])
def test_functional_eval(rng, dtype, shape, affine):
    C = shape[1]
    x = offset_randn(rng, shape).astype(dtype)
    w, b = affine_params(rng, C, dtype, affine)
    rm = (12 + rng.standard_normal(C)).astype(dtype)
    rv = (20 + rng.random(C)).astype(dtype)
    rm_c, rv_c = rm.copy(), rv.copy()
    y, smean, srstd = F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-4)
    assert_close(y, R.batch_norm_eval(x, rm, rv, w, b, eps=1e-4), dtype)
    np.testing.assert_array_equal(rm, rm_c)  # evaluation never updates
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
    w, b = affine_params(rng, C, np.float64, affine)
    rm = 12 + rng.standard_normal(C)
    rv = 25 + rng.random(C)
    dy = rng.standard_normal(shape)

    def forward(x, w=None, b=None):  # running stats untouched by the differences: momentum 0
        return F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.0, eps=1e-5)[0]

    def backward(dy, x, w=None, b=None):
        _, smean, srstd = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.0, eps=1e-5)
        return F.batch_norm_backward(dy, x, smean, srstd, w, training=training)

    inputs = (x, w, b) if affine else (x,)
    assert gradcheck(forward, inputs, backward=backward, dy=dy, **GRADCHECK_TOL)


@pytest.mark.parametrize("training", [True, False])
def test_module_gradcheck(rng, training):
    m = nn.BatchNorm1d(3, dtype=np.float64)
    m.weight.data[...] = rng.standard_normal(3)
    m.bias.data[...] = rng.standard_normal(3)
    m.running_mean[...] = 12 + rng.standard_normal(3)
    m.running_var[...] = 25 + rng.random(3)
    m.train(training)
    x = offset_randn(rng, (5, 3, 2))
    assert gradcheck(m, x, dy=rng.standard_normal(x.shape), **GRADCHECK_TOL)


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
    assert set(m.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}


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
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_constant_channels(rng, dtype, shape):
    x = np.full(shape, -4.1, dtype)
    w, b = affine_params(rng, shape[1], dtype, True)
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


# ---- BatchNorm2d ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_2d(dtype):
    r = np.random.default_rng(12)
    x = offset_randn(r, (4, 3, 5, 6), dtype)
    bn = nn.BatchNorm2d(3, dtype=dtype)
    randomize_params(bn, r)
    w, b = bn.weight.data.astype(np.float64), bn.bias.data.astype(np.float64)
    y = bn(x)
    y_ref, rm_ref, rv_ref, _, _ = R.batch_norm_train(x, w, b, np.zeros(3), np.ones(3))
    np.testing.assert_allclose(y, y_ref, **NORM_TOL[dtype])
    np.testing.assert_allclose(bn.running_mean, rm_ref, rtol=NORM_TOL[dtype]["rtol"])
    np.testing.assert_allclose(bn.running_var, rv_ref, rtol=NORM_TOL[dtype]["rtol"])
    assert int(bn.num_batches_tracked) == 1
    dy = r.standard_normal(x.shape).astype(dtype)
    dx = bn.backward(dy)
    dx_ref, dw_ref, db_ref = R.batch_norm_train_backward(dy, x, w)
    np.testing.assert_allclose(
        dx, dx_ref, rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-5 if dtype == np.float32 else 1e-11
    )
    np.testing.assert_allclose(bn.weight.grad, dw_ref, rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-4)
    np.testing.assert_allclose(bn.bias.grad, db_ref, rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-4)
    # evaluation: the running estimates
    bn.eval()
    np.testing.assert_allclose(
        bn(x), R.batch_norm_eval(x, bn.running_mean, bn.running_var, w, b), **NORM_TOL[dtype]
    )


def test_batch_norm_2d_equals_batch_norm_1d_on_the_flattened_view():
    r = np.random.default_rng(13)
    x = offset_randn(r, (3, 4, 2, 5))
    bn2, bn1 = nn.BatchNorm2d(4, dtype=np.float64), nn.BatchNorm1d(4, dtype=np.float64)
    dy = r.standard_normal(x.shape)
    np.testing.assert_array_equal(bn2(x), bn1(x.reshape(3, 4, 10)).reshape(x.shape))
    np.testing.assert_array_equal(bn2.backward(dy), bn1.backward(dy.reshape(3, 4, 10)).reshape(x.shape))
    np.testing.assert_array_equal(bn2.running_var, bn1.running_var)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_2d_gradcheck(training):
    r = np.random.default_rng(14)
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    randomize_params(bn, r)
    bn.running_mean[...] = r.standard_normal(3) + 12
    bn.running_var[...] = r.uniform(10, 30, 3)
    bn.train(training)
    assert gradcheck(bn, offset_randn(r, (2, 3, 2, 3)))


def test_batch_norm_2d_non_contiguous_input():
    r = np.random.default_rng(15)
    base = offset_randn(r, (3, 5, 4, 2), np.float32)
    x = base.transpose(0, 1, 3, 2)  # (3, 5, 2, 4), not contiguous
    x_copy = x.copy()
    bn_a, bn_b = nn.BatchNorm2d(5), nn.BatchNorm2d(5)
    y1 = bn_a(x)
    np.testing.assert_array_equal(y1, bn_b(np.ascontiguousarray(x)))
    np.testing.assert_array_equal(x, x_copy)  # input untouched
    y1_copy = y1.copy()
    bn_a(x + 1)
    np.testing.assert_array_equal(y1, y1_copy)  # earlier output not overwritten


@pytest.mark.parametrize("dtype", DTYPES)
def test_channels_last_and_non_contiguous_input(rng, dtype):
    x = offset_randn(rng, (6, 4), dtype)
    m = nn.BatchNorm1d(4, dtype=dtype)
    assert_close(m(noncontig(x)), R.batch_norm_train(x)[0], dtype)
    x3 = offset_randn(rng, (4, 3, 5), dtype)
    x3nc = np.swapaxes(np.ascontiguousarray(np.swapaxes(x3, 1, 2)), 1, 2)  # (N, C, L) channels-last
    assert not x3nc.flags.c_contiguous
    assert_close(nn.BatchNorm1d(3, dtype=dtype)(frozen(x3nc)), R.batch_norm_train(x3)[0], dtype)


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("shape", [(6, 4), (5, 4, 3)])
def test_module_steps_on_every_layout(rng, kind, shape):
    """Two training steps of the module (the kernel on x and dy as they are, or the checked
    path that converts them first) against the reference: output, running estimates,
    num_batches_tracked, dx and the gradients, which the second backward adds to; x and dy
    unchanged."""
    m = nn.BatchNorm1d(4)
    randomize_params(m, rng)
    C = shape[1]
    rm, rv = np.zeros(C), np.ones(C)
    dw_sum, db_sum = np.zeros(C), np.zeros(C)
    for step in range(2):
        x = offset_randn(rng, shape, np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        xl, dyl = layout(x, kind), layout(dy, kind)
        ry, rm, rv, _, _ = R.batch_norm_train(x, m.weight.data, m.bias.data, rm, rv)
        assert_close(m(xl), ry, np.float32)
        assert_close(m.running_mean, rm, np.float32)
        assert_close(m.running_var, rv, np.float32)
        assert int(m.num_batches_tracked) == step + 1
        rdx, rdw, rdb = R.batch_norm_train_backward(dy, x, m.weight.data)
        dw_sum, db_sum = dw_sum + rdw, db_sum + rdb
        assert_close(m.backward(dyl), rdx, np.float32)
        assert_close(m.weight.grad, dw_sum, np.float32)
        assert_close(m.bias.grad, db_sum, np.float32)
        np.testing.assert_array_equal(xl, x)
        np.testing.assert_array_equal(dyl, dy)


# ---- PyTorch (skipped unless torch is installed) ------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 1)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_matches_torch(rng, shape, momentum):
    torch = pytest.importorskip("torch")
    C = shape[1]
    m = nn.BatchNorm1d(C, momentum=momentum, dtype=np.float64)
    tm = torch.nn.BatchNorm1d(C, momentum=momentum, dtype=torch.float64)
    w, b = rng.standard_normal(C), rng.standard_normal(C)
    m.weight.data[...] = w
    m.bias.data[...] = b
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(w))
        tm.bias.copy_(torch.tensor(b))
    for step in range(4):
        x = offset_randn(rng, shape)
        dy = rng.standard_normal(shape)
        if step == 3:
            m.eval()
            tm.eval()
        y = m(x)
        dx = m.backward(dy)
        tx = torch.tensor(x, requires_grad=True)
        ty = tm(tx)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-8, atol=1e-11)
        np.testing.assert_allclose(m.running_mean, tm.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(m.running_var, tm.running_var.numpy(), rtol=1e-12)
        np.testing.assert_allclose(m.weight.grad, tm.weight.grad.numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(m.bias.grad, tm.bias.grad.numpy(), rtol=1e-9, atol=1e-11)
    assert int(m.num_batches_tracked) == int(tm.num_batches_tracked)


def test_float32_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = offset_randn(rng, (16, 8), np.float32)
    y, _, _ = F.batch_norm(x, None, None, training=True)
    ty = torch.nn.functional.batch_norm(torch.tensor(x), None, None, training=True)
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-4, atol=1e-5)


def test_batch_norm_2d_matches_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(16)
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    tbn = torch.nn.BatchNorm2d(3).double()
    for _step in range(3):
        x = offset_randn(r, (4, 3, 3, 2))
        dy = r.standard_normal(x.shape)
        tx = torch.from_numpy(x).requires_grad_()
        ty = tbn(tx)
        ty.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(bn(x), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(bn.backward(dy), tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.weight.grad, tbn.weight.grad.numpy(), rtol=1e-9)


# ---- issue 11, item 10: messages ----------------------------------------------------------


@pytest.mark.parametrize(
    "cls, shape", [(nn.BatchNorm1d, (1, 3)), (nn.BatchNorm1d, (1, 3, 1)), (nn.BatchNorm2d, (1, 3, 1, 1))]
)
def test_one_value_per_channel_in_training_reports_the_shape_given(cls, shape):
    bn = cls(3)
    x = np.ones(shape, np.float32)
    with pytest.raises(ValueError) as info:
        bn(x)
    message = str(info.value)
    assert message.startswith(f"{cls.__name__}: expected more than 1 value per channel when training")
    assert f"got input of shape {shape}" in message and "batches of at least 2 samples" in message
    assert bn.pending_forwards == 0 and int(bn.num_batches_tracked) == 0
    bn.eval()
    assert bn(x).shape == shape  # running estimates: one sample is fine


def test_assigning_a_running_statistic_is_checked():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"^BatchNorm1d: running_mean must have shape \(3,\), got \(4,\)$"):
        bn.running_mean = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match=r"^BatchNorm1d: running_var must be an ndarray of dtype float32"):
        bn.running_var = np.ones(3)  # float64 into a float32 layer
    with pytest.raises(TypeError, match="masked"):
        bn.running_mean = np.ma.array(np.zeros(3, np.float32), mask=[1, 0, 0])
    with pytest.raises(ValueError, match="num_batches_tracked must have shape"):
        bn.num_batches_tracked = np.zeros(2, np.int64)
    np.testing.assert_array_equal(bn.running_mean, 0)  # the failed assignments changed nothing
    mine = np.full(3, 2.0, np.float32)
    bn.running_mean = mine  # kept, and updated in place by training
    bn.running_var = [4.0, 4.0, 4.0]  # converted to the buffer's dtype
    bn.num_batches_tracked = 7
    assert bn.running_mean is mine and bn.running_var.dtype == np.float32
    bn.eval()
    np.testing.assert_allclose(bn(np.full((2, 3), 4.0, np.float32)), 1.0, rtol=1e-5)
    bn.train()
    bn(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert not np.all(mine == 2.0) and int(bn.num_batches_tracked) == 8
    inst = nn.InstanceNorm1d(3, track_running_stats=True)
    with pytest.raises(ValueError, match=r"InstanceNorm1d: running_var must have shape \(3,\)"):
        inst.running_var = np.ones(2, np.float32)
    loose = nn.BatchNorm1d(3, track_running_stats=False)
    loose.running_mean = None  # nothing tracked: nothing to check against
