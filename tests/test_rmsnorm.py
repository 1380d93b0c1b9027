"""RMSNorm: functional and module against reference.rms_norm in float32 and float64, central
differences (normreg.testing.gradcheck), the kernels' short-row and threaded paths, PyTorch
when installed. (Empty and non-contiguous input: with GroupNorm's in test_groupnorm.py.)"""

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, NORM_TOL, assert_close, offset_randn, randomize_params, torch_forward_backward

from normreg import functional as F
from normreg import nn
from normreg.testing import gradcheck


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,normalized", [((6, 8), (8,)), ((2, 3, 4, 5), (4, 5)), ((7, 1), (1,)), ((3, 300), (300,))]
)
@pytest.mark.parametrize("affine", [True, False])
def test_forward_backward_match_numpy(dtype, shape, normalized, affine):
    r = np.random.default_rng(1)
    x = offset_randn(r, shape, dtype)
    layer = nn.RMSNorm(normalized, elementwise_affine=affine, dtype=dtype)
    randomize_params(layer, r)
    w = None if layer.weight is None else layer.weight.data
    y = layer(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y, R.rms_norm(x, normalized, w)[0], **NORM_TOL[dtype])
    dy = r.standard_normal(shape).astype(dtype)
    dx = layer.backward(dy)
    dx_ref, dw_ref = R.rms_norm_backward(dy, x, normalized, w)
    np.testing.assert_allclose(
        dx, dx_ref, rtol=NORM_TOL[dtype]["rtol"] * 10, atol=NORM_TOL[dtype]["atol"] * 10
    )
    if affine:
        np.testing.assert_allclose(
            layer.weight.grad,
            dw_ref,
            rtol=NORM_TOL[dtype]["rtol"] * 10,
            atol=NORM_TOL[dtype]["atol"] * 10 * np.sqrt(shape[0]),
        )


def test_eps_default_is_machine_epsilon():
    for dtype in DTYPES:
        assert nn.RMSNorm(4, dtype=dtype).eps is None
        x = np.zeros((2, 4), dtype=dtype)
        _, rstd = F.rms_norm(x, 4)
        np.testing.assert_allclose(rstd, 1 / np.sqrt(np.finfo(dtype).eps), rtol=1e-6)
        _, rstd = F.rms_norm(x, 4, eps=0.25)
        np.testing.assert_allclose(rstd, 2.0)


@pytest.mark.parametrize("affine", [True, False])
def test_gradcheck(affine):
    r = np.random.default_rng(2)
    layer = nn.RMSNorm((3, 4), elementwise_affine=affine, eps=1e-3, dtype=np.float64)
    randomize_params(layer, r)
    assert gradcheck(layer, offset_randn(r, (2, 3, 4)))
    w = r.standard_normal(5)
    x = offset_randn(r, (4, 5))

    def fwd(x, w):
        return F.rms_norm(x, 5, w)[0]

    def bwd(dy, x, w):
        _, rstd = F.rms_norm(x, 5, w)
        return F.rms_norm_backward(dy, x, rstd, w)

    assert gradcheck(fwd, (x, w), backward=bwd)


def test_weight_grad_accumulates():
    r = np.random.default_rng(3)
    layer = nn.RMSNorm(6, dtype=np.float64)
    x, dy = offset_randn(r, (5, 6)), r.standard_normal((5, 6))
    layer(x)
    layer.backward(dy)
    once = layer.weight.grad.copy()
    layer(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * once, rtol=1e-14)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(4)
    x = offset_randn(r, (4, 3, 8), np.float32)
    w = r.standard_normal(8).astype(np.float32)
    dy = r.standard_normal(x.shape).astype(np.float32)
    layer = nn.RMSNorm(8)
    layer.weight.data[...] = w
    tl = torch.nn.RMSNorm(8)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(w))
    ty, tdx = torch_forward_backward(tl, x, dy)
    np.testing.assert_allclose(layer(x), ty, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.backward(dy), tdx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-4, atol=1e-4)


# ---- the kernels' paths: short rows, threads, rows far from 1 ---------------------------


def _check_rows(rng, dtype, x, affine, eps=1e-6, dy=None):
    M, D = x.shape
    w = (1 + 0.5 * rng.standard_normal(D)).astype(dtype) if affine else None
    y, rstd = F.rms_norm(x, D, w, eps=eps)
    ry, rrstd = R.rms_norm(x, (D,), w, eps=eps)
    assert_close(y, ry, dtype, err_msg=f"y M={M} D={D}")
    assert_close(rstd, rrstd, dtype, scale=np.abs(rrstd).max(), err_msg=f"rstd M={M} D={D}")
    if dy is None:
        dy = rng.standard_normal((M, D)).astype(dtype)
    dw0 = rng.standard_normal(D).astype(dtype) if affine else None  # dweight is added to
    dx, dw = F.rms_norm_backward(dy, x, rstd, w, dweight=None if dw0 is None else dw0.copy())
    rdx, rdw = R.rms_norm_backward(dy, x, (D,), w, eps=eps)
    # dx's terms r g and x r^3 mean(g x) are of the order of r |g|: its scale
    assert_close(dx, rdx, dtype, scale=np.abs(rrstd[:, None] * dy).max(), err_msg=f"dx M={M} D={D}")
    if affine:
        assert_close(dw, rdw + dw0, dtype, scale=max(1.0, np.abs(rdw).max()), err_msg="dw")


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_short_row_length(rng, dtype, nthreads):
    """The short-row path (D <= 256: rows in groups of four, sums in vector lanes): every D
    from 1 to 130 and the edges of the path, row counts that leave partial groups."""
    for D in list(range(1, 131)) + [255, 256, 257]:
        for M in (1, 3, 4, 5, 7):
            _check_rows(rng, dtype, offset_randn(rng, (M, D), dtype), affine=(M + D) % 2 == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [1, 2, 3, 4, 5, 7, 8, 11, 15, 16, 17, 33, 64, 100, 128, 256, 300])
