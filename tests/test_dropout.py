"""Dropout: functional and module against reference.dropout with the mask's bits, central
differences (normreg.testing.gradcheck) with a fixed mask, keep rate and scaling, p = 0 and
p = 1, NaN/Inf, reproducibility, masks identical for any thread count, and the
Philox4x32-10 generator against Random123's known answers and a NumPy twin."""

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, GRADCHECK_TOL, assert_close

import normreg
from normreg import _C, nn
from normreg import functional as F
from normreg.testing import gradcheck


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (1, 1), (7,), (1, 13), (13, 1), (4, 5, 6), (300, 301)])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_forward_backward_vs_reference(rng, dtype, shape, p):
    normreg.manual_seed(11)
    x = rng.standard_normal(shape).astype(dtype)
    y, mask = F.dropout(x, p, training=True)
    size = int(np.prod(shape))
    assert mask.dtype == np.uint8 and mask.shape == ((size + 7) // 8,)
    keep = R.dropout_keep(mask, shape)
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, R.dropout(x, keep, p), dtype)
    assert (y[~keep] == 0).all()
    dy = rng.standard_normal(shape).astype(dtype)
    dx = F.dropout_backward(dy, mask, p)
    assert_close(dx, R.dropout_backward(dy, keep, p), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_module(rng, dtype, p):
    normreg.manual_seed(5)
    m = nn.Dropout(p)
    assert m.training and m.parameters() == []
    x = rng.standard_normal((40, 30)).astype(dtype)
    y = m(x)
    keep = y != 0
    assert_close(y, R.dropout(x, keep, p), dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    assert_close(m.backward(dy), R.dropout_backward(dy, keep, p), dtype)
    # the module's mask is the functional one for the same generator state
    normreg.manual_seed(5)
    _, mask = F.dropout(x, p)
    np.testing.assert_array_equal(R.dropout_keep(mask, x.shape), keep)


def test_gradcheck(rng):
    x = 5 * rng.standard_normal((6, 7)) + 12
    dy = rng.standard_normal(x.shape)
    gen = normreg.Generator(9)
    state = gen.get_state()

    def forward(x):  # the same mask every call
        gen.set_state(state)
        return F.dropout(x, 0.4, generator=gen)[0]

    def backward(dy, x):
        gen.set_state(state)
        return F.dropout_backward(dy, F.dropout(x, 0.4, generator=gen)[1], 0.4)

    y = forward(x)
    assert (y == 0).any() and (y != 0).any()
    assert gradcheck(forward, x, backward=backward, dy=dy, **GRADCHECK_TOL)
    # the module: gradcheck holds its generator's state fixed
    assert gradcheck(nn.Dropout(0.4, generator=normreg.Generator(9)), x, dy=dy, **GRADCHECK_TOL)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keep_rate_and_scaling(p):
    normreg.manual_seed(123)
    n = 400_000
    x = np.ones(n, dtype=np.float32)
    y, mask = F.dropout(x, p)
    kept = np.count_nonzero(y)
    sigma = np.sqrt(n * p * (1 - p))
    assert abs(kept - n * (1 - p)) < 6 * sigma  # binomial bound, ~1e-9 failure rate
    assert kept == R.dropout_keep(mask, (n,)).sum()
    np.testing.assert_allclose(y[y != 0], np.float32(1 / (1 - p)), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 6 * sigma / n / (1 - p)  # E[y] = x
    # consecutive chunks are independent-looking: each 1/8 of the array keeps ~ 1-p too
    for chunk in np.array_split(y != 0, 8):
        assert abs(chunk.mean() - (1 - p)) < 6 * np.sqrt(p * (1 - p) / chunk.size)


def test_p_zero_and_eval_are_identity(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y, mask = F.dropout(x, 0.0)
    assert mask is None
    np.testing.assert_array_equal(y, x)
    y, mask = F.dropout(x, 0.7, training=False)
    assert mask is None
    np.testing.assert_array_equal(y, x)
    dy = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(F.dropout_backward(dy, None, 0.7), dy)
    m = nn.Dropout(0.7).eval()
    np.testing.assert_array_equal(m(x), x)
    np.testing.assert_array_equal(m.backward(dy), dy)
    m = nn.Dropout(0.0)
    np.testing.assert_array_equal(m(x), x)
    np.testing.assert_array_equal(m.backward(dy), dy)


@pytest.mark.parametrize("dtype", DTYPES)
def test_p_one_drops_everything(rng, dtype):
    x = rng.standard_normal((9, 5)).astype(dtype)
    x[0, 0] = np.inf
    y, mask = F.dropout(x, 1.0)
    assert (y == 0).all() and not np.isnan(y).any()
    assert not R.dropout_keep(mask, x.shape).any()
    dx = F.dropout_backward(rng.standard_normal(x.shape).astype(dtype), mask, 1.0)
    assert (dx == 0).all() and not np.isnan(dx).any()
    m = nn.Dropout(1.0)
    assert (m(x) == 0).all() and (m.backward(np.ones_like(x)) == 0).all()


def test_nan_and_inf_are_dropped_to_exact_zero():
    normreg.manual_seed(0)
    x = np.full(64, np.nan)
    x[::2] = np.inf
    y, mask = F.dropout(x, 0.5)
    keep = R.dropout_keep(mask, x.shape)
    assert (y[~keep] == 0).all() and 0 < keep.sum() < 64
    # the vectorized path: +0.0, never -0.0, and the backward too
    x = np.full(4096, np.inf, dtype=np.float32)
    x[::3] = np.nan
    y, mask = _C.dropout_forward(x, 0.5, 3, 4, None)
    keep = R.dropout_keep(mask, x.shape)
    assert (y[~keep] == 0).all() and not np.signbit(y[~keep]).any()
    np.testing.assert_array_equal(np.isnan(y[keep]), np.isnan(x[keep]))
    dx = _C.dropout_backward(x, mask, 0.5, None)
    assert (dx[~keep] == 0).all()


def test_reproducible_under_manual_seed(rng):
    x = rng.standard_normal((50, 40)).astype(np.float32)
    normreg.manual_seed(42)
    y1, m1 = F.dropout(x, 0.5)
    y2, m2 = F.dropout(x, 0.5)
    normreg.manual_seed(42)
    y3, m3 = F.dropout(x, 0.5)
    np.testing.assert_array_equal(m1, m3)
    np.testing.assert_array_equal(y1, y3)
    assert not np.array_equal(m1, m2)  # the counter advances between calls
    normreg.manual_seed(43)
    assert not np.array_equal(F.dropout(x, 0.5)[1], m1)
    # per-module generators are independent of the default one
    a = nn.Dropout(0.5, generator=normreg.Generator(7))
    b = nn.Dropout(0.5, generator=normreg.Generator(7))
    normreg.manual_seed(1)
    ya = a(x)
    normreg.manual_seed(2)
    np.testing.assert_array_equal(ya, b(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_mask_for_any_thread_count(set_threads, dtype):
    x = np.ones((600, 500), dtype=dtype)  # 1.2 or 2.4 MB: threaded
    assert 2 * x.nbytes >= 2 * 256 * 1024  # the kernels' rule: a thread per 256 KiB of traffic
    results = []
    for n in (1, 2, 1, 2):
        set_threads(n)
        assert normreg.get_num_threads() == n
        normreg.manual_seed(77)
        y, mask = F.dropout(x, 0.3)
        dx = F.dropout_backward(x, mask, 0.3)
        results.append((y, mask, dx))
    for y, mask, dx in results[1:]:
        np.testing.assert_array_equal(mask, results[0][1])
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(dx, results[0][2])


# Random123's known-answer vectors for Philox4x32-10 (kat_vectors).
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("ctr,key,expected", PHILOX_KAT)
def test_philox_known_answers(ctr, key, expected):
    assert tuple(_C.philox4x32(*ctr, *key)) == expected
    words = R.philox4x32_10(*([c] for c in ctr), *key)
    assert tuple(int(w[0]) for w in words) == expected  # the NumPy twin too


def test_odd_size_mask_is_the_same_for_1_and_2_threads(rng, set_threads):
    x = rng.standard_normal(100_003)
    masks = []
    for n in (1, 2):
        set_threads(n)
        normreg.manual_seed(5)
        y, mask = F.dropout(x, 0.25)
        keep = R.dropout_keep(mask, x.shape)
        assert_close(y, R.dropout(x, keep, 0.25), np.float64)
        masks.append(mask)
    np.testing.assert_array_equal(masks[0], masks[1])


@pytest.mark.parametrize("n", [1, 7, 31, 255, 256, 257, 1000, 1023, 1024, 1025, 70001])
@pytest.mark.parametrize("p", [0.2, 0.5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_is_philox_and_values_exact(nthreads, n, p, dtype):
    """The vectorized mask: element i kept when u(i) >= p 2^32, u(i)'s top byte byte i % 16
    of Philox((i // 16, offset), seed) and, on a tie with the threshold's top byte, its low
    24 bits from Philox((i | 2^63, offset), seed), bit for bit; kept values scaled by
    exactly 1/(1-p)."""
    seed, offset = (1 << 63) + 12345, (1 << 40) + 7
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    y, mask = _C.dropout_forward(x, p, seed, offset, None)
    keep = R.dropout_keep_philox(n, p, seed, offset)
    np.testing.assert_array_equal(R.dropout_keep(mask, (n,)), keep)
    assert not np.unpackbits(mask, bitorder="little")[n:].any()  # bits past n are 0
    scale = dtype(1 / (1 - p))
    np.testing.assert_array_equal(y, np.where(keep, x * scale, 0))
    dy = np.random.default_rng(n + 1).standard_normal(n).astype(dtype)
    np.testing.assert_array_equal(_C.dropout_backward(dy, mask, p, None), np.where(keep, dy * scale, 0))


# thresholds whose low 24 bits are 0 (a tied byte always keeps) or all ones (a tied byte
# keeps only if its low bits are all ones too), below a byte's resolution, and near 1
TIE_PS = [51 / 256, 52 / 256 - 2.0**-32, 1e-9, 3e-5, 1 - 2.0**-32, 1 - 1e-6]


@pytest.mark.parametrize("p", TIE_PS)
def test_mask_decides_ties_with_the_low_bits(nthreads, p):
    """Elements whose Philox byte equals the threshold's top byte (1 in 256) are decided by
    24 more bits: the mask matches the NumPy twin bit for bit at thresholds that make every
    tie keep, every tie drop, or that a byte alone cannot express."""
    n = 300_001
    seed, offset = 2**40 + 3, 11
    x = np.ones(n, np.float32)
    y, mask = _C.dropout_forward(x, p, seed, offset, None)
    keep = R.dropout_keep_philox(n, p, seed, offset)
    np.testing.assert_array_equal(R.dropout_keep(mask, (n,)), keep)
    np.testing.assert_array_equal(y != 0, keep)


def test_keep_rate_below_a_bytes_resolution():
    """p = 3e-5 is 1/65 of a byte's step (1/256): the drops still come at the rate p, which a
    decision on the byte alone would round to 0 or 1/256."""
    n = 4_000_000
    _, mask = _C.dropout_forward(np.ones(n, np.float32), 3e-5, 77, 0, None)
    dropped = n - int(R.dropout_keep(mask, (n,)).sum())
    expected = n * 3e-5  # 120; Poisson, sigma ~ 11
    assert abs(dropped - expected) < 6 * np.sqrt(expected)


def test_inplace_writes_the_input_and_keeps_the_gradient(rng):
    """``Dropout(p, inplace=True)``: the output is the input array, overwritten with what
    the out-of-place module gives for the same generator state; the backward is the same."""
    x = rng.standard_normal((6, 9))
    ref_mod = nn.Dropout(0.4, normreg.Generator(5))
    y_ref = ref_mod(x.copy())
    mod = nn.Dropout(0.4, normreg.Generator(5), inplace=True)
    xi = x.copy()
    y = mod(xi)
    assert y is xi
    np.testing.assert_array_equal(xi, y_ref)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(mod.backward(dy), ref_mod.backward(dy))
    view = x.copy()[:, ::2]  # a strided view is written through as well
    out = nn.Dropout(0.4, normreg.Generator(5), inplace=True)(view)
    assert out is view
    mod.eval()
    xe = x.copy()
    assert mod(xe) is xe and np.array_equal(xe, x)  # evaluation: the identity
    with pytest.raises(ValueError):
        ro = x.copy()
        ro.flags.writeable = False
        nn.Dropout(0.4, inplace=True)(ro)
    with pytest.raises(TypeError, match="inplace"):
        nn.Dropout(0.4, inplace=1)
    with pytest.raises(TypeError, match="inplace is keyword-only"):
        nn.Dropout(0.4, True)  # PyTorch's positional inplace
    assert "inplace=True" in repr(mod)
