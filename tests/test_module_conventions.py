"""PyTorch's conventions for modules: a module held twice (modules(), children(), apply(),
the state_dict's keys), train() taking only a bool, Residual around an in-place module."""

import numpy as np
import pytest

import normreg
from normreg import nn


def test_a_module_held_twice_is_one_module_but_has_each_name_in_the_state_dict():
    """PyTorch's rules for a shared module (Sequential(l, ReLU(), l)): modules(), children()
    and apply() visit it once, parameters() lists its weights once, the state_dict has a key
    for each name it is held under (so PyTorch's checkpoints of such a model load), and the
    repr shows every position."""
    l, bn = nn.Linear(3, 3), nn.BatchNorm1d(3)
    s = nn.Sequential(l, nn.ReLU(), l, bn, bn)
    assert [type(m).__name__ for m in s.modules()] == ["Sequential", "Linear", "ReLU", "BatchNorm1d"]
    assert [n for n, _ in s.named_children()] == ["0", "1", "3"]
    assert len(list(s.named_modules(remove_duplicate=False))) == 6
    scaled = []

    def halve(m):
        if isinstance(m, nn.Linear):
            scaled.append(m)
            m.weight.data *= 0.5

    w0 = l.weight.data.copy()
    s.apply(halve)
    assert scaled == [l]
    np.testing.assert_array_equal(l.weight.data, 0.5 * w0)
    assert len(s.parameters()) == 4  # l's weight and bias, bn's
    keys = list(s.state_dict())
    assert keys[:4] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [k[2:] for k in keys if k[:2] == "3."] == [k[2:] for k in keys if k[:2] == "4."]
    assert "4.weight" in keys and "4.running_var" in keys
    state = s.state_dict()
    state["0.weight"] = np.full((3, 3), 7.0, np.float32)
    state["2.weight"] = np.full((3, 3), 7.0, np.float32)
    s.load_state_dict(state)
    assert (l.weight.data == 7).all()
    assert "(2): Linear" in repr(s) and "(4): BatchNorm1d" in repr(s)
    assert len(s[0:3]) == 3 and s[0:3][2] is l  # a slice keeps both places


@pytest.mark.parametrize("mode", ["eval", "False", 0, 1, None, 1.0])
def test_train_takes_only_a_bool(mode):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    with pytest.raises(ValueError, match="mode must be a bool"):
        model.train(mode)
    assert all(m.training for m in model.modules())
    model.train(np.bool_(False))
    assert not any(m.training for m in model.modules())


@pytest.mark.parametrize("first", [lambda: nn.ReLU(inplace=True), lambda: nn.Dropout(0.5, inplace=True)])
def test_residual_around_an_inplace_module_keeps_its_skip_and_gradient_consistent(rng, first):
    """Residual(Sequential(in-place op, Linear)): y = x + W(op(x)), with x untouched and
    dx = dy + op'(x) (dy W^T) (the NumPy reference; the op's mask taken from its output)."""
    normreg.manual_seed(3)
    lin = nn.Linear(4, 4, dtype=np.float64)
    op = first()
    block = nn.Residual(nn.Sequential(op, lin))
    x = rng.standard_normal((5, 4))
    x0 = x.copy()
    y = block(x)
    np.testing.assert_array_equal(x, x0)
    h = y - x - lin.bias.data  # op(x) W
    a = np.linalg.solve(lin.weight.data.T, h.T).T  # op(x)
    kept = np.abs(a) > 1e-9  # op(x) is 0 where dropped (the solve leaves 1e-16)
    np.testing.assert_allclose(a[kept], (x * (1 if isinstance(op, nn.ReLU) else 2))[kept], rtol=1e-8)
    if isinstance(op, nn.ReLU):
        np.testing.assert_array_equal(kept, x > 0)
    dy = rng.standard_normal((5, 4))
    dx = block.backward(dy)
    scale = 1.0 if isinstance(op, nn.ReLU) else 2.0
    np.testing.assert_allclose(dx, dy + kept * scale * (dy @ lin.weight.data.T), rtol=1e-10, atol=1e-12)


def test_reprs_read_as_pytorchs():
    """PyTorch 2's reprs of these layers, character for character."""
    assert repr(nn.LayerNorm(8)) == "LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=True)"
    assert (
        repr(nn.LayerNorm(8, bias=False)) == "LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=False)"
    )
    assert repr(nn.LayerNorm(8, elementwise_affine=False)).endswith("elementwise_affine=False, bias=False)")
    assert repr(nn.Dropout()) == "Dropout(p=0.5, inplace=False)"
    assert repr(nn.Dropout(0.2, inplace=True)) == "Dropout(p=0.2, inplace=True)"
