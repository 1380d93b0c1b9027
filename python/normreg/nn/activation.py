"""Layers without parameters that change values or shapes: ReLU, Flatten, Unflatten, Identity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _validation as V
from .. import functional as F
from .parameter import Module


class ReLU(Module):
    """``y = max(x, 0)``. ``inplace=True`` (as PyTorch's) writes the output into the input
    array and returns it: at once when x is a C-contiguous float array, else computed apart
    and copied in (ValueError for a read-only x)."""

    inplace: bool = False  # also for modules pickled before the setting existed

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = V.boolean(inplace, "inplace", type(self).__name__)

    def forward(self, x: Any) -> np.ndarray:
        if not self.inplace:
            y = F.relu(x)
        else:
            V.inplace_input(x, type(self).__name__)
            if type(x) is np.ndarray and _writes_in_place(x):
                y = F.relu(x, out=x)
            else:
                y = F.relu(x)
                if isinstance(x, np.ndarray):
                    np.copyto(x, y)
                    y = x
        self.save_for_backward(y)
        return y

    __call__ = forward  # a leaf: saves last, calls no module (see Module.__call__)

    def backward(self, dy: Any) -> np.ndarray:
        (y,) = self.saved()
        return F.relu_backward(dy, y)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


def _writes_in_place(x: np.ndarray) -> bool:
    """Whether a kernel can write its output into x itself (out=x)."""
    return (
        x.dtype in (np.float32, np.float64) and x.flags.c_contiguous and x.flags.writeable and x.flags.aligned
    )


class _Reshape(Module):
    """A layer that only reshapes: the backward takes dy of the forward output's shape and
    gives it the input's shape back."""

    def _reshape(self, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        y = x.reshape(shape)
        self.save_for_backward(x.shape, output_like(y))
        return y

    def backward(self, dy: Any) -> np.ndarray:
        in_shape, like = self.saved()
        return check_dy(dy, like, type(self).__name__).reshape(in_shape)


class Flatten(_Reshape):
    """Flatten dimensions ``start_dim`` to ``end_dim`` (both included; negative ones count
    from the end) into one (PyTorch's ``nn.Flatten``): by default (N, *rest) -> (N, prod(rest))."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        where = type(self).__name__
        self.start_dim = V.integer(start_dim, "start_dim", where)
        self.end_dim = V.integer(end_dim, "end_dim", where)

    def forward(self, x: Any) -> np.ndarray:
        x = V.array(x, "x", type(self).__name__)
        shape = x.shape or (1,)  # a 0-d input counts as one dimension, as in PyTorch
        n = len(shape)
        start = self.start_dim + n if self.start_dim < 0 else self.start_dim
        end = self.end_dim + n if self.end_dim < 0 else self.end_dim
        if not (0 <= start < n and 0 <= end < n) or start > end:
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) does not fit input of shape "
                f"{x.shape}: both must be dimensions of it, start_dim not after end_dim"
            )
        # the flattened size spelled out: -1 is ambiguous for an input with a zero-size dimension
        return self._reshape(x, shape[:start] + (math.prod(shape[start : end + 1]),) + shape[end + 1 :])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(_Reshape):
    """Expand dimension ``dim`` into ``unflattened_size`` (PyTorch's ``nn.Unflatten``), e.g.
    ``Unflatten(1, (1, 28, 28))``: (N, 784) -> (N, 1, 28, 28). As in PyTorch, one entry of
    ``unflattened_size`` may be -1, inferred from the size of dimension ``dim`` (which the
    other entries' product must divide): ``Unflatten(1, (2, -1))``: (N, 8) -> (N, 2, 4)."""

    def __init__(self, dim: int, unflattened_size: Any) -> None:
        super().__init__()
        where = type(self).__name__
        self.dim = V.integer(dim, "dim", where)
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(
                f"{where}: unflattened_size must be a tuple of ints, got {type(unflattened_size).__name__}"
            )
        sizes = tuple(V.integer(d, "unflattened_size", where) for d in unflattened_size)
        if any(d < 1 and d != -1 for d in sizes) or sizes.count(-1) > 1:
            raise ValueError(
                f"{where}: unflattened_size must hold positive sizes and at most one -1 (inferred), "
                f"got {sizes}"
            )
        self.unflattened_size = sizes

    def forward(self, x: Any) -> np.ndarray:
        x = V.array(x, "x", type(self).__name__)
        d = self.dim if self.dim >= 0 else self.dim + x.ndim
        sizes = self.unflattened_size
        known = math.prod(s for s in sizes if s != -1)
        fits = 0 <= d < x.ndim and (x.shape[d] % known == 0 if -1 in sizes else x.shape[d] == known)
        if not fits:
            raise ValueError(
                f"Unflatten({self.dim}, {sizes}) does not fit input of shape {x.shape}: dim must be a "
                f"dimension of it whose size the sizes multiply to (or, with a -1, divide)"
            )
        sizes = tuple(x.shape[d] // known if s == -1 else s for s in sizes)
        return self._reshape(x, x.shape[:d] + sizes + x.shape[d + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Identity(Module):
    """``y = x``. Takes and ignores any arguments, as PyTorch's (so that it can stand in for
    a layer built with them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        self.save_for_backward(output_like(x))
        return x

    def backward(self, dy: Any) -> Any:
        (like,) = self.saved()
        return check_dy(dy, like, "Identity")


def output_like(y: Any) -> tuple[tuple[int, ...], np.dtype[Any]] | None:
    """What :func:`check_dy` checks a backward's dy against: the forward output's shape and
    dtype, or None for an output that is not an array (nothing is checked)."""
    return (y.shape, y.dtype) if isinstance(y, np.ndarray) else None


def check_dy(dy: Any, like: tuple[tuple[int, ...], np.dtype[Any]] | None, where: str) -> Any:
    """dy for the backward of a layer whose output was ``like`` (:func:`output_like`): an
    array of the output's shape (ValueError) and dtype (TypeError), as the layers with
    parameters ask (autograd hands each layer a gradient of its output's dtype); anything
    when the output was not an array."""
    if like is None:
        return dy
    shape, dtype = like
    dy = V.array(dy, "dy", where)
    V.check_shape(dy, "dy", f"{where}.backward", shape, "the shape of the forward's output")
    if dy.dtype != dtype:
        raise TypeError(f"{where}.backward: dy has dtype {dy.dtype}, expected {dtype} (the output's)")
    return dy
