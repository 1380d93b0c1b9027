"""Run with `mpiexec -n R python check_sync_batchnorm.py`: on a global batch split across
the ranks (unevenly, and with an empty share), a model with SyncBatchNorm gives the
outputs, input gradients, parameter gradients and running statistics that the same model
with BatchNorm1d gives on the whole batch in one process (float64, to 1e-10)."""

import copy
import sys

import numpy as np

import normreg
from normreg import distributed as dist
from normreg import nn

TOL = 1e-10


def close(name, got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert err <= TOL * max(1.0, float(np.max(np.abs(want), initial=0.0))), f"{name}: max error {err}"


def run_case(comm, model, x, dys, label):
    """Two training steps (forward, backward) then an evaluation forward, on the whole batch
    in one process (reference) and split across the ranks (SyncBatchNorm)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    ref = model
    syn = dist.convert_sync_batchnorm(copy.deepcopy(model), comm)
    assert any(isinstance(m, dist.SyncBatchNorm) for m in syn.modules())
    start, stop = dist.shard_bounds(x.shape[0], size, rank)
    reducer = dist.GradientReducer(syn.parameters(), comm, bucket_cap_mb=1e-4)
    for step, dy in enumerate(dys):
        ref.zero_grad()
        syn.zero_grad()
        y_ref = ref(x)
        y_syn = syn(x[start:stop])
        close(f"{label} step {step} y", y_syn, y_ref[start:stop])
        # dy is the gradient of a loss over the global batch: each rank passes its rows
        dx_ref = ref.backward(dy)
        dx_syn = syn.backward(dy[start:stop])
        close(f"{label} step {step} dx", dx_syn, dx_ref[start:stop])
        reducer.allreduce()  # each rank holds its contribution: add them up
        for (name, p_ref), (_, p_syn) in zip(ref.named_parameters(), syn.named_parameters()):
            close(f"{label} step {step} grad {name}", p_syn.grad, p_ref.grad)
        for (name, b_ref), (_, b_syn) in zip(ref.named_buffers(), syn.named_buffers()):
            close(f"{label} step {step} buffer {name}", b_syn, b_ref)
    ref.eval()
    syn.eval()
    close(f"{label} eval y", syn(x[start:stop]), ref(x)[start:stop])


def main():
    comm = dist.init()
    rank = comm.Get_rank()
    f64 = np.float64
    rng = np.random.default_rng(1234)  # same data on every rank

    normreg.manual_seed(7)
    mlp = nn.Sequential(
        nn.Linear(10, 16, dtype=f64),
        nn.BatchNorm1d(16, dtype=f64),
        nn.ReLU(),
        nn.Linear(16, 8, dtype=f64),
        nn.BatchNorm1d(8, momentum=None, dtype=f64),
        nn.Linear(8, 5, dtype=f64),
    )
    for m in mlp.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.weight.data[...] = 1 + 0.5 * rng.standard_normal(m.num_features)
            m.bias.data[...] = rng.standard_normal(m.num_features)
    for n in (13, 12):  # uneven and even shares
        x = 5 * rng.standard_normal((n, 10)) + 12
        dys = [rng.standard_normal((n, 5)) for _ in range(2)]
        run_case(comm, copy.deepcopy(mlp), x, dys, f"mlp N={n}")

    # (N, C, L) input, a batch of 1 row: with 2 ranks one share is empty
    for n, affine in ((7, True), (1, False)):
        bn = nn.BatchNorm1d(4, affine=affine, dtype=f64)
        if affine:
            bn.weight.data[...] = rng.standard_normal(4)
        x = 3 * rng.standard_normal((n, 4, 5)) - 8
        dys = [rng.standard_normal((n, 4, 5)) for _ in range(2)]
        run_case(comm, nn.Sequential(bn), x, dys, f"bn3d N={n}")

    # (N, C, H, W) input: BatchNorm2d; and a course convention (cs231n: momentum style,
    # biased running variance, initial running variance 0)
    bn2d = nn.BatchNorm2d(3, dtype=f64)
    bn2d.bias.data[...] = rng.standard_normal(3)
    x = 2 * rng.standard_normal((5, 3, 2, 3)) + 4
    run_case(comm, nn.Sequential(bn2d), x, [rng.standard_normal(x.shape) for _ in range(2)], "bn2d")
    bn_c = nn.BatchNorm1d(6, convention="cs231n", dtype=f64)
    x = 5 * rng.standard_normal((10, 6)) + 12
    run_case(comm, nn.Sequential(bn_c), x, [rng.standard_normal(x.shape) for _ in range(3)], "cs231n")

    # without running statistics: batch statistics in evaluation too
    bn = nn.BatchNorm1d(3, track_running_stats=False, dtype=f64)
    x = rng.standard_normal((9, 3)) * 2 + 1
    run_case(comm, nn.Sequential(bn), x, [rng.standard_normal((9, 3))], "no running stats")

    # float32 runs the same code: agreement to float32 rounding
    bn32 = nn.BatchNorm1d(6)
    x32 = (5 * rng.standard_normal((11, 6)) + 12).astype(np.float32)
    syn32 = dist.convert_sync_batchnorm(copy.deepcopy(bn32), comm)
    s, e = dist.shard_bounds(11, comm.Get_size(), rank)
    y_ref, y_syn = bn32(x32), syn32(x32[s:e])
    assert y_syn.dtype == np.float32
    assert np.max(np.abs(y_syn - y_ref[s:e]), initial=0) < 1e-5
    print(f"rank {rank}: OK", flush=True)


if __name__ == "__main__":
    sys.exit(main())
