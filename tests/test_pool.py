"""Pooling (max, average, adaptive average): functional forward/backward against the NumPy
reference (reference/spatial.py), central finite differences, ties and NaN, random shapes
(hypothesis) and PyTorch when installed. Non-contiguous and unbatched input, ``out``, bad
input and the modules: test_pool_api.py."""

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, assert_close, pool_input, window_args

import normreg
from normreg import functional as F
from normreg import nn
from normreg.testing import gradcheck

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:
    given = None

# (x shape, kernel_size, stride, padding)
WINDOWS = [
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 3, 9, 7), 2, None, 0),  # odd sizes: the last row/column is dropped
    ((3, 2, 9, 7), 3, (2, 1), 1),
    ((2, 2, 7, 6), (3, 2), (1, 2), (1, 0)),
    ((1, 4, 5, 5), 5, None, 0),  # kernel = input
    ((2, 1, 6, 9), (4, 5), 3, 2),
    ((2, 3, 4, 4), 1, 2, 0),
    ((64, 16, 14, 14), 2, 2, 0),  # enough planes for threads
    ((1, 2, 3, 530), (1, 2), None, 0),  # more output columns than the kernel tabulates
]


def _with_threads(threads, fn):
    old = normreg.get_num_threads()
    normreg.set_num_threads(threads)
    try:
        return fn()
    finally:
        normreg.set_num_threads(old)


# ---- max pooling -------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", WINDOWS)
def test_max_pool_matches_reference(rng, shape, k, s, p, dtype, threads):
    def run():
        x = pool_input(rng, shape, dtype)
        y, idx = F.max_pool2d(x, k, s, p, return_indices=True)
        y_ref, idx_ref = R.max_pool2d(x, k, s, p)
        assert y.dtype == dtype and idx.dtype == np.int64
        np.testing.assert_array_equal(y, y_ref.astype(dtype))
        np.testing.assert_array_equal(idx, idx_ref)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = F.max_pool2d_backward(dy, idx, x.shape)
        assert_close(dx, R.max_pool2d_backward(dy, idx_ref, shape[2:]), dtype)

    _with_threads(threads, run)


def test_max_pool_ties_first_wins_and_nan_propagates():
    x = np.array(
        [
            [
                [
                    [1.0, 3.0, 3.0, 0.0],
                    [3.0, 2.0, np.nan, np.nan],
                    [-np.inf, -np.inf, 5.0, 5.0],
                    [-np.inf, -np.inf, 5.0, 5.0],
                ]
            ]
        ]
    )
    for dtype in DTYPES:
        y, idx = F.max_pool2d(x.astype(dtype), 2, return_indices=True)
        np.testing.assert_array_equal(y.ravel(), [3, np.nan, -np.inf, 5])
        # ties: the first in row-major order; NaN: the last NaN (PyTorch's CPU kernel);
        # all -inf: the window's first position
        np.testing.assert_array_equal(idx.ravel(), [1, 7, 8, 10])
        dx = F.max_pool2d_backward(np.ones((1, 1, 2, 2), dtype), idx, x.shape)
        np.testing.assert_array_equal(dx.ravel(), [0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    # padding never wins, even over -inf
    y, idx = F.max_pool2d(np.full((1, 1, 3, 3), -np.inf), 3, 1, 1, return_indices=True)
    assert np.all(y == -np.inf)
    np.testing.assert_array_equal(idx.ravel(), [0, 0, 1, 0, 0, 1, 3, 3, 4])
    # overlapping windows add their gradients at a shared maximum
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1
    y, idx = F.max_pool2d(x, 2, 1, return_indices=True)
    dx = F.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    assert dx[0, 0, 1, 1] == 4 and dx.sum() == 4


def test_max_pool_signed_zeros_nan_then_numbers_and_infinities(rng):
    # -0.0 == +0.0: the first of them wins; once NaN is the max only a later NaN replaces it
    x = np.array(
        [
            [
                [
                    [-0.0, 0.0, 0.0, -0.0],
                    [np.nan, 7.0, 1.0, np.inf],
                    [np.inf, np.inf, -1.0, -0.0],
                    [np.nan, np.nan, -np.inf, -1e-30],
                ]
            ]
        ]
    )
    for dtype in DTYPES:
        xd = x.astype(dtype)
        for k, s in ((2, 2), (2, 1), (3, 1), ((1, 2), (1, 1)), ((4, 1), 1)):
            y, idx = F.max_pool2d(xd, k, s, return_indices=True)
            y_ref, idx_ref = R.max_pool2d(xd, k, s)
            np.testing.assert_array_equal(idx, idx_ref, err_msg=f"{dtype} {k} {s}")
            np.testing.assert_array_equal(y, y_ref.astype(dtype))
            np.testing.assert_array_equal(np.signbit(y), np.signbit(y_ref))
    # many random ties and special values against the reference
    vals = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 2.5])
    x = rng.choice(vals, size=(3, 2, 9, 10))
    for dtype in DTYPES:
        for k, s, p in ((2, 2, 0), (3, 2, 1), ((3, 4), (1, 3), (1, 2))):
            y, idx = F.max_pool2d(x.astype(dtype), k, s, p, return_indices=True)
            np.testing.assert_array_equal(idx, R.max_pool2d(x, k, s, p)[1])


