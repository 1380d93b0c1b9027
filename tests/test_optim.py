"""Optimizers against independent NumPy references of their update rules."""

import numpy as np
import pytest
import reference as R
from helpers import adam_reference, bowl_grad, optim_tol, random_params, run_steps, set_grad, train_steps

import normreg
from normreg import functional as F
from normreg import nn, optim
from normreg.nn import Parameter

DTYPES = [np.float32, np.float64]
STEPS = 25


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.8, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.02, momentum=0.9, weight_decay=5e-2, nesterov=True),
    dict(lr=0.03, momentum=0.7, dampening=0.5, weight_decay=1e-2),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_sgd_matches_reference(dtype, cfg):
    params = random_params(dtype)
    refs = [p.data.astype(np.float64) for p in params]
    bufs = [None] * len(params)
    grads = [bowl_grad(i + 1, p.shape) for i, p in enumerate(params)]
    opt = optim.SGD(params, **cfg)
    run_steps(opt, params, grads, 0, STEPS)
    for t in range(STEPS):
        for i, gf in enumerate(grads):
            refs[i], bufs[i] = R.sgd_step(refs[i], gf(refs[i], t), bufs[i], **cfg)
    for p, r in zip(params, refs):
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, r, **optim_tol(dtype))
    if cfg.get("momentum", 0):
        for p, b in zip(params, bufs):
            np.testing.assert_allclose(opt.state[p]["momentum_buffer"], b, **optim_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_weight_decay_is_the_lecture_rule(dtype):
    """W := (1 - lr*lambda) W - lr*grad, step after step."""
    lr, lam = 0.1, 0.3
    (p,) = random_params(dtype, ((6, 3),))
    w = p.data.astype(np.float64)
    rng = np.random.default_rng(5)
    opt = optim.SGD([p], lr=lr, weight_decay=lam)
    for _ in range(STEPS):
        g = rng.standard_normal(p.shape).astype(dtype)
        set_grad(p, g)
        opt.step()
        w = (1 - lr * lam) * w - lr * g
    np.testing.assert_allclose(p.data, w, **optim_tol(dtype))


ADAM_CONFIGS = [
    dict(),
    dict(lr=0.05, betas=(0.8, 0.99)),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.02, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.05, amsgrad=True),
    dict(lr=0.01, betas=(0.0, 0.9)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled", [False, True], ids=["Adam", "AdamW"])
@pytest.mark.parametrize(
    "cfg", ADAM_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "defaults"
)
def test_adam_matches_reference(dtype, decoupled, cfg):
    params = random_params(dtype)
    refs = [p.data.astype(np.float64) for p in params]
    states = [{} for _ in params]
    grads = [bowl_grad(i + 7, p.shape) for i, p in enumerate(params)]
    cls = optim.AdamW if decoupled else optim.Adam
    opt = cls(params, **cfg)
    full = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, weight_decay=1e-2 if decoupled else 0.0)
    full.update(cfg)
    run_steps(opt, params, grads, 0, STEPS)
    for t in range(STEPS):
        for i, gf in enumerate(grads):
            refs[i] = adam_reference(refs[i], gf(refs[i], t), states[i], decoupled=decoupled, **full)
    # float32: the step divides by sqrt(v) + eps, which amplifies rounding a little
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for p, r, st in zip(params, refs, states):
        np.testing.assert_allclose(p.data, r, **tol)
        assert opt.state[p]["step"] == STEPS
        np.testing.assert_allclose(opt.state[p]["exp_avg"], st["m"], **tol)
        np.testing.assert_allclose(opt.state[p]["exp_avg_sq"], st["v"], **tol)


def test_adamw_decays_weights_directly_and_adam_through_the_gradient():
    """With a zero gradient Adam(weight_decay) moves by the normalized decay term (~lr per
    element) while AdamW shrinks W by exactly (1 - lr*wd) per step and makes no Adam step."""
    w0 = np.array([2.0, -3.0, 0.5])
    pa, pw = Parameter(w0.copy()), Parameter(w0.copy())  # Parameter(w0) would share w0
    set_grad(pa, 0.0)
    set_grad(pw, 0.0)
    lr, wd = 0.01, 0.1
    adamw = optim.AdamW([pw], lr=lr, weight_decay=wd)
    adam = optim.Adam([pa], lr=lr, weight_decay=wd)
    for _ in range(3):
        adamw.step()
        adam.step()
    np.testing.assert_allclose(pw.data, w0 * (1 - lr * wd) ** 3, rtol=1e-12)
    # Adam: g = wd*W has the sign of W, m/sqrt(v) ~ 1 -> W moves by ~lr toward 0 per step
    np.testing.assert_allclose(np.abs(w0) - np.abs(pa.data), 3 * lr, rtol=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_buffer_uses_threads_and_matches_reference(dtype):
    n = 1 << 18
    rng = np.random.default_rng(3)
    w = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    results = []
    for threads in (1, 2):
        old = normreg.get_num_threads()
        normreg.set_num_threads(threads)
        try:
            p = Parameter(w.copy())  # Parameter(w) would share w
            opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True)
            adam_p = Parameter(w.copy())
            adam = optim.AdamW([adam_p], lr=0.1)
            for _ in range(3):
                set_grad(p, g)
                set_grad(adam_p, g)
                opt.step()
                adam.step()
            results.append((p.data.copy(), adam_p.data.copy()))
        finally:
            normreg.set_num_threads(old)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    ref, buf = w.astype(np.float64), None
    for _ in range(3):
        ref, buf = R.sgd_step(ref, g.astype(np.float64), buf, 0.1, 0.9, 0.0, 1e-2, True)
    np.testing.assert_allclose(results[0][0], ref, **optim_tol(dtype))


# ---- parameter groups ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_parameter_groups_have_their_own_hyperparameters(dtype):
    a, b = random_params(dtype, ((4, 3), (3,)))
    ra, rb = a.data.astype(np.float64), b.data.astype(np.float64)
    ba = bb = None
    opt = optim.SGD(
        [{"params": [a], "weight_decay": 0.1}, {"params": [b], "lr": 0.5, "momentum": 0.0}],
        lr=0.05,
        momentum=0.9,
    )
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["weight_decay"] == 0.0
    assert opt.param_groups[1]["nesterov"] is False and opt.param_groups[1]["dampening"] == 0.0
    rng = np.random.default_rng(1)
    for _ in range(STEPS):
        ga = rng.standard_normal(a.shape).astype(dtype)
        gb = rng.standard_normal(b.shape).astype(dtype)
        a.grad, b.grad = ga.copy(), gb.copy()
        opt.step()
        ra, ba = R.sgd_step(ra, ga, ba, 0.05, 0.9, 0.0, 0.1)
        rb, bb = R.sgd_step(rb, gb, bb, 0.5)
    np.testing.assert_allclose(a.data, ra, **optim_tol(dtype))
    np.testing.assert_allclose(b.data, rb, **optim_tol(dtype))
    assert opt.state[b]["momentum_buffer"] is None


def test_param_groups_helper_splits_weights_from_biases_and_norm_weights():
    model = nn.Sequential(
        nn.Linear(6, 8),
        nn.LayerNorm(8),
        nn.ReLU(),
        nn.Linear(8, 5),
        nn.BatchNorm1d(5),
        nn.Linear(5, 2, bias=False),
    )
    groups = optim.param_groups(model, 5e-4)
    assert len(groups) == 2
    decay = {id(p) for p in groups[0]["params"]}
    no_decay = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 5e-4 and groups[1]["weight_decay"] == 0.0
    named = dict(model.named_parameters())
    assert decay == {id(named[k]) for k in ("0.weight", "3.weight", "5.weight")}
    assert no_decay == {
        id(named[k]) for k in ("0.bias", "1.weight", "1.bias", "3.bias", "4.weight", "4.bias")
    }
    # used as is: biases and normalization weights are not decayed
    opt = optim.SGD(groups, lr=0.1, momentum=0.9)
    bias_before = named["0.bias"].data.copy()
    w_before = named["0.weight"].data.astype(np.float64)
    for p in model.parameters():
        set_grad(p, 0.0)
    opt.step()
    np.testing.assert_array_equal(named["0.bias"].data, bias_before)
    np.testing.assert_allclose(named["0.weight"].data, w_before * (1 - 0.1 * 5e-4), rtol=1e-6)
    with pytest.raises(TypeError, match="module"):
        optim.param_groups(model.parameters(), 1e-4)
    assert len(optim.param_groups(nn.Linear(3, 2, bias=False), 0.1)) == 1


def test_params_may_be_a_generator_a_list_or_groups():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    for params in (
        model.parameters(),
        (p for p in model.parameters()),
        [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 1.0}],
    ):
        opt = optim.Adam(params)
        assert sum(len(g["params"]) for g in opt.param_groups) == 4


