"""PyTorch's module hooks: ``register_forward_pre_hook``, ``register_forward_hook``,
``register_full_backward_pre_hook`` and ``register_full_backward_hook``, each returning a
:class:`RemovableHandle`.

``Module`` inherits the methods from :class:`ModuleHooks`. A module without hooks runs
its call and its backward as before, with no check added: a leaf layer's ``__call__`` is
its ``forward`` itself (see ``Module.__call__``), which a hook check would slow down. At
its first hook a module's class becomes a subclass of its class (one per class, made
once, with the same ``__name__``, ``__qualname__`` and ``__module__``) whose ``__call__``
and ``backward`` run the hooks around the class's own; when its last hook is removed it
gets its class back. So ``isinstance`` and the repr are unchanged; ``type(m) is
LayerNorm`` is not true of a hooked LayerNorm.

The hooks are kept in the module's ``__dict__`` (``_module_hooks``, not a child, a
parameter or a state_dict key). As in PyTorch, ``copy.deepcopy`` and ``pickle`` carry
them (a copy has the hooks and the hooked class; a hook that cannot be pickled, such as a
lambda, makes the pickle fail, as PyTorch's); the handles act on the module they were
made by only. ``copy.copy`` gives the copy hook tables of its own (PyTorch's shares them).

This module cannot import ``nn.parameter``, which imports it.
"""

from __future__ import annotations

import inspect
import itertools
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

_KEY = "_module_hooks"  # the __dict__ entry holding a module's hooks
_VARIANT = "_hooked_variant"  # the hooked subclass, in the __dict__ of the class it extends
_next_id = itertools.count().__next__  # handles' ids: unique across modules, as PyTorch's
_EMPTY = inspect.Parameter.empty


class _Hooks:
    """A module's hooks by id, each table in the order they run."""

    __slots__ = ("forward_pre", "forward", "backward_pre", "backward")

    def __init__(self) -> None:
        # forward_pre: id -> (hook, with_kwargs); forward: id -> (hook, with_kwargs, always_call)
        self.forward_pre: dict[int, tuple[Callable[..., Any], bool]] = {}
        self.forward: dict[int, tuple[Callable[..., Any], bool, bool]] = {}
        self.backward_pre: dict[int, Callable[..., Any]] = {}
        self.backward: dict[int, Callable[..., Any]] = {}

    def copy(self) -> _Hooks:
        new = _Hooks()
        for name in self.__slots__:
            setattr(new, name, dict(getattr(self, name)))
        return new

    def empty(self) -> bool:
        return not (self.forward_pre or self.forward or self.backward_pre or self.backward)


class RemovableHandle:
    """What a ``register_*_hook`` returns, as PyTorch's ``RemovableHandle``: ``remove()``
    takes the hook off its module (again: nothing); ``with handle:`` removes it on leaving
    the block. ``id`` is the hook's number. It refers to its module weakly."""

    def __init__(self, module: ModuleHooks, table: str, hook_id: int) -> None:
        self._module = weakref.ref(module)
        self._table = table
        self.id = hook_id

    def remove(self) -> None:
        module = self._module()
        hooks = None if module is None else module.__dict__.get(_KEY)
        if module is None or hooks is None:
            return
        getattr(hooks, self._table).pop(self.id, None)
        if hooks.empty():  # no hook left: the module's own class again, and its speed
            del module.__dict__[_KEY]
            base = _base_class(type(module))
            if base is not type(module):
                object.__setattr__(module, "__class__", base)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.remove()


def _base_class(cls: type) -> type:
    return cls.__bases__[0] if cls.__dict__.get("_runs_hooks") else cls


def _new_hooked(base: type) -> Any:
    """A new instance of the hooked subclass of ``base`` (pickle's and copy's constructor)."""
    return object.__new__(_hooked_class(base))


def _first_parameter(fn: Callable[..., Any]) -> tuple[str | None, Any]:
    """(name, default) of the parameter of ``backward`` after self: where dy goes (name None
    for ``*args``; default ``_EMPTY`` when it has none)."""
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):  # no signature to read: hooks when dy is given by position
        params = []
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        return None, _EMPTY
    return params[0].name, params[0].default


def _grads(result: Any, given: tuple[Any, ...], what: str, hook: str) -> tuple[Any, ...]:
    """A backward hook's non-None ``result``: a tuple (or list) of ``len(given)`` entries."""
    if not isinstance(result, (tuple, list)):
        raise TypeError(
            f"{hook} must return None or a tuple like its {what} ({len(given)} entry), "
            f"got {type(result).__name__}"
        )
    if len(result) != len(given):
        raise RuntimeError(
            f"{hook} returned an invalid number of {what}, got {len(result)}, but expected {len(given)}"
        )
    return tuple(result)