def test_average_pooling_nan_stays_in_its_windows():
    x = np.ones((1, 2, 6, 6))
    x[0, 1, 2, 3] = np.nan
    y = F.avg_pool2d(x, 3, 1, 1)
    mark = np.zeros_like(x)
    mark[0, 1, 2, 3] = 1
    reached = R.avg_pool2d(mark, 3, 1, 1) > 0
    assert np.isnan(y[reached]).all() and np.all(y[~reached] > 0)
    g = F.adaptive_avg_pool2d(x, (2, 3))
    assert np.isnan(g[0, 1, 0, 1]) and np.isnan(g).sum() == 1


def test_max_pool_plane_size_limit():
    x = np.zeros((0, 1, 2**16, 2**15 + 1), np.float32)  # empty, but its planes are too large
    with pytest.raises(ValueError, match="planes of more than"):
        F.max_pool2d(x, 2)
    assert F.max_pool2d(np.zeros((0, 1, 2**16, 2**15 - 1), np.float32), 2).shape == (0, 1, 2**15, 2**14 - 1)


@pytest.mark.parametrize("shape,k,s,p", WINDOWS[:6])
def test_max_pool_gradcheck(rng, shape, k, s, p):
    x = pool_input(rng, (1,) + shape[1:], np.float64) * 3  # distinct, gaps far wider than eps

    def fwd(x):
        return F.max_pool2d(x, k, s, p)

    def bwd(dy, x):
        return F.max_pool2d_backward(dy, F.max_pool2d(x, k, s, p, return_indices=True)[1], x.shape)

    assert gradcheck(fwd, x, backward=bwd, atol=1e-7, rtol=1e-7)


def test_max_pool_bad_indices(rng):
    dy = np.ones((1, 2, 2, 2))
    for bad in (-1, 16, 2**40):
        idx = np.zeros((1, 2, 2, 2), np.int64)
        idx[0, 1, 1, 0] = bad
        with pytest.raises(ValueError, match="indices"):
            F.max_pool2d_backward(dy, idx, (1, 2, 4, 4))
    with pytest.raises(TypeError, match="indices"):
        F.max_pool2d_backward(dy, np.zeros((1, 2, 2, 2)), (1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"dy must have shape \(1, 2, 2, 1\) \(the shape of indices"):
        F.max_pool2d_backward(dy, np.zeros((1, 2, 2, 1), np.int64), (1, 2, 4, 4))
    # int32 indices are accepted (copied to int64)
    x = pool_input(rng, (1, 2, 4, 4), np.float64)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(
        F.max_pool2d_backward(dy, idx.astype(np.int32), x.shape), F.max_pool2d_backward(dy, idx, x.shape)
    )


# ---- average pooling -----------------------------------------------------------------------


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", WINDOWS)
def test_avg_pool_matches_reference(rng, shape, k, s, p, dtype, threads, include_pad):
    def run():
        x = pool_input(rng, shape, dtype, distinct=False)
        y = F.avg_pool2d(x, k, s, p, count_include_pad=include_pad)
        assert_close(y, R.avg_pool2d(x, k, s, p, count_include_pad=include_pad), dtype)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = F.avg_pool2d_backward(dy, x.shape, k, s, p, count_include_pad=include_pad)
        assert_close(dx, R.avg_pool2d_backward(dy, shape[2:], k, s, p, count_include_pad=include_pad), dtype)

    _with_threads(threads, run)


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("shape,k,s,p", WINDOWS[:6])
def test_avg_pool_gradcheck(rng, shape, k, s, p, include_pad):
    x = 5 * rng.standard_normal((1,) + shape[1:]) + 12
    assert gradcheck(
        lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=include_pad),
        x,
        backward=lambda dy, x: F.avg_pool2d_backward(dy, x.shape, k, s, p, count_include_pad=include_pad),
        atol=1e-7,
        rtol=1e-7,
    )


