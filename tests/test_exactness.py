"""float32 exactness where float32 arithmetic is hardest (issue 11, items 2 to 4).

- Softmax cross-entropy's gradient at logits offset by up to 3e4, and equal logits.
- The backward of every mean-centering norm (LayerNorm, BatchNorm1d/2d, SyncBatchNorm,
  GroupNorm, InstanceNorm) at means up to 1e6 with standard deviations 1 and 0.01.
- Extreme but finite input, [3e38, -3e38, 1e38, 0] and others, in one row (channel, group)
  of every norm, forward and backward.

Each result is compared with the float64 NumPy references of tests/reference/ applied to
the same float32 input, as max |error| / max |reference| over the array (or the row that holds
the extreme values); for dx the denominator is at least max |rstd w dy|, the size of the
terms it is the sum of (with 2 values per row they cancel to ~0, and so does any relative
measure). The stated tolerances are RELIABILITY.md's; the measured errors are what
``python scripts/exactness.py`` prints.
"""

import os

import numpy as np
import pytest
import reference as R
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from normreg import distributed, nn
from normreg import functional as F

pytestmark = pytest.mark.sanitize

# max |error| / max |reference|. y: float32's forward accuracy over rows of up to 1000 values
# (measured at most 4.1e-7 in the optimized build, 2.3e-6 where the sums are not vectorized,
# as in the -O1 sanitizer build); dx: within 10x of y's error (the goal), at least 1e-6;
# dw and db sum over the batch. Softmax: element-wise.
TOL_Y = 1e-5
TOL = 1e-6
TOL_PARAMS = 1e-5
# the extreme row's dx is ~ rstd ~ 1e-39: subnormal in float32, 20 bits or fewer
TOL_SUBNORMAL = 1e-5
# examples per property test: NORMREG_PROPERTY_EXAMPLES (as reliability/test_properties.py),
# default 60
PROPERTY = settings(
    max_examples=int(os.environ.get("NORMREG_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def rel(a, ref, floor=0.0):
    """max |a - ref| / max(max |ref|, floor) in float64; inf if a holds a NaN or Inf."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    assert a.shape == ref.shape
    if not np.all(np.isfinite(a)):
        return np.inf
    scale = max(float(np.max(np.abs(ref), initial=0.0)), floor)
    return float(np.max(np.abs(a - ref)) / scale) if scale > 0 else float(np.max(np.abs(a)))


def f64(a):
    return np.asarray(a, np.float64)


# ---- softmax cross-entropy --------------------------------------------------------------


def softmax_grad(z, labels, dloss=1.0):
    """float64 gradient of the mean cross-entropy on the (float32) logits z: the reference's,
    with the label's entry p - 1 taken as minus the other probabilities' sum (p - 1 itself
    cancels in float64 too when p is within 1e-11 of 1)."""
    g = R.cross_entropy_backward(f64(z), labels, dloss)
    rows = np.arange(len(labels))
    p = np.exp(f64(z) - R.logsumexp(f64(z))[:, None])
    p[rows, labels] = 0
    g[rows, labels] = -dloss * p.sum(axis=1) / len(labels)
    return g


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e4, 3e4, -1e4])
@pytest.mark.parametrize("K", [3, 10, 100])
def test_cross_entropy_gradient_at_offset_logits(offset, K):
    """exp(z - lse) with lse rounded to float32 erred by 4.8e-4 at 1e4 (9.8e-4 at 3e4)."""
    rng = np.random.default_rng(K)
    z = (offset + rng.standard_normal((64, K))).astype(np.float32)
    labels = rng.integers(0, K, 64)
    loss, lse = F.cross_entropy(z, labels)
    rloss, _ = R.cross_entropy(f64(z), labels)
    assert loss == pytest.approx(rloss, rel=1e-9, abs=1e-9)  # the loss itself: double
    dz = F.cross_entropy_backward(z, labels, lse, 0.5)
    ref = softmax_grad(z, labels, 0.5)
    assert np.max(np.abs(dz - ref) / np.abs(ref)) < TOL  # element-wise: every probability


def test_cross_entropy_equal_logits_are_exactly_uniform():
    """Three equal logits of -1e4 gave p = 0.3333265."""
    z = np.full((4, 3), -1e4, np.float32)
    labels = np.array([0, 1, 2, 0])
    loss, lse = F.cross_entropy(z, labels)
    assert loss == pytest.approx(np.log(3), rel=1e-12)
    dz = F.cross_entropy_backward(z, labels, lse)
    p = dz * 4 + np.eye(3, dtype=np.float64)[labels]
    np.testing.assert_allclose(p, 1 / 3, rtol=2e-7)


@PROPERTY
@given(
    offset=st.floats(-3e4, 3e4),
    K=st.integers(2, 40),
    B=st.integers(1, 9),
    spread=st.sampled_from([0.1, 1.0, 5.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_cross_entropy_gradient_property(offset, K, B, spread, seed):
    """Element-wise, each entry within (|z - lse| + 8) 6e-8 relative, the row's largest
    |z - lse| for the label's entry: exp of z - lse rounded to float32 can do no better
    (1e-6 for |z - lse| <= 8, whatever the offset)."""
    rng = np.random.default_rng(seed)
    z = (offset + spread * rng.standard_normal((B, K))).astype(np.float32)
    labels = rng.integers(0, K, B)
    _, lse = F.cross_entropy(z, labels)
    dz = F.cross_entropy_backward(z, labels, lse)
    ref = softmax_grad(z, labels)
    span = np.abs(f64(z) - R.logsumexp(f64(z))[:, None])
    bound = 6e-8 * (span + 8)
    bound[np.arange(B), labels] = 6e-8 * (span.max(axis=1) + 8)
    tiny = np.abs(ref) < 1e-37  # below float32's normal range: no relative accuracy left
    assert np.all((np.abs(dz - ref) <= bound * np.abs(ref)) | tiny)


# ---- large mean: the norms' backward ----------------------------------------------------

MEANS = [0.0, 1e2, 1e4, 1e6, -1e6]
STDS = [1.0, 0.01]


def terms(rstd, dy, w):
    """|rstd w dy| element-wise in float64 (rstd, w broadcast to dy's shape)."""
    return np.abs(f64(rstd) * f64(w) * f64(dy))


def channels(v, x):
    """A per-channel vector shaped to broadcast over (N, C, *) x."""
    return np.asarray(v).reshape((1, -1) + (1,) * (x.ndim - 2))


def groups(rstd, x):
    """(N, G) per-group values broadcast over (N, C, *) x."""
    N, G = rstd.shape
    return np.repeat(rstd, x.shape[1] // G, axis=1).reshape((N, x.shape[1]) + (1,) * (x.ndim - 2))


def assert_forward_backward(y, ry, dx, rdx, term):
    """y within TOL_Y; dx within 10x of y's error (or TOL), relative to max(|dx|, term)."""
    err_y, err_dx = rel(y, ry), rel(dx, rdx, term)
    assert err_y < TOL_Y
    assert err_dx <= max(10 * err_y, TOL), (err_dx, err_y)


def layer_norm_case(x, dy, w, b):
    y, mean, rstd = F.layer_norm(x, x.shape[-1], w, b)
    dx, dw, db = F.layer_norm_backward(dy, x, mean, rstd, w)
    ry, _, rr = R.layer_norm(f64(x), (x.shape[-1],), f64(w), f64(b))
    rdx, rdw, rdb = R.layer_norm_backward(f64(dy), f64(x), (x.shape[-1],), f64(w))
    return (y, dx, dw, db), (ry, rdx, rdw, rdb), terms(rr[:, None], dy, w)


def batch_norm_case(x, dy, w, b):
    x3, dy3 = x.reshape(x.shape[0], x.shape[1], -1), dy.reshape(x.shape[0], x.shape[1], -1)
    y, mean, rstd = F.batch_norm(x3 if x.ndim == 4 else x, None, None, w, b, training=True)
    dx, dw, db = F.batch_norm_backward(
        dy3 if x.ndim == 4 else dy, x3 if x.ndim == 4 else x, mean, rstd, w, training=True
    )
    y, dx = y.reshape(x.shape), dx.reshape(x.shape)
    # (N, C, H, W) for BatchNorm2d, computed as (N, C, H W)
    ry, _, _, _, rr = R.batch_norm_train(f64(x), f64(w), f64(b))
    rdx, rdw, rdb = R.batch_norm_train_backward(f64(dy), f64(x), f64(w))
    return (y, dx, dw, db), (ry, rdx, rdw, rdb), terms(channels(rr, x), dy, channels(w, x))


def sync_batch_norm_case(x, dy, w, b):
    # no running estimates: a variance of 1e76 has none in float32 (the layer says so)
    layer = distributed.SyncBatchNorm(x.shape[1], track_running_stats=False, comm=distributed.LocalComm())
    layer.weight.data[...] = w
    layer.bias.data[...] = b
    y = layer(x)
    dx = layer.backward(dy)
    ry, _, _, _, rr = R.batch_norm_train(f64(x), f64(w), f64(b))
    rdx, rdw, rdb = R.batch_norm_train_backward(f64(dy), f64(x), f64(w))
    return (
        (y, dx, layer.weight.grad, layer.bias.grad),
        (ry, rdx, rdw, rdb),
        terms(channels(rr, x), dy, channels(w, x)),
    )


def group_norm_case(G):
    def case(x, dy, w, b):
        y, mean, rstd = F.group_norm(x, G, w, b)
        dx, dw, db = F.group_norm_backward(dy, x, mean, rstd, w)
        ry, _, rr = R.group_norm(f64(x), G, f64(w), f64(b))
        rdx, rdw, rdb = R.group_norm_backward(f64(dy), f64(x), G, f64(w))
        return (y, dx, dw, db), (ry, rdx, rdw, rdb), terms(groups(rr, x), dy, channels(w, x))

    return case


def instance_norm_case(x, dy, w, b):
    layer = nn.InstanceNorm1d(x.shape[1], affine=True)
    layer.weight.data[...] = w
    layer.bias.data[...] = b
    y = layer(x)
    dx = layer.backward(dy)
    C = x.shape[1]
    ry, _, rr = R.group_norm(f64(x), C, f64(w), f64(b))
    rdx, rdw, rdb = R.group_norm_backward(f64(dy), f64(x), C, f64(w))
    return (
        (y, dx, layer.weight.grad, layer.bias.grad),
        (ry, rdx, rdw, rdb),
        terms(groups(rr, x), dy, channels(w, x)),
    )


# (name, case, input shape, channel axis or -1 for the last axis)
NORMS = [
    ("LayerNorm D=64 (short rows)", layer_norm_case, (64, 64), -1),
    ("LayerNorm D=256", layer_norm_case, (96, 256), -1),
    ("LayerNorm D=1000", layer_norm_case, (32, 1000), -1),
    ("BatchNorm1d (N, C)", batch_norm_case, (256, 24), 1),
    ("BatchNorm1d (N, C, L)", batch_norm_case, (16, 8, 33), 1),
    ("BatchNorm2d", batch_norm_case, (8, 6, 5, 7), 1),
    ("SyncBatchNorm", sync_batch_norm_case, (16, 8, 12), 1),
    ("GroupNorm", group_norm_case(4), (6, 16, 40), 1),
    ("InstanceNorm1d", instance_norm_case, (6, 16, 40), 1),
]


def params(shape, axis, rng):
    n = shape[axis]
    return (rng.uniform(0.5, 1.5, n).astype(np.float32), rng.standard_normal(n).astype(np.float32))


def check_case(case, x, axis, rng, check_params=True):
    """Runs ``case`` on x (cast to float32) with a random dy and affine parameters drawn from
    rng: y and dx within the bound of assert_forward_backward, and (check_params) dweight and
    dbias within TOL_PARAMS."""
    x = x.astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = params(x.shape, axis, rng)
    (y, dx, dw, db), (ry, rdx, rdw, rdb), term = case(x, dy, w, b)
    assert_forward_backward(y, ry, dx, rdx, term.max())
    if check_params:
        assert rel(dw, rdw) < TOL_PARAMS and rel(db, rdb) < TOL_PARAMS


@pytest.mark.parametrize("std", STDS)
@pytest.mark.parametrize("mean", MEANS)
@pytest.mark.parametrize("name,case,shape,axis", NORMS, ids=[n[0] for n in NORMS])
def test_norm_backward_at_large_mean(name, case, shape, axis, mean, std):
    """dx erred by up to 1.3e-2 at mean 1e6 (the backward used the mean rounded to float32)
    while y stayed at 1e-7; now dx is within 1e-6, as y."""
    rng = np.random.default_rng(int(abs(mean)) % 1000 + int(1 / std))
    check_case(case, mean + std * rng.standard_normal(shape), axis, rng)


@pytest.mark.parametrize("name,case,shape,axis", NORMS, ids=[n[0] for n in NORMS])
def test_norm_backward_mixed_means(name, case, shape, axis):
    """Rows (channels, groups) at means 0, 1e6 and -3e4 in one batch: the mean's correction,
    chosen per thread range (LayerNorm), per group or per call, must serve them all."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape)
    means = np.array([0.0, 1e6, -3e4])
    if axis == -1:
        x += means[np.arange(shape[0]) % 3][:, None]
    else:
        x += channels(means[np.arange(shape[1]) % 3], x)
    check_case(case, x, axis, rng)


# x = mean + 10**log_std randn: a large mean against a small spread
LARGE_MEAN = dict(mean=st.floats(-1e6, 1e6), log_std=st.floats(-2, 2), seed=st.integers(0, 2**32 - 1))


@PROPERTY
@given(**LARGE_MEAN, rows=st.integers(1, 40), D=st.integers(2, 300))
def test_layer_norm_backward_large_mean_property(mean, log_std, rows, D, seed):
    rng = np.random.default_rng(seed)
    check_case(layer_norm_case, mean + 10.0**log_std * rng.standard_normal((rows, D)), -1, rng, False)


@PROPERTY
@given(**LARGE_MEAN, N=st.integers(2, 40), C=st.integers(1, 9), L=st.integers(1, 5))
def test_batch_norm_backward_large_mean_property(mean, log_std, N, C, L, seed):
    rng = np.random.default_rng(seed)
    check_case(batch_norm_case, mean + 10.0**log_std * rng.standard_normal((N, C, L)), 1, rng, False)


# ---- extreme but finite values ----------------------------------------------------------

EXTREMES = {
    "issue": [3e38, -3e38, 1e38, 0.0],  # sums of squares overflow
    "spread beyond max": [3e38, 3e38, 3e38, -3e38],  # x - mean itself overflows float32
    "large": [1e25, -2e25, 3e24, 5e25],  # squares overflow, values far from the max
}


def rms_norm_case(x, dy, w, b):
    y, rstd = F.rms_norm(x, x.shape[-1], w, 1e-6)
    dx, dw = F.rms_norm_backward(dy, x, rstd, w)
    D = x.shape[-1]
    ry, rr = R.rms_norm(f64(x), D, f64(w), 1e-6)
    rdx, rdw = R.rms_norm_backward(f64(dy), f64(x), D, f64(w), 1e-6)
    rr = rr[:, None]
    return (y, dx, dw, dw), (ry, rdx, rdw, rdw), terms(rr, dy, w)


EXTREME_NORMS = NORMS + [
    ("RMSNorm", rms_norm_case, (64, 64), -1),
    ("RMSNorm D=1000", rms_norm_case, (8, 1000), -1),
]


def extreme_input(shape, axis, values, rng):
    """Normal data with `values` among the first values normalized together (row 0, channel 0
    or sample 0's first group); returns x and the index of that row / channel / group."""
    x = rng.standard_normal(shape).astype(np.float32)
    if axis == 1 and len(shape) >= 2 and shape[0] > 8:  # batch norm: channel 0
        x[:, 0].flat[: len(values)] = values
        return x, (slice(None), 0)
    x.flat[: len(values)] = values  # the first row, or sample 0's first group
    return x, (0,)


@pytest.mark.parametrize("values", list(EXTREMES.values()), ids=list(EXTREMES))
@pytest.mark.parametrize("name,case,shape,axis", EXTREME_NORMS, ids=[n[0] for n in EXTREME_NORMS])
def test_norm_extreme_finite_values(name, case, shape, axis, values):
    """Where float64 is finite, so is float32: LayerNorm gave NaN, BatchNorm -inf and RMSNorm
    zeros for [3e38, -3e38, 1e38, 0]. The other rows (channels, groups) are unaffected."""
    rng = np.random.default_rng(7)
    x, part = extreme_input(shape, axis, values, rng)
    dy = rng.standard_normal(shape).astype(np.float32)
    w, b = params(shape, axis if axis != -1 else -1, rng)
    if name.startswith("GroupNorm"):
        part = (0, slice(0, shape[1] // 4))
    (y, dx, dw, db), (ry, rdx, rdw, rdb), term = case(x, dy, w, b)
    term = np.broadcast_to(term, x.shape)
    rest = np.ones(x.shape, bool)
    rest[part] = False
    for out, ref, what in ((y, ry, "y"), (dx, rdx, "dx")):
        assert np.all(np.isfinite(out)), what
        # the part holding the extreme values, and everything else
        floor = 0.0 if what == "y" else term[part].max()
        assert rel(out[part], ref[part], floor) < (TOL_Y if what == "y" else TOL_SUBNORMAL), what
        floor = 0.0 if what == "y" else term[rest].max()
        assert rel(out[rest], ref[rest], floor) < TOL_Y, what
    for out, ref in ((dw, rdw), (db, rdb)):
        assert np.all(np.isfinite(out))
        assert rel(out, ref) < TOL_PARAMS


@pytest.mark.parametrize("D", [64, 200])
def test_layer_norm_extreme_rows_among_many_threads(nthreads, D):
    """A few extreme rows in a batch split between threads (at the split too): each redone,
    the rest untouched, dweight and dbias whole."""
    rng = np.random.default_rng(3)
    M = 4 * (65536 // D)  # enough bytes for two threads
    x = rng.standard_normal((M, D)).astype(np.float32)
    for i in (0, 101, M // 2 - 1, M // 2, M - 1):
        x[i, :4] = EXTREMES["issue"]
    dy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = params(x.shape, -1, rng)
    (y, dx, dw, db), (ry, rdx, rdw, rdb), term = layer_norm_case(x, dy, w, b)
    assert rel(y, ry) < TOL_Y
    for i in range(M):
        assert rel(dx[i], rdx[i], term[i].max()) < TOL_SUBNORMAL
    assert rel(dw, rdw) < TOL_PARAMS and rel(db, rdb) < TOL_PARAMS


@pytest.mark.parametrize("kind", ["layer", "group", "rms"])
def test_tiny_variance_without_eps(kind):
    """Values of 1e-30 with eps = 0: their squares underflow float32; float64 is finite."""
    rng = np.random.default_rng(4)
    x = (1e-30 * rng.standard_normal((4, 32))).astype(np.float32)
    if kind == "layer":
        y, _, _ = F.layer_norm(x, 32, eps=0.0)
        ry = R.layer_norm(f64(x), (32,), eps=0.0)[0]
    elif kind == "group":
        y, _, _ = F.group_norm(x.reshape(4, 4, 8), 2, eps=0.0)
        ry = R.group_norm(f64(x).reshape(4, 4, 8), 2, eps=0.0)[0]
    else:
        y, _ = F.rms_norm(x, 32, eps=0.0)
        ry = R.rms_norm(f64(x), 32, eps=0.0)[0]
    assert rel(y, ry) < TOL_Y


@pytest.mark.parametrize("v", [np.nan, np.inf])
def test_extreme_paths_keep_nan_and_inf_where_they_were(v):
    """A NaN/Inf row stays NaN (the wide path declines it); an extreme row next to it is
    redone; the other rows are exact."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    x[2, 5] = v
    x[3, :4] = EXTREMES["issue"]
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, mean, rstd = F.layer_norm(x, 64)
    dx, _, _ = F.layer_norm_backward(dy, x, mean, rstd)
    assert np.all(np.isnan(y[2])) and np.all(np.isnan(dx[2]))
    keep = np.arange(8) != 2
    ry = R.layer_norm(f64(x[keep]), (64,))[0]
    rdx = R.layer_norm_backward(f64(dy[keep]), f64(x[keep]), (64,))[0]
    assert rel(y[keep], ry) < TOL_Y
    assert rel(dx[keep], rdx) < TOL_SUBNORMAL


@pytest.mark.parametrize("D", [2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 20, 37])
@pytest.mark.parametrize("v", [np.nan, np.inf])
def test_rows_shorter_than_a_vector_stay_apart(D, v):
    """Rows of 2 to 15 values share a vector register (several rows a vector, or one a
    vector with lanes past the row), and longer rows end in a partial vector: a NaN or Inf
    row (its last value), extreme rows and rows at a large mean beside ordinary ones, each
    row as the float64 reference gives it alone, in every position of the vector and of the
    tail."""
    rng = np.random.default_rng(6)
    for M in (16, 19):
        x = rng.standard_normal((M, D)).astype(np.float32)
        x[2, D - 1] = v
        x[3] = np.resize(EXTREMES["issue"], D)
        x[6] = np.resize(EXTREMES["large"], D)
        x[9] = 1e6 + x[9]
        x[M - 1] = np.resize(EXTREMES["spread beyond max"], D)
        w, b = params(x.shape, -1, rng)
        y, mean, rstd = F.layer_norm(x, D, w, b)
        assert np.all(np.isnan(y[2]))
        keep = np.arange(M) != 2
        ry, rmean, rrstd = R.layer_norm(f64(x[keep]), (D,), f64(w), f64(b))
        assert rel(y[keep], ry) < TOL_Y
        assert np.max(np.abs(rstd[keep] / rrstd - 1)) < TOL_Y
        assert np.all(np.abs(mean[keep] - rmean) <= 1e-6 * np.abs(rmean) + 1e-6 / rrstd)


@pytest.mark.parametrize("G", [4, 5, 8, 3, 2])
def test_small_groups_stay_apart(G):
    """GroupNorm's groups of 2 to 8 values share vector registers (of 9 to 15, one a
    vector): an extreme group and a
    group at a large mean among ordinary ones, each as the float64 reference gives it; a NaN
    group stays NaN without touching the others."""
    rng = np.random.default_rng(8)
    C = {5: 10, 3: 15, 2: 24}.get(G, 16)
    x = rng.standard_normal((21, C, 1)).astype(np.float32)
    cg = C // G
    x[3, :cg, 0] = np.resize(EXTREMES["issue"], cg)
    x[7, cg : 2 * cg, 0] = 1e6 + x[7, cg : 2 * cg, 0]
    x[12, -cg:, 0] = np.resize(EXTREMES["large"], cg)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = params(x.shape, 1, rng)
    y, mean, rstd = F.group_norm(x, G, w, b)
    dx, dw, db = F.group_norm_backward(dy, x, mean, rstd, w)
    ry, _, rrstd = R.group_norm(f64(x), G, f64(w), f64(b))
    rdx, rdw, rdb = R.group_norm_backward(f64(dy), f64(x), G, f64(w))
    assert rel(y, ry) < TOL_Y
    # dx group by group, against the size of its terms rstd |dy w| (a group of two values
    # has dx ~ 0 in exact arithmetic: its float32 values are that size's rounding)
    for n in range(x.shape[0]):
        for g in range(G):
            c = slice(g * cg, (g + 1) * cg)
            term = rrstd[n, g] * np.abs(dy[n, c, 0] * w[c]).max()
            assert rel(dx[n, c], rdx[n, c], term) < TOL_SUBNORMAL, (n, g)
    assert rel(dw, rdw) < TOL_PARAMS and rel(db, rdb) < TOL_PARAMS
    x[5, :cg, 0] = np.nan
    y, mean, rstd = F.group_norm(x, G, w, b)
    dx, _, _ = F.group_norm_backward(dy, x, mean, rstd, w)
    assert np.all(np.isnan(y[5, :cg])) and np.all(np.isnan(dx[5, :cg]))
    keep = np.ones(x.shape, bool)
    keep[5, :cg] = False
    assert np.all(np.isfinite(y[keep])) and np.all(np.isfinite(dx[keep]))
    assert rel(y[keep], ry[keep]) < TOL_Y
