"""The outline Linear and Conv2d share: a weight, an optional bias, their construction and
initialization, the input saved by the forward for the backward, and the parameter
gradients accumulated into ``.grad``."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _memory
from .. import _validation as V
from ..random import Generator
from .parameter import Module, Parameter, data_of, grad_of, store_grad

_ndarray = np.ndarray


class WeightedLayer(Module):
    """A layer ``y = op(x, weight, bias)``. Subclasses check their own arguments, make
    ``weight`` and ``bias`` (a Parameter or None) with :meth:`_init_parameters`, and give
    :meth:`reset_parameters` and the op: :meth:`_forward` and :meth:`_backward`, which call
    one function of :mod:`normreg.functional` and its gradient."""

    weight: Parameter
    bias: Parameter | None

    def reset_parameters(self, generator: Generator | None = None) -> None:
        raise NotImplementedError

    def _init_parameters(
        self,
        weight_shape: tuple[int, ...],
        out_size: int,
        bias: bool,
        dtype: npt.DTypeLike,
        generator: Generator | None,
    ) -> None:
        """The constructor's common end: a weight of ``weight_shape`` and (``bias``) a bias
        of ``out_size``, of the float ``dtype``, drawn by :meth:`reset_parameters`."""
        where = type(self).__name__
        dt = V.float_dtype(dtype, where)
        bias = V.boolean(bias, "bias", where)  # checked before anything is allocated
        self.weight = Parameter(_memory.empty(weight_shape, dt, f"{where} weight"))
        self.bias = Parameter(_memory.empty((out_size,), dt, f"{where} bias")) if bias else None
        self.reset_parameters(generator)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the parameters (and of the input and output)."""
        return self.weight.dtype

    def _forward(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def _backward(
        self, dy: np.ndarray, x: np.ndarray, weight: np.ndarray, **grads: Any
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        raise NotImplementedError

    def forward(self, x: Any) -> np.ndarray:
        w = self.weight.data
        if type(x) is not _ndarray or x.dtype is not w.dtype:  # else the functional op checks
            x = self._input(x, "x")
        y = self._forward(x, w, data_of(self.bias))
        self.save_for_backward(x)
        return y

    __call__ = forward  # a leaf: saves last, calls no module (see Module.__call__)

    #: backward takes ``input_grad=False`` (see :meth:`backward`)
    input_grad_optional = True

    def backward(self, dy: Any, *, input_grad: bool = True) -> np.ndarray | None:
        """Adds the parameter gradients into ``.grad`` and returns dx, or, with
        ``input_grad=False`` (the input is data: no gradient wanted), skips the product
        that computes dx and returns None (``Sequential.backward`` passes it on)."""
        if type(input_grad) is not bool:
            input_grad = V.boolean(input_grad, "input_grad", f"{type(self).__name__}.backward")
        (x,) = self.saved()
        if type(dy) is not _ndarray or dy.dtype is not x.dtype:  # else the functional op checks
            dy = self._input(dy, "dy")
        dx, dweight, dbias = self._backward(
            dy,
            x,
            self.weight.data,
            has_bias=self.bias is not None,
            dweight=self.weight.grad,
            dbias=grad_of(self.bias),
            need_dx=bool(input_grad),
        )
        store_grad(self.weight, dweight)
        store_grad(self.bias, dbias)
        return dx
