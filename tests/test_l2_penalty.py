"""L2 regularization: nn.l2_penalty's value and the gradient it adds (central differences),
and that loss + lam/2 ||W||^2 with plain SGD follows SGD(weight_decay=lam) step by step."""

import numpy as np
import pytest

import normreg
from normreg import nn, optim
from normreg.nn import Parameter
from normreg.testing import gradcheck

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-13)}


def test_l2_penalty_value_and_gradient():
    rng = np.random.default_rng(0)
    a, b = Parameter(3 * rng.standard_normal((4, 3))), Parameter(3 * rng.standard_normal(3))
    a.grad = np.ones_like(a.data)  # a has a gradient to add to; b has none yet
    held = a.grad
    lam = 0.3
    value = nn.l2_penalty([a, b], lam)
    assert isinstance(value, float)
    assert value == pytest.approx(lam / 2 * (np.sum(a.data**2) + np.sum(b.data**2)), rel=1e-12)
    assert a.grad is held  # added in place
    np.testing.assert_allclose(a.grad, 1.0 + lam * a.data, rtol=1e-14)
    np.testing.assert_allclose(b.grad, lam * b.data, rtol=1e-14)
    # the gradient it adds is the derivative of the value: central differences in float64

    def value_of(w):
        return np.array(nn.l2_penalty([Parameter(w)], lam))

    def added_gradient(dy, w):
        p = Parameter(w)
        nn.l2_penalty([p], lam)
        return float(dy) * p.grad

    assert gradcheck(value_of, a.data, backward=added_gradient, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="lam"):
        nn.l2_penalty([a], -0.1)
    with pytest.raises(TypeError, match=r"params\[0\]"):
        nn.l2_penalty([a.data], 0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_l2_penalty_gives_the_trajectory_of_sgd_weight_decay(dtype, momentum):
    """loss + lam/2 ||W||^2 with plain SGD == SGD(weight_decay=lam) on the loss alone."""
    lam = 1e-2
    rng = np.random.default_rng(2)
    x = (5 * rng.standard_normal((64, 8)) + 1).astype(dtype)
    y = rng.integers(0, 3, 64)
    runs = []
    for use_penalty in (True, False):
        normreg.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16, dtype=dtype), nn.ReLU(), nn.Linear(16, 3, dtype=dtype))
        opt = optim.SGD(
            model.parameters(), lr=0.05, momentum=momentum, weight_decay=0.0 if use_penalty else lam
        )
        loss_fn = nn.SoftmaxLoss()
        for _ in range(20):
            opt.zero_grad()
            loss_fn(model(x), y)
            model.backward(loss_fn.backward())
            if use_penalty:
                nn.l2_penalty(model.parameters(), lam)
            opt.step()
        runs.append([p.data.copy() for p in model.parameters()])
    for pa, pb in zip(*runs):
        np.testing.assert_allclose(pa, pb, **TOL[dtype])
