"""Data parallelism: identical replicas, one shard of each batch per rank, gradients summed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .. import nn
from ..grad_mode import is_grad_enabled
from .comm import Comm, allreduce_sum_, broadcast_, world

__all__ = ["broadcast_parameters", "GradientReducer", "DistributedDataParallel"]


def _flat_groups(arrays: Sequence[np.ndarray], bucket_bytes: int) -> list[list[np.ndarray]]:
    """Split ``arrays`` into groups of one dtype and at most ~bucket_bytes each (an array
    larger than that is a group of its own), keeping their order."""
    groups: list[list[np.ndarray]] = []
    current: list[np.ndarray] = []
    size = 0
    for a in arrays:
        if current and (a.dtype != current[0].dtype or size + a.nbytes > bucket_bytes):
            groups.append(current)
            current, size = [], 0
        current.append(a)
        size += a.nbytes
    if current:
        groups.append(current)
    return groups


def broadcast_parameters(
    module: nn.Module, comm: Comm | None = None, root: int = 0, bucket_bytes: int = 16 << 20
) -> nn.Module:
    """Copy ``root``'s parameters and buffers (running statistics, counters) to every rank,
    in place, so that all replicas start identical. Arrays are packed into a few flat
    buffers per dtype, one ``Bcast`` each."""
    comm = comm if comm is not None else world()
    if comm.Get_size() == 1:
        return module
    arrays = [p.data for p in module.parameters()] + [b for _, b in module.named_buffers()]
    for a in arrays:
        if not (isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.writeable):
            raise ValueError(
                "broadcast_parameters: every parameter and buffer must be a C-contiguous writeable ndarray"
            )
    for group in _flat_groups(arrays, bucket_bytes):
        flat = (
            np.concatenate([a.reshape(-1) for a in group])
            if comm.Get_rank() == root
            else np.empty(sum(a.size for a in group), dtype=group[0].dtype)
        )
        broadcast_(comm, flat, root)
        offset = 0
        for a in group:
            a.reshape(-1)[...] = flat[offset : offset + a.size]
            offset += a.size
    return module


class GradientReducer:
    """Sums (or averages) the ``.grad`` of a list of parameters over the ranks, bucketed.

    Gradients are packed, in order, into flat buffers of one dtype and about
    ``bucket_cap_mb`` megabytes each, reduced with one in-place ``Allreduce`` per
    bucket and copied back: a model's many small parameters (biases, norm weights) share
    a message. The buffers are allocated once and reused every step. A parameter whose
    ``.grad`` is None counts as zeros; it gets a ``.grad`` when any rank had one, and
    stays None when none had (each bucket carries one presence flag per parameter).
    """

    def __init__(
        self, parameters: Iterable[nn.Parameter], comm: Comm | None = None, bucket_cap_mb: float = 4.0
    ) -> None:
        self.comm = comm if comm is not None else world()
        self.params = list(dict.fromkeys(parameters))  # a shared parameter is reduced once
        for p in self.params:
            if not isinstance(p, nn.Parameter):
                raise TypeError(f"GradientReducer needs Parameters, got {type(p).__name__}")
        cap = max(1, int(float(bucket_cap_mb) * (1 << 20)))
        # (flat buffer: the gradients, then one presence flag per parameter; [(param, offset)])
        self.buckets: list[tuple[np.ndarray, list[tuple[nn.Parameter, int]]]] = []
        params = iter(self.params)
        for group in _flat_groups([p.data for p in self.params], cap):  # in order, each once
            entries, offset = [], 0
            for a in group:
                entries.append((next(params), offset))
                offset += a.size
            self.buckets.append((np.empty(offset + len(entries), dtype=group[0].dtype), entries))

    @property
    def num_messages(self) -> int:
        return len(self.buckets)

    def allreduce(self, scale: float = 1.0) -> None:
        """``p.grad := scale * sum over ranks of p.grad`` for every parameter, in place."""
        if self.comm.Get_size() == 1 and scale == 1.0:
            return
        for flat, entries in self.buckets:
            flags = flat[len(flat) - len(entries) :]
            for k, (p, offset) in enumerate(entries):
                segment = flat[offset : offset + p.data.size]
                if p.grad is None:
                    segment[...] = 0
                    flags[k] = 0
                else:
                    segment[...] = p.grad.reshape(-1)
                    flags[k] = 1
            allreduce_sum_(self.comm, flat)
            if scale != 1.0:
                flat[: len(flat) - len(entries)] *= scale
            for k, (p, offset) in enumerate(entries):
                if flags[k] == 0:  # no rank has a gradient for it
                    continue
                segment = flat[offset : offset + p.data.size].reshape(p.data.shape)
                if p.grad is None:
                    p.grad = segment.copy()
                else:
                    p.grad[...] = segment

    def average(self) -> None:
        """``p.grad := mean over ranks of p.grad`` (PyTorch DistributedDataParallel's rule)."""
        self.allreduce(1.0 / self.comm.Get_size())


class DistributedDataParallel(nn.Module):
    """Data-parallel training of ``module`` over the ranks of ``comm``.

    At construction the parameters and buffers of rank 0 are broadcast to every rank.
    Each rank then calls ``forward`` on its shard of the global batch (shards may differ
    in size, even be empty) and ``backward`` with the gradient of its loss **averaged
    over its shard** (e.g. ``SoftmaxLoss().backward()``). ``backward`` rescales that
    gradient by ``n_rank / n_global`` so that it is this rank's part of the gradient of
    the loss averaged over the global batch, runs the module's backward (through
    :class:`SyncBatchNorm` layers, which add their sums across ranks), and adds the
    parameter gradients over the ranks (bucketed, :class:`GradientReducer`). Afterwards
    every rank's ``.grad`` is the gradient a single process gets on the whole global
    batch: with equal shards this is PyTorch's averaging; with unequal shards each rank
    weighs by its count. The returned ``dx`` is this rank's part of that gradient. Under
    ``normreg.no_grad()`` the forward only runs the module (no all-reduce of the batch
    sizes, which only a backward needs).

    ``.grad`` must be None or zero before a synchronizing backward (call ``zero_grad()``
    every step); ``with ddp.no_sync():`` accumulates local gradients over several backwards
    without communication, the next synchronizing backward reduces the sum.

    ``ddp.double()`` (``ddp.to(dtype)``) converts the module and the reducer's buffers;
    convert the module before wrapping it or through ``ddp``, not as ``ddp.module``
    alone, whose gradients the reducer's old buffers would round.
    """

    def __init__(
        self, module: nn.Module, comm: Comm | None = None, broadcast: bool = True, bucket_cap_mb: float = 4.0
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"DistributedDataParallel needs a Module, got {type(module).__name__}")
        self.module = module
        self.comm = comm if comm is not None else world()
        if broadcast:
            broadcast_parameters(module, self.comm)
        self._bucket_cap_mb = bucket_cap_mb
        self.reducer = GradientReducer(module.parameters(), self.comm, bucket_cap_mb)
        self._require_sync = True
        self.local_count = 0
        self.global_count = 0

    def _convert_own(self, dtype: np.dtype[Any]) -> bool:
        # Module.to: the reducer's flat buffers have the dtype of the parameters they were
        # made for; new ones for the converted parameters
        stale = any(flat.dtype != p.data.dtype for flat, entries in self.reducer.buckets for p, _ in entries)
        if stale:
            self.reducer = GradientReducer(self.module.parameters(), self.comm, self._bucket_cap_mb)
        return super()._convert_own(dtype) or stale

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    @property
    def world_size(self) -> int:
        return self.comm.Get_size()

    def forward(self, x: Any) -> Any:
        if not is_grad_enabled():  # no backward to scale: no need to count the global batch
            return self.module(x)
        n = np.shape(x)[0] if np.ndim(x) > 0 else 1
        counts = allreduce_sum_(self.comm, np.array([n], dtype=np.int64))
        self.local_count, self.global_count = int(n), int(counts[0])
        y = self.module(x)
        self.save_for_backward(self.local_count, self.global_count)
        return y

    def backward(self, dy: Any) -> Any:
        local_count, global_count = self.saved()
        scale = local_count / global_count if global_count > 0 else 0.0
        dy = np.asarray(dy)
        dx = self.module.backward(dy * dy.dtype.type(scale) if scale != 1.0 else dy)
        if self._require_sync:
            self.reducer.allreduce()
        return dx

    def allreduce_gradients(self) -> None:
        """Add the local gradients over the ranks now (what a synchronizing backward does)."""
        self.reducer.allreduce()

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Within this block ``backward`` accumulates local gradients without reducing."""
        previous, self._require_sync = self._require_sync, False
        try:
            yield
        finally:
            self._require_sync = previous

    def state_dict(self) -> Any:
        return self.module.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        return self.module.load_state_dict(state_dict, strict)

    def extra_repr(self) -> str:
        return f"world_size={self.world_size}"