def _hooked_class(base: type) -> type:
    """The subclass of ``base`` that runs hooks (made at the first call, then kept in
    ``base.__dict__``)."""
    cls = base.__dict__.get(_VARIANT)
    if cls is not None:
        return cls
    dy_name, dy_default = _first_parameter(base.backward)  # type: ignore[attr-defined]

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        hooks: _Hooks | None = self.__dict__.get(_KEY)
        if hooks is None:
            return base.__call__(self, *args, **kwargs)
        start = self._sequence_number()
        result = None
        called: set[int] = set()  # the always_call hooks that ran
        try:
            for hook, with_kwargs in tuple(hooks.forward_pre.values()):
                if with_kwargs:
                    new = hook(self, args, kwargs)
                    if new is not None:
                        if not (isinstance(new, tuple) and len(new) == 2):
                            raise RuntimeError(
                                "forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                                f"but got {new}."
                            )
                        args, kwargs = new
                else:
                    new = hook(self, args)
                    if new is not None:
                        args = new if isinstance(new, tuple) else (new,)
            result = base.__call__(self, *args, **kwargs)
            for hook_id, (hook, with_kwargs, always) in tuple(hooks.forward.items()):
                if always:
                    called.add(hook_id)
                new = hook(self, args, kwargs, result) if with_kwargs else hook(self, args, result)
                if new is not None:
                    result = new
        except BaseException as exc:
            self._discard_since(start)  # a call that raises leaves no saved values behind
            if isinstance(exc, Exception):
                _always_called(self, hooks, called, args, kwargs, result)
            raise
        return result

    def backward(self: Any, *args: Any, **kwargs: Any) -> Any:
        hooks: _Hooks | None = self.__dict__.get(_KEY)
        rest, others = args[1:], kwargs
        if args:
            dy = args[0]
        elif dy_name is not None and dy_name in kwargs:
            others = {k: v for k, v in kwargs.items() if k != dy_name}
            dy = kwargs[dy_name]
        else:
            dy = dy_default  # backward() of SoftmaxLoss: dloss=1.0
        if hooks is None or dy is _EMPTY or not (hooks.backward_pre or hooks.backward):
            return base.backward(self, *args, **kwargs)  # type: ignore[attr-defined]
        grad_output = (dy,)
        for hook in tuple(hooks.backward_pre.values()):
            new = hook(self, grad_output)
            if new is not None:
                grad_output = _grads(new, grad_output, "grad_output", "Backward pre hook")
        grad_input = (base.backward(self, grad_output[0], *rest, **others),)  # type: ignore[attr-defined]
        for hook in tuple(hooks.backward.values()):
            new = hook(self, grad_input, grad_output)
            if new is None:
                continue
            if grad_input[0] is None and any(g is not None for g in new):
                raise RuntimeError(
                    "Backward hook for Modules where no input requires gradient should always "
                    "return None or None for all gradients (the backward computed no input "
                    "gradient: backward(dy, input_grad=False))"
                )
            grad_input = _grads(new, grad_input, "grad_input", "Backward hook")
        return grad_input[0]

    def __reduce_ex__(self: Any, protocol: Any) -> Any:
        # rebuilt by _new_hooked: pickle cannot find this class by its name (the base's)
        state = self.__getstate__()
        if _KEY in state:
            state = dict(state)
            state[_KEY] = state[_KEY].copy()  # copy.copy: tables of its own
        return _new_hooked, (base,), state

    backward._consumes_saved = True  # type: ignore[attr-defined]  # base.backward takes the entry
    namespace = {
        "__call__": __call__,
        "backward": backward,
        "__reduce_ex__": __reduce_ex__,
        "_runs_hooks": True,
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
    }
    cls = type(base)(base.__name__, (base,), namespace)
    type.__setattr__(base, _VARIANT, cls)
    return cls


