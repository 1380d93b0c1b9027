"""The grad-mode API (``normreg.grad_mode``): ``no_grad``, ``enable_grad``,
``set_grad_enabled``, ``is_grad_enabled`` as context managers, decorators (with and without
parentheses, on functions and generators) and plain calls, per thread; the mode seen in each
step of a scenario is compared with the values PyTorch gives (written out, and checked
against torch itself when it is installed)."""

import threading

import numpy as np
import pytest

import normreg
from normreg import nn


@pytest.fixture(autouse=True)
def _grad_mode_restored():
    """Each test starts with recording on and leaves it on, whatever it did."""
    assert normreg.is_grad_enabled()
    yield
    normreg.set_grad_enabled(True)


def _check_a_decorated_generator(decorator):
    """A generator decorated with no_grad runs each resumption without recording and gives
    the caller back its mode in between."""

    @decorator
    def batches():
        for _ in range(2):
            yield normreg.is_grad_enabled()

    gen = batches()
    assert next(gen) is False and normreg.is_grad_enabled()  # the caller's mode in between
    assert list(gen) == [False]


def test_grad_mode_context_decorator_and_function():
    assert normreg.is_grad_enabled()
    l = nn.Linear(2, 2)
    x = np.ones((1, 2), np.float32)
    with normreg.no_grad():
        assert not normreg.is_grad_enabled()
        l(x)
        with normreg.enable_grad():
            assert normreg.is_grad_enabled()
            l(x)
        assert not normreg.is_grad_enabled()
    assert normreg.is_grad_enabled() and l.pending_forwards == 1

    @normreg.no_grad()
    def predict(inp):
        assert not normreg.is_grad_enabled()
        return l(inp)

    predict(x)
    assert normreg.is_grad_enabled() and l.pending_forwards == 1

    _check_a_decorated_generator(normreg.no_grad())

    normreg.set_grad_enabled(False)
    assert not normreg.is_grad_enabled()
    normreg.set_grad_enabled(True)
    with normreg.set_grad_enabled(False):
        assert not normreg.is_grad_enabled()
    assert normreg.is_grad_enabled()

    @normreg.set_grad_enabled(False)
    def off():
        return normreg.is_grad_enabled()

    assert normreg.is_grad_enabled() and off() is False and normreg.is_grad_enabled()
    with pytest.raises(TypeError, match="set_grad_enabled: mode must be a bool"):
        normreg.set_grad_enabled(0)
    with pytest.raises(RuntimeError), normreg.no_grad():
        raise RuntimeError("restored on the way out")
    assert normreg.is_grad_enabled()


def test_grad_mode_is_per_thread():
    seen = []
    with normreg.no_grad():
        t = threading.Thread(target=lambda: seen.append(normreg.is_grad_enabled()))
        t.start()
        t.join()
        assert not normreg.is_grad_enabled()
    assert seen == [True]


# ---- set_grad_enabled as an object, as PyTorch's --------------------------------------------


def _reused_set_grad_enabled(M):
    """The modes seen when one set_grad_enabled(False) object is entered twice, and when the
    mode changed between its making and its ``with`` block (M: normreg or torch)."""
    seen = []
    ctx = M.set_grad_enabled(False)
    seen.append(M.is_grad_enabled())  # set when the object is made
    for _ in range(2):
        with ctx:
            seen.append(M.is_grad_enabled())
        seen.append(M.is_grad_enabled())  # the mode recorded when it was made
    ctx = M.set_grad_enabled(False)
    M.set_grad_enabled(True)
    with ctx:
        seen.append(M.is_grad_enabled())  # entering sets the object's mode again
    seen.append(M.is_grad_enabled())
    with M.no_grad():
        with M.set_grad_enabled(True):
            seen.append(M.is_grad_enabled())
        seen.append(M.is_grad_enabled())
    seen.append(M.is_grad_enabled())
    return seen


# what torch 2.13 gives for _reused_set_grad_enabled(torch)
REUSED_EXPECTED = [False, False, True, False, True, False, True, True, False, True]


