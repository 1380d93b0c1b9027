"""Batch-norm policies: empty batches, non-finite statistics, track_running_stats=False,
freeze_stats."""

import warnings

import numpy as np
import pytest
from helpers import set_grad

from normreg import functional as F
from normreg import nn
from normreg.nn.utils import freeze_batch_norm_stats
from normreg.testing import gradcheck


def rng(seed=0):
    return np.random.default_rng(seed)


def trained_bn(cls, C, dtype=np.float64, **kw):
    bn = cls(C, dtype=dtype, **kw)
    r = rng(1)
    shape = (6, C) if cls is nn.BatchNorm1d else (3, C, 2, 2)
    bn(3 * r.standard_normal(shape).astype(dtype) + 1)
    bn.weight.data[...] = r.standard_normal(C) + 1
    bn.bias.data[...] = r.standard_normal(C)
    return bn


@pytest.mark.parametrize(
    "cls,shape",
    [
        (nn.BatchNorm1d, (0, 3)),
        (nn.BatchNorm1d, (0, 3, 4)),
        (nn.BatchNorm1d, (2, 3, 0)),
        (nn.BatchNorm2d, (0, 3, 2, 2)),
        (nn.BatchNorm2d, (2, 3, 0, 5)),
    ],
)
@pytest.mark.parametrize("training", [True, False])
def test_empty_batch_leaves_running_stats_untouched(cls, shape, training):
    bn = trained_bn(cls, 3)
    bn.train(training)
    state = {k: v.copy() for k, v in bn.state_dict().items()}
    y = bn(np.empty(shape))
    assert y.shape == shape and y.dtype == np.float64
    dx = bn.backward(np.empty(shape))
    assert dx.shape == shape
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)
    assert bn.weight.grad is None and bn.bias.grad is None  # nothing added: still no gradient
    set_grad(bn.weight, 0.5)
    bn(np.empty(shape))
    bn.backward(np.empty(shape))
    np.testing.assert_array_equal(bn.weight.grad, 0.5)


