"""Inputs a careless or hostile user passes where the fast paths used to skip a check: masked
gradients, flags given as strings, huge ints, 0-d arrays, pooling windows beyond PyTorch's
int, a counter past 2**63, returned arrays changed by the caller. Each against what the
checked path, NumPy or PyTorch's documented behaviour says."""

import io

import numpy as np
import pytest

import normreg
from normreg import data, nn, optim
from normreg import functional as F
from normreg.nn.utils import clip_grad_norm_, clip_grad_value_, get_total_norm


def _masked():
    return np.ma.array([1.0, 1e6, 1.0], mask=[False, True, False])


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: optim.Adam(ps, lr=0.1),
        lambda ps: optim.AdamW(ps, lr=0.1),
    ],
)
def test_optimizers_refuse_a_masked_gradient_on_every_path(make):
    """The kernels would read a masked array's data, masked values too: a TypeError, as the
    checked path of several groups gives, and nothing updated."""
    p = nn.Parameter(np.zeros(3))
    p.grad = _masked()
    opt = make([p])
    with pytest.raises(TypeError, match="masked"):
        opt.step()
    assert np.array_equal(p.data, np.zeros(3)) and opt.state_dict()["state"] == {}
    q, r = nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros(3))
    q.grad, r.grad = _masked(), np.ones(3)
    with pytest.raises(TypeError, match="masked"):
        make([{"params": [q]}, {"params": [r]}]).step()
    assert np.array_equal(r.data, np.zeros(3))


def test_an_ndarray_subclass_gradient_is_still_taken():
    """Not masked: the checked path takes a subclass's values (a plain SGD step by hand)."""

    class Tagged(np.ndarray):
        pass

    p = nn.Parameter(np.array([1.0, 2.0, 3.0]))
    p.grad = np.array([0.5, -1.0, 2.0]).view(Tagged)
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, 2.1, 2.8])


@pytest.mark.parametrize("clip", [lambda ps: clip_grad_norm_(ps, 1.0), lambda ps: clip_grad_value_(ps, 1.0)])
def test_clipping_refuses_a_masked_gradient(clip):
    p = nn.Parameter(np.zeros(3))
    p.grad = _masked()
    with pytest.raises(TypeError, match="masked"):
        clip([p])
    assert p.grad.data[1] == 1e6


def test_get_total_norm_takes_one_array_as_pytorch():
    g = np.array([3.0, 4.0])
    assert get_total_norm(g) == get_total_norm([g]) == 5.0
    assert get_total_norm(g, 1.0) == 7.0
    with pytest.raises(TypeError, match="masked"):
        get_total_norm([_masked()])


def test_flags_must_be_bools():
    """A string is not a flag ('False' would be true): TypeError naming it."""
    x, y = np.zeros((5, 2)), np.zeros(5)
    for kwargs, name in [({"shuffle": "False"}, "shuffle"), ({"drop_last": 1}, "drop_last")]:
        with pytest.raises(TypeError, match=name):
            data.DataLoader(x, y, 2, **kwargs)
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="strict"):
        layer.load_state_dict(layer.state_dict(), strict="no")
    p = nn.Parameter(np.zeros(2))
    p.grad = np.ones(2)
    with pytest.raises(TypeError, match="error_if_nonfinite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite="no")
    assert np.array_equal(p.grad, np.ones(2))
    for make, name in [
        (lambda: nn.Linear(2, 2, bias="no"), "bias"),
        (lambda: nn.Conv2d(1, 1, 3, bias="no"), "bias"),
        (lambda: nn.BatchNorm1d(3, affine="no"), "affine"),
        (lambda: nn.BatchNorm2d(3, track_running_stats="no"), "track_running_stats"),
        (lambda: nn.GroupNorm(2, 4, affine="no"), "affine"),
        (lambda: nn.LayerNorm(4, elementwise_affine="no"), "elementwise_affine"),
        (lambda: nn.LayerNorm(4, bias="no"), "bias"),
    ]:
        with pytest.raises(TypeError, match=name):
            make()


def test_a_huge_int_hyperparameter_is_a_value_error():
    p = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=10**400)
    # where infinity is allowed, the int is as large as a float goes
    p.grad = np.array([3.0, -4.0])
    clip_grad_value_([p], 10**400)
    assert np.array_equal(p.grad, [3.0, -4.0])


