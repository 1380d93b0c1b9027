"""Sharding each epoch's examples across ranks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _validation as V
from ..random import Generator
from .comm import Comm, world

__all__ = ["DistributedSampler", "DistributedDataLoader", "shard_bounds"]


def shard_bounds(n: int, num_replicas: int, rank: int) -> tuple[int, int]:
    """[start, stop) of ``rank``'s share of ``n`` items split into ``num_replicas``
    contiguous shares whose sizes differ by at most one (the first ``n % num_replicas``
    shares have one more), as ``np.array_split``."""
    base, extra = divmod(int(n), int(num_replicas))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class DistributedSampler:
    """This rank's indices of each epoch: disjoint across ranks, shuffled reproducibly.

    Every epoch draws one permutation of ``range(num_samples)`` from ``(seed, epoch)``,
    the same on every rank (call ``set_epoch(epoch)`` before each epoch, as in PyTorch).

    * ``batches()`` (with ``batch_size``, the **global** batch size): cut the permutation
      into global batches of ``batch_size`` (the last one smaller unless ``drop_last``)
      and yield, for each, this rank's contiguous share (:func:`shard_bounds`). The ranks
      together process exactly the batches a single process with the same permutation
      would; every rank yields the same number of batches (a share may be empty when a
      batch has fewer examples than ranks) so the collectives stay matched.
    * iterating yields this rank's indices one by one: the concatenation of its shares of
      the global batches (or, without ``batch_size``, every ``num_replicas``-th index of
      the permutation, starting at ``rank``). ``len()`` is their number.
    """

    def __init__(
        self,
        num_samples: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        batch_size: int | None = None,
    ) -> None:
        where = "DistributedSampler"
        if hasattr(num_samples, "__len__"):
            num_samples = len(num_samples)
        self.num_samples = V.integer(num_samples, "num_samples", where, low=0)
        if num_replicas is None or rank is None:
            comm = world()
            num_replicas = comm.Get_size() if num_replicas is None else num_replicas
            rank = comm.Get_rank() if rank is None else rank
        self.num_replicas = V.integer(num_replicas, "num_replicas", where, low=1)
        self.rank = V.integer(rank, "rank", where, low=0, high=self.num_replicas - 1)
        self.batch_size = None if batch_size is None else V.integer(batch_size, "batch_size", where, low=1)
        self.shuffle = bool(shuffle)
        self.seed = V.integer(seed, "seed", where)
        self.drop_last = bool(drop_last)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = V.integer(epoch, "epoch", "DistributedSampler.set_epoch")

    def permutation(self) -> np.ndarray:
        """The epoch's order of all examples (identical on every rank)."""
        if not self.shuffle:
            return np.arange(self.num_samples, dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch])
        return rng.permutation(self.num_samples).astype(np.int64)

    def num_batches(self) -> int:
        if self.batch_size is None:
            raise ValueError("num_batches needs the sampler's batch_size (the global batch size)")
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def batches(self, permutation: Any = None) -> Iterator[np.ndarray]:
        """This rank's share of each global batch of the epoch, as int64 index arrays
        (of ``permutation``, the same on every rank, instead of the sampler's own)."""
        perm = self.permutation() if permutation is None else np.asarray(permutation)
        if perm.shape != (self.num_samples,):
            raise ValueError(f"permutation must have shape ({self.num_samples},), got {perm.shape}")
        B = self.batch_size
        assert B is not None  # num_batches() checked it
        for i in range(self.num_batches()):
            batch = perm[i * B : (i + 1) * B]
            start, stop = shard_bounds(batch.size, self.num_replicas, self.rank)
            yield batch[start:stop]

    def indices(self) -> np.ndarray:
        if self.batch_size is not None:
            parts = list(self.batches())
            return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        perm = self.permutation()
        if self.drop_last:
            perm = perm[: self.num_samples - self.num_samples % self.num_replicas]
        return perm[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return int(self.indices().size)


class DistributedDataLoader:
    """Mini-batches ``(x[idx], y[idx])`` of this rank's share of each global batch.

    The distributed counterpart of ``normreg.data.DataLoader``: ``batch_size`` is the
    **global** batch size, every ``iter()`` starts a new epoch with a new permutation drawn
    from ``(seed, epoch)`` (the same on every rank), and ``len()`` is the number of
    global batches per epoch, the same on every rank. See :class:`DistributedSampler`.

    ``generator`` (a ``normreg.Generator`` created with the same seed on every rank): draw
    each epoch's permutation from it as ``DataLoader(..., seed=s)`` does with
    ``Generator(s)``, so that the ranks together see the very batches of that
    single-process DataLoader.
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        comm: Comm | None = None,
        generator: Generator | None = None,
    ) -> None:
        self.x, self.y = V.samples(x, y, "DistributedDataLoader")
        if comm is not None:
            num_replicas = comm.Get_size() if num_replicas is None else num_replicas
            rank = comm.Get_rank() if rank is None else rank
        self.sampler = DistributedSampler(
            self.x.shape[0],
            num_replicas,
            rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            batch_size=batch_size,
        )
        self.generator = generator
        self.epoch = 0

    def __len__(self) -> int:
        return self.sampler.num_batches()

    def __iter__(self) -> Iterator[Any]:
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        perm = None
        if self.generator is not None and self.sampler.shuffle:
            perm = self.generator.numpy().permutation(self.x.shape[0])
        for idx in self.sampler.batches(perm):
            yield self.x[idx] if self.y is None else (self.x[idx], self.y[idx])
