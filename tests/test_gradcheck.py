"""normreg.testing.gradcheck: it passes correct backwards and catches wrong ones."""

import numpy as np
import pytest
from helpers import offset_randn

import normreg
from normreg import functional as F
from normreg import nn
from normreg.testing import GradcheckError, check_gradients, gradcheck


class Square(nn.Module):
    """y = x**2 with a backward that is wrong at one chosen element (or nowhere)."""

    def __init__(self, bug_at=None):
        super().__init__()
        self.bug_at = bug_at

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, dy):
        (x,) = self.saved()
        dx = 2 * x * dy
        if self.bug_at is not None:
            dx[self.bug_at] *= 1.01
        return dx


class Scale(nn.Module):
    """y = x * w per feature; its weight gradient misses the sum over rows when buggy."""

    def __init__(self, D, buggy):
        super().__init__()
        self.weight = nn.Parameter(np.linspace(0.5, 1.5, D))
        self.buggy = buggy

    def forward(self, x):
        self.save_for_backward(x)
        return x * self.weight.data

    def backward(self, dy):
        (x,) = self.saved()
        grad = (dy * x)[0] if self.buggy else (dy * x).sum(axis=0)
        self.weight.grad = grad if self.weight.grad is None else self.weight.grad + grad
        return dy * self.weight.data


def test_correct_backward_passes():
    x = offset_randn(np.random.default_rng(0), (3, 4))
    assert gradcheck(Square(), x) is True
    assert gradcheck(Scale(4, buggy=False), x) is True


def test_wrong_input_gradient_is_caught_and_located():
    x = offset_randn(np.random.default_rng(1), (3, 4))
    with pytest.raises(GradcheckError) as info:
        gradcheck(Square(bug_at=(1, 2)), x)
    message = str(info.value)
    assert "FAIL input 0 (3, 4): worst at index (1, 2)" in message
    report = info.value.report
    assert not report.ok and report.worst.index == (1, 2)
    assert report.worst.analytic == pytest.approx(1.01 * report.worst.numeric, rel=1e-6)
    assert gradcheck(Square(bug_at=(1, 2)), x, raise_exception=False) is False


def test_wrong_parameter_gradient_is_caught_and_named():
    x = offset_randn(np.random.default_rng(2), (3, 4))
    report = check_gradients(Scale(4, buggy=True), x)
    assert not report.ok
    assert report.worst.name == "parameter 'weight'"
    assert "FAIL parameter 'weight'" in str(report) and "ok   input 0" in str(report)


def test_wrong_normalization_backward_is_caught():
    """A layer-norm backward without the gradient through the mean and variance: the
    check with a random dy catches it (a check with dy = ones would see zeros on both
    sides for the input and miss it)."""
    r = np.random.default_rng(3)
    x = offset_randn(r, (4, 6))

    def fwd(x):
        return F.layer_norm(x, 6)[0]

    def wrong_bwd(dy, x):
        _, _, rstd = F.layer_norm(x, 6)
        return dy * rstd[:, None]

    def right_bwd(dy, x):
        _, mean, rstd = F.layer_norm(x, 6)
        return F.layer_norm_backward(dy, x, mean, rstd)[0]

    assert gradcheck(fwd, x, backward=right_bwd)
    with pytest.raises(GradcheckError):
        gradcheck(fwd, x, backward=wrong_bwd)


def test_function_mode_checks_every_input_and_skips_labels():
    r = np.random.default_rng(4)
    logits = r.standard_normal((5, 3))
    labels = np.array([0, 2, 1, 1, 0])

    def fwd(logits, labels):
        return np.asarray(F.cross_entropy(logits, labels)[0])

    def bwd(dy, logits, labels):
        _, lse = F.cross_entropy(logits, labels)
        return F.cross_entropy_backward(logits, labels, lse, float(dy)), None

    report = check_gradients(fwd, (logits, labels), backward=bwd)
    assert report.ok and [e.name for e in report.entries] == ["input 0"]
    with pytest.raises(TypeError, match="backward"):
        gradcheck(fwd, (logits, labels))


