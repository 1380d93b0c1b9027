"""GroupNorm and InstanceNorm1d/2d (a group norm with one channel per group): functional
and module against reference.group_norm in float32 and float64, running statistics of
InstanceNorm, central differences (normreg.testing.gradcheck), threads, the kernels' short
groups (hostile ones among them), empty and non-contiguous input (RMSNorm's too), PyTorch
when installed."""

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, NORM_TOL, assert_close, offset_randn, randomize_params, torch_forward_backward

from normreg import functional as F
from normreg import nn
from normreg.testing import gradcheck

# ---- GroupNorm ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,G",
    [
        ((4, 6), 3),
        ((3, 6, 5), 2),
        ((2, 4, 3, 5), 1),
        ((2, 4, 3, 5), 4),
        ((2, 8, 2, 2, 3), 4),
        ((1, 2, 700), 2),
        # groups of 2, 4 and 8 values (several to a vector register), their weights cycling
        # through the groups within a vector (5 groups) or side by side
        ((41, 10), 5),
        ((37, 16, 1), 4),
        ((19, 32, 2), 8),
        ((23, 12, 2), 3),
        ((29, 15), 5),
        ((17, 30, 1), 6),
        ((13, 21, 1), 3),
    ],
)
@pytest.mark.parametrize("affine", [True, False])
def test_forward_backward_match_numpy(dtype, shape, G, affine):
    r = np.random.default_rng(5)
    x = offset_randn(r, shape, dtype)
    layer = nn.GroupNorm(G, shape[1], affine=affine, dtype=dtype)
    randomize_params(layer, r)
    w = None if layer.weight is None else layer.weight.data
    b = None if layer.bias is None else layer.bias.data
    y = layer(x)
    y_ref, mean_ref, rstd_ref = R.group_norm(x, G, w, b)
    np.testing.assert_allclose(y, y_ref, **NORM_TOL[dtype])
    _, mean, rstd = F.group_norm(x, G, w, b)
    assert mean.shape == rstd.shape == (shape[0], G)
    np.testing.assert_allclose(mean, mean_ref, rtol=NORM_TOL[dtype]["rtol"])
    np.testing.assert_allclose(rstd, rstd_ref, rtol=NORM_TOL[dtype]["rtol"] * 10)
    dy = r.standard_normal(shape).astype(dtype)
    dx = layer.backward(dy)
    dx_ref, dw_ref, db_ref = R.group_norm_backward(dy, x, G, w)
    # the size of the terms dx is a difference of: rstd * |dy w|
    scale = rstd_ref.max() * np.abs(dy).max() * (1.0 if w is None else np.abs(w).max())
    np.testing.assert_allclose(
        dx, dx_ref, rtol=NORM_TOL[dtype]["rtol"] * 10, atol=NORM_TOL[dtype]["atol"] * 10 * scale
    )
    if affine:
        np.testing.assert_allclose(
            layer.weight.grad,
            dw_ref,
            rtol=1e-4 if dtype == np.float32 else 1e-10,
            atol=1e-4 if dtype == np.float32 else 1e-10,
        )
        np.testing.assert_allclose(
            layer.bias.grad,
            db_ref,
            rtol=1e-4 if dtype == np.float32 else 1e-10,
            atol=1e-4 if dtype == np.float32 else 1e-10,
        )


@pytest.mark.parametrize("shape,G", [((3, 4), 2), ((2, 6, 5), 3), ((2, 4, 2, 3), 2), ((2, 4, 2, 3), 4)])
def test_gradcheck(shape, G):
    r = np.random.default_rng(6)
    layer = nn.GroupNorm(G, shape[1], dtype=np.float64)
    randomize_params(layer, r)
    assert gradcheck(layer, offset_randn(r, shape))
    assert gradcheck(nn.GroupNorm(G, shape[1], affine=False, dtype=np.float64), offset_randn(r, shape))


def test_float32_large_offset_is_accurate():
    x = (1e6 + np.array([[0.0, 0.25, 0.5, 0.75]])).astype(np.float32)
    y = nn.GroupNorm(1, 4)(x)
    np.testing.assert_allclose(y[0], [-1.3415549, -0.4471850, 0.4471850, 1.3415549], atol=1e-4)
    r = np.random.default_rng(7)
    x64 = 1e4 + r.standard_normal((4, 8, 50))
    y32 = nn.GroupNorm(2, 8)(x64.astype(np.float32))
    y_ref, _, _ = R.group_norm(x64.astype(np.float32), 2)
    np.testing.assert_allclose(y32, y_ref, atol=2e-3)


