import numpy as np
import pytest
import reference as R
from helpers import DTYPES, GRADCHECK_TOL, assert_close

from normreg import functional as F
from normreg import nn
from normreg.testing import gradcheck


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (1, 1), (1, 9), (9, 1), (4, 5), (2, 3, 4), (300, 300)])
def test_forward_backward(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    y = F.relu(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(y, R.relu(x).astype(dtype))  # exact
    dy = rng.standard_normal(shape).astype(dtype)
    dx = F.relu_backward(dy, y)
    np.testing.assert_array_equal(dx, R.relu_backward(dy, x).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_module(rng, dtype):
    m = nn.ReLU()
    x = rng.standard_normal((6, 5)).astype(dtype)
    y = m(x)
    assert_close(y, R.relu(x), dtype)
    dy = rng.standard_normal((6, 5)).astype(dtype)
    assert_close(m.backward(dy), R.relu_backward(dy, x), dtype)
    assert m.parameters() == []


def test_gradcheck(rng):
    x = rng.standard_normal((5, 6))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink
    dy = rng.standard_normal((5, 6))
    assert gradcheck(F.relu, x, backward=lambda dy, x: F.relu_backward(dy, F.relu(x)), dy=dy, **GRADCHECK_TOL)
    assert gradcheck(nn.ReLU(), x, dy=dy, **GRADCHECK_TOL)


def test_nan_stays_nan():
    y = F.relu(np.array([np.nan, -1.0, 2.0]))
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_passes_dy_at_nan_and_blocks_it_at_zero_and_below(dtype):
    """PyTorch's threshold_backward: dx = 0 where y <= 0, dy elsewhere, NaN included (all
    sizes' vector paths: the values repeat along the array)."""
    y = np.tile(np.array([np.nan, -0.0, 0.0, 1.5, np.inf, -np.inf], dtype), 50)
    dy = np.arange(1, y.size + 1, dtype=dtype)
    dx = F.relu_backward(dy, y)
    want = np.tile(np.array([1, 0, 0, 1, 1, 0], dtype), 50) * dy
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("n", [1, 15, 17, 100003])
def test_branch_free_paths(nthreads, n):
    """The vectorized paths, sizes that are not multiples of the vector blocks, with NaN."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    x[::7] = np.nan
    dy = rng.standard_normal(n).astype(np.float32)
    y = F.relu(x)
    np.testing.assert_array_equal(y, R.relu(x).astype(np.float32))  # NaN stays NaN
    np.testing.assert_array_equal(F.relu_backward(dy, y), R.relu_backward(dy, y).astype(np.float32))