# ---- adaptive average pooling ----------------------------------------------------------------

ADAPTIVE = [
    ((2, 3, 7, 7), 1),
    ((2, 3, 9, 7), (2, 3)),
    ((1, 2, 5, 8), (5, 8)),
    ((1, 2, 4, 5), (7, 9)),
    ((2, 2, 10, 6), (3, None)),
    ((32, 64, 7, 7), 1),
    ((1, 2, 3, 600), (2, 300)),  # more output columns than the kernel tabulates
    ((2, 3, 40, 40), 1),  # a plane too long to sum as one run of values
    ((2, 3, 9, 7), (3, 1)),  # windows of whole rows starting below the first
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,size", ADAPTIVE)
def test_adaptive_avg_pool_matches_reference(rng, shape, size, dtype, threads):
    def run():
        x = pool_input(rng, shape, dtype, distinct=False)
        y = F.adaptive_avg_pool2d(x, size)
        full = tuple(
            shape[2 + i] if v is None else v
            for i, v in enumerate(size if isinstance(size, tuple) else (size, size))
        )
        assert y.shape == shape[:2] + full
        assert_close(y, R.adaptive_avg_pool2d(x, full), dtype)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = F.adaptive_avg_pool2d_backward(dy, x.shape)
        assert_close(dx, R.adaptive_avg_pool2d_backward(dy, shape[2:]), dtype)

    _with_threads(threads, run)


def test_global_average_is_the_mean(rng):
    x = 100 + rng.standard_normal((3, 4, 9, 11)).astype(np.float32)
    y = F.adaptive_avg_pool2d(x, 1)
    np.testing.assert_allclose(y[:, :, 0, 0], x.astype(np.float64).mean(axis=(2, 3)), rtol=1e-6)


@pytest.mark.parametrize("shape,size", ADAPTIVE[:5])
def test_adaptive_gradcheck(rng, shape, size):
    x = 5 * rng.standard_normal((1,) + shape[1:]) + 12
    assert gradcheck(
        lambda x: F.adaptive_avg_pool2d(x, size),
        x,
        backward=lambda dy, x: F.adaptive_avg_pool2d_backward(dy, x.shape),
        atol=1e-7,
        rtol=1e-7,
    )


# ---- random shapes (hypothesis) ----------------------------------------------------------------

if given is not None:

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(
        n=st.integers(0, 3),
        c=st.integers(1, 3),
        **window_args(st, max_padding=2),
        f32=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def test_property_pooling_random_shapes(n, c, h, w, kh, kw, sh, sw, ph, pw, f32, seed):
        dtype = np.float32 if f32 else np.float64
        rng = np.random.default_rng(seed)
        x = pool_input(rng, (n, c, h, w), dtype, distinct=False)
        args = ((kh, kw), (sh, sw), (ph, pw))
        if ph > kh // 2 or pw > kw // 2:
            with pytest.raises(ValueError, match="at most half"):
                F.max_pool2d(x, *args)
            return
        if kh > h + 2 * ph or kw > w + 2 * pw:
            with pytest.raises(ValueError, match="larger than the padded input"):
                F.avg_pool2d(x, *args)
            return
        for ceil in (False, True):
            y, idx = F.max_pool2d(x, *args, ceil_mode=ceil, return_indices=True)
            y_ref, idx_ref = R.max_pool2d(x, *args, ceil)
            np.testing.assert_array_equal(y, y_ref.astype(dtype))
            np.testing.assert_array_equal(idx, idx_ref)
            dy = rng.standard_normal(y.shape).astype(dtype)
            assert_close(
                F.max_pool2d_backward(dy, idx, x.shape), R.max_pool2d_backward(dy, idx_ref, (h, w)), dtype
            )
            for pad, div in ((True, None), (False, None), (True, 3)):
                kw_ = dict(ceil_mode=ceil, count_include_pad=pad, divisor_override=div)
                assert_close(F.avg_pool2d(x, *args, **kw_), R.avg_pool2d(x, *args, **kw_), dtype)
                assert_close(
                    F.avg_pool2d_backward(dy, x.shape, *args, **kw_),
                    R.avg_pool2d_backward(dy, (h, w), *args, **kw_),
                    dtype,
                )
        oh, ow = rng.integers(1, 2 * h + 1), rng.integers(1, 2 * w + 1)
        ya = F.adaptive_avg_pool2d(x, (int(oh), int(ow)))
        assert_close(ya, R.adaptive_avg_pool2d(x, (oh, ow)), dtype)
        dya = rng.standard_normal(ya.shape).astype(dtype)
        assert_close(
            F.adaptive_avg_pool2d_backward(dya, x.shape), R.adaptive_avg_pool2d_backward(dya, (h, w)), dtype
        )
else:

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_property_pooling_random_shapes():
        pass


# ---- PyTorch -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", WINDOWS)
def test_torch_parity(rng, shape, k, s, p, dtype):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    x = pool_input(rng, shape, dtype, distinct=False)
    for name in ("max", "avg", "avg_nopad", "adaptive"):
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        if name == "max":
            yt, it = tF.max_pool2d(xt, k, s, p, return_indices=True)
            y, idx = F.max_pool2d(x, k, s, p, return_indices=True)
            np.testing.assert_array_equal(idx, it.numpy())
        elif name.startswith("avg"):
            pad = name == "avg"
            yt = tF.avg_pool2d(xt, k, s, p, count_include_pad=pad)
            y = F.avg_pool2d(x, k, s, p, count_include_pad=pad)
        else:
            yt = tF.adaptive_avg_pool2d(xt, (3, 2))
            y = F.adaptive_avg_pool2d(x, (3, 2))
        dy = rng.standard_normal(y.shape).astype(dtype)
        yt.backward(torch.from_numpy(dy))
        if name == "max":
            dx = F.max_pool2d_backward(dy, idx, x.shape)
        elif name.startswith("avg"):
            dx = F.avg_pool2d_backward(dy, x.shape, k, s, p, count_include_pad=name == "avg")
        else:
            dx = F.adaptive_avg_pool2d_backward(dy, x.shape)
        assert_close(y, yt.detach().numpy().astype(np.float64), dtype, err_msg=f"{name} y")
        assert_close(dx, xt.grad.numpy().astype(np.float64), dtype, err_msg=f"{name} dx")


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_module_parity(rng, dtype):
    torch = pytest.importorskip("torch")
    x = pool_input(rng, (4, 3, 10, 9), dtype, distinct=False)
    pairs = [
        (nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
        (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
        (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1)),
    ]
    for ours, theirs in pairs:
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        yt = theirs(xt)
        y = ours(x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        yt.backward(torch.from_numpy(dy))
        assert_close(y, yt.detach().numpy().astype(np.float64), dtype)
        assert_close(ours.backward(dy), xt.grad.numpy().astype(np.float64), dtype)


def _two(v):
    """An int or pair argument of a pooling as a pair."""
    return v if isinstance(v, tuple) else (v, v)


# ---- ceil_mode, divisor_override, return_indices (PyTorch's arguments, in its order) -------

# (input shape, kernel, stride, padding): shapes whose last ceil_mode window is partial, one
# whose extra window would start in the right padding (dropped: 5 -> 2 either way), and one
# where both modes agree
CEIL_WINDOWS = [
    ((2, 3, 7, 7), 2, 2, 0),
    ((2, 3, 8, 11), 3, 2, 1),
    ((1, 2, 5, 5), 3, 3, 1),
    ((1, 2, 6, 9), (3, 2), (2, 3), (1, 0)),
    ((1, 1, 8, 8), 2, 2, 0),
    # a kernel larger than the (padded) input: one window in ceil_mode, none without
    ((1, 1, 1, 1), 2, 2, 0),
    ((1, 2, 3, 1), (2, 2), (2, 3), (0, 0)),
]


@pytest.mark.parametrize("shape,k,s,p", CEIL_WINDOWS)
def test_ceil_mode_output_size_and_values(rng, shape, k, s, p):
    """ceil_mode against the reference, whose output size is the formula of PyTorch's
    documentation (ceil, less one for a window starting past the left padding + input)."""
    x = pool_input(rng, shape, np.float64, distinct=True)
    y, idx = F.max_pool2d(x, k, s, p, 1, True, True)
    y_ref, idx_ref = R.max_pool2d(x, k, s, p, True)
    if any(R.out_size(n, *kk, False) < 1 for n, kk in zip(shape[2:], zip(*[_two(v) for v in (k, s, p)]))):
        with pytest.raises(ValueError, match="larger than the padded input"):
            F.max_pool2d(x, k, s, p)  # floor mode: no window
    assert y.shape == y_ref.shape
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    for pad in (True, False):
        np.testing.assert_allclose(
            F.avg_pool2d(x, k, s, p, True, pad), R.avg_pool2d(x, k, s, p, True, pad), rtol=1e-12
        )
    # the modules take the same arguments in the same order
    np.testing.assert_array_equal(nn.MaxPool2d(k, s, p, 1, False, True)(x), y_ref)
    np.testing.assert_allclose(
        nn.AvgPool2d(k, s, p, True, False)(x), R.avg_pool2d(x, k, s, p, True, False), rtol=1e-12
    )


def test_divisor_override_and_gradients():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    y = F.avg_pool2d(x, 2, divisor_override=3)
    np.testing.assert_allclose(y[0, 0], [[10 / 3, 18 / 3], [42 / 3, 50 / 3]])
    m = nn.AvgPool2d(3, 2, 1, True, False, 5)
    gradcheck(m, np.random.default_rng(0).standard_normal((2, 2, 6, 7)))
    gradcheck(
        nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        pool_input(np.random.default_rng(1), (2, 2, 6, 7), np.float64, distinct=True),
    )


def test_pool_arguments_rejected():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="dilation"):
        F.max_pool2d(x, 2, dilation=2)
    with pytest.raises(ValueError, match="dilation"):
        nn.MaxPool2d(2, dilation=(1, 2))
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match="avg_pool2d: divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=2**64)
    with pytest.raises(TypeError, match="divisor_override"):
        nn.AvgPool2d(2, divisor_override=2.5)
    with pytest.raises(TypeError, match="ceil_mode"):
        F.max_pool2d(x, 2, ceil_mode="yes")
    with pytest.raises(TypeError, match="return_indices"):
        F.max_pool2d(x, 2, return_indices=1)


def test_max_pool_module_return_indices(rng):
    x = pool_input(rng, (2, 3, 6, 6), np.float32, distinct=True)
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    y_ref, idx_ref = R.max_pool2d(x, 2)
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    np.testing.assert_array_equal(idx, idx_ref)
    assert isinstance(nn.MaxPool2d(2)(x), np.ndarray)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CEIL_WINDOWS)
def test_torch_ceil_mode_divisor_parity(rng, shape, k, s, p, dtype):
    torch = pytest.importorskip("torch")
    x = pool_input(rng, shape, dtype, distinct=False)
    pairs = [
        (nn.MaxPool2d(k, s, p, 1, False, True), torch.nn.MaxPool2d(k, s, p, 1, False, True)),
        (nn.AvgPool2d(k, s, p, True, True), torch.nn.AvgPool2d(k, s, p, True, True)),
        (nn.AvgPool2d(k, s, p, True, False), torch.nn.AvgPool2d(k, s, p, True, False)),
        (nn.AvgPool2d(k, s, p, False, True, 7), torch.nn.AvgPool2d(k, s, p, False, True, 7)),
        (nn.AvgPool2d(k, s, p, True, False, 2), torch.nn.AvgPool2d(k, s, p, True, False, 2)),
    ]
    floor_sizes = [R.out_size(n, *kk, False) for n, kk in zip(shape[2:], zip(*[_two(v) for v in (k, s, p)]))]
    for ours, theirs in pairs:
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        if not theirs.ceil_mode and min(floor_sizes) < 1:  # a kernel larger than the input
            with pytest.raises(RuntimeError, match="too small"):
                theirs(xt)
            with pytest.raises(ValueError, match="larger than the padded input"):
                ours(x)
            continue
        yt = theirs(xt)
        y = ours(x)
        assert y.shape == tuple(yt.shape)
        dy = rng.standard_normal(y.shape).astype(dtype)
        yt.backward(torch.from_numpy(dy))
        assert_close(y, yt.detach().numpy().astype(np.float64), dtype)
        assert_close(ours.backward(dy), xt.grad.numpy().astype(np.float64), dtype)
    yt, it = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p, 1, True, True)
    y, idx = F.max_pool2d(x, k, s, p, 1, True, True)
    np.testing.assert_array_equal(idx, it.numpy())
