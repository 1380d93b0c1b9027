"""Optimizers' state_dict (round trips that continue bit for bit, its layout, every check of
load_state_dict) and their bad arguments (constructors, the functional steps, the binding)."""

import numpy as np
import pytest
import reference as R
from helpers import bowl_grad, random_params, run_steps, set_grad

import normreg
from normreg import functional as F
from normreg import nn, optim
from normreg.nn import Parameter

# ---- state_dict ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: optim.SGD(
            [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01}],
            lr=0.05,
            momentum=0.9,
            nesterov=True,
            weight_decay=1e-3,
        ),
        lambda ps: optim.Adam(ps, lr=0.02, weight_decay=1e-2, amsgrad=True),
        lambda ps: optim.AdamW([{"params": ps[:1], "weight_decay": 0.0}, {"params": ps[1:]}], lr=0.02),
    ],
    ids=["SGD", "Adam", "AdamW"],
)
@pytest.mark.parametrize("through_file", [False, True])
def test_state_dict_round_trip_mid_training_gives_the_identical_continuation(make, through_file, tmp_path):
    params = random_params(np.float32)
    grads = [bowl_grad(i + 11, p.shape) for i, p in enumerate(params)]
    opt = make(params)
    run_steps(opt, params, grads, 0, 10)
    sd = opt.state_dict()
    snapshot = [p.data.copy() for p in params]
    if through_file:
        normreg.save({"optimizer": sd, "params": snapshot}, tmp_path / "ck.npz")
        loaded = normreg.load(tmp_path / "ck.npz")
        sd, snapshot = loaded["optimizer"], loaded["params"]
    run_steps(opt, params, grads, 10, 20)

    clones = [Parameter(s) for s in snapshot]
    opt2 = make(clones)
    opt2.load_state_dict(sd)
    run_steps(opt2, clones, grads, 10, 20)
    for p, c in zip(params, clones):
        np.testing.assert_array_equal(p.data, c.data)
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_state_dict_layout_and_copies():
    a, b = random_params(np.float64, ((3, 2), (2,)))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    set_grad(a, 1)
    set_grad(b, 2)
    opt.step()
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][1]["params"] == [1]
    assert sd["param_groups"][1]["lr"] == 0.5
    assert set(sd["state"]) == {0, 1}
    buf = sd["state"][0]["momentum_buffer"]
    np.testing.assert_array_equal(buf, 1.0)
    opt.step()
    np.testing.assert_array_equal(buf, 1.0)  # a copy: later steps leave it alone
    sd["param_groups"][0]["lr"] = 9.0
    assert opt.param_groups[0]["lr"] == 0.1


