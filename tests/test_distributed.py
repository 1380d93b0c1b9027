"""normreg.distributed in one process: the synchronized batch norm kernels against NumPy,
Chan's merge, SyncBatchNorm on a one-rank communicator against a NumPy batch norm and
finite differences, convert_sync_batchnorm, the sampler and the gradient buckets.
(The 2-rank runs are in test_distributed_mpi.py.)"""

import sys

import numpy as np
import pytest
import reference as R
from helpers import norm_mlp64, set_grad
from helpers import offset_randn as offset_input

import normreg
from normreg import _C, nn
from normreg import distributed as dist
from normreg.testing import gradcheck

pytestmark = pytest.mark.sanitize  # quick: also run under ASan/UBSan (scripts/sanitize.sh)

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-5, np.float64: 1e-12}


# ---- kernels ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(37, 5, 1), (6, 3, 17), (0, 4, 3), (1, 2, 1)])
def test_stats_kernel_matches_numpy(dtype, shape):
    rng = np.random.default_rng(0)
    x = offset_input(rng, shape, dtype)
    stats = _C.sync_batch_norm_stats(x)
    assert stats.dtype == np.float64 and stats.shape == (2, shape[1])
    if shape[0] == 0:
        assert np.all(stats == 0)
        return
    mean, m2 = R.batch_norm_stats(x)
    np.testing.assert_allclose(stats[0], mean, rtol=1e-13)
    np.testing.assert_allclose(stats[1], m2, rtol=1e-10, atol=1e-10)


def test_stats_kernel_is_accurate_for_a_large_offset():
    # values 1e9 + small spread: the naive sum-of-squares formula loses every digit
    rng = np.random.default_rng(1)
    x = (1e9 + rng.standard_normal((1000, 3, 1))).astype(np.float64)
    mean, m2 = R.batch_norm_stats(x)
    stats = _C.sync_batch_norm_stats(x)
    np.testing.assert_allclose(stats[1], m2, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(29, 6, 1), (5, 3, 11), (0, 3, 2)])
