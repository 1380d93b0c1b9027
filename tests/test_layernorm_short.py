"""The LayerNorm kernels' short-row path (D <= 256: rows in groups, sums in vector lanes)
against the float64 NumPy reference: every D from 1 to 130 and the edges of the path, row
counts that leave partial groups, with and without affine parameters, 1 and 2 threads."""
import numpy as np
import pytest

import normreg
from normreg import functional as F

import reference as R
from common import DTYPES, assert_close
from gradcheck import offset_randn


@pytest.fixture
def threads():
    old = normreg.get_num_threads()
    yield normreg.set_num_threads
    normreg.set_num_threads(old)


def _check(rng, dtype, M, D, affine, shift=12.0):
    x = offset_randn(rng, (M, D), shift=shift).astype(dtype)
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
    dx, dw, db = F.layer_norm_backward(dy, x, mean, rstd, w,
                                       dweight=None if dw0 is None else dw0.copy(),
                                       dbias=None if db0 is None else db0.copy())
    rdx, rdw, rdb = R.layer_norm_backward(dy, x, (D,), w, eps=1e-5)
    assert_close(dx, rdx, dtype, err_msg=f"dx M={M} D={D}")
    if affine:
        assert_close(dw, rdw + dw0, dtype, scale=max(1.0, np.abs(rdw).max()), err_msg="dw")
        assert_close(db, rdb + db0, dtype, scale=max(1.0, np.abs(rdb).max()), err_msg="db")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nthreads", [1, 2])
def test_every_short_row_length(rng, dtype, nthreads, threads):
    threads(nthreads)
    for D in list(range(1, 131)) + [255, 256, 257]:
        for M in (1, 3, 4, 5, 7):
            _check(rng, dtype, M, D, affine=(M + D) % 2 == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("D", [1, 7, 16, 17, 33, 64, 100, 128, 130, 256])
@pytest.mark.parametrize("affine", [True, False])
def test_threaded_sizes(rng, dtype, nthreads, D, affine, threads):
    """Enough rows (an odd count) for the kernels to split them between threads."""
    threads(nthreads)
    _check(rng, dtype, 2 * (40000 // D) + 3, D, affine)


@pytest.mark.parametrize("D", [3, 16, 64, 100, 128, 256])
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


def test_results_do_not_depend_on_threads(rng, threads):
    """Groups never straddle the split: 1 and 2 threads give the same bits."""
    x = offset_randn(rng, (4099, 64)).astype(np.float32)
    w = rng.standard_normal(64).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    out = []
    for n in (1, 2):
        threads(n)
        y, mean, rstd = F.layer_norm(x, (64,), w, w)
        dx, _, _ = F.layer_norm_backward(dy, x, mean, rstd, w)
        out.append((y, mean, rstd, dx))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