def test_set_grad_enabled_object_can_be_entered_again():
    assert _reused_set_grad_enabled(normreg) == REUSED_EXPECTED


def test_set_grad_enabled_object_keeps_torchs_attributes_and_restores_on_error():
    ctx = normreg.set_grad_enabled(False)
    assert (ctx.mode, ctx.prev) == (False, True) and repr(ctx) == "set_grad_enabled(mode=False)"
    normreg.set_grad_enabled(True)
    with pytest.raises(KeyError), ctx:
        assert not normreg.is_grad_enabled()
        raise KeyError("restored on the way out")
    assert normreg.is_grad_enabled()


def test_set_grad_enabled_decorator_restores_the_mode_at_once():
    dec = normreg.set_grad_enabled(False)
    assert not normreg.is_grad_enabled()

    @dec
    def off():
        return normreg.is_grad_enabled()

    assert normreg.is_grad_enabled()
    assert [off(), off()] == [False, False] and normreg.is_grad_enabled()


# ---- no_grad and enable_grad as decorators without parentheses ------------------------------


def test_bare_decorators_on_functions():
    @normreg.no_grad
    def predict(x):
        """Docstring kept."""
        return normreg.is_grad_enabled(), x

    @normreg.enable_grad
    def train_step():
        return normreg.is_grad_enabled()

    assert predict(3) == (False, 3) and normreg.is_grad_enabled()
    assert predict.__name__ == "predict" and predict.__doc__ == "Docstring kept."
    with normreg.no_grad():
        assert train_step() is True
        assert not normreg.is_grad_enabled()
    assert train_step() is True and normreg.is_grad_enabled()


def test_bare_decorator_on_a_generator_and_a_method():
    _check_a_decorated_generator(normreg.no_grad)

    class Model:
        @normreg.no_grad
        def predict(self, x):
            return self, x, normreg.is_grad_enabled()

    m = Model()
    assert m.predict(1) == (m, 1, False) and normreg.is_grad_enabled()


def test_bare_decorator_records_nothing():
    l = nn.Linear(2, 2)

    @normreg.no_grad
    def predict(x):
        return l(x)

    predict(np.ones((1, 2), np.float32))
    assert l.pending_forwards == 0


def test_no_grad_with_and_without_parentheses_are_instances_or_functions():
    assert isinstance(normreg.no_grad(), normreg.no_grad)
    assert isinstance(normreg.enable_grad(), normreg.enable_grad)
    with pytest.raises(TypeError, match="^no_grad: can decorate a function, not int$"):
        normreg.no_grad(5)
    with pytest.raises(TypeError, match="^enable_grad: can decorate a function, not str$"):
        normreg.enable_grad()("f")
    with pytest.raises(TypeError, match="^set_grad_enabled: can decorate a function, not NoneType$"):
        normreg.set_grad_enabled(True)(None)


def test_a_no_grad_object_entered_while_active_restores_each_level():
    # PyTorch's no_grad keeps one previous mode, so the same object entered twice leaves
    # recording off after both blocks; normreg keeps one per entry and restores it
    ctx = normreg.no_grad()
    with ctx:
        with ctx:
            assert not normreg.is_grad_enabled()
        assert not normreg.is_grad_enabled()
    assert normreg.is_grad_enabled()


# ---- against torch itself -------------------------------------------------------------------


def test_scenarios_match_pytorch():
    torch = pytest.importorskip("torch")
    prev = torch.is_grad_enabled()
    try:
        torch.set_grad_enabled(True)
        assert _reused_set_grad_enabled(torch) == REUSED_EXPECTED

        @torch.no_grad
        def t_off():
            return torch.is_grad_enabled()

        @normreg.no_grad
        def n_off():
            return normreg.is_grad_enabled()

        assert t_off() == n_off() is False
        assert torch.is_grad_enabled() == normreg.is_grad_enabled() is True
    finally:
        torch.set_grad_enabled(prev)
