"""Modules made of modules: Sequential, Residual; ModuleList and ModuleDict (defined in
``_holders``, importable from here as from PyTorch's ``container``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, overload

import numpy as np

from .. import _validation as V
from ._holders import ModuleDict as ModuleDict
from ._holders import ModuleList as ModuleList
from .activation import _check_dy_shape
from .parameter import Module


class Sequential(Module):
    """Modules applied in order; ``backward`` runs their backwards in reverse.

    ``Sequential(m0, m1, ...)`` names its layers "0", "1", ...; ``Sequential(OrderedDict(
    [("fc", m0), ("act", m1)]))`` (or a dict) by the keys, as PyTorch's: the names are those
    of ``named_children()`` and of the state_dict's keys ("fc.weight"), and ``seq.fc`` is
    the layer. Indexing takes the position either way."""

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
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} is not a Module: {type(m).__name__}")
            _check_name(name, "Sequential")
            if name.startswith("_") or hasattr(self, name):  # the module's own attributes
                raise KeyError(
                    f"Sequential: a layer cannot be named {name!r}: attribute {name!r} already exists"
                )
        self._names = [name for name, _ in items]
        self._layers = [m for _, m in items]

    def _layer_names(self) -> list[str]:
        """The layers' names ("0", "1", ... for a Sequential pickled before it had names)."""
        return self.__dict__.setdefault("_names", [str(i) for i in range(len(self._layers))])

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
            if not isinstance(value, Module):
                raise TypeError(f"Sequential: layer {name!r} must be a Module, got {type(value).__name__}")
            self._layers[names.index(name)] = value
            return
        super().__setattr__(name, value)

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: can only append a Module, not {type(module).__name__}")
        names = self._layer_names()
        k = len(self._layers)
        while str(k) in names:  # a slice keeps its names: seq[1:] holds "1" and "2"
            k += 1
        names.append(str(k))
        self._layers.append(module)
        return self

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> Sequential: ...
    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(dict(list(self._child_items())[index]))
        return self._layers[index]

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


def _check_name(name: Any, where: str) -> None:
    """A layer's name: a non-empty str without '.' (it joins the state_dict's keys)."""
    if not isinstance(name, str):
        raise TypeError(f"{where}: a layer's name must be a str, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{where}: a layer's name must be non-empty and hold no '.', got {name!r}")


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
        self.save_for_backward(np.shape(x) if isinstance(x, np.ndarray) else None)
        return y + x

    def backward(self, dy: Any) -> Any:
        (shape,) = self.saved()
        _check_dy_shape(dy, shape, "Residual")
        return self.fn.backward(dy) + dy
