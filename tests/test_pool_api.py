"""Pooling (max, average, adaptive average) as called: non-contiguous and unbatched input,
``out``, untouched inputs, every bad argument, and the modules (MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d) against the NumPy reference (reference/spatial.py) and central finite
differences."""

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, assert_close, frozen, noncontig, pool_input

from normreg import functional as F
from normreg import nn
from normreg.testing import gradcheck

# ---- shared behaviour ------------------------------------------------------------------------


def _ops():
    return {
        "max": (
            lambda x, **kw: F.max_pool2d(x, 3, 2, 1, **kw),
            lambda dy, x: F.max_pool2d_backward(
                dy, F.max_pool2d(x, 3, 2, 1, return_indices=True)[1], x.shape
            ),
            lambda x: R.max_pool2d(x, 3, 2, 1)[0],
        ),
        "avg": (
            lambda x, **kw: F.avg_pool2d(x, 3, 2, 1, **kw),
            lambda dy, x: F.avg_pool2d_backward(dy, x.shape, 3, 2, 1),
            lambda x: R.avg_pool2d(x, 3, 2, 1),
        ),
        "adaptive": (
            lambda x, **kw: F.adaptive_avg_pool2d(x, (2, 3), **kw),
            lambda dy, x: F.adaptive_avg_pool2d_backward(dy, x.shape),
            lambda x: R.adaptive_avg_pool2d(x, (2, 3)),
        ),
    }


