"""Learning-rate schedules against their closed forms and PyTorch's recursive (chainable)
formulas, computed here in NumPy (and against PyTorch when installed)."""

import math

import numpy as np
import pytest
from helpers import set_grad

import normreg
from normreg import optim
from normreg.nn import Parameter
from normreg.optim import lr_scheduler as L


def _opt(lrs=(0.1, 0.02)):
    groups = [{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    return optim.SGD(groups, lr=lrs[0], momentum=0.9)


def _trace(opt, sched, n):
    """lr of every group before each of n epochs (read from the optimizer itself)."""
    out = []
    for _ in range(n):
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs == sched.get_last_lr()
        out.append(lrs)
        opt.step()
        sched.step()
    return np.array(out)


def test_step_lr():
    opt = _opt()
    got = _trace(opt, L.StepLR(opt, step_size=3, gamma=0.5), 10)
    for e in range(10):
        np.testing.assert_allclose(got[e], [0.1 * 0.5 ** (e // 3), 0.02 * 0.5 ** (e // 3)], rtol=1e-15)


def test_cosine_annealing_lr():
    opt = _opt()
    T, eta_min = 8, 1e-3
    got = _trace(opt, L.CosineAnnealingLR(opt, T_max=T, eta_min=eta_min), T + 1)
    for e in range(T + 1):
        for base, lr in zip((0.1, 0.02), got[e]):
            assert lr == pytest.approx(
                eta_min + (base - eta_min) * (1 + math.cos(math.pi * e / T)) / 2, rel=1e-14
            )
    np.testing.assert_allclose(got[0], [0.1, 0.02])
    np.testing.assert_allclose(got[T], [eta_min, eta_min])


def test_linear_warmup_lr():
    opt = _opt()
    got = _trace(opt, L.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=4), 8)
    factors = [0.1 + 0.9 * min(e, 4) / 4 for e in range(8)]
    np.testing.assert_allclose(got[:, 0], 0.1 * np.array(factors), rtol=1e-14)
    np.testing.assert_allclose(got[:, 1], 0.02 * np.array(factors), rtol=1e-14)


def test_sequential_warmup_then_cosine():
    opt = _opt()
    warm, T = 3, 6
    sched = L.SequentialLR(
        opt,
        [L.LinearLR(opt, start_factor=0.25, total_iters=warm), L.CosineAnnealingLR(opt, T_max=T)],
        milestones=[warm],
    )
    got = _trace(opt, sched, warm + T + 1)
    for e in range(warm + T + 1):
        for base, lr in zip((0.1, 0.02), got[e]):
            if e < warm:
                want = base * (0.25 + 0.75 * e / warm)
            else:
                want = base * (1 + math.cos(math.pi * (e - warm) / T)) / 2
            assert lr == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_scheduler_drives_the_optimizer_step():
    p = Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = L.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(4):
        set_grad(p, -1.0)
        opt.step()
        sched.step()
    np.testing.assert_allclose(p.data, [1 + 0.5 + 0.25 + 0.125])


def test_state_dict_round_trip_and_resume():
    opt = _opt()
    sched = L.SequentialLR(opt, [L.LinearLR(opt, 0.5, total_iters=2), L.CosineAnnealingLR(opt, 5)], [2])
    for _ in range(4):
        sched.step()
    sd = sched.state_dict()
    opt2 = _opt()
    sched2 = L.SequentialLR(opt2, [L.LinearLR(opt2, 0.5, total_iters=2), L.CosineAnnealingLR(opt2, 5)], [2])
    # as in PyTorch, the schedule continues from the groups' rates: the optimizer's state
    # (its 'lr's) is restored with it
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sd)
    for _ in range(3):
        sched.step()
        sched2.step()
        assert sched.get_last_lr() == sched2.get_last_lr()
        assert [g["lr"] for g in opt2.param_groups] == sched.get_last_lr()


def test_state_dict_survives_a_checkpoint(tmp_path):
    opt = _opt()
    sched = L.StepLR(opt, 2, 0.5)
    sched.step()
    sched.step()
    normreg.save({"scheduler": sched.state_dict()}, tmp_path / "s.ckpt")
    opt2 = _opt()
    sched2 = L.StepLR(opt2, 2, 0.5)
    sched2.load_state_dict(normreg.load(tmp_path / "s.ckpt")["scheduler"])
    assert sched2.last_epoch == 2 and sched2.get_last_lr() == sched.get_last_lr()


def test_bad_arguments():
    opt = _opt()
    with pytest.raises(ValueError, match="step_size"):
        L.StepLR(opt, 0)
    with pytest.raises(TypeError, match="step_size"):
        L.StepLR(opt, 1.5)
    with pytest.raises(ValueError, match="T_max"):
        L.CosineAnnealingLR(opt, 0)
    with pytest.raises(ValueError, match="start_factor"):
        L.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="end_factor"):
        L.LinearLR(opt, end_factor=1.5)
    with pytest.raises(TypeError, match="Optimizer"):
        L.StepLR("opt", 1)
    with pytest.raises(ValueError, match="milestones"):
        L.SequentialLR(opt, [L.StepLR(opt, 1), L.StepLR(opt, 2)], milestones=[])
    with pytest.raises(ValueError, match="another optimizer"):
        L.SequentialLR(opt, [L.StepLR(opt, 1), L.StepLR(_opt(), 2)], milestones=[3])
    with pytest.raises(KeyError, match="initial_lr"):
        L.StepLR(_opt(), 1, last_epoch=3)


@pytest.mark.parametrize("kind", ["step", "cosine", "linear", "sequential"])
def test_matches_torch(kind):
    torch = pytest.importorskip("torch")
    TL = torch.optim.lr_scheduler
    tp = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([tp], lr=0.1)
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.1)

    def make(mod, o):
        if kind == "step":
            return mod.StepLR(o, 3, 0.3)
        if kind == "cosine":
            return mod.CosineAnnealingLR(o, 7, eta_min=0.01)
        if kind == "linear":
            return mod.LinearLR(o, 0.2, 0.9, 4)
        return mod.SequentialLR(
            o, [mod.LinearLR(o, 0.1, total_iters=3), mod.CosineAnnealingLR(o, 6)], milestones=[3]
        )

    ts, s = make(TL, topt), make(L, opt)
    for _ in range(12):
        np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-10, atol=1e-15)
        topt.step()
        ts.step()
        s.step()


