"""Batch norm whose statistics are those of the global batch, split across ranks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import functional as F
from ..nn.batchnorm import BatchNormBase
from ..nn.parameter import Module, add_to_grad, data_of
from .comm import Comm, allgather, allreduce_sum_, world

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm", "merge_moments"]

_SYNC = "synchronized"  # the last saved value of a forward that used the global batch


def merge_moments(
    counts: npt.ArrayLike, means: npt.ArrayLike, m2s: npt.ArrayLike
) -> tuple[float, np.ndarray, np.ndarray]:
    """Chan's parallel merge of per-part (count, mean, M2) into the whole's.

    counts (R,), means (R, C), m2s (R, C) with M2 = sum (x - mean)^2 over each part ->
    (count, mean (C), M2 (C)) of the union. Parts with count 0 contribute nothing:
        mean = sum_r n_r mean_r / n,   M2 = sum_r M2_r + sum_r n_r (mean_r - mean)^2
    Both sums are of non-negative or well-scaled terms, so nothing cancels.
    """
    counts = np.asarray(counts, dtype=np.float64)
    means, m2s = np.asarray(means, dtype=np.float64), np.asarray(m2s, dtype=np.float64)
    n = float(counts.sum())
    if n == 0:
        C = means.shape[1]
        return 0.0, np.zeros(C), np.zeros(C)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite input: NaN/Inf stats
        mean = counts @ means / n
        m2 = m2s.sum(axis=0) + counts @ np.square(means - mean)
    return n, mean, m2


class SyncBatchNorm(BatchNormBase):
    """Batch norm over the global batch of all ranks of ``comm`` (PyTorch's
    ``nn.SyncBatchNorm``), for (N, C) or (N, C, *) input.

    The arguments, running estimates, conventions and policies are those of
    :class:`normreg.nn.BatchNorm1d` (``momentum_style``, ``running_var_estimator``,
    ``initial_running_var``, ``freeze_stats``, ``convention``, the non-finite policy),
    plus ``comm``. Each rank passes its share of the batch; whenever batch statistics are
    used (training, or ``track_running_stats=False``), the per-channel count, mean and M2
    of the shares are gathered (one ``Allgather`` of 2 C + 1 doubles) and merged with
    Chan's formula; every rank normalizes with the global mean and biased variance and
    updates the running estimates with the global statistics (identically on every
    rank). ``backward`` adds the two per-channel sums it needs, ``sum(dy)`` and
    ``sum(dy * xhat)``, over the ranks (one ``Allreduce`` of 2 C doubles) and divides by
    the global count. The parameter gradients are this rank's contributions (the
    data-parallel gradient reduction adds them up). Shares may differ in size, and may be
    empty. With running statistics in evaluation (or ``freeze_stats``) nothing is
    communicated.

    ``comm`` defaults to MPI's COMM_WORLD (a one-process stand-in without mpi4py), looked
    up at first use. Every rank must call forward and backward the same number of times.
    """

    _input_doc = "(N, C) or (N, C, *)"

    def __init__(self, *args: Any, comm: Comm | None = None, **kwargs: Any) -> None:
        """``SyncBatchNorm(num_features, eps=1e-5, momentum=0.1, ..., comm=None)``: the
        arguments of :class:`normreg.nn.BatchNorm1d`, and ``comm``."""
        super().__init__(*args, **kwargs)
        self.comm: Comm | None = comm

    def _as_ncl(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise self._bad_shape(x)
        return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:])) if x.ndim != 3 else x

    @classmethod
    def from_batchnorm(cls, bn: BatchNormBase, comm: Comm | None = None) -> SyncBatchNorm:
        """A SyncBatchNorm sharing ``bn``'s parameters and running-statistic arrays, with
        its settings (any ``nn.BatchNorm1d`` / ``nn.BatchNorm2d``)."""
        if not isinstance(bn, BatchNormBase):
            raise TypeError(
                f"SyncBatchNorm.from_batchnorm: needs a batch-norm layer, got {type(bn).__name__}"
            )
        sbn = cls.__new__(cls)
        sbn.__dict__.update(bn.__dict__)
        sbn._buffer_names = list(bn._buffer_names)
        sbn.clear_pending()  # its own record of pending forwards, not bn's
        sbn.comm = comm
        return sbn

    def _comm(self) -> Comm:
        if self.comm is None:
            self.comm = world()
        return self.comm

    def forward(self, x: Any) -> np.ndarray:
        x = self._input(x, "x")
        x3 = self._as_ncl(x)
        use_batch_stats = not self.track_running_stats or (self.training and not self.freeze_stats)
        if not use_batch_stats:  # running estimates: the same on every rank, nothing to share
            return super().forward(x)
        comm = self._comm()
        N, C, L = x3.shape
        # this rank's count, means and M2 -> every rank's -> the global batch's
        local = np.empty(1 + 2 * C)
        local[0] = N * L
        local[1:] = F.batch_norm_stats(x3).ravel()
        parts = allgather(comm, local)
        count, mean, m2 = merge_moments(parts[:, 0], parts[:, 1 : 1 + C], parts[:, 1 + C :])
        if count == 0:  # every share empty: nothing to normalize, nothing learned
            self.save_for_backward(x.shape, None, None, None, 0.0, _SYNC)
            return np.empty_like(x)
        self._check_batch(x, int(count), comm.Get_size())
        var = m2 / count
        with np.errstate(invalid="ignore", over="ignore"):
            save_rstd = (1.0 / np.sqrt(var + self.eps)).astype(self.dtype)
        # normalize with the global statistics; the mean stays float64 (rounded to float32, a
        # large mean would cost every normalized value its accuracy)
        y = F.batch_norm_elemt(x3, mean, save_rstd, data_of(self.weight), data_of(self.bias))
        if self.track_running_stats:
            self._update_running(mean, m2 / (count - 1) if self.running_var_estimator == "unbiased" else var)
        self.save_for_backward(x.shape, x3, mean, save_rstd, count, _SYNC)
        return y.reshape(x.shape)

    def backward(self, dy: Any) -> np.ndarray:
        saved = self.saved()
        if saved[-1] is not _SYNC:  # normalized with the running estimates: nothing shared
            return super().backward(dy)
        shape, x3, mean, save_rstd, count, _ = saved
        dy = self._check_dy(dy, shape)
        if x3 is None:  # the global batch was empty
            return np.empty_like(dy)
        dy3 = dy.reshape(x3.shape)
        local = F.batch_norm_backward_reduce(dy3, x3, mean, save_rstd)
        if self.weight is not None:
            add_to_grad(self.weight, local[1].astype(self.dtype))
        if self.bias is not None:
            add_to_grad(self.bias, local[0].astype(self.dtype))
        sums = allreduce_sum_(self._comm(), local.copy())
        dx = F.batch_norm_backward_elemt(dy3, x3, mean, save_rstd, data_of(self.weight), sums, count)
        return dx.reshape(shape)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + f", comm={self.comm!r}" if self.comm is not None else s


def convert_sync_batchnorm(module: Module, comm: Comm | None = None) -> Module:
    """Replace every batch-norm layer (:class:`BatchNorm1d`, :class:`BatchNorm2d`) in
    ``module`` (wherever it is held: an attribute, a Sequential, a ModuleList, a ModuleDict,
    a list or dict attribute) by a :class:`SyncBatchNorm` that shares its parameters and
    running statistics and keeps its settings; returns the module (or the new layer, when
    ``module`` is itself a batch norm), as PyTorch's ``convert_sync_batchnorm``."""
    if not isinstance(module, Module):
        raise TypeError(f"convert_sync_batchnorm: needs a Module, got {type(module).__name__}")

    def convert(m: Module) -> Module:
        if isinstance(m, BatchNormBase) and not isinstance(m, SyncBatchNorm):
            return SyncBatchNorm.from_batchnorm(m, comm)
        return m

    root = convert(module)
    for mod in list(root.modules()):
        for name, value in list(vars(mod).items()):
            if isinstance(value, Module):
                new = convert(value)
                if new is not value:
                    setattr(mod, name, new)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        value[i] = convert(item)
            elif isinstance(value, dict):  # a dict attribute, a ModuleDict's entries
                for key, item in list(value.items()):
                    if isinstance(item, Module):
                        value[key] = convert(item)
            elif isinstance(value, tuple) and any(isinstance(v, BatchNormBase) for v in value):
                setattr(mod, name, tuple(convert(v) if isinstance(v, Module) else v for v in value))
    return root
