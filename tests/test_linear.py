import numpy as np
import pytest
import reference as R
from helpers import DTYPES, GRADCHECK_TOL, assert_close, offset_randn

import normreg
from normreg import functional as F
from normreg import nn
from normreg.testing import gradcheck

SHAPES = [  # (x shape, out_features)
    ((5, 7), 3),
    ((1, 4), 6),  # one row
    ((6, 1), 4),  # one input feature
    ((6, 5), 1),  # one output feature
    ((2, 3, 8), 5),  # (B, T, D)
    ((64, 48), 40),
    ((7,), 3),  # a single sample without a batch dimension
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
    assert layer.weight.data.std() > bound / 3  # actually spread (uniform: bound/sqrt(3))
    assert nn.Linear(3, 2, bias=False).bias is None


@pytest.mark.parametrize("xshape,out", [((4, 3), 2), ((1, 3), 2), ((2, 3, 2), 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck(rng, xshape, out, bias):
    x = offset_randn(rng, xshape)
    W = rng.standard_normal((xshape[-1], out))
    b = rng.standard_normal(out) if bias else None
    dy = rng.standard_normal(xshape[:-1] + (out,))

    def backward(dy, x, W, b=None):
        return F.linear_backward(dy, x, W, has_bias=b is not None)

    assert gradcheck(
        lambda x, W, b=None: F.linear(x, W, b),
        (x, W) + ((b,) if bias else ()),
        backward=backward,
        dy=dy,
        **GRADCHECK_TOL,
    )


def test_module_gradcheck(rng):
    layer = nn.Linear(3, 4, dtype=np.float64)
    x = offset_randn(rng, (5, 3))
    assert gradcheck(layer, x, dy=rng.standard_normal((5, 4)), **GRADCHECK_TOL)


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
@pytest.mark.parametrize("rows", [0, 3, 256])
def test_fresh_gradients_overwrite_recycled_memory(rng, dtype, rows):
    """Without accumulators the gradients are written into fresh (pooled) arrays, not added
    to zeros: a block that held NaN and came back from the pool must not leak into them."""
    K, N = 300, 200  # dweight 240-480 KB: a pooled block
    for _ in range(3):
        junk = F.linear(np.zeros((1, 1), dtype), np.full((1, K * N), np.nan, dtype))
        del junk  # its block goes back to the pool, NaN inside
        x, dy = rng.standard_normal((rows, K)).astype(dtype), rng.standard_normal((rows, N)).astype(dtype)
        W = rng.standard_normal((K, N)).astype(dtype)
        for x_, dy_ in ((x, dy), (x.reshape(1, rows, K), dy.reshape(1, rows, N))):  # both paths
            dx, dW, db = F.linear_backward(dy_, x_, W)
            rdx, rdW, rdb = R.linear_backward(dy, x, W)
            assert dx.shape == x_.shape and dW.shape == (K, N) and db.shape == (N,)
            assert_close(dx.reshape(rows, K), rdx, dtype)
            assert_close(dW, rdW, dtype)
            assert_close(db, rdb, dtype)


def test_out_argument(rng):
    x, W = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    out = np.empty((3, 2))
    y = F.linear(x, W, out=out)
    assert y is out
    assert_close(out, R.linear(x, W), np.float64)


@pytest.mark.parametrize(
    "xshape,out", [((4, 0), 3), ((2, 3, 0), 2), ((4, 3), 0), ((0, 3), 2), ((0, 2, 3), 2)]
)
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


@pytest.mark.parametrize("B,K,N", [(512, 512, 10), (128, 1024, 512), (3, 7, 2)])
def test_thread_choice_keeps_results_and_setting(nthreads, B, K, N):
    """Skinny products run on one OpenBLAS thread: the results and the setting stay."""
    rng = np.random.default_rng(B)
    x = rng.standard_normal((B, K)).astype(np.float32)
    w = rng.standard_normal((K, N)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    dy = rng.standard_normal((B, N)).astype(np.float32)
    y = F.linear(x, w, b)
    np.testing.assert_allclose(y, R.linear(x, w, b), rtol=1e-4, atol=1e-3)
    dx, dw, db = F.linear_backward(dy, x, w)
    rdx, rdw, _ = R.linear_backward(dy, x, w)
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=1e-3)
    assert normreg.get_num_threads() == nthreads


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_linear_relu_loss_chain(rng, nthreads, dtype):
    """Large (threaded) inputs through linear, relu and cross-entropy, 1 and 2 threads."""
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


def test_backward_without_the_input_gradient_gives_the_same_parameter_gradients(rng):
    """``input_grad=False`` (the input is data): no dx, the same .grad as the full backward."""
    x = rng.standard_normal((6, 5))
    dy = rng.standard_normal((6, 3))

    def model(first):
        normreg.manual_seed(3)
        return nn.Sequential(
            first(), nn.Linear(4, 4, dtype=np.float64), nn.ReLU(), nn.Linear(4, 3, dtype=np.float64)
        )

    for first in (
        lambda: nn.Linear(5, 4, dtype=np.float64),
        lambda: nn.Sequential(nn.Linear(5, 4, dtype=np.float64)),
    ):
        full, part = model(first), model(first)
        full(x)
        part(x)
        dx = full.backward(dy)
        assert dx.shape == x.shape
        assert part.backward(dy, input_grad=False) is None
        for (name, p), (_, q) in zip(full.named_parameters(), part.named_parameters()):
            np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)
        assert full.pending_forwards == part.pending_forwards == 0
    # a first layer that cannot skip it (ReLU) still runs its backward; None is returned
    seq = nn.Sequential(nn.ReLU(), nn.Linear(5, 2, dtype=np.float64))
    seq(x)
    assert seq.backward(rng.standard_normal((6, 2)), input_grad=False) is None
    assert seq.pending_forwards == 0 and seq[0].pending_forwards == 0
    lin = nn.Linear(5, 3, dtype=np.float64)
    lin(x)
    assert lin.backward(dy, input_grad=False) is None and lin.weight.grad is not None
