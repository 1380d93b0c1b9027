"""A module called several times before its backward (weight tying, shared blocks): each
forward saves one entry, each backward takes the newest, so the gradients are the sums over
the uses (checked against NumPy references and central differences); backward without a
pending forward; ``no_grad``; the bound on forwards that are never differentiated."""

import copy
import gc
import pickle
import tracemalloc

import numpy as np
import pytest
import reference as R
from helpers import GRADCHECK_TOL, offset_randn

import normreg
from normreg import distributed as dist
from normreg import nn
from normreg.distributed import parallel
from normreg.testing import check_gradients, gradcheck

F64 = np.float64


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---- the example, against references --------------------------------------------


def test_linear_used_twice_matches_the_reference_and_finite_differences():
    normreg.manual_seed(0)
    l = nn.Linear(3, 3, dtype=F64)
    s = nn.Sequential(l, nn.ReLU(), l)
    r = _rng(1)
    x = r.standard_normal((5, 3))
    dy = r.standard_normal((5, 3))
    W, b = l.weight.data, l.bias.data
    # the chain by the NumPy references: y1 = x W + b, h = relu(y1), y = h W + b
    y1 = R.linear(x, W, b)
    h = R.relu(y1)
    np.testing.assert_allclose(s(x), R.linear(h, W, b), rtol=1e-13)
    dh, dW2, db2 = R.linear_backward(dy, h, W)
    dx, dW1, db1 = R.linear_backward(R.relu_backward(dh, y1), x, W)
    np.testing.assert_allclose(s.backward(dy), dx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(l.weight.grad, dW1 + dW2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(l.bias.grad, db1 + db2, rtol=1e-12, atol=1e-14)
    assert l.pending_forwards == 0 and s.pending_forwards == 0
    # and through the shipped checker, with the upstream gradient of ones
    assert gradcheck(s, offset_randn(r, (4, 3), shift=0.5, scale=1.0), **GRADCHECK_TOL)
    y = s(x)
    assert gradcheck(s, x, dy=np.ones_like(y), **GRADCHECK_TOL)


def _tied_models():
    normreg.manual_seed(3)
    lin = nn.Linear(4, 4, dtype=F64)
    ln = nn.LayerNorm(4, dtype=F64)
    bn = nn.BatchNorm1d(4, dtype=F64)
    inner = nn.Linear(4, 4, dtype=F64)
    ln.weight.data[...] = 1 + 0.3 * _rng(4).standard_normal(4)
    bn.bias.data[...] = _rng(5).standard_normal(4)
    return {
        "Linear used 3 times": nn.Sequential(lin, nn.ReLU(), lin, nn.ReLU(), lin),
        "LayerNorm used twice": nn.Sequential(ln, nn.Linear(4, 4, dtype=F64), ln),
        "LayerNorm used 3 times": nn.Sequential(ln, lin, ln, nn.ReLU(), ln),
        "BatchNorm used twice (training)": nn.Sequential(bn, nn.Linear(4, 4, dtype=F64), bn),
        "BatchNorm used twice (evaluation)": nn.Sequential(bn, nn.Linear(4, 4, dtype=F64), bn).eval(),
        "Residual around a shared block": nn.Residual(nn.Sequential(inner, nn.ReLU(), inner)),
        "two Residuals of one module": nn.Sequential(nn.Residual(inner), nn.ReLU(), nn.Residual(inner)),
        "a whole block used twice": nn.Sequential(
            *(2 * [nn.Sequential(nn.Linear(4, 4, dtype=F64), nn.LayerNorm(4, dtype=F64), nn.ReLU())])
        ),
        "one Dropout used twice": nn.Sequential(*(2 * [nn.Dropout(0.3), lin])),
        "SyncBatchNorm used twice (one rank)": nn.Sequential(
            (sbn := dist.SyncBatchNorm(4, dtype=F64, comm=dist.LocalComm())), lin, sbn
        ),
        "SyncBatchNorm used twice (evaluation)": nn.Sequential(
            (sbn2 := dist.SyncBatchNorm(4, dtype=F64, comm=dist.LocalComm())), lin, sbn2
        ).eval(),
    }


@pytest.mark.parametrize("name", list(_tied_models()))
def test_shared_modules_pass_gradcheck(name):
    model = _tied_models()[name]
    x = offset_randn(_rng(6), (6, 4), shift=2.0, scale=2.0)
    report = check_gradients(model, x, **GRADCHECK_TOL)
    assert report.ok, str(report)
    assert all(m.pending_forwards == 0 for m in model.modules())


def test_one_dropout_used_twice_applies_each_call_its_own_mask():
    normreg.manual_seed(11)
    d = nn.Dropout(0.5)
    r = _rng(7)
    x1, x2 = 1 + r.random((6, 5)), 1 + r.random((6, 5))  # no zeros: y == 0 exactly where dropped
    y1, y2 = d(x1), d(x2)
    keep1, keep2 = y1 != 0, y2 != 0
    assert not np.array_equal(keep1, keep2)  # two calls, two masks
    dy1, dy2 = r.standard_normal(x1.shape), r.standard_normal(x2.shape)
    # last in, first out: the first backward belongs to the second forward
    np.testing.assert_allclose(d.backward(dy2), R.dropout_backward(dy2, keep2, 0.5), rtol=1e-15)
    np.testing.assert_allclose(d.backward(dy1), R.dropout_backward(dy1, keep1, 0.5), rtol=1e-15)


def test_distributed_data_parallel_over_a_tied_model_is_the_plain_model():
    normreg.manual_seed(2)
    lin = nn.Linear(4, 4, dtype=F64)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    ddp = dist.DistributedDataParallel(model, dist.LocalComm())
    r = _rng(8)
    x, dy = r.standard_normal((5, 4)), r.standard_normal((5, 4))
    ddp(x)
    ddp(2 * x)
    dx2 = ddp.backward(dy)
    g2 = lin.weight.grad.copy()
    model.zero_grad()
    dx1 = ddp.backward(dy)
    plain = nn.Sequential(lin, nn.ReLU(), lin)
    for inp, dx, g in ((x, dx1, lin.weight.grad), (2 * x, dx2, g2)):
        model.zero_grad()
        plain(inp)
        np.testing.assert_allclose(plain.backward(dy), dx, rtol=1e-14)
        np.testing.assert_allclose(lin.weight.grad, g, rtol=1e-14)


def test_distributed_data_parallel_under_no_grad_only_runs_the_module(monkeypatch):
    calls = []
    monkeypatch.setattr(parallel, "allreduce_sum_", lambda comm, buf: calls.append(buf) or buf)
    model = nn.Sequential(nn.Linear(4, 3, dtype=F64), nn.ReLU())
    ddp = dist.DistributedDataParallel(model, dist.LocalComm())
    x = _rng(17).standard_normal((5, 4))
    with normreg.no_grad():
        y = ddp(x)
    assert calls == [] and all(m.pending_forwards == 0 for m in ddp.modules())
    np.testing.assert_array_equal(y, model(x))
    ddp(x)  # with recording on, the batch sizes are counted over the ranks
    assert len(calls) == 1


# ---- pending forwards: order, errors, failures --------------------------------------------


def test_backwards_take_the_forwards_newest_first():
    l = nn.Linear(3, 2, dtype=F64)
    r = _rng(9)
    xs = [r.standard_normal((4, 3)) for _ in range(3)]
    dys = [r.standard_normal((4, 2)) for _ in range(3)]
    for x in xs:
        l(x)
    assert l.pending_forwards == 3
    for x, dy in reversed(list(zip(xs, dys))):
        l.zero_grad()
        np.testing.assert_allclose(l.backward(dy), R.linear_backward(dy, x, l.weight.data)[0], rtol=1e-14)
        np.testing.assert_allclose(l.weight.grad, R.linear_backward(dy, x, l.weight.data)[1], rtol=1e-14)
    with pytest.raises(RuntimeError, match=r"^Linear\.backward: no pending forward"):
        l.backward(dys[0])


def test_a_failed_forward_in_a_container_leaves_nothing_pending():
    lin, ln = nn.Linear(3, 4, dtype=F64), nn.LayerNorm(5, dtype=F64)
    s = nn.Sequential(lin, ln)
    with pytest.raises(ValueError):
        s(np.ones((2, 3)))  # the Linear ran, the LayerNorm rejected its input
    assert lin.pending_forwards == 0 and s.pending_forwards == 0
    # a good forward, a failed one, then the good one's backward: its own gradient
    good = nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 2, dtype=F64))
    x, dy = _rng(10).standard_normal((5, 3)), _rng(11).standard_normal((5, 2))
    good(x)
    with pytest.raises(ValueError):
        good(np.ones((5, 4)))
    dx = good.backward(dy)
    fresh = nn.Sequential(lin, nn.ReLU(), good[2])
    fresh(x)
    np.testing.assert_array_equal(fresh.backward(dy), dx)