def test_load_state_dict_checks_everything_and_names_the_entry():
    a, b = random_params(np.float32, ((3, 2), (2,)))
    opt = optim.Adam([a, b], lr=0.1)
    set_grad(a, 1)
    set_grad(b, 1)
    opt.step()
    good = opt.state_dict()

    def broken(edit):
        sd = opt.state_dict()
        edit(sd)
        return sd

    cases = [
        (
            lambda sd: sd["state"][0].__setitem__("exp_avg", np.zeros((2, 3), np.float32)),
            ValueError,
            r"state\[0\]\['exp_avg'\] has shape",
        ),
        (
            lambda sd: sd["state"][1].__setitem__("exp_avg_sq", np.zeros(2, np.float64)),
            TypeError,
            r"state\[1\]\['exp_avg_sq'\] has dtype float64",
        ),
        (lambda sd: sd["state"][0].pop("step"), KeyError, r"state\[0\] has missing keys \['step'\]"),
        # issue 11, item 9: a negative step count is a ValueError naming the field
        (lambda sd: sd["state"][0].__setitem__("step", -5), ValueError, r"state\[0\]\['step'\] must be >= 0"),
        (
            lambda sd: sd["state"][1].__setitem__("step", np.int64(-5)),
            ValueError,
            r"state\[1\]\['step'\] must be >= 0, got -5",
        ),
        (lambda sd: sd["state"][0].__setitem__("velocity", 1), KeyError, "unexpected keys.*velocity"),
        (lambda sd: sd["state"].__setitem__(5, {}), KeyError, "state key 5"),
        (lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), ValueError, "2 groups"),
        (lambda sd: sd["param_groups"][0]["params"].pop(), ValueError, r"param_groups\[0\] has 1 parameters"),
        (lambda sd: sd["param_groups"][0].__setitem__("lr", -1.0), ValueError, "learning rate"),
        # the parameter indices of a group: ints (not bools, floats or strings), each once
        *[
            (
                lambda sd, v=v: sd["param_groups"][0].__setitem__("params", v),
                TypeError,
                rf"^load_state_dict: param_groups\[0\]\['params'\]\[{j}\] \(a parameter index\) "
                rf"must be an int, got {t}$",
            )
            for v, j, t in [
                ([0.7, 1], 0, "float"),
                ([0, 1.0], 1, "float"),
                (["0", 1], 0, "str"),
                (["x", 1], 0, "str"),
                ([True, 0], 0, "bool"),
                ([1, np.bool_(False)], 1, "bool"),
            ]
        ],
        (
            lambda sd: sd["param_groups"][0].__setitem__("params", None),
            TypeError,
            r"^load_state_dict: param_groups\[0\]\['params'\] must be a list of parameter "
            r"indices \(ints\), got NoneType$",
        ),
        (
            lambda sd: sd["param_groups"][0].__setitem__("params", "01"),
            TypeError,
            r"param_groups\[0\]\['params'\] must be a list of parameter indices",
        ),
        (
            lambda sd: sd["param_groups"][0].__setitem__("params", [1, 1]),
            ValueError,
            r"must number the parameters 0..1, each once, got \[1, 1\]",
        ),
        (lambda sd: sd["param_groups"][0].__setitem__("momentum", 0.9), KeyError, "unknown keys"),
        (lambda sd: sd.pop("state"), KeyError, "'state'"),
    ]
    before = [p.data.copy() for p in (a, b)]
    state_before = {k: v.copy() for k, v in opt.state[a].items() if isinstance(v, np.ndarray)}
    for edit, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            opt.load_state_dict(broken(edit))
    # nothing changed by the failed loads
    for k, v in state_before.items():
        np.testing.assert_array_equal(opt.state[a][k], v)
    assert opt.param_groups[0]["lr"] == 0.1
    assert opt.state_dict()["param_groups"] == good["param_groups"]
    opt.load_state_dict(good)
    for p, bef in zip((a, b), before):
        np.testing.assert_array_equal(p.data, bef)
    # NumPy integers are ints: the saved [1, 0] names b with saved index 0 (PyTorch's
    # mapping), so a's (3, 2) moments, saved as state[0], do not fit b's (2,)
    swapped = opt.state_dict()
    swapped["param_groups"][0]["params"] = [np.int64(1), np.int32(0)]
    with pytest.raises(ValueError, match=r"state\[0\]\['exp_avg'\] has shape \(3, 2\), expected \(2,\)"):
        opt.load_state_dict(swapped)
    swapped["state"] = {0: swapped["state"][1], 1: swapped["state"][0]}
    opt.load_state_dict(swapped)
    np.testing.assert_array_equal(opt.state[a]["exp_avg"], good["state"][0]["exp_avg"])
    with pytest.raises(TypeError, match="mapping"):
        opt.load_state_dict([1, 2])


# ---- bad arguments ---------------------------------------------------------------------------


