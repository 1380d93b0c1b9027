"""Softmax cross-entropy (mean reduction): functional and SoftmaxLoss against
reference.cross_entropy in float32 and float64, huge logits, label dtypes, central
differences (normreg.testing.gradcheck), PyTorch when installed."""

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, GRADCHECK_TOL, LAYOUTS, assert_close, layout

from normreg import _C, nn
from normreg import functional as F
from normreg.testing import gradcheck


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,K", [(5, 3), (1, 4), (6, 1), (1, 1), (64, 10), (300, 1000)])
def test_forward_backward(rng, dtype, B, K):
    z = (3 * rng.standard_normal((B, K))).astype(dtype)
    labels = rng.integers(0, K, B)
    loss, lse = F.cross_entropy(z, labels)
    rloss, rlse = R.cross_entropy(z, labels)
    assert isinstance(loss, float)
    assert lse.dtype == dtype and lse.shape == (B,)
    assert_close(loss, rloss, dtype)
    assert_close(lse, rlse, dtype)
    dz = F.cross_entropy_backward(z, labels, lse)
    assert dz.dtype == dtype and dz.shape == (B, K)
    assert_close(dz, R.cross_entropy_backward(z, labels), dtype, scale=1.0 / B)
    dz2 = F.cross_entropy_backward(z, labels, lse, 2.5)
    assert_close(dz2, R.cross_entropy_backward(z, labels, 2.5), dtype, scale=1.0 / B)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stable_for_huge_logits(dtype):
    z = np.array([[1000.0, 0.0, -1000.0], [-5e3, 5e3, 5e3], [80.0, 90.0, 100.0]], dtype=dtype)
    labels = np.array([0, 1, 0])
    loss, lse = F.cross_entropy(z, labels)
    assert np.isfinite(loss) and np.isfinite(lse).all()
    assert_close(loss, R.cross_entropy(z, labels)[0], dtype)
    dz = F.cross_entropy_backward(z, labels, lse)
    assert np.isfinite(dz).all()
    # softmax(z) is only known to the precision of z itself: |z| * eps absolute
    atol = 2 * np.abs(z).max() * np.finfo(dtype).eps
    np.testing.assert_allclose(dz, R.cross_entropy_backward(z, labels), rtol=0, atol=atol)


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8, np.int16])
def test_label_dtypes(rng, label_dtype):
    z = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6).astype(label_dtype)
    assert_close(F.cross_entropy(z, labels)[0], R.cross_entropy(z, labels.astype(np.int64))[0], np.float64)
    assert_close(F.cross_entropy(z, list(labels))[0], R.cross_entropy(z, labels)[0], np.float64)