def test_threads_agree(set_threads):
    r = np.random.default_rng(8)
    x = offset_randn(r, (64, 32, 64), np.float32)
    dy = r.standard_normal(x.shape).astype(np.float32)
    w = r.standard_normal(32).astype(np.float32)
    results = []
    for n in (1, 2):
        set_threads(n)
        y, mean, rstd = F.group_norm(x, 8, w, w)
        dx, dw, db = F.group_norm_backward(dy, x, mean, rstd, w)
        results.append((y, dx, dw, db))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def _check_groups(rng, dtype, x, G, affine):
    """Forward and backward of F.group_norm against the float64 reference; dweight and
    dbias added to the accumulators given."""
    C = x.shape[1]
    w = (1 + 0.5 * rng.standard_normal(C)).astype(dtype) if affine else None
    b = rng.standard_normal(C).astype(dtype) if affine else None
    y, mean, rstd = F.group_norm(x, G, w, b)
    ry, rmean, rrstd = R.group_norm(x, G, w, b)
    where = f"shape {x.shape} G={G}"
    assert_close(y, ry, dtype, err_msg=f"y {where}")
    assert_close(mean, rmean, dtype, scale=max(1.0, float(np.abs(rmean).max())), err_msg=f"mean {where}")
    assert_close(rstd, rrstd, dtype, scale=float(np.abs(rrstd).max()), err_msg=f"rstd {where}")
    dy = rng.standard_normal(x.shape).astype(dtype)
    dw0 = rng.standard_normal(C).astype(dtype) if affine else None
    db0 = rng.standard_normal(C).astype(dtype) if affine else None
    dx, dw, db = F.group_norm_backward(
        dy,
        x,
        mean,
        rstd,
        w,
        dweight=None if dw0 is None else dw0.copy(),
        dbias=None if db0 is None else db0.copy(),
    )
    rdx, rdw, rdb = R.group_norm_backward(dy, x, G, w)
    # dx's terms are of the order of rstd |dy w|
    scale = float(rrstd.max() * np.abs(dy).max() * (1.0 if w is None else np.abs(w).max()))
    assert_close(dx, rdx, dtype, scale=scale, err_msg=f"dx {where}")
    if affine:
        assert_close(dw, rdw + dw0, dtype, scale=max(1.0, float(np.abs(rdw).max())), err_msg=f"dw {where}")
        assert_close(db, rdb + db0, dtype, scale=max(1.0, float(np.abs(rdb).max())), err_msg=f"db {where}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_short_group_shape(rng, dtype, nthreads):
    """Groups of up to 256 values (C / G channels of S positions) take LayerNorm's short rows,
    each with its group's weights: group sizes from 1 to 257 made of channels of 1 to 49
    positions, sample counts that leave partial blocks, with and without affine."""
    for C, S, G in [
        (8, 1, 1),
        (8, 1, 8),
        (64, 1, 8),
        (6, 5, 3),
        (16, 3, 4),
        (64, 16, 32),
        (32, 49, 16),
        (4, 64, 1),
        (2, 128, 1),
        (1, 257, 1),
        (3, 85, 1),
        (12, 7, 12),
        (10, 13, 2),
    ]:
        for N in (1, 3, 5):
            x = offset_randn(rng, (N, C, S), dtype)
            if x.size == G:  # one value in each group of a batch of one: PyTorch's ValueError
                with pytest.raises(ValueError, match="more than 1 value"):
                    F.group_norm(x, G)
                continue
            _check_groups(rng, dtype, x, G, affine=(N + C + S) % 2 == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "C,S,G", [(64, 1, 8), (64, 1, 1), (64, 16, 32), (32, 49, 16), (16, 64, 16), (256, 200, 256)]
)
def test_short_groups_threaded(rng, dtype, nthreads, C, S, G):
    """Enough samples to split between threads and to fill many blocks; hostile rows among
    them: groups scaled by 1e-25 and 1e25 (squares beyond float32: the wide path), a group
    of zeros, a NaN in one group (its group's outputs NaN, the others' unchanged)."""
    N = 2 * (40000 // (C * S)) + 3
    x = offset_randn(rng, (N, C, S), np.float64)
    _check_groups(rng, dtype, x.astype(dtype), G, affine=True)
    big = 1e25 if dtype == np.float32 else 1e140
    D = C // G * S
    rows = x.reshape(N * G, D)
    rows[::7] *= 1 / big
    rows[3::11] *= big
    rows[5::13] = 0
    _check_groups(rng, dtype, x.astype(dtype), G, affine=True)
    xn = x.astype(dtype)
    xn.reshape(N * G, D)[2, 0] = np.nan
    y, mean, rstd = F.group_norm(xn, G)
    dx, _, _ = F.group_norm_backward(np.ones_like(xn), xn, mean, rstd)
    bad = np.zeros(N * G, bool)
    bad[2] = True
    assert np.isnan(y.reshape(N * G, D)[bad]).all() and np.isfinite(y.reshape(N * G, D)[~bad]).all()
    assert np.isnan(dx.reshape(N * G, D)[bad]).all() and np.isfinite(dx.reshape(N * G, D)[~bad]).all()


def test_single_value_groups_give_the_bias():
    # a group of one value has variance 0: y = 0 * weight + bias exactly
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.array([1, -2, 3, 0.5], dtype=np.float32)
    y, _, rstd = F.group_norm(x, 4, np.full(4, 3, np.float32), b)
    np.testing.assert_array_equal(y, np.broadcast_to(b, (2, 4)))
    np.testing.assert_allclose(rstd, 1 / np.sqrt(1e-5), rtol=1e-6)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(9)
    x = offset_randn(r, (3, 6, 4, 5), np.float64)
    dy = r.standard_normal(x.shape)
    layer = nn.GroupNorm(3, 6, dtype=np.float64)
    randomize_params(layer, r)
    tl = torch.nn.GroupNorm(3, 6).double()
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(layer.weight.data))
        tl.bias.copy_(torch.from_numpy(layer.bias.data))
    ty, tdx = torch_forward_backward(tl, x, dy)
    np.testing.assert_allclose(layer(x), ty, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.backward(dy), tdx, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-9, atol=1e-9)


# ---- InstanceNorm -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_instance_norm_matches_numpy(dtype):
    r = np.random.default_rng(10)
    x1 = offset_randn(r, (3, 4, 7), dtype)
    x2 = offset_randn(r, (2, 3, 4, 5), dtype)
    for layer, x in ((nn.InstanceNorm1d(4, dtype=dtype), x1), (nn.InstanceNorm2d(3, dtype=dtype), x2)):
        assert layer.parameters() == [] and layer.affine is False
        y_ref = R.instance_norm(x)
        np.testing.assert_allclose(layer(x), y_ref, **NORM_TOL[dtype])
        # unbatched input (C, *) is one sample
        np.testing.assert_allclose(layer(x[1]), y_ref[1], **NORM_TOL[dtype])
        assert layer.backward(np.ones_like(x[1])).shape == x[1].shape


def test_instance_norm_gradcheck_and_options():
    r = np.random.default_rng(11)
    layer = nn.InstanceNorm2d(3, affine=True, dtype=np.float64)
    randomize_params(layer, r)
    assert gradcheck(layer, offset_randn(r, (2, 3, 3, 4)))
    assert gradcheck(nn.InstanceNorm1d(4, dtype=np.float64), offset_randn(r, (4, 6)))  # unbatched
    with pytest.raises(ValueError, match="spatial"):
        nn.InstanceNorm1d(4)(np.ones((2, 4, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="InstanceNorm2d"):
        nn.InstanceNorm2d(3)(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        nn.InstanceNorm1d(3)(np.zeros((2, 5, 4), dtype=np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_instance_norm_running_stats(dtype):
    r = np.random.default_rng(19)
    layer = nn.InstanceNorm2d(3, momentum=0.2, affine=True, track_running_stats=True, dtype=dtype)
    randomize_params(layer, r)
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = offset_randn(r, (4, 3, 2, 5), dtype).astype(np.float64)
        layer(x.astype(dtype))
        inst_mean = x.mean(axis=(2, 3))
        inst_var = x.reshape(4, 3, -1).var(axis=2, ddof=1)
        rm = 0.8 * rm + 0.2 * inst_mean.mean(axis=0)
        rv = 0.8 * rv + 0.2 * inst_var.mean(axis=0)
    tol = dict(rtol=1e-5) if dtype == np.float32 else dict(rtol=1e-10)
    np.testing.assert_allclose(layer.running_mean, rm, **tol)
    np.testing.assert_allclose(layer.running_var, rv, **tol)
    assert sorted(layer.state_dict()) == [
        "bias",
        "num_batches_tracked",
        "running_mean",
        "running_var",
        "weight",
    ]
    layer.eval()
    x = offset_randn(r, (2, 3, 2, 5), dtype)
    expected = R.batch_norm_eval(x, layer.running_mean, layer.running_var, layer.weight.data, layer.bias.data)
    np.testing.assert_allclose(layer(x), expected, **NORM_TOL[dtype])
    if dtype == np.float64:
        assert gradcheck(layer, x)  # evaluation: the running estimates are constants
        layer.train()
        assert gradcheck(layer, x)


def test_instance_norm_running_stats_match_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(20)
    layer = nn.InstanceNorm1d(3, track_running_stats=True, affine=True, dtype=np.float64)
    tl = torch.nn.InstanceNorm1d(3, track_running_stats=True, affine=True).double()
    for _ in range(2):
        x = offset_randn(r, (4, 3, 6))
        layer(x)
        tl(torch.from_numpy(x))
    np.testing.assert_allclose(layer.running_mean, tl.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, tl.running_var.numpy(), rtol=1e-10)
    layer.eval()
    tl.eval()
    x = offset_randn(r, (2, 3, 6))
    dy = r.standard_normal(x.shape)
    ty, tdx = torch_forward_backward(tl, x, dy)
    np.testing.assert_allclose(layer(x), ty, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.backward(dy), tdx, rtol=1e-10, atol=1e-10)


# ---- shapes and layouts (RMSNorm too) ----------------------------------------------------


@pytest.mark.parametrize(
    "layer,shape",
    [
        (lambda: nn.RMSNorm(3), (0, 3)),
        (lambda: nn.RMSNorm((2, 3)), (4, 0, 2, 3)),
        (lambda: nn.GroupNorm(2, 4), (0, 4, 3)),
        (lambda: nn.GroupNorm(2, 4), (3, 4, 0)),
        (lambda: nn.InstanceNorm2d(2, affine=True), (0, 2, 3, 3)),
    ],
)
def test_empty_inputs(layer, shape):
    layer = layer()
    y = layer(np.zeros(shape, dtype=np.float32))
    assert y.shape == shape
    assert layer.backward(np.zeros(shape, dtype=np.float32)).shape == shape
    for p in layer.parameters():
        np.testing.assert_array_equal(p.grad, 0)


def test_non_contiguous_inputs_give_the_same_results():
    r = np.random.default_rng(21)
    base = offset_randn(r, (5, 4, 6), np.float32)
    views = [
        base.transpose(0, 2, 1),
        np.asfortranarray(base.transpose(0, 2, 1)),
        base[:, ::-1, ::2].transpose(0, 2, 1),
    ]
    for x in views:
        xc = np.ascontiguousarray(x)
        for make in (
            lambda: nn.RMSNorm(x.shape[-1]),
            lambda: nn.GroupNorm(1, x.shape[1]),
            lambda: nn.InstanceNorm1d(x.shape[1]),
        ):
            a, b = make(), make()
            np.testing.assert_array_equal(a(x), b(xc))
            dy = r.standard_normal(x.shape).astype(np.float32)
            np.testing.assert_array_equal(a.backward(dy.T.copy().T), b.backward(dy))


@pytest.mark.parametrize("std", [1.0, 1e-5, 1e-7])
def test_instance_norm_running_var_of_instances_far_below_eps(std):
    """running_var takes the unbiased variance of each instance, averaged over the batch
    (PyTorch's rule), against NumPy's in float64: also where var << eps, which 1 / rstd**2 -
    eps would cancel away (2e-3 off at a std of 1e-5, 81x at 1e-7)."""
    r = np.random.default_rng(12)
    x = (std * r.standard_normal((4, 2, 16))).astype(np.float32)
    layer = nn.InstanceNorm1d(2, track_running_stats=True, momentum=1.0)
    layer(x)
    want = x.astype(np.float64).var(axis=2, ddof=1).mean(axis=0)
    np.testing.assert_allclose(layer.running_var, want, rtol=1e-5)
    mean = x.astype(np.float64).mean(axis=2).mean(axis=0)
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-5, atol=1e-12)


def test_arrays_taken_as_they_are_give_the_checked_results(rng):
    """(N, C, *) float arrays of 2 to 4 dimensions go to the kernel as they are; the same
    data as 5-D input takes the checked path: the same bits, and the same errors for what
    the kernel refuses."""
    x = offset_randn(rng, (4, 6, 3, 2), np.float32)
    w = rng.standard_normal(6).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    x5, dy5 = x.reshape(4, 6, 3, 2, 1), dy.reshape(4, 6, 3, 2, 1)
    fast, checked = F.group_norm(x, 3, w, w), F.group_norm(x5, 3, w, w)
    for a, b in zip(fast, checked):
        np.testing.assert_array_equal(a.reshape(b.shape), b)
    _, mean, rstd = fast
    fast_b = F.group_norm_backward(dy, x, mean, rstd, w)
    checked_b = F.group_norm_backward(dy5, x5, mean, rstd, w)
    for a, b in zip(fast_b, checked_b):
        np.testing.assert_array_equal(a.reshape(b.shape), b)
    for G in (0, 4, -3):
        with pytest.raises(ValueError, match="num_groups must be >= 1 and divide"):
            F.group_norm(x, G, w, w)
    with pytest.raises(TypeError, match="num_groups must be an int"):
        F.group_norm(x, True, w, w)
    with pytest.raises(TypeError, match="weight has dtype float64"):
        F.group_norm(x, 3, w.astype(np.float64))
    with pytest.raises(ValueError, match="does not match x: its 4 groups do not divide"):
        F.group_norm_backward(dy, x, np.zeros((4, 4), np.float32), np.ones((4, 4), np.float32), w)
    with pytest.raises(TypeError, match="GroupNorm's parameters"):
        nn.GroupNorm(3, 6)(x.astype(np.float64))
