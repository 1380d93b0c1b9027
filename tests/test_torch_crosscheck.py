"""Optional cross-check against PyTorch (skipped when torch is not installed)."""
import numpy as np
import pytest

from normreg import functional as F, nn

torch = pytest.importorskip("torch")


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


@pytest.mark.parametrize("xshape,nshape", [((4, 6), (6,)), ((2, 3, 4), (3, 4)), ((1, 5), (5,))])
def test_layer_norm(rng, xshape, nshape):
    x = 5 * rng.standard_normal(xshape) + 12
    w, b = rng.standard_normal(nshape), rng.standard_normal(nshape)
    dy = rng.standard_normal(xshape)
    m = nn.LayerNorm(nshape, eps=1e-5, dtype=np.float64)
    m.weight.data[...] = w
    m.bias.data[...] = b
    y = m(x)
    dx = m.backward(dy)
    tx, tw, tb = _t(x), _t(w), _t(b)
    ty = torch.nn.functional.layer_norm(tx, nshape, tw, tb, eps=1e-5)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.weight.grad, tw.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.bias.grad, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 1)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm(rng, shape, momentum):
    C = shape[1]
    m = nn.BatchNorm1d(C, momentum=momentum, dtype=np.float64)
    tm = torch.nn.BatchNorm1d(C, momentum=momentum, dtype=torch.float64)
    w, b = rng.standard_normal(C), rng.standard_normal(C)
    m.weight.data[...] = w
    m.bias.data[...] = b
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(w))
        tm.bias.copy_(torch.tensor(b))
    for step in range(4):
        x = 5 * rng.standard_normal(shape) + 12
        dy = rng.standard_normal(shape)
        if step == 3:
            m.eval(); tm.eval()
        y = m(x)
        dx = m.backward(dy)
        tx = _t(x)
        ty = tm(tx)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-8, atol=1e-11)
        np.testing.assert_allclose(m.running_mean, tm.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(m.running_var, tm.running_var.numpy(), rtol=1e-12)
        np.testing.assert_allclose(m.weight.grad, tm.weight.grad.numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(m.bias.grad, tm.bias.grad.numpy(), rtol=1e-9, atol=1e-11)
    assert int(m.num_batches_tracked) == int(tm.num_batches_tracked)


@pytest.mark.parametrize("B,K", [(6, 4), (1, 3), (32, 10)])
def test_cross_entropy(rng, B, K):
    z = 3 * rng.standard_normal((B, K))
    labels = rng.integers(0, K, B)
    fn = nn.SoftmaxLoss()
    loss = fn(z, labels)
    dz = fn.backward()
    tz = _t(z)
    tloss = torch.nn.functional.cross_entropy(tz, torch.tensor(labels))
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_float32_layer_norm_and_batch_norm(rng):
    x = (5 * rng.standard_normal((16, 8)) + 12).astype(np.float32)
    y, _, _ = F.layer_norm(x, 8)
    ty = torch.nn.functional.layer_norm(torch.tensor(x), (8,))
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-4, atol=1e-5)
    y, _, _ = F.batch_norm(x, None, None, training=True)
    ty = torch.nn.functional.batch_norm(torch.tensor(x), None, None, training=True)
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-4, atol=1e-5)