def test_grad_sums_and_backward_kernels_match_numpy(dtype, shape):
    rng = np.random.default_rng(2)
    x = offset_input(rng, shape, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    C = shape[1]
    mean = 12 + rng.standard_normal(C)  # the global mean: float64 for either dtype
    rstd = (0.2 + rng.random(C)).astype(dtype)
    w = rng.standard_normal(C).astype(dtype)
    sums = _C.sync_batch_norm_grad_sums(dy, x, mean, rstd)
    xhat = (x.astype(np.float64) - mean[None, :, None]) * rstd[None, :, None]
    np.testing.assert_allclose(sums[0], dy.astype(np.float64).sum(axis=(0, 2)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums[1], (dy * xhat).sum(axis=(0, 2)), rtol=1e-10, atol=1e-10)
    # the backward with sums and a count from elsewhere (other ranks)
    global_sums = rng.standard_normal((2, C))
    count = 3.0 * max(shape[0] * shape[2], 1)
    for weight in (w, None):
        dx = _C.sync_batch_norm_backward(dy, x, mean, rstd, weight, global_sums, count, None)
        assert dx.dtype == dtype and dx.shape == shape
        want = R.sync_batch_norm_backward(dy, x, mean, rstd, weight, global_sums, count)
        np.testing.assert_allclose(dx, want, rtol=TOL[dtype], atol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(19, 7, 1), (4, 3, 9), (0, 2, 3)])
def test_forward_kernel_matches_numpy(dtype, shape):
    rng = np.random.default_rng(10)
    x = offset_input(rng, shape, dtype)
    C = shape[1]
    mean = 12 + rng.standard_normal(C)  # the global mean: float64 for either dtype
    rstd = (0.2 + rng.random(C)).astype(dtype)
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    for weight, bias in ((w, b), (None, None), (w, None)):
        y = _C.sync_batch_norm_forward(x, mean, rstd, weight, bias, None)
        # the batch-norm formula with given statistics: evaluation's, with var = 1/rstd^2 - eps
        want = R.batch_norm_eval(x, mean, 1 / R.f64(rstd) ** 2, weight, bias, eps=0.0)
        assert y.dtype == dtype and y.shape == shape
        np.testing.assert_allclose(y, want, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)


def test_kernels_reject_bad_arguments():
    x = np.ones((4, 3, 1))
    mean, rstd = np.zeros(3), np.ones(3)
    with pytest.raises(TypeError, match="x"):
        _C.sync_batch_norm_stats(np.ones((4, 3, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="x"):
        _C.sync_batch_norm_stats(np.ones((4, 3)))
    with pytest.raises(ValueError, match="dy"):
        _C.sync_batch_norm_grad_sums(np.ones((4, 2, 1)), x, mean, rstd)
    with pytest.raises(ValueError, match="rstd"):
        _C.sync_batch_norm_grad_sums(x, x, mean, np.ones(4))
    with pytest.raises(TypeError, match="mean"):
        _C.sync_batch_norm_grad_sums(x, x, mean.astype(np.float32), rstd)
    with pytest.raises(ValueError, match="sums"):
        _C.sync_batch_norm_backward(x, x, mean, rstd, None, np.zeros((2, 4)), 4.0, None)
    with pytest.raises(TypeError, match="sums"):
        _C.sync_batch_norm_backward(x, x, mean, rstd, None, np.zeros((2, 3), np.float32), 4.0, None)
    with pytest.raises(ValueError, match="count"):
        _C.sync_batch_norm_backward(x, x, mean, rstd, None, np.zeros((2, 3)), 0.0, None)
    with pytest.raises(ValueError, match="weight"):
        _C.sync_batch_norm_forward(x, mean, rstd, np.ones(2), None, None)
    with pytest.raises(ValueError, match="out"):
        _C.sync_batch_norm_forward(x, mean, rstd, None, None, np.empty((4, 3, 2)))
    with pytest.raises(TypeError):
        _C.sync_batch_norm_stats()


# ---- Chan's merge -----------------------------------------------------------------------


@pytest.mark.parametrize("cuts", [[5], [0, 3, 3, 20], [1, 2, 39], [17]])
def test_merge_moments_of_parts_equals_the_whole(cuts):
    rng = np.random.default_rng(3)
    x = 1e6 + rng.standard_normal((40, 4))  # a large offset: the merge must not cancel
    parts = np.split(x, cuts)
    counts = np.array([len(p) for p in parts], dtype=float)
    means = np.array([p.mean(axis=0) if len(p) else np.zeros(4) for p in parts])
    m2s = np.array([np.square(p - p.mean(axis=0)).sum(axis=0) if len(p) else np.zeros(4) for p in parts])
    n, mean, m2 = dist.merge_moments(counts, means, m2s)
    assert n == 40
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(m2 / n, x.var(axis=0), rtol=1e-9)


def test_merge_moments_of_nothing():
    n, mean, m2 = dist.merge_moments(np.zeros(2), np.zeros((2, 3)), np.zeros((2, 3)))
    assert n == 0 and mean.shape == (3,) and np.all(m2 == 0)


# ---- SyncBatchNorm on one rank ----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(16, 5), (7, 3, 4)])
def test_sync_batchnorm_one_rank_matches_numpy(dtype, shape):
    rng = np.random.default_rng(4)
    C = shape[1]
    bn = dist.SyncBatchNorm(C, momentum=0.3, dtype=dtype, comm=dist.LocalComm())
    bn.weight.data[...] = rng.standard_normal(C)
    bn.bias.data[...] = rng.standard_normal(C)
    x = offset_input(rng, shape, dtype)
    y = bn(x)
    want, rm, rv, mean, rstd = R.batch_norm_train(
        x, bn.weight.data, bn.bias.data, np.zeros(C), np.ones(C), momentum=0.3, eps=bn.eps
    )
    np.testing.assert_allclose(y, want, rtol=TOL[dtype], atol=TOL[dtype] * 10)
    np.testing.assert_allclose(bn.running_mean, rm, rtol=TOL[dtype])
    np.testing.assert_allclose(bn.running_var, rv, rtol=TOL[dtype])
    assert int(bn.num_batches_tracked) == 1
    # backward: the usual batch-norm gradient, every sum over the (one-rank) batch
    dy = rng.standard_normal(shape).astype(dtype)
    dx = bn.backward(dy)
    want_dx, want_dw, want_db = R.batch_norm_train_backward(dy, x, bn.weight.data, eps=bn.eps)
    np.testing.assert_allclose(dx, want_dx, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
    np.testing.assert_allclose(bn.weight.grad, want_dw, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
    np.testing.assert_allclose(bn.bias.grad, want_db, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)


def test_sync_batchnorm_gradients_match_finite_differences():
    rng = np.random.default_rng(5)
    bn = dist.SyncBatchNorm(3, dtype=np.float64, comm=dist.LocalComm())
    bn.weight.data[...] = rng.standard_normal(3)
    bn.bias.data[...] = rng.standard_normal(3)
    x = offset_input(rng, (6, 3, 2))
    g = rng.standard_normal(x.shape)  # a random upstream gradient, not sum(y)
    assert gradcheck(bn, x, dy=g, eps=1e-5, rtol=1e-6, atol=1e-8)


def test_sync_batchnorm_evaluation_and_errors():
    rng = np.random.default_rng(6)
    bn = dist.SyncBatchNorm(4, dtype=np.float64, comm=dist.LocalComm())
    bn.running_mean[...] = rng.standard_normal(4)
    bn.running_var[...] = 1 + rng.random(4)
    bn.eval()
    x = offset_input(rng, (5, 4))
    want = (x - bn.running_mean) / np.sqrt(bn.running_var + bn.eps)
    np.testing.assert_allclose(bn(x), want, rtol=1e-12)
    bn.train()
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(x[:1])
    with pytest.raises(ValueError, match="C = 4"):
        bn(x[:, :3])
    with pytest.raises(TypeError, match="dtype"):
        bn(x.astype(np.float32))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(convention="needle"),
        dict(convention="cs231n"),
        dict(momentum=None),
        dict(running_var_estimator="biased", momentum=0.3),
    ],
)
def test_sync_batchnorm_one_rank_follows_batchnorm_conventions(kwargs):
    rng = np.random.default_rng(11)
    ref = nn.BatchNorm1d(5, dtype=np.float64, **kwargs)
    syn = dist.SyncBatchNorm(5, dtype=np.float64, comm=dist.LocalComm(), **kwargs)
    for _ in range(3):
        x = offset_input(rng, (9, 5))
        np.testing.assert_allclose(syn(x), ref(x), rtol=1e-12, atol=1e-12)
        dy = rng.standard_normal(x.shape)
        np.testing.assert_allclose(syn.backward(dy), ref.backward(dy), rtol=1e-10, atol=1e-12)
    for name, b in ref.named_buffers():
        np.testing.assert_allclose(dict(syn.named_buffers())[name], b, rtol=1e-12)
    np.testing.assert_allclose(syn.weight.grad, ref.weight.grad, rtol=1e-10, atol=1e-12)


def test_sync_batchnorm_policies():
    rng = np.random.default_rng(12)
    frozen = dist.SyncBatchNorm(3, dtype=np.float64, freeze_stats=True, comm=dist.LocalComm())
    frozen.running_mean[...] = 1.0
    x = offset_input(rng, (6, 3))
    np.testing.assert_allclose(frozen(x), (x - 1.0) / np.sqrt(1 + frozen.eps), rtol=1e-12)
    assert int(frozen.num_batches_tracked) == 0
    # a channel with a non-finite value keeps its running estimates, with a warning
    bn = dist.SyncBatchNorm(3, dtype=np.float64, comm=dist.LocalComm())
    x[2, 1] = np.inf
    with pytest.warns(RuntimeWarning, match="1 channel"):
        bn(x)
    assert bn.running_mean[1] == 0 and bn.running_var[1] == 1 and bn.running_mean[0] != 0
    # an empty batch: empty output, nothing learned
    empty = dist.SyncBatchNorm(3, dtype=np.float64, comm=dist.LocalComm())
    assert empty(np.zeros((0, 3))).shape == (0, 3)
    assert empty.backward(np.zeros((0, 3))).shape == (0, 3)
    assert int(empty.num_batches_tracked) == 0


def test_sync_batchnorm_on_4d_input_is_batchnorm2d():
    rng = np.random.default_rng(13)
    ref = nn.BatchNorm2d(3, dtype=np.float64)
    ref.weight.data[...] = rng.standard_normal(3)
    syn = dist.convert_sync_batchnorm(nn.Sequential(ref), dist.LocalComm())[0]
    assert isinstance(syn, dist.SyncBatchNorm) and syn.weight is ref.weight
    x = offset_input(rng, (4, 3, 5, 2))
    state = {k: v.copy() for k, v in ref.state_dict().items()}
    y_ref = ref(x)
    dy = rng.standard_normal(x.shape)
    dx_ref = ref.backward(dy)
    g_ref = ref.weight.grad.copy()
    ref.zero_grad()
    ref.load_state_dict(state)  # syn shares the running estimates: start again
    np.testing.assert_allclose(syn(x), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(syn.backward(dy), dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(syn.weight.grad, g_ref, rtol=1e-10, atol=1e-12)


def test_convert_sync_batchnorm_replaces_every_batchnorm_and_shares_state():
    comm = dist.LocalComm()
    inner = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU())
    model = nn.Sequential(
        nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=None), nn.Residual(inner), nn.LayerNorm(4)
    )
    params = model.parameters()
    bn = model[1]
    bn.running_mean[...] = 3.0
    converted = dist.convert_sync_batchnorm(model, comm)
    assert converted is model
    syncs = [m for m in model.modules() if isinstance(m, dist.SyncBatchNorm)]
    assert len(syncs) == 2 and all(s.comm is comm for s in syncs)
    assert not any(type(m) is nn.BatchNorm1d for m in model.modules())
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert model[1].momentum is None and model[1].running_mean is bn.running_mean
    assert list(model.state_dict()) == [k for k in model.state_dict()]
    single = dist.convert_sync_batchnorm(nn.BatchNorm1d(2))
    assert isinstance(single, dist.SyncBatchNorm)
    with pytest.raises(TypeError):
        dist.convert_sync_batchnorm(object())


# ---- sampler ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, replicas, batch", [(41, 2, 13), (10, 3, 4), (7, 4, 2), (12, 2, None), (5, 3, None)]
)
def test_sampler_shards_are_disjoint_and_cover_the_epoch(n, replicas, batch):
    samplers = [dist.DistributedSampler(n, replicas, r, seed=3, batch_size=batch) for r in range(replicas)]
    for epoch in range(2):
        for s in samplers:
            s.set_epoch(epoch)
        shards = [s.indices() for s in samplers]
        allidx = np.concatenate(shards)
        assert sorted(allidx.tolist()) == list(range(n))
        assert sum(len(s) for s in samplers) == n
        assert max(map(len, shards)) - min(map(len, shards)) <= (samplers[0].num_batches() if batch else 1)
    if batch:
        per_rank = [list(s.batches()) for s in samplers]
        assert len({len(b) for b in per_rank}) == 1  # same number of steps on every rank
        perm = samplers[0].permutation()
        for i, parts in enumerate(zip(*per_rank)):
            # the ranks' shares are the global batch, in order, split as np.array_split
            np.testing.assert_array_equal(np.concatenate(parts), perm[i * batch : (i + 1) * batch])
            shares = np.array_split(np.arange(len(np.concatenate(parts))), replicas)
            assert [len(p) for p in parts] == [len(a) for a in shares]


def test_sampler_is_reproducible_and_reshuffles_each_epoch():
    a = dist.DistributedSampler(100, 2, 0, seed=7)
    b = dist.DistributedSampler(100, 2, 0, seed=7)
    np.testing.assert_array_equal(a.indices(), b.indices())
    first = a.indices()
    a.set_epoch(1)
    assert not np.array_equal(first, a.indices())
    assert not np.array_equal(first, dist.DistributedSampler(100, 2, 0, seed=8).indices())
    plain = dist.DistributedSampler(10, 2, 1, shuffle=False)
    assert list(plain) == [1, 3, 5, 7, 9]


def test_sampler_drop_last_and_errors():
    s = dist.DistributedSampler(41, 2, 1, seed=0, batch_size=13, drop_last=True)
    assert s.num_batches() == 3 and len(s) == 3 * 6
    assert len(dist.DistributedSampler(11, 2, 0, drop_last=True)) == 5
    assert dist.shard_bounds(13, 2, 0) == (0, 7) and dist.shard_bounds(13, 2, 1) == (7, 13)
    assert dist.shard_bounds(1, 2, 1) == (1, 1)
    with pytest.raises(ValueError, match="rank"):
        dist.DistributedSampler(10, 2, 2)
    with pytest.raises(ValueError, match="num_replicas"):
        dist.DistributedSampler(10, 0, 0)
    with pytest.raises(ValueError, match="batch_size"):
        dist.DistributedSampler(10, 1, 0, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        dist.DistributedSampler(10, 1, 0).num_batches()


# ---- buckets, data parallel on one rank ---------------------------------------------------


def test_gradient_reducer_buckets_small_parameters_together():
    model = nn.Sequential(
        nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2), nn.Linear(2, 2, dtype=np.float64)
    )
    reducer = dist.GradientReducer(model.parameters(), dist.LocalComm(), bucket_cap_mb=1.0)
    assert reducer.num_messages == 2  # one per dtype
    tiny = dist.GradientReducer(model.parameters(), dist.LocalComm(), bucket_cap_mb=40 / 2**20)
    assert tiny.num_messages > 2
    rng = np.random.default_rng(8)
    for p in model.parameters():
        set_grad(p, rng.standard_normal(p.shape))
    before = [p.grad.copy() for p in model.parameters()]
    for r in (reducer, tiny):
        r.allreduce(scale=2.0)
    for p, g in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.grad, 4 * g)
    with pytest.raises(TypeError):
        dist.GradientReducer([np.zeros(3)], dist.LocalComm())


def test_data_parallel_on_one_rank_is_the_plain_model():
    rng = np.random.default_rng(9)
    normreg.manual_seed(0)
    model = norm_mlp64(nn.BatchNorm1d, 5, 8, 3)
    import copy

    ref = copy.deepcopy(model)
    ddp = dist.DistributedDataParallel(dist.convert_sync_batchnorm(model, dist.LocalComm()), dist.LocalComm())
    x, y = offset_input(rng, (10, 5)), rng.integers(0, 3, 10)
    loss_fn = nn.SoftmaxLoss()
    loss = loss_fn(ddp(x), y)
    dx = ddp.backward(loss_fn.backward())
    ref_loss = loss_fn(ref(x), y)
    ref_dx = ref.backward(loss_fn.backward())
    assert abs(loss - ref_loss) < 1e-12
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-14)
    for p, q in zip(ddp.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-10, atol=1e-14)
    assert list(ddp.state_dict()) == list(ref.state_dict())
    assert dist.all_reduce_mean(2.5, 4, dist.LocalComm()) == 2.5
    np.testing.assert_array_equal(dist.all_reduce_mean([1.0, 3.0], 2, dist.LocalComm()), [1.0, 3.0])
    assert np.isnan(dist.all_reduce_mean(float("nan"), 0, dist.LocalComm()))


