import numpy as np
import pytest

import normreg
from normreg import functional as F, nn

import reference as R
from common import DTYPES, assert_close, frozen, noncontig
from gradcheck import check_grads


@pytest.fixture
def threads():
    """Restore the thread count after the test."""
    n = normreg.get_num_threads()
    yield
    normreg.set_num_threads(n)


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
    normreg.manual_seed(2)
    x = 5 * rng.standard_normal((6, 7)) + 12
    dy = rng.standard_normal(x.shape)
    gen = normreg.Generator(9)
    state = gen.get_state()

    def f():  # the same mask every call
        gen.set_state(state)
        return F.dropout(x, 0.4, generator=gen)[0]

    y = f()
    gen.set_state(state)
    _, mask = F.dropout(x, 0.4, generator=gen)
    dx = F.dropout_backward(dy, mask, 0.4)
    assert (y == 0).any() and (y != 0).any()
    check_grads(f, [x], [dx], dy)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keep_rate_and_scaling(p):
    normreg.manual_seed(123)
    n = 400_000
    x = np.ones(n, dtype=np.float32)
    y, mask = F.dropout(x, p)
    kept = np.count_nonzero(y)
    sigma = np.sqrt(n * p * (1 - p))
    assert abs(kept - n * (1 - p)) < 6 * sigma          # binomial bound, ~1e-9 failure rate
    assert kept == R.dropout_keep(mask, (n,)).sum()
    np.testing.assert_allclose(y[y != 0], np.float32(1 / (1 - p)), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 6 * sigma / n / (1 - p)   # E[y] = x
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


def test_nan_and_inf_are_dropped_to_zero():
    normreg.manual_seed(0)
    x = np.full(64, np.nan)
    x[::2] = np.inf
    y, mask = F.dropout(x, 0.5)
    keep = R.dropout_keep(mask, x.shape)
    assert (y[~keep] == 0).all() and 0 < keep.sum() < 64


def test_reproducible_under_manual_seed(rng):
    x = rng.standard_normal((50, 40)).astype(np.float32)
    normreg.manual_seed(42)
    y1, m1 = F.dropout(x, 0.5)
    y2, m2 = F.dropout(x, 0.5)
    normreg.manual_seed(42)
    y3, m3 = F.dropout(x, 0.5)
    np.testing.assert_array_equal(m1, m3)
    np.testing.assert_array_equal(y1, y3)
    assert not np.array_equal(m1, m2)             # the counter advances between calls
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
def test_same_mask_for_any_thread_count(threads, dtype):
    x = np.ones((600, 500), dtype=dtype)              # 1.2 or 2.4 MB: threaded
    assert x.nbytes > 64 * 1024
    results = []
    for n in (1, 2, 1, 2):
        normreg.set_num_threads(n)
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
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", PHILOX_KAT)
def test_philox_known_answers(ctr, key, expected):
    assert tuple(normreg._C.philox4x32(*ctr, *key)) == expected


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_untouched_readonly_noncontiguous(rng, dtype):
    x = rng.standard_normal((8, 6)).astype(dtype)
    dy = rng.standard_normal((8, 6)).astype(dtype)
    for xx, dd in [(frozen(x), frozen(dy)), (noncontig(x), noncontig(dy))]:
        xc, dc = xx.copy(), dd.copy()
        normreg.manual_seed(3)
        y, mask = F.dropout(xx, 0.5)
        keep = R.dropout_keep(mask, x.shape)
        assert_close(y, R.dropout(x, keep, 0.5), dtype)
        assert_close(F.dropout_backward(dd, mask, 0.5), R.dropout_backward(dy, keep, 0.5), dtype)
        np.testing.assert_array_equal(xx, xc)
        np.testing.assert_array_equal(dd, dc)
        assert not np.shares_memory(y, xx)


def test_outputs_are_not_overwritten(rng):
    m = nn.Dropout(0.5)
    x = rng.standard_normal((10, 10)).astype(np.float32)
    y1 = m(x)
    c = y1.copy()
    y2 = m(x)
    np.testing.assert_array_equal(y1, c)
    assert not np.shares_memory(y1, y2)
