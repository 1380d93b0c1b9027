"""``Parameter`` and ``Module``: the base of every layer.

A :class:`Module` keeps in ``forward`` what its ``backward`` needs. ``backward(dy)``
returns the gradient with respect to the input and **adds** the parameter gradients
into each :class:`Parameter`'s ``.grad`` (they accumulate until ``zero_grad()``, as in
PyTorch). ``parameters()`` finds the parameters by walking the module's attributes.
"""

from __future__ import annotations

import collections
import collections.abc
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import _validation as V


class Parameter:
    """A trainable array: ``.data`` (the values) and ``.grad`` (same shape, accumulated by
    ``backward``; zeros at creation and after ``zero_grad()``)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: Any) -> None:
        data = np.array(data, copy=True, order="C")
        if data.dtype not in V.FLOAT_DTYPES:
            raise TypeError(f"Parameter: data must be float32 or float64, got {data.dtype}")
        self.data: np.ndarray = data
        self.grad: np.ndarray = np.zeros_like(data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def data_of(param: Parameter | None) -> np.ndarray | None:
    """``param.data``, or None for an absent parameter."""
    return None if param is None else param.data


def grad_of(param: Parameter | None) -> np.ndarray | None:
    """``param.grad``, or None for an absent parameter."""
    return None if param is None else param.grad


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(..., strict=False)`` did not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class: subclasses set their parameters, buffers and sub-modules as attributes
    and implement ``forward`` and ``backward``."""

    training: bool
    _ctx: Any  # what forward keeps for backward (None: no forward yet)

    def __init__(self) -> None:
        self.training = True
        self._buffer_names: list[str] = []

    # -- calls ---------------------------------------------------------------------------

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, dy: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def _cached(self, *names: str) -> list[Any]:
        """The values ``forward`` stored for ``backward``; ValueError if there was none."""
        values = [getattr(self, n, None) for n in names]
        if getattr(self, "_ctx", None) is None:
            raise ValueError(f"{type(self).__name__}.backward called before forward")
        return values

    def _input(self, a: Any, name: str) -> np.ndarray:
        """``a`` as a float array of the dtype of this module's parameters (``self.dtype``);
        TypeError naming ``name`` otherwise."""
        where = type(self).__name__
        dtype = self.dtype  # type: ignore[attr-defined]  # the layers that call this have one
        return V.float_array(a, name, where, dtype, f"the dtype of {where}'s parameters")

    # -- structure -----------------------------------------------------------------------

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """Keep ``value`` (an ndarray or None) as state that is saved but not trained."""
        setattr(self, name, value)
        if name not in self._buffer_names:
            self._buffer_names.append(name)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) pairs: this module's own, then each child's, dotted names."""
        seen = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, value in vars(mod).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mod_name, mod in self.named_modules(prefix):
            for name in getattr(mod, "_buffer_names", ()):
                value = getattr(mod, name)
                if value is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    # -- modes and gradients -------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``True``) or evaluation mode here and in every sub-module."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        """Reset every parameter's ``.grad`` to zeros (in place)."""
        for p in self.parameters():
            p.zero_grad()

    # -- state ---------------------------------------------------------------------------

    def _state_targets(self) -> collections.OrderedDict[str, np.ndarray]:
        """name -> the live array, in PyTorch's order: each module's parameters, then its
        buffers, then its children's."""
        targets: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        seen = set()
        for mod_name, mod in self.named_modules():
            prefix = f"{mod_name}." if mod_name else ""
            for name, value in vars(mod).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    targets[prefix + name] = value.data
            for name in getattr(mod, "_buffer_names", ()):
                value = getattr(mod, name)
                if value is not None:
                    targets[prefix + name] = value
        return targets

    def state_dict(self) -> collections.OrderedDict[str, np.ndarray]:
        """An ordered dict of copies of the parameters' data and the buffers."""
        return collections.OrderedDict((k, np.array(v, copy=True)) for k, v in self._state_targets().items())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict``'s arrays into the parameters and buffers, in place.

        Every key is checked (shape, dtype) before anything is written, so a failed load
        changes nothing. With ``strict=True`` missing or unexpected keys raise KeyError;
        with ``strict=False`` they are returned as ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        targets = self._state_targets()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        updates = []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key])
            if value.shape != target.shape:
                raise ValueError(f"load_state_dict: '{key}' has shape {value.shape}, expected {target.shape}")
            if value.dtype != target.dtype:
                raise TypeError(f"load_state_dict: '{key}' has dtype {value.dtype}, expected {target.dtype}")
            updates.append((target, value))
        for target, value in updates:
            np.copyto(target, value)
        return IncompatibleKeys(missing, unexpected)

    # -- display -------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"
