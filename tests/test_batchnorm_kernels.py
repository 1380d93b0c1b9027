"""BatchNorm1d's kernels on the paths the shapes choose: many rows split among threads, few
rows run as blocks of channels (a thread each), channel counts that are not multiples of the
vector blocks, the float32 sums' fallbacks to double on hostile batches, in every block; each
against the float64 reference (reference.batch_norm_*), with 1 and 2 threads."""

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, assert_close, offset_randn

from normreg import _C
from normreg import functional as F


def _check_training(rng, x, dtype):
    """A training forward (with the running update) and backward of x against the float64
    reference; returns what they used and gave: w, b, rm, rv, save_mean, save_rstd, dy."""
    C = x.shape[1]
    w = rng.standard_normal(C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    rm, rv = np.zeros(C, dtype), np.ones(C, dtype)
    y, sm, sr = F.batch_norm(x, rm, rv, w, b, training=True)
    ry, rrm, rrv, _, _ = R.batch_norm_train(x, w, b, np.zeros(C), np.ones(C))
    assert_close(y, ry, dtype)
    assert_close(rm, rrm, dtype)
    assert_close(rv, rrv, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, dw, db = F.batch_norm_backward(dy, x, sm, sr, w)
    rdx, rdw, rdb = R.batch_norm_train_backward(dy, x, w)
    assert_close(dx, rdx, dtype, scale=np.abs(rdx).max() * 10)
    assert_close(dw, rdw, dtype, scale=np.abs(rdw).max() * 10)
    assert_close(db, rdb, dtype, scale=np.abs(rdb).max() * 10)
    return w, b, rm, rv, sm, sr, dy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4099, 17), (37, 9, 513)])
