"""Data-parallel training over MPI (mpi4py), with synchronized batch norm.

Run one process per rank with ``mpiexec -n R python train.py``; each holds a replica of
the model and a shard of every global batch::

    from normreg import distributed as dist
    comm = dist.init()                               # COMM_WORLD; errors abort the job
    model = dist.convert_sync_batchnorm(model)       # BatchNorm1d -> SyncBatchNorm
    ddp = dist.DistributedDataParallel(model, comm)  # rank 0's weights everywhere
    sampler = dist.DistributedSampler(len(X), batch_size=256, seed=0)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for idx in sampler.batches():                # this rank's share of a batch
            model.zero_grad()
            loss = loss_fn(ddp(X[idx]), y[idx])
            ddp.backward(loss_fn.backward())         # grads summed over the ranks
            optimizer.step()                         # identical on every rank

Needs ``pip install 'normreg[mpi]'`` (mpi4py and MPICH from PyPI). Without mpi4py, the
same code runs as a single process (:class:`LocalComm`).
"""

from .comm import (
    LocalComm,
    abort_on_failure,
    all_reduce_mean,
    allgather,
    allreduce_sum_,
    broadcast_,
    get_rank,
    get_timeout,
    get_world_size,
    init,
    install_abort_handler,
    is_available,
    local_size,
    set_timeout,
    world,
)
from .parallel import DistributedDataParallel, GradientReducer, broadcast_parameters
from .sampler import DistributedDataLoader, DistributedSampler, shard_bounds
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm, merge_moments

__all__ = [
    "init",
    "world",
    "is_available",
    "LocalComm",
    "get_rank",
    "get_world_size",
    "local_size",
    "install_abort_handler",
    "abort_on_failure",
    "set_timeout",
    "get_timeout",
    "allreduce_sum_",
    "allgather",
    "broadcast_",
    "all_reduce_mean",
    "DistributedDataParallel",
    "GradientReducer",
    "broadcast_parameters",
    "DistributedSampler",
    "DistributedDataLoader",
    "shard_bounds",
    "SyncBatchNorm",
    "convert_sync_batchnorm",
    "merge_moments",
]