@pytest.mark.parametrize("op", ["max", "avg", "adaptive"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_unbatched_out_and_untouched_inputs(rng, op, dtype):
    fwd, bwd, ref = _ops()[op]
    x = pool_input(rng, (2, 3, 7, 8), dtype)
    y_ref = ref(x)
    assert_close(fwd(noncontig(x)), y_ref, dtype)
    xf = frozen(x)
    y = fwd(xf)
    dy = frozen(rng.standard_normal(y.shape).astype(dtype))
    dx = bwd(noncontig(dy), xf)
    np.testing.assert_array_equal(xf, x)
    assert dx.shape == x.shape and dx.dtype == dtype
    # unbatched (C, H, W)
    assert_close(fwd(x[1]), y_ref[1], dtype)
    assert_close(bwd(dy[1], x[1]), dx[1], dtype)
    # out=
    out = np.full(y.shape, np.nan, dtype)
    assert fwd(x, out=out) is not None
    assert_close(out, y_ref, dtype)
    # an empty batch
    e = fwd(np.zeros((0, 3, 7, 8), dtype))
    assert e.shape == (0,) + y.shape[1:]


def _a(shape, dtype=np.float32):
    return np.ones(shape, dtype)


@pytest.mark.parametrize(
    "exc,match,call",
    [
        (TypeError, "x", lambda: F.max_pool2d(_a((1, 2, 4, 4), np.int32), 2)),
        (TypeError, "x", lambda: F.avg_pool2d(_a((1, 2, 4, 4), np.float16), 2)),
        (TypeError, "x", lambda: F.adaptive_avg_pool2d("x", 1)),
        (TypeError, "kernel_size", lambda: F.max_pool2d(_a((1, 2, 4, 4)), 2.0)),
        (TypeError, "stride", lambda: F.avg_pool2d(_a((1, 2, 4, 4)), 2, stride=(1, None))),
        (TypeError, "output_size", lambda: F.adaptive_avg_pool2d(_a((1, 2, 4, 4)), "1")),
        (ValueError, "kernel_size must be positive", lambda: F.max_pool2d(_a((1, 2, 4, 4)), 0)),
        (ValueError, "stride must be positive", lambda: F.avg_pool2d(_a((1, 2, 4, 4)), 2, -1)),
        (ValueError, "at most half", lambda: F.max_pool2d(_a((1, 2, 4, 4)), 2, 1, 2)),
        (ValueError, "at most half", lambda: F.avg_pool2d(_a((1, 2, 4, 4)), (3, 2), 1, (1, 2))),
        (ValueError, "larger than the padded input", lambda: F.max_pool2d(_a((1, 2, 4, 4)), 5)),
        (ValueError, "larger than the padded input", lambda: F.avg_pool2d(_a((1, 2, 4, 2)), (2, 3))),
        (ValueError, "4-D", lambda: F.max_pool2d(_a((4, 4)), 2)),
        (ValueError, "non-zero", lambda: F.max_pool2d(_a((1, 0, 4, 4)), 2)),
        (ValueError, "non-zero", lambda: F.adaptive_avg_pool2d(_a((1, 2, 0, 4)), 1)),
        (ValueError, "output_size must be positive", lambda: F.adaptive_avg_pool2d(_a((1, 2, 4, 4)), 0)),
        (ValueError, "output_size", lambda: F.adaptive_avg_pool2d(_a((1, 2, 4, 4)), (1, 2, 3))),
        (ValueError, "too large", lambda: F.adaptive_avg_pool2d(_a((1, 1, 4, 4)), 2**62)),
        (
            ValueError,
            "input_shape",
            lambda: F.max_pool2d_backward(_a((1, 2, 2, 2)), np.zeros((1, 2, 2, 2), np.int64), (1, 3, 4, 4)),
        ),
        (ValueError, "dy", lambda: F.avg_pool2d_backward(_a((1, 2, 3, 2)), (1, 2, 4, 4), 2)),
        (TypeError, "input_shape", lambda: F.adaptive_avg_pool2d_backward(_a((1, 2, 2, 2)), 4)),
        (ValueError, "out", lambda: F.avg_pool2d(_a((1, 2, 4, 4)), 2, out=_a((1, 2, 2, 3)))),
    ],
)
def test_bad_input(exc, match, call):
    with pytest.raises(exc, match=match):
        call()


# ---- modules ---------------------------------------------------------------------------------


def test_modules(rng):
    x = pool_input(rng, (2, 3, 9, 8), np.float64)
    mp = nn.MaxPool2d(3, stride=2, padding=1)
    assert (mp.kernel_size, mp.stride, mp.padding) == (3, 2, 1)
    y = mp(x)
    np.testing.assert_array_equal(y, R.max_pool2d(x, 3, 2, 1)[0])
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(
        mp.backward(dy), R.max_pool2d_backward(dy, R.max_pool2d(x, 3, 2, 1)[1], (9, 8))
    )
    assert nn.MaxPool2d(2).stride == 2  # stride defaults to kernel_size
    ap = nn.AvgPool2d((2, 3), padding=(1, 1))
    y = ap(x)
    np.testing.assert_allclose(y, R.avg_pool2d(x, (2, 3), None, (1, 1)), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(
        ap.backward(dy), R.avg_pool2d_backward(dy, (9, 8), (2, 3), None, (1, 1)), rtol=1e-12
    )
    gp = nn.AdaptiveAvgPool2d(1)
    y = gp(x)
    assert y.shape == (2, 3, 1, 1)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(gp.backward(dy), R.adaptive_avg_pool2d_backward(dy, (9, 8)), rtol=1e-12)
    for m in (mp, ap, gp, nn.AdaptiveAvgPool2d((2, None))):
        assert gradcheck(m, x, atol=1e-7, rtol=1e-7)
        assert repr(m).startswith(type(m).__name__)
    with pytest.raises(RuntimeError, match="no pending forward"):
        nn.MaxPool2d(2).backward(np.ones((1, 1, 1, 1)))
    # a dy of the wrong shape is named, with the forward output's shape
    mp(x)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 5, 4\) .*output.*got \(3, 3, 5, 4\)"):
        mp.backward(np.ones((3, 3, 5, 4)))
    mp.clear_pending()
    # used twice before its backwards: each backward takes the newest forward's indices
    x2 = pool_input(rng, (2, 3, 9, 8), np.float64)
    y1, y2 = mp(x), mp(x2)
    dy1, dy2 = rng.standard_normal(y1.shape), rng.standard_normal(y2.shape)
    np.testing.assert_allclose(
        mp.backward(dy2), R.max_pool2d_backward(dy2, R.max_pool2d(x2, 3, 2, 1)[1], (9, 8))
    )
    np.testing.assert_allclose(
        mp.backward(dy1), R.max_pool2d_backward(dy1, R.max_pool2d(x, 3, 2, 1)[1], (9, 8))
    )
    with pytest.raises(ValueError):
        nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError):
        nn.AdaptiveAvgPool2d(0)


def test_ceil_mode_counts_examples():
    """Worked examples: 7 wide, kernel 2, stride 2 -> 3 windows (floor) or 4 (ceil, the last
    one holding column 6 alone); 5 wide, kernel 3, stride 3, padding 1: a third window would
    start at padded column 6, past 5 + 1, so ceil_mode keeps 2."""
    x = np.arange(49, dtype=np.float64).reshape(1, 1, 7, 7)
    assert F.max_pool2d(x, 2).shape == (1, 1, 3, 3)
    y = F.max_pool2d(x, 2, ceil_mode=True)
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0, 3, 3] == 48 and y[0, 0, 0, 3] == 13
    a = F.avg_pool2d(x, 2, ceil_mode=True)
    assert a[0, 0, 3, 3] == 48  # a window of one position inside the image, divided by 1
    assert a[0, 0, 0, 3] == (6 + 13) / 2
    assert F.avg_pool2d(np.ones((1, 1, 5, 5)), 3, 3, 1, ceil_mode=True).shape == (1, 1, 2, 2)
    # kernel 2 on 1 element: ceil((1 - 2) / 2) + 1 = 1 window (PyTorch's), holding it alone
    one = np.full((1, 1, 1, 1), 3.0)
    assert F.max_pool2d(one, 2, ceil_mode=True).tolist() == [[[[3.0]]]]
    assert F.avg_pool2d(one, 2, ceil_mode=True).tolist() == [[[[3.0]]]]
    # kernel 3, stride 2 on 1 element: ceil(-1) + 1 = 0 windows, an error in either mode
    for ceil in (False, True):
        with pytest.raises(ValueError, match="kernel height 3 is larger"):
            F.max_pool2d(one, 3, 2, ceil_mode=ceil)
