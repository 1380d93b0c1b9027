"""Sharding each epoch's examples across ranks."""
import numpy as np

from .comm import world

__all__ = ["DistributedSampler", "DistributedDataLoader", "shard_bounds"]


def shard_bounds(n, num_replicas, rank):
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

    def __init__(self, num_samples, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False, batch_size=None):
        if hasattr(num_samples, "__len__"):
            num_samples = len(num_samples)
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
            raise ValueError(f"num_samples must be a non-negative int or a sized dataset, got {num_samples!r}")
        if num_replicas is None or rank is None:
            comm = world()
            num_replicas = comm.Get_size() if num_replicas is None else num_replicas
            rank = comm.Get_rank() if rank is None else rank
        if int(num_replicas) < 1:
            raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= int(rank) < int(num_replicas):
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size}")
        self.num_samples = int(num_samples)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def permutation(self):
        """The epoch's order of all examples (identical on every rank)."""
        if not self.shuffle:
            return np.arange(self.num_samples, dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch])
        return rng.permutation(self.num_samples).astype(np.int64)

    def num_batches(self):
        if self.batch_size is None:
            raise ValueError("num_batches needs the sampler's batch_size (the global batch size)")
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def batches(self, permutation=None):
        """This rank's share of each global batch of the epoch, as int64 index arrays
        (of ``permutation``, the same on every rank, instead of the sampler's own)."""
        perm = self.permutation() if permutation is None else np.asarray(permutation)
        if perm.shape != (self.num_samples,):
            raise ValueError(f"permutation must have shape ({self.num_samples},), got {perm.shape}")
        B = self.batch_size
        for i in range(self.num_batches()):
            batch = perm[i * B:(i + 1) * B]
            start, stop = shard_bounds(batch.size, self.num_replicas, self.rank)
            yield batch[start:stop]

    def indices(self):
        if self.batch_size is not None:
            parts = list(self.batches())
            return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        perm = self.permutation()
        if self.drop_last:
            perm = perm[:self.num_samples - self.num_samples % self.num_replicas]
        return perm[self.rank::self.num_replicas]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
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

    def __init__(self, x, y=None, batch_size=1, shuffle=True, drop_last=False, seed=0,
                 num_replicas=None, rank=None, comm=None, generator=None):
        self.x = np.asarray(x)
        self.y = None if y is None else np.asarray(y)
        if self.y is not None and self.y.shape[:1] != self.x.shape[:1]:
            raise ValueError(f"x and y must have the same number of samples, got "
                             f"{self.x.shape[:1]} and {self.y.shape[:1]}")
        if comm is not None:
            num_replicas = comm.Get_size() if num_replicas is None else num_replicas
            rank = comm.Get_rank() if rank is None else rank
        self.sampler = DistributedSampler(self.x.shape[0], num_replicas, rank, shuffle=shuffle,
                                          seed=seed, drop_last=drop_last, batch_size=batch_size)
        self.generator = generator
        self.epoch = 0

    def __len__(self):
        return self.sampler.num_batches()

    def __iter__(self):
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        perm = None
        if self.generator is not None and self.sampler.shuffle:
            perm = self.generator.numpy().permutation(self.x.shape[0])
        for idx in self.sampler.batches(perm):
            yield self.x[idx] if self.y is None else (self.x[idx], self.y[idx])
