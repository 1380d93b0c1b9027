"""Numerical robustness: large means in float32, zero variance, large logits, NaN and Inf.

Reference values come from float64 NumPy on the same (float32) inputs; the behaviour with
NaN/Inf is the one RELIABILITY.md documents.
"""

import numpy as np
import pytest
import reference as R

from normreg import functional as F

pytestmark = pytest.mark.sanitize

ROW = 1e6 + np.array([0.0, 0.25, 0.5, 0.75])  # exactly representable in float32
EXPECTED = np.array([-1.3415549, -0.4471850, 0.4471850, 1.3415549])
# Measured max |error| of y against float64 on the same float32 data (64 x 256, seed 0):
# layer norm <= 1.7e-6, batch norm <= 3.4e-7. The stated tolerance leaves a margin:
LARGE_MEAN_ATOL = 1e-5


def test_layer_norm_row_at_1e6_float32():
    x = ROW.astype(np.float32)[None, :]
    y, mean, rstd = F.layer_norm(x, 4)
    assert np.max(np.abs(y[0] - EXPECTED)) < 1e-4
    assert mean[0] == np.float32(1e6 + 0.375)


def test_batch_norm_column_at_1e6_float32():
    x = ROW.astype(np.float32)[:, None]  # one channel, four samples
    rm, rv = np.zeros(1, np.float32), np.ones(1, np.float32)
    y, mean, rstd = F.batch_norm(x, rm, rv, training=True)
    assert np.max(np.abs(y[:, 0] - EXPECTED)) < 1e-4
    assert mean[0] == np.float32(1e6 + 0.375)
    # running_var gets the unbiased variance: 0.078125 (biased) * 4 / 3
    np.testing.assert_allclose(rv[0], 0.9 + 0.1 * 0.078125 * 4 / 3, rtol=1e-6)


@pytest.mark.parametrize("mean", [1e4, 1e6])
@pytest.mark.parametrize("std", [1.0, 0.1, 0.01])
def test_large_mean_random_data_float32(mean, std):
    rng = np.random.default_rng(int(mean) + int(1 / std))
    x = (mean + std * rng.standard_normal((64, 256))).astype(np.float32)
    y, m, r = F.layer_norm(x, 256)
    ry, rm, rr = R.layer_norm(x, (256,), None, None, 1e-5)
    assert np.max(np.abs(y - ry)) < LARGE_MEAN_ATOL
    np.testing.assert_allclose(m, rm, rtol=1e-7)
    np.testing.assert_allclose(r, rr, rtol=1e-4)
    xb = np.ascontiguousarray(x.T)  # (256 samples, 64 channels)
    yb, mb, rb = F.batch_norm(xb, None, None, training=True)
    ryb, _, _, rmb, rrb = R.batch_norm_train(xb, None, None, None, None, 0.1, 1e-5)
    assert np.max(np.abs(yb - ryb)) < LARGE_MEAN_ATOL
    np.testing.assert_allclose(mb, rmb, rtol=1e-7)
    np.testing.assert_allclose(rb, rrb, rtol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [0.0, 3.0, -1e6, 1e30])
