"""Modules made of modules: Sequential, Residual; ModuleList and ModuleDict (defined in
``_holders``, importable from here as from PyTorch's ``container``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, overload

import numpy as np

from .. import _validation as V
from ._holders import ModuleDict as ModuleDict
from ._holders import ModuleList as ModuleList
from ._holders import check_name, entries, entry, position
from .activation import check_dy, output_like
from .parameter import Module


def _is_index(name: str) -> bool:
    return name.isascii() and name.isdigit()


class Sequential(Module):
    """Modules applied in order; ``backward`` runs their backwards in reverse.

    ``Sequential(m0, m1, ...)`` names its layers "0", "1", ...; ``Sequential(OrderedDict(
    [("fc", m0), ("act", m1)]))`` (or a dict) by the keys, as PyTorch's: the names are those
    of ``named_children()`` and of the state_dict's keys ("fc.weight"), and ``seq.fc`` is
    the layer. Indexing takes the position either way (negative from the end; a slice is a
    Sequential keeping the names).

    As a list, as PyTorch's: ``append``, ``extend``, ``insert``, ``pop``, ``seq[i] = m``
    (the name at i kept), ``del seq[i]``, ``del seq[a:b]``, ``seq + other`` (a new
    Sequential, named "0", "1", ...) and ``seq += other``. After an insert or a ``del
    seq[...]`` the layers named by numbers are renamed by their positions (PyTorch
    renumbers all of its names there; names given by a dict are kept here). ``del seq.fc``
    removes a layer by name and renames nothing, as PyTorch's."""

    #: backward takes ``input_grad=False`` (see :meth:`backward`)
    input_grad_optional = True

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        items: list[tuple[Any, Any]]
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for i, (name, m) in enumerate(items):
            entry(m, "Sequential", f"argument {i}")
            check_name(name, "Sequential")
            if name.startswith("_") or hasattr(self, name):  # the module's own attributes
                raise KeyError(
                    f"Sequential: a layer cannot be named {name!r}: attribute {name!r} already exists"
                )
        self._names = [name for name, _ in items]
        self._layers = [m for _, m in items]

    def _layer_names(self) -> list[str]:
        """The layers' names ("0", "1", ... for a Sequential pickled before it had names)."""
        return self.__dict__.setdefault("_names", [str(i) for i in range(len(self._layers))])

    def _renumber(self) -> None:
        """Name each layer named by a number by its position (after an insert or a deletion)."""
        names = self._layer_names()
        for i, name in enumerate(names):
            if _is_index(name):
                names[i] = str(i)

    def _child_items(self) -> Iterator[tuple[str, Module]]:
        yield from zip(self._layer_names(), self._layers)
        for name, child in super()._child_items():  # modules set as attributes (seq.extra = m)
            if not name.startswith("_layers."):
                yield name, child

    def __getattr__(self, name: str) -> Module:
        # only for names that are not attributes: a layer named by an OrderedDict key
        names = self.__dict__.get("_names")
        if names and name in names:
            return self.__dict__["_layers"][names.index(name)]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        # seq.fc = module replaces the layer named fc (as PyTorch's), rather than hiding it
        names = self.__dict__.get("_names")
        if names and name in names:
            self._layers[names.index(name)] = entry(value, "Sequential", f"layer {name!r}")
            return
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        names = self.__dict__.get("_names")
        if names and name in names:  # del seq.fc: that layer goes, the others keep their names
            i = names.index(name)
            del names[i], self._layers[i]
            return
        super().__delattr__(name)

    def _put_module(self, name: str, module: Any, where: str) -> None:
        """``add_module``: as PyTorch's, whose layers are its children, a new name appends
        a layer and a layer's name replaces it (a module set as an attribute, ``seq.extra =
        m``, is replaced as one). The layers are Modules: None is a TypeError (PyTorch's
        takes it and fails in the forward); a layer's name cannot start with "_"."""
        names = self._layer_names()
        if name in names:
            self._layers[names.index(name)] = entry(module, where, f"layer {name!r}")
        elif name in vars(self):
            super()._put_module(name, module, where)
        else:
            entry(module, where, f"layer {name!r}")
            if name.startswith("_"):
                raise KeyError(f"{where}: a layer's name cannot start with '_', got {name!r}")
            names.append(name)
            self._layers.append(module)

    def append(self, module: Module) -> Sequential:
        entry(module, "Sequential.append")
        names = self._layer_names()
        k = len(self._layers)
        while str(k) in names:  # a slice keeps its names: seq[1:] holds "1" and "2"
            k += 1
        names.append(str(k))
        self._layers.append(module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        """Append the modules of an iterable (all checked first: a bad entry adds none)."""
        for m in entries(modules, "Sequential.extend"):
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        """Put ``module`` before position ``index`` (``-len <= index <= len``, IndexError
        otherwise, as PyTorch's)."""
        entry(module, "Sequential.insert")
        i = position(index, len(self._layers), "Sequential.insert", insert=True)
        self._layer_names().insert(i, str(i))
        self._layers.insert(i, module)
        self._renumber()
        return self

    def pop(self, index: int | slice) -> Any:
        """Remove the layer at ``index`` and return it (a Sequential for a slice)."""
        m = self[index]
        del self[index]
        return m

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> Sequential: ...
    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(dict(list(zip(self._layer_names(), self._layers))[index]))
        return self._layers[position(index, len(self._layers), "Sequential", slices=True)]

    def __setitem__(self, index: int, module: Module) -> None:
        i = position(index, len(self._layers), "Sequential")
        self._layers[i] = entry(module, "Sequential", f"layer {self._layer_names()[i]!r}")

    def __delitem__(self, index: int | slice) -> None:
        names = self._layer_names()
        if not isinstance(index, slice):
            index = position(index, len(self._layers), "Sequential", slices=True)
        del names[index], self._layers[index]
        self._renumber()

    def __add__(self, other: Sequential) -> Sequential:
        if not isinstance(other, Sequential):  # ValueError, as PyTorch's
            raise ValueError(f"Sequential: + takes a Sequential, got {type(other).__name__}")
        return Sequential(*self._layers, *other._layers)

    def __iadd__(self, other: Sequential) -> Sequential:
        if not isinstance(other, Sequential):
            raise ValueError(f"Sequential: += takes a Sequential, got {type(other).__name__}")
        return self.extend(other)

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers)

    def forward(self, x: Any) -> Any:
        for m in self._layers:
            x = m(x)
        self.save_for_backward()
        return x

    def backward(self, dy: Any, *, input_grad: bool = True) -> Any:
        """The layers' backwards in reverse; returns the gradient with respect to the input.

        ``input_grad=False``: that gradient is not wanted (the input is data, as a tensor
        that does not require grad in PyTorch, whose autograd then skips it): the first
        layer does not compute it when it can (``Linear``, ``Conv2d``, a ``Sequential``
        starting with one: in the benchmark MLP, the first layer's ``dy w^T`` is a fifth of
        the step's matrix products), and None is returned."""
        if type(input_grad) is not bool:
            input_grad = V.boolean(input_grad, "input_grad", f"{type(self).__name__}.backward")
        self.saved()
        layers = self._layers
        for m in reversed(layers[1:]):
            dy = m.backward(dy)
        if not layers:
            return dy if input_grad else None
        first = layers[0]
        if input_grad:
            return first.backward(dy)
        if getattr(first, "input_grad_optional", False):
            backward: Any = first.backward  # a layer whose backward takes input_grad
            backward(dy, input_grad=False)
        else:
            first.backward(dy)
        return None


class Residual(Module):
    """``y = fn(x) + x``.

    When fn holds a module with ``inplace=True`` (ReLU, Dropout), fn runs on a copy of x, so
    the skip adds the x given and the backward's ``dy`` on the skip matches it (in PyTorch,
    an in-place first op of fn would change the skip's x too)."""

    def __init__(self, fn: Module) -> None:
        super().__init__()
        if not isinstance(fn, Module):
            raise TypeError(f"Residual: fn must be a Module, got {type(fn).__name__}")
        self.fn = fn

    def forward(self, x: Any) -> Any:
        inplace = isinstance(x, np.ndarray) and any(getattr(m, "inplace", False) for m in self.fn.modules())
        y = self.fn(x.copy() if inplace else x)
        if np.shape(y) != np.shape(x):
            raise ValueError(f"Residual: fn changed the shape from {np.shape(x)} to {np.shape(y)}")
        out = y + x
        self.save_for_backward(output_like(out))
        return out

    def backward(self, dy: Any) -> Any:
        (like,) = self.saved()
        dy = check_dy(dy, like, "Residual")
        return self.fn.backward(dy) + dy
