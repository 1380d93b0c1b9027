"""RMSNorm: functional and module against reference.rms_norm in float32 and float64, central
differences (normreg.testing.gradcheck), PyTorch when installed. (Empty and non-contiguous
input: with GroupNorm's in test_groupnorm.py.)"""

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, NORM_TOL, offset_randn, randomize_params, torch_forward_backward

from normreg import functional as F
from normreg import nn
from normreg.testing import gradcheck


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,normalized", [((6, 8), (8,)), ((2, 3, 4, 5), (4, 5)), ((7, 1), (1,)), ((3, 300), (300,))]
)
@pytest.mark.parametrize("affine", [True, False])
def test_forward_backward_match_numpy(dtype, shape, normalized, affine):
    r = np.random.default_rng(1)
    x = offset_randn(r, shape, dtype)
    layer = nn.RMSNorm(normalized, elementwise_affine=affine, dtype=dtype)
    randomize_params(layer, r)
    w = None if layer.weight is None else layer.weight.data
    y = layer(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y, R.rms_norm(x, normalized, w)[0], **NORM_TOL[dtype])
    dy = r.standard_normal(shape).astype(dtype)
    dx = layer.backward(dy)
    dx_ref, dw_ref = R.rms_norm_backward(dy, x, normalized, w)
    np.testing.assert_allclose(
        dx, dx_ref, rtol=NORM_TOL[dtype]["rtol"] * 10, atol=NORM_TOL[dtype]["atol"] * 10
    )
    if affine:
        np.testing.assert_allclose(
            layer.weight.grad,
            dw_ref,
            rtol=NORM_TOL[dtype]["rtol"] * 10,
            atol=NORM_TOL[dtype]["atol"] * 10 * np.sqrt(shape[0]),
        )


def test_eps_default_is_machine_epsilon():
    for dtype in DTYPES:
        assert nn.RMSNorm(4, dtype=dtype).eps is None
        x = np.zeros((2, 4), dtype=dtype)
        _, rstd = F.rms_norm(x, 4)
        np.testing.assert_allclose(rstd, 1 / np.sqrt(np.finfo(dtype).eps), rtol=1e-6)
        _, rstd = F.rms_norm(x, 4, eps=0.25)
        np.testing.assert_allclose(rstd, 2.0)


@pytest.mark.parametrize("affine", [True, False])
def test_gradcheck(affine):
    r = np.random.default_rng(2)
    layer = nn.RMSNorm((3, 4), elementwise_affine=affine, eps=1e-3, dtype=np.float64)
    randomize_params(layer, r)
    assert gradcheck(layer, offset_randn(r, (2, 3, 4)))
    w = r.standard_normal(5)
    x = offset_randn(r, (4, 5))

    def fwd(x, w):
        return F.rms_norm(x, 5, w)[0]

    def bwd(dy, x, w):
        _, rstd = F.rms_norm(x, 5, w)
        return F.rms_norm_backward(dy, x, rstd, w)

    assert gradcheck(fwd, (x, w), backward=bwd)


def test_weight_grad_accumulates():
    r = np.random.default_rng(3)
    layer = nn.RMSNorm(6, dtype=np.float64)
    x, dy = offset_randn(r, (5, 6)), r.standard_normal((5, 6))
    layer(x)
    layer.backward(dy)
    once = layer.weight.grad.copy()
    layer(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * once, rtol=1e-14)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(4)
    x = offset_randn(r, (4, 3, 8), np.float32)
    w = r.standard_normal(8).astype(np.float32)
    dy = r.standard_normal(x.shape).astype(np.float32)
    layer = nn.RMSNorm(8)
    layer.weight.data[...] = w
    tl = torch.nn.RMSNorm(8)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(w))
    ty, tdx = torch_forward_backward(tl, x, dy)
    np.testing.assert_allclose(layer(x), ty, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.backward(dy), tdx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
