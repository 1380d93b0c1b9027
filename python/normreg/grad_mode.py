"""Gradient recording on or off: ``no_grad``, ``enable_grad``, ``set_grad_enabled``,
``is_grad_enabled`` (PyTorch's names and behaviour).

With recording on (the default), each module's forward keeps what its backward needs
(:meth:`normreg.nn.Module.save_for_backward`); with it off, forwards keep nothing, so
evaluation and inference loops hold no memory for a backward that will never come::

    with normreg.no_grad():
        logits = model(x_test)

    @normreg.no_grad  # or @normreg.no_grad()
    def predict(model, x):
        return model(x).argmax(axis=1)

Recording is independent of ``train()``/``eval()`` (as in PyTorch: evaluation mode changes
what dropout and batch norm compute, not whether a backward is possible). The state is
per thread: each thread starts with recording on.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Generator
from typing import Any, TypeVar, overload

from . import _validation as V

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]

F = TypeVar("F", bound=Callable[..., Any])


class _State(threading.local):
    enabled = True  # the value every thread starts with


_state = _State()


def is_grad_enabled() -> bool:
    """Whether forwards record what their backward needs (in this thread)."""
    return _state.enabled


class _GradMode:
    """A context manager that sets the mode ``_value`` on entry and restores the previous
    one on exit (a stack of them, so one object may be entered again, even while it is
    active); also a decorator (a fresh context around each call of the decorated
    function, and around each resumption of a decorated generator)."""

    _value: bool

    def __init__(self) -> None:
        self._prev: list[bool] = []

    def __enter__(self) -> None:
        self._prev.append(_state.enabled)
        _state.enabled = self._value

    def __exit__(self, *exc: object) -> None:
        _state.enabled = self._prev.pop()

    def __call__(self, fn: F) -> F:
        return _decorate(self, fn, self._value)


def _decorate(ctx: object, fn: F, value: bool) -> F:
    """``fn`` run with the mode ``value`` (the decorator ``ctx`` was used as)."""
    if not callable(fn):
        raise TypeError(f"{type(ctx).__name__}: can decorate a function, not {type(fn).__name__}")
    if inspect.isgeneratorfunction(fn):
        return _wrap_generator(fn, value)  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _Scoped(value):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


_G = TypeVar("_G", bound="_NoParamGradMode")


class _NoParamGradMode(_GradMode):
    """A mode that is also a decorator without parentheses: ``@no_grad`` is
    ``@no_grad()`` (PyTorch 2's ``_NoParamDecoratorContextManager``)."""

    @overload
    def __new__(cls, fn: F) -> F: ...  # type: ignore[misc]
    @overload
    def __new__(cls: type[_G], fn: None = None) -> _G: ...

    def __new__(cls, fn: Any = None) -> Any:
        if fn is None:
            return super().__new__(cls)
        return cls()(fn)  # a function, so Python does not call __init__ on it


class _Scoped(_GradMode):
    def __init__(self, value: bool) -> None:
        super().__init__()
        self._value = value


def _wrap_generator(fn: Callable[..., Generator[Any, Any, Any]], value: bool) -> Callable[..., Any]:
    """``fn`` (a generator function) with the mode ``value`` set while it runs, and the
    caller's mode in between (what PyTorch's decorators do)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        gen = fn(*args, **kwargs)
        try:
            with _Scoped(value):
                response = gen.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with _Scoped(value):
                        gen.close()
                    raise
                except BaseException as exc:
                    with _Scoped(value):
                        response = gen.throw(exc)
                else:
                    with _Scoped(value):
                        response = gen.send(request)
        except StopIteration as stop:
            return stop.value

    return wrapper


class no_grad(_NoParamGradMode):
    """Turn gradient recording off within a ``with`` block or a decorated function:
    forwards keep nothing for a backward (``torch.no_grad``)."""

    _value = False


class enable_grad(_NoParamGradMode):
    """Turn gradient recording on within a ``with`` block or a decorated function, e.g.
    inside a ``no_grad`` block (``torch.enable_grad``)."""

    _value = True


class set_grad_enabled:
    """``set_grad_enabled(mode)``: turn recording on or off now (as a plain call), or
    within a ``with`` block or a decorated function (``torch.set_grad_enabled``).

    As PyTorch's: making the object sets ``mode`` and records the mode it replaced;
    entering a ``with`` block sets ``mode`` (again), leaving it restores the mode recorded
    when the object was made. So one object can be entered several times, and
    ``ctx = set_grad_enabled(False); set_grad_enabled(True); with ctx: ...`` runs the block
    with recording off. As a decorator, the mode recorded is restored at once and ``mode``
    is set around each call."""

    def __init__(self, mode: bool) -> None:
        self.mode = V.boolean(mode, "mode", "set_grad_enabled")
        self.prev = _state.enabled
        _state.enabled = self.mode

    def __enter__(self) -> None:
        _state.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _state.enabled = self.prev

    def __call__(self, fn: F) -> F:
        _state.enabled = self.prev  # undo the setting made at construction: it applies per call
        return _decorate(self, fn, self.mode)

    def __repr__(self) -> str:
        return f"set_grad_enabled(mode={self.mode})"