@pytest.mark.parametrize("affine", [True, False])
def test_threaded_sizes(rng, dtype, nthreads, D, affine):
    """Enough rows (an odd count) for the kernels to split them between threads, and for
    dweight's rows to be gathered in float32 blocks many times over."""
    _check_rows(rng, dtype, offset_randn(rng, (2 * (40000 // D) + 3, D), dtype), affine)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [2, 3, 4, 6, 8, 16, 64, 100, 128, 256])
@pytest.mark.parametrize("many", [False, True], ids=["203rows", "two_threads_of_rows"])
def test_rows_far_from_one_amid_ordinary_rows(rng, dtype, nthreads, D, many):
    """Rows whose squares overflow or underflow in float32, rows of zeros (rstd 1/sqrt(eps)),
    rows of tiny gradients, spread among ordinary rows (in a batch a thread takes, and in one
    the threads split): each takes its checked path without changing its neighbours'
    results."""
    big = 1e25 if dtype == np.float32 else 1e140  # squares beyond float32; float64 near its ends
    x = offset_randn(rng, (2 * (40000 // D) + 3 if many else 203, D), np.float64)
    x[::7] *= 1 / big
    x[3::11] *= big
    x[5::13] = 0
    x = x.astype(dtype)
    dy = rng.standard_normal(x.shape)
    dy[1::6] *= np.finfo(dtype).tiny  # mean(g x) below the normal numbers
    dy = dy.astype(dtype)
    _check_rows(rng, dtype, x, affine=True, dy=dy)
    _check_rows(rng, dtype, x, affine=False, eps=0.25, dy=dy)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [2, 3, 4, 5, 6, 8, 10, 13, 16, 32, 48, 64, 100, 128, 135, 256])
def test_a_row_alone_gives_the_same_bits(rng, dtype, D):
    """A row's result does not depend on the rows beside it (its group of four, a row
    alone, a group with a row that takes the checked path): each row of a batch, normalized
    alone, gives the batch's bits, forward and backward."""
    M = 11
    x = offset_randn(rng, (M, D), dtype)
    w = rng.standard_normal(D).astype(dtype)
    dy = rng.standard_normal((M, D)).astype(dtype)
    dy[6] *= np.finfo(dtype).tiny  # its mean(g x) is not a normal number: the checked path
    y, rstd = F.rms_norm(x, D, w)
    dx, _ = F.rms_norm_backward(dy, x, rstd, w)
    for i in range(M):
        yi, ri = F.rms_norm(x[i : i + 1], D, w)
        dxi, _ = F.rms_norm_backward(dy[i : i + 1], x[i : i + 1], ri, w)
        np.testing.assert_array_equal(yi, y[i : i + 1], err_msg=f"y row {i}")
        np.testing.assert_array_equal(ri, rstd[i : i + 1], err_msg=f"rstd row {i}")
        np.testing.assert_array_equal(dxi, dx[i : i + 1], err_msg=f"dx row {i}")


@pytest.mark.parametrize("D", [64, 128, 135])
def test_results_do_not_depend_on_threads(rng, set_threads, D):
    """1 and 2 threads give the same bits for y, rstd and dx."""
    x = offset_randn(rng, (4099, D), np.float32)
    w = rng.standard_normal(D).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    out = []
    for n in (1, 2):
        set_threads(n)
        y, rstd = F.rms_norm(x, D, w)
        dx, _ = F.rms_norm_backward(dy, x, rstd, w)
        out.append((y, rstd, dx))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_arrays_taken_as_they_are_give_the_checked_results(rng):
    """An (M, D) float array goes to the kernel as it is; the same data as (M, 1, D) over
    its last two dimensions takes the checked path: the same bits, and the same errors for
    what the kernel refuses."""
    x = offset_randn(rng, (9, 16), np.float32)
    w = rng.standard_normal(16).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, rstd = F.rms_norm(x, 16, w)
    yc, rstdc = F.rms_norm(x.reshape(9, 1, 16), (1, 16), w.reshape(1, 16))
    np.testing.assert_array_equal(y, yc.reshape(y.shape))
    np.testing.assert_array_equal(rstd, rstdc.reshape(rstd.shape))
    dx, dw = F.rms_norm_backward(dy, x, rstd, w)
    dxc, dwc = F.rms_norm_backward(dy.reshape(9, 1, 16), x.reshape(9, 1, 16), rstdc, w.reshape(1, 16))
    np.testing.assert_array_equal(dx, dxc.reshape(dx.shape))
    np.testing.assert_array_equal(dw, dwc.reshape(dw.shape))
    with pytest.raises(ValueError, match="eps must be >= 0"):
        F.rms_norm(x, 16, w, eps=-1.0)
    with pytest.raises(TypeError, match="weight has dtype float64"):
        F.rms_norm(x, 16, w.astype(np.float64))
    with pytest.raises(TypeError, match="dweight has dtype float64"):
        F.rms_norm_backward(dy, x, rstd, w, dweight=np.zeros(16))
    with pytest.raises(TypeError, match="RMSNorm's parameters"):
        nn.RMSNorm(16)(x.astype(np.float64))
