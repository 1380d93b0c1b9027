"""Conv2d: functional forward/backward against the NumPy reference (reference.conv2d), central
finite differences, bad input, random shapes (hypothesis) and PyTorch when installed."""

import math

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, assert_close, frozen, noncontig, window_args

import normreg
from normreg import functional as F
from normreg import nn
from normreg.testing import gradcheck

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # the property tests are skipped, the others run
    given = None

# (N, C, H, W, Co, kernel, stride, padding)
CASES = [
    (2, 3, 7, 6, 4, (3, 3), 1, 1),  # "same" 3x3
    (3, 2, 9, 8, 5, (2, 3), (2, 3), (0, 2)),  # rectangular kernel, asymmetric stride/padding
    (4, 5, 5, 5, 3, (1, 1), 1, 0),  # pointwise: no im2col
    (2, 4, 6, 7, 3, (1, 1), 2, 0),  # 1x1 with stride: im2col subsamples
    (2, 3, 6, 6, 2, (6, 6), 1, 0),  # kernel = input: one output position
    (2, 2, 4, 5, 3, (6, 7), 1, 1),  # kernel = padded input
    (5, 4, 10, 10, 6, (3, 3), 2, 3),  # padding larger than the kernel reaches
    (3, 2, 11, 9, 2, (2, 2), 3, 0),  # stride > kernel: input positions never read
    (1, 3, 8, 8, 4, (3, 3), 1, 1),  # one sample, a product too small to split
    (1, 1, 5, 13, 1, (3, 1), (1, 4), (2, 0)),
    (16, 8, 12, 12, 16, (3, 3), 1, 1),  # enough work for the per-sample thread split
    (6, 1, 28, 28, 8, (5, 5), 1, 2),
    # one sample, each product (>= 4e6 multiply-adds) split among the threads: the forward's
    # and dcol's by columns (output positions), dw's by columns (C KH KW) ...
    (1, 16, 32, 32, 32, (3, 3), 1, 1),
    # ... and by rows: the forward's output channels, dcol's C KH KW
    (1, 64, 7, 7, 160, (3, 3), 1, 1),
]
SPLIT_CASES = CASES[-2:]


def _inputs(rng, case, dtype):
    N, C, H, W, Co, k, s, p = case
    kh, kw = k
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Co, C, kh, kw)).astype(dtype)
    b = rng.standard_normal(Co).astype(dtype)
    return x, w, b, s, p


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_forward_backward_match_reference(rng, case, dtype, threads):
    old = normreg.get_num_threads()
    normreg.set_num_threads(threads)
    try:
        x, w, b, s, p = _inputs(rng, case, dtype)
        y = F.conv2d(x, w, b, stride=s, padding=p)
        y_ref = R.conv2d(x, w, b, s, p)
        assert y.dtype == dtype
        assert_close(y, y_ref, dtype, err_msg="y")
        dy = rng.standard_normal(y.shape).astype(dtype)
        dw0 = rng.standard_normal(w.shape).astype(dtype)
        db0 = rng.standard_normal(b.shape).astype(dtype)
        dw, db = dw0.copy(), db0.copy()
        dx, dw_out, db_out = F.conv2d_backward(dy, x, w, s, p, dweight=dw, dbias=db)
        assert dw_out is dw and db_out is db  # accumulated in place
        dx_ref, dw_ref, db_ref = R.conv2d_backward(dy, x, w, s, p)
        assert_close(dx, dx_ref, dtype, err_msg="dx")
        assert_close(
            dw - dw0.astype(np.float64), dw_ref, dtype, scale=max(1, np.abs(dw_ref).max()), err_msg="dweight"
        )
        assert_close(
            db - db0.astype(np.float64), db_ref, dtype, scale=max(1, np.abs(db_ref).max()), err_msg="dbias"
        )
    finally:
        normreg.set_num_threads(old)


def test_no_bias_and_fresh_gradients(rng):
    x, w, _, s, p = _inputs(rng, CASES[1], np.float64)
    y = F.conv2d(x, w, None, s, p)
    np.testing.assert_allclose(y, R.conv2d(x, w, None, s, p), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = F.conv2d_backward(dy, x, w, s, p, has_bias=False)
    assert db is None
    dx_ref, dw_ref, _ = R.conv2d_backward(dy, x, w, s, p)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    dx, dw2, _ = F.conv2d_backward(dy, x, w, s, p, need_dx=False)
    assert dx is None
    np.testing.assert_allclose(dw2, dw_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[2], CASES[5], CASES[7]])
