import numpy as np
import pytest

import normreg
from normreg import functional as F, nn

import reference as R
from common import DTYPES, assert_close, frozen, noncontig
from gradcheck import check_grads, offset_randn

SHAPES = [  # (x shape, out_features)
    ((5, 7), 3),
    ((1, 4), 6),      # one row
    ((6, 1), 4),      # one input feature
    ((6, 5), 1),      # one output feature
    ((2, 3, 8), 5),   # (B, T, D)
    ((64, 48), 40),
    ((7,), 3),        # a single sample without a batch dimension
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape,out", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_functional_forward_backward(rng, dtype, xshape, out, bias):
    x = rng.standard_normal(xshape).astype(dtype)
    W = rng.standard_normal((xshape[-1], out)).astype(dtype)
    b = rng.standard_normal(out).astype(dtype) if bias else None
    y = F.linear(x, W, b)
    assert y.dtype == dtype and y.shape == xshape[:-1] + (out,)
    assert_close(y, R.linear(x, W, b), dtype)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dW, db = F.linear_backward(dy, x, W, has_bias=bias)
    rdx, rdW, rdb = R.linear_backward(dy, x, W)
    assert_close(dx, rdx, dtype)
    assert_close(dW, rdW, dtype)
    if bias:
        assert_close(db, rdb, dtype)
    else:
        assert db is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape,out", SHAPES[:5])
def test_module(rng, dtype, xshape, out):
    layer = nn.Linear(xshape[-1], out, dtype=dtype)
    assert layer.weight.shape == (xshape[-1], out) and layer.weight.dtype == dtype
    x = rng.standard_normal(xshape).astype(dtype)
    y = layer(x)
    assert_close(y, R.linear(x, layer.weight.data, layer.bias.data), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    rdx, rdW, rdb = R.linear_backward(dy, x, layer.weight.data)
    assert_close(dx, rdx, dtype)
    assert_close(layer.weight.grad, rdW, dtype)
    assert_close(layer.bias.grad, rdb, dtype)


def test_module_init_bounds():
    normreg.manual_seed(3)
    layer = nn.Linear(16, 300)
    bound = 1 / np.sqrt(16)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.bias.data).max() <= bound
    assert layer.weight.data.std() > bound / 3          # actually spread (uniform: bound/sqrt(3))
    assert nn.Linear(3, 2, bias=False).bias is None


@pytest.mark.parametrize("xshape,out", [((4, 3), 2), ((1, 3), 2), ((2, 3, 2), 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck(rng, xshape, out, bias):
    x = offset_randn(rng, xshape)
    W = rng.standard_normal((xshape[-1], out))
    b = rng.standard_normal(out) if bias else None
    dy = rng.standard_normal(xshape[:-1] + (out,))
    dx, dW, db = F.linear_backward(dy, x, W, has_bias=bias)
    arrays = [x, W] + ([b] if bias else [])
    grads = [dx, dW] + ([db] if bias else [])
    check_grads(lambda: F.linear(x, W, b), arrays, grads, dy)


def test_module_gradcheck(rng):
    layer = nn.Linear(3, 4, dtype=np.float64)
    x = offset_randn(rng, (5, 3))
    dy = rng.standard_normal((5, 4))
    layer(x)
    dx = layer.backward(dy)
    check_grads(lambda: layer(x), [x, layer.weight.data, layer.bias.data],
                [dx, layer.weight.grad.copy(), layer.bias.grad.copy()], dy)


def test_gradients_accumulate_and_zero_grad(rng):
    layer = nn.Linear(4, 3, dtype=np.float64)
    x1, x2 = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    d1, d2 = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    layer(x1); layer.backward(d1)
    layer(x2); layer.backward(d2)
    _, w1, b1 = R.linear_backward(d1, x1, layer.weight.data)
    _, w2, b2 = R.linear_backward(d2, x2, layer.weight.data)
    assert_close(layer.weight.grad, w1 + w2, np.float64)
    assert_close(layer.bias.grad, b1 + b2, np.float64)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_functional_accumulates_into_given_arrays(rng):
    x, W = rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    dy = rng.standard_normal((5, 3))
    dW0, db0 = rng.standard_normal((4, 3)), rng.standard_normal(3)
    dW, db = dW0.copy(), dW0[0].copy() * 0 + db0
    _, dW_out, db_out = F.linear_backward(dy, x, W, dweight=dW, dbias=db)
    assert dW_out is dW and db_out is db
    _, rW, rb = R.linear_backward(dy, x, W)
    assert_close(dW, dW0 + rW, np.float64)
    assert_close(db, db0 + rb, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_untouched_readonly_noncontiguous(rng, dtype):
    x = rng.standard_normal((6, 5)).astype(dtype)
    W = rng.standard_normal((5, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    dy = rng.standard_normal((6, 4)).astype(dtype)
    for xx, WW, dd in [(frozen(x), frozen(W), frozen(dy)),
                       (noncontig(x), np.asfortranarray(W), noncontig(dy))]:
        copies = [a.copy() for a in (xx, WW, dd)]
        y = F.linear(xx, WW, frozen(b))
        assert_close(y, R.linear(x, W, b), dtype)
        dx, dW, db = F.linear_backward(dd, xx, WW)
        rdx, rdW, rdb = R.linear_backward(dy, x, W)
        assert_close(dx, rdx, dtype)
        assert_close(dW, rdW, dtype)
        for a, c in zip((xx, WW, dd), copies):
            np.testing.assert_array_equal(a, c)


def test_outputs_are_not_overwritten(rng):
    layer = nn.Linear(4, 3)
    x1 = rng.standard_normal((5, 4)).astype(np.float32)
    x2 = rng.standard_normal((5, 4)).astype(np.float32)
    y1 = layer(x1)
    y1_copy = y1.copy()
    y2 = layer(x2)
    np.testing.assert_array_equal(y1, y1_copy)
    assert not np.shares_memory(y1, y2)
    d1 = layer.backward(np.ones((5, 3), np.float32))
    d1c = d1.copy()
    layer.backward(2 * np.ones((5, 3), np.float32))
    np.testing.assert_array_equal(d1, d1c)


def test_out_argument(rng):
    x, W = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    out = np.empty((3, 2))
    y = F.linear(x, W, out=out)
    assert y is out
    assert_close(out, R.linear(x, W), np.float64)


@pytest.mark.parametrize("xshape,out", [((4, 0), 3), ((2, 3, 0), 2), ((4, 3), 0), ((0, 3), 2),
                                        ((0, 2, 3), 2)])
def test_empty_dimensions(rng, xshape, out):
    x = rng.standard_normal(xshape)
    W = rng.standard_normal((xshape[-1], out))
    b = rng.standard_normal(out)
    y = F.linear(x, W, b)
    assert_close(y, R.linear(x, W, b), np.float64)
    dy = rng.standard_normal(y.shape)
    dx, dW, db = F.linear_backward(dy, x, W)
    for got, want in zip((dx, dW, db), R.linear_backward(dy, x, W)):
        assert_close(got, want, np.float64)
    layer = nn.Linear(xshape[-1], out, dtype=np.float64)
    assert layer(x).shape == y.shape and layer.backward(dy).shape == x.shape