def test_zero_grad_in_place_names_what_it_cannot_zero():
    p = nn.Parameter(np.zeros(3))
    p.grad = [1.0, 2.0, 3.0]
    with pytest.raises(TypeError, match="grad"):
        p.zero_grad(set_to_none=False)
    p.grad = np.ones(3)
    p.grad.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        p.zero_grad(set_to_none=False)
    p.grad = np.ones(3)
    p.zero_grad(set_to_none=False)
    assert np.array_equal(p.grad, np.zeros(3))


def test_read_idx_names_a_source_that_is_no_file():
    for bad in (5, None, object()):
        with pytest.raises(TypeError, match="source"):
            data.read_idx(bad)
    with pytest.raises(ValueError):
        data.read_idx(io.BytesIO(b"\x00"))  # a file, but no IDX header


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_backward_takes_a_0d_array(reduction):
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((4, 3)), np.array([0, 1, 2, 0])
    loss = nn.SoftmaxLoss(reduction=reduction)
    loss(logits, labels)
    want = loss.backward(2.0)
    loss(logits, labels)
    np.testing.assert_array_equal(loss.backward(np.array(2.0)), want)
    loss(logits, labels)
    np.testing.assert_array_equal(loss.backward(np.float32(2.0)), want)


def test_a_count_that_would_wrap_is_refused():
    bn = nn.BatchNorm1d(3)
    sd = bn.state_dict()
    sd["num_batches_tracked"] = np.array(2**64 - 1, np.uint64)
    with pytest.raises(ValueError, match="num_batches_tracked"):
        bn.load_state_dict(sd)
    assert bn.num_batches_tracked == 0
    sd["num_batches_tracked"] = np.array(7, np.uint64)
    bn.load_state_dict(sd)
    assert bn.num_batches_tracked == 7


def test_optimizer_state_with_pytorchs_float_step_loads():
    """PyTorch keeps Adam's step as a float tensor: an integral float or 0-d array loads as the
    count, and the next step is the one the integer count gives."""
    rng = np.random.default_rng(1)
    g1, g2 = rng.standard_normal(4), rng.standard_normal(4)
    runs = []
    for step_value in (None, np.array(1.0, np.float32), 1.0):
        p = nn.Parameter(np.ones(4))
        opt = optim.Adam([p], lr=0.1)
        p.grad = g1.copy()
        opt.step()
        sd = opt.state_dict()
        if step_value is not None:
            sd["state"][0]["step"] = step_value
        fresh = optim.Adam([p], lr=0.1)
        fresh.load_state_dict(sd)
        p.grad = g2.copy()
        fresh.step()
        runs.append(p.data.copy())
    np.testing.assert_array_equal(runs[1], runs[0])
    np.testing.assert_array_equal(runs[2], runs[0])
    opt = optim.Adam([nn.Parameter(np.ones(4))], lr=0.1)
    sd = {"state": {0: {"step": 1.5, "exp_avg": np.zeros(4), "exp_avg_sq": np.zeros(4)}}}
    sd["param_groups"] = opt.state_dict()["param_groups"]
    with pytest.raises(TypeError, match="step"):
        opt.load_state_dict(sd)


def test_sequential_lr_checks_loaded_milestones():
    p = nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    a, b = optim.lr_scheduler.LinearLR(opt, 0.5, total_iters=2), optim.lr_scheduler.StepLR(opt, 1)
    sched = optim.lr_scheduler.SequentialLR(opt, [a, b], milestones=[2])
    sd = sched.state_dict()
    for bad in ("abc", [0], [2, 3], None):
        with pytest.raises((TypeError, ValueError), match="milestones"):
            sched.load_state_dict({**sd, "_milestones": bad})
        assert sched.state_dict() == sd
    sched.step()
    assert sched.get_last_lr() == [0.75]


