"""normreg.nn.utils.clip_grad_norm_ / clip_grad_value_ against NumPy (and PyTorch)."""

import math

import numpy as np
import pytest
from helpers import set_grad

import normreg
from normreg import nn


def params_with_grads(seed=0, dtype=np.float64, scale=1.0):
    r = np.random.default_rng(seed)
    ps = []
    for shape in [(3, 4), (4,), (2, 2, 2)]:
        p = nn.Parameter(np.zeros(shape, dtype=dtype))
        set_grad(p, scale * r.standard_normal(shape))
        ps.append(p)
    return ps


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, "inf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_matches_numpy(norm_type, dtype):
    ps = params_with_grads(dtype=dtype, scale=3.0)
    before = [p.grad.astype(np.float64) for p in ps]
    flat = np.concatenate([g.ravel() for g in before])
    p = math.inf if norm_type == "inf" else norm_type
    expected = np.abs(flat).max() if p == math.inf else (np.abs(flat) ** p).sum() ** (1 / p)
    max_norm = expected / 4
    total = normreg.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(expected, rel=1e-6)
    coef = max_norm / (expected + 1e-6)
    for p_, g in zip(ps, before):
        assert p_.grad.dtype == dtype
        np.testing.assert_allclose(p_.grad, g * coef, rtol=1e-6)


def test_clip_grad_norm_leaves_small_gradients_alone():
    ps = params_with_grads(scale=0.01)
    before = [p.grad.copy() for p in ps]
    total = normreg.nn.utils.clip_grad_norm_(ps, 10.0)
    assert total < 10
    for p, g in zip(ps, before):
        np.testing.assert_array_equal(p.grad, g)


def test_clip_grad_norm_single_parameter_module_and_empty():
    from normreg.nn.utils import clip_grad_norm_

    p = nn.Parameter(np.zeros(2))
    set_grad(p, [3.0, 4.0])
    assert clip_grad_norm_(p, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad, [3 / (5 + 1e-6), 4 / (5 + 1e-6)])
    model = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2))
    model.zero_grad()
    assert clip_grad_norm_(model.parameters(), 1.0) == 0.0
    assert clip_grad_norm_([], 1.0) == 0.0
    with pytest.raises(TypeError):
        clip_grad_norm_([np.ones(3)], 1.0)


def test_clip_grad_norm_non_finite():
    ps = params_with_grads()
    ps[1].grad[0] = np.nan
    before = [p.grad.copy() for p in ps]
    with pytest.raises(RuntimeError, match="non-finite"):
        normreg.nn.utils.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    for p, g in zip(ps, before):
        np.testing.assert_array_equal(p.grad, g)
    assert math.isnan(normreg.nn.utils.clip_grad_norm_(ps, 1.0))


def test_clip_grad_value():
    ps = params_with_grads(scale=2.0)
    before = [p.grad.copy() for p in ps]
    normreg.nn.utils.clip_grad_value_(ps, 0.5)
    for p, g in zip(ps, before):
        np.testing.assert_array_equal(p.grad, np.clip(g, -0.5, 0.5))


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    for norm_type in (2.0, math.inf, 1.5):
        ps = params_with_grads(seed=3, scale=2.0)
        tps = []
        for p in ps:
            t = torch.zeros(p.shape, dtype=torch.float64, requires_grad=True)
            t.grad = torch.from_numpy(p.grad.copy())
            tps.append(t)
        total = normreg.nn.utils.clip_grad_norm_(ps, 1.0, norm_type)
        ttotal = torch.nn.utils.clip_grad_norm_(tps, 1.0, norm_type)
        assert total == pytest.approx(float(ttotal), rel=1e-12)
        for p, t in zip(ps, tps):
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("clip", ["norm", "value"])
@pytest.mark.parametrize(
    "bad_grad, words",
    [
        (np.array([3, 4, 0]), "dtype float32 or float64, got int64"),
        ([3.0, 4.0, 0.0], "numpy.ndarray.*got list"),
        (np.array([3, 4, 0], np.float16), "dtype float32 or float64, got float16"),
        (np.array([3.0, 4.0, 0.0], np.float32), "dtype float32, expected float64"),
        (np.array([3 + 0j, 4, 0]), "dtype float32 or float64, got complex128"),
    ],
)
def test_clip_grad_rejects_non_float_grads_before_changing_any(clip, bad_grad, words):
    ps = params_with_grads(scale=10.0)
    bad = nn.Parameter(np.zeros(3))
    bad.grad = bad_grad
    before = [p.grad.copy() for p in ps]
    with pytest.raises(TypeError, match=r"parameters\[3\]\.grad.*" + words):
        if clip == "norm":
            normreg.nn.utils.clip_grad_norm_([*ps, bad], 1.0)
        else:
            normreg.nn.utils.clip_grad_value_([*ps, bad], 0.1)
    for p, g in zip(ps, before):  # the gradients before the bad one were not scaled
        np.testing.assert_array_equal(p.grad, g)
    assert bad.grad is bad_grad


def test_clip_grad_norm_int_grad_is_not_silently_zeroed():
    p = nn.Parameter(np.zeros(3))
    p.grad = np.array([3, 4, 0])
    with pytest.raises(TypeError, match="grad"):
        normreg.nn.utils.clip_grad_norm_(p, 1.0)
    np.testing.assert_array_equal(p.grad, [3, 4, 0])


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_clip_grad_rejects_read_only_grads_before_changing_any(clip):
    ps = params_with_grads(scale=10.0)
    ps[1].grad.flags.writeable = False
    before = [p.grad.copy() for p in ps]
    with pytest.raises(ValueError, match=r"parameters\[1\]\.grad.*writeable"):
        if clip == "norm":
            normreg.nn.utils.clip_grad_norm_(ps, 1.0)
        else:
            normreg.nn.utils.clip_grad_value_(ps, 0.1)
    for p, g in zip(ps, before):
        np.testing.assert_array_equal(p.grad, g)


def test_clip_grad_scales_non_contiguous_grads_in_place():
    p = nn.Parameter(np.zeros((3, 4)))
    base = np.zeros((4, 3))
    base[:] = [[3.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    p.grad = base.T  # a strided view: scaled where it is
    assert normreg.nn.utils.clip_grad_norm_(p, 1.0) == pytest.approx(5.0)
    assert p.grad.base is base
    np.testing.assert_allclose(base[:2, 0], [3 / (5 + 1e-6), 4 / (5 + 1e-6)])
    normreg.nn.utils.clip_grad_value_(p, 0.5)
    np.testing.assert_array_equal(base[:2, 0], [0.5, 0.5])
    assert base[2:].sum() == 0 and base[:, 1:].sum() == 0
