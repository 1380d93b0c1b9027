"""Module API: containers, parameters, state dicts, modes, gradient accumulation."""

import collections
import math

import numpy as np
import pytest
import reference as R
from helpers import GRADCHECK_TOL, assert_close, frozen, norm_mlp64, offset_randn

import normreg
from normreg import functional as F
from normreg import nn
from normreg.testing import check_gradients


def _mlp(dtype=np.float64):
    normreg.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 6, dtype=dtype),
        nn.BatchNorm1d(6, dtype=dtype),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(6, 3, dtype=dtype),
    )


def test_sequential_forward_backward_matches_reference_chain(rng):
    model = _mlp()
    l1, bn, _, drop, l2 = model
    x = rng.standard_normal((8, 4))
    state = normreg.default_generator.get_state().copy()
    y = model(x)
    # forward by the references, with the mask dropout actually used: the same generator
    # state gives the same mask (it depends on the seed and the counter only)
    h1 = R.linear(x, l1.weight.data, l1.bias.data)
    h2 = R.batch_norm_train(h1, bn.weight.data, bn.bias.data)[0]
    h3 = R.relu(h2)
    normreg.default_generator.set_state(state)
    keep = R.dropout_keep(F.dropout(h3, 0.3)[1], h3.shape)
    h4 = R.dropout(h3, keep, 0.3)
    assert_close(y, R.linear(h4, l2.weight.data, l2.bias.data), np.float64)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    d4, dW2, db2 = R.linear_backward(dy, h4, l2.weight.data)
    d3 = R.dropout_backward(d4, keep, 0.3)
    d2 = R.relu_backward(d3, h2)
    d1, dg, dbeta = R.batch_norm_train_backward(d2, h1, bn.weight.data)
    d0, dW1, db1 = R.linear_backward(d1, x, l1.weight.data)
    for got, want in [
        (dx, d0),
        (l2.weight.grad, dW2),
        (l2.bias.grad, db2),
        (bn.weight.grad, dg),
        (bn.bias.grad, dbeta),
        (l1.weight.grad, dW1),
        (l1.bias.grad, db1),
    ]:
        assert_close(got, want, np.float64)


def test_sequential_gradcheck(rng):
    normreg.manual_seed(1)
    model = norm_mlp64(nn.LayerNorm, 3, 5, 2)
    model[1].weight.data[...] = 1 + rng.standard_normal(5) * 0.3
    model[1].bias.data[...] = rng.standard_normal(5)
    x = offset_randn(rng, (4, 3))
    assert len(model.parameters()) == 6
    report = check_gradients(model, x, dy=rng.standard_normal((4, 2)), **GRADCHECK_TOL)
    assert report.ok and len(report.entries) == 1 + 6, str(report)


def test_residual_flatten_identity(rng):
    normreg.manual_seed(2)
    inner = nn.Linear(5, 5, dtype=np.float64)
    model = nn.Sequential(nn.Flatten(), nn.Residual(inner), nn.Identity())
    x = rng.standard_normal((3, 1, 5))
    y = model(x)
    flat = x.reshape(3, 5)
    assert_close(y, R.linear(flat, inner.weight.data, inner.bias.data) + flat, np.float64)
    dy = rng.standard_normal((3, 5))
    dx = model.backward(dy)
    assert dx.shape == x.shape
    rdx, rdW, rdb = R.linear_backward(dy, flat, inner.weight.data)
    assert_close(dx, (rdx + dy).reshape(x.shape), np.float64)
    assert_close(inner.weight.grad, rdW, np.float64)
    assert [n for n, _ in model.named_parameters()] == ["1.fn.weight", "1.fn.bias"]
    f = nn.Flatten()
    x4 = rng.standard_normal((2, 3, 4, 5))
    assert f(x4).shape == (2, 60)
    np.testing.assert_array_equal(f.backward(f(x4)), x4)
    assert nn.Flatten(start_dim=2)(x4).shape == (2, 3, 20)
    # PyTorch's end_dim and negative dimensions (x.reshape of the same dims as reference)
    for start, end, shape in (
        (1, 2, (2, 12, 5)),
        (0, -1, (120,)),
        (-3, -2, (2, 12, 5)),
        (2, 2, (2, 3, 4, 5)),
    ):
        f = nn.Flatten(start, end)
        assert f(x4).shape == shape
        np.testing.assert_array_equal(f.backward(f(x4)), x4)
    assert nn.Flatten(0)(np.float64(3.0)).shape == (1,)
    assert nn.Flatten()(np.zeros((0, 3, 4))).shape == (0, 12)  # an empty batch, as PyTorch
    assert nn.Flatten(0, 1)(np.zeros((2, 0, 4))).shape == (0, 4)
    for start, end in ((2, 1), (1, 4), (-5, -1)):
        with pytest.raises(ValueError, match="Flatten"):
            nn.Flatten(start, end)(x4)
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    ident = nn.Identity()
    np.testing.assert_array_equal(ident(x4), x4)