def test_module_state_is_restored():
    normreg.manual_seed(0)
    r = np.random.default_rng(5)
    model = nn.Sequential(
        nn.Linear(4, 5, dtype=np.float64), nn.BatchNorm1d(5, dtype=np.float64), nn.Dropout(0.3)
    )
    model[1].weight.grad = np.full(5, 7.0)
    held = model[1].weight.grad
    state = {k: v.copy() for k, v in model.state_dict().items()}
    gen_state = normreg.default_generator.get_state().copy()
    assert gradcheck(model, offset_randn(r, (6, 4)))  # dropout masks held fixed
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)
    assert model[1].weight.grad is held
    np.testing.assert_array_equal(held, 7.0)
    assert model[0].weight.grad is None  # no gradient before, none after
    np.testing.assert_array_equal(normreg.default_generator.get_state(), gen_state)


def test_float32_module_is_refused():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(nn.LayerNorm(3), np.ones((2, 3)))
    with pytest.raises(TypeError):
        gradcheck(42, np.ones(3))


def test_module_with_a_scalar_output_and_integer_labels():
    r = np.random.default_rng(6)
    logits = 3 * r.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    report = check_gradients(nn.SoftmaxLoss(), (logits, labels))
    assert report.ok and [e.name for e in report.entries] == ["input 0"]


class LastInputScale(Scale):
    """Scale whose backward uses the input of the *last* forward (one attribute, overwritten
    by each call): right when used once, wrong when the module is called twice."""

    def forward(self, x):
        self.last_x = x
        return x * self.weight.data

    def backward(self, dy):
        x = self.last_x
        grad = (dy * x).sum(axis=0)
        self.weight.grad = grad if self.weight.grad is None else self.weight.grad + grad
        return dy * self.weight.data


def test_a_model_calling_a_module_several_times_is_checked_as_a_whole():
    x = offset_randn(np.random.default_rng(7), (3, 4), shift=1.0, scale=1.0)
    shared = Scale(4, buggy=False)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.ReLU(), shared)
    report = check_gradients(model, x)
    assert report.ok, str(report)
    assert [e.name for e in report.entries] == ["input 0", "parameter '0.weight'"]  # once, summed
    assert all(m.pending_forwards == 0 for m in model.modules())
    assert gradcheck(LastInputScale(4, buggy=False), x)  # used once it is right...
    tied = LastInputScale(4, buggy=False)
    report = check_gradients(nn.Sequential(tied, nn.ReLU(), tied), x)
    assert not report.ok  # ...and the checker sees what the second call does to it
    assert report.worst.name == "parameter '0.weight'"


class _Double(nn.Module):
    """y = 2 x, with a backward that returns ``scale * dy`` (2: right, 0: wrong)."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        self.save_for_backward()
        return 2 * x

    def backward(self, dy):
        self.saved()
        return self.scale * dy


def _layout(a, kind):
    """a's values in another memory layout (a C-contiguous copy for "C")."""
    if kind == "transposed":
        return a.T.copy().T
    if kind == "Fortran":
        return np.asfortranarray(a)
    if kind == "strided":
        return np.repeat(a, 2, axis=1)[:, ::2]
    return a.copy()


class _LinearWithoutWeightGrad(nn.Linear):
    def backward(self, dy, **kw):
        dx = super().backward(dy, **kw)
        self.weight.grad = np.zeros_like(self.weight.data)
        return dx


@pytest.mark.parametrize("kind", ["C", "transposed", "Fortran", "strided"])
def test_the_check_sees_inputs_and_parameters_of_any_layout(kind):
    """Central differences perturb every element of an input or a parameter whatever its
    memory layout: a wrong backward fails and a right one passes (a flat copy of a
    Fortran-ordered array would perturb the copy, and every numeric gradient would be 0)."""
    rng = np.random.default_rng(0)
    x = _layout(rng.standard_normal((6, 4)), kind)
    assert gradcheck(_Double(2.0), x)
    with pytest.raises(GradcheckError):
        gradcheck(_Double(0.0), x)
    w = rng.standard_normal((4, 3))
    for cls, ok in ((nn.Linear, True), (_LinearWithoutWeightGrad, False)):
        lin = cls(4, 3, dtype=np.float64)
        lin.weight.data = _layout(w, kind)
        assert check_gradients(lin, x).ok is ok


@pytest.mark.parametrize(
    "kw", [{"eps": 0.0}, {"eps": -1e-6}, {"eps": float("nan")}, {"atol": -1.0}, {"rtol": float("inf")}]
)
def test_the_check_refuses_tolerances_that_cannot_check(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        gradcheck(_Double(2.0), np.ones((2, 2)), **kw)
