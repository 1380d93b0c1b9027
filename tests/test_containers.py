"""Sequential's list operations, ModuleList and ModuleDict, as PyTorch's.

For each operation: the order of the modules held, and the names the model gives them
(named_children(), named_parameters() and state_dict() keys), against lists written here;
a model holding its layers in a ModuleList and a ModuleDict trains (SGD updates exactly
their parameters), switches train/eval, and loads its state into a fresh copy; what is not a
Module is a TypeError. With torch installed, random sequences of the same operations give the
same names and order as torch.nn's containers."""

import collections

import numpy as np
import pytest

import normreg
from normreg import nn
from normreg.optim import SGD

F64 = np.float64


def _lins(n):
    return [nn.Linear(1, 1) for _ in range(n)]


def _names(m):
    return [name for name, _ in m.named_children()]


def _keys(m):
    return list(m.state_dict())


def _pnames(m):
    return [name for name, _ in m.named_parameters()]


def _lin_keys(*names):
    """The state_dict keys of Linear layers with these names."""
    return [f"{n}.{p}" for n in names for p in ("weight", "bias")]


def _same(held, expected):
    """The modules held are the ``expected`` objects, in this order."""
    held = list(held)
    return len(held) == len(expected) and all(a is b for a, b in zip(held, expected))


# ---- Sequential -------------------------------------------------------------------------------


def test_sequential_insert_renumbers_and_takes_negative_positions():
    a, b, c, d, e, f = _lins(6)
    seq = nn.Sequential(a, b, c)
    assert seq.insert(1, d) is seq
    assert _same(seq, [a, d, b, c]) and _names(seq) == ["0", "1", "2", "3"]
    assert _keys(seq) == _lin_keys("0", "1", "2", "3") == _pnames(seq)
    assert seq[1] is d and seq[2] is b  # "1" is d now
    seq.insert(-1, e)  # before the last, as list.insert
    assert _same(seq, [a, d, b, e, c])
    seq.insert(5, f)  # at len: the end
    assert _same(seq, [a, d, b, e, c, f])
    seq.insert(-6, nn.ReLU())  # at -len: the front
    assert isinstance(seq[0], nn.ReLU) and seq[1] is a
    assert _names(seq) == [str(i) for i in range(7)]
    for bad in (8, -8):
        with pytest.raises(IndexError, match="out of range"):
            seq.insert(bad, nn.ReLU())
    with pytest.raises(TypeError, match="int"):
        seq.insert(0, 3)
    assert len(seq) == 7


def test_sequential_extend_append_and_add():
    a, b, c, d, e = _lins(5)
    seq = nn.Sequential(a, b)
    assert seq.extend([c, d]) is seq
    assert _same(seq, [a, b, c, d]) and _names(seq) == ["0", "1", "2", "3"]
    seq.extend(m for m in [e])  # any iterable
    assert _same(seq, [a, b, c, d, e])
    with pytest.raises(TypeError, match="entry 1 must be a Module, got str"):
        seq.extend([nn.ReLU(), "relu"])
    with pytest.raises(TypeError, match="int"):
        seq.extend(5)
    assert _same(seq, [a, b, c, d, e])  # a failed extend adds nothing
    small = nn.Sequential(a, b)
    small.extend(small)  # its own layers, once
    assert _same(small, [a, b, a, b]) and _names(small) == ["0", "1"]  # each child once
    assert _pnames(small) == _lin_keys("0", "1")  # each parameter once, under its first name
    assert _keys(small) == _lin_keys("0", "1", "2", "3")  # a key for each name, as PyTorch's

    left, right = nn.Sequential(a, b), nn.Sequential(collections.OrderedDict(fc=c, out=d))
    both = left + right
    assert type(both) is nn.Sequential and both is not left
    assert _same(both, [a, b, c, d]) and _names(both) == ["0", "1", "2", "3"]
    assert _same(left, [a, b]) and _names(right) == ["fc", "out"]  # left as they were
    before = left
    left += right
    assert left is before and _same(left, [a, b, c, d]) and _keys(left) == _lin_keys("0", "1", "2", "3")
    for op in (lambda: left + [e], lambda: left.__iadd__([e])):
        with pytest.raises(ValueError, match="Sequential"):  # as PyTorch's
            op()
    with pytest.raises(TypeError, match="float"):
        left.append(1.0)