def test_gradcheck_functional(rng, case):
    N, C, H, W, Co, k, s, p = case
    x = 5 * rng.standard_normal((min(N, 2), C, H, W)) + 12
    w = rng.standard_normal((Co, C) + k)
    b = rng.standard_normal(Co)

    def fwd(x, w, b):
        return F.conv2d(x, w, b, s, p)

    def bwd(dy, x, w, b):
        return F.conv2d_backward(dy, x, w, s, p)

    assert gradcheck(fwd, (x, w, b), backward=bwd, atol=1e-6, rtol=1e-6)


def test_gradcheck_module(rng):
    m = nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dtype=np.float64)
    x = 5 * rng.standard_normal((2, 3, 7, 5)) + 12
    assert gradcheck(m, x, atol=1e-6, rtol=1e-6)


def test_unbatched_input(rng):
    x = rng.standard_normal((3, 6, 5))
    w = rng.standard_normal((2, 3, 3, 3))
    y = F.conv2d(x, w, None, 1, 1)
    assert y.shape == (2, 6, 5)
    np.testing.assert_allclose(y, R.conv2d(x[None], w, None, 1, 1)[0], rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dw, _ = F.conv2d_backward(dy, x, w, 1, 1, has_bias=False)
    dx_ref, dw_ref, _ = R.conv2d_backward(dy[None], x[None], w, 1, 1)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, dx_ref[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_inputs_and_inputs_untouched(rng, dtype):
    x, w, b, s, p = _inputs(rng, CASES[0], dtype)
    y = F.conv2d(noncontig(x), noncontig(w), b, s, p)
    assert_close(y, R.conv2d(x, w, b, s, p), dtype)
    xf, wf, bf = frozen(x), frozen(w), frozen(b)
    y = F.conv2d(xf, wf, bf, s, p)
    dy = frozen(rng.standard_normal(y.shape).astype(dtype))
    dx, dw, db = F.conv2d_backward(noncontig(dy), noncontig(xf), wf, s, p)
    dx_ref, dw_ref, db_ref = R.conv2d_backward(dy, x, w, s, p)
    assert_close(dx, dx_ref, dtype)
    assert_close(dw, dw_ref, dtype)
    np.testing.assert_array_equal(xf, x)
    np.testing.assert_array_equal(wf, w)
    # a transposed (Fortran-order) input
    xt = np.asfortranarray(x)
    assert_close(F.conv2d(xt, w, b, s, p), R.conv2d(x, w, b, s, p), dtype)


def test_out_argument(rng):
    x, w, b, s, p = _inputs(rng, CASES[0], np.float32)
    out = np.full((2, 4, 7, 6), np.nan, np.float32)
    y = F.conv2d(x, w, b, s, p, out=out)
    assert y is out
    assert_close(out, R.conv2d(x, w, b, s, p), np.float32)
    y1 = F.conv2d(x, w, b, s, p)
    y2 = F.conv2d(2 * x, w, b, s, p)
    assert_close(y1, R.conv2d(x, w, b, s, p), np.float32)  # a later call leaves y1 intact
    assert not np.shares_memory(y1, y2)
    with pytest.raises(ValueError, match="out"):
        F.conv2d(x, w, b, s, p, out=np.empty((2, 4, 7, 5), np.float32))
    with pytest.raises(ValueError, match="overlap"):
        F.conv2d(x, w, b, s, p, out=x)


def test_empty_and_degenerate_sizes(rng):
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    y = F.conv2d(np.zeros((0, 3, 5, 5)), w, b, 1, 1)
    assert y.shape == (0, 4, 5, 5)
    dx, dw, db = F.conv2d_backward(np.zeros((0, 4, 5, 5)), np.zeros((0, 3, 5, 5)), w, 1, 1)
    assert dx.shape == (0, 3, 5, 5) and not dw.any() and not db.any()
    # no output channels
    y = F.conv2d(np.ones((2, 3, 5, 5)), np.zeros((0, 3, 3, 3)), None, 1, 1)
    assert y.shape == (2, 0, 5, 5)
    dx, _, _ = F.conv2d_backward(np.zeros((2, 0, 5, 5)), np.ones((2, 3, 5, 5)), np.zeros((0, 3, 3, 3)), 1, 1)
    np.testing.assert_array_equal(dx, 0)
    # no input channels: every output is its bias
    y = F.conv2d(np.ones((2, 0, 5, 5)), np.zeros((4, 0, 3, 3)), b, 1, 1)
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape(1, 4, 1, 1), (2, 4, 5, 5)))
    dy = rng.standard_normal((2, 4, 5, 5))
    _, _, db = F.conv2d_backward(dy, np.ones((2, 0, 5, 5)), np.zeros((4, 0, 3, 3)), 1, 1)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)))
    # an empty image that only padding reaches
    y = F.conv2d(np.ones((1, 3, 0, 4)), w, b, 1, (2, 1))
    np.testing.assert_allclose(y, R.conv2d(np.ones((1, 3, 0, 4)), w, b, 1, (2, 1)))