@pytest.mark.parametrize("B,K", [(4, 3), (1, 5), (3, 1)])
def test_gradcheck(rng, B, K):
    z = 5 * rng.standard_normal((B, K)) + 12
    labels = rng.integers(0, K, B)
    dloss = float(rng.standard_normal())

    def forward(z, labels):
        return np.array(F.cross_entropy(z, labels)[0])

    def backward(dy, z, labels):
        _, lse = F.cross_entropy(z, labels)
        return F.cross_entropy_backward(z, labels, lse, float(dy)), None

    assert gradcheck(forward, (z, labels), backward=backward, dy=np.array(dloss), **GRADCHECK_TOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_module(rng, dtype):
    fn = nn.SoftmaxLoss()
    assert nn.CrossEntropyLoss is nn.SoftmaxLoss
    z = rng.standard_normal((7, 5)).astype(dtype)
    labels = rng.integers(0, 5, 7)
    loss = fn(z, labels)
    assert_close(loss, R.cross_entropy(z, labels)[0], dtype)
    assert_close(fn.backward(), R.cross_entropy_backward(z, labels), dtype, scale=1 / 7)
    fn(z, labels)  # each backward takes one forward
    assert_close(fn.backward(3.0), R.cross_entropy_backward(z, labels, 3.0), dtype, scale=1 / 7)


@pytest.mark.parametrize("kind", LAYOUTS)
def test_every_layout(rng, kind):
    """The plain call (the kernels on the arrays as they are, or the checked path that
    converts them first) against the reference on every layout of logits, labels and lse,
    through the functions and the module; the inputs unchanged."""
    z = (3 * rng.standard_normal((9, 6))).astype(np.float32)
    labels = rng.integers(0, 6, 9)
    rloss, rlse = R.cross_entropy(z, labels)
    rdz = R.cross_entropy_backward(z, labels, 2.0)
    zl, ll = layout(z, kind), layout(labels, kind)
    loss, lse = F.cross_entropy(zl, ll)
    assert_close(loss, rloss, np.float32)
    assert_close(lse, rlse, np.float32)
    dz = F.cross_entropy_backward(zl, ll, layout(lse, kind), 2.0)
    assert_close(dz, rdz, np.float32, scale=1 / 9)
    fn = nn.SoftmaxLoss()
    assert_close(fn(zl, ll), rloss, np.float32)
    assert_close(fn.backward(2.0), rdz, np.float32, scale=1 / 9)
    np.testing.assert_array_equal(zl, z)
    np.testing.assert_array_equal(ll, labels)


def test_module_ignores_the_default_ignore_index(rng):
    """Labels of -100 (PyTorch's default ignore_index) leave their rows out of the plain call
    too: the mean over the other rows, no gradient for them."""
    z = rng.standard_normal((6, 4)).astype(np.float32)
    labels = np.array([1, -100, 3, 0, -100, 2])
    kept = labels != -100
    fn = nn.SoftmaxLoss()
    assert_close(fn(z, labels), R.cross_entropy(z[kept], labels[kept])[0], np.float32)
    dz = fn.backward()
    np.testing.assert_array_equal(dz[~kept], 0)
    assert_close(dz[kept], R.cross_entropy_backward(z[kept], labels[kept]), np.float32, scale=1 / 4)


def test_module_gradcheck(rng):
    z = 5 * rng.standard_normal((5, 4)) + 12
    labels = rng.integers(0, 4, 5)
    assert gradcheck(nn.SoftmaxLoss(), (z, labels), dy=np.array(0.7), **GRADCHECK_TOL)


@pytest.mark.parametrize("B,K", [(6, 4), (1, 3), (32, 10)])
def test_matches_torch(rng, B, K):
    torch = pytest.importorskip("torch")
    z = 3 * rng.standard_normal((B, K))
    labels = rng.integers(0, K, B)
    fn = nn.SoftmaxLoss()
    loss = fn(z, labels)
    dz = fn.backward()
    tz = torch.tensor(z, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tz, torch.tensor(labels))
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_labels_beyond_int64_are_reported_as_given():
    """issue 11, item 10: np.uint64(2**64 - 1) was reported as -1 (wrapped to int64)."""
    z = np.zeros((2, 3), np.float32)
    for fn in (nn.SoftmaxLoss(), lambda z, y: F.cross_entropy(z, y)):
        with pytest.raises(ValueError, match=r"labels\[1\] = 18446744073709551615 is out of range \[0, 3\)"):
            fn(z, np.array([0, 2**64 - 1], dtype=np.uint64))
    with pytest.raises(ValueError, match=r"labels\[0\] = 9223372036854775808 is out"):
        F.cross_entropy_backward(z, np.array([2**63, 0], np.uint64), np.zeros(2, np.float32))
    # in range, unsigned labels are the int64 ones
    labels = np.array([2, 0], np.uint64)
    assert F.cross_entropy(z + np.eye(2, 3, dtype=np.float32), labels)[0] == pytest.approx(
        R.cross_entropy(z + np.eye(2, 3), labels.astype(np.int64))[0], rel=1e-6
    )


# ---- the softmax's exponential (_C.exp: the loss's own, at the tier's vector width) -------


def _ulp_error(y, ref, mant_bits, min_exp):
    """|y - ref| in units of the last place of ref in a format with ``mant_bits``
    significant bits and smallest exponent ``min_exp`` (subnormals: that format's spacing)."""
    _, e = np.frexp(ref)
    return np.abs(y - ref) / np.ldexp(1.0, np.maximum(e - mant_bits, min_exp))


def test_exp_float32_whole_range():
    """Every 1021st float32 bit pattern (all signs and exponents) against NumPy's float64 exp:
    within 1 ulp where the result is finite, inf where it overflows, 0 / NaN as expf."""
    x = np.arange(0, 2**32, 1021, dtype=np.uint64).astype(np.uint32).view(np.float32)
    y = _C.exp(x, None).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = np.exp(x.astype(np.float64))
    big = ref > np.finfo(np.float32).max * (1 + 2.0**-25)  # rounds to inf in float32
    fin = np.isfinite(x) & ~big
    assert np.all(np.isinf(y[np.isfinite(x) & big]))
    err = _ulp_error(y[fin], ref[fin], 24, -149)
    assert err.max() <= 1.0, (err.max(), x[fin][np.argmax(err)])
    assert np.isnan(y[np.isnan(x)]).all()


def test_exp_float64_range():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.uniform(-745.2, 709.78, 400_000),
            rng.uniform(-1, 1, 100_000),
            rng.uniform(-745.2, -700, 100_000),
        ]
    )
    y = _C.exp(x, None)
    ref = np.exp(x)
    assert _ulp_error(y, ref, 53, -1074).max() <= 2.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_special_values(dtype):
    info = np.finfo(dtype)
    x = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            1e4,
            -1e4,
            info.max,
            -info.max,
            info.tiny,
            np.log(info.max) * 1.0001,
            np.log(info.tiny) - 5,
        ],
        dtype,
    )
    y = _C.exp(x, None)
    np.testing.assert_array_equal(y[:9], [1, 1, np.inf, 0, np.nan, np.inf, 0, np.inf, 0])
    assert y[9] == 1 and y[10] == np.inf and 0 < y[11] < info.tiny  # subnormal, not flushed
    # every length, so each vector tail is taken; the input is not modified
    for n in range(1, 40):
        v = np.linspace(-5, 5, n).astype(dtype)
        keep = v.copy()
        assert_close(_C.exp(v, None), np.exp(v.astype(np.float64)), dtype)
        np.testing.assert_array_equal(v, keep)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", [1, 3, 10, 17, 33, 200, 1000])
