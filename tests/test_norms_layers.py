"""RMSNorm, GroupNorm, InstanceNorm, BatchNorm2d and LayerNorm(bias=False): NumPy twins,
float64 central differences (normreg.testing.gradcheck), bad input, memory rules."""
import numpy as np
import pytest

import normreg
from normreg import _C, nn
from normreg import functional as F
from normreg.testing import gradcheck

import norms_reference as ref

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}


def rng(seed=0):
    return np.random.default_rng(seed)


def randomize_params(module, r):
    for p in module.parameters():
        p.data[...] = r.standard_normal(p.shape) + 1


# ---- RMSNorm ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,normalized", [((6, 8), (8,)), ((2, 3, 4, 5), (4, 5)), ((7, 1), (1,)),
                                              ((3, 300), (300,))])
@pytest.mark.parametrize("affine", [True, False])
def test_rms_norm_forward_backward_match_numpy(dtype, shape, normalized, affine):
    r = rng(1)
    x = ref.offset_randn(r, shape, dtype)
    layer = nn.RMSNorm(normalized, elementwise_affine=affine, dtype=dtype)
    randomize_params(layer, r)
    w = None if layer.weight is None else layer.weight.data
    y = layer(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y, ref.rms_norm(x, len(normalized), w), **TOL[dtype])
    dy = r.standard_normal(shape).astype(dtype)
    dx = layer.backward(dy)
    dx_ref, dw_ref = ref.rms_norm_backward(dy, x, len(normalized), w)
    np.testing.assert_allclose(dx, dx_ref, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10)
    if affine:
        np.testing.assert_allclose(layer.weight.grad, dw_ref, rtol=TOL[dtype]["rtol"] * 10,
                                   atol=TOL[dtype]["atol"] * 10 * np.sqrt(shape[0]))


def test_rms_norm_eps_default_is_machine_epsilon():
    for dtype in DTYPES:
        assert nn.RMSNorm(4, dtype=dtype).eps is None
        x = np.zeros((2, 4), dtype=dtype)
        _, rstd = F.rms_norm(x, 4)
        np.testing.assert_allclose(rstd, 1 / np.sqrt(np.finfo(dtype).eps), rtol=1e-6)
        _, rstd = F.rms_norm(x, 4, eps=0.25)
        np.testing.assert_allclose(rstd, 2.0)


@pytest.mark.parametrize("affine", [True, False])
def test_rms_norm_gradcheck(affine):
    r = rng(2)
    layer = nn.RMSNorm((3, 4), elementwise_affine=affine, eps=1e-3, dtype=np.float64)
    randomize_params(layer, r)
    assert gradcheck(layer, ref.offset_randn(r, (2, 3, 4)))
    w = r.standard_normal(5)
    x = ref.offset_randn(r, (4, 5))

    def fwd(x, w):
        return F.rms_norm(x, 5, w)[0]

    def bwd(dy, x, w):
        _, rstd = F.rms_norm(x, 5, w)
        return F.rms_norm_backward(dy, x, rstd, w)

    assert gradcheck(fwd, (x, w), backward=bwd)


def test_rms_norm_weight_grad_accumulates():
    r = rng(3)
    layer = nn.RMSNorm(6, dtype=np.float64)
    x, dy = ref.offset_randn(r, (5, 6)), r.standard_normal((5, 6))
    layer(x)
    layer.backward(dy)
    once = layer.weight.grad.copy()
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * once, rtol=1e-14)


def test_rms_norm_torch_cross_check():
    torch = pytest.importorskip("torch")
    r = rng(4)
    x = ref.offset_randn(r, (4, 3, 8), np.float32)
    w = r.standard_normal(8).astype(np.float32)
    dy = r.standard_normal(x.shape).astype(np.float32)
    layer = nn.RMSNorm(8)
    layer.weight.data[...] = w
    tl = torch.nn.RMSNorm(8)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(w))
    tx = torch.from_numpy(x).requires_grad_()
    ty = tl(tx)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.backward(dy), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-4, atol=1e-4)