@pytest.mark.parametrize("eps", [1e-5, 1.0])
def test_constant_rows_are_exact(dtype, value, eps):
    """Zero variance: x - mean is exactly 0, so y is exactly the bias, rstd 1/sqrt(eps)."""
    x = np.full((3, 5), value, dtype)
    w = np.linspace(0.5, 2, 5).astype(dtype)
    b = np.linspace(-1, 1, 5).astype(dtype)
    y, mean, rstd = F.layer_norm(x, 5, w, b, eps)
    np.testing.assert_array_equal(y, np.broadcast_to(b, y.shape))
    np.testing.assert_array_equal(mean, np.full(3, value, dtype))
    np.testing.assert_allclose(rstd, 1 / np.sqrt(eps), rtol=2 * np.finfo(dtype).eps)
    dy = np.random.default_rng(0).standard_normal((3, 5)).astype(dtype)
    dx, dw, db = F.layer_norm_backward(dy, x, mean, rstd, w)
    g = dy * w
    np.testing.assert_allclose(
        dx, (g - g.mean(axis=1, keepdims=True)) / np.sqrt(eps), rtol=1e-5, atol=1e-5 / np.sqrt(eps)
    )
    np.testing.assert_array_equal(dw, np.zeros(5, dtype))

    xc = np.full((4, 3), value, dtype)
    yb, mb, rb = F.batch_norm(xc, None, None, w[:3], b[:3], training=True, eps=eps)
    np.testing.assert_array_equal(yb, np.broadcast_to(b[:3], yb.shape))
    np.testing.assert_array_equal(mb, np.full(3, value, dtype))
    np.testing.assert_array_equal(rb, np.full(3, 1 / np.sqrt(eps), dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("magnitude", [1e4, 3e4])
def test_cross_entropy_finite_for_large_logits(dtype, magnitude):
    rng = np.random.default_rng(1)
    z = (magnitude * rng.choice([-1.0, 1.0], (8, 5)) * rng.uniform(0.5, 1, (8, 5))).astype(dtype)
    labels = rng.integers(0, 5, 8)
    loss, lse = F.cross_entropy(z, labels)
    rloss, rlse = R.cross_entropy(z, labels)
    assert np.isfinite(loss) and np.all(np.isfinite(lse))
    np.testing.assert_allclose(loss, rloss, rtol=1e-6)
    np.testing.assert_allclose(lse, rlse, rtol=1e-6)
    dz = F.cross_entropy_backward(z, labels, lse)
    assert np.all(np.isfinite(dz))
    np.testing.assert_allclose(dz, R.cross_entropy_backward(z, labels, 1.0), atol=1e-6)


# ---- NaN and Inf: propagate as documented, never hang or crash --------------------------

SPECIALS = [np.nan, np.inf, -np.inf]


def _x_with(v, dtype=np.float32):
    x = np.arange(12, dtype=dtype).reshape(3, 4)
    x[1, 2] = v
    return x


@pytest.mark.parametrize("v", SPECIALS)
def test_linear_nan_inf_stay_in_their_row(v):
    x = _x_with(v)
    y = F.linear(x, np.ones((4, 2), np.float32))
    assert np.all(np.isfinite(y[[0, 2]]))
    assert np.all(np.isnan(y[1])) if np.isnan(v) else np.all(y[1] == v)


@pytest.mark.parametrize("v", SPECIALS)
def test_relu_nan_inf(v):
    y = F.relu(_x_with(v))
    expected = v if (np.isnan(v) or v > 0) else 0.0
    assert np.isnan(y[1, 2]) if np.isnan(expected) else y[1, 2] == expected
    dx = F.relu_backward(np.ones((3, 4), np.float32), y)
    # NaN <= 0 is false: dy passes (PyTorch's threshold_backward)
    assert dx[1, 2] == (1.0 if v == np.inf or np.isnan(v) else 0.0)


@pytest.mark.parametrize("v", SPECIALS)
def test_layer_norm_nan_inf_poison_only_their_row(v):
    x = _x_with(v)
    y, mean, rstd = F.layer_norm(x, 4)
    assert np.all(np.isnan(y[1])) and np.isnan(rstd[1])
    assert np.all(np.isfinite(y[[0, 2]])) and np.all(np.isfinite(rstd[[0, 2]]))
    dx, _, _ = F.layer_norm_backward(np.ones_like(x), x, mean, rstd)
    assert np.all(np.isnan(dx[1])) and np.all(np.isfinite(dx[[0, 2]]))


@pytest.mark.parametrize("v", SPECIALS)
def test_batch_norm_nan_inf_poison_only_their_channel(v):
    x = _x_with(v)
    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    y, mean, rstd = F.batch_norm(x, rm, rv, training=True)
    assert np.all(np.isnan(y[:, 2])) and np.isnan(rstd[2]) and np.isnan(rv[2])
    others = [0, 1, 3]
    assert np.all(np.isfinite(y[:, others])) and np.all(np.isfinite(rv[others]))
    dx, _, _ = F.batch_norm_backward(np.ones_like(x), x, mean, rstd)
    assert np.all(np.isnan(dx[:, 2])) and np.all(np.isfinite(dx[:, others]))


@pytest.mark.parametrize("v", SPECIALS)
def test_dropout_drops_nan_inf_to_exact_zero(v):
    import normreg

    x = np.full(4096, v, np.float32)
    y, mask = F.dropout(x, 0.5, generator=normreg.Generator(0))
    keep = R.dropout_keep(mask, x.shape)
    assert np.all(y[~keep] == 0)
    assert np.all(np.isnan(y[keep])) if np.isnan(v) else np.all(y[keep] == v)


@pytest.mark.parametrize("v", SPECIALS)
def test_cross_entropy_nan_inf(v):
    z = np.zeros((2, 3), np.float32)
    z[0, 1] = v
    loss, lse = F.cross_entropy(z, [0, 0])
    assert np.isfinite(lse[1])
    dz = F.cross_entropy_backward(z, [0, 0], lse)
    assert np.all(np.isfinite(dz[1]))
    if v == -np.inf:  # a class with probability 0: finite unless it is the label
        assert np.isfinite(loss) and np.all(np.isfinite(dz[0]))
        assert F.cross_entropy(z, [1, 1])[0] == np.inf
    else:  # NaN, or +Inf (Inf - Inf): the row's loss and gradient are NaN
        assert np.isnan(loss) and np.isnan(lse[0]) and np.all(np.isnan(dz[0]))


@pytest.mark.parametrize("v", SPECIALS)
def test_rms_norm_nan_inf_stay_in_their_row(v):
    x = _x_with(v)
    y, rstd = F.rms_norm(x, 4)
    assert np.all(np.isfinite(y[[0, 2]])) and np.all(np.isfinite(rstd[[0, 2]]))
    if np.isnan(v):
        assert np.all(np.isnan(y[1])) and np.isnan(rstd[1])
    else:  # mean(x**2) = Inf: rstd = 0, finite values go to 0, the Inf itself to NaN (Inf * 0)
        assert rstd[1] == 0 and np.isnan(y[1, 2]) and np.all(y[1, [0, 1, 3]] == 0)
    dx, _ = F.rms_norm_backward(np.ones_like(x), x, rstd)
    assert np.all(np.isnan(dx[1])) and np.all(np.isfinite(dx[[0, 2]]))


@pytest.mark.parametrize("v", SPECIALS)
def test_group_norm_nan_inf_poison_only_their_group(v):
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    x[1, 1, 1] = v  # sample 1, group 0 (channels 0, 1) of 2 groups
    y, mean, rstd = F.group_norm(x, 2)
    assert np.all(np.isnan(y[1, :2])) and np.isnan(rstd[1, 0])
    assert np.all(np.isfinite(y[0])) and np.all(np.isfinite(y[1, 2:]))
    dx, _, _ = F.group_norm_backward(np.ones_like(x), x, mean, rstd)
    assert np.all(np.isnan(dx[1, :2])) and np.all(np.isfinite(dx[0])) and np.all(np.isfinite(dx[1, 2:]))
