"""Module's methods on members by name, as PyTorch's: ``recurse``, ``register_parameter``,
``add_module``/``register_module`` (on a Module and on the containers), against names,
objects and errors written here."""

import collections.abc

import numpy as np
import pytest

import normreg
from normreg import nn


class Block(nn.Module):
    """A parameter and a buffer of its own, and two children."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(3, np.float32))
        self.lin = nn.Linear(2, 3)
        self.norm = nn.BatchNorm1d(3)
        self.register_buffer("count", np.zeros(1, np.float32))


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
