"""Module's methods on members by name (``recurse``, ``register_parameter``, ``add_module``,
``get_submodule``/``get_parameter``/``get_buffer``) and ``to``/``float``/``double``, against
names, objects and errors written here, a NumPy forward and its central differences, and
(when installed) PyTorch's names and errors for an equivalent model."""

import collections.abc

import numpy as np
import pytest

import normreg
from normreg import distributed as dist
from normreg import nn, optim

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


class Block(nn.Module):
    """A parameter and a buffer of its own, and two children."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(3, np.float32))
        self.lin = nn.Linear(2, 3)
        self.norm = nn.BatchNorm1d(3)
        self.register_buffer("count", np.zeros(1, np.float32))


class Net(nn.Module):
    """Children in every kind of place: an attribute, a Sequential, a ModuleDict, a
    ModuleList, and a plain list."""

    def __init__(self):
        super().__init__()
        self.block = Block()
        self.layers = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
        self.heads = nn.ModuleDict({"cls": nn.Linear(4, 2)})
        self.stack = nn.ModuleList([nn.LayerNorm(4)])
        self.extra = [nn.Linear(1, 1)]


# ---- parameters and buffers, recurse -----------------------------------------------------


def test_named_members_and_recurse():
    b = Block()
    names = ["scale", "lin.weight", "lin.bias", "norm.weight", "norm.bias"]
    assert [n for n, _ in b.named_parameters()] == names
    assert [n for n, _ in b.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in b.named_parameters("pre", recurse=False)] == ["pre.scale"]
    names = ["count", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked"]
    assert [n for n, _ in b.named_buffers()] == names
    assert [n for n, _ in b.named_buffers(recurse=False)] == ["count"]
    assert b.parameters(recurse=False) == [b.scale] and isinstance(b.parameters(), list)
    assert len(b.parameters()) == 5
    it = b.buffers()
    assert isinstance(it, collections.abc.Iterator)
    expected = [b.count, b.norm.running_mean, b.norm.running_var, b.norm.num_batches_tracked]
    assert [id(a) for a in it] == [id(a) for a in expected]
    assert [id(a) for a in b.buffers(recurse=False)] == [id(b.count)]
    assert list(nn.BatchNorm1d(2, track_running_stats=False).buffers()) == []  # None buffers left out
    with pytest.raises(TypeError, match="recurse"):
        list(b.named_buffers(recurse="no"))


def test_remove_duplicate_false_lists_every_name():
    lin = nn.Linear(2, 2)
    s = nn.Sequential(lin, nn.ReLU(), lin)
    assert [n for n, _ in s.named_parameters()] == ["0.weight", "0.bias"]
    every = ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in s.named_parameters(remove_duplicate=False)] == every
    shared = np.zeros(2)
    a, b = nn.Module(), nn.Module()
    a.register_buffer("rb", shared)
    b.register_buffer("rb", shared)
    pair = nn.Sequential(a, b)
    assert [n for n, _ in pair.named_buffers()] == ["0.rb"]
    assert [n for n, _ in pair.named_buffers(remove_duplicate=False)] == ["0.rb", "1.rb"]


# ---- register_parameter --------------------------------------------------------------------


def test_register_parameter():
    m = nn.Module()
    p = nn.Parameter(np.ones(2))
    m.register_parameter("w", p)
    assert m.w is p and m.parameters() == [p] and list(m.state_dict()) == ["w"]
    m.register_parameter("b", None)
    assert m.b is None and list(m.state_dict()) == ["w"]
    q = nn.Parameter(np.zeros(2))
    m.register_parameter("b", q)  # a None slot takes a Parameter later, as in PyTorch
    m.register_parameter("w", q)  # a parameter's name: replaced
    assert m.w is q and m.b is q and m.parameters() == [q]
    m.register_buffer("buf", np.zeros(1))
    m.child = nn.ReLU()
    for name, exc in [(3, TypeError), ("a.b", KeyError), ("", KeyError)]:
        with pytest.raises(exc):
            m.register_parameter(name, nn.Parameter(np.ones(1)))
    for name in ("training", "buf", "child", "forward"):
        with pytest.raises(KeyError, match=f"attribute '{name}' already exists"):
            m.register_parameter(name, nn.Parameter(np.ones(1)))
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("c", np.ones(2))
    assert not hasattr(m, "c")
    with pytest.raises(KeyError, match="already exists"):  # a ModuleList's "0" is a child
        nn.ModuleList([nn.ReLU()]).register_parameter("0", nn.Parameter(np.ones(1)))


def test_register_parameter_gives_a_linear_its_bias():
    lin = nn.Linear(3, 2, bias=False, dtype=np.float64)
    bias = nn.Parameter(np.array([1.0, -2.0]))
    lin.register_parameter("bias", bias)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(lin(x), x @ lin.weight.data + [1.0, -2.0], rtol=1e-14)
    lin.backward(np.ones((2, 2)))
    np.testing.assert_array_equal(bias.grad, [2.0, 2.0])


# ---- add_module, register_module -------------------------------------------------------------


def test_add_module_on_a_module():
    m = nn.Module()
    lin, relu = nn.Linear(2, 2), nn.ReLU()
    m.add_module("fc", lin)
    m.register_module("act", relu)
    assert m.fc is lin and m.act is relu
    assert [(n, c) for n, c in m.named_children()] == [("fc", lin), ("act", relu)]
    assert list(m.state_dict()) == ["fc.weight", "fc.bias"]
    m.add_module("skip", None)
    assert m.skip is None and len(list(m.children())) == 2
    m.add_module("skip", relu)
    m.add_module("fc", relu)  # a child's name: replaced
    assert m.fc is relu and m.skip is relu
    m.w = nn.Parameter(np.ones(1))
    m.register_buffer("buf", np.zeros(1))
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        m.add_module("x", 3)
    with pytest.raises(TypeError, match="must be a str"):
        m.add_module(3, relu)
    for name in ("a.b", ""):
        with pytest.raises(KeyError, match="non-empty"):
            m.add_module(name, relu)
    for name in ("training", "w", "buf", "parameters"):
        with pytest.raises(KeyError, match=f"attribute '{name}' already exists"):
            m.register_module(name, relu)


def test_add_module_appends_a_layer_to_a_sequential():
    normreg.manual_seed(0)
    s = nn.Sequential()
    fc, act = nn.Linear(2, 3, dtype=np.float64), nn.ReLU()
    s.add_module("fc", fc)
    s.register_module("act", act)
    assert len(s) == 2 and list(s) == [fc, act] and s.fc is fc
    assert [n for n, _ in s.named_children()] == ["fc", "act"]
    assert list(s.state_dict()) == ["fc.weight", "fc.bias"]
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_allclose(s(x), np.maximum(x @ fc.weight.data + fc.bias.data, 0), rtol=1e-14)
    other = nn.Identity()
    s.add_module("fc", other)  # a layer's name replaces that layer, in its place
    assert list(s) == [other, act]
    with pytest.raises(TypeError, match="must be a Module"):
        s.add_module("none", None)
    with pytest.raises(KeyError, match="'_'"):
        s.add_module("_hidden", nn.ReLU())
    assert len(s) == 2


def test_add_module_on_a_module_list_and_a_module_dict():
    a, b, c = nn.ReLU(), nn.Identity(), nn.Flatten()
    ml = nn.ModuleList([a])
    ml.add_module("1", b)  # the next position: appended
    ml.add_module("0", c)  # a position: replaced
    assert list(ml) == [c, b]
    with pytest.raises(KeyError, match="'5'"):
        ml.add_module("5", a)
    with pytest.raises(TypeError, match="must be a Module"):
        ml.add_module("2", None)
    ml.add_module("side", a)  # another name: an attribute, not in the list
    assert len(ml) == 2 and ml.side is a
    assert [n for n, _ in ml.named_children()] == ["0", "1", "side"]
    md = nn.ModuleDict({"x": a})
    md.add_module("y", b)
    md.add_module("x", c)  # the key keeps its place
    assert list(md.keys()) == ["x", "y"] and md["x"] is c and md["y"] is b
    with pytest.raises(TypeError, match="must be a Module"):
        md.add_module("z", None)
    with pytest.raises(KeyError, match="already exists"):
        md.add_module("keys", a)


# ---- get_submodule, get_parameter, get_buffer ------------------------------------------------


def test_get_by_dotted_names():
    net = Net()
    assert net.get_submodule("") is net
    expected = {"block": net.block, "block.norm": net.block.norm, "layers.0": net.layers[0]}
    expected.update({"layers.1": net.layers[1], "heads.cls": net.heads["cls"], "stack.0": net.stack[0]})
    expected["extra.0"] = net.extra[0]  # a module in a list attribute (named_modules's name)
    for target, module in expected.items():
        assert net.get_submodule(target) is module, target
    for name, module in net.named_modules():  # every name named_modules gives resolves
        assert net.get_submodule(name) is module
    assert net.get_parameter("layers.0.weight") is net.layers[0].weight
    assert net.get_parameter("block.scale") is net.block.scale
    assert net.get_parameter("heads.cls.bias") is net.heads["cls"].bias
    assert net.get_parameter("stack.0.weight") is net.stack[0].weight
    assert net.get_buffer("block.norm.running_mean") is net.block.norm.running_mean
    assert net.get_buffer("block.norm.num_batches_tracked") is net.block.norm.num_batches_tracked
    assert net.get_buffer("block.count") is net.block.count
    assert nn.BatchNorm1d(2, track_running_stats=False).get_buffer("running_var") is None
    with pytest.raises(AttributeError, match="`bias` is not an nn.Parameter"):  # set to None
        nn.Linear(2, 2, bias=False).get_parameter("bias")
    for method in ("get_submodule", "get_parameter", "get_buffer"):
        with pytest.raises(TypeError, match="target must be a str"):
            getattr(net, method)(0)


@pytest.mark.parametrize(
    "method, target, message",
    [
        ("get_submodule", "nope", "Net has no attribute `nope`"),
        ("get_submodule", "block.norm.weight", "`weight` is not an nn.Module"),
        ("get_submodule", "layers.5", "Sequential has no attribute `5`"),
        ("get_submodule", "stack.3", "ModuleList has no attribute `3`"),
        ("get_submodule", "heads.reg", "ModuleDict has no attribute `reg`"),
        ("get_submodule", "extra", "`extra` is not an nn.Module"),
        ("get_submodule", "block..lin", "Block has no attribute ``"),
        ("get_parameter", "block.norm.running_mean", "`running_mean` is not an nn.Parameter"),
        ("get_parameter", "block.norm", "`norm` is not an nn.Parameter"),
        ("get_parameter", "block.norm.eps", "`eps` is not an nn.Parameter"),
        ("get_parameter", "nope.weight", "Net has no attribute `nope`"),
        ("get_parameter", "layers.0.nope", "Linear has no attribute `nope`"),
        ("get_parameter", "training", "`training` is not an nn.Parameter"),
        ("get_buffer", "layers.0.weight", "`weight` is not a buffer"),
        ("get_buffer", "block.norm.eps", "`eps` is not a buffer"),
        ("get_buffer", "block.norm.nope", "BatchNorm1d has no attribute `nope`"),
        ("get_buffer", "stack.0", "`0` is not a buffer"),
    ],
)
def test_get_errors(method, target, message):
    with pytest.raises(AttributeError) as info:
        getattr(Net(), method)(target)
    assert str(info.value) == message


# ---- to, float, double -------------------------------------------------------------------------


def test_double_converts_in_place_and_keeps_the_objects():
    net = Net()
    net.layers[0].weight.grad = np.full((3, 4), 0.1, np.float32)
    params = dict(net.named_parameters())
    before = {n: p.data.copy() for n, p in params.items()}
    count = net.block.norm.num_batches_tracked
    assert net.double() is net
    for n, p in net.named_parameters():
        assert p is params[n] and p.dtype == F64 and p.data.flags.c_contiguous
        np.testing.assert_array_equal(p.data, before[n].astype(np.float64))
    grad = net.layers[0].weight.grad
    assert grad.dtype == F64 and np.array_equal(grad, np.full((3, 4), np.float32(0.1), np.float64))
    assert net.get_parameter("layers.0.bias").grad is None
    norm = net.block.norm
    assert norm.running_mean.dtype == F64 and norm.running_var.dtype == F64 and net.block.count.dtype == F64
    np.testing.assert_array_equal(norm.running_var, np.ones(3))
    assert norm.num_batches_tracked is count and count.dtype == np.int64  # integer buffers stay
    assert net.float() is net
    for n, p in net.named_parameters():
        assert p.dtype == F32 and np.array_equal(p.data, before[n])


def test_to_forms_and_errors():
    lin = nn.Linear(2, 2)
    w = lin.weight.data
    for call in (lambda: lin.to("cpu"), lambda: lin.to(), lambda: lin.float(), lambda: lin.to(device="cpu")):
        assert call() is lin and lin.weight.data is w  # nothing to do: the same arrays
    for call in (
        lambda: lin.to(np.float64),
        lambda: lin.to(dtype="float64"),
        lambda: lin.to("cpu", np.float64, False),
        lambda: lin.to(np.zeros(1)),  # the dtype of an array, as PyTorch's to(tensor)
        lambda: lin.to(device="cpu", dtype=np.dtype("float64"), non_blocking=True),
    ):
        lin.float()
        assert call() is lin and lin.weight.dtype == F64
    for args, kwargs, exc, match in [
        ((np.float16,), {}, TypeError, "float16"),
        ((np.int64,), {}, TypeError, "int64"),
        ((), {"dtype": np.complex128}, TypeError, "complex128"),
        (("cuda",), {}, ValueError, "'cuda'"),
        (("float64",), {}, ValueError, "dtype='float64'"),
        ((), {"device": "mps"}, ValueError, "'mps'"),
        ((np.float64,), {"memory_format": None}, TypeError, "memory_format"),
        ((np.float64, False, 1), {}, TypeError, "positional"),
        ((np.float64,), {"dtype": np.float32}, TypeError, "multiple values"),
        ((np.float64,), {"non_blocking": "yes"}, TypeError, "non_blocking"),
    ]:
        with pytest.raises(exc, match=match):
            lin.to(*args, **kwargs)
    assert lin.weight.dtype == F64


def _numpy_net(x, W1, b1, g1, be1, g2, be2, W2, b2, eps=1e-5):
    """Linear, BatchNorm1d in training (batch mean, biased variance), ReLU, LayerNorm, Linear."""
    h = x @ W1 + b1
    h = (h - h.mean(0)) / np.sqrt(h.var(0) + eps) * g1 + be1
    h = np.maximum(h, 0.0)
    mu, var = h.mean(1, keepdims=True), h.var(1, keepdims=True)
    h = (h - mu) / np.sqrt(var + eps) * g2 + be2
    return h @ W2 + b2, h


def test_double_network_matches_numpy_and_finite_differences():
    normreg.manual_seed(3)
    rng = np.random.default_rng(3)
    model = nn.Sequential(
        nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Dropout(0.0), nn.LayerNorm(5), nn.Linear(5, 3)
    )
    for p in (model[1].weight, model[1].bias, model[4].weight, model[4].bias):
        p.data[...] = rng.standard_normal(5)  # float32 values, kept exactly by double()
    model.double()
    params = [p.data for p in model.parameters()]  # 0.weight, 0.bias, 1.weight, ..., 5.bias
    assert all(p.dtype == F64 for p in params)
    x = rng.standard_normal((6, 4))
    G = rng.standard_normal((6, 3))  # the loss is sum(y * G)
    y = model(x)
    ref, h = _numpy_net(x, *params)
    assert y.dtype == F64
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    dx = model.backward(G)
    assert dx.dtype == F64 and all(p.grad.dtype == F64 for p in model.parameters())
    np.testing.assert_allclose(model[5].weight.grad, h.T @ G, rtol=1e-12, atol=1e-12)
    step, fd = 1e-6, np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += step
        xm[i] -= step
        fd[i] = (np.sum(_numpy_net(xp, *params)[0] * G) - np.sum(_numpy_net(xm, *params)[0] * G)) / (2 * step)
    np.testing.assert_allclose(dx, fd, rtol=1e-6, atol=1e-8)
    bn = model[1]
    assert bn.num_batches_tracked.dtype == np.int64 and int(bn.num_batches_tracked) == 1
    np.testing.assert_allclose(bn.running_mean, 0.1 * (x @ params[0] + params[1]).mean(0), rtol=1e-12)


LAYERS = [
    (lambda dt: nn.Linear(4, 3, dtype=dt), (5, 4)),
    (lambda dt: nn.Conv2d(2, 3, 3, padding=1, dtype=dt), (2, 2, 5, 5)),
    (lambda dt: nn.BatchNorm1d(4, dtype=dt), (5, 4)),
    (lambda dt: nn.BatchNorm1d(4, running_var_estimator="biased", dtype=dt), (5, 4, 3)),
    (lambda dt: nn.BatchNorm1d(4, affine=False, track_running_stats=False, dtype=dt), (5, 4)),
    (lambda dt: nn.BatchNorm2d(2, dtype=dt), (3, 2, 4, 4)),
    (lambda dt: nn.LayerNorm(4, dtype=dt), (5, 4)),
    (lambda dt: nn.LayerNorm((2, 4), elementwise_affine=False, dtype=dt), (3, 2, 4)),
    (lambda dt: nn.RMSNorm(4, dtype=dt), (5, 4)),
    (lambda dt: nn.GroupNorm(2, 4, dtype=dt), (3, 4, 5)),
    (lambda dt: nn.GroupNorm(2, 4, affine=False, dtype=dt), (3, 4, 5)),
    (lambda dt: nn.InstanceNorm1d(3, dtype=dt), (2, 3, 6)),
    (lambda dt: nn.InstanceNorm2d(2, affine=True, track_running_stats=True, dtype=dt), (2, 2, 4, 4)),
    (lambda dt: nn.Dropout(0.5), (4, 6)),
    (lambda dt: nn.MaxPool2d(2), (2, 2, 4, 4)),
    (lambda dt: nn.AvgPool2d(2), (2, 2, 4, 4)),
    (lambda dt: nn.AdaptiveAvgPool2d(1), (2, 2, 4, 4)),
]


@pytest.mark.parametrize("make, shape", LAYERS)
def test_every_layer_runs_in_float64_after_double(make, shape):
    """A float32 layer after double() computes what the same layer made in float64 does."""
    rng = np.random.default_rng(0)
    normreg.manual_seed(1)
    layer = make(np.float32)
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    layer.double()
    twin = make(np.float64)
    twin.load_state_dict(layer.state_dict())
    x = rng.standard_normal(shape) + 0.5
    dy, results = None, []
    for m in (layer, twin):
        normreg.manual_seed(2)  # the same dropout mask
        y = m(x)
        dy = rng.standard_normal(y.shape) if dy is None else dy
        results.append((y, m.backward(dy)))
    for a, b in zip(*results):  # the outputs, the input gradients
        assert a.dtype == b.dtype == F64
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
    for (n, p), (_, q) in zip(layer.named_parameters(), twin.named_parameters()):
        assert p.grad.dtype == F64
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-13, atol=1e-14, err_msg=n)
    for (n, a), (_, b) in zip(layer.named_buffers(), twin.named_buffers()):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-13, err_msg=n)


def test_pending_forwards_are_dropped_by_a_conversion():
    model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    model(np.ones((3, 2), np.float32))
    model.float()  # nothing to convert: the forward still waits for its backward
    assert model.pending_forwards == 1
    model.double()
    assert [m.pending_forwards for m in model.modules()] == [0, 0, 0]
    with pytest.raises(RuntimeError, match="no pending forward"):
        model.backward(np.ones((3, 2)))


def test_an_optimizer_made_before_the_conversion():
    lin = nn.Linear(3, 2)
    opt = optim.SGD(lin.parameters(), lr=0.5, momentum=0.9)
    lin.double()  # no step yet: no state of the old dtype
    x = np.linspace(-1, 1, 12).reshape(4, 3)
    lin(x)
    lin.backward(np.ones((4, 2)))
    w, g = lin.weight.data.copy(), lin.weight.grad.copy()
    opt.step()  # the first step: buf = grad, w -= lr * buf
    np.testing.assert_allclose(lin.weight.data, w - 0.5 * g, rtol=1e-15, atol=1e-16)
    assert opt.state[lin.weight]["momentum_buffer"].dtype == F64
    lin.float()  # now the state is float64 and the parameters float32
    lin(x.astype(np.float32))
    lin.backward(np.ones((4, 2), np.float32))
    w = lin.weight.data.copy()
    with pytest.raises(TypeError, match="momentum_buffer"):
        opt.step()
    np.testing.assert_array_equal(lin.weight.data, w)  # nothing changed


def test_shared_arrays_stay_shared():
    lin = nn.Linear(2, 2)
    tied = nn.Sequential(lin, nn.ReLU(), lin).double()
    assert tied[0].weight is tied[2].weight and tied[0].weight.dtype == F64
    shared = np.zeros(2, np.float32)
    a, b = nn.Module(), nn.Module()
    a.register_buffer("rb", shared)
    b.register_buffer("rb", shared)
    nn.Sequential(a, b).double()
    assert a.rb is b.rb and a.rb.dtype == F64


def test_distributed_data_parallel_reduces_in_the_new_dtype():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ddp = dist.DistributedDataParallel(model, comm=dist.LocalComm()).double()
    ddp(np.linspace(-1, 1, 12).reshape(4, 3) ** 3)
    ddp.backward(np.linspace(0, 1, 8).reshape(4, 2) / 3)
    grads = [p.grad.copy() for p in model.parameters()]
    ddp.reducer.allreduce(scale=2.0)  # through its flat buffers, which must be float64
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, 2.0 * g)


# ---- PyTorch (skipped unless torch is installed) ------------------------------------------


def test_names_and_errors_match_torch():
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):  # the names of normreg's, which PyTorch's errors name
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(3))
            self.lin = torch.nn.Linear(2, 3)
            self.norm = torch.nn.BatchNorm1d(3)
            self.register_buffer("count", torch.zeros(1))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.layers = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
            self.heads = torch.nn.ModuleDict({"cls": torch.nn.Linear(4, 2)})
            self.stack = torch.nn.ModuleList([torch.nn.LayerNorm(4)])

    ours, theirs = globals()["Net"](), Net()
    del ours.extra  # no plain-list children in PyTorch
    for method in ("named_parameters", "named_buffers"):
        for kw in ({}, {"recurse": False}, {"prefix": "p"}):
            assert [n for n, _ in getattr(ours, method)(**kw)] == [
                n for n, _ in getattr(theirs, method)(**kw)
            ]
    assert [tuple(b.shape) for b in ours.buffers()] == [tuple(b.shape) for b in theirs.buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    targets = ["", "block", "block.norm", "nope", "block.norm.weight", "layers.5", "layers.1", "stack.0"]
    targets += ["stack.3", "heads.cls", "heads.reg", "block..lin", "block.scale", "block.count"]
    targets += ["block.norm.running_mean", "block.norm.eps", "layers.0.weight", "training", "nope.weight"]
    for method in ("get_submodule", "get_parameter", "get_buffer"):
        for target in targets:
            outcomes = []
            for model in (ours, theirs):
                try:
                    found = getattr(model, method)(target)
                    # (a Linear weight is (in, out) here, (out, in) in PyTorch: the sizes)
                    kind = type(found).__name__ if method == "get_submodule" else int(np.prod(found.shape))
                    outcomes.append(("found", kind))
                except AttributeError as exc:
                    outcomes.append(("AttributeError", str(exc)))
            assert outcomes[0] == outcomes[1], (method, target)