def test_extreme_logits(rng, dtype, K):
    """Logits whose exponentials underflow, overflow before the shift, or are -inf: the
    loss and gradient as the float64 reference's (through the vector exponential's
    clamps and tails at every row length)."""
    B = 7
    z = rng.standard_normal((B, K)) * 50
    z[0] += 1e4
    z[1] -= 1e4
    z[2, ::2] = -np.inf
    z[2, -1] = 1.0
    z[3] *= 10
    z = z.astype(dtype)
    labels = rng.integers(0, K, B)
    labels[2] = K - 1
    loss, lse = F.cross_entropy(z, labels)
    rloss, rlse = R.cross_entropy(z, labels)
    assert_close(lse, rlse, dtype)
    assert_close(loss, rloss, dtype)
    dz = F.cross_entropy_backward(z, labels, lse)
    assert np.isfinite(dz).all()
    atol = 2 * np.abs(z[np.isfinite(z)]).max() * np.finfo(dtype).eps
    np.testing.assert_allclose(dz, R.cross_entropy_backward(z, labels), rtol=0, atol=atol)


def test_nan_or_inf_logit_gives_nan_row():
    for K in (3, 40):
        for bad in (np.nan, np.inf):
            z = np.zeros((2, K), np.float32)
            z[1, K // 2] = bad
            _, lse = F.cross_entropy(z, [0, 0])
            assert np.isfinite(lse[0]) and np.isnan(lse[1])