def test_sequential_pop_and_del_renumber():
    a, b, c, d, e = _lins(5)
    seq = nn.Sequential(a, b, c, d, e)
    assert seq.pop(1) is b
    assert _same(seq, [a, c, d, e]) and _names(seq) == ["0", "1", "2", "3"]
    assert seq.pop(-1) is e
    assert _same(seq, [a, c, d]) and _keys(seq) == _lin_keys("0", "1", "2")
    del seq[0]
    assert _same(seq, [c, d]) and _names(seq) == ["0", "1"] and seq[0] is c
    seq = nn.Sequential(a, b, c, d, e)
    del seq[1:3]
    assert _same(seq, [a, d, e]) and _names(seq) == ["0", "1", "2"]
    seq = nn.Sequential(a, b, c, d, e)
    del seq[::2]
    assert _same(seq, [b, d]) and _pnames(seq) == _lin_keys("0", "1")
    seq = nn.Sequential(a, b, c, d, e)
    popped = seq.pop(slice(1, 3))
    assert isinstance(popped, nn.Sequential) and _same(popped, [b, c]) and _names(popped) == ["1", "2"]
    assert _same(seq, [a, d, e]) and _names(seq) == ["0", "1", "2"]
    for bad in (3, -4):
        with pytest.raises(IndexError, match="out of range"):
            seq.pop(bad)
        with pytest.raises(IndexError, match="out of range"):
            del seq[bad]
    with pytest.raises(TypeError, match="float"):
        seq[1.0]
    assert _same(seq, [a, d, e])


def test_sequential_setitem_keeps_the_name():
    a, b, c, d = _lins(4)
    seq = nn.Sequential(collections.OrderedDict(fc=a, act=nn.ReLU(), out=b))
    seq[-1] = c
    seq[0] = d
    assert seq.out is c and seq.fc is d and _names(seq) == ["fc", "act", "out"]
    assert _keys(seq) == _lin_keys("fc", "out")
    params = seq.parameters()
    assert [id(p) for p in params] == [id(d.weight), id(d.bias), id(c.weight), id(c.bias)]
    with pytest.raises(TypeError, match="layer 'act' must be a Module, got NoneType"):
        seq[1] = None
    with pytest.raises(IndexError, match="out of range"):
        seq[3] = a
    with pytest.raises(TypeError, match="slice"):
        seq[0:1] = a


def test_sequential_with_dict_names_keeps_them_and_numbers_the_rest():
    """PyTorch renumbers every name on ``del seq[i]`` (and its insert fails on a Sequential
    named by a dict); here names given by a dict stay, and numbered layers are renumbered."""
    fc, act, out, extra, first = nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1), nn.Linear(1, 1), nn.Linear(1, 1)
    seq = nn.Sequential(collections.OrderedDict([("fc", fc), ("act", act), ("out", out)]))
    del seq[1]
    assert _names(seq) == ["fc", "out"] and seq.out is out
    seq.append(extra)
    assert _names(seq) == ["fc", "out", "2"]
    seq.insert(0, first)
    assert _same(seq, [first, fc, out, extra]) and _names(seq) == ["0", "fc", "out", "3"]
    assert _keys(seq) == _lin_keys("0", "fc", "out", "3")
    del seq.fc  # by name: the others keep theirs, as PyTorch's delattr
    assert _names(seq) == ["0", "out", "3"] and _same(seq, [first, out, extra]) and not hasattr(seq, "fc")
    seq.append(nn.ReLU())  # "3" is taken: the next free number
    assert _names(seq) == ["0", "out", "3", "4"]
    del seq[0]
    assert _names(seq) == ["out", "1", "2"]
    seq.extra = nn.ReLU()  # a child, not a layer: not in a slice
    assert _names(seq) == ["out", "1", "2", "extra"] and _names(seq[:]) == ["out", "1", "2"]
    tail = nn.Sequential(fc, act, out)[1:]  # a slice keeps "1", "2" (as PyTorch's) ...
    assert _names(tail) == ["1", "2"]
    tail.insert(0, first)  # ... and an insert numbers by position
    assert _names(tail) == ["0", "1", "2"] and _same(tail, [first, act, out])


