"""Throughput of data-parallel training steps (forward, backward, gradient all-reduce, SGD
update) of the default MLP (784-1024-512-256-10, BatchNorm, ReLU) on random data.

    python benchmarks/bench_distributed.py                       # one process
    OMP_NUM_THREADS=1 mpiexec -n 2 python benchmarks/bench_distributed.py

Rank 0 prints samples per second (global batch / step time) and the time spent in
communication. Options: --batch-size (global), --steps, --sync-bn / --no-sync-bn.
"""

import argparse
import time

import numpy as np

import normreg
from normreg import distributed as dist
from normreg import nn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-sync-bn", dest="sync_bn", action="store_false")
    args = p.parse_args()
    comm = dist.init()
    rank, size = comm.Get_rank(), comm.Get_size()
    normreg.manual_seed(0)
    widths = [784, 1024, 512, 256]
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(256, 10))
    if args.sync_bn:
        model = dist.convert_sync_batchnorm(model, comm)
    ddp = dist.DistributedDataParallel(model, comm)
    loss_fn = nn.SoftmaxLoss()
    rng = np.random.default_rng(rank)
    start, stop = dist.shard_bounds(args.batch_size, size, rank)
    x = rng.standard_normal((stop - start, 784)).astype(np.float32)
    y = rng.integers(0, 10, stop - start)
    params = model.parameters()
    comm_time = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            comm.Barrier()
            t0 = time.perf_counter()
            comm_time = 0.0
        model.zero_grad()
        loss_fn(ddp(x), y)
        with ddp.no_sync():
            ddp.backward(loss_fn.backward())
        tc = time.perf_counter()
        ddp.allreduce_gradients()
        comm_time += time.perf_counter() - tc
        for q in params:
            q.data -= np.float32(0.01) * q.grad
    comm.Barrier()
    seconds = time.perf_counter() - t0
    if rank == 0:
        print(
            f"ranks {size}  threads/rank {normreg.get_num_threads()}  global batch {args.batch_size}  "
            f"sync_bn {args.sync_bn}: {args.steps * args.batch_size / seconds:,.0f} samples/s, "
            f"{1e3 * seconds / args.steps:.2f} ms/step, gradient all-reduce "
            f"{1e3 * comm_time / args.steps:.2f} ms/step in {ddp.reducer.num_messages} message(s)"
        )


if __name__ == "__main__":
    main()