def test_nan_stays_in_its_receptive_field(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    x[1, 2, 3, 4] = np.nan
    y = F.conv2d(x, w, None, 1, 1)
    mark = np.zeros_like(x)
    mark[1, 2, 3, 4] = 1
    reached = R.conv2d(mark, np.ones_like(w), None, 1, 1) > 0  # outputs whose window holds it
    assert np.isnan(y[reached]).all() and not np.isnan(y[~reached]).any()
    np.testing.assert_allclose(y[~reached], R.conv2d(np.nan_to_num(x), w, None, 1, 1)[~reached], rtol=1e-12)
    assert reached[1].sum() == 4 * 9 and not reached[0].any()  # every channel, 3x3 positions, sample 1 only
    _, dw, _ = F.conv2d_backward(rng.standard_normal(y.shape), x, w, 1, 1)
    assert np.isnan(dw[:, 2]).all() and not np.isnan(dw[:, :2]).any()  # (3, 4) meets every offset


@pytest.mark.parametrize("case", [CASES[10], *SPLIT_CASES])
def test_thread_counts_agree(rng, case):
    x, w, b, s, p = _inputs(rng, case, np.float64)
    dy = rng.standard_normal(R.conv2d(x, w, b, s, p).shape)
    res = []
    old = normreg.get_num_threads()
    try:
        for t in (1, 2, 3):
            normreg.set_num_threads(t)
            res.append((F.conv2d(x, w, b, s, p),) + F.conv2d_backward(dy, x, w, s, p))
    finally:
        normreg.set_num_threads(old)
    for other in res[1:]:
        for a, b_ in zip(res[0], other):
            np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


# ---- bad input -------------------------------------------------------------------------


def _a(shape, dtype=np.float32):
    return np.ones(shape, dtype)


@pytest.mark.parametrize(
    "name,call",
    [
        ("x", lambda: F.conv2d(_a((2, 3, 5, 5), np.int64), _a((4, 3, 3, 3)))),
        ("x", lambda: F.conv2d(_a((2, 3, 5, 5), np.float16), _a((4, 3, 3, 3)))),
        ("weight", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3), np.float64))),
        ("bias", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), _a(4, np.float64))),
        ("x", lambda: F.conv2d(None, _a((4, 3, 3, 3)))),
        ("stride", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), stride=1.0)),
        ("stride", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), stride=True)),
        ("padding", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), padding=1.5)),
        ("dy", lambda: F.conv2d_backward(_a((2, 4, 3, 3), np.float64), _a((2, 3, 5, 5)), _a((4, 3, 3, 3)))),
        (
            "dweight",
            lambda: F.conv2d_backward(
                _a((2, 4, 3, 3)), _a((2, 3, 5, 5)), _a((4, 3, 3, 3)), dweight=_a((4, 3, 3, 3), np.float64)
            ),
        ),
    ],
)
def test_bad_types(name, call):
    with pytest.raises(TypeError, match=name):
        call()