@pytest.mark.parametrize(
    "make, x_shape, y_shape",
    [
        (lambda: nn.Flatten(), (2, 3, 4), (2, 12)),
        (lambda: nn.Flatten(0, 1), (2, 3, 4), (6, 4)),
        (lambda: nn.Unflatten(1, (3, 4)), (2, 12), (2, 3, 4)),
        (lambda: nn.Unflatten(-1, (2, -1)), (5, 8), (5, 2, 4)),
    ],
)
def test_reshape_backward_takes_dy_of_the_output_shape_only(make, x_shape, y_shape):
    layer = make()
    x = np.arange(math.prod(x_shape), dtype=np.float64).reshape(x_shape)
    y = layer(x)
    assert y.shape == y_shape
    np.testing.assert_array_equal(y, x.reshape(y_shape))
    for wrong in (y_shape[::-1], (math.prod(y_shape),), x_shape):
        if wrong == y_shape:
            continue
        with pytest.raises(ValueError, match=r"dy must have shape \(.*\) \(the shape of the forward's"):
            layer.backward(np.ones(wrong))
    assert layer.pending_forwards == 1  # a backward that raised has taken nothing
    np.testing.assert_array_equal(layer.backward(y + 1), x + 1)


def test_flatten_backward_rejects_a_transposed_dy():
    f = nn.Flatten()
    f(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"Flatten.backward: dy must have shape \(2, 12\).*got \(12, 2\)"):
        f.backward(np.ones((12, 2)))


def test_unflatten_infers_one_minus_one_size():
    x = np.arange(24.0).reshape(3, 8)
    u = nn.Unflatten(1, (2, -1))
    np.testing.assert_array_equal(u(x), x.reshape(3, 2, 4))
    assert u.unflattened_size == (2, -1)
    assert repr(u) == "Unflatten(dim=1, unflattened_size=(2, -1))"
    np.testing.assert_array_equal(nn.Unflatten(0, [-1, 1, 3])(x), x.reshape(1, 1, 3, 8))
    np.testing.assert_array_equal(nn.Unflatten(1, (-1,))(x), x)
    assert nn.Unflatten(1, (2, -1))(np.zeros((3, 0))).shape == (3, 2, 0)  # 0 / 2, as PyTorch
    with pytest.raises(ValueError, match="Unflatten"):
        nn.Unflatten(1, (3, -1))(x)  # 3 does not divide 8
    with pytest.raises(ValueError, match="Unflatten"):
        nn.Unflatten(1, (16, -1))(x)
    with pytest.raises(ValueError, match="at most one -1"):
        nn.Unflatten(1, (-1, -1))
    for bad in ((2, -2), (0, 8), (-1, 0)):
        with pytest.raises(ValueError, match="unflattened_size"):
            nn.Unflatten(1, bad)
    with pytest.raises(TypeError, match="unflattened_size"):
        nn.Unflatten(1, 8)