# ---- ModuleList -------------------------------------------------------------------------------


def test_modulelist_operations_order_and_names():
    a, b, c, d, e, f = _lins(6)
    ml = nn.ModuleList([a, b])
    assert ml.append(c) is ml and ml.extend([d]) is ml and _same(ml, [a, b, c, d]) and len(ml) == 4
    assert _names(ml) == ["0", "1", "2", "3"] and _keys(ml) == _lin_keys("0", "1", "2", "3")
    assert ml.insert(1, e) is None
    assert _same(ml, [a, e, b, c, d]) and _keys(ml) == _lin_keys("0", "1", "2", "3", "4")
    ml.insert(-1, f)
    assert _same(ml, [a, e, b, c, f, d]) and ml[0] is a and ml[-1] is d and ml[-6] is a
    sub = ml[1:4]
    assert type(sub) is nn.ModuleList and _same(sub, [e, b, c]) and _names(sub) == ["0", "1", "2"]
    ml[2] = nn.ReLU()
    assert isinstance(ml[2], nn.ReLU) and _pnames(ml) == _lin_keys("0", "1", "3", "4", "5")
    ml[2] = b
    assert ml.pop(1) is e
    assert _same(ml, [a, b, c, f, d]) and _names(ml) == ["0", "1", "2", "3", "4"]
    del ml[-1], ml[1:3]
    assert _same(ml, [a, f]) and _keys(ml) == _lin_keys("0", "1")
    ml += [b, c]
    both = ml + nn.ModuleList([d]) + [e]  # any iterable of modules, as PyTorch's
    assert type(both) is nn.ModuleList and _same(both, [a, f, b, c, d, e]) and _same(ml, [a, f, b, c])
    popped = ml.pop(slice(0, 2))
    assert type(popped) is nn.ModuleList and _same(popped, [a, f]) and _same(ml, [b, c])
    assert _same(iter(ml), [b, c]) and _same(nn.ModuleList(), []) and len(nn.ModuleList(None)) == 0
    for bad in (2, -3):
        with pytest.raises(IndexError, match="out of range"):
            ml[bad]
        with pytest.raises(IndexError, match="out of range"):
            ml[bad] = a
    with pytest.raises(IndexError, match="out of range"):
        ml.insert(3, a)


def test_modulelist_refuses_what_is_not_a_module_and_changes_nothing():
    a, b = _lins(2)
    ml = nn.ModuleList([a])
    cases = [
        (lambda: nn.ModuleList([a, 3]), "entry 1 must be a Module, got int"),
        (lambda: nn.ModuleList(a), "iterable of Modules, got Linear"),
        (lambda: nn.ModuleList(7), "got int"),
        (lambda: ml.append("relu"), "got str"),
        (lambda: ml.extend([b, np.ones(2)]), "entry 1 must be a Module, got ndarray"),
        (lambda: ml.insert(0, None), "got NoneType"),
        (lambda: ml.__setitem__(0, lambda x: x), "got function"),
        (lambda: ml + [b, 2.5], "got float"),
        (lambda: ml.__iadd__([b, {}]), "got dict"),
    ]
    for call, message in cases:
        with pytest.raises(TypeError, match=message):
            call()
    assert _same(ml, [a])


def test_modulelist_and_moduledict_have_no_forward():
    for holder in (nn.ModuleList([nn.ReLU()]), nn.ModuleDict({"act": nn.ReLU()})):
        name = type(holder).__name__
        with pytest.raises(NotImplementedError, match=f"{name} has no forward"):
            holder(np.ones(3))
        with pytest.raises(NotImplementedError, match=f"{name} has no backward"):
            holder.backward(np.ones(3))


# ---- ModuleDict -------------------------------------------------------------------------------


