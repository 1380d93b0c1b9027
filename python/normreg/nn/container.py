"""Modules made of modules: Sequential, Residual."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, overload

import numpy as np

from .parameter import Module


class Sequential(Module):
    """Modules applied in order; ``backward`` runs their backwards in reverse."""

    #: backward takes ``input_grad=False`` (see :meth:`backward`)
    input_grad_optional = True

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} is not a Module: {type(m).__name__}")
        self._layers = list(modules)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for i, m in enumerate(self._layers):
            yield str(i), m

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: can only append a Module, not {type(module).__name__}")
        self._layers.append(module)
        return self

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> Sequential: ...
    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
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
            first.backward(dy, input_grad=False)
        else:
            first.backward(dy)
        return None


class Residual(Module):
    """``y = fn(x) + x``."""

    def __init__(self, fn: Module) -> None:
        super().__init__()
        if not isinstance(fn, Module):
            raise TypeError(f"Residual: fn must be a Module, got {type(fn).__name__}")
        self.fn = fn

    def forward(self, x: Any) -> Any:
        y = self.fn(x)
        if np.shape(y) != np.shape(x):
            raise ValueError(f"Residual: fn changed the shape from {np.shape(x)} to {np.shape(y)}")
        self.save_for_backward()
        return y + x

    def backward(self, dy: Any) -> Any:
        self.saved()
        return self.fn.backward(dy) + dy