def test_functional_empty_batch_leaves_running_stats_untouched():
    rm, rv = np.full(3, 0.5), np.full(3, 2.0)
    y, _, _ = F.batch_norm(np.empty((0, 3)), rm, rv, training=True)
    assert y.shape == (0, 3)
    np.testing.assert_array_equal(rm, 0.5)
    np.testing.assert_array_equal(rv, 2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_statistics_do_not_poison_running_estimates(dtype, bad):
    r = rng(2)
    x = (2 * r.standard_normal((5, 4, 3)) + 1).astype(dtype)
    x[2, 1, 0] = bad
    bn = nn.BatchNorm1d(4, dtype=dtype)
    bn.running_mean[...] = [1, 2, 3, 4]
    bn.running_var[...] = [5, 6, 7, 8]
    with pytest.warns(RuntimeWarning, match="1 channel"):
        y = bn(x)
    assert not np.isfinite(y[:, 1]).all() and np.isfinite(y[:, [0, 2, 3]]).all()
    np.testing.assert_array_equal(bn.running_mean[1], dtype(2))
    np.testing.assert_array_equal(bn.running_var[1], dtype(6))
    good = [0, 2, 3]
    x64 = x.astype(np.float64)[:, good]
    np.testing.assert_allclose(
        bn.running_mean[good], 0.9 * np.array([1, 3, 4]) + 0.1 * x64.mean(axis=(0, 2)), rtol=1e-6
    )
    np.testing.assert_allclose(
        bn.running_var[good],
        0.9 * np.array([5, 7, 8]) + 0.1 * x64.transpose(1, 0, 2).reshape(3, -1).var(axis=1, ddof=1),
        rtol=1e-6,
    )
    assert int(bn.num_batches_tracked) == 1
    # the running estimates still work in evaluation
    bn.eval()
    assert np.isfinite(bn(np.ones((2, 4, 3), dtype=dtype))).all()


def test_overflowing_float32_variance_is_skipped_too():
    x = np.zeros((4, 2), dtype=np.float32)
    x[:, 0] = [1e30, -1e30, 3e30, -2e30]  # finite input, variance beyond float32
    x[:, 1] = [1, 2, 3, 4]
    bn = nn.BatchNorm2d(2)
    with pytest.warns(RuntimeWarning):
        bn(x.reshape(4, 2, 1, 1))
    assert np.isfinite(bn.running_var).all() and bn.running_var[0] == 1.0
    assert bn.running_var[1] == pytest.approx(0.9 + 0.1 * np.var([1, 2, 3, 4], ddof=1))


def test_finite_batches_do_not_warn():
    bn = nn.BatchNorm2d(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bn(rng(3).standard_normal((2, 3, 2, 2)).astype(np.float32))


@pytest.mark.parametrize("cls", [nn.BatchNorm1d, nn.BatchNorm2d])
def test_track_running_stats_false_uses_batch_statistics_always(cls):
    bn = cls(3, track_running_stats=False, dtype=np.float64)
    assert bn.running_mean is None and bn.running_var is None and bn.num_batches_tracked is None
    assert sorted(bn.state_dict()) == ["bias", "weight"]
    r = rng(4)
    x = 3 * r.standard_normal((4, 3) if cls is nn.BatchNorm1d else (4, 3, 2, 2)) + 5
    y_train = bn(x)
    bn.eval()
    np.testing.assert_array_equal(bn(x), y_train)
    bn.weight.data[...] = r.standard_normal(3) + 1
    assert gradcheck(bn, x)  # in eval, the gradient flows through the batch statistics


@pytest.mark.parametrize("cls", [nn.BatchNorm1d, nn.BatchNorm2d])
def test_freeze_stats_normalizes_with_running_estimates_while_training(cls):
    bn = trained_bn(cls, 3)
    r = rng(5)
    x = 3 * r.standard_normal((4, 3) if cls is nn.BatchNorm1d else (4, 3, 2, 2)) + 5
    dy = r.standard_normal(x.shape)
    bn.eval()
    y_eval = bn(x)
    dx_eval = bn.backward(dy)
    dw_eval = bn.weight.grad.copy()
    bn.zero_grad()
    state = {k: v.copy() for k, v in bn.state_dict().items() if "running" in k or "tracked" in k}
    bn.train()
    bn.freeze_stats = True
    np.testing.assert_array_equal(bn(x), y_eval)
    np.testing.assert_array_equal(bn.backward(dy), dx_eval)
    np.testing.assert_array_equal(bn.weight.grad, dw_eval)  # weight and bias still learn
    assert np.any(bn.weight.grad != 0)
    for k, v in state.items():
        np.testing.assert_array_equal(bn.state_dict()[k], v, err_msg=k)
    assert gradcheck(bn, x)  # statistics are constants for the gradient


def test_freeze_helper_survives_train_and_can_be_undone():
    model = nn.Sequential(
        nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.BatchNorm1d(4, track_running_stats=False)
    )
    assert freeze_batch_norm_stats(model) == 1
    model.train()
    assert model[1].freeze_stats and model[1].training
    before = model[1].running_mean.copy()
    model(rng(6).standard_normal((8, 3)).astype(np.float32) + 4)
    np.testing.assert_array_equal(model[1].running_mean, before)
    assert freeze_batch_norm_stats(model, False) == 1
    model(rng(6).standard_normal((8, 3)).astype(np.float32) + 4)
    assert np.any(model[1].running_mean != before)
    with pytest.raises(ValueError, match="track_running_stats"):
        nn.BatchNorm2d(3, track_running_stats=False, freeze_stats=True)
    with pytest.raises(TypeError):
        freeze_batch_norm_stats([model])


def test_failed_forward_keeps_state_intact():
    bn = trained_bn(nn.BatchNorm1d, 3)
    state = {k: v.copy() for k, v in bn.state_dict().items()}
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(np.ones((1, 3)))  # one value per channel in training
    with pytest.raises(ValueError, match="BatchNorm1d"):
        bn(np.ones((4, 5)))
    with pytest.raises(TypeError):
        bn(np.ones((4, 3), dtype=np.float32))
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)


def test_instance_norm_running_stats_skip_non_finite_channels():
    layer = nn.InstanceNorm1d(3, track_running_stats=True, dtype=np.float64)
    x = rng(7).standard_normal((4, 3, 5)) + 2
    x[1, 2, 3] = np.nan
    with pytest.warns(RuntimeWarning, match="1 channel"):
        layer(x)
    assert layer.running_mean[2] == 0.0 and layer.running_var[2] == 1.0
    assert np.all(layer.running_mean[:2] != 0.0)


@pytest.mark.parametrize("convention", ["torch", "needle", "cs231n"])
@pytest.mark.parametrize("momentum", ["default", None])
def test_non_finite_policy_under_every_convention(convention, momentum):
    kw = {} if momentum == "default" else {"momentum": None}
    x = rng(8).standard_normal((6, 3, 2)) * 2 + 1
    bad = x.copy()
    bad[0, 1, 1] = np.inf
    a = nn.BatchNorm1d(3, convention=convention, dtype=np.float64, **kw)
    b = nn.BatchNorm1d(3, convention=convention, dtype=np.float64, **kw)
    start_var = a.running_var.copy()
    for _ in range(2):
        with pytest.warns(RuntimeWarning):
            a(bad)
        b(x)
    keep = [0, 2]
    np.testing.assert_array_equal(a.running_mean[keep], b.running_mean[keep])
    np.testing.assert_array_equal(a.running_var[keep], b.running_var[keep])
    assert a.running_mean[1] == 0.0 and a.running_var[1] == start_var[1]
