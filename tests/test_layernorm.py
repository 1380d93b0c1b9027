"""LayerNorm: functional and module against reference.layer_norm in float32 and float64,
central differences (normreg.testing.gradcheck), the kernels' short-row and threaded paths,
the module's fast path, float32 accuracy at large means, PyTorch when installed."""

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, GRADCHECK_TOL, affine_params, assert_close, assert_norm_grads_close, offset_randn

from normreg import functional as F
from normreg import nn
from normreg.testing import gradcheck

CASES = [  # (x shape, normalized_shape)
    ((4, 6), (6,)),
    ((1, 5), (5,)),  # one row
    ((5, 1), (1,)),  # one feature: y = bias
    ((2, 3, 8), (8,)),  # (B, T, D)
    ((2, 3, 4), (3, 4)),  # two normalized dims
    ((3, 4), (3, 4)),  # everything normalized, no leading dim
    ((128, 300), (300,)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape,nshape", CASES)
@pytest.mark.parametrize("affine", [True, False])
def test_functional(rng, dtype, xshape, nshape, affine):
    x = offset_randn(rng, xshape).astype(dtype)
    w, b = affine_params(rng, nshape, dtype, affine)
    y, mean, rstd = F.layer_norm(x, nshape, w, b, eps=1e-5)
    ry, rmean, rrstd = R.layer_norm(x, nshape, w, b, eps=1e-5)
    assert y.dtype == dtype and mean.dtype == dtype
    assert_close(y, ry, dtype)
    assert_close(mean, rmean, dtype)
    assert_close(rstd, rrstd, dtype, scale=np.abs(rrstd).max())

    dy = rng.standard_normal(xshape).astype(dtype)
    assert_norm_grads_close(
        F.layer_norm_backward(dy, x, mean, rstd, w),
        R.layer_norm_backward(dy, x, nshape, w, eps=1e-5),
        dtype,
        rrstd,
        dy,
        affine,
    )


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


@pytest.mark.parametrize("dtype", DTYPES)
def test_module_without_bias_over_two_dims(dtype):
    r = np.random.default_rng(17)
    ln = nn.LayerNorm((3, 4), bias=False, dtype=dtype)
    assert ln.bias is None and [n for n, _ in ln.named_parameters()] == ["weight"]
    assert list(ln.state_dict()) == ["weight"]
    ln.weight.data[...] = r.standard_normal((3, 4)) + 1
    x = offset_randn(r, (5, 3, 4), dtype)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(ln(x), R.layer_norm(x, (3, 4), ln.weight.data)[0], **tol)
    ln64 = nn.LayerNorm(6, bias=False, dtype=np.float64)
    ln64.weight.data[...] = r.standard_normal(6) + 1
    assert gradcheck(ln64, offset_randn(r, (4, 6)))


@pytest.mark.parametrize(
    "xshape,nshape",
    [((3, 5), (5,)), ((1, 4), (4,)), ((2, 2, 3), (2, 3)), ((2, 2, 3), (3,)), ((3, 11), (11,))],
)
@pytest.mark.parametrize("affine", [True, False])
def test_gradcheck(rng, xshape, nshape, affine):
    x = offset_randn(rng, xshape)
    w, b = affine_params(rng, nshape, np.float64, affine)
    dy = rng.standard_normal(xshape)

    def forward(x, w=None, b=None):
        return F.layer_norm(x, nshape, w, b, eps=1e-5)[0]

    def backward(dy, x, w=None, b=None):
        _, mean, rstd = F.layer_norm(x, nshape, w, b, eps=1e-5)
        return F.layer_norm_backward(dy, x, mean, rstd, w)

    inputs = (x, w, b) if affine else (x,)
    assert gradcheck(forward, inputs, backward=backward, dy=dy, **GRADCHECK_TOL)


def test_module_gradcheck(rng):
    m = nn.LayerNorm((2, 3), dtype=np.float64)
    m.weight.data[...] = rng.standard_normal((2, 3))
    m.bias.data[...] = rng.standard_normal((2, 3))
    x = offset_randn(rng, (4, 2, 3))
    assert gradcheck(m, x, dy=rng.standard_normal(x.shape), **GRADCHECK_TOL)


def test_no_rows(rng):
    x = np.ones((0, 2, 3))
    y, mean, rstd = F.layer_norm(x, (2, 3))
    assert y.shape == (0, 2, 3) and mean.shape == (0,) and rstd.shape == (0,)
    dx, dw, db = F.layer_norm_backward(x, x, mean, rstd, np.ones((2, 3)))
    assert dx.shape == x.shape and not dw.any() and not db.any()
    y, _, _ = F.layer_norm(np.ones((4, 0)), 0)  # an empty normalized dimension
    assert y.shape == (4, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_rows(rng, dtype):
    # zero variance: rstd = 1/sqrt(eps), y = bias, finite gradients
    x = np.full((3, 5), 7.3, dtype)
    w, b = affine_params(rng, (5,), dtype, True)
    y, mean, rstd = F.layer_norm(x, 5, w, b)
    ry, _, rrstd = R.layer_norm(x, (5,), w, b)
    assert_close(y, ry, dtype)
    assert_close(rstd, rrstd, dtype, scale=rrstd.max())
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, _, _ = F.layer_norm_backward(dy, x, mean, rstd, w)
    rdx = R.layer_norm_backward(dy, x, (5,), w)[0]
    assert np.isfinite(dx).all()
    assert_close(dx, rdx, dtype, scale=np.abs(rdx).max())


# ---- the kernels' paths: short rows, row tiles, threads ---------------------------------


def _check_short_rows(rng, dtype, M, D, affine, shift=12.0):
    x = offset_randn(rng, (M, D), dtype, shift=shift)
    w = (1 + 0.5 * rng.standard_normal(D)).astype(dtype) if affine else None
    b = rng.standard_normal(D).astype(dtype) if affine else None
    y, mean, rstd = F.layer_norm(x, (D,), w, b, eps=1e-5)
    ry, rmean, rrstd = R.layer_norm(x, (D,), w, b, eps=1e-5)
    assert_close(y, ry, dtype, err_msg=f"y M={M} D={D}")
    assert_close(mean, rmean, dtype, err_msg=f"mean M={M} D={D}")
    assert_close(rstd, rrstd, dtype, scale=np.abs(rrstd).max(), err_msg=f"rstd M={M} D={D}")

    dy = rng.standard_normal((M, D)).astype(dtype)
    dw0 = rng.standard_normal(D).astype(dtype) if affine else None  # grads are added to
    db0 = rng.standard_normal(D).astype(dtype) if affine else None
    dx, dw, db = F.layer_norm_backward(
        dy,
        x,
        mean,
        rstd,
        w,
        dweight=None if dw0 is None else dw0.copy(),
        dbias=None if db0 is None else db0.copy(),
    )
    rdx, rdw, rdb = R.layer_norm_backward(dy, x, (D,), w, eps=1e-5)
    assert_close(dx, rdx, dtype, err_msg=f"dx M={M} D={D}")
    if affine:
        assert_close(dw, rdw + dw0, dtype, scale=max(1.0, np.abs(rdw).max()), err_msg="dw")
        assert_close(db, rdb + db0, dtype, scale=max(1.0, np.abs(rdb).max()), err_msg="db")


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_short_row_length(rng, dtype, nthreads):
    """The short-row path (D <= 256: rows in groups, sums in vector lanes): every D from 1
    to 130 and the edges of the path, row counts that leave partial groups."""
    for D in list(range(1, 131)) + [255, 256, 257]:
        for M in (1, 3, 4, 5, 7):
            _check_short_rows(rng, dtype, M, D, affine=(M + D) % 2 == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [1, 2, 3, 4, 5, 7, 8, 11, 15, 16, 17, 33, 64, 100, 128, 130, 256])
@pytest.mark.parametrize("affine", [True, False])
def test_threaded_sizes(rng, dtype, nthreads, D, affine):
    """Enough rows (an odd count) for the kernels to split them between threads."""
    _check_short_rows(rng, dtype, 2 * (40000 // D) + 3, D, affine)


@pytest.mark.parametrize("D", [3, 4, 6, 8, 12, 16, 64, 100, 128, 256])
def test_float32_statistics_at_a_large_mean(rng, D):
    """Shifted two-pass sums: mean 1e6, std 1 in float32 keeps rstd accurate to ~1e-6."""
    x64 = 1e6 + rng.standard_normal((37, D))
    x = x64.astype(np.float32)
    y, mean, rstd = F.layer_norm(x, (D,), eps=0.0)
    _, rmean, rrstd = R.layer_norm(x, (D,), eps=0.0)  # reference on the float32 values
    assert np.max(np.abs(rstd / rrstd - 1)) < 5e-6
    assert np.max(np.abs(mean - rmean)) < 0.07  # float32 spacing at 1e6 is 0.0625
    ry, _, _ = R.layer_norm(x, (D,), eps=0.0)
    assert np.max(np.abs(y - ry)) < 1e-4 * max(1.0, np.sqrt(D))


@pytest.mark.parametrize("D", [64, 128, 135])
def test_results_do_not_depend_on_threads(rng, set_threads, D):
    """Groups never straddle the split: 1 and 2 threads give the same bits."""
    x = offset_randn(rng, (4099, D), np.float32)
    w = rng.standard_normal(D).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    out = []
    for n in (1, 2):
        set_threads(n)
        y, mean, rstd = F.layer_norm(x, (D,), w, w)
        dx, _, _ = F.layer_norm_backward(dy, x, mean, rstd, w)
        out.append((y, mean, rstd, dx))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [2, 3, 4, 6, 7, 8, 10, 13, 16, 32, 48, 64, 100, 128, 135, 256])
def test_a_row_alone_gives_the_same_bits(rng, dtype, D):
    """A row's result does not depend on the rows beside it (the group of rows it falls in,
    a pair or a row alone, the pipelined groups): each row of a batch, normalized alone,
    gives the batch's bits, forward and backward."""
    M = 11
    x = offset_randn(rng, (M, D), dtype)
    w = rng.standard_normal(D).astype(dtype)
    dy = rng.standard_normal((M, D)).astype(dtype)
    y, mean, rstd = F.layer_norm(x, (D,), w, w)
    dx, _, _ = F.layer_norm_backward(dy, x, mean, rstd, w)
    for i in range(M):
        yi, mi, ri = F.layer_norm(x[i : i + 1], (D,), w, w)
        dxi, _, _ = F.layer_norm_backward(dy[i : i + 1], x[i : i + 1], mi, ri, w)
        for got, want in ((yi[0], y[i]), (mi[0], mean[i]), (ri[0], rstd[i]), (dxi[0], dx[i])):
            np.testing.assert_array_equal(got, want, err_msg=f"row {i}")


@pytest.mark.parametrize("M,D", [(1, 1), (17, 3), (33, 64), (100, 100), (19, 1024), (5, 5000)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_row_tiles(nthreads, M, D, dtype):
    rng = np.random.default_rng(M * D)
    x = offset_randn(rng, (M, D), dtype)
    w, b = rng.standard_normal(D).astype(dtype), rng.standard_normal(D).astype(dtype)
    dy = rng.standard_normal((M, D)).astype(dtype)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    y, mean, rstd = F.layer_norm(x, (D,), w, b)
    yr, mr, rr = R.layer_norm(x, (D,), w, b)
    np.testing.assert_allclose(y, yr, **tol)
    np.testing.assert_allclose(mean, mr, **tol)
    np.testing.assert_allclose(rstd, rr, **tol)
    gw, gb = np.ones(D, dtype), np.ones(D, dtype)  # accumulated into
    dx, _, _ = F.layer_norm_backward(dy, x, mean, rstd, w, dweight=gw, dbias=gb)
    dxr, dwr, dbr = R.layer_norm_backward(dy, x, (D,), w)
    np.testing.assert_allclose(dx, dxr, **tol)
    np.testing.assert_allclose(gw, 1 + dwr, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10 * M)
    np.testing.assert_allclose(gb, 1 + dbr, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10 * M)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_threaded(rng, nthreads, dtype):
    x = offset_randn(rng, (1031, 257), dtype)
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


def test_float32_accuracy_at_mean_1e6():
    rng = np.random.default_rng(0)
    x = (1e6 + rng.standard_normal((64, 1024))).astype(np.float32)
    _, mean, rstd = F.layer_norm(x, (1024,))
    xd = x.astype(np.float64)
    std = np.sqrt(xd.var(1))
    assert np.max(np.abs(mean - xd.mean(1)) / std) < 1e-1  # float32 resolution at 1e6 is 0.06
    assert np.max(np.abs(rstd * np.sqrt(xd.var(1) + 1e-5) - 1)) < 1e-5


def _outcome(call):
    """What a call gave: ("ok", its arrays) or (the exception's type, its message)."""
    try:
        return "ok", call()
    except (TypeError, ValueError) as e:
        return type(e), str(e)


_f32 = np.float32
_w64 = np.linspace(0.5, 1.5, 64, dtype=_f32)


@pytest.mark.parametrize(
    "x, kwargs",
    [
        (np.ones((4, 64), _f32), dict(eps=-1.0)),
        (np.ones((4, 64), _f32), dict(eps=float("nan"))),
        (np.ones((4, 64), _f32), dict(eps=float("inf"))),
        (np.ones((4, 64), _f32), dict(eps=True)),
        (np.linspace(-2, 3, 256, dtype=_f32).reshape(4, 64), dict(eps=1)),
        (np.ones((4, 64), _f32), dict(weight=_w64.astype(np.float64))),
        (np.ones((4, 64), _f32), dict(weight=np.ma.array(_w64))),
        (np.ones((4, 64), _f32), dict(weight=_w64[None])),
        (np.ones((4, 64), _f32), dict(weight=list(_w64))),
        (np.ones((4, 64), _f32), dict(weight=_w64[:63])),
        (np.ones((4, 64), _f32), dict(bias=np.ones(128, _f32)[::2])),
        (np.arange(256, dtype=_f32).reshape(64, 4).T, dict(weight=_w64)),
        (np.ones((4, 64), np.int32), {}),
        (np.ones((4, 64), np.float16), {}),
        (np.ones((4, 63), _f32), {}),
        (np.ma.array(np.ones((4, 64), _f32)), {}),
    ],
)
def test_functional_direct_path_answers_as_the_checked_path(x, kwargs):
    """F.layer_norm hands (M, D) input with normalized_shape D to the kernel at once: what the
    kernel refuses there must give what the checked path gives (normalized_shape as a NumPy
    integer, which takes it), errors and results alike."""
    direct = _outcome(lambda: F.layer_norm(x, 64, **kwargs))
    checked = _outcome(lambda: F.layer_norm(x, np.int64(64), **kwargs))
    assert direct[0] == checked[0]
    if direct[0] == "ok":
        for a, b in zip(direct[1], checked[1]):
            np.testing.assert_array_equal(a, b)
        w, b, eps = kwargs.get("weight"), kwargs.get("bias"), float(kwargs.get("eps", 1e-5))
        ry = R.layer_norm(np.asarray(x, np.float64), (64,), w, b, eps)[0]
        np.testing.assert_allclose(direct[1][0], ry, rtol=1e-5, atol=1e-5)
    else:
        assert direct[1] == checked[1]


def test_module_fast_path_matches_general_path():
    rng = np.random.default_rng(0)
    ln = nn.LayerNorm(64)
    ln.weight.data[...] = rng.standard_normal(64)
    ln.bias.data[...] = rng.standard_normal(64)
    x = rng.standard_normal((32, 64)).astype(np.float32)
    yr = R.layer_norm(x, (64,), ln.weight.data, ln.bias.data)[0]
    np.testing.assert_allclose(ln(x), yr, rtol=1e-5, atol=1e-5)  # fast path
    np.testing.assert_allclose(ln(np.asfortranarray(x)), yr, rtol=1e-5, atol=1e-5)  # coerced
    np.testing.assert_allclose(ln(x[None]), yr[None], rtol=1e-5, atol=1e-5)  # 3-D
    ln(x)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dxr = R.layer_norm_backward(dy, x, (64,), ln.weight.data)[0]
    np.testing.assert_allclose(ln.backward(dy), dxr, rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="dtype"):
        ln(x.astype(np.float64))
    with pytest.raises(ValueError):
        ln(rng.standard_normal((32, 63)).astype(np.float32))
    ln.weight.data = ln.weight.data * 2  # a replaced array is used, not a stale one
    np.testing.assert_allclose(ln(x), (yr - ln.bias.data) * 2 + ln.bias.data, rtol=1e-4, atol=1e-4)
    no_affine = nn.LayerNorm(64, elementwise_affine=False)
    with pytest.raises(TypeError, match="dtype"):
        no_affine(x.astype(np.float64))


# ---- PyTorch (skipped unless torch is installed) ------------------------------------------


def _torch_leaf(torch, a):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


@pytest.mark.parametrize("xshape,nshape", [((4, 6), (6,)), ((2, 3, 4), (3, 4)), ((1, 5), (5,))])
def test_matches_torch(rng, xshape, nshape):
    torch = pytest.importorskip("torch")
    x = offset_randn(rng, xshape)
    w, b = rng.standard_normal(nshape), rng.standard_normal(nshape)
    dy = rng.standard_normal(xshape)
    m = nn.LayerNorm(nshape, eps=1e-5, dtype=np.float64)
    m.weight.data[...] = w
    m.bias.data[...] = b
    y = m(x)
    dx = m.backward(dy)
    tx, tw, tb = (_torch_leaf(torch, a) for a in (x, w, b))
    ty = torch.nn.functional.layer_norm(tx, nshape, tw, tb, eps=1e-5)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.weight.grad, tw.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.bias.grad, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_float32_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = offset_randn(rng, (16, 8), np.float32)
    y, _, _ = F.layer_norm(x, 8)
    ty = torch.nn.functional.layer_norm(torch.tensor(x), (8,))
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-4, atol=1e-5)
