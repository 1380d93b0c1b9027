"""The vectorized kernel paths against independent NumPy references: every thread count,
sizes that are not multiples of the vector blocks, and the Python fast paths."""
import numpy as np
import pytest

import normreg
from normreg import _C, nn
from normreg import functional as F

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 (Salmon et al. 2011) in NumPy over uint64 arrays of 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    for _ in range(10):
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0)) & MASK32, p1 & MASK32, \
                         ((p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1)) & MASK32, p0 & MASK32
        k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def reference_keep(n, p, seed, offset):
    """Element i kept when word i % 4 of Philox(counter=(i // 4, offset), key=seed) >= p 2^32."""
    groups = np.arange((n + 3) // 4, dtype=np.uint64)
    words = philox4x32_10(groups & MASK32, groups >> np.uint64(32),
                          np.full_like(groups, offset & 0xFFFFFFFF),
                          np.full_like(groups, offset >> 32), seed & 0xFFFFFFFF, seed >> 32)
    return (np.stack(words, axis=1).reshape(-1)[:n] >= np.uint64(int(p * 2 ** 32)))


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    old = normreg.get_num_threads()
    normreg.set_num_threads(request.param)
    yield request.param
    normreg.set_num_threads(old)


def test_philox_reference_known_answer():
    # Random123's known-answer vector for philox4x32-10 with all-ones counter and key
    out = philox4x32_10([0xFFFFFFFF], [0xFFFFFFFF], [0xFFFFFFFF], [0xFFFFFFFF],
                        0xFFFFFFFF, 0xFFFFFFFF)
    assert [int(o[0]) for o in out] == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]


