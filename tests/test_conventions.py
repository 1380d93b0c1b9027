"""Course-convention presets: each convention's values on small worked examples."""

import numpy as np
import pytest
from helpers import set_grad

import normreg
from normreg import conventions, nn

# The worked example: one training step, momentum 0.1 (cs231n: 0.9, its style).
X = np.array([[1, 2, 3], [3, 6, 9], [5, 10, 15], [7, 14, 21]], dtype=np.float64)


@pytest.fixture(autouse=True)
def restore_convention():
    before = conventions.current()
    yield
    conventions.use(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bn_worked_example_torch_and_needle(dtype):
    expected = {"torch": [1.5667, 3.5667, 6.9], "needle": [1.4, 2.9, 5.4]}
    for name, running_var in expected.items():
        bn = nn.BatchNorm1d(3, momentum=0.1, convention=name, dtype=dtype)
        bn(X.astype(dtype))
        np.testing.assert_allclose(bn.running_var, running_var, atol=1e-4)
        np.testing.assert_allclose(bn.running_mean, [0.4, 0.8, 1.2], rtol=1e-6)
    # the same values from the definitions: unbiased (n - 1) vs biased (n) batch variance
    bn = nn.BatchNorm1d(3, convention="torch", dtype=dtype)
    bn(X.astype(dtype))
    np.testing.assert_allclose(bn.running_var, 0.9 * 1 + 0.1 * X.var(axis=0, ddof=1), rtol=1e-6)


def test_bn_worked_example_cs231n():
    # cs231n's batchnorm_forward: running_var starts at zeros, sample_var = np.var(x, axis=0)
    # (biased), running = momentum * running + (1 - momentum) * sample with momentum 0.9.
    bn = nn.BatchNorm1d(3, convention="cs231n", dtype=np.float64)
    assert bn.momentum == 0.9 and bn.momentum_style == "cs231n"
    np.testing.assert_array_equal(bn.running_var, 0.0)
    bn(X)
    np.testing.assert_allclose(bn.running_mean, 0.9 * 0 + 0.1 * X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.9 * 0 + 0.1 * X.var(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, [0.5, 2.0, 4.5], rtol=1e-12)


def _course_reference(name, batches, momentum, C):
    """The running estimates as each course's own code computes them, several steps."""
    rm = np.zeros(C)
    rv = np.zeros(C) if name == "cs231n" else np.ones(C)
    for x in batches:
        mean = x.mean(axis=0)
        if name == "cs231n":  # cs231n layers.py
            var = x.var(axis=0)
            rm = momentum * rm + (1 - momentum) * mean
            rv = momentum * rv + (1 - momentum) * var
        elif name == "needle":  # needle nn_basic.py BatchNorm1d
            var = ((x - mean) ** 2).sum(axis=0) / x.shape[0]
            rm = (1 - momentum) * rm + momentum * mean
            rv = (1 - momentum) * rv + momentum * var
        else:  # PyTorch
            var = x.var(axis=0, ddof=1)
            rm = (1 - momentum) * rm + momentum * mean
            rv = (1 - momentum) * rv + momentum * var
    return rm, rv


@pytest.mark.parametrize("name,momentum", [("torch", 0.1), ("needle", 0.1), ("cs231n", 0.9), ("needle", 0.3)])
def test_bn_several_steps_and_eval_follow_each_course(name, momentum):
    r = np.random.default_rng(0)
    batches = [3 * r.standard_normal((8, 5)) + 2 for _ in range(4)]
    bn = nn.BatchNorm1d(5, momentum=momentum, convention=name, dtype=np.float64)
    for x in batches:
        bn(x)
    rm, rv = _course_reference(name, batches, momentum, 5)
    np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bn.running_var, rv, rtol=1e-12, atol=1e-14)
    bn.eval()
    x = batches[0]
    np.testing.assert_allclose(bn(x), (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-12, atol=1e-12)


def test_bn_torch_convention_matches_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(1)
    bn = nn.BatchNorm1d(4, momentum=0.2, dtype=np.float64)
    tbn = torch.nn.BatchNorm1d(4, momentum=0.2).double()
    for _ in range(3):
        x = 2 * r.standard_normal((6, 4, 3)) + 1
        bn(x)
        tbn(torch.from_numpy(x))
    np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-12)


def test_explicit_switches_win_over_the_convention():
    bn = nn.BatchNorm1d(
        3, convention="cs231n", running_var_estimator="unbiased", momentum=0.5, initial_running_var=1.0
    )
    assert (bn.momentum, bn.momentum_style, bn.running_var_estimator) == (0.5, "cs231n", "unbiased")
    bn(X.astype(np.float32))
    np.testing.assert_allclose(bn.running_var, 0.5 * 1 + 0.5 * X.var(axis=0, ddof=1), rtol=1e-6)
    bn = nn.BatchNorm1d(3, momentum_style="cs231n", momentum=0.9)  # torch otherwise
    bn(X.astype(np.float32))
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * X.var(axis=0, ddof=1), rtol=1e-6)
    bn.running_var[...] = 7
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_var, 1.0)
    with conventions.use("cs231n"):
        bn = nn.BatchNorm2d(3)
        bn.running_var[...] = 7
        bn.reset_running_stats()
        np.testing.assert_array_equal(bn.running_var, 0.0)


