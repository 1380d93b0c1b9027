"""The output-array pool: arrays handed to the user are never overwritten, freed blocks
are reused, and views keep their memory alive."""
import gc
import pickle

import numpy as np
import pytest

import normreg
from normreg import _C, nn
from normreg import functional as F

BIG = (512, 1024)  # 2 MiB of float32: served from the pool


def _ptr(a):
    return a.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def _empty_pool():
    gc.collect()
    normreg.empty_cache()
    yield
    gc.collect()
    normreg.empty_cache()


def _x(seed, shape=BIG, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_large_output_is_pooled_and_well_formed():
    y = F.relu(_x(0))
    assert isinstance(y.base, type(F.relu(_x(1)).base))
    assert type(y.base).__name__ == "_Block"
    assert y.flags.c_contiguous and y.flags.writeable and y.flags.aligned
    assert y.dtype == np.float32 and y.shape == BIG
    assert _ptr(y) % 64 == 0
    y[...] = 3  # writeable memory of its own
    assert (y == 3).all()


def test_small_output_comes_from_numpy():
    y = F.relu(_x(0, (8, 8)))
    assert y.base is None and y.flags.owndata


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_returned_arrays_stay_intact_after_later_calls(dtype):
    x1, x2, x3 = _x(1, dtype=dtype), _x(2, dtype=dtype), _x(3, dtype=dtype)
    y1 = F.relu(x1)
    y2 = F.relu(x2)
    del y2
    gc.collect()
    y3 = F.relu(x3)  # may reuse y2's block, never y1's
    np.testing.assert_array_equal(y1, np.maximum(x1, 0))
    np.testing.assert_array_equal(y3, np.maximum(x3, 0))
    assert _ptr(y1) != _ptr(y3)


def test_module_outputs_stay_intact():
    ln = nn.LayerNorm(BIG[1])
    x1, x2 = _x(1), _x(2)
    y1 = ln(x1).copy()
    out1 = ln(x1)
    for _ in range(3):
        ln(x2)
    np.testing.assert_array_equal(out1, y1)
    drop = nn.Dropout(0.5)
    d1 = drop(x1)
    keep = d1.copy()
    for _ in range(3):
        drop(x2)
    np.testing.assert_array_equal(d1, keep)


def test_freed_block_is_reused():
    x = _x(0)
    y = F.relu(x)
    p = _ptr(y)
    blocks, nbytes, hits, misses = _C.pool_stats()
    del y
    gc.collect()
    assert _C.pool_stats()[0] == blocks + 1
    z = F.relu(x)
    assert _ptr(z) == p
    assert _C.pool_stats()[2] == hits + 1
    np.testing.assert_array_equal(z, np.maximum(x, 0))


def test_view_keeps_block_alive():
    x1, x2 = _x(1), _x(2)
    y = F.relu(x1)
    v = y[::2]
    expected = np.maximum(x1, 0)[::2].copy()
    del y
    gc.collect()
    zs = [F.relu(x2) for _ in range(3)]
    np.testing.assert_array_equal(v, expected)
    assert all(_ptr(z) != _ptr(v) for z in zs)


def test_pickle_and_copy_round_trip():
    x = _x(4)
    y = F.relu(x)
    z = pickle.loads(pickle.dumps(y))
    np.testing.assert_array_equal(z, y)
    del y
    gc.collect()
    F.relu(_x(5))
    np.testing.assert_array_equal(z, np.maximum(x, 0))


def test_empty_cache_releases_blocks():
    ys = [F.relu(_x(i)) for i in range(3)]
    del ys
    gc.collect()
    assert _C.pool_stats()[0] >= 1
    normreg.empty_cache()
    assert _C.pool_stats()[:2] == (0, 0)


def test_dropout_mask_pooled_and_intact():
    x = _x(0, (4096, 1024))  # mask of 512 KiB ... and 1 MiB at twice the size
    x2 = _x(1, (8192, 1024))
    y, m = F.dropout(x2, 0.3)
    m_copy = m.copy()
    for _ in range(3):
        F.dropout(x2, 0.3)
        F.dropout(x, 0.3)
    np.testing.assert_array_equal(m, m_copy)
