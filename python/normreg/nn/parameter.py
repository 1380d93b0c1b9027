"""``Parameter`` and ``Module``: the base of every layer.

A :class:`Module` keeps in ``forward`` what its ``backward`` needs
(:meth:`Module.save_for_backward`, one entry per forward) and takes it back in
``backward`` (:meth:`Module.saved`, newest first). ``backward(dy)`` returns the gradient
with respect to the input and **adds** the parameter gradients into each
:class:`Parameter`'s ``.grad`` (they accumulate until ``zero_grad()``, as in PyTorch).
``parameters()`` finds the parameters by walking the module's attributes. More methods on
members by name come from :class:`~normreg.nn._module_extras.ModuleExtras`, the hooks
(``register_forward_hook``, ...) from :class:`~normreg.nn._hooks.ModuleHooks`.
"""

from __future__ import annotations

import collections
import collections.abc
import functools
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

from .. import _validation as V
from ..grad_mode import _state as _grad_mode
from ._hooks import ModuleHooks
from ._module_extras import ModuleExtras, _own_buffers
from ._param_arrays import add_to_grad as add_to_grad
from ._param_arrays import data_of as data_of
from ._param_arrays import grad_of as grad_of
from ._param_arrays import parameter_array
from ._param_arrays import store_grad as store_grad
from ._state import IncompatibleKeys, load_into