# ---- step, zero_grad, closure ------------------------------------------------------------


def test_zero_grad_step_skips_missing_grad_and_returns_closure_loss():
    a, b = random_params(np.float64, ((3,), (2,)))
    set_grad(a, 1.0)
    b.grad = None
    before = b.data.copy()
    opt = optim.SGD([a, b], lr=0.1)
    assert opt.step(lambda: 3.5) == 3.5
    np.testing.assert_array_equal(b.data, before)
    assert b not in opt.state
    held = a.grad
    opt.zero_grad(set_to_none=False)
    assert a.grad is held and b.grad is None
    np.testing.assert_array_equal(a.grad, 0.0)
    opt.zero_grad()  # PyTorch 2's default
    assert a.grad is None and b.grad is None
    with pytest.raises(TypeError, match="set_to_none"):
        opt.zero_grad(set_to_none=1)


def test_training_loop_decreases_the_loss():
    normreg.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, 3))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 10)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    for opt in (
        optim.SGD(optim.param_groups(model, 5e-4), lr=0.1, momentum=0.9),
        optim.AdamW(model.parameters(), lr=1e-2),
    ):
        losses = train_steps(model, opt, x, y, 30)
        assert losses[-1] < 0.7 * losses[0]


# ---- optional cross-check against PyTorch --------------------------------------------------


