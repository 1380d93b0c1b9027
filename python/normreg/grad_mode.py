"""Gradient recording on or off: ``no_grad``, ``enable_grad``, ``set_grad_enabled``,
``is_grad_enabled`` (PyTorch's names and behaviour).

With recording on (the default), each module's forward keeps what its backward needs
(:meth:`normreg.nn.Module.save_for_backward`); with it off, forwards keep nothing, so
evaluation and inference loops hold no memory for a backward that will never come::

    with normreg.no_grad():
        logits = model(x_test)

    @normreg.no_grad()
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
from typing import Any, TypeVar

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
    one on exit; also a decorator (a fresh context around each call of the decorated
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
        if not callable(fn):
            raise TypeError(f"{type(self).__name__}: can decorate a function, not {type(fn).__name__}")
        value = self._value
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(fn, value)  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _Scoped(value):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


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


class no_grad(_GradMode):
    """Turn gradient recording off within a ``with`` block or a decorated function:
    forwards keep nothing for a backward (``torch.no_grad``)."""

    _value = False


class enable_grad(_GradMode):
    """Turn gradient recording on within a ``with`` block or a decorated function, e.g.
    inside a ``no_grad`` block (``torch.enable_grad``)."""

    _value = True


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(mode)``: turn recording on or off now (as a plain call), or
    within a ``with`` block or a decorated function, restoring the previous mode after it
    (``torch.set_grad_enabled``)."""

    def __init__(self, mode: bool) -> None:
        super().__init__()
        self._value = V.boolean(mode, "mode", "set_grad_enabled")
        self._prev.append(_state.enabled)
        _state.enabled = self._value

    def __enter__(self) -> None:
        pass  # the mode was set when the object was made; __exit__ restores the one before

    def __call__(self, fn: F) -> F:
        # used as a decorator: undo the setting made at construction, apply it per call
        if self._prev:
            _state.enabled = self._prev.pop()
        return super().__call__(fn)