def test_distributed_data_loader_yields_the_shares_and_reshuffles():
    x = np.arange(50, dtype=np.float32).reshape(25, 2)
    y = np.arange(25)
    loaders = [
        dist.DistributedDataLoader(x, y, batch_size=8, seed=1, num_replicas=2, rank=r) for r in range(2)
    ]
    assert [len(ld) for ld in loaders] == [4, 4]
    epochs = []
    for _ in range(2):
        seen = []
        for (x0, y0), (_x1, y1) in zip(*loaders):
            np.testing.assert_array_equal(x0[:, 0], 2 * y0)
            assert len(y0) - len(y1) in (0, 1)
            seen += y0.tolist() + y1.tolist()
        assert sorted(seen) == list(range(25))
        epochs.append(seen)
    assert epochs[0] != epochs[1]
    dropped = dist.DistributedDataLoader(x, y, batch_size=8, drop_last=True, num_replicas=2, rank=1)
    assert len(dropped) == 3 and sum(len(b[1]) for b in dropped) == 12
    with pytest.raises(ValueError, match="DistributedDataLoader: x and y must have the same number"):
        dist.DistributedDataLoader(x, y[:3], batch_size=2, num_replicas=1, rank=0)
    with pytest.raises(ValueError, match="DistributedDataLoader: x must have at least one dimension"):
        dist.DistributedDataLoader(np.float32(1.0), batch_size=2, num_replicas=1, rank=0)


