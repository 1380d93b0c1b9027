"""Normalizations over the features of each sample: LayerNorm, RMSNorm, GroupNorm,
InstanceNorm1d/2d. (Batch norm, over the batch, is in :mod:`normreg.nn.batchnorm`.)"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from .. import _memory
from .. import _validation as V
from .. import functional as F
from ..functional import normalization as _FN
from .batchnorm import BatchNormBase
from .parameter import Module, Parameter, data_of, grad_of, store_grad

ShapeLike = Union[int, Sequence[int]]

# Bound once for LayerNorm.forward, called per step on small inputs where a module
# attribute lookup is a measurable part of the call (benchmarks/layernorm_module.py).
_ndarray = np.ndarray
_INF = math.inf
_layer_norm_forward = _FN._layer_norm_forward
_layer_norm_rows = F.layer_norm_rows
_rms_norm_as_is = _FN._rms_norm_as_is
_group_norm_as_is = _FN._group_norm_as_is


class _AffineNorm(Module):
    """A normalization with an optional per-feature ``weight`` and ``bias`` whose forward
    keeps ``(x, mean, rstd)`` and whose functional backward is ``_backward``."""

    _backward: Callable[..., tuple[np.ndarray, Any, Any]]
    dtype: np.dtype[Any]
    weight: Parameter | None
    bias: Parameter | None

    def _affine_grads(self) -> dict[str, Any]:
        """The keywords by which the functional backward adds into ``.grad``."""
        return dict(has_bias=self.bias is not None, dweight=grad_of(self.weight), dbias=grad_of(self.bias))

    def _store_grads(self, dweight: np.ndarray | None, dbias: np.ndarray | None) -> None:
        """Keep the accumulators the functional backward returned as the ``.grad``s."""
        store_grad(self.weight, dweight)
        store_grad(self.bias, dbias)

    def backward(self, dy: Any) -> np.ndarray:
        x, mean, rstd = self.saved()
        dy = self._input(dy, "dy")
        backward = type(self)._backward
        dx, dweight, dbias = backward(dy, x, mean, rstd, data_of(self.weight), **self._affine_grads())
        self._store_grads(dweight, dbias)
        return dx


class _TrailingNorm(Module):
    """A normalization over the trailing ``normalized_shape`` dimensions of its input
    (LayerNorm, RMSNorm), with a ``weight`` of that shape starting at ones when
    ``elementwise_affine``, else None. Each subclass checks and keeps its own ``eps``."""

    eps: float | None

    def __init__(self, normalized_shape: ShapeLike, elementwise_affine: bool, dtype: npt.DTypeLike) -> None:
        super().__init__()
        where = type(self).__name__
        self.normalized_shape = V.normalized_shape(normalized_shape, where, nonempty=True)
        self.elementwise_affine = V.boolean(elementwise_affine, "elementwise_affine", where)
        self.dtype = V.float_dtype(dtype, where)
        shape, dt = self.normalized_shape, self.dtype
        self.weight = Parameter(_memory.full(shape, 1, dt, where)) if self.elementwise_affine else None

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class LayerNorm(_AffineNorm, _TrailingNorm):
    """Layer normalization over the trailing ``normalized_shape`` dimensions.

    ``y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias``, biased variance; weight
    starts at ones and bias at zeros (``elementwise_affine=True``; ``bias=False`` drops
    the bias).
    """

    _backward = F.layer_norm_backward
    eps: float

    def __init__(
        self,
        normalized_shape: ShapeLike,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        super().__init__(normalized_shape, elementwise_affine, dtype)
        where = type(self).__name__
        self.eps = V.eps(eps, where)
        # the row size D of the (M, D) input that F.layer_norm_rows takes (-1: none)
        self._row_size = self.normalized_shape[0] if len(self.normalized_shape) == 1 else -1
        shape, dt = self.normalized_shape, self.dtype
        bias = V.boolean(bias, "bias", where)
        self.bias = Parameter(_memory.full(shape, 0, dt, where)) if self.elementwise_affine and bias else None

    def forward(self, x: Any) -> np.ndarray:
        w, b, eps = self.weight, self.bias, self.eps
        b_data = None if b is None else b.data
        y = None
        if type(x) is _ndarray and x.ndim == 2:
            if w is not None and type(eps) is float and eps < _INF:
                # the common case: functional's _layer_norm_as_is inlined (a call to it made
                # the 32 x 64 Module call 7% slower, paired in one process), less the type
                # checks of weight and bias, which are a Parameter's arrays here; the kernel
                # refuses what it cannot take as it is (x's dtype or row size not weight's, x
                # not C-contiguous, eps < 0 or NaN)
                try:
                    y, mean, rstd = _layer_norm_forward(x, w.data, b_data, eps, None)
                except (TypeError, ValueError):
                    y = None  # the checked path below converts it or explains the error
            elif w is None and x.dtype is self.dtype and x.shape[1] == self._row_size:
                y, mean, rstd = _layer_norm_rows(x, None, b_data, eps)
        if y is None:
            x = self._input(x, "x")
            y, mean, rstd = F.layer_norm(x, self.normalized_shape, data_of(w), b_data, eps)
        self.save_for_backward(x, mean, rstd)
        return y

    def extra_repr(self) -> str:  # PyTorch's: the bias flag after elementwise_affine
        return super().extra_repr() + f", bias={self.bias is not None}"

    __call__ = forward  # a leaf: saves last, calls no module (see Module.__call__)


class RMSNorm(_TrailingNorm):
    """RMS normalization over the trailing ``normalized_shape`` dimensions (PyTorch's
    ``nn.RMSNorm``): ``y = x / sqrt(mean(x**2) + eps) * weight``.

    ``eps=None`` is the machine epsilon of the dtype (``np.finfo(dtype).eps``); weight
    starts at ones (``elementwise_affine=True``); there is no bias.
    """

    def __init__(
        self,
        normalized_shape: ShapeLike,
        eps: float | None = None,
        elementwise_affine: bool = True,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        super().__init__(normalized_shape, elementwise_affine, dtype)
        self.eps = None if eps is None else V.eps(eps, type(self).__name__)
        # the row size D of the (M, D) input the kernel takes as it is (-1: none)
        self._row_size = self.normalized_shape[0] if len(self.normalized_shape) == 1 else -1

    def forward(self, x: Any) -> np.ndarray:
        w = self.weight
        res = None
        if type(x) is _ndarray and x.ndim == 2 and x.dtype is self.dtype and x.shape[1] == self._row_size:
            # (M, D) of the parameters' dtype: the kernel as it is (what it refuses takes
            # the checked path below, which converts it or explains the error)
            res = _rms_norm_as_is(x, None if w is None else w.data, self.eps)
        if res is None:
            x = self._input(x, "x")
            res = F.rms_norm(x, self.normalized_shape, data_of(w), self.eps)
        y, rstd = res
        self.save_for_backward(x, rstd)
        return y

    def backward(self, dy: Any) -> np.ndarray:
        x, rstd = self.saved()
        dy = self._input(dy, "dy")
        dx, dweight = F.rms_norm_backward(dy, x, rstd, data_of(self.weight), dweight=grad_of(self.weight))
        store_grad(self.weight, dweight)
        return dx


class GroupNorm(_AffineNorm):
    """Group normalization of (N, C, *) input (PyTorch's ``nn.GroupNorm``).

    The ``num_channels`` channels form ``num_groups`` groups of consecutive channels; each
    sample's group is normalized by its mean and biased variance over its channels and
    all positions ``*``; then each channel gets ``* weight[c] + bias[c]`` (ones and zeros
    at first, ``affine=True``). ``GroupNorm(1, C)`` is a LayerNorm over (C, *) with
    per-channel affine; ``GroupNorm(C, C)`` is an InstanceNorm with affine.
    """

    _backward = F.group_norm_backward

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.num_channels = V.integer(num_channels, "num_channels", where, low=1)
        self.num_groups = V.num_groups(num_groups, self.num_channels, where)
        self.eps = V.eps(eps, where)
        self.affine = V.boolean(affine, "affine", where)
        self.dtype = V.float_dtype(dtype, where)
        C = self.num_channels
        self.weight = Parameter(_memory.full((C,), 1, self.dtype, where)) if self.affine else None
        self.bias = Parameter(_memory.full((C,), 0, self.dtype, where)) if self.affine else None

    def _check_input(self, x: np.ndarray) -> None:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"{type(self).__name__} expects input (N, {self.num_channels}, *), got shape {x.shape}"
            )

    def forward(self, x: Any) -> np.ndarray:
        w, b = self.weight, self.bias
        res = None
        if type(x) is _ndarray and x.dtype is self.dtype and x.ndim >= 2 and x.shape[1] == self.num_channels:
            # (N, C, *) of the parameters' dtype: the kernel as it is (what it refuses takes
            # the checked path below, which converts it or explains the error)
            res = _group_norm_as_is(
                x, self.num_groups, None if w is None else w.data, None if b is None else b.data, self.eps
            )
        if res is None:
            x = self._input(x, "x")
            self._check_input(x)
            res = F.group_norm(x, self.num_groups, data_of(w), data_of(b), self.eps)
        y, mean, rstd = res
        self.save_for_backward(x, mean, rstd)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _InstanceNorm(GroupNorm):
    """Instance normalization: each (sample, channel) normalized over its positions by its
    own mean and biased variance, i.e. GroupNorm with one group per channel (its kernel
    runs it). PyTorch's defaults: ``affine=False``, ``track_running_stats=False``;
    unbatched input (C, *) is accepted too.

    ``track_running_stats=True`` keeps ``running_mean``/``running_var`` as PyTorch does:
    in training they move (momentum m) towards the batch average of the instance means
    and of the instance unbiased variances, and evaluation normalizes every instance with
    them. A channel whose statistics are not finite keeps its running estimates (as
    BatchNorm). As in PyTorch, ``num_batches_tracked`` is kept for the state dict but not
    counted, and ``momentum=None`` means no update.
    """

    _spatial = 1
    running_mean: np.ndarray
    running_var: np.ndarray

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        where = type(self).__name__
        num_features = V.integer(num_features, "num_features", where, low=1)
        super().__init__(num_features, num_features, eps=eps, affine=affine, dtype=dtype)
        self.num_features = num_features
        self.momentum = None if momentum is None else V.real(momentum, "momentum", where, low=0.0, high=1.0)
        self.track_running_stats = V.boolean(track_running_stats, "track_running_stats", where)
        C, tracked = num_features, self.track_running_stats
        self.register_buffer("running_mean", np.zeros(C, self.dtype) if tracked else None)
        self.register_buffer("running_var", np.ones(C, self.dtype) if tracked else None)
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64) if tracked else None)

    def _check_input(self, x: np.ndarray) -> None:
        want = self._spatial + 2
        if x.ndim != want or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects input with "
                f"{want} dimensions (N, {self.num_features}, ...) or {want - 1} "
                f"(unbatched), got shape {x.shape}"
            )

    def _update_running_stats(self, mean: np.ndarray, x: np.ndarray) -> None:
        # instance variances from x, in float64 (1 / rstd**2 - eps cancels when var << eps:
        # 2e-3 off at a std of 1e-5 with float32's rstd)
        N, C = x.shape[:2]
        S = x.size // max(N * C, 1)
        with np.errstate(invalid="ignore", over="ignore"):  # a non-finite channel: below
            var = x.reshape(N, C, S).var(axis=2, dtype=np.float64) * (S / (S - 1))
        batch_mean = mean.astype(np.float64).mean(axis=0)
        batch_var = var.mean(axis=0)
        finite = np.isfinite(batch_mean) & np.isfinite(batch_var)
        m = self.momentum
        assert m is not None
        rm, rv = self.running_mean, self.running_var
        np.copyto(rm, (1 - m) * rm.astype(np.float64) + m * batch_mean, casting="unsafe", where=finite)
        np.copyto(rv, (1 - m) * rv.astype(np.float64) + m * batch_var, casting="unsafe", where=finite)
        if not finite.all():
            warnings.warn(
                f"{type(self).__name__}: statistics of {int((~finite).sum())} "
                "channel(s) are not finite; their running estimates were not updated",
                RuntimeWarning,
                stacklevel=3,
            )

    def forward(self, x: Any) -> np.ndarray:
        name = type(self).__name__
        x = self._input(x, "x")
        unbatched = x.ndim == self._spatial + 1
        if unbatched:
            x = x[np.newaxis]
        self._check_input(x)
        N, C = x.shape[:2]
        S = math.prod(x.shape[2:])
        weight, bias = data_of(self.weight), data_of(self.bias)
        if self.training or not self.track_running_stats:
            if S == 1:
                raise ValueError(
                    f"{name}: expected more than 1 spatial element when normalizing "
                    f"with the input's statistics, got input size {x.shape}"
                )
            y, mean, rstd = F.group_norm(x, C, weight, bias, self.eps)
            if self.training and self.track_running_stats and self.momentum is not None and N * S > 0:
                self._update_running_stats(mean, x)
            self.save_for_backward(unbatched, x, mean, rstd, True)
        else:  # every instance normalized with the running estimates, as batch norm in eval
            x3 = x.reshape(N, C, S)
            y, mean, rstd = F.batch_norm(
                x3, self.running_mean, self.running_var, weight, bias, training=False, eps=self.eps
            )
            y = y.reshape(x.shape)
            self.save_for_backward(unbatched, x, mean, rstd, False)
        return y[0] if unbatched else y

    def backward(self, dy: Any) -> np.ndarray:
        unbatched, x, mean, rstd, use_input_stats = self.saved()
        dy = self._input(dy, "dy")
        if unbatched:
            dy = dy[np.newaxis]
        if dy.shape != x.shape:
            raise ValueError(
                f"{type(self).__name__}.backward: dy has shape "
                f"{dy.shape[unbatched:]}, expected {x.shape[unbatched:]}"
            )
        weight = data_of(self.weight)
        if use_input_stats:
            dx, dweight, dbias = F.group_norm_backward(dy, x, mean, rstd, weight, **self._affine_grads())
        else:
            x3 = x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))
            dx, dweight, dbias = F.batch_norm_backward(
                dy.reshape(x3.shape), x3, mean, rstd, weight, training=False, **self._affine_grads()
            )
            dx = dx.reshape(x.shape)
        self._store_grads(dweight, dbias)
        return dx[0] if unbatched else dx

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) or unbatched (C, L) input over L."""

    _spatial = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) or unbatched (C, H, W) input over H, W."""

    _spatial = 2


#: Layers whose parameters are scales and shifts of normalized values: weight decay does
#: not regularize them (``normreg.optim.param_groups`` leaves them out, whatever their shape).
NORMALIZATION_LAYERS: tuple[type[Module], ...] = (LayerNorm, BatchNormBase, RMSNorm, GroupNorm)
