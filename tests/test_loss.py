import numpy as np
import pytest

from normreg import functional as F, nn

import reference as R
from common import DTYPES, assert_close, frozen, noncontig
from gradcheck import check_grads


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
    assert_close(F.cross_entropy(z, labels)[0], R.cross_entropy(z, labels.astype(np.int64))[0],
                 np.float64)
    assert_close(F.cross_entropy(z, list(labels))[0], R.cross_entropy(z, labels)[0], np.float64)


@pytest.mark.parametrize("B,K", [(4, 3), (1, 5), (3, 1)])
def test_gradcheck(rng, B, K):
    z = 5 * rng.standard_normal((B, K)) + 12
    labels = rng.integers(0, K, B)
    dloss = float(rng.standard_normal())
    _, lse = F.cross_entropy(z, labels)
    dz = F.cross_entropy_backward(z, labels, lse, dloss)
    check_grads(lambda: np.array(F.cross_entropy(z, labels)[0]), [z], [dz], np.array(dloss))


@pytest.mark.parametrize("dtype", DTYPES)
def test_module(rng, dtype):
    fn = nn.SoftmaxLoss()
    assert nn.CrossEntropyLoss is nn.SoftmaxLoss
    z = rng.standard_normal((7, 5)).astype(dtype)
    labels = rng.integers(0, 5, 7)
    loss = fn(z, labels)
    assert_close(loss, R.cross_entropy(z, labels)[0], dtype)
    assert_close(fn.backward(), R.cross_entropy_backward(z, labels), dtype, scale=1 / 7)
    assert_close(fn.backward(3.0), R.cross_entropy_backward(z, labels, 3.0), dtype, scale=1 / 7)


def test_module_gradcheck(rng):
    fn = nn.SoftmaxLoss()
    z = 5 * rng.standard_normal((5, 4)) + 12
    labels = rng.integers(0, 4, 5)
    fn(z, labels)
    dz = fn.backward(0.7)
    check_grads(lambda: np.array(fn(z, labels)), [z], [dz], np.array(0.7))


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_untouched_readonly_noncontiguous(rng, dtype):
    z = rng.standard_normal((6, 5)).astype(dtype)
    labels = rng.integers(0, 5, 6)
    rl, rdz = R.cross_entropy(z, labels)[0], R.cross_entropy_backward(z, labels)
    for zz, ll in [(frozen(z), frozen(labels)), (noncontig(z), noncontig(labels[None])[0])]:
        zc, lc = zz.copy(), ll.copy()
        loss, lse = F.cross_entropy(zz, ll)
        assert_close(loss, rl, dtype)
        assert_close(F.cross_entropy_backward(zz, ll, lse), rdz, dtype, scale=1 / 6)
        np.testing.assert_array_equal(zz, zc)
        np.testing.assert_array_equal(ll, lc)


def test_outputs_are_not_overwritten(rng):
    fn = nn.SoftmaxLoss()
    z = rng.standard_normal((4, 3)).astype(np.float32)
    fn(z, np.array([0, 1, 2, 0]))
    d1 = fn.backward()
    c = d1.copy()
    fn(z, np.array([2, 2, 2, 2]))
    fn.backward()
    np.testing.assert_array_equal(d1, c)