def test_distributed_data_loader_with_a_generator_splits_the_single_process_batches():
    x = np.arange(23, dtype=np.float64)[:, None]
    y = np.arange(23)
    # the single-process order: DataLoader(..., seed=s) draws each epoch's permutation from Generator(s)
    gen = normreg.Generator(5)
    perms = [gen.numpy().permutation(23) for _ in range(2)]
    single = [[perm[i : i + 6] for i in range(0, 23, 6)] for perm in perms]
    loaders = [
        dist.DistributedDataLoader(x, y, batch_size=6, num_replicas=2, rank=r, generator=normreg.Generator(5))
        for r in range(2)
    ]
    for epoch in range(2):
        for want, ((_, y0), (_, y1)) in zip(single[epoch], zip(*loaders)):
            np.testing.assert_array_equal(np.concatenate([y0, y1]), want)
    with pytest.raises(ValueError, match="permutation"):
        next(dist.DistributedSampler(5, 1, 0, batch_size=2).batches(np.arange(4)))


def test_set_timeout_checks_its_argument():
    assert dist.get_timeout() is None
    try:
        dist.set_timeout(5)
        assert dist.get_timeout() == 5.0
        with pytest.raises(ValueError, match="timeout"):
            dist.set_timeout(0)
    finally:
        dist.set_timeout(None)
    assert dist.get_timeout() is None