def test_bad_arguments():
    (p,) = random_params(np.float32, ((2, 2),))
    assert optim.SGD([p]).param_groups[0]["lr"] == 1e-3  # PyTorch 2's default learning rate
    bad = [
        (lambda: optim.SGD([p], lr=-0.1), ValueError, "learning rate"),
        (lambda: optim.SGD([p], lr=0.1, momentum=-0.5), ValueError, "momentum"),
        (lambda: optim.SGD([p], lr=0.1, weight_decay=-1e-4), ValueError, "weight_decay"),
        (lambda: optim.SGD([p], lr=0.1, nesterov=True), ValueError, "Nesterov"),
        (lambda: optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "Nesterov"),
        (lambda: optim.SGD([p], lr="0.1"), TypeError, "learning rate"),
        (lambda: optim.SGD([p], lr=float("nan")), ValueError, "learning rate"),
        (lambda: optim.Adam([p], betas=(1.0, 0.999)), ValueError, "beta parameter at index 0"),
        (lambda: optim.Adam([p], betas=(0.9, -0.1)), ValueError, "beta parameter at index 1"),
        (lambda: optim.Adam([p], betas=0.9), ValueError, "betas"),
        (
            lambda: optim.Adam([p], eps=-1e-8),
            ValueError,
            r"^Adam: eps \(epsilon value\) must be >= 0, got -1e-08$",
        ),
        (lambda: optim.AdamW([p], weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: optim.Adam([p], amsgrad="yes"), TypeError, "amsgrad"),
        (lambda: optim.Adam([]), ValueError, "empty parameter list"),
        (lambda: optim.Adam(p), TypeError, "single Parameter"),
        (lambda: optim.Adam(nn.Linear(2, 2)), TypeError, "module.parameters"),
        (lambda: optim.Adam(5), TypeError, "iterable"),
        (lambda: optim.Adam([p.data]), TypeError, r"params\[0\]"),
        (lambda: optim.Adam([p, p]), ValueError, "more than once"),
        (lambda: optim.Adam([{"params": [p]}, {"params": [p]}]), ValueError, "more than one"),
        (lambda: optim.Adam([{"params": [p], "momentum": 0.9}]), ValueError, "unknown hyperparameter"),
        (lambda: optim.Adam([{"lr": 0.1}]), ValueError, "'params'"),
        (lambda: optim.SGD([{"params": [p], "lr": -1}], lr=0.1), ValueError, "learning rate"),
    ]
    for make, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            make()


@pytest.mark.parametrize(
    "betas",
    [[0.8, 0.9], np.array([0.8, 0.9]), np.array([0.8, 0.9], np.float32), (np.float64(0.8), 0.9)],
    ids=["list", "array", "float32 array", "numpy scalar"],
)
def test_betas_may_be_any_sequence_of_two_reals(betas):
    """As torch.optim.Adam: betas is any pair of real numbers, stored as a tuple of floats;
    the steps are those of the same betas given as a tuple (the NumPy reference's)."""
    w0 = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = np.array([[0.3, -0.1], [0.2, 0.4]])
    p = Parameter(w0.copy())
    opt = optim.Adam([p], lr=0.1, betas=betas)
    b1, b2 = (float(b) for b in betas)
    assert opt.param_groups[0]["betas"] == (b1, b2)
    assert all(type(b) is float for b in opt.param_groups[0]["betas"])
    p.grad = g.copy()
    opt.step()
    want, *_ = R.adam_step(w0, g, np.zeros((2, 2)), np.zeros((2, 2)), None, 1, 0.1, b1, b2, 1e-8, 0.0, False)
    np.testing.assert_allclose(p.data, want, rtol=1e-12)


@pytest.mark.parametrize(
    "betas,exc",
    [
        (np.array([0.8, 0.9, 0.99]), ValueError),
        (np.array([[0.8], [0.9]]), ValueError),
        ("89", ValueError),
        ([0.8, "0.9"], TypeError),
        (np.array([0.8, 1.0]), ValueError),
    ],
)
def test_bad_betas_are_refused(betas, exc):
    (p,) = random_params(np.float32, ((2, 2),))
    with pytest.raises(exc, match="beta"):
        optim.Adam([p], betas=betas)


def test_functional_steps_check_their_arrays():
    p = np.zeros((3, 2), np.float32)
    g = np.ones((3, 2), np.float32)
    with pytest.raises(TypeError, match="grad"):
        F.sgd_step_(p, g.astype(np.float64), lr=0.1)
    with pytest.raises(ValueError, match="grad"):
        F.sgd_step_(p, np.ones((2, 3), np.float32), lr=0.1)
    wide = np.zeros((3, 4), np.float32)  # a strided param (and buffer) is updated in place
    buf = np.zeros((2, 3), np.float32).T
    assert F.sgd_step_(wide[:, ::2], g, buf, lr=0.1, momentum=0.9, first_step=True).base is wide
    np.testing.assert_array_equal(wide, np.tile(np.float32([-0.1, 0]), (3, 2)))
    np.testing.assert_array_equal(buf, 1.0)
    w, m, v = np.ones((2, 3)).T, np.zeros((2, 3)).T, np.zeros((3, 2))  # Fortran-ordered
    F.adam_step_(w, np.ones((3, 2)), m, v, step=1, lr=0.1, beta1=0.9, beta2=0.99, eps=0.0)
    np.testing.assert_allclose(w, 0.9)  # the first step moves by lr * sign(grad)
    np.testing.assert_allclose(m, 0.1)
    np.testing.assert_allclose(v, 0.01)
    with pytest.raises(TypeError, match="param"):
        F.sgd_step_(np.zeros((3, 2), np.int32), g, lr=0.1)
    with pytest.raises(ValueError, match="momentum_buffer"):
        F.sgd_step_(p, g, lr=0.1, momentum=0.9)
    with pytest.raises(TypeError, match="exp_avg_sq"):
        F.adam_step_(
            p, g, np.zeros_like(p), np.zeros((3, 2)), step=1, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8
        )
    ro = np.zeros((3, 2), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param"):
        F.sgd_step_(ro, g, lr=0.1)
    np.testing.assert_array_equal(p, 0.0)
    # the binding itself names the argument too
    from normreg import _C

    with pytest.raises(TypeError, match="'grad'"):
        _C.sgd_step(p, g.astype(np.float64), None, 0.1, 0.0, 0.0, 0.0, False, False)
    with pytest.raises(ValueError, match="'momentum_buffer'"):
        _C.sgd_step(p, g, np.zeros(6, np.float32), 0.1, 0.9, 0.0, 0.0, False, False)
    with pytest.raises(TypeError, match="'lr'"):
        _C.adam_step(
            p, g, np.zeros_like(p), np.zeros_like(p), None, "x", 0.9, 0.99, 1e-8, 0.0, False, 0.1, 0.01
        )
    with pytest.raises(TypeError, match="13 arguments"):
        _C.adam_step(p, g)