# ---- issue 11, item 9: no negative learning rate is ever written --------------------------


def test_negative_gamma_and_eta_min_are_refused_at_construction():
    for make, msg in [
        (lambda o: L.StepLR(o, step_size=1, gamma=-1), r"^StepLR: gamma must be >= 0, got -1$"),
        (lambda o: L.CosineAnnealingLR(o, T_max=10, eta_min=-1), r"^CosineAnnealingLR: eta_min must be >= 0"),
        (
            lambda o: L.StepLR(o, step_size=1, gamma=float("nan")),
            r"^StepLR: gamma must be a finite real number",
        ),
    ]:
        opt = _opt()
        with pytest.raises(ValueError, match=msg):
            make(opt)
        assert [g["lr"] for g in opt.param_groups] == [0.1, 0.02]
        assert all("initial_lr" not in g for g in opt.param_groups)  # nothing written
    opt = _opt()
    got = _trace(opt, L.StepLR(opt, step_size=2, gamma=0.0), 5)  # PyTorch accepts gamma = 0
    np.testing.assert_array_equal(got[:, 0], [0.1, 0.1, 0, 0, 0])


def test_a_rate_that_would_not_be_finite_is_refused_and_changes_nothing():
    opt = _opt()
    sched = L.StepLR(opt, step_size=1, gamma=1e300)
    sched.step()  # 0.1 * 1e300: finite
    with pytest.raises(
        ValueError, match=r"StepLR: the learning rate of param_groups\[0\] at epoch 2 would be inf"
    ):
        sched.step()
    assert sched.last_epoch == 1 and opt.param_groups[0]["lr"] == pytest.approx(1e299)


def test_load_state_dict_checks_the_hyperparameters():
    opt = _opt()
    sched = L.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
    sched.step()
    good = sched.state_dict()
    for key, value, msg in [
        ("eta_min", -1.0, "eta_min must be >= 0"),
        ("T_max", 0, "T_max must be positive"),
        ("base_lrs", [0.1, -0.02], r"base_lrs\[1\] must be >= 0"),
        ("last_epoch", "3", "last_epoch must be an int"),
    ]:
        bad = dict(good, **{key: value})
        with pytest.raises((TypeError, ValueError), match=msg):
            sched.load_state_dict(bad)
        assert sched.state_dict() == good  # unchanged
    step = L.StepLR(_opt(), step_size=2)
    with pytest.raises(ValueError, match="StepLR: gamma must be >= 0"):
        step.load_state_dict(dict(step.state_dict(), gamma=-0.5))
    assert step.gamma == 0.1


# ---- chainable schedules, as PyTorch's: each step starts from the groups' current 'lr' -----

BASES = np.array([0.1, 0.02])
N = 30


def _run(opt, scheds, n=N, edit=None):
    """The groups' 'lr's after each of n epochs, each stepping every scheduler in turn; at
    epoch ``edit`` (before its steps) every group's 'lr' is set to 1.0 by hand."""
    out = []
    for e in range(1, n + 1):
        if e == edit:
            for g in opt.param_groups:
                g["lr"] = 1.0
        opt.step()
        for sc in scheds:
            sc.step()
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs == scheds[-1].get_last_lr()
        out.append(lrs)
    return np.array(out)