@pytest.mark.parametrize(
    "match,call",
    [
        ("x must be 4-D", lambda: F.conv2d(_a((3, 5, 5, 1, 1)), _a((4, 3, 3, 3)))),
        ("x must be 4-D", lambda: F.conv2d(_a((5, 5)), _a((4, 3, 3, 3)))),
        ("weight must be 4-D", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3)))),
        ("input channels", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 2, 3, 3)))),
        ("bias", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), _a(3))),
        ("larger than the padded input", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 6, 3)))),
        ("larger than the padded input", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 8)), padding=1)),
        ("kernel of at least 1 x 1", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 0, 3)))),
        ("stride must be positive", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), stride=0)),
        ("stride must be positive", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), stride=(1, -2))),
        ("padding must be >= 0", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), padding=-1)),
        (
            "stride must be an int or a pair",
            lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), stride=(1, 2, 3)),
        ),
        ("padding_h", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), padding=2**62)),
        ("padding_w", lambda: F.conv2d(_a((2, 3, 5, 5)), _a((4, 3, 3, 3)), padding=(0, 2**70))),
        ("dy", lambda: F.conv2d_backward(_a((2, 4, 3, 4)), _a((2, 3, 5, 5)), _a((4, 3, 3, 3)))),
        ("dy", lambda: F.conv2d_backward(_a((2, 4, 3, 3)), _a((2, 3, 5, 5)), _a((4, 3, 3, 3)), padding=1)),
        (
            "dweight",
            lambda: F.conv2d_backward(
                _a((2, 4, 3, 3)), _a((2, 3, 5, 5)), _a((4, 3, 3, 3)), dweight=_a((4, 3, 3, 2))
            ),
        ),
        (
            "dbias",
            lambda: F.conv2d_backward(
                _a((2, 4, 3, 3)), _a((2, 3, 5, 5)), _a((4, 3, 3, 3)), dbias=frozen(_a(4))
            ),
        ),
        ("dy", lambda: F.conv2d_backward(_a((4, 3, 3)), _a((2, 3, 5, 5)), _a((4, 3, 3, 3)))),
    ],
)
def test_bad_values(match, call):
    with pytest.raises(ValueError, match=match):
        call()


def test_output_positions_beyond_blas_limit():
    # OH * OW > INT_MAX: refused before anything is allocated
    x = np.broadcast_to(np.float32(1), (1, 1, 1, 1))
    with pytest.raises(ValueError):
        F.conv2d(x, _a((1, 1, 1, 1)), padding=(30000, 40000))


# ---- the module --------------------------------------------------------------------------


def test_module_init_matches_pytorch_default():
    normreg.manual_seed(0)
    m = nn.Conv2d(16, 32, 3)
    fan_in = 16 * 9
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)): sqrt(6 / 6) * sqrt(3 / fan_in)
    assert m.weight.shape == (32, 16, 3, 3) and m.bias.shape == (32,)
    assert m.weight.dtype == np.float32
    w = m.weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound  # U(-b, b) has std b / sqrt(3)
    assert np.abs(m.bias.data).max() <= bound
    assert m.weight.grad is None and m.bias.grad is None  # until a backward adds one
    # the same seed gives the same weights, a generator its own stream
    normreg.manual_seed(0)
    np.testing.assert_array_equal(nn.Conv2d(16, 32, 3).weight.data, w)
    g1, g2 = normreg.Generator(5), normreg.Generator(5)
    np.testing.assert_array_equal(
        nn.Conv2d(2, 3, 2, generator=g1).weight.data, nn.Conv2d(2, 3, 2, generator=g2).weight.data
    )


def test_module_forward_backward_accumulate(rng):
    m = nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=np.float64)
    assert (m.kernel_size, m.stride, m.padding) == ((3, 3), (2, 2), (1, 1))
    x = rng.standard_normal((2, 3, 9, 8))
    y = m(x)
    np.testing.assert_allclose(y, R.conv2d(x, m.weight.data, m.bias.data, 2, 1), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = m.backward(dy)
    dx_ref, dw_ref, db_ref = R.conv2d_backward(dy, x, m.weight.data, 2, 1)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.weight.grad, dw_ref, rtol=1e-12, atol=1e-12)
    # grads add up until zero_grad; a module used twice gets the gradients of both uses,
    # each backward taking the newest pending forward
    x2 = rng.standard_normal((2, 3, 9, 8))
    dy2 = rng.standard_normal(y.shape)
    m(x2), m(x)
    m.backward(dy)
    np.testing.assert_allclose(
        m.backward(dy2), R.conv2d_backward(dy2, x2, m.weight.data, 2, 1)[0], rtol=1e-12, atol=1e-12
    )
    dw2_ref, db2_ref = R.conv2d_backward(dy2, x2, m.weight.data, 2, 1)[1:]
    np.testing.assert_allclose(m.weight.grad, 2 * dw_ref + dw2_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.bias.grad, 2 * db_ref + db2_ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="dtype"):
        m(x.astype(np.float32))
    nb = nn.Conv2d(3, 4, 3, bias=False)
    assert nb.bias is None and len(nb.parameters()) == 1
    assert "Conv2d(3, 4, kernel_size=(3, 3)" in repr(m)