class Parameter:
    """A trainable array: ``.data`` (the values) and ``.grad`` (None until a backward adds
    a gradient, then an array of ``.data``'s shape and dtype; ``zero_grad()`` sets it back
    to None, as in PyTorch).

    ``Parameter(data)`` keeps ``data`` itself, without a copy, when it is a C-contiguous,
    aligned, writeable float32 or float64 ndarray in native byte order (as
    ``torch.nn.Parameter`` shares the tensor it is given): writes through either name show
    in both. Anything else (a list, another layout, a read-only array) is copied into such
    an array; other dtypes are a TypeError.
    """

    __slots__ = ("data", "grad")

    def __init__(self, data: Any) -> None:
        self.data: np.ndarray = parameter_array(data)
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradient: ``.grad = None`` (default, as PyTorch 2), or, with
        ``set_to_none=False``, fill an existing ``.grad`` with zeros in place."""
        where = "Parameter.zero_grad"
        if V.boolean(set_to_none, "set_to_none", where):
            self.grad = None
        elif self.grad is not None:
            g = self.grad
            if not isinstance(g, np.ndarray):
                raise TypeError(
                    f"{where}: set_to_none=False fills grad with zeros in place, so it must be a "
                    f"numpy.ndarray, got {type(g).__name__}"
                )
            if not g.flags.writeable:
                raise ValueError(f"{where}: set_to_none=False zeroes grad in place; it is read-only")
            g[...] = 0

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


# Every saved entry gets the next number: entries of different modules compare by age.
_next_seq = itertools.count(1).__next__
# Entries taken by successful backwards so far (a backward that fails after some were taken
# did part of its work: see Module._abandon_forward).
_taken = [0]

_B = TypeVar("_B", bound=Callable[..., Any])
# what a module keeps between a forward and its backward (not copied or pickled)
_PER_CALL = ("_saved", "_dropped", "_in_backward", "_claimed")


def _consuming(backward: _B) -> _B:
    """Wrap a Module subclass's ``backward``: the entry it read with ``saved()`` is removed
    when the call returns, and stays when it raises before any work was done."""

    @functools.wraps(backward)
    def wrapper(self: Module, *args: Any, **kwargs: Any) -> Any:
        if self._in_backward:  # a subclass's backward calling its base's: the outer call pops
            return backward(self, *args, **kwargs)
        state = self.__dict__
        state["_in_backward"] = True
        state["_claimed"] = False
        taken = _taken[0]
        try:
            result = backward(self, *args, **kwargs)
        except BaseException:
            if state["_claimed"] and _taken[0] != taken:
                self._abandon_forward()  # half done: drop the rest of that forward
            raise
        finally:
            state["_in_backward"] = False
        if state["_claimed"]:
            self._saved.pop()
            _taken[0] += 1
        return result

    wrapper._consumes_saved = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _pending_limit(value: Any, module: Module) -> int:
    """``max_pending_forwards`` checked: an int >= 1 (TypeError/ValueError naming it)."""
    return V.integer(value, "max_pending_forwards", type(module).__name__, low=1)


def _own_parameters(module: Module) -> Iterator[tuple[str, Parameter]]:
    """(attribute name, Parameter) of each Parameter ``module`` holds itself."""
    return ((name, value) for name, value in vars(module).items() if isinstance(value, Parameter))


class Module(ModuleHooks, ModuleExtras):
    """Base class: subclasses set their parameters, buffers and sub-modules as attributes
    and implement ``forward`` and ``backward``.

    **Saved values and pending forwards.** ``forward`` keeps what ``backward`` needs with
    ``self.save_for_backward(*values)``; ``backward`` reads it with ``self.saved()``. Each
    forward run with gradient recording on (the default; see :class:`normreg.no_grad`)
    pushes one entry, and each backward takes the newest one (last in, first out), which
    is the order in which ``Sequential`` and ``Residual`` run their backwards. So a module
    called k times before its backwards (weight tying, a block shared between places) gets
    the sum of the gradients of its k uses, as with PyTorch's autograd. A backward with no
    pending forward raises RuntimeError. A backward that raises before taking anything
    (a wrong ``dy``) leaves the entry for the next one; a forward that raises leaves no
    entry behind, in this module or in its sub-modules.

    ``copy.deepcopy`` and ``pickle`` of a module leave its pending forwards behind.

    **Forwards that are never differentiated** (evaluation, inference, logging) should run
    under ``with normreg.no_grad():``, where nothing is kept. Without it, a module keeps at
    most ``max_pending_forwards`` entries (default 16; a class attribute, so it can be set
    for all modules, one class or one instance): beyond that the oldest is dropped, and a
    backward that would need a dropped entry raises RuntimeError saying so, never
    computing a gradient from another forward's values. ``clear_pending()`` drops every
    pending entry of a module and its sub-modules (e.g. after an aborted step).
    """

    #: The most forwards whose saved values a module keeps for a backward (see above).
    max_pending_forwards: int = 16
    _parameter_class = Parameter  # for the methods of ModuleExtras, which cannot import it
    _sequence_number = staticmethod(_next_seq)  # for the hooked call (ModuleHooks)

    training: bool
    # [sequence number, start of the call, values], oldest first; at most max_pending_forwards
    # (until __init__ or save_for_backward makes the module's own: the class's empty deque,
    # never written to, whose maxlen None tells save_for_backward to make one)
    _saved: collections.deque[list[Any]] = collections.deque()
    _dropped: bool = False  # whether an entry fell off beyond max_pending_forwards since clear_pending()
    _in_backward: bool = False
    _claimed: bool = False

    def __init__(self) -> None:
        self.training = True
        self._buffer_names: list[str] = []
        self._resized_saved(self.max_pending_forwards)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        backward = cls.__dict__.get("backward")
        if backward is not None and not getattr(backward, "_consumes_saved", False):
            cls.backward = _consuming(backward)  # type: ignore[method-assign]
        # A leaf layer may set `__call__ = forward` (see Module.__call__); a subclass that
        # brings its own forward gets the general call back, unless it says the same.
        own = cls.__dict__
        if "forward" in own and "__call__" not in own and cls.__call__ is not Module.__call__:
            cls.__call__ = Module.__call__  # type: ignore[method-assign]

    # -- calls ---------------------------------------------------------------------------

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, dy: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``self.forward(*args, **kwargs)``, with the bookkeeping that lets a failed call or
        a failed backward drop what the sub-modules saved meanwhile.

        A leaf layer (one that calls no module and saves its values as the last thing its
        forward does, after everything that can raise) has nothing of that kind to track:
        it sets ``__call__ = forward`` in its class body, which makes the call of a small
        layer the forward alone (that bookkeeping was about half of a tiny LayerNorm call).
        A module with hooks has a class of its own that runs them around this call (see
        :mod:`normreg.nn._hooks`)."""
        start = _next_seq()
        try:
            out = self.forward(*args, **kwargs)
        except BaseException:
            self._discard_since(start)
            raise
        saved = self._saved
        if saved and saved[-1][0] > start:
            saved[-1][1] = start  # the entries of sub-modules made by this call are younger
        return out

    # -- saved values --------------------------------------------------------------------

    def save_for_backward(self, *values: Any) -> None:
        """Keep ``values`` for the backward of this forward (nothing under ``no_grad``)."""
        if not _grad_mode.enabled:  # is_grad_enabled() without its call: this runs per forward
            return
        saved = self._saved
        limit = self.max_pending_forwards
        if saved.maxlen != limit:  # new, or the setting changed
            saved = self._resized_saved(limit)
        if len(saved) == limit and not self._dropped:  # the oldest entry falls off as this one goes on
            self.__dict__["_dropped"] = True
        saved.append([_next_seq(), 0, values])

    def _resized_saved(self, limit: int) -> collections.deque[list[Any]]:
        """The pending entries in a deque of at most ``limit`` (the newest kept)."""
        old = self.__dict__.get("_saved") or ()
        n = _pending_limit(limit, self)
        saved = collections.deque(old, maxlen=n)
        self.__dict__["_dropped"] = self._dropped or len(old) > n
        self.__dict__["_saved"] = saved
        return saved

    def saved(self) -> tuple[Any, ...]:
        """The values the newest pending forward saved (taken when this backward returns);
        RuntimeError naming the module when there is none."""
        saved = self.__dict__.get("_saved")
        if not saved:
            raise RuntimeError(self._nothing_pending())
        self.__dict__["_claimed"] = True
        return saved[-1][2]

    @property
    def pending_forwards(self) -> int:
        """How many forwards of this module wait for their backward."""
        return len(self.__dict__.get("_saved", ()))

    def clear_pending(self) -> None:
        """Drop the saved values of every pending forward, here and in every sub-module."""
        for m in self.modules():
            m.__dict__["_saved"] = collections.deque(maxlen=_pending_limit(m.max_pending_forwards, m))
            m.__dict__["_dropped"] = False

    def __getstate__(self) -> dict[str, Any]:
        # a copy or a pickle of a module carries its parameters, buffers and settings, not
        # the values pending forwards saved (as PyTorch's modules do not carry the graph)
        return {k: v for k, v in self.__dict__.items() if k not in _PER_CALL}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._resized_saved(self.max_pending_forwards)

    def _nothing_pending(self) -> str:
        name = type(self).__name__
        if self._dropped:
            return (
                f"{name}.backward: the values saved by the forward of this backward were dropped: "
                f"{name} keeps the newest {self.max_pending_forwards} pending forwards "
                "(Module.max_pending_forwards). Run forwards that are not differentiated "
                "under normreg.no_grad(), or raise max_pending_forwards"
            )
        return (
            f"{name}.backward: no pending forward (each backward takes the values saved by "
            "the newest forward run with gradient recording on; forwards under "
            "normreg.no_grad() save nothing)"
        )

    def _discard_since(self, start: int) -> None:
        """Remove the entries saved after ``start`` here and in every sub-module (the call
        that made them failed)."""
        for m in self.modules():
            saved = m.__dict__.get("_saved")
            while saved and saved[-1][0] > start:
                saved.pop()

    def _abandon_forward(self) -> None:
        """Remove the newest entry and, in every sub-module, the entries its forward made:
        a backward that failed half-way leaves no half-taken forward behind."""
        seq, start, _ = self._saved.pop()
        _taken[0] += 1
        if not start:  # forward was called directly, not through __call__: no range known
            return
        for m in self.modules():
            saved = m.__dict__.get("_saved")
            if m is not self and saved:
                kept = [e for e in saved if not start < e[0] < seq]
                saved.clear()
                saved.extend(kept)

    def _input(self, a: Any, name: str) -> np.ndarray:
        """``a`` as a float array of the dtype of this module's parameters (``self.dtype``);
        TypeError naming ``name`` otherwise."""
        where = type(self).__name__
        dtype = self.dtype  # type: ignore[attr-defined]  # the layers that call this have one
        return V.float_array(a, name, where, dtype, f"the dtype of {where}'s parameters")

    # -- structure -----------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        buffers = self.__dict__.get("_buffer_names")
        if name == "max_pending_forwards":
            _pending_limit(value, self)  # refused when set, not at the next forward
        if isinstance(value, Parameter):
            if buffers and name in buffers:  # a Parameter in a buffer's place is a parameter (PyTorch's)
                buffers.remove(name)
        elif buffers and name in buffers:
            value = V.buffer_value(value, self.__dict__.get(name), name, type(self).__name__)
        elif value is not None and isinstance(self.__dict__.get(name), Parameter):
            raise TypeError(
                f"{type(self).__name__}: cannot assign {type(value).__name__} as parameter {name!r} "
                "(a Parameter or None expected)"
            )
        object.__setattr__(self, name, value)

    def _child_items(self) -> Iterator[tuple[str, Module]]:
        """Every (name, child), a child held under two names twice (the repr and the
        state_dict's keys list each name, as PyTorch's ``_modules``)."""
        for name, value in vars(self).items():
            if name == "_saved":
                continue
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item
            elif isinstance(value, dict):  # as PyTorch's ModuleDict: "heads.a.weight"
                for key, item in value.items():
                    if isinstance(item, Module):
                        yield f"{name}.{key}", item

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, child) for each direct sub-module, once (a module held twice, as in
        ``Sequential(l, ReLU(), l)``, under its first name), as PyTorch's."""
        seen = set()
        for name, child in self._child_items():
            if id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_modules(
        self, prefix: str = "", remove_duplicate: bool = True, _seen: set[int] | None = None
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and every sub-module, depth first, each
        module once (its first name) unless ``remove_duplicate=False``, as PyTorch's."""
        if remove_duplicate:
            _seen = set() if _seen is None else _seen
            if id(self) in _seen:
                return
            _seen.add(id(self))
        yield prefix, self
        for name, child in self._child_items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, remove_duplicate, _seen)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) pairs: this module's own, then (``recurse``) each sub-module's,
        dotted names; each Parameter once (its first name) unless ``remove_duplicate=False``."""
        return self._named_members(_own_parameters, prefix, recurse, remove_duplicate, "named_parameters")

    def parameters(self, recurse: bool = True) -> list[Parameter]:
        """The Parameters of ``named_parameters(recurse=recurse)``, in a list."""
        return [p for _, p in self.named_parameters(recurse=recurse)]

    # -- modes and gradients -------------------------------------------------------------

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module (children first, as PyTorch's ``Module.apply``),
        then on this module; returns this module. ``model.apply(init_fn)`` is the usual
        way to initialize a whole model."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``True``) or evaluation mode here and, through each child's own
        ``train``, in every sub-module.
        ``mode`` must be a bool (ValueError otherwise, as PyTorch's: ``train("eval")`` would
        be training mode)."""
        if not isinstance(mode, (bool, np.bool_)):
            raise ValueError(f"{type(self).__name__}.train: mode must be a bool, got {type(mode).__name__}")
        self.training = bool(mode)
        for child in self.children():  # through each child's train(), which it may override
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient: ``.grad = None`` (default, as PyTorch 2), or
        zeros in place with ``set_to_none=False``."""
        set_to_none = V.boolean(set_to_none, "set_to_none", f"{type(self).__name__}.zero_grad")
        for p in self.parameters():
            p.zero_grad(set_to_none)

    # -- state ---------------------------------------------------------------------------

    def _state_targets(self) -> collections.OrderedDict[str, np.ndarray]:
        """name -> the live array, in PyTorch's order: each module's parameters, then its
        buffers, then its children's."""
        targets: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        # a module or parameter held twice (weight tying) has a key for each of its names,
        # as in PyTorch's state_dict, so either's checkpoints load into the other
        for mod_name, mod in self.named_modules(remove_duplicate=False):
            prefix = f"{mod_name}." if mod_name else ""
            for name, param in _own_parameters(mod):
                targets[prefix + name] = param.data
            for name, value in _own_buffers(mod):
                if value is not None:
                    targets[prefix + name] = value
        return targets

    def state_dict(self) -> collections.OrderedDict[str, np.ndarray]:
        """An ordered dict of copies of the parameters' data and the buffers."""
        return collections.OrderedDict((k, np.array(v, copy=True)) for k, v in self._state_targets().items())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict``'s arrays into the parameters and buffers, in place.

        Every key is checked (shape, dtype) before anything is written, so a failed load
        changes nothing. An array of another float dtype is rounded to the target's (as
        PyTorch's ``copy_``); a batch norm's ``num_batches_tracked`` may be absent (kept).
        With ``strict=True`` missing or unexpected keys raise KeyError; with
        ``strict=False`` they are returned as ``(missing_keys, unexpected_keys)``.
        """
        return load_into(self._state_targets(), state_dict, strict)

    # -- display -------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self._child_items())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"