INF_PARAM_CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.8, dampening=0.3)),
    ("Adam", dict(lr=0.1)),
    ("Adam", dict(lr=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.1, weight_decay=0.0)),
    ("AdamW", dict(lr=0.1, weight_decay=0.1, amsgrad=True)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kwargs", INF_PARAM_CONFIGS, ids=lambda c: str(c))
def test_no_weight_decay_term_keeps_the_state_of_an_infinite_param_finite(dtype, name, kwargs):
    """weight_decay == 0 (and AdamW's decoupled decay) adds no ``0 * param`` to the gradient,
    as PyTorch: an infinite entry stays infinite, and its momentum / moments stay those of its
    gradient (0 * inf would make them NaN for good)."""
    w0 = np.array([1.0, np.inf, -np.inf, -2.0], dtype)
    grads = [np.array([0.5, 0.5, -0.25, 1.0], dtype) * (k + 1) for k in range(3)]
    p = Parameter(w0.copy())
    opt = getattr(optim, name)([p], **kwargs)
    wd = kwargs.get("weight_decay", 0.0)
    ref, buf, st = w0.astype(np.float64), None, {}
    for g in grads:
        p.grad = g.copy()
        opt.step()
        if name == "SGD":
            sgd_kw = {k: v for k, v in kwargs.items() if k != "lr"}
            ref, buf = R.sgd_step(ref, g, buf, kwargs["lr"], **sgd_kw)
        else:
            ref = adam_reference(
                ref,
                g,
                st,
                lr=kwargs["lr"],
                weight_decay=wd,
                amsgrad=kwargs.get("amsgrad", False),
                decoupled=name == "AdamW",
            )
    np.testing.assert_allclose(p.data, ref, **optim_tol(dtype))
    np.testing.assert_array_equal(np.isinf(p.data), [False, True, True, False])
    state = [v for v in opt.state[p].values() if isinstance(v, np.ndarray)]
    assert all(np.isfinite(v).all() for v in state)  # plain SGD: no state to check
    if name == "SGD" and "momentum" in kwargs:
        np.testing.assert_allclose(opt.state[p]["momentum_buffer"], buf, **optim_tol(dtype))
    elif name != "SGD":
        np.testing.assert_allclose(opt.state[p]["exp_avg"], st["m"], **optim_tol(dtype))
        np.testing.assert_allclose(opt.state[p]["exp_avg_sq"], st["v"], **optim_tol(dtype))


def test_functional_steps_without_weight_decay_keep_an_infinite_param_out_of_the_state():
    p = np.array([np.inf, 1.0])
    buf = np.empty(2)
    F.sgd_step_(p, np.array([0.5, 0.5]), buf, lr=0.1, momentum=0.9, first_step=True)
    np.testing.assert_array_equal(buf, [0.5, 0.5])
    p = np.array([np.inf, 1.0])
    m, v = np.zeros(2), np.zeros(2)
    F.adam_step_(p, np.array([0.5, 0.5]), m, v, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    np.testing.assert_allclose(m, [0.05, 0.05])
    np.testing.assert_allclose(v, [0.00025, 0.00025])
    assert p[0] == np.inf and p[1] == pytest.approx(0.9)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.0, weight_decay=1e-2, nesterov=True)),
        ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.2, weight_decay=1e-2)),
        ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=1e-2, amsgrad=True)),
        ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ],
)
def test_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal((7, 5)).astype(np.float32)
    p = Parameter(w0)
    tp = torch.nn.Parameter(torch.tensor(w0))
    opt = getattr(optim, name)([p], **kwargs)
    topt = getattr(torch.optim, name)([tp], foreach=False, **kwargs)
    for _ in range(STEPS):
        g = rng.standard_normal(w0.shape).astype(np.float32)
        set_grad(p, g)
        tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps, lr=0.01)],
    ids=["SGD", "Adam"],
)
def test_failed_first_step_makes_no_state(make):
    """The first step of several parameters, the last of whose gradients is wrong: nothing is
    updated and no state is made (the kernels check every parameter before writing any)."""
    ps = [Parameter(np.ones(3, np.float32)), Parameter(np.ones(2, np.float32))]
    ps[0].grad, ps[1].grad = np.ones(3, np.float32), np.ones(5, np.float32)
    opt = make(ps)
    with pytest.raises(ValueError, match="grad"):
        opt.step()
    assert len(opt.state) == 0
    np.testing.assert_array_equal(ps[0].data, 1)
    ps[1].grad = np.ones(2, np.float32)
    opt.step()
    assert len(opt.state) == 2


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_maximize_ascends_with_the_gradient_left_as_it_is(name):
    """maximize=True, as PyTorch's: the reference rule run on -grad; .grad is not written."""
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((5, 4)).astype(np.float32)
    grads = [rng.standard_normal((5, 4)).astype(np.float32) for _ in range(3)]
    p = Parameter(w0.copy())
    if name == "SGD":
        opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01, maximize=True)
    else:
        opt = getattr(optim, name)([p], lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)
    ref, buf, m, v, vmax = w0.astype(np.float64), None, np.zeros((5, 4)), np.zeros((5, 4)), np.zeros((5, 4))
    for t, g in enumerate(grads, start=1):
        p.grad = g.copy()
        opt.step()
        np.testing.assert_array_equal(p.grad, g)  # the gradient is the caller's
        if name == "SGD":
            ref, buf = R.sgd_step(ref, -g, buf, 0.1, momentum=0.9, weight_decay=0.01)
        else:
            ref, m, v, vmax = R.adam_step(
                ref, -g, m, v, vmax, t, 0.01, 0.9, 0.999, 1e-8, 0.1, name == "AdamW"
            )
        np.testing.assert_allclose(p.data, ref, rtol=1e-5, atol=1e-6)
    assert opt.state_dict()["param_groups"][0]["maximize"] is True
    with pytest.raises(TypeError, match="maximize"):
        optim.SGD([p], lr=0.1, maximize="yes").step()
