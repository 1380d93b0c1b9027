"""trunc_normal_, orthogonal_, eye_, dirac_ and sparse_: the truncated normal's law against
its closed-form CDF and moments, orthogonality and the norms it keeps in normreg's (in, out)
Linear layout, exact identity and Dirac weights (and the identity convolution through
Conv2d), sparse_'s zero counts, reproducibility, bad arguments; PyTorch cross-checks."""

import math

import numpy as np
import pytest

import normreg
from normreg import init, nn
from normreg.nn import Parameter

N_SIGMA = 6  # tolerance on sample statistics, in standard errors
SQRT2 = math.sqrt(2.0)


# ---- trunc_normal_ ------------------------------------------------------------------------


def _phi(x):
    return 0.0 if math.isinf(x) else math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _mass(lo, hi):
    """P(lo <= Z <= hi) for Z ~ N(0, 1), with erfc in the tails (no cancellation there)."""
    if lo > 0:
        return 0.5 * (math.erfc(lo / SQRT2) - math.erfc(hi / SQRT2))
    if hi < 0:
        return _mass(-hi, -lo)
    return 0.5 * (math.erf(hi / SQRT2) - math.erf(lo / SQRT2))


def truncated_moments(mean, std, a, b):
    """Mean and variance of N(mean, std²) truncated to [a, b] (the closed forms)."""
    al, be = (a - mean) / std, (b - mean) / std
    z = _mass(al, be)
    d = (_phi(al) - _phi(be)) / z

    def xphi(x):
        return 0.0 if math.isinf(x) else x * _phi(x)

    return mean + std * d, std**2 * (1 + (xphi(al) - xphi(be)) / z - d * d)


def truncated_cdf(x, mean, std, a, b):
    al = (a - mean) / std
    return _mass(al, (x - mean) / std) / _mass(al, (b - mean) / std)


TRUNC_CASES = [
    (0.0, 1.0, -2.0, 2.0),  # PyTorch's defaults
    (0.5, 2.0, -1.0, 4.0),  # asymmetric around the mean
    (0.0, 1.0, 0.1, 0.3),  # narrow, off the mean (float32 cannot hold 0.1 or 0.3)
    (0.0, 1.0, -0.05, 0.05),  # narrow, around the mean
    (1.0, 0.5, 3.5, 1e6),  # far in the right tail, 5 std away, one-sided
    (0.0, 1.0, -7.0, -6.0),  # far in the left tail, two-sided
    (0.0, 1.0, 1.0, 1.6),  # a tail interval where a uniform proposal fits
    (-3.0, 0.01, -1e9, 1e9),  # effectively untruncated
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mean, std, a, b", TRUNC_CASES)
def test_trunc_normal_has_the_truncated_law(dtype, mean, std, a, b):
    normreg.manual_seed(11)
    x = np.empty((400, 250), dtype)
    assert init.trunc_normal_(x, mean, std, a, b) is x
    assert x.dtype == dtype
    v = x.astype(np.float64).ravel()
    n = v.size
    assert v.min() >= a and v.max() <= b  # within the Python bounds, after rounding too
    m, var = truncated_moments(mean, std, a, b)
    tol_rounding = 2 * np.finfo(dtype).eps * max(abs(a), abs(b), abs(m)) if b - a < 1e6 else 0
    assert abs(v.mean() - m) < N_SIGMA * math.sqrt(var / n) + tol_rounding
    centred = (v - v.mean()) ** 2
    assert abs(centred.mean() - var) < N_SIGMA * centred.std() / math.sqrt(n) + tol_rounding**2
    # the empirical CDF at the law's deciles, within binomial errors
    lo, hi = max(a, m - 6 * math.sqrt(var)), min(b, m + 6 * math.sqrt(var))
    for q in np.linspace(lo, hi, 11)[1:-1]:
        p = truncated_cdf(q, mean, std, a, b)
        emp = np.mean(v <= q)
        assert abs(emp - p) < N_SIGMA * math.sqrt(p * (1 - p) / n) + 1e-4, (q, emp, p)


def test_trunc_normal_edge_bounds():
    x = np.empty(1000)
    init.trunc_normal_(x, a=1.5, b=1.5)
    np.testing.assert_array_equal(x, 1.5)  # a == b: the point mass
    # bounds so many std from the mean that (a - mean) / std overflows: the near bound
    init.trunc_normal_(x, mean=3.0, std=1e-310, a=-1.0, b=1.0)
    np.testing.assert_array_equal(x, 1.0)
    init.trunc_normal_(x, mean=-3.0, std=1e-310, a=-1.0, b=1.0)
    np.testing.assert_array_equal(x, -1.0)
    # bounds closer than float32's spacing: float32(0.1) is the one float32 within them, and
    # every value is rounded onto it, not onto a neighbour outside
    one = float(np.float32(0.1))
    y = np.empty(100000, np.float32)
    init.trunc_normal_(y, mean=0.1, std=1e-8, a=one - 1e-9, b=one + 1e-9)
    np.testing.assert_array_equal(y, np.float32(0.1))


def test_trunc_normal_on_a_parameter_and_a_strided_view():
    p = Parameter(np.empty((50, 40), np.float32))
    assert init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04) is p
    assert np.abs(p.data).max() <= 0.04 and p.data.std() > 0.01
    base = np.zeros((60, 80))
    view = base[:, ::2]
    init.trunc_normal_(view, a=-1.0, b=1.0)
    assert np.all(base[:, 1::2] == 0) and np.all(np.abs(view) <= 1) and np.all(view != 0)