def test_use_sets_globally_and_as_context_manager():
    assert conventions.current().name == "torch"
    assert nn.BatchNorm1d(2).running_var_estimator == "unbiased"
    with conventions.use("needle") as conv:
        assert conv.name == "needle" and conventions.current() is conventions.PRESETS["needle"]
        assert nn.BatchNorm1d(2).running_var_estimator == "biased"
        with conventions.use("cs231n"):
            assert nn.Dropout(0.8).p_is_keep_prob
        assert not nn.Dropout(0.8).p_is_keep_prob
    assert conventions.current().name == "torch"
    conventions.use("cs231n")
    assert nn.BatchNorm1d(2).momentum == 0.9
    assert nn.BatchNorm1d(2, convention="torch").momentum == 0.1  # keyword wins over the global
    conventions.use("torch")
    # a layer keeps the convention it was built with
    with conventions.use("needle"):
        bn = nn.BatchNorm1d(3, dtype=np.float64)
    bn(X)
    np.testing.assert_allclose(bn.running_var, [1.4, 2.9, 5.4], atol=1e-12)


def test_custom_convention_and_bad_values():
    mine = conventions.Convention("mine", bn_momentum=0.5, bn_running_var_estimator="biased")
    bn = nn.BatchNorm1d(3, convention=mine, dtype=np.float64)
    bn(X)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * X.var(axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="convention"):
        conventions.use("keras")
    with pytest.raises(ValueError, match="convention"):
        nn.BatchNorm1d(3, convention="keras")
    with pytest.raises(ValueError, match="running_var_estimator"):
        nn.BatchNorm1d(3, running_var_estimator="sample")
    with pytest.raises(ValueError, match="momentum_style"):
        nn.BatchNorm2d(3, momentum_style="ema")
    with pytest.raises(ValueError, match="sgd_momentum_style"):
        conventions.Convention("bad", sgd_momentum_style="nesterov")
    assert conventions.current().name == "torch"  # a failed use() changes nothing


def test_cumulative_average_ignores_the_style():
    r = np.random.default_rng(2)
    batches = [r.standard_normal((5, 3)) for _ in range(3)]
    for style in ("torch", "cs231n"):
        bn = nn.BatchNorm1d(3, momentum=None, momentum_style=style, dtype=np.float64)
        for x in batches:
            bn(x)
        np.testing.assert_allclose(
            bn.running_mean, np.mean([x.mean(axis=0) for x in batches], axis=0), rtol=1e-12
        )


def test_dropout_keep_probability_convention():
    r = np.random.default_rng(3)
    x = r.standard_normal((200, 500)).astype(np.float32) + 3
    keep = nn.Dropout(0.8, p_is_keep_prob=True, generator=normreg.Generator(5))
    drop = nn.Dropout(0.2, generator=normreg.Generator(5))
    assert keep.drop_prob == pytest.approx(0.2)
    y_keep, y_drop = keep(x), drop(x)
    np.testing.assert_array_equal(y_keep, y_drop)  # the same layer, spelled two ways
    kept = y_keep != 0
    np.testing.assert_allclose(y_keep[kept], x[kept] / np.float32(0.8), rtol=1e-6)
    frac = kept.mean()
    assert abs(frac - 0.8) < 5 * np.sqrt(0.8 * 0.2 / x.size)  # binomial: 5 sigma
    dy = r.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(keep.backward(dy), np.where(kept, dy / np.float32(0.8), 0), rtol=1e-6)
    # cs231n's p = 1 keeps everything; PyTorch's p = 1 drops everything
    with conventions.use("cs231n"):
        np.testing.assert_array_equal(nn.Dropout(1.0)(x), x)
    assert not np.any(nn.Dropout(1.0)(x))


# ---- SGD momentum_style -------------------------------------------------------------------

from normreg import optim  # noqa: E402


def _bowl(seed, shape, steps):
    """A gradient that depends on the parameter, plus fixed noise per step."""
    r = np.random.default_rng(seed)
    noise = r.standard_normal((steps,) + shape)
    scale = r.uniform(0.5, 2.0, shape)
    return lambda w, t: scale * (w - 1.0) + noise[t]