def _always_called(
    module: Any, hooks: _Hooks, called: set[int], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """The forward hooks registered with ``always_call=True`` that did not run before the
    call raised, as PyTorch's: with the output so far (None when the forward raised); an
    error of theirs is a warning (the call's own error is raised)."""
    for hook_id, (hook, with_kwargs, always) in tuple(hooks.forward.items()):
        if not always or hook_id in called:
            continue
        try:
            new = hook(module, args, kwargs, result) if with_kwargs else hook(module, args, result)
            if new is not None:
                result = new
        except Exception as e:
            warnings.warn(
                "module forward hook with ``always_call=True`` raised an exception that was "
                f"silenced as another error was raised in forward: {e}",
                stacklevel=3,
            )


class ModuleHooks:
    """The ``register_*_hook`` methods of :class:`~normreg.nn.Module` (see the module's
    docstring); :class:`~normreg.nn.Module` is the class to subclass."""

    if TYPE_CHECKING:  # Module's, which this class cannot import

        def _discard_since(self, start: int) -> None: ...

    #: the counter of saved entries (Module's), to drop what a call that raised saved
    _sequence_number: ClassVar[Callable[[], int]]

    def _add_hook(self, table: str, entry: Any, prepend: bool, where: str) -> RemovableHandle:
        hook = entry[0] if isinstance(entry, tuple) else entry
        if not callable(hook):
            raise TypeError(
                f"{type(self).__name__}.{where}: hook must be callable, got {type(hook).__name__}"
            )
        prepend = _flag(prepend, "prepend", self, where)
        cls = type(self)
        if not cls.__dict__.get("_runs_hooks"):
            object.__setattr__(self, "__class__", _hooked_class(cls))
        hooks = self.__dict__.get(_KEY)
        if hooks is None:
            hooks = self.__dict__[_KEY] = _Hooks()
        hook_id = _next_id()
        hooks_of: dict[int, Any] = getattr(hooks, table)
        if prepend:
            setattr(hooks, table, {hook_id: entry, **hooks_of})
        else:
            hooks_of[hook_id] = entry
        return RemovableHandle(self, table, hook_id)

    def register_forward_pre_hook(
        self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """Run ``hook(module, args)`` before each call of the module (``module(x)``, also
        from a container), as PyTorch's: ``args`` the positional arguments (a tuple); a
        non-None return replaces them (a value that is not a tuple stands for ``(value,)``).
        ``with_kwargs=True``: ``hook(module, args, kwargs)``, returning None or ``(args,
        kwargs)``. Hooks run in the order registered (``prepend=True``: before the others).
        Under ``no_grad`` too. Returns a :class:`RemovableHandle`."""
        where = "register_forward_pre_hook"
        with_kwargs = _flag(with_kwargs, "with_kwargs", self, where)
        return self._add_hook("forward_pre", (hook, with_kwargs), prepend, where)

    def register_forward_hook(
        self,
        hook: Callable[..., Any],
        *,
        prepend: bool = False,
        with_kwargs: bool = False,
        always_call: bool = False,
    ) -> RemovableHandle:
        """Run ``hook(module, args, output)`` after each call of the module, as PyTorch's: a
        non-None return replaces the output. ``with_kwargs=True``: ``hook(module, args,
        kwargs, output)``. ``always_call=True``: also when the call raises (with the output
        so far, None when the forward raised; the call's error is raised, an error of the
        hook a warning). In the order registered (``prepend=True``: first). Under
        ``no_grad`` too. Returns a :class:`RemovableHandle`."""
        where = "register_forward_hook"
        with_kwargs = _flag(with_kwargs, "with_kwargs", self, where)
        always_call = _flag(always_call, "always_call", self, where)
        return self._add_hook("forward", (hook, with_kwargs, always_call), prepend, where)

    def register_full_backward_pre_hook(
        self, hook: Callable[..., Any], prepend: bool = False
    ) -> RemovableHandle:
        """Run ``hook(module, grad_output)`` at the start of each ``backward`` of the module
        (called directly or by a container), as PyTorch's: ``grad_output`` is ``(dy,)``; a
        non-None return, a tuple of one gradient, replaces dy. Returns a
        :class:`RemovableHandle`."""
        return self._add_hook("backward_pre", hook, prepend, "register_full_backward_pre_hook")

    def register_full_backward_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """Run ``hook(module, grad_input, grad_output)`` at the end of each ``backward`` of
        the module, as PyTorch's: ``grad_input`` is ``(dx,)``, dx what the backward returns
        (``(None,)`` when it computes no input gradient: ``backward(dy, input_grad=False)``);
        ``grad_output`` is ``(dy,)`` as the backward got it (after the pre-hooks). A non-None
        return, a tuple of one gradient, replaces dx (only ``(None,)`` where dx is None).
        Returns a :class:`RemovableHandle`."""
        return self._add_hook("backward", hook, prepend, "register_full_backward_hook")


def _flag(value: Any, name: str, module: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{type(module).__name__}.{where}: {name} must be a bool, got {type(value).__name__}")
    return value
