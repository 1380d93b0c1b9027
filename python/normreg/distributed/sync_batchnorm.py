"""Batch norm whose statistics are those of the global batch, split across ranks."""
import numpy as np

from .. import _C
from .. import functional as F
from .. import nn
from .comm import allgather, allreduce_sum_, world

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm", "merge_moments"]


def merge_moments(counts, means, m2s):
    """Chan's parallel merge of per-part (count, mean, M2) into the whole's.

    counts (R,), means (R, C), m2s (R, C) with M2 = sum (x - mean)^2 over each part ->
    (count, mean (C), M2 (C)) of the union. Parts with count 0 contribute nothing:
        mean = sum_r n_r mean_r / n,   M2 = sum_r M2_r + sum_r n_r (mean_r - mean)^2
    Both sums are of non-negative or well-scaled terms, so nothing cancels.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    if n == 0:
        C = np.shape(means)[1]
        return 0.0, np.zeros(C), np.zeros(C)
    mean = counts @ means / n
    m2 = m2s.sum(axis=0) + counts @ np.square(means - mean)
    return n, mean, m2


class SyncBatchNorm(nn.BatchNorm1d):
    """:class:`normreg.nn.BatchNorm1d` over the global batch of all ranks of ``comm``.

    Each rank passes its share of the batch, (N_r, C) or (N_r, C, L); in training the
    per-channel count, mean and M2 of the shares are gathered (one ``Allgather`` of
    2 C + 1 doubles) and merged with Chan's formula, every rank normalizes with the
    global mean and biased variance, and the running estimates are updated with the
    global mean and unbiased variance (identically on every rank). ``backward`` adds
    the two per-channel sums it needs, ``sum(dy)`` and ``sum(dy * xhat)``, over the
    ranks (one ``Allreduce`` of 2 C doubles) and divides by the global count. The
    parameter gradients are this rank's contributions (the data-parallel gradient
    reduction adds them up). Shares may differ in size, and may be empty.

    In evaluation with running statistics nothing is communicated. ``comm`` defaults to
    MPI's COMM_WORLD (a one-process stand-in without mpi4py), looked up at first use.
    Every rank must call forward and backward the same number of times.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32, comm=None):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, dtype=dtype)
        self.comm = comm

    @classmethod
    def from_batchnorm(cls, bn, comm=None):
        """A SyncBatchNorm sharing ``bn``'s parameters and running-statistic arrays."""
        if not isinstance(bn, nn.BatchNorm1d):
            raise TypeError(f"from_batchnorm needs a BatchNorm1d, got {type(bn).__name__}")
        sbn = cls.__new__(cls)
        sbn.__dict__.update(bn.__dict__)
        sbn._buffer_names = list(bn._buffer_names)
        sbn._ctx = None
        sbn.comm = comm
        return sbn

    def _comm(self):
        if self.comm is None:
            self.comm = world()
        return self.comm

    def forward(self, x):
        x = F._as_float_array(x, "x", self.dtype, "the dtype of SyncBatchNorm's parameters")
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm({self.num_features}) expects input (N, {self.num_features}) "
                             f"or (N, {self.num_features}, L), got shape {x.shape}")
        if not (self.training or not self.track_running_stats):
            self._sync = False
            return super().forward(x)
        comm = self._comm()
        x3 = F._as_ncl(x, "x")
        N, C, L = x3.shape
        # this rank's count, means and M2 -> every rank's -> the global batch's
        local = np.empty(1 + 2 * C)
        local[0] = N * L
        local[1:] = _C.sync_batch_norm_stats(x3).ravel()
        parts = allgather(comm, local)
        count, mean, m2 = merge_moments(parts[:, 0], parts[:, 1:1 + C], parts[:, 1 + C:])
        if count <= 1:
            raise ValueError("Expected more than 1 value per channel when training, got a global "
                             f"batch of {int(count)} value(s) per channel over {comm.Get_size()} rank(s)")
        var = m2 / count
        save_mean = mean.astype(self.dtype)
        save_rstd = (1.0 / np.sqrt(var + self.eps)).astype(self.dtype)
        # normalize with the global statistics
        y = _C.sync_batch_norm_forward(x3, save_mean, save_rstd,
                                       None if self.weight is None else self.weight.data,
                                       None if self.bias is None else self.bias.data, None)
        if self.training and self.track_running_stats:
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked + 1)
            else:
                momentum = self.momentum
            unbiased = m2 / (count - 1)
            self.running_mean[...] = (1 - momentum) * self.running_mean.astype(np.float64) + momentum * mean
            self.running_var[...] = (1 - momentum) * self.running_var.astype(np.float64) + momentum * unbiased
            self.num_batches_tracked += 1
        self._sync = True
        self._ctx = (x3, x.shape, save_mean, save_rstd, count)
        return y.reshape(x.shape)

    def backward(self, dy):
        if not getattr(self, "_sync", False):
            return super().backward(dy)
        ((x3, shape, save_mean, save_rstd, count),) = self._cached("_ctx")
        dy = F._as_float_array(dy, "dy", self.dtype, "the dtype of SyncBatchNorm's parameters")
        if dy.shape != shape:
            raise ValueError(f"SyncBatchNorm.backward: dy has shape {dy.shape}, expected {shape}")
        dy3 = dy.reshape(x3.shape)
        local = _C.sync_batch_norm_grad_sums(dy3, x3, save_mean, save_rstd)
        if self.weight is not None:
            self.weight.grad += local[1].astype(self.dtype)
        if self.bias is not None:
            self.bias.grad += local[0].astype(self.dtype)
        sums = allreduce_sum_(self._comm(), local.copy())
        dx = _C.sync_batch_norm_backward(dy3, x3, save_mean, save_rstd,
                                         None if self.weight is None else self.weight.data,
                                         sums, count, None)
        return dx.reshape(shape)

    def extra_repr(self):
        return super().extra_repr() + f", comm={self.comm!r}" if self.comm is not None else super().extra_repr()


def convert_sync_batchnorm(module, comm=None):
    """Replace every :class:`BatchNorm1d` in ``module`` by a :class:`SyncBatchNorm` that
    shares its parameters and running statistics; returns the module (or the new layer,
    when ``module`` is itself a BatchNorm1d), as PyTorch's ``convert_sync_batchnorm``."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"convert_sync_batchnorm needs a Module, got {type(module).__name__}")

    def convert(m):
        if isinstance(m, nn.BatchNorm1d) and not isinstance(m, SyncBatchNorm):
            return SyncBatchNorm.from_batchnorm(m, comm)
        return m

    root = convert(module)
    for mod in list(root.modules()):
        for name, value in list(vars(mod).items()):
            if isinstance(value, nn.Module):
                new = convert(value)
                if new is not value:
                    setattr(mod, name, new)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, nn.Module):
                        value[i] = convert(item)
            elif isinstance(value, tuple) and any(isinstance(v, nn.BatchNorm1d) for v in value):
                setattr(mod, name, tuple(convert(v) if isinstance(v, nn.Module) else v for v in value))
    return root