def test_moduledict_operations_keep_insertion_order():
    a, b, c, d, e = _lins(5)
    md = nn.ModuleDict({"b": a, "a": b})
    assert list(md) == ["b", "a"] and list(md.keys()) == ["b", "a"] and len(md) == 2
    assert _same(md.values(), [a, b]) and [k for k, _ in md.items()] == ["b", "a"]
    assert md["b"] is a and "a" in md and "c" not in md and md.a is b
    md["c"] = c
    md["b"] = d  # an existing key keeps its place
    assert list(md) == ["b", "a", "c"] and md["b"] is d
    assert _names(md) == ["b", "a", "c"] and _keys(md) == _lin_keys("b", "a", "c") == _pnames(md)
    md.update([("z", e), ("a", a)])
    assert list(md) == ["b", "a", "c", "z"] and md["a"] is a
    md.update(collections.OrderedDict([("y", b)]))
    md.update(nn.ModuleDict({"x": c}))
    assert list(md) == ["b", "a", "c", "z", "y", "x"]
    assert md.pop("z") is e
    del md["y"]
    assert list(md) == ["b", "a", "c", "x"] and _keys(md) == _lin_keys("b", "a", "c", "x")
    md.w = e  # an attribute set to a Module is an entry, as PyTorch's
    assert list(md) == ["b", "a", "c", "x", "w"] and md["w"] is e
    del md.w
    assert "w" not in md and list(md) == ["b", "a", "c", "x"]
    for missing in (lambda: md["nope"], lambda: md.pop("nope"), lambda: md.__delitem__("nope")):
        with pytest.raises(KeyError, match="nope"):
            missing()
    md.clear()
    assert len(md) == 0 and _keys(md) == [] and list(nn.ModuleDict()) == []
    assert list(nn.ModuleDict([("p", a), ["q", b]])) == ["p", "q"]


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda md: md.__setitem__(1, nn.ReLU()), TypeError, "must be a str, got int"),
        (lambda md: md.__setitem__("a.b", nn.ReLU()), KeyError, "hold no '.'"),
        (lambda md: md.__setitem__("", nn.ReLU()), KeyError, "non-empty"),
        (lambda md: md.__setitem__("training", nn.ReLU()), KeyError, "attribute 'training' already exists"),
        (lambda md: md.__setitem__("keys", nn.ReLU()), KeyError, "attribute 'keys' already exists"),
        (lambda md: md.__setitem__("forward", nn.ReLU()), KeyError, "already exists"),
        (lambda md: md.__setitem__("k", 3), TypeError, "value of 'k' must be a Module, got int"),
        (lambda md: md.__setitem__("head", None), TypeError, "got NoneType"),
        (lambda md: md.update(3), TypeError, "got int"),
        (lambda md: md.update([("new", nn.ReLU()), ("x",)]), ValueError, "element 1 .*length 1"),
        (lambda md: md.update([3]), TypeError, "element 0 must be a \\(key, module\\) pair, got int"),
        (lambda md: md.update({"new": nn.ReLU(), "bad": "x"}), TypeError, "'bad' must be a Module, got str"),
        (lambda md: md.update({"new": nn.ReLU(), "update": nn.ReLU()}), KeyError, "already exists"),
        (lambda md: nn.ModuleDict({"x": nn.ReLU(), 2: nn.ReLU()}), TypeError, "got int"),
    ],
)
def test_moduledict_refuses_bad_keys_and_values(call, error, message):
    head = nn.Linear(1, 1)
    md = nn.ModuleDict({"head": head})
    with pytest.raises(error, match=message):
        call(md)
    assert list(md) == ["head"] and md["head"] is head  # nothing set


# ---- a model made with them -------------------------------------------------------------------


class Net(nn.Module):
    """Layers in a ModuleList, two heads in a ModuleDict (only ``head`` is used)."""

    def __init__(self, seed, head="cls"):
        super().__init__()
        normreg.manual_seed(seed)
        self.layers = nn.ModuleList(
            [nn.Linear(4, 8, dtype=F64), nn.BatchNorm1d(8, dtype=F64), nn.ReLU(), nn.Dropout(0.5)]
        )
        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 3, dtype=F64), "reg": nn.Linear(8, 1, dtype=F64)})
        self.head = head

    def forward(self, x):
        for m in self.layers:
            x = m(x)
        return self.heads[self.head](x)

    def backward(self, dy):
        dy = self.heads[self.head].backward(dy)
        for m in reversed(list(self.layers)):
            dy = m.backward(dy)
        return dy