def test_max_pool_indices_returned_are_the_callers():
    """Changing the returned indices does not move the gradient (PyTorch would refuse the
    changed saved tensor): the gradient goes to each window's maximum."""
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    pool = nn.MaxPool2d(2, return_indices=True)
    y, idx = pool(x)
    idx[...] = 0
    dx = pool.backward(np.ones_like(y))
    want = np.zeros_like(x)
    want[0, 0, 1::2, 1::2] = 1.0  # the bottom-right of each 2 x 2 window is its maximum
    np.testing.assert_array_equal(dx, want)


def test_pooling_windows_beyond_pytorchs_int_are_refused():
    x = np.ones((1, 1, 5, 5), np.float32)
    for args in [(2**31, 1, 0), (3, 2**31, 1), (2**33, 1, 2**32)]:
        for pool in (F.avg_pool2d, F.max_pool2d):
            with pytest.raises(ValueError, match="2\\*\\*31"):
                pool(x, *args)


def test_pooling_with_a_kernel_far_wider_than_the_image():
    """Every window covers the whole 5 x 5 image: the mean of its values over the window's
    positions (with padding, count_include_pad) and its maximum, at its first place."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 1, 5, 5))
    k, pad = 2**30 + 1, 2**29
    y, idx = F.max_pool2d(x, k, 1, pad, return_indices=True)
    assert y.shape == (1, 1, 5, 5)
    assert np.all(y == x.max()) and np.all(idx == np.argmax(x))
    a = F.avg_pool2d(x, k, 1, pad, count_include_pad=False)
    np.testing.assert_allclose(a, np.full((1, 1, 5, 5), x.mean()), rtol=1e-12)
    a = F.avg_pool2d(x, k, 1, pad, count_include_pad=True)
    hlen = min(k, 5 + 2 * pad)  # the first window's rows (and columns) in the padded image
    np.testing.assert_allclose(a[0, 0, 0, 0], x.sum() / hlen**2, rtol=1e-12)


def test_batch_norm_of_empty_feature_maps_is_empty():
    """(N, C, 0) in training: nothing to normalize, as PyTorch (no error about one value)."""
    x = np.zeros((2, 3, 0, 5), np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y, mean, rstd = F.batch_norm(x, rm, rv, training=True)
    assert y.shape == x.shape and np.all(np.isnan(mean)) and np.all(np.isnan(rstd))
    assert np.array_equal(rm, np.zeros(3)) and np.array_equal(rv, np.ones(3))
    with pytest.raises(ValueError, match="more than 1 value"):
        F.batch_norm(np.zeros((1, 3, 1, 1), np.float32), None, None, training=True)


def test_group_norm_of_single_values_is_pytorchs_error():
    with pytest.raises(ValueError, match="more than 1 value"):
        F.group_norm(np.ones((1, 6, 1, 1)), 6)
    with pytest.raises(ValueError, match="more than 1 value"):
        nn.GroupNorm(6, 6, dtype=np.float64)(np.ones((1, 6, 1, 1)))
    y, _, _ = F.group_norm(np.arange(12.0).reshape(2, 6, 1, 1), 6)  # two samples: zeros
    assert np.array_equal(y, np.zeros((2, 6, 1, 1)))


def test_train_goes_through_each_childs_own_train():
    """PyTorch's Module.train calls each child's train(): a layer that keeps itself in
    evaluation mode (a frozen BatchNorm) stays there, and its running estimates with it."""

    class FrozenBN(nn.BatchNorm1d):
        def train(self, mode=True):
            return super().train(False)

    model = nn.Sequential(nn.Linear(3, 3, dtype=np.float64), FrozenBN(3, dtype=np.float64))
    model.train()
    assert model.training and model[0].training and not model[1].training
    model(np.random.default_rng(0).standard_normal((8, 3)))
    assert np.array_equal(model[1].running_mean, np.zeros(3))


def test_modules_held_in_a_dict_or_set_on_a_sequential_are_registered():
    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = {"a": nn.Dropout(0.5), "b": nn.Linear(2, 2)}

    m = Heads()
    assert [name for name, _ in m.named_parameters()] == ["heads.b.weight", "heads.b.bias"]
    assert list(m.state_dict()) == ["heads.b.weight", "heads.b.bias"]
    m.eval()
    assert not m.heads["a"].training  # the dropout a dict holds is in evaluation mode too
    s = nn.Sequential(nn.Linear(2, 2))
    s.extra = nn.Linear(2, 3)
    assert list(s.state_dict()) == ["0.weight", "0.bias", "extra.weight", "extra.bias"]
    assert len(s.parameters()) == 4 and len(s) == 1


def test_parameters_and_buffers_keep_their_kinds():
    m = nn.Module()
    m.register_buffer("buf", np.zeros(3))
    m.buf = nn.Parameter(np.ones(3))  # a Parameter in a buffer's place is a parameter
    assert [n for n, _ in m.named_parameters()] == ["buf"] and list(m.named_buffers()) == []
    m.w = nn.Parameter(np.zeros(2))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("w", np.zeros(2))
    with pytest.raises(TypeError, match="Parameter or None"):
        m.w = np.zeros(2)
    assert isinstance(m.w, nn.Parameter)
    m.w = None  # as PyTorch: the parameter is gone
    assert [n for n, _ in m.named_parameters()] == ["buf"]
    for name, exc in [("a.b", KeyError), ("", KeyError), (3, TypeError)]:
        with pytest.raises(exc):
            m.register_buffer(name, np.zeros(1))
    with pytest.raises(TypeError, match="ndarray or None"):
        m.register_buffer("c", [1.0, 2.0])
    shared = np.zeros(2)
    a, b = nn.Module(), nn.Module()
    a.register_buffer("rb", shared)
    b.register_buffer("rb", shared)
    assert [n for n, _ in nn.Sequential(a, b).named_buffers()] == ["0.rb"]


def test_input_grad_must_be_a_bool():
    layer = nn.Linear(2, 2, dtype=np.float64)
    x = np.ones((3, 2))
    for module in (layer, nn.Sequential(layer)):
        module(x)
        with pytest.raises(TypeError, match="input_grad"):
            module.backward(np.ones((3, 2)), input_grad="no")
        assert module.backward(np.ones((3, 2)), input_grad=False) is None
    with pytest.raises(TypeError, match="has_bias"):
        F.linear_backward(np.ones((3, 2)), x, layer.weight.data, has_bias="x")


def test_load_state_dict_keeps_numbers_of_their_kind():
    layer = nn.Linear(2, 2)
    sd = {k: v.copy() for k, v in layer.state_dict().items()}
    for bad in (np.ones((2, 2), bool), np.ones((2, 2), np.int64)):
        with pytest.raises(TypeError, match="weight"):
            layer.load_state_dict({**sd, "weight": bad})
    bn = nn.BatchNorm1d(2)
    bsd = bn.state_dict()
    with pytest.raises(ValueError, match="count"):
        bn.load_state_dict({**bsd, "num_batches_tracked": np.array(-3)})
    layer.load_state_dict({**sd, "weight": np.ones((2, 2), np.float64)})  # a float64 state rounds in
    assert layer.weight.data.dtype == np.float32 and np.array_equal(layer.weight.data, np.ones((2, 2)))


def test_save_names_the_users_path(tmp_path):
    obj = {"a": np.arange(3.0)}
    with pytest.raises(FileNotFoundError, match="nope"):
        normreg.save(obj, tmp_path / "nope" / "x.npz")
    for bad in ("", str(tmp_path) + "/", tmp_path):
        with pytest.raises(ValueError, match="must name a file"):
            normreg.save(obj, bad)
    target = tmp_path / "real.npz"
    normreg.save({"a": np.zeros(1)}, target)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    normreg.save(obj, link)  # written through the link, as torch.save
    assert link.is_symlink()
    np.testing.assert_array_equal(normreg.load(target)["a"], np.arange(3.0))


def test_identity_and_residual_check_dy_against_the_output():
    x = np.ones((4, 3))
    for module in (nn.Identity(), nn.Residual(nn.Identity()), nn.Sequential(nn.Identity())):
        module(x)
        for bad in (np.ones((1, 3)), "hello"):
            with pytest.raises(ValueError, match="dy must have shape"):
                module.backward(bad)
        dy = np.arange(12.0).reshape(4, 3)
        want = 2 * dy if isinstance(module, nn.Residual) else dy
        np.testing.assert_array_equal(module.backward(dy), want)
