"""MultiStepLR, ExponentialLR, ConstantLR, PolynomialLR, LambdaLR, MultiplicativeLR,
OneCycleLR and ReduceLROnPlateau: each rate sequence against its formula written here in
plain Python, composition with other schedulers, state_dict round trips through a
checkpoint, and the exact sequences and state_dict entries of torch.optim.lr_scheduler when
torch is installed. (Their errors are in test_lr_schedulers_errors.py.)"""

import collections
import math

import numpy as np
import pytest

import normreg
from normreg import optim
from normreg.nn import Parameter
from normreg.optim import lr_scheduler as L

BASES = (0.1, 0.02)
N = 25


def _opt(lrs=BASES, adam=False):
    groups = [{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    return optim.Adam(groups, lr=lrs[0]) if adam else optim.SGD(groups, lr=lrs[0], momentum=0.9)


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


def _trace(opt, scheds, n=N):
    """The groups' rates before each of n epochs, each epoch stepping every scheduler in turn
    (the last one's get_last_lr() must be the groups' rates)."""
    out = []
    for _ in range(n):
        assert _lrs(opt) == scheds[-1].get_last_lr()
        out.append(_lrs(opt))
        opt.step()
        for s in scheds:
            s.step()
    return np.array(out)


def _expect(factor, n=N, bases=BASES):
    """[[base * factor(e) for base in bases] for e in 0..n-1]."""
    return np.array([[b * factor(e) for b in bases] for e in range(n)])


# ---- each schedule alone: its closed form ----------------------------------------------------


def _count_le(milestones, e):
    return sum(1 for m in milestones if m <= e)


@pytest.mark.parametrize("milestones", [[2, 5, 5, 9], [9, 5, 2, 5], (0, 4)])
def test_multistep_lr(milestones):
    opt = _opt()
    got = _trace(opt, [L.MultiStepLR(opt, milestones, gamma=0.5)])
    np.testing.assert_allclose(got, _expect(lambda e: 0.5 ** _count_le(milestones, e)), rtol=1e-15)
    if list(milestones) == [2, 5, 5, 9]:  # a repeated milestone counts twice: gamma ** 2 at 5
        assert got[5, 0] == pytest.approx(0.1 * 0.5**3, rel=1e-15)


def test_exponential_lr():
    opt = _opt()
    got = _trace(opt, [L.ExponentialLR(opt, gamma=0.8)])
    np.testing.assert_allclose(got, _expect(lambda e: 0.8**e), rtol=1e-13)


def test_constant_lr():
    opt = _opt()
    got = _trace(opt, [L.ConstantLR(opt, factor=0.25, total_iters=4)])
    np.testing.assert_allclose(got, _expect(lambda e: 0.25 if e < 4 else 1.0), rtol=1e-15)
    opt = _opt()  # the defaults: 1/3 for 5 epochs
    got = _trace(opt, [L.ConstantLR(opt)], 8)
    np.testing.assert_allclose(got, _expect(lambda e: 1 / 3 if e < 5 else 1.0, 8), rtol=1e-15)


@pytest.mark.parametrize("total,power", [(6, 2.0), (7, 0.5), (5, 1.0), (3, 0.0)])
def test_polynomial_lr(total, power):
    opt = _opt()
    got = _trace(opt, [L.PolynomialLR(opt, total_iters=total, power=power)], 12)
    want = _expect(lambda e: (1 - min(e, total) / total) ** power, 12)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-18)


def test_lambda_lr():
    opt = _opt()
    got = _trace(opt, [L.LambdaLR(opt, [lambda e: 0.9**e, lambda e: 1 / (1 + e)])])
    want = [[0.1 * 0.9**e, 0.02 / (1 + e)] for e in range(N)]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    opt = _opt()
    got = _trace(opt, [L.LambdaLR(opt, lambda e: e // 3 + 1)])  # one function for every group
    np.testing.assert_allclose(got, _expect(lambda e: e // 3 + 1), rtol=1e-15)


def test_multiplicative_lr():
    opt = _opt()
    got = _trace(opt, [L.MultiplicativeLR(opt, lambda e: 0.9 + 0.003 * e)])
    np.testing.assert_allclose(
        got, _expect(lambda e: math.prod(0.9 + 0.003 * k for k in range(1, e + 1))), rtol=1e-13
    )


def _knots_value(knots, step, strategy):
    """The 1cycle value at ``step``: between knots (s0, v0), (s1, v1) by a half cosine or a
    straight line; past the last knot, its segment's formula carried on."""
    for (s0, v0), (s1, v1) in zip(knots, knots[1:]):
        if step <= s1 or s1 == knots[-1][0]:
            t = (step - s0) / (s1 - s0)
            if strategy == "cos":
                return v1 + (v0 - v1) * (1 + math.cos(math.pi * t)) / 2
            return v0 + (v1 - v0) * t
    raise AssertionError


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("adam", [False, True])
def test_one_cycle_lr(strategy, three_phase, adam):
    """T = 20 steps, pct_start 0.25 (peak at step 4), max_lr 1 and 0.5: the rate goes from
    max_lr / 25 to max_lr and down to max_lr / 25 / 1e4; the momentum (SGD's, or Adam's
    beta1) from 0.95 to 0.85 at the peak and back."""
    T, maxes = 20, (1.0, 0.5)
    opt = _opt(adam=adam)
    sched = L.OneCycleLR(
        opt,
        max_lr=list(maxes),
        total_steps=T,
        pct_start=0.25,
        anneal_strategy=strategy,
        three_phase=three_phase,
    )
    got, moms = [], []
    for _ in range(T):
        got.append(_lrs(opt))
        moms.append([g["betas"][0] if adam else g["momentum"] for g in opt.param_groups])
        opt.step()
        if sched.last_epoch < T - 1:
            sched.step()
    for i, m in enumerate(maxes):
        lo, hi = m / 25, m / 25 / 1e4
        if three_phase:
            knots, mknots = (
                [(0, lo), (4, m), (8, lo), (19, hi)],
                [(0, 0.95), (4, 0.85), (8, 0.95), (19, 0.95)],
            )
        else:
            knots, mknots = [(0, lo), (4, m), (19, hi)], [(0, 0.95), (4, 0.85), (19, 0.95)]
        want = [_knots_value(knots, s, strategy) for s in range(T)]
        np.testing.assert_allclose([r[i] for r in got], want, rtol=1e-12)
        np.testing.assert_allclose(
            [r[i] for r in moms], [_knots_value(mknots, s, strategy) for s in range(T)], rtol=1e-12
        )
        assert got[4][i] == pytest.approx(m, rel=1e-14) and got[T - 1][i] == pytest.approx(hi, rel=1e-12)
    if adam:
        assert all(g["betas"][1] == 0.999 for g in opt.param_groups)  # beta2 kept
    if strategy == "linear":  # step T carries the last line on below 0 (PyTorch writes that rate)
        with pytest.raises(
            ValueError, match=r"^OneCycleLR: the learning rate of param_groups\[0\] at epoch 20 would be -"
        ):
            sched.step()
        return
    sched.step()  # step T is allowed (as in PyTorch), T + 1 is not
    with pytest.raises(
        ValueError, match=r"^OneCycleLR: tried to step 21 times; the specified number of total steps is 20"
    ):
        sched.step()
    assert sched.last_epoch == 20


def _plateau_ref(metrics, mode, threshold_mode, threshold, patience, cooldown, factor, lr, min_lr, eps):
    """The rates after each metric, by ReduceLROnPlateau's documented rule (one group)."""
    best, bad, cool, out = None, 0, 0, []
    for m in metrics:
        if best is None:
            better = m == m  # the first finite (or infinite) metric is the baseline; NaN never
        elif mode == "min":
            better = m < (best * (1 - threshold) if threshold_mode == "rel" else best - threshold)
        else:
            better = m > (best * (1 + threshold) if threshold_mode == "rel" else best + threshold)
        if better:
            best, bad = m, 0
        else:
            bad += 1
        if cool > 0:
            cool, bad = cool - 1, 0
        if bad > patience:
            new = max(lr * factor, min_lr)
            if lr - new > eps:
                lr = new
            cool, bad = cooldown, 0
        out.append(lr)
    return out


METRICS = [1.0, 0.9, 0.95, 0.9, 0.91, 0.89995, 0.7, 0.7, 0.71, 0.72, 0.73, 0.74, 0.6, float("nan"), 0.6]
METRICS += [0.61, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.55, 0.45, 0.45, 0.45]


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize(
    "threshold_mode,threshold", [("rel", 1e-4), ("rel", 0.05), ("abs", 1e-4), ("abs", 0.05)]
)
@pytest.mark.parametrize("patience,cooldown", [(0, 0), (1, 2), (2, 0)])
def test_reduce_lr_on_plateau(mode, threshold_mode, threshold, patience, cooldown):
    metrics = METRICS if mode == "min" else [-m for m in METRICS]
    opt = _opt()
    sched = L.ReduceLROnPlateau(
        opt, mode, 0.5, patience, threshold, threshold_mode, cooldown, min_lr=[0.01, 0.001]
    )
    assert sched.get_last_lr() == list(BASES) and all("initial_lr" not in g for g in opt.param_groups)
    got = []
    for m in metrics:
        sched.step(m)
        assert sched.get_last_lr() == _lrs(opt)
        got.append(_lrs(opt))
    for i, (base, min_lr) in enumerate(zip(BASES, (0.01, 0.001))):
        want = _plateau_ref(
            metrics, mode, threshold_mode, threshold, patience, cooldown, 0.5, base, min_lr, 1e-8
        )
        assert [r[i] for r in got] == want
    assert sched.last_epoch == len(metrics)


def test_reduce_lr_on_plateau_eps_and_metric_types():
    opt = _opt((1e-8,))
    sched = L.ReduceLROnPlateau(opt, patience=0, factor=0.5, eps=1e-8)
    for m in (np.float32(1.0), np.array(2.0), 3, np.int64(4)):  # worse each time: a reduction
        sched.step(m)
    assert _lrs(opt) == [1e-8]  # the reductions of 5e-9 are below eps: ignored
    assert sched.num_bad_epochs == 0 and sched.best == 1.0


# ---- composition, where PyTorch chains -------------------------------------------------------


def test_chainable_schedules_compose():
    e = np.arange(1, N + 1)
    cases = [
        (
            lambda o: [L.ExponentialLR(o, 0.9), L.MultiStepLR(o, [3, 6, 6], 0.5)],
            lambda e: 0.9**e * 0.5 ** _count_le([3, 6, 6], e),
        ),
        (
            lambda o: [L.ConstantLR(o, 0.5, 4), L.ExponentialLR(o, 0.9)],
            lambda e: (0.5 if e < 4 else 1.0) * 0.9**e,
        ),
        (
            lambda o: [L.PolynomialLR(o, 30, 2.0), L.StepLR(o, 3, 0.5)],
            lambda e: (1 - e / 30) ** 2 * 0.5 ** (e // 3),
        ),
        (
            lambda o: [L.MultiplicativeLR(o, lambda k: 1 - 0.01 * k), L.StepLR(o, 4, 0.1)],
            lambda e: math.prod(1 - 0.01 * k for k in range(1, e + 1)) * 0.1 ** (e // 4),
        ),
        # LambdaLR is computed from base_lrs: stepped last, it sets base * lambda(e) over the other
        (lambda o: [L.StepLR(o, 2, 0.5), L.LambdaLR(o, lambda k: 0.95**k)], lambda e: 0.95**e),
    ]
    for make, factor in cases:
        opt = _opt()
        scheds = make(opt)
        got = []
        for _ in e:
            opt.step()
            for s in scheds:
                s.step()
            got.append(_lrs(opt))
        np.testing.assert_allclose(got, [[b * factor(k) for b in BASES] for k in e], rtol=1e-12)


def test_sequential_with_the_new_schedules():
    """PyTorch's example: ConstantLR then ExponentialLR (the milestone sets base_lr); then
    MultiplicativeLR, which has no closed form: at its milestone it multiplies the rate it finds
    by lr_lambda(0), as PyTorch's get_lr() does."""
    opt = _opt()
    sched = L.SequentialLR(
        opt, [L.ConstantLR(opt, 0.1, total_iters=3), L.ExponentialLR(opt, 0.9)], milestones=[3]
    )
    np.testing.assert_allclose(
        _trace(opt, [sched]), _expect(lambda e: 0.1 if e < 3 else 0.9 ** (e - 3)), rtol=1e-13
    )
    opt = _opt()
    f = lambda k: 0.8 + 0.01 * k  # noqa: E731
    sched = L.SequentialLR(
        opt, [L.ConstantLR(opt, 0.5, total_iters=10), L.MultiplicativeLR(opt, f)], milestones=[3]
    )
    want = _expect(lambda e: 0.5 if e < 3 else 0.5 * math.prod(f(k) for k in range(0, e - 2)))
    np.testing.assert_allclose(_trace(opt, [sched]), want, rtol=1e-13)
    with pytest.raises(ValueError, match=r"SequentialLR: schedulers\[1\] is a ReduceLROnPlateau"):
        L.SequentialLR(opt, [L.StepLR(opt, 2), L.ReduceLROnPlateau(opt)], milestones=[3])


def test_plateau_reduces_what_another_schedule_set():
    """ExponentialLR(0.9), then ReduceLROnPlateau(patience=1, factor=0.5) on a metric that never
    improves after the first: reductions at epochs 3, 5, 7, ... of the decayed rate."""
    opt = _opt()
    exp, plateau = L.ExponentialLR(opt, 0.9), L.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    for e in range(1, N + 1):
        exp.step()
        plateau.step(1.0)
        reductions = sum(1 for k in range(3, e + 1, 2))
        np.testing.assert_allclose(_lrs(opt), [b * 0.9**e * 0.5**reductions for b in BASES], rtol=1e-13)


# ---- state_dict: resuming mid-run through a checkpoint gives the uninterrupted rates ----------


class Scaled:
    """A callable object with state (saved by LambdaLR's state_dict, unlike a plain function)."""

    def __init__(self):
        self.scale = 1.0

    def __call__(self, e):
        return self.scale * 0.9**e


RESUMABLE = {
    "multistep": lambda o: L.MultiStepLR(o, [2, 5, 5, 9], 0.5),
    "exponential": lambda o: L.ExponentialLR(o, 0.85),
    "constant": lambda o: L.ConstantLR(o, 0.3, 6),
    "polynomial": lambda o: L.PolynomialLR(o, 12, 1.5),
    "lambda": lambda o: L.LambdaLR(o, [Scaled(), lambda e: 1 / (1 + e)]),
    "multiplicative": lambda o: L.MultiplicativeLR(o, lambda e: 0.97),
    "one_cycle": lambda o: L.OneCycleLR(o, [1.0, 0.3], total_steps=N, three_phase=True),
    "plateau": lambda o: L.ReduceLROnPlateau(o, "max", 0.5, patience=1, cooldown=1),
    "sequential": lambda o: L.SequentialLR(o, [L.ConstantLR(o, 0.2, 2), L.MultiStepLR(o, [3, 3], 0.5)], [4]),
}


def _run(opt, sched, epochs, start=0):
    out = []
    for e in range(start, start + epochs):
        opt.step()
        if isinstance(sched, L.ReduceLROnPlateau):
            sched.step(math.sin(e))  # ups and downs
        else:
            sched.step()
        if isinstance(sched, L.LambdaLR) and e == 3:
            sched.lr_lambdas[0].scale = 0.5
        out.append([_lrs(opt), [g["momentum"] for g in opt.param_groups]])
    return out


@pytest.mark.parametrize("kind", sorted(RESUMABLE))
def test_resume_mid_run_through_a_checkpoint(kind, tmp_path):
    make = RESUMABLE[kind]
    opt = _opt()
    whole = _run(opt, make(opt), N - 1)
    opt = _opt()
    sched = make(opt)
    first = _run(opt, sched, 10)
    normreg.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "c.ckpt")
    ckpt = normreg.load(tmp_path / "c.ckpt")
    opt2 = _opt()
    sched2 = make(opt2)
    opt2.load_state_dict(ckpt["opt"])
    sched2.load_state_dict(ckpt["sched"])
    assert sched2.get_last_lr() == sched.get_last_lr() and sched2.last_epoch == sched.last_epoch
    assert first + _run(opt2, sched2, N - 11, start=10) == whole
    if kind == "lambda":  # the object's attributes are saved, the plain function is not
        assert ckpt["sched"]["lr_lambdas"] == [{"scale": 0.5}, None]
        assert sched2.lr_lambdas[0].scale == 0.5
    if kind == "multistep":  # a Counter, as PyTorch's; a plain dict in the checkpoint, loaded back
        assert ckpt["sched"]["milestones"] == {2: 1, 5: 2, 9: 1}
        assert (
            sched2.milestones == collections.Counter([2, 5, 5, 9])
            and type(sched2.milestones) is collections.Counter
        )


# ---- against torch.optim.lr_scheduler --------------------------------------------------------

TORCH_CASES = {
    "multistep": lambda M, o: M.MultiStepLR(o, [9, 3, 3, 0, 14], 0.6),
    "exponential": lambda M, o: M.ExponentialLR(o, 0.87),
    "constant": lambda M, o: M.ConstantLR(o, 0.4, 7),
    "polynomial": lambda M, o: M.PolynomialLR(o, 11, 0.9),
    "lambda": lambda M, o: M.LambdaLR(o, [lambda e: 0.93**e, lambda e: 1 + math.sin(e)]),
    "multiplicative": lambda M, o: M.MultiplicativeLR(o, lambda e: 1 - 0.02 * (e % 4)),
    "one_cycle": lambda M, o: M.OneCycleLR(o, [0.8, 0.2], total_steps=N, pct_start=0.37),
    "one_cycle_3": lambda M, o: M.OneCycleLR(
        o,
        0.5,
        epochs=5,
        steps_per_epoch=6,
        three_phase=True,
        anneal_strategy="linear",
        base_momentum=0.8,
        max_momentum=[0.9, 0.99],
        div_factor=10,
        final_div_factor=100,
    ),
    "one_cycle_flat": lambda M, o: M.OneCycleLR(o, 0.5, total_steps=N, cycle_momentum=False),
    "chain": lambda M, o: [M.PolynomialLR(o, 20, 2.0), M.MultiStepLR(o, [4, 8]), M.ExponentialLR(o, 0.95)],
    "sequential": lambda M, o: M.SequentialLR(
        o,
        [M.ConstantLR(o, 0.1, 3), M.ExponentialLR(o, 0.9), M.MultiplicativeLR(o, lambda e: 0.5 + 0.1 * e)],
        [3, 9],
    ),
}


def _torch_pair(torch, adam):
    tgroups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in BASES]
    if adam:
        return torch.optim.Adam(tgroups, lr=BASES[0]), _opt(adam=True)
    return torch.optim.SGD(tgroups, lr=BASES[0], momentum=0.9), _opt()


@pytest.mark.parametrize("adam", [False, True], ids=["sgd", "adam"])
@pytest.mark.parametrize("kind", sorted(TORCH_CASES))
def test_matches_torch(kind, adam):
    torch = pytest.importorskip("torch")
    topt, opt = _torch_pair(torch, adam)
    tscheds, scheds = TORCH_CASES[kind](torch.optim.lr_scheduler, topt), TORCH_CASES[kind](L, opt)
    if not isinstance(scheds, list):
        tscheds, scheds = [tscheds], [scheds]
    key = "betas" if adam else "momentum"
    internals = {"_step_count", "_is_initial", "_get_lr_called_within_step"}
    for _ in range(N):
        np.testing.assert_allclose(
            scheds[-1].get_last_lr(), tscheds[-1].get_last_lr(), rtol=1e-12, atol=1e-18
        )
        np.testing.assert_allclose(_lrs(opt), [g["lr"] for g in topt.param_groups], rtol=1e-12, atol=1e-18)
        assert np.allclose(
            [g[key] for g in opt.param_groups], [g[key] for g in topt.param_groups], rtol=1e-12
        )
        for s, ts in zip(scheds, tscheds):
            ours, theirs = s.state_dict(), {k: v for k, v in ts.state_dict().items() if k not in internals}
            if kind == "sequential":  # normreg's SequentialLR keeps base_lrs too (LRScheduler's)
                del ours["base_lrs"]
                pairs = zip(ours.pop("_schedulers"), theirs.pop("_schedulers"))
                assert all(list(a) == [k for k in b if k not in internals] for a, b in pairs)
            assert list(ours) == list(theirs)
            for k in ours:
                if k == "_last_lr":
                    np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, atol=1e-18)
                else:
                    assert ours[k] == theirs[k], k
        topt.step()
        for s in tscheds:
            s.step()
        for s in scheds:
            s.step()


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(patience=0, factor=0.5),
        dict(patience=2, cooldown=3, threshold=0.05, factor=0.3, min_lr=[0.05, 0.0]),
    ],
)
def test_reduce_lr_on_plateau_matches_torch(mode, threshold_mode, settings):
    torch = pytest.importorskip("torch")
    topt, opt = _torch_pair(torch, False)
    kwargs = dict(dict(patience=1), mode=mode, threshold_mode=threshold_mode, **settings)
    tsched, sched = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs),
        L.ReduceLROnPlateau(opt, **kwargs),
    )
    metrics = METRICS if mode == "min" else [-m for m in METRICS]
    for m in metrics * 2:
        tsched.step(m)
        sched.step(m)
        assert sched.get_last_lr() == tsched.get_last_lr() == _lrs(opt)
        theirs = tsched.state_dict()
        ours = sched.state_dict()
        assert list(ours) == list(theirs)
        assert all(ours[k] == theirs[k] for k in ours)