NET_KEYS = [
    *_lin_keys("layers.0"),
    *(f"layers.1.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")),
    *_lin_keys("heads.cls", "heads.reg"),
]


def test_a_model_with_held_layers_trains_them():
    net = Net(seed=3)
    fc, bn = net.layers[0], net.layers[1]
    cls, reg = net.heads["cls"], net.heads["reg"]
    expected = [fc.weight, fc.bias, bn.weight, bn.bias, cls.weight, cls.bias, reg.weight, reg.bias]
    assert _same(net.parameters(), expected)
    assert _pnames(net) == [k for k in NET_KEYS if "running" not in k and "batches" not in k]
    assert _keys(net) == NET_KEYS
    before = {id(p): p.data.copy() for p in expected}
    opt = SGD(net.parameters(), lr=0.1)
    x = np.random.default_rng(4).standard_normal((6, 4))
    y = net(x)
    assert y.shape == (6, 3)
    dx = net.backward(np.ones_like(y) / y.size)
    assert dx.shape == x.shape
    used, unused = expected[:6], expected[6:]
    assert all(p.grad is not None and np.any(p.grad) for p in used)
    assert all(p.grad is None for p in unused)  # the head not called has no gradient
    grads = {id(p): p.grad.copy() for p in used}
    opt.step()
    for p in used:
        np.testing.assert_allclose(p.data, before[id(p)] - 0.1 * grads[id(p)], rtol=1e-14, atol=1e-15)
    for p in unused:
        np.testing.assert_array_equal(p.data, before[id(p)])
    assert bn.num_batches_tracked == 1  # the forward in training mode updated its statistics
    net.zero_grad()
    assert all(p.grad is None for p in expected)


def test_train_and_eval_reach_held_dropout_and_batchnorm():
    net = Net(seed=5)
    held = [*net.layers, *net.heads.values()]
    x = np.random.default_rng(6).standard_normal((8, 8))
    drop, bn = net.layers[3], net.layers[1]
    assert net.eval() is net
    assert not net.layers.training and not net.heads.training
    assert all(not m.training for m in held)
    with normreg.no_grad():
        np.testing.assert_array_equal(drop(x), x)  # evaluation: nothing dropped
        # running statistics (0, 1) in evaluation: x / sqrt(1 + eps), times weight 1, plus bias 0
        np.testing.assert_allclose(bn(x), x / np.sqrt(1 + 1e-5), rtol=1e-12)
    net.train()
    assert all(m.training for m in held) and net.layers.training
    with normreg.no_grad():
        assert np.any(drop(x) == 0)  # training: some of 64 dropped
    net.heads.eval()  # on the holder alone
    assert not net.heads["cls"].training and net.layers[0].training


def test_state_dict_round_trip_into_a_fresh_model():
    source, target = Net(seed=7), Net(seed=8)
    x = np.random.default_rng(9).standard_normal((5, 4))
    source(x)  # the batch norm's running statistics move off their start
    source.clear_pending()
    state = source.state_dict()
    assert list(state) == NET_KEYS
    assert not np.array_equal(state["layers.0.weight"], target.state_dict()["layers.0.weight"])
    target.load_state_dict(state)
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    source.eval()
    target.eval()
    with normreg.no_grad():
        np.testing.assert_array_equal(target(x), source(x))
    missing = dict(state)
    del missing["heads.reg.bias"]
    with pytest.raises(KeyError, match="heads.reg.bias"):
        Net(seed=10).load_state_dict(missing)


# ---- the same operations in PyTorch -----------------------------------------------------------


