"""normreg.data.DataLoader: batches in order and shuffled (pairs kept, reproducible per seed,
the default generator for seed=None, also in a copied or unpickled loader), drop_last, x
alone, bad arguments; every batch a fresh array, so writing into one (an in-place module)
leaves the data set as it was."""

import copy
import pickle

import numpy as np
import pytest

import normreg
from normreg import nn
from normreg.data import DataLoader


def _xy(n=103):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64)
    return x, y


def test_dataloader_batches_in_order():
    x, y = _xy()
    loader = DataLoader(x, y, batch_size=10)
    batches = list(loader)
    assert len(loader) == len(batches) == 11
    assert [len(b[1]) for b in batches] == [10] * 10 + [3]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_dataloader_drop_last():
    x, y = _xy()
    loader = DataLoader(x, y, batch_size=10, shuffle=True, drop_last=True, seed=0)
    batches = list(loader)
    assert len(loader) == len(batches) == 10
    assert all(len(b[0]) == 10 for b in batches)
    assert len(DataLoader(x, y, batch_size=200, drop_last=True)) == 0
    assert len(DataLoader(x, y, batch_size=200)) == 1


def test_dataloader_shuffle_is_a_permutation_with_pairs_kept():
    x, y = _xy()
    for xb, yb in DataLoader(x, y, batch_size=16, shuffle=True, seed=1):
        np.testing.assert_array_equal(xb, x[yb])  # rows stay with their labels
    seen = np.concatenate([yb for _, yb in DataLoader(x, y, batch_size=16, shuffle=True, seed=1)])
    assert sorted(seen) == list(range(len(y)))
    assert not np.array_equal(seen, y)


def test_dataloader_reproducible_shuffling():
    x, y = _xy()

    def epochs(loader, k=3):
        return [np.concatenate([yb for _, yb in loader]) for _ in range(k)]

    a = epochs(DataLoader(x, y, batch_size=16, shuffle=True, seed=7))
    b = epochs(DataLoader(x, y, batch_size=16, shuffle=True, seed=7))
    c = epochs(DataLoader(x, y, batch_size=16, shuffle=True, seed=8))
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a[0], a[1])  # a new order every epoch
    assert not np.array_equal(a[0], c[0])
    # seed=None follows normreg.manual_seed
    normreg.manual_seed(3)
    d = epochs(DataLoader(x, y, batch_size=16, shuffle=True), 2)
    normreg.manual_seed(3)
    e = epochs(DataLoader(x, y, batch_size=16, shuffle=True), 2)
    np.testing.assert_array_equal(d[0], e[0])
    np.testing.assert_array_equal(d[1], e[1])


def test_dataloader_x_only_and_errors():
    x, _ = _xy(20)
    batches = list(DataLoader(x, batch_size=8))
    assert [b.shape for b in batches] == [(8, 3), (8, 3), (4, 3)]
    with pytest.raises(ValueError, match="same number of samples"):
        DataLoader(x, np.zeros(19), batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        DataLoader(x, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        DataLoader(x, batch_size=2.5)


# ---- batches are fresh arrays ---------------------------------------------------------------


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("with_y", [True, False])
def test_writing_into_a_batch_leaves_the_data_set_unchanged(shuffle, with_y):
    x, y = _xy(23)
    x0, y0 = x.copy(), y.copy()
    loader = DataLoader(x, y if with_y else None, batch_size=4, shuffle=shuffle, seed=0)
    drop = nn.Dropout(0.5, inplace=True)
    seen = []
    for batch in loader:
        xb, yb = batch if with_y else (batch, None)
        assert not np.shares_memory(xb, x)
        drop(xb)  # the example: dropout in place on the batch
        xb[...] = -1
        if with_y:
            assert not np.shares_memory(yb, y)
            seen.append(yb.copy())
            yb[...] = -1
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    if with_y:  # and the batches were the data's rows before they were written
        assert sorted(np.concatenate(seen)) == list(range(23))


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_of_read_only_data_are_writeable_copies(shuffle):
    x, y = _xy(10)
    x.flags.writeable = False
    for xb, yb in DataLoader(x, y, batch_size=4, shuffle=shuffle, seed=0):
        assert xb.flags.writeable and yb.flags.writeable
        np.testing.assert_array_equal(xb, x[yb])


# ---- seed=None in a copied or unpickled loader ----------------------------------------------


def _epoch_labels(loader):
    return np.concatenate([yb for _, yb in loader])


@pytest.mark.parametrize(
    "clone", [copy.deepcopy, lambda loader: pickle.loads(pickle.dumps(loader))], ids=["deepcopy", "pickle"]
)
def test_copied_loader_without_seed_follows_manual_seed(clone):
    x, y = _xy(40)
    loader = clone(DataLoader(x, y, batch_size=8, shuffle=True))
    assert loader.generator is normreg.default_generator
    normreg.manual_seed(3)
    first = _epoch_labels(loader)
    normreg.manual_seed(3)
    again = _epoch_labels(loader)
    normreg.manual_seed(3)
    fresh = _epoch_labels(DataLoader(x, y, batch_size=8, shuffle=True))
    # the first draw after manual_seed(3) is that of a generator seeded with 3
    expected = normreg.Generator(3).numpy().permutation(40)
    for order in (first, again, fresh):
        np.testing.assert_array_equal(order, expected)


@pytest.mark.parametrize(
    "clone", [copy.deepcopy, lambda loader: pickle.loads(pickle.dumps(loader))], ids=["deepcopy", "pickle"]
)
def test_copied_loader_with_a_seed_keeps_its_own_generator(clone):
    x, y = _xy(40)
    loader = DataLoader(x, y, batch_size=8, shuffle=True, seed=5)
    _epoch_labels(loader)
    copied = clone(loader)
    assert copied.generator is not loader.generator
    normreg.manual_seed(0)  # does not touch a seeded loader
    np.testing.assert_array_equal(_epoch_labels(copied), _epoch_labels(loader))  # the second epoch
    g = normreg.Generator(5)
    g.numpy(), g.numpy()  # the first two epochs
    np.testing.assert_array_equal(_epoch_labels(copied), g.numpy().permutation(40))  # the third


def test_a_loader_pickled_with_its_generator_as_an_attribute_still_shuffles():
    """Loaders pickled when the generator was the attribute ``generator`` (a state without
    ``_generator``) load with that generator and draw the same orders."""
    x = np.arange(20.0).reshape(10, 2)
    dl = DataLoader(x, batch_size=4, shuffle=True, seed=3)
    old_state = dict(vars(dl))
    old_state["generator"] = old_state.pop("_generator")
    old = DataLoader.__new__(DataLoader)
    old.__setstate__(old_state)
    restored = pickle.loads(pickle.dumps(old))
    for a, b in zip(dl, restored):
        np.testing.assert_array_equal(a, b)
    assert len(list(restored)) == 3