def test_shared_conv_gradcheck(rng):
    """One Conv2d used twice in a network (weight tying): the gradients of both uses add up."""
    normreg.manual_seed(2)
    conv = nn.Conv2d(3, 3, 3, padding=1, dtype=np.float64)
    net = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), conv)
    assert gradcheck(net, 5 * rng.standard_normal((2, 3, 6, 6)) + 1, atol=1e-6, rtol=1e-5)
    assert conv.pending_forwards == 0


def test_module_backward_before_forward():
    with pytest.raises(RuntimeError, match="no pending forward"):
        nn.Conv2d(1, 1, 1).backward(np.ones((1, 1, 1, 1), np.float32))


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        (dict(in_channels=0, out_channels=2, kernel_size=3), ValueError),
        (dict(in_channels=2, out_channels=-1, kernel_size=3), ValueError),
        (dict(in_channels=2, out_channels=2, kernel_size=0), ValueError),
        (dict(in_channels=2, out_channels=2, kernel_size=(3,)), ValueError),
        (dict(in_channels=2, out_channels=2, kernel_size=3, stride=0), ValueError),
        (dict(in_channels=2, out_channels=2, kernel_size=3, padding=-1), ValueError),
        (dict(in_channels=2.0, out_channels=2, kernel_size=3), TypeError),
        (dict(in_channels=2, out_channels=2, kernel_size=3, dtype=np.int32), TypeError),
    ],
)
def test_module_bad_arguments(kwargs, exc):
    with pytest.raises(exc):
        nn.Conv2d(**kwargs)


# ---- random shapes (hypothesis) -------------------------------------------------------------

if given is not None:

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(
        n=st.integers(1, 3),
        c=st.integers(1, 4),
        o=st.integers(1, 5),
        **window_args(st, max_padding=3),
        f32=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def test_property_random_shapes(n, c, o, h, w, kh, kw, sh, sw, ph, pw, f32, seed):
        dtype = np.float32 if f32 else np.float64
        if kh > h + 2 * ph or kw > w + 2 * pw:
            with pytest.raises(ValueError, match="larger than the padded input"):
                F.conv2d(np.ones((n, c, h, w), dtype), np.ones((o, c, kh, kw), dtype))
            return
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        wt = rng.standard_normal((o, c, kh, kw)).astype(dtype)
        b = rng.standard_normal(o).astype(dtype)
        y = F.conv2d(x, wt, b, (sh, sw), (ph, pw))
        assert_close(y, R.conv2d(x, wt, b, (sh, sw), (ph, pw)), dtype)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx, dwt, db = F.conv2d_backward(dy, x, wt, (sh, sw), (ph, pw))
        for got, ref in zip((dx, dwt, db), R.conv2d_backward(dy, x, wt, (sh, sw), (ph, pw))):
            assert_close(got, ref, dtype)
else:

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_property_random_shapes():
        pass


# ---- PyTorch -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES[:9])
def test_torch_parity(rng, case, dtype):
    torch = pytest.importorskip("torch")
    x, w, b, s, p = _inputs(rng, case, dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    wt = torch.from_numpy(w.copy()).requires_grad_(True)
    bt = torch.from_numpy(b.copy()).requires_grad_(True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p)
    y = F.conv2d(x, w, b, s, p)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(dy))
    dx, dw, db = F.conv2d_backward(dy, x, w, s, p)
    for name, ours, theirs in (
        ("y", y, yt),
        ("dx", dx, xt.grad),
        ("dweight", dw, wt.grad),
        ("dbias", db, bt.grad),
    ):
        theirs = theirs.detach().numpy()
        assert ours.shape == theirs.shape, name
        assert_close(ours, theirs.astype(np.float64), dtype, err_msg=name)


def test_torch_module_parity(rng):
    torch = pytest.importorskip("torch")
    m = nn.Conv2d(3, 5, (3, 2), stride=(1, 2), padding=(1, 1))
    tm = torch.nn.Conv2d(3, 5, (3, 2), stride=(1, 2), padding=(1, 1))
    with torch.no_grad():
        tm.weight.copy_(torch.from_numpy(m.weight.data))
        tm.bias.copy_(torch.from_numpy(m.bias.data))
    x = rng.standard_normal((4, 3, 8, 7)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = tm(xt)
    y = m(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    dx = m.backward(dy)
    assert_close(y, yt.detach().numpy().astype(np.float64), np.float32)
    assert_close(dx, xt.grad.numpy().astype(np.float64), np.float32)
    assert_close(m.weight.grad, tm.weight.grad.numpy().astype(np.float64), np.float32)
    assert_close(m.bias.grad, tm.bias.grad.numpy().astype(np.float64), np.float32)