class _NormThenLinear(nn.LayerNorm):
    """A LayerNorm subclass whose own forward calls a sub-module after saving (no longer a
    leaf: it must get Module's general call, not LayerNorm's call-is-forward)."""

    def __init__(self):
        super().__init__(4, dtype=F64)
        self.proj = nn.Linear(4, 2, dtype=F64)

    def forward(self, x):
        return self.proj(super().forward(x))


def test_a_subclass_with_its_own_forward_gets_the_general_call_back():
    assert nn.LayerNorm.__call__ is nn.LayerNorm.forward  # the leaf's call is its forward
    assert _NormThenLinear.__call__ is nn.Module.__call__
    m = _NormThenLinear()
    with pytest.raises(ValueError):
        m.proj.weight.data = np.ones((3, 2))  # a wrong weight: the sub-module's forward fails
        m(np.ones((5, 4)))
    assert m.pending_forwards == 0 and m.proj.pending_forwards == 0
    # a failed forward of the leaf itself leaves nothing either (it saves last)
    ln = nn.LayerNorm(4, dtype=F64)
    with pytest.raises(ValueError):
        ln(np.ones((5, 3)))
    assert ln.pending_forwards == 0


class _Failing(nn.Module):
    """Identity whose backward raises (a bug in a user's layer)."""

    def forward(self, x):
        self.save_for_backward()
        return x

    def backward(self, dy):
        self.saved()
        raise ArithmeticError("bug")