@pytest.mark.parametrize(
    "make,backward_ref,x_shape,y_shape",
    [
        (lambda: nn.Linear(4, 3, dtype=np.float64), R.linear_backward, (5, 4), (5, 3)),
        (
            lambda: nn.LayerNorm(4, dtype=np.float64),
            lambda dy, x, w: R.layer_norm_backward(dy, x, (4,), w),
            (3, 4),
            (3, 4),
        ),
    ],
    ids=["Linear", "LayerNorm"],
)
def test_parameter_gradients_accumulate_until_zero_grad(rng, make, backward_ref, x_shape, y_shape):
    layer = make()
    x1, x2 = rng.standard_normal(x_shape), rng.standard_normal(x_shape)
    d1, d2 = rng.standard_normal(y_shape), rng.standard_normal(y_shape)
    for x, dy in ((x1, d1), (x2, d2)):
        layer(x)
        layer.backward(dy)
    _, w1, b1 = backward_ref(d1, x1, layer.weight.data)
    _, w2, b2 = backward_ref(d2, x2, layer.weight.data)
    assert_close(layer.weight.grad, w1 + w2, np.float64)
    assert_close(layer.bias.grad, b1 + b2, np.float64)
    held = layer.weight.grad
    layer.zero_grad(set_to_none=False)  # zeros in place
    assert layer.weight.grad is held and not held.any() and not layer.bias.grad.any()
    layer.zero_grad()  # PyTorch 2's default: no gradient
    assert layer.weight.grad is None and layer.bias.grad is None


def test_gradient_accumulation_through_sequential(rng):
    model = _mlp()
    model.eval()  # deterministic: no dropout, running statistics
    x1, x2 = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    d1, d2 = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    model(x1)
    model.backward(d1)
    g1 = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model(x2)
    model.backward(d2)
    g2 = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model(x1)
    model.backward(d1)
    model(x2)
    model.backward(d2)
    for p, a, b in zip(model.parameters(), g1, g2):
        assert_close(p.grad, a + b, np.float64)


def test_named_parameters_and_state_dict_round_trip(rng):
    model = _mlp(np.float32)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())
    model(rng.standard_normal((8, 4)).astype(np.float32))  # moves running stats
    state = model.state_dict()
    assert isinstance(state, collections.OrderedDict)
    # PyTorch's order: each module's parameters, then its buffers
    assert list(state) == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "4.weight",
        "4.bias",
    ]
    assert int(state["1.num_batches_tracked"]) == 1
    # copies, not views
    state["0.weight"][...] = 0
    assert model[0].weight.data.any()
    state = model.state_dict()

    other = _mlp(np.float32)
    normreg.manual_seed(99)
    other[0].reset_parameters()
    assert not np.array_equal(other[0].weight.data, model[0].weight.data)
    result = other.load_state_dict(state)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    model.eval()
    other.eval()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x), other(x))
    # the loaded arrays are copies: changing the dict later changes nothing
    state["0.bias"][...] = 5
    assert not (other[0].bias.data == 5).any()


def test_load_state_dict_errors(rng):
    model = _mlp(np.float32)
    before = model.state_dict()
    state = model.state_dict()
    del state["0.bias"]
    with pytest.raises(KeyError, match="0.bias"):
        model.load_state_dict(state)
    state = model.state_dict()
    state["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match="extra"):
        model.load_state_dict(state)
    res = model.load_state_dict(state, strict=False)
    assert res.unexpected_keys == ["extra"] and res.missing_keys == []
    state = model.state_dict()
    state["0.weight"] = np.zeros((3, 3), np.float32)
    state["0.bias"] = np.full(6, 7, np.float32)
    with pytest.raises(ValueError, match="0.weight"):
        model.load_state_dict(state)
    state = model.state_dict()
    state["4.weight"] = state["4.weight"].astype(np.complex128)  # not a real number
    state["0.bias"] = np.full(6, 7, np.float32)
    with pytest.raises(TypeError, match="4.weight"):
        model.load_state_dict(state)
    with pytest.raises(TypeError, match="state_dict"):
        model.load_state_dict([1, 2])
    # a failed load changes nothing
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_train_eval_propagate():
    model = nn.Sequential(
        nn.Linear(2, 2),
        nn.Sequential(nn.BatchNorm1d(2), nn.Dropout(0.5)),
        nn.Residual(nn.Sequential(nn.ReLU(), nn.Dropout())),
    )
    mods = list(model.modules())
    assert len(mods) == 9
    assert all(m.training for m in mods)
    assert model.eval() is model
    assert not any(m.training for m in mods)
    model.train()
    assert all(m.training for m in mods)
    model.train(False)
    assert not any(m.training for m in mods)


def test_eval_mode_is_deterministic(rng):
    model = _mlp(np.float32)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    for _ in range(3):
        model(x)
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))


