"""The methods of :class:`~normreg.nn.Module` that register, look up and convert its
members by name, as PyTorch's: ``register_buffer``, ``register_parameter``,
``add_module`` (``register_module``), ``get_submodule``, ``get_parameter``,
``get_buffer``, ``named_buffers``, ``buffers``, ``to``, ``float`` and ``double``.

``Module`` inherits them from :class:`ModuleExtras`. This module cannot import
``nn.parameter``, which imports it: ``Module`` names the parameter class in
``_parameter_class``, and a module is an instance of this class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from .. import _validation as V

_M = TypeVar("_M", bound="ModuleExtras")

# the words of PyTorch's errors of get_submodule, get_parameter and get_buffer
_KIND_NAMES = {"module": "an nn.Module", "parameter": "an nn.Parameter", "buffer": "a buffer"}


def _own_buffers(module: ModuleExtras) -> Iterator[tuple[str, Any]]:
    """(name, buffer) of each buffer ``module`` holds itself, in the order of registration."""
    return ((name, getattr(module, name)) for name in getattr(module, "_buffer_names", ()))


def _child_names(module: ModuleExtras) -> set[str]:
    return {name for name, _ in module._child_items()}


def _has(module: ModuleExtras, name: str) -> bool:
    """Whether ``name`` is an attribute or a child of ``module`` (a ModuleList's "0" is a
    child without being an attribute)."""
    return hasattr(module, name) or name in _child_names(module)


def _check_name(module: ModuleExtras, name: Any, kind: str, where: str) -> None:
    """PyTorch's checks of the name of a new member: a str (TypeError), non-empty and
    without '.' (KeyError), and not an attribute of another kind (KeyError). An attribute
    holding None may be registered as any kind: what the None stands for (the bias of a
    ``Linear(bias=False)``, a module registered as None) is not recorded here."""
    if not isinstance(name, str):
        raise TypeError(f"{where}: the name must be a str, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{where}: a {kind} name must be non-empty and hold no '.', got {name!r}")
    if kind == "buffer":
        same = name in module._buffer_names
    elif kind == "parameter":
        same = isinstance(vars(module).get(name), module._parameter_class)
    else:
        same = name in _child_names(module)
    if not same and _has(module, name) and (kind == "buffer" or not _holds_none(module, name)):
        raise KeyError(f"{where}: attribute {name!r} already exists")


def _holds_none(module: ModuleExtras, name: str) -> bool:
    """Whether ``name`` is an attribute holding None that is not a buffer."""
    return name not in module._buffer_names and getattr(module, name, False) is None


def _missing(module: ModuleExtras, name: str) -> AttributeError:
    return AttributeError(f"{type(module).__name__} has no attribute `{name}`")


def _not_a(name: str, kind: str) -> AttributeError:
    return AttributeError(f"`{name}` is not {_KIND_NAMES[kind]}")


def _cast(value: Any, dtype: np.dtype[Any]) -> np.ndarray | None:
    """``value`` as a C-contiguous array of ``dtype``, or None when it already has it."""
    arr = np.asarray(value)
    return None if arr.dtype == dtype else np.array(arr, dtype=dtype, order="C")


def _names_a_dtype(value: Any) -> bool:
    try:
        np.dtype(value)
    except TypeError:
        return False
    return isinstance(value, str)


def _to_arguments(where: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> np.dtype[Any] | None:
    """The dtype of ``to(*args, **kwargs)`` (None: no conversion), after PyTorch's forms
    ``to(device=None, dtype=None, non_blocking=False)``, ``to(dtype, non_blocking=False)``
    and ``to(array, non_blocking=False)`` (the array's dtype; PyTorch's takes a tensor)."""
    for key in kwargs:
        if key not in ("device", "dtype", "non_blocking"):
            raise TypeError(f"{where}() got an unexpected keyword argument {key!r}")
    first = args[0] if args else None
    names = (
        ("device", "dtype", "non_blocking")
        if first is None or isinstance(first, str)
        else ("dtype", "non_blocking")
    )
    if len(args) > len(names):
        raise TypeError(f"{where}() takes at most {len(names)} positional arguments here, got {len(args)}")
    given = dict(kwargs)
    for key, value in zip(names, args):
        if key in given:
            raise TypeError(f"{where}() got multiple values for argument {key!r}")
        given[key] = value
    device = given.get("device")
    if device is not None and device != "cpu":
        hint = f" (a dtype is given as dtype={device!r})" if _names_a_dtype(device) else ""
        raise ValueError(
            f"{where}: the only device is 'cpu' (NumPy arrays are in host memory), got {device!r}{hint}"
        )
    V.boolean(given.get("non_blocking", False), "non_blocking", where)  # nothing to wait for here
    dtype = given.get("dtype")
    if dtype is None:
        return None
    return V.float_dtype(dtype.dtype if isinstance(dtype, np.ndarray) else dtype, where)


class ModuleExtras:
    """PyTorch's ``nn.Module`` methods on members by name, and the dtype conversions (see
    the module's docstring); :class:`~normreg.nn.Module` is the class to subclass."""

    #: the class of the parameters (normreg.nn.Parameter; set by Module)
    _parameter_class: ClassVar[type]

    if TYPE_CHECKING:  # Module's, which this class cannot import
        _buffer_names: list[str]

        def _child_items(self) -> Iterator[tuple[str, Any]]: ...
        def named_modules(
            self, prefix: str = "", remove_duplicate: bool = True
        ) -> Iterator[tuple[str, Any]]: ...
        def modules(self) -> Iterator[Any]: ...
        def parameters(self, recurse: bool = True) -> list[Any]: ...
        def clear_pending(self) -> None: ...

    # -- registration --------------------------------------------------------------------

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """Keep ``value`` (an ndarray or None) as state that is saved but not trained.

        Assigning to a registered buffer later (``bn.running_mean = arr``) checks the new
        value against the current one: a different shape is a ValueError and a different
        dtype a TypeError, naming the buffer; the module keeps (and updates in place) the
        array given, copied only if it is not C-contiguous and writeable. As PyTorch's: the name
        a str without "." (TypeError, KeyError), not an attribute that is not a buffer
        (KeyError), the value an ndarray or None (TypeError)."""
        where = f"{type(self).__name__}.register_buffer"
        _check_name(self, name, "buffer", where)
        if value is not None and not isinstance(value, np.ndarray):
            raise TypeError(
                f"{where}: buffer {name!r} must be an ndarray or None, got {type(value).__name__}"
            )
        object.__setattr__(self, name, value)
        if name not in self._buffer_names:
            self._buffer_names.append(name)

    def register_parameter(self, name: str, param: Any) -> None:
        """Set ``param`` (a Parameter, or None for no parameter: left out of
        ``parameters()`` and ``state_dict()``) as the parameter ``name``, as PyTorch's:
        the name a str (TypeError), non-empty and without "." (KeyError), not an attribute
        that is not a parameter (KeyError: a child, a buffer, a setting such as
        ``training``); ``param`` a Parameter or None (TypeError)."""
        where = f"{type(self).__name__}.register_parameter"
        _check_name(self, name, "parameter", where)
        if param is not None and not isinstance(param, self._parameter_class):
            raise TypeError(
                f"{where}: cannot assign {type(param).__name__!r} object to parameter {name!r} "
                "(normreg.nn.Parameter or None required)"
            )
        setattr(self, name, param)

    def add_module(self, name: str, module: Any) -> None:
        """Set ``module`` (a Module, or None) as the child ``name``, as PyTorch's: TypeError
        for what is not a Module or None, or a name that is not a str; KeyError for an empty
        name, one with ".", or an attribute that is not a child. A child of that name is
        replaced. A ``Sequential`` appends it as its last layer (replaces the layer of that
        name), a ``ModuleDict`` sets its entry; see theirs."""
        where = f"{type(self).__name__}.add_module"
        if module is not None and not isinstance(module, ModuleExtras):
            raise TypeError(f"{where}: {type(module).__name__} is not a Module subclass")
        _check_name(self, name, "module", where)
        self._put_module(name, module, where)

    def register_module(self, name: str, module: Any) -> None:
        """Another name of :meth:`add_module`, as PyTorch's."""
        self.add_module(name, module)

    def _put_module(self, name: str, module: Any, where: str) -> None:
        """Set a checked child: an attribute here; the containers keep it their way."""
        setattr(self, name, module)

    # -- lookup by dotted name -------------------------------------------------------------

    def get_submodule(self, target: str) -> Any:
        """The sub-module of the dotted name ``target`` (a name of ``named_modules()``:
        ``"block.norm"``, ``"0"`` in a Sequential or a ModuleList, ``"heads.cls"`` in a
        ModuleDict); ``""`` is this module. AttributeError as PyTorch's, naming the first
        name that is missing (``"Linear has no attribute `x`"``) or not a module
        (``"`weight` is not an nn.Module"``)."""
        if not isinstance(target, str):
            raise TypeError(
                f"{type(self).__name__}.get_submodule: target must be a str, got {type(target).__name__}"
            )
        if target == "":
            return self
        atoms = target.split(".")
        mod: ModuleExtras = self
        i = 0
        while i < len(atoms):
            # a child's name may hold dots: "blocks.0" for a module in a list attribute
            for name, child in mod._child_items():
                parts = name.split(".")
                if atoms[i : i + len(parts)] == parts:
                    mod, i = child, i + len(parts)
                    break
            else:
                raise _not_a(atoms[i], "module") if _has(mod, atoms[i]) else _missing(mod, atoms[i])
        return mod

    def _member(self, target: str, kind: str) -> tuple[Any, str]:
        """(the module holding the member ``target`` names, its name), checked as PyTorch's."""
        if not isinstance(target, str):
            raise TypeError(
                f"{type(self).__name__}.get_{kind}: target must be a str, got {type(target).__name__}"
            )
        path, _, name = target.rpartition(".")
        mod = self.get_submodule(path)
        if not _has(mod, name):
            raise _missing(mod, name)
        return mod, name

    def get_parameter(self, target: str) -> Any:
        """The Parameter of the dotted name ``target`` (``"0.weight"``; a name of
        ``named_parameters()``). AttributeError as PyTorch's when a name on the way is
        missing or not a module, or the last one is not a Parameter (a buffer, a setting,
        a parameter set to None)."""
        mod, name = self._member(target, "parameter")
        value = getattr(mod, name, None)
        if not isinstance(value, self._parameter_class):
            raise _not_a(name, "parameter")
        return value

    def get_buffer(self, target: str) -> np.ndarray | None:
        """The buffer of the dotted name ``target`` (``"block.norm.running_mean"``; None
        for a buffer registered as None). AttributeError as PyTorch's when a name on the
        way is missing or not a module, or the last one is not a buffer."""
        mod, name = self._member(target, "buffer")
        if name not in getattr(mod, "_buffer_names", ()):
            raise _not_a(name, "buffer")
        return getattr(mod, name)

    # -- members -------------------------------------------------------------------------

    def _named_members(
        self,
        own: Callable[[Any], Iterable[tuple[str, Any]]],
        prefix: str,
        recurse: bool,
        remove_duplicate: bool,
        method: str,
    ) -> Iterator[tuple[str, Any]]:
        """(dotted name, member) for the members ``own(module)`` gives of this module, then
        (``recurse``) of each sub-module; None left out, each member once (its first name)
        unless ``remove_duplicate=False``: PyTorch's ``_named_members``."""
        where = f"{type(self).__name__}.{method}"
        recurse = V.boolean(recurse, "recurse", where)
        remove_duplicate = V.boolean(remove_duplicate, "remove_duplicate", where)
        modules = self.named_modules(prefix, remove_duplicate) if recurse else iter([(prefix, self)])
        seen: set[int] = set()
        for mod_name, mod in modules:
            for name, value in own(mod):
                if value is None or id(value) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield (f"{mod_name}.{name}" if mod_name else name), value

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, np.ndarray]]:
        """(name, buffer) pairs: this module's own, in the order they were registered, then
        (``recurse``) each sub-module's, dotted names; a buffer set to None left out; each
        array once (its first name) unless ``remove_duplicate=False``, as PyTorch's."""
        return self._named_members(_own_buffers, prefix, recurse, remove_duplicate, "named_buffers")

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        """An iterator over the buffers of ``named_buffers(recurse=recurse)``, each array
        once, as PyTorch's."""
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    # -- dtype ---------------------------------------------------------------------------

    def to(self: _M, *args: Any, **kwargs: Any) -> _M:
        """Convert the parameters and floating buffers to a dtype, in place; returns this
        module, as PyTorch's ``module.to(torch.float64)``.

        The forms of PyTorch's: ``to(dtype)``, ``to(device, dtype)``, ``to(array)`` (the
        array's dtype), keywords ``device``, ``dtype``, ``non_blocking`` (a bool,
        ignored). The dtype is float32 or float64 (TypeError otherwise); the device
        ``"cpu"`` or None, which changes nothing (ValueError for any other).

        Every Parameter of this module and its sub-modules keeps its identity and gets a
        new ``.data`` of the dtype (its ``.grad`` too, when there is one); every float
        buffer (``running_mean``, ``running_var``) is replaced by a converted copy, an
        array shared by two modules by one copy; integer buffers (``num_batches_tracked``)
        and complex ones are left as they are. The layers' ``dtype`` (the dtype they take
        their input in) follows. Arrays that already have the dtype are kept as they are.

        When anything changed, the pending forwards of this module and its sub-modules are
        dropped (as ``clear_pending()``): their saved values have the old dtype, so a
        backward of a forward run before the conversion raises RuntimeError. An optimizer
        made before the conversion holds the same Parameters and updates their new arrays;
        the state it made in earlier steps (momentum buffers, Adam's moments) keeps the
        old dtype, which its next step refuses (TypeError, nothing changed): make the
        optimizer after the conversion, as PyTorch's documentation asks of a move to the GPU."""
        dtype = _to_arguments(f"{type(self).__name__}.to", args, kwargs)
        if dtype is not None and self._convert_all(dtype):
            self.clear_pending()
        return self

    def float(self: _M) -> _M:
        """``self.to(np.float32)``: float parameters and buffers to float32, as PyTorch's."""
        return self.to(np.float32)

    def double(self: _M) -> _M:
        """``self.to(np.float64)``: float parameters and buffers to float64, as PyTorch's."""
        return self.to(np.float64)

    def _convert_all(self, dtype: np.dtype[Any]) -> bool:
        """The conversion of :meth:`to`; whether anything changed."""
        changed = False
        for p in self.parameters():
            data = _cast(p.data, dtype)
            if data is not None:
                p.data, changed = data, True
            grad = None if p.grad is None else _cast(p.grad, dtype)
            if grad is not None:
                p.grad, changed = grad, True
        copies: dict[int, np.ndarray] = {}  # id(buffer) -> its copy: shared buffers stay shared
        modules = list(self.modules())
        for m in modules:
            for name in getattr(m, "_buffer_names", ()):
                buf = vars(m).get(name)
                if isinstance(buf, np.ndarray) and buf.dtype.kind == "f" and buf.dtype != dtype:
                    if id(buf) not in copies:
                        copies[id(buf)] = np.array(buf, dtype=dtype, order="C")
                    # past the checks of an assignment, which refuse another dtype
                    object.__setattr__(m, name, copies[id(buf)])
                    changed = True
        for m in modules:  # each after every parameter and buffer is converted
            changed = m._convert_own(dtype) or changed
        return changed

    def _convert_own(self, dtype: np.dtype[Any]) -> bool:
        """What this module keeps of its parameters' dtype besides its parameters and
        buffers, converted by :meth:`to` (after every parameter and buffer of the module it
        was called on); whether anything changed. Here the ``dtype`` attribute of the
        layers that keep one; a layer with more (scratch arrays) extends this."""
        own = vars(self).get("dtype")
        if isinstance(own, np.dtype) and own != dtype:
            object.__setattr__(self, "dtype", dtype)
            return True
        return False
