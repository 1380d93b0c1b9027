"""Run with `mpiexec -n R python check_training.py`: training steps of a data-parallel
model (DistributedDataParallel, SyncBatchNorm, DistributedSampler with uneven shares) give,
step after step, the parameters, running statistics and losses of a single process that
trains on the same global batches (float64, to 1e-10)."""

import copy
import sys

import numpy as np

import normreg
from normreg import distributed as dist
from normreg import nn, optim

TOL = 1e-10


def close(name, got, want):
    err = float(np.max(np.abs(np.asarray(got) - np.asarray(want)), initial=0.0))
    assert err <= TOL * max(1.0, float(np.max(np.abs(want), initial=0.0))), f"{name}: max error {err}"


def main():
    comm = dist.init(timeout=60)  # the non-blocking, polled collectives
    rank, size = comm.Get_rank(), comm.Get_size()
    f64 = np.float64
    data_rng = np.random.default_rng(99)  # the same data on every rank
    n, d, k = 41, 12, 4
    X = 3 * data_rng.standard_normal((n, d)) + 2
    Y = data_rng.integers(0, k, n)

    # different seeds per rank: the broadcast must make the replicas identical
    normreg.manual_seed(100 + rank)
    model = nn.Sequential(
        nn.Linear(d, 32, dtype=f64),
        nn.BatchNorm1d(32, dtype=f64),
        nn.ReLU(),
        nn.Linear(32, 16, dtype=f64),
        nn.BatchNorm1d(16, dtype=f64),
        nn.ReLU(),
        nn.Linear(16, k, dtype=f64),
    )
    ref = model  # plain BatchNorm1d, one process
    ddp = dist.DistributedDataParallel(
        dist.convert_sync_batchnorm(copy.deepcopy(model), comm), comm, bucket_cap_mb=0.004
    )
    model = ddp.module
    assert ddp.reducer.num_messages < len(model.parameters())  # small params share messages
    assert sum(isinstance(m, dist.SyncBatchNorm) for m in model.modules()) == 2
    # the reference starts from rank 0's weights, which the broadcast gave every rank
    ref.load_state_dict(dist.broadcast_parameters(copy.deepcopy(ref), comm).state_dict())
    for (_, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        close("initial parameters equal", p.data, q.data)

    loss_fn, ref_loss_fn = nn.SoftmaxLoss(), nn.SoftmaxLoss()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    ref_opt = optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    sampler = dist.DistributedSampler(n, size, rank, seed=5, batch_size=13)  # 13 13 13 2
    ref_sampler = dist.DistributedSampler(n, 1, 0, seed=5, batch_size=13)
    steps = 0
    for epoch in range(2):
        sampler.set_epoch(epoch)
        ref_sampler.set_epoch(epoch)
        for idx, ref_idx in zip(sampler.batches(), ref_sampler.batches()):
            opt.zero_grad()
            loss = loss_fn(ddp(X[idx]), Y[idx])
            ddp.backward(loss_fn.backward())
            opt.step()
            global_loss = dist.all_reduce_mean(loss, len(idx), comm)

            ref_opt.zero_grad()
            ref_loss = ref_loss_fn(ref(X[ref_idx]), Y[ref_idx])
            ref.backward(ref_loss_fn.backward())
            ref_opt.step()

            close(f"step {steps} loss", global_loss, ref_loss)
            for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
                close(f"step {steps} parameter {name}", p.data, q.data)
            for (name, b), (_, c) in zip(model.named_buffers(), ref.named_buffers()):
                close(f"step {steps} buffer {name}", b, c)
            steps += 1
    assert steps == 8
    # the replicas are still identical, bit for bit
    flat = np.concatenate([p.data.ravel() for p in model.parameters()])
    every = dist.allgather(comm, flat)
    assert all(np.array_equal(every[0], every[r]) for r in range(size))
    # a gradient missing on some ranks counts as zeros there; missing on every rank, it stays None
    a, b = nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros(2))
    if rank == 0:
        a.grad = np.full(3, 2.0)
    dist.GradientReducer([a, b], comm).average()
    close("a gradient of rank 0 only, averaged", a.grad, np.full(3, 2.0 / size))
    assert b.grad is None
    print(f"rank {rank}: OK", flush=True)


if __name__ == "__main__":
    sys.exit(main())