def test_parameter_basics():
    p = nn.Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert p.shape == (2, 3) and p.dtype == np.float32 and p.size == 6
    assert p.grad is None  # until a backward adds a gradient (PyTorch)
    src = np.ones(3)
    q = nn.Parameter(src)
    assert q.data is src  # a float ndarray it can keep is shared, as torch.nn.Parameter does
    q.data[0] = 5
    assert src[0] == 5
    with pytest.raises(TypeError):
        nn.Parameter(np.arange(3))


@pytest.mark.parametrize(
    "make",
    [
        lambda: [1.0, 2.0, 3.0],
        lambda: np.ones(6)[::2],
        lambda: np.asfortranarray(np.ones((3, 2))),
        lambda: np.ones(3).astype(">f8"),
        lambda: frozen(np.ones(3)),
    ],
    ids=["list", "strided", "F-order", "byteswapped", "read-only"],
)
def test_parameter_copies_only_what_it_cannot_keep(make):
    src = make()
    if isinstance(src, np.ndarray) and not src.dtype.isnative:
        with pytest.raises(TypeError, match="float32 or float64"):
            nn.Parameter(src)
        return
    p = nn.Parameter(src)
    assert p.data is not src and p.data.flags.c_contiguous and p.data.flags.writeable
    np.testing.assert_array_equal(p.data, np.asarray(src))


def test_threads_setting():
    n = normreg.get_num_threads()
    try:
        normreg.set_num_threads(1)
        assert normreg.get_num_threads() == 1
        with pytest.raises(TypeError, match=r"\bn\b"):
            normreg.set_num_threads(1.5)
        for bad in (0, -2):
            with pytest.raises(ValueError, match=r"\bn\b"):
                normreg.set_num_threads(bad)
        assert normreg.get_num_threads() == 1
    finally:
        normreg.set_num_threads(n)
    assert isinstance(normreg.__version__, str)


def test_model_on_read_only_non_contiguous_input(rng):
    model = _mlp(np.float64)
    base = rng.standard_normal((4, 8))
    x = base[:, ::2]  # (4, 4), not contiguous
    x.flags.writeable = False
    base_copy = base.copy()
    normreg.manual_seed(8)
    y = model(x)
    dy = rng.standard_normal(y.shape)
    dy_ro = np.asfortranarray(dy)
    dy_ro.flags.writeable = False
    dx = model.backward(dy_ro)
    np.testing.assert_array_equal(base, base_copy)
    np.testing.assert_array_equal(dy_ro, dy)
    # the same as with a fresh contiguous copy
    other = _mlp(np.float64)
    normreg.manual_seed(8)
    np.testing.assert_allclose(other(np.ascontiguousarray(x)), y, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(other.backward(dy), dx, rtol=1e-13, atol=1e-13)


def test_apply_visits_children_first_then_the_module():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]

    def zero_linear(m):
        if isinstance(m, nn.Linear):
            m.weight.data[...] = 0

    model.apply(zero_linear)
    assert all(not p.data.any() for n, p in model.named_parameters() if n.endswith("weight"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_inplace_writes_the_input(dtype):
    """nn.ReLU(inplace=True), as PyTorch's: the output is the input array, rewritten."""
    x = np.array([[-1.5, 2.0, -0.0, 3.0], [np.nan, -np.inf, np.inf, -2.0]], dtype)
    expected = np.where(x > 0, x, 0).astype(dtype)
    expected[1, 0] = np.nan
    relu = nn.ReLU(inplace=True)
    y = relu(x)
    assert y is x
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), np.where(expected <= 0, 0, 1).astype(dtype))
    f = np.asfortranarray(np.array([[-1.0, 2.0], [3.0, -4.0]], dtype))  # computed apart, copied in
    assert relu(f) is f
    np.testing.assert_array_equal(f, [[0, 2], [3, 0]])
    frozen_x = np.array([-1.0, 1.0], dtype)
    frozen_x.flags.writeable = False
    with pytest.raises(ValueError, match=r"ReLU\(inplace=True\): x is read-only"):
        relu(frozen_x)
    assert relu.pending_forwards == 1  # the failed call saved nothing
    assert repr(relu) == "ReLU(inplace=True)" and repr(nn.ReLU()) == "ReLU()"
    with pytest.raises(TypeError, match="inplace"):
        nn.ReLU(inplace="yes")