# ---- GroupNorm ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,G", [((4, 6), 3), ((3, 6, 5), 2), ((2, 4, 3, 5), 1), ((2, 4, 3, 5), 4),
                                     ((2, 8, 2, 2, 3), 4), ((1, 2, 700), 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_forward_backward_match_numpy(dtype, shape, G, affine):
    r = rng(5)
    x = ref.offset_randn(r, shape, dtype)
    layer = nn.GroupNorm(G, shape[1], affine=affine, dtype=dtype)
    randomize_params(layer, r)
    w = None if layer.weight is None else layer.weight.data
    b = None if layer.bias is None else layer.bias.data
    y = layer(x)
    y_ref, mean_ref, rstd_ref = ref.group_norm(x, G, w, b)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    _, mean, rstd = F.group_norm(x, G, w, b)
    assert mean.shape == rstd.shape == (shape[0], G)
    np.testing.assert_allclose(mean, mean_ref, rtol=TOL[dtype]["rtol"])
    np.testing.assert_allclose(rstd, rstd_ref, rtol=TOL[dtype]["rtol"] * 10)
    dy = r.standard_normal(shape).astype(dtype)
    dx = layer.backward(dy)
    dx_ref, dw_ref, db_ref = ref.group_norm_backward(dy, x, G, w)
    # the size of the terms dx is a difference of: rstd * |dy w|
    scale = rstd_ref.max() * np.abs(dy).max() * (1.0 if w is None else np.abs(w).max())
    np.testing.assert_allclose(dx, dx_ref, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10 * scale)
    if affine:
        np.testing.assert_allclose(layer.weight.grad, dw_ref, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-4 if dtype == np.float32 else 1e-10)
        np.testing.assert_allclose(layer.bias.grad, db_ref, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("shape,G", [((3, 4), 2), ((2, 6, 5), 3), ((2, 4, 2, 3), 2), ((2, 4, 2, 3), 4)])
def test_group_norm_gradcheck(shape, G):
    r = rng(6)
    layer = nn.GroupNorm(G, shape[1], dtype=np.float64)
    randomize_params(layer, r)
    assert gradcheck(layer, ref.offset_randn(r, shape))
    assert gradcheck(nn.GroupNorm(G, shape[1], affine=False, dtype=np.float64), ref.offset_randn(r, shape))


def test_group_norm_float32_large_offset_is_accurate():
    x = (1e6 + np.array([[0.0, 0.25, 0.5, 0.75]])).astype(np.float32)
    y = nn.GroupNorm(1, 4)(x)
    np.testing.assert_allclose(y[0], [-1.3415549, -0.4471850, 0.4471850, 1.3415549], atol=1e-4)
    r = rng(7)
    x64 = 1e4 + r.standard_normal((4, 8, 50))
    y32 = nn.GroupNorm(2, 8)(x64.astype(np.float32))
    y_ref, _, _ = ref.group_norm(x64.astype(np.float32).astype(np.float64), 2)
    np.testing.assert_allclose(y32, y_ref, atol=2e-3)


def test_group_norm_threads_agree():
    r = rng(8)
    x = ref.offset_randn(r, (64, 32, 64), np.float32)
    dy = r.standard_normal(x.shape).astype(np.float32)
    w = r.standard_normal(32).astype(np.float32)
    before = normreg.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            normreg.set_num_threads(n)
            y, mean, rstd = F.group_norm(x, 8, w, w)
            dx, dw, db = F.group_norm_backward(dy, x, mean, rstd, w)
            results.append((y, dx, dw, db))
    finally:
        normreg.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_group_norm_torch_cross_check():
    torch = pytest.importorskip("torch")
    r = rng(9)
    x = ref.offset_randn(r, (3, 6, 4, 5), np.float64)
    dy = r.standard_normal(x.shape)
    layer = nn.GroupNorm(3, 6, dtype=np.float64)
    randomize_params(layer, r)
    tl = torch.nn.GroupNorm(3, 6).double()
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(layer.weight.data))
        tl.bias.copy_(torch.from_numpy(layer.bias.data))
    tx = torch.from_numpy(x).requires_grad_()
    ty = tl(tx)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.backward(dy), tx.grad.numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-9, atol=1e-9)


# ---- InstanceNorm -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_instance_norm_matches_numpy(dtype):
    r = rng(10)
    x1 = ref.offset_randn(r, (3, 4, 7), dtype)
    x2 = ref.offset_randn(r, (2, 3, 4, 5), dtype)
    for layer, x, axes in ((nn.InstanceNorm1d(4, dtype=dtype), x1, (2,)),
                           (nn.InstanceNorm2d(3, dtype=dtype), x2, (2, 3))):
        assert layer.parameters() == [] and layer.affine is False
        x64 = x.astype(np.float64)
        y_ref = (x64 - x64.mean(axis=axes, keepdims=True)) / np.sqrt(x64.var(axis=axes, keepdims=True) + 1e-5)
        np.testing.assert_allclose(layer(x), y_ref, **TOL[dtype])
        # unbatched input (C, *) is one sample
        np.testing.assert_allclose(layer(x[1]), y_ref[1], **TOL[dtype])
        assert layer.backward(np.ones_like(x[1])).shape == x[1].shape


