"""Module's methods on members by name, as PyTorch's: ``named_parameters``,
``named_buffers``, ``parameters`` and ``buffers`` with ``recurse`` and
``remove_duplicate``, against names and objects written here."""

import collections.abc

import numpy as np
import pytest

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