def test_a_backward_that_fails_half_way_leaves_no_half_taken_forward():
    lin1, lin2 = nn.Linear(3, 3, dtype=F64), nn.Linear(3, 3, dtype=F64)
    s = nn.Sequential(lin1, _Failing(), lin2)
    x = _rng(12).standard_normal((2, 3))
    s(x)
    s(x)  # an older forward stays pending below
    with pytest.raises(ArithmeticError):
        s.backward(np.ones((2, 3)))  # lin2 took its entry, then the failing layer raised
    # the half-taken forward is gone everywhere: the older forward is the next in line
    assert [m.pending_forwards for m in (s, lin1, s[1], lin2)] == [1, 1, 1, 1]


def test_a_backward_rejecting_its_argument_keeps_the_entry():
    s = nn.Sequential(nn.Linear(3, 3, dtype=F64), nn.ReLU())
    s(np.ones((2, 3)))
    with pytest.raises(ValueError):
        s.backward(np.ones((2, 4)))
    assert all(m.pending_forwards == 1 for m in s.modules())
    s.backward(np.ones((2, 3)))
    assert all(m.pending_forwards == 0 for m in s.modules())


def test_copies_and_pickles_leave_pending_forwards_behind():
    s = nn.Sequential(nn.Linear(3, 3, dtype=F64), nn.ReLU())
    s(np.ones((2, 3)))
    for twin in (copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert all(m.pending_forwards == 0 for m in twin.modules())
        np.testing.assert_array_equal(twin[0].weight.data, s[0].weight.data)
        twin(np.ones((2, 3)))
        twin.backward(np.ones((2, 3)))
    assert all(m.pending_forwards == 1 for m in s.modules())


def test_train_and_eval_mode_both_record():
    bn = nn.BatchNorm1d(3, dtype=F64)
    x = offset_randn(_rng(13), (4, 3))
    for mode in (True, False):
        bn.train(mode)
        bn(x)
        assert bn.pending_forwards == 1
        bn.backward(np.ones_like(x))


# ---- forwards never differentiated: no_grad and the bound --------------------------------


def _net():
    normreg.manual_seed(0)
    return nn.Sequential(
        nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.LayerNorm(16), nn.Linear(16, 4)
    )


def _traced_growth(fn, calls):
    """Growth of the bytes allocated (tracemalloc, NumPy's arrays included) from after
    ``calls`` calls of ``fn`` to after ``calls`` more, all traced (an object allocated
    before tracing starts would not count when freed)."""
    tracemalloc.start()
    try:
        for _ in range(calls):
            fn()
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(calls):
            fn()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def test_no_grad_records_nothing_and_memory_stays_flat():
    model = _net()
    x = _rng(14).standard_normal((32, 8)).astype(np.float32)
    loss_fn = nn.SoftmaxLoss()
    labels = np.arange(32) % 4

    def evaluate():
        with normreg.no_grad():
            loss_fn(model(x), labels)

    before = [(p.data.copy(), p.grad) for p in model.parameters()]
    assert _traced_growth(evaluate, 500) < 16 << 10  # 1000 forwards: (almost) nothing kept
    assert all(m.pending_forwards == 0 for m in model.modules()) and loss_fn.pending_forwards == 0
    assert all(np.array_equal(p.data, d) and p.grad is g for p, (d, g) in zip(model.parameters(), before))
    with pytest.raises(RuntimeError, match="no pending forward"):
        model.backward(np.ones((32, 4), np.float32))


def test_forwards_never_differentiated_are_bounded():
    model = _net()
    x = _rng(15).standard_normal((32, 8)).astype(np.float32)
    growth = _traced_growth(lambda: model(x), 500)  # at the bound after 16 calls
    assert growth < 16 << 10
    bound = nn.Module.max_pending_forwards
    assert bound == 16 and all(m.pending_forwards == bound for m in model.modules())
    # the newest forward is still differentiated correctly (stale ones lie below it)
    model.eval()
    model(x)
    dy = _rng(16).standard_normal((32, 4)).astype(np.float32)
    dx = model.backward(dy)
    ref = _net().eval()
    ref.load_state_dict(model.state_dict())
    ref(x)
    np.testing.assert_array_equal(ref.backward(dy), dx)
    model.clear_pending()
    assert all(m.pending_forwards == 0 for m in model.modules())


def test_a_backward_needing_a_dropped_forward_raises():
    l = nn.Linear(2, 2, dtype=F64)
    l.max_pending_forwards = 3  # an instance setting; the class attribute is the default
    for _ in range(5):
        l(np.ones((1, 2)))
    assert l.pending_forwards == 3
    for _ in range(3):
        l.backward(np.ones((1, 2)))
    with pytest.raises(RuntimeError, match=r"dropped.*max_pending_forwards.*no_grad"):
        l.backward(np.ones((1, 2)))
    assert nn.Linear(2, 2).max_pending_forwards == 16
    # lowering the setting with forwards pending keeps the newest ones
    r = _rng(18)
    m = nn.Linear(2, 2, dtype=F64)
    xs = [r.standard_normal((1, 2)) for _ in range(5)]
    for x in xs:
        m(x)
    m.max_pending_forwards = 2
    m(xs[0])  # the limit applies from the next forward on: the newest 2 are kept
    assert m.pending_forwards == 2
    dy = np.ones((1, 2))
    for x in (xs[0], xs[4]):
        m.zero_grad()
        m.backward(dy)
        np.testing.assert_allclose(m.weight.grad, R.linear_backward(dy, x, m.weight.data)[1], rtol=1e-14)
    with pytest.raises(RuntimeError, match="dropped"):
        m.backward(dy)


def test_the_bound_can_be_set_for_every_module():
    old = nn.Module.max_pending_forwards
    try:
        nn.Module.max_pending_forwards = 2
        r = nn.ReLU()
        for _ in range(4):
            r(np.ones(3))
        assert r.pending_forwards == 2
    finally:
        nn.Module.max_pending_forwards = old


def test_tied_weights_match_pytorch():
    torch = pytest.importorskip("torch")
    normreg.manual_seed(21)
    l, ln = nn.Linear(5, 5, dtype=F64), nn.LayerNorm(5, dtype=F64)
    model = nn.Sequential(l, ln, nn.ReLU(), l, ln)
    r = _rng(22)
    x, dy = r.standard_normal((6, 5)), r.standard_normal((6, 5))
    tl, tln = torch.nn.Linear(5, 5, dtype=torch.float64), torch.nn.LayerNorm(5, dtype=torch.float64)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(l.weight.data.T.copy()))  # torch stores (out, in)
        tl.bias.copy_(torch.from_numpy(l.bias.data))
    tmodel = torch.nn.Sequential(tl, tln, torch.nn.ReLU(), tl, tln)
    tx = torch.from_numpy(x).requires_grad_()
    ty = tmodel(tx)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(model(x), ty.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(model.backward(dy), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(l.weight.grad, tl.weight.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(l.bias.grad, tl.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ln.weight.grad, tln.weight.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "bad, error", [("16", TypeError), (2.5, TypeError), (True, TypeError), (0, ValueError), (-1, ValueError)]
)
def test_the_bound_must_be_a_positive_int(bad, error):
    """A bound of 0 or below would keep nothing (every backward failing as 'dropped'), 2.5
    was cut to 2 and "16" failed at the next forward: refused where it is set, naming it;
    set on the class, at the next module's forward or construction."""
    m = nn.ReLU()
    with pytest.raises(error, match="max_pending_forwards"):
        m.max_pending_forwards = bad
    assert m.max_pending_forwards == 16
    old = nn.Module.max_pending_forwards
    try:
        nn.Module.max_pending_forwards = bad
        with pytest.raises(error, match="max_pending_forwards"):
            m(np.ones(3))
    finally:
        nn.Module.max_pending_forwards = old
    m(np.ones(3))
    assert m.pending_forwards == 1


def test_convert_sync_batchnorm_reaches_every_holder():
    """A batch norm held in a ModuleDict, a ModuleList or a dict attribute is converted too
    (those in a ModuleDict and a dict were left as they were: each rank would have
    normalized with its own statistics)."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"a": nn.BatchNorm1d(3)})
            self.blocks = nn.ModuleList([nn.BatchNorm1d(3)])
            self.plain = {"b": nn.BatchNorm1d(3)}
            self.seq = nn.Sequential(nn.BatchNorm1d(3))

    net = dist.convert_sync_batchnorm(Net(), dist.LocalComm())
    kinds = {name: type(m).__name__ for name, m in net.named_modules() if name.count(".") == 1}
    assert kinds == {n: "SyncBatchNorm" for n in ("heads.a", "blocks.0", "plain.b", "seq.0")}