# ---- orthogonal_ --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (30, 30), (64, 3, 3, 3), (8, 4, 3, 3), (6, 5, 4)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_is_semi_orthogonal(dtype, shape, gain):
    w = np.empty(shape, dtype)
    assert init.orthogonal_(w, gain=gain, generator=normreg.Generator(3)) is w
    rows = shape[0]
    flat = w.reshape(rows, -1).astype(np.float64)
    gram = flat.T @ flat if rows >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(len(gram)), rtol=0, atol=1e-5 * gain**2)


def test_orthogonal_linear_keeps_norms_in_the_in_out_layout():
    rng = np.random.default_rng(0)
    # in <= out: |x @ W| = gain |x| for every x (PyTorch's (out, in) weight, out >= in, does so)
    layer = nn.Linear(32, 64, dtype=np.float64)
    init.orthogonal_(layer.weight, gain=1.5)
    init.zeros_(layer.bias)
    x = rng.standard_normal((10, 32))
    y = layer(x)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.5 * np.linalg.norm(x, axis=1), rtol=1e-12)
    # in > out: orthonormal columns; norms kept in their span, shrunk elsewhere
    w = init.orthogonal_(np.empty((64, 16)))
    xs = rng.standard_normal((5, 16)) @ w.T  # in the span of W's columns
    np.testing.assert_allclose(np.linalg.norm(xs @ w, axis=1), np.linalg.norm(xs, axis=1), rtol=1e-12)
    xg = rng.standard_normal((5, 64))
    assert np.all(np.linalg.norm(xg @ w, axis=1) < np.linalg.norm(xg, axis=1))


def test_orthogonal_is_haar_signs_corrected():
    """Without the sign correction, LAPACK's Householder QR gives Q[0, 0] = -|A00| / |A[:, 0]|,
    always negative; with it, every entry of a Haar orthogonal matrix has mean 0 and
    variance 1/n."""
    gen = normreg.Generator(5)
    qs = np.stack([init.orthogonal_(np.empty((5, 5)), generator=gen) for _ in range(2000)])
    mean, var = qs.mean(axis=0), qs.var(axis=0)
    assert np.abs(mean).max() < N_SIGMA * math.sqrt(0.2 / 2000)
    np.testing.assert_allclose(var, 0.2, atol=0.03)
    # the same for the wide case (the transpose is factorized)
    qs = np.stack([init.orthogonal_(np.empty((2, 6)), generator=gen) for _ in range(2000)])
    assert np.abs(qs.mean(axis=0)).max() < N_SIGMA * math.sqrt(1 / 6 / 2000)


# ---- eye_ and dirac_ ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (1, 1), (0, 3)])
def test_eye(shape):
    w = Parameter(np.full(shape, 7.0, np.float32))
    assert init.eye_(w) is w
    expected = np.zeros(shape, np.float32)
    for i in range(min(shape)):
        expected[i, i] = 1
    np.testing.assert_array_equal(w.data, expected)