def test_large_threaded(rng, nthreads, dtype, shape):
    _check_training(rng, offset_randn(rng, shape, dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_mean_is_stable(rng, dtype):
    x = (1e4 + rng.standard_normal((512, 4))).astype(dtype)
    rm, rv = np.zeros(4, dtype), np.ones(4, dtype)
    y, _, _ = F.batch_norm(x, rm, rv, training=True, momentum=1.0)
    np.testing.assert_allclose(y, R.batch_norm_train(x)[0], atol=2e-3 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(
        rv, x.astype(np.float64).var(0, ddof=1), rtol=1e-3 if dtype == np.float32 else 1e-9
    )


def _hostile_batches(rng):
    """float32 (N, C) batches that push the statistics' sums in float32 to their limits."""
    base = rng.standard_normal((4096, 8)).astype(np.float32)
    spread = base.copy()
    spread[::256] += 1000  # every 256th row: the values the shift is estimated from
    return {
        "sorted along the batch": (np.sort(base, axis=0), 1e-5),
        "shift samples far from the mean": (spread, 1e-5),
        "first rows far from the mean": (np.vstack([base[:64] + 1e3, base[64:]]), 1e-5),
        "offset 1e6": ((1e6 + base).astype(np.float32), 1e-5),
        "tiny values, eps 0": ((base * 1e-20).astype(np.float32), 0.0),
        "squares beyond float32": ((base * 1e20).astype(np.float32), 1e-5),
        "values near float32's largest": ((base * 1e37).astype(np.float32), 1e-5),
        # means far from 0 in units of the std (the backward's mean correction) at both ends
        # of float32's range: the correction's sums in float32 stay in units of the std
        "offset 1e3, tiny values": (((base + 1e3) * 1e-30).astype(np.float32), 0.0),
        "offset 1e3, huge values": (((base + 1e3) * 1e34).astype(np.float32), 1e-5),
    }


@pytest.mark.parametrize("case", list(_hostile_batches(np.random.default_rng(0))))
def test_statistics_and_gradients_exact_on_hostile_batches(case):
    """The float32 sums (four rows at a time in float32, then double) fall back to double
    where they would lose digits: every output stays within a few float32 roundings of the
    float64 reference, relative to its largest value."""
    rng = np.random.default_rng(1)
    x, eps = _hostile_batches(np.random.default_rng(0))[case]
    C = x.shape[1]
    w, b = rng.uniform(0.5, 1.5, C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    _assert_exact_float32(rng, x, eps, w, b, case)


def _assert_exact_float32(rng, x, eps, w, b, case):
    """Training forward and backward of the float32 x: every output finite and within 2e-6
    of the float64 reference's largest value."""
    dy = rng.standard_normal(x.shape).astype(np.float32)
    # the kernel itself: F.batch_norm refuses eps 0 in training (PyTorch's check), and the
    # kernel's precision on tiny values without an eps to hide behind is what is tested
    x3 = x.reshape(x.shape[0], x.shape[1], -1)
    y, mean, rstd = _C.batch_norm_forward(x3, w, b, None, None, True, 0.1, eps, None)
    y = y.reshape(x.shape)
    dx, dw, db = F.batch_norm_backward(dy, x, mean, rstd, w, training=True)
    ry, _, _, rmean, rrstd = R.batch_norm_train(x, w, b, eps=eps)
    rdx, rdw, rdb = R.batch_norm_train_backward(dy, x, w, eps=eps)
    for got, want in ((y, ry), (mean, rmean), (rstd, rrstd), (dx, rdx), (dw, rdw), (db, rdb)):
        want = np.asarray(want, np.float64)
        assert np.isfinite(got).all(), case
        scale = np.abs(want).max()
        assert np.abs(got.astype(np.float64) - want).max() <= 2e-6 * scale, case


@pytest.mark.parametrize("shape", [(3, 5), (33, 64), (1000, 100), (300, 1500), (7, 3, 9)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_channel_blocks(nthreads, shape, dtype):
    """Statistics vectorized across channels: channel counts that are not multiples of the
    vector blocks."""
    rng = np.random.default_rng(shape[1])
    x = offset_randn(rng, shape, dtype)
    C = shape[1]
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    rm, rv = np.zeros(C, dtype), np.ones(C, dtype)
    y, sm, sr = F.batch_norm(x, rm, rv, w, b, training=True)
    ry, rrm, rrv, _, _ = R.batch_norm_train(x, w, b, np.zeros(C), np.ones(C))
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, ry, **tol)
    np.testing.assert_allclose(rm, rrm, **tol)
    np.testing.assert_allclose(rv, rrv, **tol)
    dx, dw, db = F.batch_norm_backward(dy, x, sm, sr, w)
    rdx, rdw, rdb = R.batch_norm_train_backward(dy, x, w)
    np.testing.assert_allclose(dx, rdx, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    np.testing.assert_allclose(dw, rdw, rtol=tol["rtol"] * 10, atol=tol["atol"] * 100)
    np.testing.assert_allclose(db, rdb, rtol=tol["rtol"] * 10, atol=tol["atol"] * 100)


@pytest.mark.parametrize("shape", [(128, 1030), (64, 2048), (192, 700), (2, 40000)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_few_rows_many_channels(nthreads, shape, dtype):
    """Few rows and many channels run as blocks of channels, a thread each (the statistics,
    the per-channel values and both passes of a block on one thread): block edges that are not
    multiples of the vector width, a last block smaller than the others."""
    rng = np.random.default_rng(shape[1])
    x = offset_randn(rng, shape, dtype)
    C = shape[1]
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    rm0, rv0 = rm.astype(np.float64), rv.astype(np.float64)
    y, sm, sr = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3)
    ry, rrm, rrv, rmean, rrstd = R.batch_norm_train(x, w, b, rm0, rv0, momentum=0.3)
    assert_close(y, ry, dtype)
    assert_close(sm, rmean, dtype, scale=np.abs(rmean).max())
    assert_close(sr, rrstd, dtype, scale=np.abs(rrstd).max())
    assert_close(rm, rrm, dtype, scale=np.abs(rrm).max())
    assert_close(rv, rrv, dtype, scale=np.abs(rrv).max())
    dwb = np.ones(C, dtype), np.full(C, 2, dtype)  # dw, db are added to
    dx, dw, db = F.batch_norm_backward(dy, x, sm, sr, w, dweight=dwb[0].copy(), dbias=dwb[1].copy())
    rdx, rdw, rdb = R.batch_norm_train_backward(dy, x, w)
    assert_close(dx, rdx, dtype, scale=np.abs(rdx).max() * 10)
    assert_close(dw - 1, rdw, dtype, scale=np.abs(rdw).max() * 10)
    assert_close(db - 2, rdb, dtype, scale=np.abs(rdb).max() * 10)


@pytest.mark.parametrize(
    "shape, hostile",
    [((160, 1040), (3, 700, 900, 1039)), ((160, 48, 16), (3, 20, 33, 47)), ((1200, 13, 9), (0, 5, 9, 12))],
)
def test_few_rows_hostile_channels(nthreads, shape, hostile):
    """Channels that need the double paths (squares beyond float32, values near its largest,
    a far offset, a mean far from 0 in units of the std) beside ordinary ones, in the blocks of
    channels of a batch of few rows, and in small feature maps (their positions as columns, in
    blocks of channels and with the rows split): each output within a few float32 roundings
    of the float64 reference, relative to its channel's largest value."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(np.float32)
    huge, largest, far, tiny = hostile
    x[:, huge] *= 1e20
    x[:, largest] *= 1e37
    x[:, far] += 1e6
    x[:, tiny] = (x[:, tiny] + 1e3) * 1e-30
    C = x.shape[1]
    channel_axes = (0,) if x.ndim == 2 else (0, 2)
    w, b = rng.uniform(0.5, 1.5, C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, mean, rstd = F.batch_norm(x, None, None, w, b, training=True)
    dx, dw, db = F.batch_norm_backward(dy, x, mean, rstd, w, training=True)
    ry, _, _, rmean, rrstd = R.batch_norm_train(x, w, b)
    rdx, rdw, rdb = R.batch_norm_train_backward(dy, x, w)
    for got, want in ((y, ry), (dx, rdx)):
        want = np.asarray(want, np.float64)
        assert np.isfinite(got).all()
        err = np.abs(got.astype(np.float64) - want).max(axis=channel_axes)
        assert (err <= 2e-6 * np.abs(want).max(axis=channel_axes)).all()
    for got, want in ((mean, rmean), (rstd, rrstd)):  # each channel's own scale
        want = np.asarray(want, np.float64)
        assert (np.abs(got.astype(np.float64) - want) <= 2e-6 * np.abs(want)).all()
    for got, want in ((dw, rdw), (db, rdb)):  # sums of dy and dy xhat: of the order of 1
        want = np.asarray(want, np.float64)
        assert np.abs(got.astype(np.float64) - want).max() <= 2e-6 * np.abs(want).max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L", [2, 3, 4, 9, 16, 17, 25])
def test_small_feature_maps(rng, nthreads, dtype, L):
    """(N, C, L) batches of small maps (2x1 to 5x5): the sums run down blocks of rows with
    the L positions in lanes, the per-element passes with L a constant for 2, 4, 9 and 16;
    training and evaluation, forward and backward, against the float64 reference; then the
    hostile batches' channels (offset 1e6, tiny values with eps 0, squares beyond float32,
    a mean far from 0 in units of the std) as maps of L values."""
    C = 13
    x = offset_randn(rng, (2 * (20000 // (C * L)) + 3, C, L), dtype)
    w, b, rm, rv, sm, sr, dy = _check_training(rng, x, dtype)
    ye, _, _ = F.batch_norm(x, rm, rv, w, b, training=False)
    assert_close(ye, R.batch_norm_eval(x, rm, rv, w, b), dtype)
    dxe, _, _ = F.batch_norm_backward(dy, x, sm, sr, w, training=False)  # dx = w rstd dy
    want = dy.astype(np.float64) * (sr.astype(np.float64) * w)[:, None]
    assert_close(dxe, want, dtype, scale=np.abs(want).max())
    if dtype != np.float32:
        return
    for case, (h, eps) in _hostile_batches(np.random.default_rng(0)).items():
        hx = np.ascontiguousarray(h[: (h.shape[0] // L) * L].reshape(-1, L, h.shape[1]).transpose(0, 2, 1))
        hw = rng.uniform(0.5, 1.5, hx.shape[1]).astype(np.float32)
        _assert_exact_float32(rng, hx, eps, hw, None, case)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape",
    [(160, 48, 16), (100, 37, 25), (190, 40, 49), (9, 512, 16), (64, 128, 64), (40, 129, 64), (30, 64, 65)],
)
def test_small_feature_maps_few_rows(nthreads, dtype, shape):
    """Small maps of few rows and many channels: their positions as columns in blocks of
    channels, a thread each (block edges inside no channel, a last block larger than the
    others), up to the largest maps that run as columns (128 channels of 64) and just past
    them (129 channels, 65 positions); training with the running update and evaluation against
    the float64 reference."""
    rng = np.random.default_rng(shape[1] * shape[2])
    x = offset_randn(rng, shape, dtype)
    w, b, rm, rv, sm, sr, dy = _check_training(rng, x, dtype)
    ye, _, _ = F.batch_norm(x, rm, rv, w, b, training=False)
    assert_close(ye, R.batch_norm_eval(x, rm, rv, w, b), dtype)


@pytest.mark.parametrize("shape", [(64, 5), (9, 5, 4), (3, 5, 100)])
def test_evaluation_on_nonfinite_running_estimates(shape):
    """Evaluation is (x - running_mean) w / sqrt(running_var + eps) + b on every path (rows,
    small maps as columns, runs of long maps) for running estimates a diverged training left:
    an infinite mean gives x - inf, a zero variance with eps 0 an infinite scale (NaN where x
    is the mean), as the float64 formula gives them; the other channels as before."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 3] = 0.5
    rm = np.array([0.0, np.inf, -np.inf, 0.5, 0.25], np.float32)
    rv = np.array([1.0, 1.0, 1.0, 0.0, 2.0], np.float32)
    w, b = rng.uniform(0.5, 1.5, 5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    y, _, _ = F.batch_norm(x, rm, rv, w, b, training=False, eps=0.0)
    sh = (5,) + (1,) * (x.ndim - 2)
    with np.errstate(all="ignore"):
        scale = w.astype(np.float64) * (1 / np.sqrt(rv.astype(np.float64))).astype(np.float32)
        want = (x - rm.reshape(sh).astype(np.float64)) * scale.reshape(sh) + b.reshape(sh)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(y), np.isneginf(want))
    assert np.isnan(y).any() and np.isposinf(y).any() and np.isneginf(y).any()
    finite = np.isfinite(want)
    np.testing.assert_allclose(y[finite], want[finite], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(128, 1030), (64, 2100), (192, 700)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_channel_blocks_follow_the_output_lines(nthreads, shape, dtype):
    """Blocks of channels start on the cache lines of the output (so no two threads write one
    line of a row): an ``out`` at every element offset within a 64-byte line moves the blocks'
    edges, and the values must not move with them (each channel is one thread's, summed in the
    same order) nor leave the float64 reference."""
    rng = np.random.default_rng(shape[1])
    x = offset_randn(rng, shape, dtype)
    C, size = shape[1], np.dtype(dtype).itemsize
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    ry, *_ = R.batch_norm_train(x, w, b, np.zeros(C), np.ones(C))
    want, _, _ = F.batch_norm(x, None, None, w, b, training=True)
    n = x.size
    for phase in range(64 // size):
        buf = np.empty(n + 128 // size, dtype)
        start = (-buf.ctypes.data % 64) // size + phase
        out = buf[start : start + n].reshape(shape)
        assert out.ctypes.data % 64 == phase * size
        F.batch_norm(x, None, None, w, b, training=True, out=out)
        np.testing.assert_array_equal(out, want, err_msg=f"output {phase * size} bytes past a line")
        assert_close(out, ry, dtype)
