"""Arrays are the caller's: inputs are never written (read-only and non-contiguous input
gives the reference's results and stays bit for bit), arrays returned are never overwritten
by a later call, and the pool that serves large outputs reuses a block only when no array
or view holds it."""

import gc
import pickle

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, assert_close, assert_unmodified, frozen, noncontig, offset_randn, snapshot

import normreg
from normreg import _C, nn
from normreg import functional as F

# ---- inputs are never written --------------------------------------------------------------
# Each case: (the arrays passed in, a call that runs forward and backward on them, checks the
# values against the reference and returns the forward's outputs).


def _variant(kind):
    return frozen if kind == "readonly" else noncontig


def _linear(rng, dtype, kind):
    x = rng.standard_normal((6, 5)).astype(dtype)
    W = rng.standard_normal((5, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    dy = rng.standard_normal((6, 4)).astype(dtype)
    make = _variant(kind)
    inputs = (make(x), frozen(W) if kind == "readonly" else np.asfortranarray(W), make(dy), frozen(b))

    def run(xx, WW, dd, bb):
        y = F.linear(xx, WW, bb)
        assert_close(y, R.linear(x, W, b), dtype)
        dx, dW, db = F.linear_backward(dd, xx, WW)
        rdx, rdW, rdb = R.linear_backward(dy, x, W)
        assert_close(dx, rdx, dtype)
        assert_close(dW, rdW, dtype)
        return (y,)

    return inputs, run


def _relu(rng, dtype, kind):
    x = rng.standard_normal((6, 5)).astype(dtype)
    dy = rng.standard_normal((6, 5)).astype(dtype)
    make = _variant(kind)

    def run(xx, dd):
        y = F.relu(xx)
        assert_close(y, R.relu(x), dtype)
        assert_close(F.relu_backward(dd, y), R.relu_backward(dy, x), dtype)
        return (y,)

    return (make(x), make(dy)), run


def _layer_norm(rng, dtype, kind):
    x = offset_randn(rng, (5, 6), dtype)
    w = (1 + 0.5 * rng.standard_normal(6)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    dy = rng.standard_normal((5, 6)).astype(dtype)
    ry = R.layer_norm(x, (6,), w, b)[0]
    rdx = R.layer_norm_backward(dy, x, (6,), w)[0]
    make = _variant(kind)

    def run(xx, ww, dd):
        y, mean, rstd = F.layer_norm(xx, 6, ww, b)
        assert_close(y, ry, dtype)
        dx, _, _ = F.layer_norm_backward(dd, xx, mean, rstd, ww)
        assert_close(dx, rdx, dtype)
        if kind == "noncontiguous":
            assert_close(nn.LayerNorm(6, dtype=dtype)(noncontig(x)), R.layer_norm(x, (6,))[0], dtype)
        return (y,)

    return (make(x), make(w), make(dy)), run


def _batch_norm(rng, dtype, kind):
    x = offset_randn(rng, (6, 4), dtype)
    w = (1 + 0.5 * rng.standard_normal(4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    dy = rng.standard_normal((6, 4)).astype(dtype)
    ry = R.batch_norm_train(x, w, b)[0]
    rdx = R.batch_norm_train_backward(dy, x, w)[0]
    make = _variant(kind)

    def run(xx, dd, ww, bb):
        y, sm, sr = F.batch_norm(xx, None, None, ww, bb, training=True)
        assert_close(y, ry, dtype)
        dx, _, _ = F.batch_norm_backward(dd, xx, sm, sr, w)
        assert_close(dx, rdx, dtype, scale=10)
        return (y,)

    return (make(x), make(dy), frozen(w), frozen(b)), run


def _dropout(rng, dtype, kind):
    x = rng.standard_normal((8, 6)).astype(dtype)
    dy = rng.standard_normal((8, 6)).astype(dtype)
    make = _variant(kind)

    def run(xx, dd):
        normreg.manual_seed(3)
        y, mask = F.dropout(xx, 0.5)
        keep = R.dropout_keep(mask, x.shape)
        assert_close(y, R.dropout(x, keep, 0.5), dtype)
        assert_close(F.dropout_backward(dd, mask, 0.5), R.dropout_backward(dy, keep, 0.5), dtype)
        return (y,)

    return (make(x), make(dy)), run


def _cross_entropy(rng, dtype, kind):
    z = rng.standard_normal((6, 5)).astype(dtype)
    labels = rng.integers(0, 5, 6)
    rl, rdz = R.cross_entropy(z, labels)[0], R.cross_entropy_backward(z, labels)
    inputs = (frozen(z), frozen(labels)) if kind == "readonly" else (noncontig(z), noncontig(labels[None])[0])

    def run(zz, ll):
        loss, lse = F.cross_entropy(zz, ll)
        assert_close(loss, rl, dtype)
        assert_close(F.cross_entropy_backward(zz, ll, lse), rdz, dtype, scale=1 / 6)
        return (lse,)

    return inputs, run


INPUT_CASES = {
    "linear": _linear,
    "relu": _relu,
    "layer_norm": _layer_norm,
    "batch_norm": _batch_norm,
    "dropout": _dropout,
    "cross_entropy": _cross_entropy,
}


@pytest.mark.parametrize("kind", ["readonly", "noncontiguous"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(INPUT_CASES))
def test_inputs_are_never_written(rng, op, dtype, kind):
    inputs, run = INPUT_CASES[op](rng, dtype, kind)
    before = snapshot(*inputs)
    outputs = run(*inputs)
    assert_unmodified(before)
    for y in outputs:
        assert not any(np.shares_memory(y, a) for a in inputs)


# ---- arrays returned are never overwritten ---------------------------------------------------

MODULES = {
    "Linear": (lambda: nn.Linear(4, 3), (5, 4)),
    "ReLU": (lambda: nn.ReLU(), (4, 4)),
    "LayerNorm": (lambda: nn.LayerNorm(4), (3, 4)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(4), (5, 4)),
    "Dropout": (lambda: nn.Dropout(0.5), (10, 10)),
    "RMSNorm": (lambda: nn.RMSNorm(5), (3, 4, 5)),
    "GroupNorm": (lambda: nn.GroupNorm(2, 4), (3, 4, 5)),
    "InstanceNorm1d": (lambda: nn.InstanceNorm1d(4, affine=True), (3, 4, 5)),
    "Sequential": (
        lambda: nn.Sequential(
            nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.3), nn.Linear(6, 3)
        ).eval(),
        (4, 4),
    ),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_module_outputs_are_never_overwritten(rng, name):
    make, shape = MODULES[name]
    m = make()
    x1 = offset_randn(rng, shape, np.float32)
    x2 = 2 * x1 + rng.standard_normal(shape).astype(np.float32)
    y1 = m(x1)
    dy1 = rng.standard_normal(y1.shape).astype(np.float32)
    inputs = snapshot(x1, dy1)
    y1_copy = y1.copy()
    d1 = m.backward(dy1)
    d1_copy = d1.copy()
    y2 = m(x2)
    d2 = m.backward(2 * dy1)
    np.testing.assert_array_equal(y1, y1_copy)
    np.testing.assert_array_equal(d1, d1_copy)
    assert not np.shares_memory(y1, y2) and not np.shares_memory(d1, d2)
    assert_unmodified(inputs)


def test_loss_gradients_are_never_overwritten(rng):
    fn = nn.SoftmaxLoss()
    z = rng.standard_normal((4, 3)).astype(np.float32)
    fn(z, np.array([0, 1, 2, 0]))
    d1 = fn.backward()
    c = d1.copy()
    fn(z, np.array([2, 2, 2, 2]))
    fn.backward()
    np.testing.assert_array_equal(d1, c)


# ---- the output-array pool ----------------------------------------------------------------

BIG = (512, 1024)  # 2 MiB of float32: served from the pool


def _ptr(a):
    return a.__array_interface__["data"][0]


@pytest.fixture
def _empty_pool():
    gc.collect()
    normreg.empty_cache()
    yield
    gc.collect()
    normreg.empty_cache()


def _x(seed, shape=BIG, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_large_output_is_pooled_and_well_formed(_empty_pool):
    y = F.relu(_x(0))
    assert isinstance(y.base, type(F.relu(_x(1)).base))
    assert type(y.base).__name__ == "_Block"
    assert y.flags.c_contiguous and y.flags.writeable and y.flags.aligned
    assert y.dtype == np.float32 and y.shape == BIG
    assert _ptr(y) % 64 == 0
    y[...] = 3  # writeable memory of its own
    assert (y == 3).all()


def test_small_output_comes_from_numpy(_empty_pool):
    y = F.relu(_x(0, (8, 8)))
    assert y.base is None and y.flags.owndata


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_returned_arrays_stay_intact_after_later_calls(_empty_pool, dtype):
    x1, x2, x3 = _x(1, dtype=dtype), _x(2, dtype=dtype), _x(3, dtype=dtype)
    y1 = F.relu(x1)
    y2 = F.relu(x2)
    del y2
    gc.collect()
    y3 = F.relu(x3)  # may reuse y2's block, never y1's
    np.testing.assert_array_equal(y1, np.maximum(x1, 0))
    np.testing.assert_array_equal(y3, np.maximum(x3, 0))
    assert _ptr(y1) != _ptr(y3)


def test_module_outputs_stay_intact(_empty_pool):
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


def test_freed_block_is_reused(_empty_pool):
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


def test_view_keeps_block_alive(_empty_pool):
    x1, x2 = _x(1), _x(2)
    y = F.relu(x1)
    v = y[::2]
    expected = np.maximum(x1, 0)[::2].copy()
    del y
    gc.collect()
    zs = [F.relu(x2) for _ in range(3)]
    np.testing.assert_array_equal(v, expected)
    assert all(_ptr(z) != _ptr(v) for z in zs)


def test_pickle_and_copy_round_trip(_empty_pool):
    x = _x(4)
    y = F.relu(x)
    z = pickle.loads(pickle.dumps(y))
    np.testing.assert_array_equal(z, y)
    del y
    gc.collect()
    F.relu(_x(5))
    np.testing.assert_array_equal(z, np.maximum(x, 0))


def test_empty_cache_releases_blocks(_empty_pool):
    ys = [F.relu(_x(i)) for i in range(3)]
    del ys
    gc.collect()
    assert _C.pool_stats()[0] >= 1
    normreg.empty_cache()
    assert _C.pool_stats()[:2] == (0, 0)


def test_dropout_mask_pooled_and_intact(_empty_pool):
    x = _x(0, (4096, 1024))  # mask of 512 KiB ... and 1 MiB at twice the size
    x2 = _x(1, (8192, 1024))
    y, m = F.dropout(x2, 0.3)
    m_copy = m.copy()
    for _ in range(3):
        F.dropout(x2, 0.3)
        F.dropout(x, 0.3)
    np.testing.assert_array_equal(m, m_copy)


def test_copy_helper():
    """The threaded copy the benchmarks' memory roofline is measured with."""
    x = np.arange(100000, dtype=np.float32)
    out = np.empty_like(x)
    _C.copy_f32(out, x, 2)
    np.testing.assert_array_equal(out, x)
    with pytest.raises(ValueError, match="nthreads"):
        _C.copy_f32(out, x, 0)


# ---- out= that overlaps the input ------------------------------------------------------------
# A norm's kernel reads its input again after it has written part of its output (the output
# pass after the statistics; a row or channel redone in double when its float32 sums
# overflow): out=x must still give what a separate out gives, as NumPy's ufuncs do. The
# elementwise ops write in place.

_OUT_CASES = {
    "layer_norm D=64": ((8, 64), lambda x, out: F.layer_norm(x, 64, out=out)[0]),
    "layer_norm D=300": ((8, 300), lambda x, out: F.layer_norm(x, 300, out=out)[0]),
    "layer_norm (2, 32)": ((8, 2, 32), lambda x, out: F.layer_norm(x, (2, 32), out=out)[0]),
    "rms_norm": ((8, 64), lambda x, out: F.rms_norm(x, 64, out=out)[0]),
    "group_norm": ((8, 16, 10), lambda x, out: F.group_norm(x, 4, out=out)[0]),
    "batch_norm (N, C)": ((64, 8), lambda x, out: F.batch_norm(x, None, None, training=True, out=out)[0]),
    "batch_norm (N, C, L)": (
        (8, 6, 10),
        lambda x, out: F.batch_norm(x, None, None, training=True, out=out)[0],
    ),
    "batch_norm eval": (
        (64, 8),
        lambda x, out: F.batch_norm(x, np.zeros(8, x.dtype), np.ones(8, x.dtype), out=out)[0],
    ),
    "batch_norm_elemt": (
        (8, 6, 10),
        lambda x, out: F.batch_norm_elemt(x, np.full(6, 0.5), np.full(6, 2.0, x.dtype), out=out),
    ),
    "relu": ((8, 64), lambda x, out: F.relu(x, out=out)),
    "dropout": ((8, 64), lambda x, out: F.dropout(x, 0.3, generator=normreg.random.Generator(5), out=out)[0]),
    "cross_entropy_backward": ((8, 64), lambda x, out: _ce_grad(x, out)),
}


def _ce_grad(logits, out):
    labels = np.arange(len(logits)) % logits.shape[1]
    _, lse = F.cross_entropy(logits, labels, label_smoothing=0.1)
    return F.cross_entropy_backward(logits, labels, lse, label_smoothing=0.1, out=out)


@pytest.mark.parametrize("name", list(_OUT_CASES))
@pytest.mark.parametrize("scale", [1.0, 1e30, 3e38, 1e-30, 1e200])
@pytest.mark.parametrize("dtype", DTYPES)
def test_out_overlapping_the_input_gives_the_separate_result(rng, name, scale, dtype):
    shape, call = _OUT_CASES[name]
    with np.errstate(over="ignore"):
        x = (rng.standard_normal(shape) * scale).astype(dtype)
        expected = call(x.copy(), None)  # a fresh output
        inplace = x.copy()
        got = call(inplace, inplace)  # out is x itself
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(inplace.reshape(expected.shape), expected)  # out holds it


# A parameter's gradient accumulated into the parameter itself (dweight=weight): the input
# gradient is computed with the weight as it was, and the weight gains the gradient once.
def _bn(x, w, b):
    y, m, r = F.batch_norm(x, None, None, w, b, training=True)
    return lambda dy, ww, **acc: F.batch_norm_backward(dy, x, m, r, ww, training=True, **acc)


def _ln(x, w, b):
    y, m, r = F.layer_norm(x, x.shape[-1], w, b)
    return lambda dy, ww, **acc: F.layer_norm_backward(dy, x, m, r, ww, **acc)


def _gn(x, w, b):
    y, m, r = F.group_norm(x, 2, w, b)
    return lambda dy, ww, **acc: F.group_norm_backward(dy, x, m, r, ww, **acc)


def _rms(x, w, b):
    y, r = F.rms_norm(x, x.shape[-1], w)
    return lambda dy, ww, **acc: F.rms_norm_backward(dy, x, r, ww, **acc)


@pytest.mark.parametrize(
    "make, shape, acc",
    [
        (_bn, (16, 8), "dweight"),
        (_bn, (6, 8, 5), "dweight"),
        (_bn, (16, 8), "dbias"),
        (_ln, (16, 8), "dweight"),
        (_ln, (16, 8), "dbias"),
        (_gn, (6, 8, 5), "dweight"),
        (_rms, (16, 8), "dweight"),
    ],
)
def test_gradient_accumulated_into_the_weight_itself(rng, make, shape, acc):
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(8).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    backward = make(x, w, b)
    fresh = backward(dy, w)  # dx, dweight[, dbias], new arrays
    grad = fresh[1] if acc == "dweight" else fresh[2]
    ww = w.copy()
    got = backward(dy, ww, **{acc: ww})
    np.testing.assert_array_equal(got[0], fresh[0])
    np.testing.assert_array_equal(ww, w + grad)


def test_products_refuse_an_out_that_overlaps_their_inputs(rng):
    """linear and conv2d write out from two threads' blocks while they read their inputs: an
    out sharing memory with x, weight or bias is a ValueError (PyTorch: "unsupported
    operation: some elements of the input tensor and the written-to tensor refer to a single
    memory location")."""

    def arrays():
        return rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((4, 4)).astype(np.float32)

    x, w = arrays()
    with pytest.raises(ValueError, match="out must not overlap"):
        F.linear(x, w, out=x)  # out is x
    x, _ = arrays()
    out = rng.standard_normal((8, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="out must not overlap"):
        F.linear(x, out[:4], out=out)  # weight is rows of out
    with pytest.raises(ValueError, match="out must not overlap"):
        F.linear(x, w, out[3], out=out)  # bias is a row of out
    xc = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    wc = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out = np.empty((2, 4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="out must not overlap"):
        F.conv2d(xc, wc, out[0, 0, 0], out=out)
    with pytest.raises(ValueError, match="out must not overlap"):
        F.conv2d(xc, wc, out=xc.reshape(-1)[: out.size].reshape(out.shape))


def test_pooling_refuses_an_out_that_overlaps_its_input(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    front = x.reshape(-1)[: 2 * 3 * 4 * 4].reshape(2, 3, 4, 4)  # y's shape, in x's memory
    for call in (
        lambda: F.max_pool2d(x, 2, out=front),
        lambda: F.avg_pool2d(x, 2, out=front),
        lambda: F.adaptive_avg_pool2d(x, 4, out=front),
    ):
        with pytest.raises(ValueError, match="out must not overlap x"):
            call()
    big = np.zeros((2, 3, 8, 8), np.float32)
    dy = big.reshape(-1)[: 2 * 3 * 4 * 4].reshape(2, 3, 4, 4)
    dy[...] = rng.standard_normal(dy.shape)
    _, idx = F.max_pool2d(x, 2, return_indices=True)
    for call in (
        lambda: F.avg_pool2d_backward(dy, x.shape, 2, out=big),
        lambda: F.adaptive_avg_pool2d_backward(dy, x.shape, out=big),
        lambda: F.max_pool2d_backward(dy, idx, x.shape, out=big),
    ):
        with pytest.raises(ValueError, match="out must not overlap dy"):
            call()
    np.testing.assert_array_equal(
        F.avg_pool2d_backward(dy, x.shape, 2), F.avg_pool2d_backward(dy.copy(), x.shape, 2)
    )
