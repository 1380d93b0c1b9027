import numpy as np
import pytest

from normreg import functional as F, nn

import reference as R
from common import DTYPES, assert_close, frozen, noncontig
from gradcheck import check_grads, offset_randn

CASES = [  # (x shape, normalized_shape)
    ((4, 6), (6,)),
    ((1, 5), (5,)),          # one row
    ((5, 1), (1,)),          # one feature: y = bias
    ((2, 3, 8), (8,)),       # (B, T, D)
    ((2, 3, 4), (3, 4)),     # two normalized dims
    ((3, 4), (3, 4)),        # everything normalized, no leading dim
    ((128, 300), (300,)),
]


def _params(rng, shape, dtype, affine):
    if not affine:
        return None, None
    return (1 + 0.5 * rng.standard_normal(shape)).astype(dtype), rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape,nshape", CASES)
@pytest.mark.parametrize("affine", [True, False])
def test_functional(rng, dtype, xshape, nshape, affine):
    x = offset_randn(rng, xshape).astype(dtype)
    w, b = _params(rng, nshape, dtype, affine)
    y, mean, rstd = F.layer_norm(x, nshape, w, b, eps=1e-5)
    ry, rmean, rrstd = R.layer_norm(x, nshape, w, b, eps=1e-5)
    assert y.dtype == dtype and mean.dtype == dtype
    assert_close(y, ry, dtype)
    assert_close(mean, rmean, dtype)
    assert_close(rstd, rrstd, dtype, scale=np.abs(rrstd).max())

    dy = rng.standard_normal(xshape).astype(dtype)
    dx, dw, db = F.layer_norm_backward(dy, x, mean, rstd, w)
    rdx, rdw, rdb = R.layer_norm_backward(dy, x, nshape, w, eps=1e-5)
    # dx ~ rstd * dy: its float32 error is relative to that size
    assert_close(dx, rdx, dtype, scale=np.abs(rrstd).max() * max(np.abs(dy).max() * 10, 1))
    if affine:
        assert_close(dw, rdw, dtype)
        assert_close(db, rdb, dtype)
    else:
        assert dw is None and db is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_mean_float32_is_stable(dtype):
    # E[x^2] - E[x]^2 would lose every digit here in float32
    rng = np.random.default_rng(7)
    x = (1e4 + rng.standard_normal((8, 64))).astype(dtype)
    y, _, rstd = F.layer_norm(x, 64)
    ry, _, rrstd = R.layer_norm(x, (64,))
    np.testing.assert_allclose(y, ry, rtol=0, atol=2e-3 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(rstd, rrstd, rtol=1e-3 if dtype == np.float32 else 1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape,nshape", [((4, 6), 6), ((2, 3, 4), (3, 4)), ((1, 3), 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_module(rng, dtype, xshape, nshape, affine):
    m = nn.LayerNorm(nshape, eps=1e-3, elementwise_affine=affine, dtype=dtype)
    ns = (nshape,) if isinstance(nshape, int) else nshape
    if affine:
        assert m.weight.shape == ns and (m.weight.data == 1).all() and (m.bias.data == 0).all()
        m.weight.data[...] = 1 + 0.5 * rng.standard_normal(ns)
        m.bias.data[...] = rng.standard_normal(ns)
        w, b = m.weight.data, m.bias.data
    else:
        assert m.weight is None and m.bias is None and m.parameters() == []
        w = b = None
    x = offset_randn(rng, xshape).astype(dtype)
    y = m(x)
    assert_close(y, R.layer_norm(x, ns, w, b, eps=1e-3)[0], dtype)
    dy = rng.standard_normal(xshape).astype(dtype)
    dx = m.backward(dy)
    rdx, rdw, rdb = R.layer_norm_backward(dy, x, ns, w, eps=1e-3)
    assert_close(dx, rdx, dtype)
    if affine:
        assert_close(m.weight.grad, rdw, dtype)
        assert_close(m.bias.grad, rdb, dtype)


def test_module_without_bias(rng):
    m = nn.LayerNorm(5, bias=False, dtype=np.float64)
    assert m.bias is None and [n for n, _ in m.named_parameters()] == ["weight"]
    x = rng.standard_normal((3, 5))
    m.weight.data[...] = rng.standard_normal(5)
    assert_close(m(x), R.layer_norm(x, (5,), m.weight.data)[0], np.float64)
    dy = rng.standard_normal((3, 5))
    dx = m.backward(dy)
    rdx, rdw, _ = R.layer_norm_backward(dy, x, (5,), m.weight.data)
    assert_close(dx, rdx, np.float64)
    assert_close(m.weight.grad, rdw, np.float64)


@pytest.mark.parametrize("xshape,nshape", [((3, 5), (5,)), ((1, 4), (4,)), ((2, 2, 3), (2, 3)),
                                           ((2, 2, 3), (3,))])
@pytest.mark.parametrize("affine", [True, False])
def test_gradcheck(rng, xshape, nshape, affine):
    x = offset_randn(rng, xshape)
    w, b = _params(rng, nshape, np.float64, affine)
    dy = rng.standard_normal(xshape)
    _, mean, rstd = F.layer_norm(x, nshape, w, b, eps=1e-5)
    dx, dw, db = F.layer_norm_backward(dy, x, mean, rstd, w)
    arrays = [x] + ([w, b] if affine else [])
    grads = [dx] + ([dw, db] if affine else [])
    check_grads(lambda: F.layer_norm(x, nshape, w, b, eps=1e-5)[0], arrays, grads, dy)


def test_module_gradcheck(rng):
    m = nn.LayerNorm((2, 3), dtype=np.float64)
    m.weight.data[...] = rng.standard_normal((2, 3))
    m.bias.data[...] = rng.standard_normal((2, 3))
    x = offset_randn(rng, (4, 2, 3))
    dy = rng.standard_normal(x.shape)
    m(x)
    dx = m.backward(dy)
    check_grads(lambda: m(x), [x, m.weight.data, m.bias.data],
                [dx, m.weight.grad.copy(), m.bias.grad.copy()], dy)


def test_gradients_accumulate(rng):
    m = nn.LayerNorm(4, dtype=np.float64)
    x1, x2 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    d1, d2 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    m(x1); m.backward(d1)
    m(x2); m.backward(d2)
    _, w1, b1 = R.layer_norm_backward(d1, x1, (4,), m.weight.data)
    _, w2, b2 = R.layer_norm_backward(d2, x2, (4,), m.weight.data)
    assert_close(m.weight.grad, w1 + w2, np.float64)
    assert_close(m.bias.grad, b1 + b2, np.float64)
    m.zero_grad()
    assert not m.weight.grad.any() and not m.bias.grad.any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_untouched_readonly_noncontiguous(rng, dtype):
    x = offset_randn(rng, (5, 6)).astype(dtype)
    w, b = _params(rng, (6,), dtype, True)
    dy = rng.standard_normal((5, 6)).astype(dtype)
    ry = R.layer_norm(x, (6,), w, b)[0]
    rdx = R.layer_norm_backward(dy, x, (6,), w)[0]
    for xx, ww, dd in [(frozen(x), frozen(w), frozen(dy)), (noncontig(x), noncontig(w), noncontig(dy))]:
        copies = [a.copy() for a in (xx, ww, dd)]
        y, mean, rstd = F.layer_norm(xx, 6, ww, b)
        assert_close(y, ry, dtype)
        dx, _, _ = F.layer_norm_backward(dd, xx, mean, rstd, ww)
        assert_close(dx, rdx, dtype)
        for a, c in zip((xx, ww, dd), copies):
            np.testing.assert_array_equal(a, c)
    m = nn.LayerNorm(6, dtype=dtype)
    assert_close(m(noncontig(x)), R.layer_norm(x, (6,))[0], dtype)


def test_outputs_are_not_overwritten(rng):
    m = nn.LayerNorm(4)
    y1 = m(rng.standard_normal((3, 4)).astype(np.float32))
    c = y1.copy()
    y2 = m(rng.standard_normal((3, 4)).astype(np.float32))
    np.testing.assert_array_equal(y1, c)
    assert not np.shares_memory(y1, y2)


def test_no_rows(rng):
    x = np.ones((0, 2, 3))
    y, mean, rstd = F.layer_norm(x, (2, 3))
    assert y.shape == (0, 2, 3) and mean.shape == (0,) and rstd.shape == (0,)
    dx, dw, db = F.layer_norm_backward(x, x, mean, rstd, np.ones((2, 3)))
    assert dx.shape == x.shape and not dw.any() and not db.any()
    y, _, _ = F.layer_norm(np.ones((4, 0)), 0)      # an empty normalized dimension
    assert y.shape == (4, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_rows(rng, dtype):
    # zero variance: rstd = 1/sqrt(eps), y = bias, finite gradients
    x = np.full((3, 5), 7.3, dtype)
    w, b = _params(rng, (5,), dtype, True)
    y, mean, rstd = F.layer_norm(x, 5, w, b)
    ry, _, rrstd = R.layer_norm(x, (5,), w, b)
    assert_close(y, ry, dtype)
    assert_close(rstd, rrstd, dtype, scale=rrstd.max())
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, _, _ = F.layer_norm_backward(dy, x, mean, rstd, w)
    rdx = R.layer_norm_backward(dy, x, (5,), w)[0]
    assert np.isfinite(dx).all()
    assert_close(dx, rdx, dtype, scale=np.abs(rdx).max())