def _run(opt, params, grads, steps):
    for t in range(steps):
        for p, g in zip(params, grads):
            set_grad(p, g(p.data.astype(np.float64), t))
        opt.step()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_sgd_ema_matches_needle(dtype, weight_decay):
    steps, lr, momentum = 20, 0.1, 0.9
    r = np.random.default_rng(0)
    start = [3 * r.standard_normal(s) for s in ((4, 3), (3,))]
    grads = [_bowl(i + 1, w.shape, steps) for i, w in enumerate(start)]
    params = [nn.Parameter(w.astype(dtype)) for w in start]
    _run(
        optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, momentum_style="ema"),
        params,
        grads,
        steps,
    )
    # needle's SGD.step, transcribed: u starts at 0
    ws, us = [w.copy() for w in start], [0.0 for _ in start]
    for t in range(steps):
        for i, g in enumerate(grads):
            grad = g(ws[i], t) + weight_decay * ws[i]
            us[i] = momentum * us[i] + (1 - momentum) * grad
            ws[i] = ws[i] - lr * us[i]
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    for p, w in zip(params, ws):
        np.testing.assert_allclose(p.data, w, **tol)


def test_sgd_heavy_ball_is_cs231n_sgd_momentum():
    steps, lr, momentum = 15, 0.05, 0.9
    start = 3 * np.random.default_rng(1).standard_normal((5,))
    g = _bowl(7, start.shape, steps)
    p = nn.Parameter(start.copy())
    with conventions.use("cs231n"):
        opt = optim.SGD([p], lr=lr, momentum=momentum)
    assert opt.param_groups[0]["momentum_style"] == "heavy_ball"
    _run(opt, [p], [g], steps)
    w, v = start.copy(), np.zeros_like(start)
    for t in range(steps):  # cs231n optim.sgd_momentum
        v = momentum * v - lr * g(w, t)
        w = w + v
    np.testing.assert_allclose(p.data, w, rtol=1e-11, atol=1e-12)


def test_sgd_style_from_the_convention_and_checks():
    p = nn.Parameter(np.zeros(3))
    assert optim.SGD([p], lr=0.1).param_groups[0]["momentum_style"] == "heavy_ball"
    with conventions.use("needle"):
        assert optim.SGD([p], lr=0.1, momentum=0.9).param_groups[0]["momentum_style"] == "ema"
        assert (
            optim.SGD([p], lr=0.1, momentum_style="heavy_ball").param_groups[0]["momentum_style"]
            == "heavy_ball"
        )
    assert optim.SGD([p], lr=0.1, convention="needle").param_groups[0]["momentum_style"] == "ema"
    with pytest.raises(ValueError, match="momentum_style"):
        optim.SGD([p], lr=0.1, momentum_style="adam")
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, momentum_style="ema")
    with pytest.raises(ValueError, match="dampening"):
        optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5, momentum_style="ema")
    # per group: one group ema, the other heavy ball
    q = nn.Parameter(np.zeros(3))
    opt = optim.SGD([{"params": [p], "momentum_style": "ema"}, {"params": [q]}], lr=1.0, momentum=0.5)
    set_grad(p, 1.0)
    set_grad(q, 1.0)
    opt.step()
    np.testing.assert_allclose(p.data, -0.5)  # (1 - m) * g on the first step
    np.testing.assert_allclose(q.data, -1.0)  # PyTorch: the buffer starts as g


def test_sgd_ema_state_dict_round_trip_continues_identically():
    steps = 10
    start = np.random.default_rng(2).standard_normal((6,))
    g = _bowl(3, start.shape, 2 * steps)
    a = nn.Parameter(start.copy())
    opt_a = optim.SGD([a], lr=0.1, momentum=0.8, momentum_style="ema")
    _run(opt_a, [a], [g], steps)
    b = nn.Parameter(a.data.copy())
    opt_b = optim.SGD([b], lr=0.5, momentum=0.1)  # different settings, replaced by the load
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.param_groups[0]["momentum_style"] == "ema"
    for t in range(steps, 2 * steps):
        for p, o in ((a, opt_a), (b, opt_b)):
            set_grad(p, g(p.data, t))
            o.step()
    np.testing.assert_array_equal(a.data, b.data)


def test_param_groups_leave_out_every_normalization_weight():
    model = nn.Sequential(
        nn.Linear(4, 6),
        nn.LayerNorm((2, 3)),
        nn.Flatten(),
        nn.RMSNorm(6),
        nn.Linear(6, 8),
        nn.GroupNorm(2, 8),
        nn.BatchNorm1d(8),
    )
    decay, no_decay = optim.param_groups(model, 5e-4)
    assert [p.shape for p in decay["params"]] == [(4, 6), (6, 8)]
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert len(no_decay["params"]) == len(model.parameters()) - 2