def test_instance_norm_gradcheck_and_options():
    r = rng(11)
    layer = nn.InstanceNorm2d(3, affine=True, dtype=np.float64)
    randomize_params(layer, r)
    assert gradcheck(layer, ref.offset_randn(r, (2, 3, 3, 4)))
    assert gradcheck(nn.InstanceNorm1d(4, dtype=np.float64), ref.offset_randn(r, (4, 6)))  # unbatched
    with pytest.raises(ValueError, match="spatial"):
        nn.InstanceNorm1d(4)(np.ones((2, 4, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="InstanceNorm2d"):
        nn.InstanceNorm2d(3)(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        nn.InstanceNorm1d(3)(np.zeros((2, 5, 4), dtype=np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_instance_norm_running_stats(dtype):
    r = rng(19)
    layer = nn.InstanceNorm2d(3, momentum=0.2, affine=True, track_running_stats=True, dtype=dtype)
    randomize_params(layer, r)
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = ref.offset_randn(r, (4, 3, 2, 5), dtype).astype(np.float64)
        layer(x.astype(dtype))
        inst_mean = x.mean(axis=(2, 3))
        inst_var = x.reshape(4, 3, -1).var(axis=2, ddof=1)
        rm = 0.8 * rm + 0.2 * inst_mean.mean(axis=0)
        rv = 0.8 * rv + 0.2 * inst_var.mean(axis=0)
    tol = dict(rtol=1e-5) if dtype == np.float32 else dict(rtol=1e-10)
    np.testing.assert_allclose(layer.running_mean, rm, **tol)
    np.testing.assert_allclose(layer.running_var, rv, **tol)
    assert sorted(layer.state_dict()) == ["bias", "num_batches_tracked", "running_mean", "running_var", "weight"]
    layer.eval()
    x = ref.offset_randn(r, (2, 3, 2, 5), dtype)
    c = (1, -1, 1, 1)
    w, b = layer.weight.data.astype(np.float64), layer.bias.data.astype(np.float64)
    expected = ((x - layer.running_mean.reshape(c)) / np.sqrt(layer.running_var.reshape(c).astype(np.float64) + 1e-5)
                * w.reshape(c) + b.reshape(c))
    np.testing.assert_allclose(layer(x), expected, **TOL[dtype])
    if dtype == np.float64:
        assert gradcheck(layer, x)  # evaluation: the running estimates are constants
        layer.train()
        assert gradcheck(layer, x)


def test_instance_norm_running_stats_torch_cross_check():
    torch = pytest.importorskip("torch")
    r = rng(20)
    layer = nn.InstanceNorm1d(3, track_running_stats=True, affine=True, dtype=np.float64)
    tl = torch.nn.InstanceNorm1d(3, track_running_stats=True, affine=True).double()
    for _ in range(2):
        x = ref.offset_randn(r, (4, 3, 6))
        layer(x)
        tl(torch.from_numpy(x))
    np.testing.assert_allclose(layer.running_mean, tl.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, tl.running_var.numpy(), rtol=1e-10)
    layer.eval()
    tl.eval()
    x = ref.offset_randn(r, (2, 3, 6))
    dy = r.standard_normal(x.shape)
    tx = torch.from_numpy(x).requires_grad_()
    ty = tl(tx)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.backward(dy), tx.grad.numpy(), rtol=1e-10, atol=1e-10)


# ---- BatchNorm2d --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_2d_matches_numpy(dtype):
    r = rng(12)
    x = ref.offset_randn(r, (4, 3, 5, 6), dtype)
    bn = nn.BatchNorm2d(3, dtype=dtype)
    randomize_params(bn, r)
    w, b = bn.weight.data.astype(np.float64), bn.bias.data.astype(np.float64)
    y = bn(x)
    y_ref, mean, var = ref.batch_norm_2d_train(x, w, b)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    n = 4 * 5 * 6
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean, rtol=TOL[dtype]["rtol"])
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * var * n / (n - 1), rtol=TOL[dtype]["rtol"])
    assert int(bn.num_batches_tracked) == 1
    dy = r.standard_normal(x.shape).astype(dtype)
    dx = bn.backward(dy)
    dx_ref, dw_ref, db_ref = ref.batch_norm_2d_backward(dy, x, w)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4 if dtype == np.float32 else 1e-9,
                               atol=1e-5 if dtype == np.float32 else 1e-11)
    np.testing.assert_allclose(bn.weight.grad, dw_ref, rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-4)
    np.testing.assert_allclose(bn.bias.grad, db_ref, rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-4)
    # evaluation: the running estimates
    bn.eval()
    rm, rv = bn.running_mean.astype(np.float64), bn.running_var.astype(np.float64)
    c = (1, -1, 1, 1)
    y_eval = (x - rm.reshape(c)) / np.sqrt(rv.reshape(c) + 1e-5) * w.reshape(c) + b.reshape(c)
    np.testing.assert_allclose(bn(x), y_eval, **TOL[dtype])


def test_batch_norm_2d_equals_batch_norm_1d_on_the_flattened_view():
    r = rng(13)
    x = ref.offset_randn(r, (3, 4, 2, 5))
    bn2, bn1 = nn.BatchNorm2d(4, dtype=np.float64), nn.BatchNorm1d(4, dtype=np.float64)
    dy = r.standard_normal(x.shape)
    np.testing.assert_array_equal(bn2(x), bn1(x.reshape(3, 4, 10)).reshape(x.shape))
    np.testing.assert_array_equal(bn2.backward(dy), bn1.backward(dy.reshape(3, 4, 10)).reshape(x.shape))
    np.testing.assert_array_equal(bn2.running_var, bn1.running_var)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_2d_gradcheck(training):
    r = rng(14)
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    randomize_params(bn, r)
    bn.running_mean[...] = r.standard_normal(3) + 12
    bn.running_var[...] = r.uniform(10, 30, 3)
    bn.train(training)
    assert gradcheck(bn, ref.offset_randn(r, (2, 3, 2, 3)))


def test_batch_norm_2d_non_contiguous_input_and_memory_rules():
    r = rng(15)
    base = ref.offset_randn(r, (3, 5, 4, 2), np.float32)
    x = base.transpose(0, 1, 3, 2)  # (3, 5, 2, 4), not contiguous
    x_copy = x.copy()
    bn_a, bn_b = nn.BatchNorm2d(5), nn.BatchNorm2d(5)
    y1 = bn_a(x)
    np.testing.assert_array_equal(y1, bn_b(np.ascontiguousarray(x)))
    np.testing.assert_array_equal(x, x_copy)  # input untouched
    y1_copy = y1.copy()
    bn_a(x + 1)
    np.testing.assert_array_equal(y1, y1_copy)  # earlier output not overwritten


def test_batch_norm_2d_torch_cross_check():
    torch = pytest.importorskip("torch")
    r = rng(16)
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    tbn = torch.nn.BatchNorm2d(3).double()
    for step in range(3):
        x = ref.offset_randn(r, (4, 3, 3, 2))
        dy = r.standard_normal(x.shape)
        tx = torch.from_numpy(x).requires_grad_()
        ty = tbn(tx)
        ty.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(bn(x), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(bn.backward(dy), tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.weight.grad, tbn.weight.grad.numpy(), rtol=1e-9)


# ---- LayerNorm(bias=False) ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_without_bias(dtype):
    r = rng(17)
    ln = nn.LayerNorm((3, 4), bias=False, dtype=dtype)
    assert ln.bias is None and [n for n, _ in ln.named_parameters()] == ["weight"]
    assert list(ln.state_dict()) == ["weight"]
    randomize_params(ln, r)
    x = ref.offset_randn(r, (5, 3, 4), dtype)
    np.testing.assert_allclose(ln(x), ref.layer_norm(x, 2, ln.weight.data.astype(np.float64)), **TOL[dtype])
    ln64 = nn.LayerNorm(6, bias=False, dtype=np.float64)
    randomize_params(ln64, r)
    assert gradcheck(ln64, ref.offset_randn(r, (4, 6)))


# ---- bad input ----------------------------------------------------------------------------


def test_bad_input_raises_named_errors():
    x32 = np.ones((2, 4, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="x"):
        nn.RMSNorm(3)(x32.astype(np.float64))
    with pytest.raises(TypeError, match="x"):
        nn.GroupNorm(2, 4)(np.ones((2, 4, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.RMSNorm(5)(x32)
    with pytest.raises(ValueError, match="num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(TypeError, match="num_groups"):
        F.group_norm(x32, True)
    with pytest.raises(TypeError, match="num_groups"):
        F.group_norm(x32, 2.0)
    with pytest.raises(ValueError, match="GroupNorm"):
        nn.GroupNorm(2, 6)(x32)
    with pytest.raises(ValueError, match="eps"):
        F.rms_norm(x32, 3, eps=-1.0)
    with pytest.raises(ValueError, match="weight"):
        F.group_norm(x32, 2, np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match="weight"):
        F.rms_norm(x32, 3, np.ones(3))
    with pytest.raises(ValueError, match="BatchNorm2d"):
        nn.BatchNorm2d(4)(x32)
    with pytest.raises(ValueError):
        nn.GroupNorm(2, 4).backward(x32)  # backward before forward
    with pytest.raises(ValueError, match="rstd"):
        F.rms_norm_backward(x32, x32, np.ones(5, dtype=np.float32))
    with pytest.raises(ValueError, match="mean"):
        F.group_norm_backward(x32, x32, np.ones((2, 3), dtype=np.float32), np.ones((2, 3), dtype=np.float32))
    # the binding itself rejects what would be unsafe, naming the argument
    with pytest.raises(ValueError, match="num_groups"):
        _C.group_norm_forward(x32, None, None, 3, 1e-5, None)
    with pytest.raises(ValueError, match="x"):
        _C.rms_norm_forward(x32, None, 1e-5, None)
    with pytest.raises(ValueError, match="rstd"):
        _C.rms_norm_backward(x32[0], x32[0], np.ones(7, dtype=np.float32), None, None, None)
    with pytest.raises(TypeError):
        _C.group_norm_backward(x32, x32, None, None, None, None, None, 2, None)
    with pytest.raises(ValueError, match="dweight"):
        _C.group_norm_backward(x32, x32, np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), None,
                               np.ones(4, np.float32)[::-1], None, 2, None)


def test_inputs_are_not_modified_and_outputs_are_fresh():
    r = rng(18)
    x = ref.offset_randn(r, (3, 4, 5), np.float32)
    x_copy = x.copy()
    for layer in (nn.RMSNorm(5), nn.GroupNorm(2, 4), nn.InstanceNorm1d(4, affine=True)):
        y1 = layer(x)
        y1_copy = y1.copy()
        dy = r.standard_normal(x.shape).astype(np.float32)
        dy_copy = dy.copy()
        layer.backward(dy)
        layer(x * 2)
        np.testing.assert_array_equal(x, x_copy)
        np.testing.assert_array_equal(dy, dy_copy)
        np.testing.assert_array_equal(y1, y1_copy)


@pytest.mark.parametrize("layer,shape", [(lambda: nn.RMSNorm(3), (0, 3)), (lambda: nn.RMSNorm((2, 3)), (4, 0, 2, 3)),
                                         (lambda: nn.GroupNorm(2, 4), (0, 4, 3)),
                                         (lambda: nn.GroupNorm(2, 4), (3, 4, 0)),
                                         (lambda: nn.InstanceNorm2d(2, affine=True), (0, 2, 3, 3))])
def test_empty_inputs(layer, shape):
    layer = layer()
    y = layer(np.zeros(shape, dtype=np.float32))
    assert y.shape == shape
    assert layer.backward(np.zeros(shape, dtype=np.float32)).shape == shape
    for p in layer.parameters():
        np.testing.assert_array_equal(p.grad, 0)


def test_single_value_groups_give_the_bias():
    # a group of one value has variance 0: y = 0 * weight + bias exactly
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.array([1, -2, 3, 0.5], dtype=np.float32)
    y, _, rstd = F.group_norm(x, 4, np.full(4, 3, np.float32), b)
    np.testing.assert_array_equal(y, np.broadcast_to(b, (2, 4)))
    np.testing.assert_allclose(rstd, 1 / np.sqrt(1e-5), rtol=1e-6)


def test_non_contiguous_inputs_give_the_same_results():
    r = rng(21)
    base = ref.offset_randn(r, (5, 4, 6), np.float32)
    views = [base.transpose(0, 2, 1), np.asfortranarray(base.transpose(0, 2, 1)), base[:, ::-1, ::2].transpose(0, 2, 1)]
    for x in views:
        xc = np.ascontiguousarray(x)
        for make in (lambda: nn.RMSNorm(x.shape[-1]), lambda: nn.GroupNorm(1, x.shape[1]),
                     lambda: nn.InstanceNorm1d(x.shape[1])):
            a, b = make(), make()
            np.testing.assert_array_equal(a(x), b(xc))
            dy = r.standard_normal(x.shape).astype(np.float32)
            np.testing.assert_array_equal(a.backward(dy.T.copy().T), b.backward(dy))