def test_eye_linear_passes_the_first_inputs():
    x = np.arange(12.0).reshape(3, 4)
    wide = init.eye_(np.empty((4, 6)))  # (in, out): the 4 inputs, then 2 zero outputs
    np.testing.assert_array_equal(x @ wide, np.hstack([x, np.zeros((3, 2))]))
    narrow = init.eye_(np.empty((4, 2)))
    np.testing.assert_array_equal(x @ narrow, x[:, :2])


def _dirac_reference(shape, groups):
    expected = np.zeros(shape)
    per = shape[0] // groups
    centre = tuple(s // 2 for s in shape[2:])
    for g in range(groups):
        for d in range(min(per, shape[1])):
            expected[(g * per + d, d) + centre] = 1
    return expected


# (shape, groups): 3-, 4- and 5-D, out > in, out < in, groups, even and 1x1 kernels
DIRAC_CASES = [
    ((4, 4, 3, 3), 1),
    ((6, 3, 5), 1),
    ((3, 6, 3, 3), 1),
    ((4, 2, 3, 3, 3), 1),
    ((6, 2, 3, 3), 3),
    ((4, 4, 2, 4), 2),
    ((8, 3, 1, 1), 2),
    ((6, 4, 4, 2, 5), 3),
]


@pytest.mark.parametrize("shape, groups", DIRAC_CASES)
def test_dirac_values(shape, groups):
    for dtype in (np.float32, np.float64):
        w = np.full(shape, 3.0, dtype)
        assert init.dirac_(w, groups) is w
        np.testing.assert_array_equal(w, _dirac_reference(shape, groups))
    # an explicit case: out 3, in 2, kernel 3: channels 0 and 1 copied, channel 2 zero
    w = init.dirac_(np.empty((3, 2, 3)))
    assert w[0, 0, 1] == 1 and w[1, 1, 1] == 1 and w.sum() == 2


@pytest.mark.parametrize("kernel, dtype", [(3, np.float32), (5, np.float64)])
def test_dirac_conv2d_is_the_identity(kernel, dtype):
    conv = nn.Conv2d(4, 4, kernel, padding=kernel // 2, dtype=dtype)
    init.dirac_(conv.weight)
    init.zeros_(conv.bias)
    x = np.random.default_rng(1).standard_normal((2, 4, 7, 9)).astype(dtype)
    np.testing.assert_array_equal(conv(x), x)
    # more outputs than inputs: the inputs, then zero channels
    wide = nn.Conv2d(3, 5, 3, padding=1, dtype=dtype)
    init.dirac_(wide.weight)
    init.zeros_(wide.bias)
    y = wide(x[:, :3])
    np.testing.assert_array_equal(y[:, :3], x[:, :3])
    np.testing.assert_array_equal(y[:, 3:], 0)


# ---- sparse_ ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparsity, zeros", [(0.1, 5), (0.25, 13), (0.0, 0), (1.0, 50), (0.5, 25)])
def test_sparse_zeros_per_input(dtype, sparsity, zeros):
    """A (in, out) = (400, 50) weight: each input (row) has ceil(sparsity * 50) zeros."""
    w = np.empty((400, 50), dtype)
    assert init.sparse_(w, sparsity, std=0.5, generator=normreg.Generator(2)) is w
    np.testing.assert_array_equal((w == 0).sum(axis=1), zeros)
    nonzero = w[w != 0].astype(np.float64)
    if nonzero.size:
        n = nonzero.size
        assert abs(nonzero.mean()) < N_SIGMA * 0.5 / math.sqrt(n)
        assert abs(nonzero.var() - 0.25) < N_SIGMA * math.sqrt(2 * 0.25**2 / n)


def test_sparse_places_are_uniform():
    w = init.sparse_(np.empty((4000, 20)), 0.25)  # 5 zeros in each row
    per_output = (w == 0).sum(axis=0)  # each output is a zero place with probability 1/4
    assert abs(per_output - 1000).max() < N_SIGMA * math.sqrt(4000 * 0.25 * 0.75)
    first = np.argmax(w == 0, axis=1)  # not always the same places
    assert len(set(first.tolist())) > 10


def test_sparse_on_a_parameter_and_a_strided_view():
    p = Parameter(np.empty((10, 8), np.float32))
    assert init.sparse_(p, 0.5) is p
    np.testing.assert_array_equal((p.data == 0).sum(axis=1), 4)
    base = np.full((6, 20), 9.0)
    init.sparse_(base[:, ::2], 0.3)
    np.testing.assert_array_equal((base[:, ::2] == 0).sum(axis=1), 3)
    np.testing.assert_array_equal(base[:, 1::2], 9.0)


# ---- reproducibility and arguments ----------------------------------------------------------

RANDOM = [
    lambda w, g: init.trunc_normal_(w, a=-1.0, b=1.0, generator=g),
    lambda w, g: init.orthogonal_(w, generator=g),
    lambda w, g: init.sparse_(w, 0.3, std=1.0, generator=g),
]


@pytest.mark.parametrize("fill", RANDOM, ids=["trunc_normal_", "orthogonal_", "sparse_"])
def test_seeds_reproduce_and_differ(fill):
    def draw(g):
        return fill(np.empty((12, 9)), g)

    np.testing.assert_array_equal(draw(normreg.Generator(7)), draw(normreg.Generator(7)))
    assert not np.array_equal(draw(normreg.Generator(7)), draw(normreg.Generator(8)))
    normreg.manual_seed(7)
    a = draw(None)
    normreg.manual_seed(7)
    np.testing.assert_array_equal(draw(None), a)
    # one draw of the generator per call, nothing from NumPy's global generator
    g = normreg.Generator(1)
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    draw(g)
    assert g.get_state()[1] == 1
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    draw(g)
    assert g.get_state()[1] == 2


def test_bad_arguments():
    x = np.zeros((4, 4))
    cases = [
        (TypeError, "tensor must", lambda: init.trunc_normal_([1.0, 2.0])),
        (TypeError, "tensor must have a floating", lambda: init.orthogonal_(np.zeros((3, 3), np.int32))),
        (ValueError, "std must", lambda: init.trunc_normal_(x, std=0.0)),
        (ValueError, "std must", lambda: init.trunc_normal_(x, std=-1.0)),
        (ValueError, "a <= b", lambda: init.trunc_normal_(x, a=1.0, b=0.0)),
        (ValueError, "mean must", lambda: init.trunc_normal_(x, mean=float("nan"))),
        (ValueError, "b must", lambda: init.trunc_normal_(x, b=float("nan"))),
        (TypeError, "a must", lambda: init.trunc_normal_(x, a="-2")),
        (TypeError, "generator must", lambda: init.trunc_normal_(x, generator=np.random.default_rng())),
        (ValueError, "tensor must", lambda: init.orthogonal_(np.zeros(5))),
        (TypeError, "gain must", lambda: init.orthogonal_(x, gain=True)),
        (ValueError, "gain must", lambda: init.orthogonal_(x, gain=float("inf"))),
        (TypeError, "generator must", lambda: init.orthogonal_(x, generator=3)),
        (ValueError, "tensor must", lambda: init.eye_(np.zeros((2, 2, 2)))),
        (ValueError, "tensor must", lambda: init.dirac_(x)),
        (ValueError, "tensor must", lambda: init.dirac_(np.zeros((1, 1, 1, 1, 1, 1)))),
        (ValueError, "groups must", lambda: init.dirac_(np.zeros((4, 2, 3, 3)), groups=3)),
        (ValueError, "groups must", lambda: init.dirac_(np.zeros((4, 2, 3, 3)), groups=0)),
        (TypeError, "groups must", lambda: init.dirac_(np.zeros((4, 2, 3, 3)), groups=2.0)),
        (ValueError, "tensor must", lambda: init.sparse_(np.zeros((2, 3, 3)), 0.5)),
        (ValueError, "sparsity must", lambda: init.sparse_(x, 1.5)),
        (ValueError, "sparsity must", lambda: init.sparse_(x, -0.1)),
        (TypeError, "sparsity must", lambda: init.sparse_(x, None)),
        (ValueError, "std must", lambda: init.sparse_(x, 0.5, std=-0.1)),
        (TypeError, "generator must", lambda: init.sparse_(x, 0.5, generator="seed")),
    ]
    for exc, words, call in cases:
        with pytest.raises(exc, match=words):
            call()
    ro = np.zeros((3, 3))
    ro.flags.writeable = False
    for fill in (init.eye_, init.orthogonal_, init.trunc_normal_, lambda t: init.sparse_(t, 0.5)):
        with pytest.raises(ValueError, match="writeable"):
            fill(ro)
    np.testing.assert_array_equal(x, 0)  # nothing was written by a refused call


def test_empty_arrays_draw_nothing():
    g = normreg.Generator(0)
    for fill in RANDOM:
        fill(np.empty((0, 4)), g)
    assert g.get_state()[1] == 0
    init.eye_(np.empty((0, 3)))
    init.dirac_(np.empty((0, 2, 3, 3)))
    init.dirac_(np.empty((2, 2, 0, 3)))


def test_public_names():
    for name in ("trunc_normal_", "orthogonal_", "eye_", "dirac_", "sparse_"):
        assert name in init.__all__ and getattr(nn.init, name) is getattr(init, name)


# ---- PyTorch ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4)])
def test_eye_matches_torch(shape):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init.eye_(torch.empty(shape, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(init.eye_(np.empty(shape)), expected)
    # a Linear(in, out) twin: torch's (out, in) weight is the transpose of normreg's
    out_f, in_f = shape
    np.testing.assert_array_equal(init.eye_(np.empty((in_f, out_f))), expected.T)


@pytest.mark.parametrize("shape, groups", DIRAC_CASES)
def test_dirac_matches_torch(shape, groups):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init.dirac_(torch.empty(shape, dtype=torch.float32), groups).numpy()
    np.testing.assert_array_equal(init.dirac_(np.empty(shape, np.float32), groups), expected)


@pytest.mark.parametrize("in_f, out_f, sparsity", [(30, 50, 0.1), (20, 7, 0.5), (9, 40, 0.33), (5, 5, 1.0)])
def test_sparse_matches_torch_per_input(in_f, out_f, sparsity):
    """torch's (out, in) weight and normreg's (in, out) weight of one Linear: the zeros of
    each input (torch's column, normreg's row) are as many."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tw = torch.nn.init.sparse_(torch.empty(out_f, in_f), sparsity)
    w = init.sparse_(np.empty((in_f, out_f)), sparsity)
    assert w.shape == tuple(tw.T.shape)
    np.testing.assert_array_equal((w == 0).sum(axis=1), (tw == 0).sum(dim=0).numpy())


def test_orthogonal_keeps_norms_as_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((6, 16))
    tw = torch.nn.init.orthogonal_(torch.empty(40, 16, dtype=torch.float64))  # (out, in)
    w = init.orthogonal_(np.empty((16, 40)))  # (in, out)
    ty = (torch.from_numpy(x) @ tw.T).numpy()
    np.testing.assert_allclose(np.linalg.norm(x @ w, axis=1), np.linalg.norm(ty, axis=1), rtol=1e-12)


def test_trunc_normal_takes_infinite_bounds():
    """As PyTorch's: a = 0, b = inf is the half-normal (mean sqrt(2/pi), variance 1 - 2/pi);
    both infinite is the normal; an interval holding no finite number is refused."""
    x = np.empty(200_000)
    init.trunc_normal_(x, a=0.0, b=math.inf, generator=normreg.Generator().manual_seed(3))
    assert (x >= 0).all() and np.isfinite(x).all()
    assert abs(x.mean() - math.sqrt(2 / math.pi)) < 0.01
    assert abs(x.var() - (1 - 2 / math.pi)) < 0.01
    init.trunc_normal_(x, a=-math.inf, b=math.inf, generator=normreg.Generator().manual_seed(4))
    assert abs(x.mean()) < 0.01 and abs(x.var() - 1) < 0.01
    for a, b in ((math.inf, math.inf), (-math.inf, -math.inf)):
        with pytest.raises(ValueError, match="no finite number"):
            init.trunc_normal_(x, a=a, b=b)
    with pytest.raises(ValueError, match="a must be a finite real number, got nan"):
        init.trunc_normal_(x, a=math.nan)