def test_dropout_inplace_refuses_a_read_only_input_only_when_it_writes():
    x = np.ones((4, 4), np.float32)
    x.flags.writeable = False
    d = nn.Dropout(0.5, inplace=True)
    with pytest.raises(ValueError, match=r"Dropout\(inplace=True\): x is read-only"):
        d(x)
    d.eval()
    assert d(x) is x  # nothing dropped: x returned as it is


def test_sequential_from_an_ordered_dict_names_its_layers():
    """Sequential(OrderedDict(...)) as PyTorch's: the keys name the layers (named_children,
    state_dict keys, attributes); positions index them."""
    import copy
    import pickle

    fc, act, out = nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)
    seq = nn.Sequential(collections.OrderedDict([("fc", fc), ("act", act), ("out", out)]))
    assert [n for n, _ in seq.named_children()] == ["fc", "act", "out"]
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias", "out.weight", "out.bias"]
    assert seq.fc is fc and seq.out is out and seq[0] is fc and seq[-1] is out and len(seq) == 3
    assert [n for n, _ in seq[1:].named_children()] == ["act", "out"]
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with normreg.no_grad():
        expected = out(act(fc(x)))  # the same layers, in order
    y = seq(x)
    np.testing.assert_array_equal(y, expected)
    assert seq.backward(np.ones_like(y)).shape == x.shape
    seq.append(nn.Identity())
    assert [n for n, _ in seq.named_children()] == ["fc", "act", "out", "3"]
    other = nn.Linear(4, 3)
    seq.fc = other  # replaces the layer, as PyTorch's
    assert seq[0] is other and seq.fc is other and any(p is other.weight for p in seq.parameters())
    with pytest.raises(TypeError, match="must be a Module"):
        seq.act = 3
    for clone in (copy.deepcopy(seq), pickle.loads(pickle.dumps(seq))):
        assert list(clone.state_dict()) == list(seq.state_dict()) and isinstance(clone.fc, nn.Linear)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = seq.missing
    assert [n for n, _ in nn.Sequential(fc, act).named_children()] == ["0", "1"]
    tail = nn.Sequential(fc, act, out)[1:].append(nn.Identity())  # a slice keeps "1", "2"
    assert [n for n, _ in tail.named_children()] == ["1", "2", "3"]
    for bad, error in (
        ({"a.b": fc}, KeyError),
        ({"": fc}, KeyError),
        ({"training": fc}, KeyError),
        ({"_layers": fc}, KeyError),
        ({"forward": fc}, KeyError),
        ({1: fc}, TypeError),
        ({"a": 3}, TypeError),
    ):
        with pytest.raises(error):
            nn.Sequential(bad)


def test_identity_takes_and_ignores_any_arguments():
    ident = nn.Identity(54, unused_argument1=0.1, unused_argument2=False)  # PyTorch's example
    x = np.arange(6.0).reshape(2, 3)
    assert ident(x) is x and ident.backward(x) is x
