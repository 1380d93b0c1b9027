"""Batch normalization: BatchNorm1d, BatchNorm2d, and their base class (which
``normreg.distributed.SyncBatchNorm`` extends)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _memory, conventions
from .. import _validation as V
from .. import functional as F
from ..conventions import DEFAULT
from ..functional import _common as _FC
from ..functional import batchnorm as _FB
from .parameter import Module, Parameter, data_of, grad_of, store_grad

# Bound once for the common training call, whose Python overhead is most of a small
# layer's time (benchmarks/layers_vs_torch.py: BatchNorm1d on 32 x 64)
_ndarray = np.ndarray
_isfinite = math.isfinite
_sum = np.add.reduce
_batch_norm_forward = _FB._batch_norm_forward
_batch_norm_backward = _FB._batch_norm_backward
_unchecked_grads = _FC.unchecked_grads


class BatchNormBase(Module):
    """Batch normalization per channel C of (N, C, *) input (see BatchNorm1d/BatchNorm2d).

    In training: normalizes with the batch mean and biased variance over N and the
    positions ``*``, and updates ``running_mean``/``running_var``; in evaluation:
    normalizes with the running estimates. The update follows the convention switches
    (PyTorch's by default, see :mod:`normreg.conventions`):

    * ``momentum_style='torch'``: ``running = (1 - momentum) * running + momentum * batch``;
      ``'cs231n'``: ``running = momentum * running + (1 - momentum) * batch``.
      ``momentum=None`` takes the cumulative average over ``num_batches_tracked``.
    * ``running_var_estimator='unbiased'`` (divides by n - 1) or ``'biased'`` (by n).
    * ``initial_running_var``: 1.0 (PyTorch, needle) or 0.0 (cs231n).

    Policies:

    * ``track_running_stats=False``: no running estimates; batch statistics in training
      and in evaluation (PyTorch).
    * ``freeze_stats=True``: normalize with the running estimates and never update them,
      even in training mode, while weight and bias still train (what PyTorch users get by
      calling ``.eval()`` on the batch-norm layers of a training model; unlike that trick,
      a later ``model.train()`` does not undo it).
    * An empty batch (no values per channel) gives an empty output and leaves the running
      estimates and ``num_batches_tracked`` untouched; its backward adds nothing.
    * A channel whose batch mean or variance is not finite (NaN/Inf in the input, or a
      variance beyond the dtype's range) keeps its running mean and variance from before
      the batch (a ``RuntimeWarning`` says so);
      the other channels are updated, and ``num_batches_tracked`` counts the batch. The
      output of such a channel is not finite either: that is the input's doing.
    """

    _input_doc = "(N, C, *)"
    running_mean: np.ndarray | None
    running_var: np.ndarray | None
    num_batches_tracked: np.ndarray | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: Any = DEFAULT,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: npt.DTypeLike = np.float32,
        *,
        momentum_style: str | None = None,
        running_var_estimator: str | None = None,
        initial_running_var: float | None = None,
        freeze_stats: bool = False,
        convention: str | conventions.Convention | None = None,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.num_features = V.integer(num_features, "num_features", where, low=1)
        self.eps = V.eps(eps, where)
        if momentum is DEFAULT:  # None is PyTorch's cumulative average, not "unset"
            momentum = conventions.get(convention).bn_momentum
        self.momentum = None if momentum is None else V.real(momentum, "momentum", where, low=0.0, high=1.0)
        self.momentum_style = V.choice(
            conventions.resolve(convention, "bn_momentum_style", momentum_style),
            "momentum_style",
            where,
            conventions.BN_MOMENTUM_STYLES,
        )
        self.running_var_estimator = V.choice(
            conventions.resolve(convention, "bn_running_var_estimator", running_var_estimator),
            "running_var_estimator",
            where,
            conventions.BN_VAR_ESTIMATORS,
        )
        self.initial_running_var = V.real(
            conventions.resolve(convention, "bn_initial_running_var", initial_running_var),
            "initial_running_var",
            where,
        )
        self.affine = V.boolean(affine, "affine", where)
        self.track_running_stats = V.boolean(track_running_stats, "track_running_stats", where)
        self.freeze_stats = V.boolean(freeze_stats, "freeze_stats", where)
        if self.freeze_stats and not self.track_running_stats:
            raise ValueError(
                f"{where}: freeze_stats=True needs track_running_stats=True (there "
                "are no running statistics to freeze)"
            )
        self.dtype = V.float_dtype(dtype, where)
        C = self.num_features
        self.weight = Parameter(_memory.full((C,), 1, self.dtype, where)) if self.affine else None
        self.bias = Parameter(_memory.full((C,), 0, self.dtype, where)) if self.affine else None
        tracked = self.track_running_stats
        self.register_buffer("running_mean", np.zeros(C, self.dtype) if tracked else None)
        self.register_buffer(
            "running_var", np.full(C, self.initial_running_var, self.dtype) if tracked else None
        )
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64) if tracked else None)
        # Scratch for the running update (see _forward_train_update): O(C) work, no second
        # pass over the input.
        self._batch_mean = np.zeros(C, dtype=self.dtype)
        self._batch_var = np.zeros(C, dtype=self.dtype)

    def _convert_own(self, dtype: np.dtype[Any]) -> bool:
        # Module.to: the dtype attribute, and the scratch of the running update
        changed = super()._convert_own(dtype)
        if self._batch_mean.dtype != dtype:
            self._batch_mean = self._batch_mean.astype(dtype)
            self._batch_var = self._batch_var.astype(dtype)
            changed = True
        return changed

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            assert self.running_mean is not None and self.running_var is not None
            assert self.num_batches_tracked is not None
            self.running_mean[...] = 0
            self.running_var[...] = self.initial_running_var
            self.num_batches_tracked[...] = 0

    def _as_ncl(self, x: np.ndarray) -> np.ndarray:
        """x as (N, C, L), checked; subclasses define the accepted shapes."""
        raise NotImplementedError

    def _bad_shape(self, x: np.ndarray) -> ValueError:
        name = type(self).__name__
        return ValueError(
            f"{name}({self.num_features}) expects input {self._input_doc} with "
            f"C = {self.num_features}, got shape {x.shape}"
        )

    def _new_weight(self) -> float:
        """The weight of the batch statistic in the running update."""
        if self.momentum is None:  # cumulative moving average
            return 1.0 / (float(self.num_batches_tracked) + 1.0)  # type: ignore[arg-type]
        return self.momentum if self.momentum_style == "torch" else 1.0 - self.momentum

    def _update_running(self, mean: np.ndarray, var: np.ndarray) -> None:
        """The running update of this layer's convention with batch statistics (float64),
        skipping the channels whose statistics are not finite, with a warning."""
        w = self._new_weight()
        rm, rv = self.running_mean, self.running_var
        assert rm is not None and rv is not None and self.num_batches_tracked is not None
        finite = np.isfinite(mean) & np.isfinite(var)
        np.copyto(rm, (1.0 - w) * rm.astype(np.float64) + w * mean, casting="unsafe", where=finite)
        np.copyto(rv, (1.0 - w) * rv.astype(np.float64) + w * var, casting="unsafe", where=finite)
        self._count_batch(int(finite.size - finite.sum()))

    def _count_batch(self, skipped: int) -> None:
        assert self.num_batches_tracked is not None
        self.num_batches_tracked[...] += 1  # in place: no attribute assignment to check
        if skipped:
            warnings.warn(
                f"{type(self).__name__}: batch statistics of {skipped} channel(s) are "
                "not finite; their running estimates were not updated",
                RuntimeWarning,
                stacklevel=4,
            )

    def _put_back_nonfinite(self) -> int:
        """After the kernel's running update (the values before it in ``_batch_mean`` and
        ``_batch_var``): put back each channel it made non-finite from finite; how many."""
        rm, rv = self.running_mean, self.running_var
        assert rm is not None and rv is not None
        # a NaN or Inf anywhere makes the sum non-finite (a finite sum that overflows only
        # takes the exact look below)
        if _isfinite(_sum(rm) + _sum(rv)):
            return 0
        was_finite = np.isfinite(self._batch_mean) & np.isfinite(self._batch_var)
        bad = was_finite & ~(np.isfinite(rm) & np.isfinite(rv))
        np.copyto(rm, self._batch_mean, where=bad)
        np.copyto(rv, self._batch_var, where=bad)
        return int(bad.sum())

    def _forward_train_as_is(self, x: np.ndarray) -> np.ndarray | None:
        """The common training call (batch statistics, PyTorch's running update): the
        kernel at once on x as it is, the rest of ``forward`` and ``_forward_train_update``
        in a few lines; None for what the kernel refuses (a dtype to convert, x not
        C-contiguous, a batch of one value per channel), which the checked path converts
        or explains. The kernel checks every array before it writes any."""
        x3 = self._as_ncl(x)
        N, C, L = x3.shape
        if N * L < 2 or self.eps == 0.0:  # the checked path explains either
            return None
        rm, rv, w, b = self.running_mean, self.running_var, self.weight, self.bias
        self._batch_mean[...] = rm  # for _put_back_nonfinite
        self._batch_var[...] = rv
        try:
            y, mean, rstd = _batch_norm_forward(
                x3,
                None if w is None else w.data,
                None if b is None else b.data,
                rm,
                rv,
                True,
                self._new_weight(),
                self.eps,
                None,
            )
        except (TypeError, ValueError):
            return None
        skipped = self._put_back_nonfinite()
        if skipped:
            self._count_batch(skipped)  # warns
        else:
            self.num_batches_tracked[()] += 1  # type: ignore[index]
        self.save_for_backward(x.shape, x3, mean, rstd, True)
        return y.reshape(x.shape)

    def _forward_train_update(
        self, x3: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The training forward and the running update of this layer's convention, with
        the non-finite policy; O(C) work besides the kernel's, no second pass over x3."""
        N, C, L = x3.shape
        rm, rv = self.running_mean, self.running_var
        assert rm is not None and rv is not None
        if self.running_var_estimator == "unbiased":
            # PyTorch's rule (either momentum style is a weight w of the batch statistic):
            # the kernel updates rm, rv in place; a channel it made non-finite is put back.
            np.copyto(self._batch_mean, rm)
            np.copyto(self._batch_var, rv)
            out = F.batch_norm(
                x3, rm, rv, weight, bias, training=True, momentum=self._new_weight(), eps=self.eps
            )
            self._count_batch(self._put_back_nonfinite())
            return out
        # The kernel writes the batch mean and unbiased variance into the scratch buffers
        # (momentum 1 into zeros); the biased variance and the update follow in float64.
        self._batch_mean.fill(0)
        self._batch_var.fill(0)
        out = F.batch_norm(
            x3, self._batch_mean, self._batch_var, weight, bias, training=True, momentum=1.0, eps=self.eps
        )
        mean = self._batch_mean.astype(np.float64)
        var = self._batch_var.astype(np.float64) * ((N * L - 1) / (N * L))
        self._update_running(mean, var)
        return out

    def _check_batch(self, x: np.ndarray, values_per_channel: int, ranks: int = 1) -> None:
        """ValueError unless a normalization with batch statistics has more than one
        value per channel (its variance would be 0 and the output 0)."""
        if values_per_channel == 1:
            across = f" over {ranks} ranks" if ranks > 1 else ""
            raise ValueError(
                f"{type(self).__name__}: expected more than 1 value per channel when training, "
                f"got input of shape {x.shape}{across} (1 value per channel): use batches of "
                "at least 2 samples in training (e.g. drop a last batch of 1), or eval() to "
                "normalize with the running estimates"
            )

    def forward(self, x: Any) -> np.ndarray:
        if (
            type(x) is _ndarray
            and x.dtype is self.dtype
            and self.training
            and self.track_running_stats
            and not self.freeze_stats
            and self.running_var_estimator == "unbiased"
        ):
            y = self._forward_train_as_is(x)
            if y is not None:
                return y
        x = self._input(x, "x")
        x3 = self._as_ncl(x)
        N, C, L = x3.shape
        use_batch_stats = not self.track_running_stats or (self.training and not self.freeze_stats)
        update = use_batch_stats and self.track_running_stats
        if N * L == 0:  # empty batch: nothing to normalize, nothing learned about the data
            self.save_for_backward(x.shape, None, None, None, use_batch_stats)
            return np.empty_like(x)
        weight, bias = data_of(self.weight), data_of(self.bias)
        if use_batch_stats:
            self._check_batch(x, N * L)
        if update:
            y, save_mean, save_rstd = self._forward_train_update(x3, weight, bias)
        elif use_batch_stats:
            y, save_mean, save_rstd = F.batch_norm(x3, None, None, weight, bias, training=True, eps=self.eps)
        else:
            y, save_mean, save_rstd = F.batch_norm(
                x3, self.running_mean, self.running_var, weight, bias, training=False, eps=self.eps
            )
        self.save_for_backward(x.shape, x3, save_mean, save_rstd, use_batch_stats)
        return y.reshape(x.shape)

    __call__ = forward  # a leaf: saves last, calls no module (see Module.__call__)

    def _affine_grads(self) -> dict[str, Any]:
        return dict(has_bias=self.bias is not None, dweight=grad_of(self.weight), dbias=grad_of(self.bias))

    def _store_grads(self, dweight: np.ndarray | None, dbias: np.ndarray | None) -> None:
        store_grad(self.weight, dweight)
        store_grad(self.bias, dbias)

    def _check_dy(self, dy: Any, shape: tuple[int, ...]) -> np.ndarray:
        dy = self._input(dy, "dy")
        if dy.shape != shape:
            raise ValueError(f"{type(self).__name__}.backward: dy has shape {dy.shape}, expected {shape}")
        return dy

    def backward(self, dy: Any) -> np.ndarray:
        shape, x3, save_mean, save_rstd, use_batch_stats = self.saved()
        if type(dy) is _ndarray and dy.shape == shape and x3 is not None:
            # as it is: the kernel at once (it checks every array before it adds to the
            # gradients); what it refuses takes the checked path below
            w, b = self.weight, self.bias
            wd = None if w is None else w.data
            dw, db = _unchecked_grads(wd, b is not None, grad_of(w), grad_of(b), x3.shape[1], x3.dtype)
            try:
                dx = _batch_norm_backward(
                    dy.reshape(x3.shape), x3, save_mean, save_rstd, wd, dw, db, use_batch_stats, None
                )
            except (TypeError, ValueError):
                pass
            else:
                self._store_grads(dw, db)
                return dx.reshape(shape)
        dy = self._check_dy(dy, shape)
        if x3 is None:  # empty batch
            return np.empty_like(dy)
        dx, dweight, dbias = F.batch_norm_backward(
            dy.reshape(x3.shape),
            x3,
            save_mean,
            save_rstd,
            data_of(self.weight),
            training=use_batch_stats,
            **self._affine_grads(),
        )
        self._store_grads(dweight, dbias)
        return dx.reshape(shape)

    def extra_repr(self) -> str:
        s = (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )
        if self.momentum_style != "torch":
            s += f", momentum_style={self.momentum_style!r}"
        if self.running_var_estimator != "unbiased":
            s += f", running_var_estimator={self.running_var_estimator!r}"
        if self.freeze_stats:
            s += ", freeze_stats=True"
        return s


class BatchNorm1d(BatchNormBase):
    """Batch normalization of (N, C) or (N, C, L) input per channel C.

    ``BatchNorm1d(num_features, eps=1e-5, momentum=0.1, affine=True,
    track_running_stats=True, dtype=np.float32, *, momentum_style=None,
    running_var_estimator=None, initial_running_var=None, freeze_stats=False,
    convention=None)``; an omitted ``momentum`` and the switches left at None take the
    convention's values (PyTorch's by default: 0.1, ``'torch'``, ``'unbiased'``, 1.0).

    In training: normalizes with the batch mean and biased variance and updates
    ``running_mean``/``running_var`` as ``(1 - momentum) * running + momentum * stat``
    (running_var with the unbiased variance; ``momentum=None`` takes the cumulative
    average over ``num_batches_tracked``). In evaluation: normalizes with the running
    estimates (or with batch statistics if ``track_running_stats=False``). The switches
    after ``*`` select a course's convention and the policies: see :class:`BatchNormBase`.
    """

    _input_doc = "(N, C) or (N, C, L)"

    def _as_ncl(self, x: np.ndarray) -> np.ndarray:
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise self._bad_shape(x)
        return x.reshape(x.shape[0], x.shape[1], 1) if x.ndim == 2 else x


class BatchNorm2d(BatchNormBase):
    """Batch normalization of (N, C, H, W) input per channel C, with statistics over N, H
    and W; otherwise exactly :class:`BatchNorm1d` (same arguments, running estimates,
    conventions and policies). Runs the batch-norm kernel on the (N, C, H * W) view."""

    _input_doc = "(N, C, H, W)"

    def _as_ncl(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise self._bad_shape(x)
        return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