def _step_factor(e, step_size, gamma, since=0):
    """StepLR's factor over epochs (since, e]: gamma for each multiple of step_size."""
    return gamma ** (e // step_size - since // step_size)


def _linear_factor(e, start, end, total):
    return start + (end - start) * np.minimum(e, total) / total


def _cosine_factor(e, T):
    return (1 + np.cos(np.pi * e / T)) / 2


def test_two_schedulers_on_one_optimizer_compose():
    """StepLR(3, 0.5) and LinearLR(0.2, 1, 4) stepped together: each multiplies what the other
    set, so the rate is base * 0.5 ** (e // 3) * (0.2 + 0.8 * min(e, 4) / 4) (0.04 after three
    epochs for 0.1, as PyTorch; the closed forms from base_lrs gave 0.08)."""
    opt = _opt()
    got = _run(opt, [L.StepLR(opt, 3, 0.5), L.LinearLR(opt, 0.2, 1.0, 4)])
    e = np.arange(1, N + 1)[:, None]
    want = BASES * _step_factor(e, 3, 0.5) * _linear_factor(e, 0.2, 1.0, 4)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert got[2, 0] == pytest.approx(0.04, rel=1e-14)


def test_cosine_and_step_compose():
    """The cosine's recursive step scales lr - eta_min by the ratio of consecutive cosine
    factors, so with eta_min = 0 a StepLR beside it multiplies in: base * cos factor * gamma
    ** (e // step_size), over more than a period (T_max 7, so the 0/0 epochs after each
    minimum, 8 and 22, take the special case)."""
    opt = _opt()
    got = _run(opt, [L.CosineAnnealingLR(opt, 7), L.StepLR(opt, 4, 0.5)])
    e = np.arange(1, 8)[:, None]  # down to the minimum: the product of the closed forms
    np.testing.assert_allclose(
        got[:6], (BASES * _cosine_factor(e, 7) * _step_factor(e, 4, 0.5))[:6], rtol=1e-12
    )
    assert np.all(np.abs(got[6]) < 1e-17)
    # the epoch after the minimum, 8: lr(7) + (base - eta_min) * (1 - cos(pi / T)) / 2, then
    # halved by the StepLR (8 is a multiple of 4)
    np.testing.assert_allclose(got[7], (got[6] + BASES * (1 - np.cos(np.pi / 7)) / 2) * 0.5, rtol=1e-12)


def _cosine_recursion(lr0, bases, T, eta_min, epochs):
    """PyTorch's recursive cosine step (its documented special case included), in NumPy."""
    lr, out = np.array(lr0, float), []
    for e in epochs:
        if (e - 1 - T) % (2 * T) == 0:
            lr = lr + (bases - eta_min) * (1 - np.cos(np.pi / T)) / 2
        else:
            lr = (1 + np.cos(np.pi * e / T)) / (1 + np.cos(np.pi * (e - 1) / T)) * (lr - eta_min) + eta_min
        out.append(lr)
    return np.array(out)


def test_cosine_alone_follows_the_closed_form_over_several_periods():
    """Alone, the recursion (with its special case after each minimum) is the closed form
    eta_min + (base - eta_min) (1 + cos(pi e / T)) / 2, down and back up, for 30 epochs."""
    opt = _opt()
    T, eta_min = 7, 1e-3
    got = _run(opt, [L.CosineAnnealingLR(opt, T, eta_min)])
    e = np.arange(1, N + 1)[:, None]
    np.testing.assert_allclose(got, eta_min + (BASES - eta_min) * _cosine_factor(e, T), rtol=1e-12)
    np.testing.assert_allclose(got, _cosine_recursion(BASES, BASES, T, eta_min, range(1, N + 1)), rtol=1e-13)


def test_a_rate_set_by_hand_is_where_the_next_step_starts():
    """A 'lr' written into the groups between steps is kept and scheduled on, as PyTorch does.
    StepLR(3, 0.5) with lr = 1.0 set before epoch 6: 1.0 * 0.5 ** (multiples of 3 in (5, e]),
    e.g. 0.25 at epoch 9 (where the closed form from base_lrs gave 0.025)."""
    opt = _opt()
    got = _run(opt, [L.StepLR(opt, 3, 0.5)], edit=6)
    e = np.arange(1, N + 1)
    want = np.where(e < 6, 0.5 ** (e // 3), 1.0 * _step_factor(e, 3, 0.5, since=5) / BASES[0])
    np.testing.assert_allclose(got[:, 0], BASES[0] * want, rtol=1e-14)
    np.testing.assert_allclose(got[e >= 6, 1], got[e >= 6, 0])  # both groups set to 1.0
    assert got[8, 0] == 0.25

    # LinearLR: the ratios of consecutive factors carry on from the new rate, f(e) / f(5)
    opt = _opt()
    got = _run(opt, [L.LinearLR(opt, 0.1, 1.0, 10)], edit=6)
    want = np.where(e < 6, BASES[0] * _linear_factor(e, 0.1, 1.0, 10), _linear_factor(e, 0.1, 1.0, 10) / 0.55)
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-13)

    # CosineAnnealingLR: eta_min + (1 - eta_min) * c(e) / c(5) until the minimum at T = 20,
    # then the recursion (its special case included) from there
    opt = _opt()
    T, eta_min = 20, 1e-3
    got = _run(opt, [L.CosineAnnealingLR(opt, T, eta_min)], edit=6)
    before = eta_min + (BASES[0] - eta_min) * _cosine_factor(e[:5], T)
    after = eta_min + (1 - eta_min) * _cosine_factor(e[5:T], T) / _cosine_factor(5, T)
    np.testing.assert_allclose(got[:5, 0], before, rtol=1e-12)
    np.testing.assert_allclose(got[5:T, 0], after, rtol=1e-12)
    rest = _cosine_recursion(got[T - 1], BASES, T, eta_min, range(T + 1, N + 1))
    np.testing.assert_allclose(got[T:], rest, rtol=1e-12)


def test_sequential_runs_each_scheduler_and_restarts_the_next_at_its_milestone():
    """Warm-up, then StepLR, then cosine (milestones 3 and 8), for 30 epochs: each segment is
    its scheduler's closed form from its own epoch 0 (the milestone sets it from base_lrs, as
    PyTorch's SequentialLR does); a rate set by hand within the StepLR segment is scheduled on
    until the next milestone, which starts the cosine from base_lrs again."""
    e = np.arange(1, N + 1)[:, None]
    warm = BASES * _linear_factor(e, 0.1, 1.0, 3)
    step = BASES * _step_factor(e - 3, 2, 0.5)
    cos = 1e-3 + (BASES - 1e-3) * _cosine_factor(e - 8, 12)
    want = np.where(e < 3, warm, np.where(e < 8, step, cos))
    for edit in (None, 5):
        opt = _opt()
        sched = L.SequentialLR(
            opt,
            [L.LinearLR(opt, 0.1, total_iters=3), L.StepLR(opt, 2, 0.5), L.CosineAnnealingLR(opt, 12, 1e-3)],
            milestones=[3, 8],
        )
        np.testing.assert_allclose(sched.get_last_lr(), BASES * 0.1, rtol=1e-15)  # epoch 0: the warm-up's
        got = _run(opt, [sched], edit=edit)
        if edit:
            # 1.0 set before epoch 5, halved by its step (the StepLR's epoch 2) and by epoch 7's
            np.testing.assert_allclose(got[4:7], [[0.5, 0.5], [0.5, 0.5], [0.25, 0.25]], rtol=1e-15)
            got = np.concatenate([got[:4], want[4:7], got[7:]])
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert sched.last_epoch == N


# ---- load_state_dict: one base and one last rate per group ----------------------------------


@pytest.mark.parametrize(
    "key,value,exc,msg",
    [
        ("base_lrs", [0.1], ValueError, r"base_lrs has 1 entries, the optimizer has 2 parameter groups"),
        ("base_lrs", [0.1, 0.02, 0.3], ValueError, r"base_lrs has 3 entries"),
        ("base_lrs", 0.1, TypeError, r"base_lrs must be a list of floats, got float"),
        ("_last_lr", [0.1], ValueError, r"_last_lr has 1 entries"),
    ],
)
def test_load_state_dict_needs_one_base_lr_per_group(key, value, exc, msg):
    opt = _opt()
    sched = L.StepLR(opt, 2, 0.5)
    sched.step()
    good = sched.state_dict()
    with pytest.raises(exc, match=r"^StepLR.load_state_dict: " + msg):
        sched.load_state_dict(dict(good, **{key: value}))
    assert sched.state_dict() == good
    # SequentialLR: a bad entry in one of its schedulers' states changes none of them
    opt = _opt()
    seq = L.SequentialLR(opt, [L.LinearLR(opt, 0.5, total_iters=2), L.StepLR(opt, 2, 0.5)], [2])
    for _ in range(3):
        seq.step()
    good = seq.state_dict()
    bad = dict(
        good, last_epoch=1, _schedulers=[good["_schedulers"][0], dict(good["_schedulers"][1], **{key: value})]
    )
    with pytest.raises(exc, match=msg):
        seq.load_state_dict(bad)
    assert seq.state_dict() == good
