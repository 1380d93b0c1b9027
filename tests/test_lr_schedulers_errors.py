"""The new learning-rate schedulers' errors: bad arguments (TypeError / ValueError naming
the argument and the class, the optimizer's groups left as they were), steps that raise
(nothing changed), load_state_dict's checks (before anything changes). Their rates are
tested in test_lr_schedulers_more.py."""

import numpy as np
import pytest

from normreg import optim
from normreg.nn import Parameter
from normreg.optim import lr_scheduler as L

BASES = (0.1, 0.02)


def _opt(lrs=BASES, adam=False):
    groups = [{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    return optim.Adam(groups, lr=lrs[0]) if adam else optim.SGD(groups, lr=lrs[0], momentum=0.9)


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


# ---- bad arguments: TypeError / ValueError naming the argument, nothing written --------------


def _nine(**kw):
    return dict(total_steps=9, **kw)


BAD = [  # (scheduler, arguments after the optimizer, keyword arguments, exception, message)
    (L.MultiStepLR, [[2, -1]], {}, ValueError, r"milestones\[1\] must be >= 0, got -1"),
    (L.MultiStepLR, [[2, 3.0]], {}, TypeError, r"milestones\[1\] must be an int"),
    (L.MultiStepLR, [5], {}, TypeError, r"milestones must be an iterable of ints"),
    (L.MultiStepLR, [[2]], dict(gamma=-0.1), ValueError, r"gamma must be >= 0"),
    (L.ExponentialLR, [float("nan")], {}, ValueError, r"gamma must be a finite"),
    (L.ExponentialLR, ["0.9"], {}, TypeError, r"gamma must be a real number"),
    (L.ConstantLR, [], dict(factor=1.5), ValueError, r"factor must be in \(0, 1\]"),
    (L.ConstantLR, [], dict(factor=0), ValueError, r"factor must be in \(0, 1\]"),
    (L.ConstantLR, [], dict(total_iters=0), ValueError, r"total_iters must be positive"),
    (L.PolynomialLR, [], dict(total_iters=2.5), TypeError, r"total_iters must be an int"),
    (L.PolynomialLR, [], dict(power=-1), ValueError, r"power must be >= 0"),
    (L.LambdaLR, [0.5], {}, TypeError, r"lr_lambda must be a function"),
    (L.LambdaLR, [[lambda e: 1.0]], {}, ValueError, r"expected 2 lr_lambdas"),
    (L.MultiplicativeLR, [[lambda e: 1.0, None]], {}, TypeError, r"lr_lambda must be a function"),
    (L.LambdaLR, [lambda e: "x"], {}, TypeError, r"lr_lambda\(0\) of param_groups\[0\] must be a real"),
    (L.LambdaLR, [lambda e: 1 / e], {}, ValueError, r"lr_lambda of param_groups\[0\] raised ZeroDivision"),
    (
        L.LambdaLR,
        [lambda e: -1.0],
        {},
        ValueError,
        r"the learning rate of param_groups\[0\] at epoch 0 would be -0.1",
    ),
    (L.ReduceLROnPlateau, [], dict(factor=1.0), ValueError, r"factor must be in \[0, 1\)"),
    (L.ReduceLROnPlateau, [], dict(mode="median"), ValueError, r"mode must be one of 'min', 'max'"),
    (L.ReduceLROnPlateau, [], dict(threshold_mode=None), TypeError, r"threshold_mode must be one of"),
    (L.ReduceLROnPlateau, [], dict(threshold=-0.1), ValueError, r"threshold must be >= 0"),
    (L.ReduceLROnPlateau, [], dict(patience=-1), ValueError, r"patience must be >= 0"),
    (L.ReduceLROnPlateau, [], dict(cooldown=1.0), TypeError, r"cooldown must be an int"),
    (L.ReduceLROnPlateau, [], dict(min_lr=[0.1]), ValueError, r"expected 2 min_lrs"),
    (L.ReduceLROnPlateau, [], dict(min_lr=[0, -1]), ValueError, r"min_lr\[1\] must be >= 0"),
    (L.ReduceLROnPlateau, [], dict(eps=float("inf")), ValueError, r"eps must be a finite"),
    (L.OneCycleLR, [1.0], {}, ValueError, r"give either total_steps or both epochs and steps_per_epoch"),
    (L.OneCycleLR, [1.0], dict(total_steps=0), ValueError, r"total_steps must be positive"),
    (L.OneCycleLR, [1.0], dict(epochs=2, steps_per_epoch=1.5), TypeError, r"steps_per_epoch must be an int"),
    (L.OneCycleLR, [[1.0]], _nine(), ValueError, r"max_lr has 1 values"),
    (L.OneCycleLR, [1.0], _nine(pct_start=1.5), ValueError, r"pct_start must be in \[0, 1\]"),
    (L.OneCycleLR, [1.0], _nine(anneal_strategy="exp"), ValueError, r"anneal_strategy must be one of"),
    (L.OneCycleLR, [1.0], _nine(cycle_momentum=1), TypeError, r"cycle_momentum must be a bool"),
    (L.OneCycleLR, [1.0], _nine(div_factor=0), ValueError, r"div_factor must be > 0"),
    (L.OneCycleLR, [1.0], _nine(max_momentum=[0.9, -1]), ValueError, r"max_momentum\[1\] must be >= 0"),
    # the constructor's own step divides by zero, in a phase of no steps (PyTorch: ZeroDivisionError)
    (
        L.OneCycleLR,
        [1.0],
        dict(total_steps=2, pct_start=0.5, three_phase=True),
        ValueError,
        r"the learning rate of param_groups\[0\] at epoch 0 would be inf",
    ),
]


@pytest.mark.parametrize(
    "cls,args,kwargs,exc,msg", BAD, ids=[f"{b[0].__name__}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_arguments_name_the_argument_and_write_nothing(cls, args, kwargs, exc, msg):
    opt = _opt()
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(exc, match=rf"^{cls.__name__}: {msg}"):
        cls(opt, *args, **kwargs)
    assert opt.param_groups == before  # not even an 'initial_lr'


GOOD = [  # (scheduler, arguments after the optimizer)
    (L.MultiStepLR, [[2]]),
    (L.ExponentialLR, [0.9]),
    (L.ConstantLR, []),
    (L.PolynomialLR, []),
    (L.LambdaLR, [abs]),
    (L.MultiplicativeLR, [abs]),
    (L.ReduceLROnPlateau, []),
    (L.OneCycleLR, [1.0, 5]),
]


@pytest.mark.parametrize("cls,args", GOOD, ids=[g[0].__name__ for g in GOOD])
def test_the_optimizer_must_be_one(cls, args):
    with pytest.raises(TypeError, match=rf"^{cls.__name__}: str is not a normreg.optim.Optimizer"):
        cls("opt", *args)
    cls(_opt(), *args)  # the arguments are good


def test_adam_beta1_must_stay_below_1():
    opt = _opt(adam=True)
    with pytest.raises(ValueError, match=r"^OneCycleLR: max_momentum must be in \[0, 1\)"):
        L.OneCycleLR(opt, 1.0, total_steps=9, max_momentum=1.0)
    assert all(
        set(g) == {"params", "lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"}
        for g in opt.param_groups
    )


def test_a_step_that_raises_changes_nothing():
    opt = _opt()
    calls = []
    sched = L.MultiplicativeLR(opt, lambda e: calls.append(e) or (0.5 if e < 3 else "x"))
    sched.step()
    sched.step()
    state = sched.state_dict()
    with pytest.raises(
        TypeError, match=r"MultiplicativeLR: lr_lambda\(3\) of param_groups\[0\] must be a real number"
    ):
        sched.step()
    assert sched.state_dict() == state and _lrs(opt) == [0.025, 0.005]

    sched = L.ReduceLROnPlateau(opt, patience=0, min_lr=[0, 0])
    sched.step(1.0)
    state = sched.state_dict()
    for bad, exc in (("0.5", TypeError), (np.array([0.5, 1.0]), TypeError), (True, TypeError)):
        with pytest.raises(exc, match="ReduceLROnPlateau.step: metrics must be a real number"):
            sched.step(bad)
        assert sched.state_dict() == state
    opt.add_param_group({"params": [Parameter(np.zeros(1))], "lr": 0.3})  # min_lr had 2 entries
    with pytest.raises(RuntimeError, match="optimizer has 3 parameter groups, min_lr had 2 values"):
        sched.step(2.0)
    assert sched.state_dict() == state and _lrs(opt) == [0.025, 0.005, 0.3]

    # OneCycleLR: linear, with no rising phase: step 3 (allowed, = total_steps) would carry the
    # line from max_lr to min_lr on below 0 (PyTorch writes that rate); the momenta that
    # get_lr() set are put back
    opt = _opt()
    sched = L.OneCycleLR(opt, 1.0, total_steps=3, anneal_strategy="linear", pct_start=0.0)
    for _ in range(2):
        sched.step()
    lrs, momenta = _lrs(opt), [g["momentum"] for g in opt.param_groups]
    with pytest.raises(ValueError, match=r"param_groups\[0\] at epoch 3 would be -0.33"):
        sched.step()
    assert sched.last_epoch == 2 and _lrs(opt) == lrs and [g["momentum"] for g in opt.param_groups] == momenta


@pytest.mark.parametrize(
    "make,key,value,exc,msg",
    [
        (lambda o: L.MultiStepLR(o, [3]), "milestones", {3: 0}, ValueError, r"milestones\[3\] \(a count\)"),
        (lambda o: L.PolynomialLR(o), "power", -2.0, ValueError, "power must be >= 0"),
        (lambda o: L.LambdaLR(o, abs), "lr_lambdas", [None], ValueError, "lr_lambdas must be a list of 2"),
        (lambda o: L.LambdaLR(o, abs), "lr_lambdas", [None, 3], TypeError, r"lr_lambdas\[1\] must be None"),
        (lambda o: L.ReduceLROnPlateau(o), "mode", "median", ValueError, "mode must be one of"),
        (lambda o: L.ReduceLROnPlateau(o), "best", float("nan"), ValueError, "best must be a finite"),
        (lambda o: L.ReduceLROnPlateau(o), "_last_lr", [0.1], ValueError, "_last_lr has 1 entries"),
        (
            lambda o: L.OneCycleLR(o, 1.0, total_steps=5),
            "_anneal_func_type",
            "exp",
            ValueError,
            "must be one of",
        ),
        (
            lambda o: L.OneCycleLR(o, 1.0, total_steps=5),
            "_schedule_phases",
            [{}],
            ValueError,
            "a list of 2 or 3",
        ),
    ],
)
def test_load_state_dict_checks_first(make, key, value, exc, msg):
    sched = make(_opt())
    good = sched.state_dict()
    with pytest.raises(exc, match=msg):
        sched.load_state_dict(dict(good, **{key: value}))
    assert sched.state_dict() == good