@pytest.mark.parametrize("n", [1, 7, 31, 255, 256, 257, 1000, 70001])
@pytest.mark.parametrize("p", [0.2, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_mask_and_values(threads, n, p, dtype):
    seed, offset = (1 << 63) + 12345, (1 << 40) + 7
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    y, mask = _C.dropout_forward(x, p, seed, offset, None)
    keep = reference_keep(n, p, seed, offset)
    np.testing.assert_array_equal(np.unpackbits(mask, bitorder="little")[:n].astype(bool), keep)
    assert not np.unpackbits(mask, bitorder="little")[n:].any()  # bits past n are 0
    scale = dtype(1 / (1 - p))
    np.testing.assert_array_equal(y, np.where(keep, x * scale, 0))
    dy = np.random.default_rng(n + 1).standard_normal(n).astype(dtype)
    np.testing.assert_array_equal(_C.dropout_backward(dy, mask, p, None),
                                  np.where(keep, dy * scale, 0))


def test_dropout_drops_inf_and_nan_to_exact_zero():
    x = np.full(4096, np.inf, dtype=np.float32)
    x[::3] = np.nan
    y, mask = _C.dropout_forward(x, 0.5, 3, 4, None)
    keep = np.unpackbits(mask, bitorder="little")[:x.size].astype(bool)
    assert (y[~keep] == 0).all() and not np.signbit(y[~keep]).any()
    np.testing.assert_array_equal(np.isnan(y[keep]), np.isnan(x[keep]))
    dx = _C.dropout_backward(x, mask, 0.5, None)
    assert (dx[~keep] == 0).all()


def test_dropout_same_mask_for_any_thread_count():
    x = np.ones(1 << 20, dtype=np.float32)
    masks = []
    for t in (1, 2):
        normreg.set_num_threads(t)
        masks.append(_C.dropout_forward(x, 0.3, 99, 5, None)[1])
    np.testing.assert_array_equal(masks[0], masks[1])


@pytest.mark.parametrize("n", [1, 15, 17, 100003])
def test_relu_branch_free_paths(threads, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    x[::7] = np.nan
    dy = rng.standard_normal(n).astype(np.float32)
    y = F.relu(x)
    np.testing.assert_array_equal(y, np.where(x < 0, 0, x))  # NaN stays NaN
    np.testing.assert_array_equal(F.relu_backward(dy, y), np.where(y > 0, dy, 0))


def _layer_norm_ref(x, w, b, eps=1e-5):
    xd = x.astype(np.float64)
    mu = xd.mean(-1, keepdims=True)
    r = 1 / np.sqrt(xd.var(-1, keepdims=True) + eps)
    return (xd - mu) * r * w + b, mu[..., 0], r[..., 0]


@pytest.mark.parametrize("M,D", [(1, 1), (17, 3), (33, 64), (100, 100), (19, 1024), (5, 5000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_row_tiles(threads, M, D, dtype):
    rng = np.random.default_rng(M * D)
    x = (5 * rng.standard_normal((M, D)) + 12).astype(dtype)
    w, b = rng.standard_normal(D).astype(dtype), rng.standard_normal(D).astype(dtype)
    dy = rng.standard_normal((M, D)).astype(dtype)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    y, mean, rstd = F.layer_norm(x, (D,), w, b)
    yr, mr, rr = _layer_norm_ref(x, w, b)
    np.testing.assert_allclose(y, yr, **tol)
    np.testing.assert_allclose(mean, mr, **tol)
    np.testing.assert_allclose(rstd, rr, **tol)
    gw, gb = np.ones(D, dtype), np.ones(D, dtype)  # accumulated into
    dx, _, _ = F.layer_norm_backward(dy, x, mean, rstd, w, dweight=gw, dbias=gb)
    xhat = (x - mr[:, None]) * rr[:, None]
    g = dy * w
    dxr = rr[:, None] * (g - g.mean(1, keepdims=True) - xhat * (g * xhat).mean(1, keepdims=True))
    np.testing.assert_allclose(dx, dxr, **tol)
    np.testing.assert_allclose(gw, 1 + (dy * xhat).sum(0), rtol=tol["rtol"] * 10, atol=tol["atol"] * 10 * M)
    np.testing.assert_allclose(gb, 1 + dy.sum(0), rtol=tol["rtol"] * 10, atol=tol["atol"] * 10 * M)


def test_layer_norm_float32_accuracy_at_mean_1e6():
    rng = np.random.default_rng(0)
    x = (1e6 + rng.standard_normal((64, 1024))).astype(np.float32)
    _, mean, rstd = F.layer_norm(x, (1024,))
    xd = x.astype(np.float64)
    std = np.sqrt(xd.var(1))
    assert np.max(np.abs(mean - xd.mean(1)) / std) < 1e-1  # float32 resolution at 1e6 is 0.06
    assert np.max(np.abs(rstd * np.sqrt(xd.var(1) + 1e-5) - 1)) < 1e-5


def test_layer_norm_module_fast_path_matches_general_path():
    rng = np.random.default_rng(0)
    ln = nn.LayerNorm(64)
    ln.weight.data[...] = rng.standard_normal(64)
    ln.bias.data[...] = rng.standard_normal(64)
    x = rng.standard_normal((32, 64)).astype(np.float32)
    yr, _, _ = _layer_norm_ref(x, ln.weight.data, ln.bias.data)
    np.testing.assert_allclose(ln(x), yr, rtol=1e-5, atol=1e-5)        # fast path
    np.testing.assert_allclose(ln(np.asfortranarray(x)), yr, rtol=1e-5, atol=1e-5)  # coerced
    np.testing.assert_allclose(ln(x[None]), yr[None], rtol=1e-5, atol=1e-5)         # 3-D
    ln(x)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    g = dy * ln.weight.data
    xhat = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    dxr = (g - g.mean(1, keepdims=True) - xhat * (g * xhat).mean(1, keepdims=True)) / \
        np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln.backward(dy), dxr, rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="dtype"):
        ln(x.astype(np.float64))
    with pytest.raises(ValueError):
        ln(rng.standard_normal((32, 63)).astype(np.float32))
    ln.weight.data = ln.weight.data * 2  # a replaced array is used, not a stale one
    np.testing.assert_allclose(ln(x), (yr - ln.bias.data) * 2 + ln.bias.data, rtol=1e-4, atol=1e-4)
    no_affine = nn.LayerNorm(64, elementwise_affine=False)
    with pytest.raises(TypeError, match="dtype"):
        no_affine(x.astype(np.float64))


@pytest.mark.parametrize("B,K,N", [(512, 512, 10), (128, 1024, 512), (3, 7, 2)])
def test_linear_thread_choice_keeps_results_and_setting(threads, B, K, N):
    rng = np.random.default_rng(B)
    x = rng.standard_normal((B, K)).astype(np.float32)
    w = rng.standard_normal((K, N)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    dy = rng.standard_normal((B, N)).astype(np.float32)
    y = F.linear(x, w, b)
    np.testing.assert_allclose(y, x.astype(np.float64) @ w + b, rtol=1e-4, atol=1e-3)
    dx, dw, db = F.linear_backward(dy, x, w)
    np.testing.assert_allclose(dx, dy.astype(np.float64) @ w.T, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dw, x.T.astype(np.float64) @ dy, rtol=1e-4, atol=1e-3)
    assert normreg.get_num_threads() == threads


def test_copy_helper():
    x = np.arange(100000, dtype=np.float32)
    out = np.empty_like(x)
    _C.copy_f32(out, x, 2)
    np.testing.assert_array_equal(out, x)
    with pytest.raises(ValueError, match="nthreads"):
        _C.copy_f32(out, x, 0)


@pytest.mark.parametrize("shape", [(3, 5), (33, 64), (1000, 100), (300, 1500), (7, 3, 9)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_channel_blocks(threads, shape, dtype):
    rng = np.random.default_rng(shape[1])
    x = (5 * rng.standard_normal(shape) + 12).astype(dtype)
    C = shape[1]
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    rm, rv = np.zeros(C, dtype), np.ones(C, dtype)
    y, sm, sr = F.batch_norm(x, rm, rv, w, b, training=True)
    ax = (0,) if x.ndim == 2 else (0, 2)
    bc = (lambda v: v) if x.ndim == 2 else (lambda v: v[:, None])
    xd = x.astype(np.float64)
    mu, var = xd.mean(ax), xd.var(ax)
    r = 1 / np.sqrt(var + 1e-5)
    n = x.size / C
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, (xd - bc(mu)) * bc(r * w) + bc(b), **tol)
    np.testing.assert_allclose(rm, 0.1 * mu, **tol)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * var * n / (n - 1), **tol)
    dx, dw, db = F.batch_norm_backward(dy, x, sm, sr, w)
    xh = (xd - bc(mu)) * bc(r)
    sdy, sdx = dy.sum(ax), (dy * xh).sum(ax)
    np.testing.assert_allclose(dx, bc(w * r) * (dy - bc(sdy) / n - xh * bc(sdx) / n),
                               rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    np.testing.assert_allclose(dw, sdx, rtol=tol["rtol"] * 10, atol=tol["atol"] * 100)
    np.testing.assert_allclose(db, sdy, rtol=tol["rtol"] * 10, atol=tol["atol"] * 100)