def test_train_with_a_one_rank_communicator_follows_the_plain_run():
    pytest.importorskip("tqdm")
    from normreg.train import TrainConfig, train

    rng = np.random.default_rng(14)
    centers = rng.standard_normal((4, 20)) * 2
    y = rng.integers(0, 4, 300)
    x = (centers[y] + rng.standard_normal((300, 20))).astype(np.float32)
    data = (x[:240], y[:240], x[240:], y[240:])
    config = TrainConfig(width=[32, 16], dropout=0.0, epochs=2, batch_size=50, seed=3)
    plain = train(config, data, log=None, progress=False)
    one = train(config, data, log=None, progress=False, comm=dist.LocalComm())
    assert any(isinstance(m, dist.SyncBatchNorm) for m in one["model"].modules())
    for a, b in zip(plain["history"], one["history"]):
        for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
            assert abs(a[key] - b[key]) < 1e-4, (key, a, b)


def test_init_refuses_what_is_not_a_communicator(monkeypatch):
    hook = sys.excepthook
    monkeypatch.setattr(dist.comm, "install_abort_handler", lambda comm: pytest.fail("installed"))

    class Partial:  # a LocalComm-like object lacking two of the methods normreg uses
        def Get_rank(self):
            return 0

        def Get_size(self):
            return 1

        Allreduce = Allgather = Bcast = Get_rank

    for bad, what in [
        ("x", "str without Get_rank, Get_size, Allreduce, Allgather, Bcast, Barrier, Abort"),
        (1, "int without Get_rank"),
        (Partial(), "Partial without Barrier, Abort$"),
    ]:
        with pytest.raises(
            TypeError, match=r"^init: comm must be an mpi4py communicator or a LocalComm .*" + what
        ):
            dist.init(comm=bad, timeout=5)
    assert sys.excepthook is hook and dist.get_timeout() is None  # nothing set before the check


def test_init_accepts_a_local_comm_and_an_object_with_its_methods():
    class Ducked:  # not a LocalComm, but with each method normreg uses
        def __getattr__(self, name):
            return getattr(dist.LocalComm(), name)

    for comm in (dist.LocalComm(), Ducked()):
        assert dist.init(comm=comm, abort_on_error=False) is comm
        assert dist.get_world_size(comm) == 1
