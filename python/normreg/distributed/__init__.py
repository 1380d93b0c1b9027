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

from . import comm, parallel, sampler, sync_batchnorm
from .comm import *  # noqa: F403
from .parallel import *  # noqa: F403
from .sampler import *  # noqa: F403
from .sync_batchnorm import *  # noqa: F403

__all__ = [*comm.__all__, *parallel.__all__, *sampler.__all__, *sync_batchnorm.__all__]