def _same_operations(torch, ours, theirs, rng, steps):
    """Random operations, the same on a normreg and a torch container (Linear layers made in
    pairs), with the names and the order of the modules (by pair) compared after each."""
    pairs = {}  # id of a torch module -> its normreg twin
    seq = isinstance(ours, nn.Sequential)

    def made(k):
        new = [(nn.Linear(1, 1), torch.nn.Linear(1, 1)) for _ in range(k)]
        pairs.update((id(t), m) for m, t in new)
        return [m for m, _ in new], [t for _, t in new]

    for _ in range(steps):
        n, op = len(ours), str(rng.choice(["append", "insert", "pop", "del", "slice", "set", "extend", "+="]))
        i = int(rng.integers(-n, n)) if n else None
        if op == "append" or (i is None and op in ("pop", "del", "slice", "set")):
            (m,), (t,) = made(1)
            ours.append(m)
            theirs.append(t)
        elif op == "insert":  # torch's ModuleList.insert fails for a negative index
            i, ((m,), (t,)) = int(rng.integers(-n if seq else 0, n + 1)), made(1)
            ours.insert(i, m)
            theirs.insert(i, t)
        elif op == "pop":
            popped, tpopped = ours.pop(i), theirs.pop(i)
            assert pairs[id(tpopped)] is popped
        elif op == "del":
            del ours[i], theirs[i]
        elif op == "slice":
            a, b = sorted(int(v) for v in rng.integers(-n, n + 1, size=2))
            s = slice(a, b, int(rng.integers(1, 3)))
            del ours[s], theirs[s]
        elif op == "set":
            (m,), (t,) = made(1)
            ours[i], theirs[i] = m, t
        elif op == "extend":
            ms, ts = made(int(rng.integers(0, 3)))
            ours.extend(ms)
            theirs.extend(ts)
        else:
            ms, ts = made(int(rng.integers(1, 3)))
            ours += nn.Sequential(*ms) if seq else ms
            theirs += torch.nn.Sequential(*ts) if seq else ts
        assert _same(ours, [pairs[id(t)] for t in theirs]), op
        assert _names(ours) == [name for name, _ in theirs.named_children()], op
        assert _keys(ours) == list(theirs.state_dict()), op
        for container in (ours, theirs):
            with pytest.raises(IndexError):
                container[len(container)]


@pytest.mark.parametrize("kind", ["Sequential", "ModuleList"])
def test_list_operations_name_and_order_as_pytorch(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for _ in range(20):
        _same_operations(torch, getattr(nn, kind)(), getattr(torch.nn, kind)(), rng, 25)
    a, b = _lins(2), _lins(3)
    ta, tb = [torch.nn.Linear(1, 1) for _ in range(2)], [torch.nn.Linear(1, 1) for _ in range(3)]
    added = torch.nn.Sequential(*ta) + torch.nn.Sequential(*tb)
    assert _keys(nn.Sequential(*a) + nn.Sequential(*b)) == list(added.state_dict())


def test_moduledict_keys_as_pytorch():
    torch = pytest.importorskip("torch")
    ours, theirs = nn.ModuleDict(), torch.nn.ModuleDict()
    rng = np.random.default_rng(13)
    for _ in range(200):
        key, op = str(rng.choice(list("abcdef"))), str(rng.choice(["set", "update", "del", "pop"]))
        if op == "set":
            ours[key], theirs[key] = nn.Linear(1, 1), torch.nn.Linear(1, 1)
        elif op == "update":
            keys = [str(k) for k in rng.choice(list("abcg"), size=2)]
            ours.update([(k, nn.Linear(1, 1)) for k in keys])
            theirs.update([(k, torch.nn.Linear(1, 1)) for k in keys])
        elif key in theirs:
            if op == "del":
                del ours[key], theirs[key]
            else:
                assert type(ours.pop(key)) is nn.Linear and type(theirs.pop(key)) is torch.nn.Linear
        assert list(ours) == list(theirs) and _keys(ours) == list(theirs.state_dict())
    for bad in (1, "a.b", "", "training", "keys"):  # the same error types
        errors = []
        for md, m in ((nn.ModuleDict(), nn.ReLU()), (torch.nn.ModuleDict(), torch.nn.ReLU())):
            with pytest.raises((TypeError, KeyError)) as info:
                md[bad] = m
            errors.append(info.type)
        assert errors[0] is errors[1], bad
