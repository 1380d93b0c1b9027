"""normreg.models: MLP and MLPResNet structure, their forward against the references and
their backward against central differences (normreg.testing.gradcheck)."""

import numpy as np
import pytest
import reference as R

import normreg
from normreg import nn
from normreg.models import MLP, MLPResNet
from normreg.testing import gradcheck


def _types(model):
    return [type(m).__name__ for m in model]


def test_mlp_structure():
    m = MLP(784, [64, 32], 10, norm="batch", dropout=0.2)
    assert _types(m) == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert [(lin.in_features, lin.out_features) for lin in m if isinstance(lin, nn.Linear)] == [
        (784, 64),
        (64, 32),
        (32, 10),
    ]
    assert _types(MLP(5, 8, 3, norm="layer", depth=3)) == ["Linear", "LayerNorm", "ReLU"] * 3 + ["Linear"]
    assert _types(MLP(5, 8, 3, norm=None)) == ["Linear", "ReLU", "Linear"]
    assert _types(MLP(5, 8, 3, norm="none", depth=0)) == ["Linear"]
    assert m(np.zeros((4, 784), np.float32)).shape == (4, 10)


def test_mlp_bad_arguments():
    with pytest.raises(ValueError, match="norm must be"):
        MLP(5, 8, 3, norm="group")
    with pytest.raises(ValueError, match="dropout must be in"):
        MLP(5, 8, 3, dropout=1.0)
    with pytest.raises(ValueError, match="depth is only used"):
        MLP(5, [8, 8], 3, depth=2)
    with pytest.raises(ValueError, match="positive"):
        MLP(5, [8, 0], 3)
    with pytest.raises(TypeError, match="hidden"):
        MLP(5, "wide", 3)


def test_resnet_structure():
    r = MLPResNet(20, hidden=16, num_classes=4, num_blocks=2, norm="batch", dropout=0.1)
    assert _types(r) == ["Linear", "ReLU", "ResidualBlock", "ResidualBlock", "Linear"]
    block = r[2]
    assert _types(block) == ["Residual", "ReLU"]
    assert _types(block[0].fn) == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d"]
    assert (block[0].fn[0].in_features, block[0].fn[0].out_features) == (16, 8)
    assert (block[0].fn[4].in_features, block[0].fn[4].out_features) == (8, 16)
    # hw2's default: 3 blocks of hidden 100
    assert len([m for m in MLPResNet(784) if type(m).__name__ == "ResidualBlock"]) == 3
    assert _types(MLPResNet(6, 8, 3, 1, norm=None, dropout=0)[2][0].fn) == ["Linear", "ReLU", "Linear"]
    assert r(np.zeros((5, 20), np.float32)).shape == (5, 4)


def _resnet_reference(x, r):
    """An independent NumPy forward of an MLPResNet(norm='layer', dropout=0)."""

    def ln(z, norm):
        return R.layer_norm(z, z.shape[-1:], norm.weight.data, norm.bias.data)[0]

    def lin(z, layer):
        return R.linear(z, layer.weight.data, layer.bias.data)

    h = R.relu(lin(x, r[0]))
    for block in list(r)[2:-1]:
        lin1, n1, _, lin2, n2 = block[0].fn
        z = ln(lin(R.relu(ln(lin(h, lin1), n1)), lin2), n2)
        h = R.relu(z + h)
    return lin(h, r[-1])


def test_resnet_forward_matches_numpy_reference():
    normreg.manual_seed(1)
    r = MLPResNet(12, hidden=10, num_classes=3, num_blocks=2, norm="layer", dropout=0.0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((6, 12))
    np.testing.assert_allclose(r(x), _resnet_reference(x, r), rtol=1e-10, atol=1e-12)


# Central differences of sum(dy * model(x)) for every input and parameter element.
MODEL_GRADCHECK_TOL = dict(rtol=1e-5, atol=1e-6, eps=1e-6)


@pytest.mark.parametrize("norm", ["batch", "layer", None])
def test_mlp_backward_finite_differences(norm):
    normreg.manual_seed(2)
    rng = np.random.default_rng(3)
    model = MLP(5, [7, 6], 4, norm=norm, dtype=np.float64)
    x = 5 * rng.standard_normal((8, 5)) + 12
    assert gradcheck(
        model, x, dy=rng.standard_normal((len(x), model[-1].out_features)), **MODEL_GRADCHECK_TOL
    )


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_resnet_backward_finite_differences(norm):
    normreg.manual_seed(4)
    rng = np.random.default_rng(5)
    model = MLPResNet(5, hidden=6, num_classes=3, num_blocks=2, norm=norm, dropout=0.0, dtype=np.float64)
    x = 5 * rng.standard_normal((7, 5)) + 12
    assert gradcheck(
        model, x, dy=rng.standard_normal((len(x), model[-1].out_features)), **MODEL_GRADCHECK_TOL
    )


def test_dropout_model_trains_and_evaluates():
    # eval() turns dropout off: the output is deterministic; train() draws new masks
    normreg.manual_seed(0)
    model = MLP(6, 16, 3, norm="batch", dropout=0.5)
    x = np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32)
    model.train()
    a, b = model(x), model(x)
    assert not np.array_equal(a, b)
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))
    assert model.backward(np.ones((10, 3), np.float32)).shape == (10, 6)
