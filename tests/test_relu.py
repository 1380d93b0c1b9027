import numpy as np
import pytest

from normreg import functional as F, nn

import reference as R
from common import DTYPES, assert_close, frozen, noncontig
from gradcheck import check_grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (1, 1), (1, 9), (9, 1), (4, 5), (2, 3, 4), (300, 300)])
def test_forward_backward(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    y = F.relu(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(y, R.relu(x).astype(dtype))   # exact
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
    x[np.abs(x) < 1e-3] = 0.5          # keep away from the kink
    dy = rng.standard_normal((5, 6))
    dx = F.relu_backward(dy, F.relu(x))
    check_grads(lambda: F.relu(x), [x], [dx], dy)


def test_nan_stays_nan():
    y = F.relu(np.array([np.nan, -1.0, 2.0]))
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_untouched_readonly_noncontiguous(rng, dtype):
    x = rng.standard_normal((6, 5)).astype(dtype)
    dy = rng.standard_normal((6, 5)).astype(dtype)
    for xx, dd in [(frozen(x), frozen(dy)), (noncontig(x), noncontig(dy))]:
        xc, dc = xx.copy(), dd.copy()
        y = F.relu(xx)
        assert_close(y, R.relu(x), dtype)
        assert_close(F.relu_backward(dd, y), R.relu_backward(dy, x), dtype)
        np.testing.assert_array_equal(xx, xc)
        np.testing.assert_array_equal(dd, dc)
        assert not np.shares_memory(y, xx)


def test_outputs_are_not_overwritten(rng):
    m = nn.ReLU()
    x1 = rng.standard_normal((4, 4)).astype(np.float32)
    y1 = m(x1)
    c = y1.copy()
    m(rng.standard_normal((4, 4)).astype(np.float32))
    np.testing.assert_array_equal(y1, c)
