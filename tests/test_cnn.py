"""models.CNN with every normalization, and normreg-train --model cnn end to end."""

import json

import numpy as np
import pytest
import reference as R
from _synthetic import FILES, write_idx
from helpers import train_argv

import normreg
from normreg import nn
from normreg.data import load_fashion_mnist
from normreg.models import CNN, NORMS_2D, make_norm2d
from normreg.testing import gradcheck
from normreg.train import CNN_RECIPE, build_model, default_config, evaluate, main

NORM_TYPES = {
    "batch": nn.BatchNorm2d,
    "group": nn.GroupNorm,
    "layer": nn.GroupNorm,
    "instance": nn.InstanceNorm2d,
}


@pytest.mark.parametrize("norm", NORMS_2D)
def test_structure(norm):
    m = CNN(1, 10, channels=(8, 16), norm=norm, input_shape=(1, 12, 12))
    kinds = [type(layer).__name__ for layer in m]
    norm_layer = [NORM_TYPES[norm].__name__] if norm != "none" else []
    expected = ["Unflatten", "Conv2d"] + norm_layer + ["ReLU", "MaxPool2d", "Conv2d"]
    assert kinds[: len(expected)] == expected
    assert kinds[-3:] == ["AdaptiveAvgPool2d", "Flatten", "Linear"]
    convs = [layer for layer in m if isinstance(layer, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 8), (8, 16)]
    # a batch or instance norm subtracts the conv bias: the conv has none before them
    assert all((c.bias is None) == (norm in ("batch", "instance")) for c in convs)
    if norm == "layer":
        assert all(g.num_groups == 1 for g in m if isinstance(g, nn.GroupNorm))
    if norm == "group":
        assert [g.num_groups for g in m if isinstance(g, nn.GroupNorm)] == [8, 8]
    y = m(np.random.default_rng(0).random((3, 144), dtype=np.float32))
    assert y.shape == (3, 10) and y.dtype == np.float32
    assert m.backward(np.ones_like(y)).shape == (3, 144)


def test_blocks_per_stage():
    m = CNN(3, 5, channels=(4, 6), norm="none", blocks=2)
    convs = [(c.in_channels, c.out_channels) for c in m if isinstance(c, nn.Conv2d)]
    assert convs == [(3, 4), (4, 4), (4, 6), (6, 6)]
    assert m(np.zeros((2, 3, 8, 8), np.float32)).shape == (2, 5)


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "instance", "none"])
def test_gradcheck_small_cnn(norm):
    normreg.manual_seed(3)
    m = CNN(2, 3, channels=(4, 4), norm=norm, dtype=np.float64)
    x = 5 * np.random.default_rng(1).standard_normal((3, 2, 6, 6)) + 12
    assert gradcheck(m, x, atol=1e-6, rtol=1e-5)


def test_forward_matches_a_numpy_pipeline(rng):
    """The network, layer by layer, against the references (no norm: convolution, ReLU,
    pooling and the head)."""
    m = CNN(1, 4, channels=(3, 5), norm="none", dtype=np.float64)
    x = rng.standard_normal((2, 1, 9, 9))
    c1, c2 = [c for c in m if isinstance(c, nn.Conv2d)]
    lin = m[-1]
    h = np.maximum(R.conv2d(x, c1.weight.data, c1.bias.data, 1, 1), 0)
    h = R.max_pool2d(h, 2)[0]
    h = np.maximum(R.conv2d(h, c2.weight.data, c2.bias.data, 1, 1), 0)
    h = R.adaptive_avg_pool2d(h, 1).reshape(2, 5)
    np.testing.assert_allclose(m(x), h @ lin.weight.data + lin.bias.data, rtol=1e-12, atol=1e-12)


def test_state_dict_round_trip():
    a = CNN(1, 10, channels=(4, 8), input_shape=(1, 8, 8))
    b = CNN(1, 10, channels=(4, 8), input_shape=(1, 8, 8))
    x = np.random.default_rng(0).random((4, 64), dtype=np.float32)
    a(x)  # moves the running estimates
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x), b(x))


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        (dict(norm="batchnorm"), ValueError),
        (dict(channels=()), ValueError),
        (dict(channels=(8, 0)), ValueError),
        (dict(channels="8"), TypeError),
        (dict(blocks=0), ValueError),
        (dict(input_shape=(3, 28, 28)), ValueError),
    ],
)
def test_bad_arguments(kwargs, exc):
    with pytest.raises(exc):
        CNN(1, 10, **kwargs)
    with pytest.raises(ValueError, match="12 channels are more than 8 and not a multiple of 8"):
        make_norm2d("group", 12)  # 8 groups do not divide 12 channels


@pytest.mark.parametrize("channels, groups", [(1, 1), (6, 6), (8, 8), (16, 8), (24, 8)])
def test_group_norm_has_min_8_c_groups(channels, groups):
    """The documented rule: GroupNorm(min(8, C), C)."""
    norm = [
        m for m in CNN(1, 10, channels=(channels,), norm="group").modules() if isinstance(m, nn.GroupNorm)
    ]
    assert [(m.num_groups, m.num_channels) for m in norm] == [(groups, channels)]


def test_group_norm_channels_not_a_multiple_of_8():
    with pytest.raises(
        ValueError, match=r"^CNN: channels \(8, 12\): norm='group' uses GroupNorm\(min\(8, C\), C\)"
    ):
        CNN(1, 10, channels=(8, 12), norm="group")


def test_stages_must_leave_at_least_one_position():
    """Each MaxPool2d(2) halves the size, rounding down: 28 -> 14 -> 7 -> 3 -> 1 after 4 pools
    (5 stages), 0 after 5; a 28x3 input allows 2 stages (3 -> 1)."""
    x = np.zeros((2, 784), np.float32)
    assert CNN(1, 10, channels=(4,) * 5, input_shape=(1, 28, 28))(x).shape == (2, 10)
    with pytest.raises(ValueError, match=r"^CNN: channels has 6 stages, whose 5 MaxPool2d\(2\) reduce "):
        CNN(1, 10, channels=(4,) * 6, input_shape=(1, 28, 28))
    CNN(1, 10, channels=(4, 4), input_shape=(1, 28, 3))
    with pytest.raises(ValueError, match="28x3 to nothing: at most 2 stages"):
        CNN(1, 10, channels=(4, 4, 4), input_shape=(1, 28, 3))


# ---- normreg-train --model cnn -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Fashion-MNIST's file format; class k: stripes of period k + 2 (vertical for even k,
    horizontal for odd k) plus noise. (The MLP tests' random per-class patterns have the same
    local statistics in every class: nothing a globally pooled CNN can tell apart.)"""
    directory = tmp_path_factory.mktemp("tiny-fmnist-cnn")
    rng = np.random.default_rng(0)
    grid = np.arange(28)
    for (images_file, labels_file), n in (((FILES[0], FILES[1]), 400), ((FILES[2], FILES[3]), 100)):
        labels = rng.integers(0, 10, n)
        period = (labels + 2)[:, None, None]
        coord = np.where(labels[:, None, None] % 2 == 0, grid[None, None, :], grid[None, :, None])
        stripes = 255 * ((coord + rng.integers(0, 12, (n, 1, 1))) % period < period / 2)
        images = np.clip(0.8 * stripes + rng.normal(0, 25, (n, 28, 28)), 0, 255).astype(np.uint8)
        write_idx(directory / images_file, images)
        write_idx(directory / labels_file, labels.astype(np.uint8))
    return directory


def test_default_recipe():
    c = default_config("cnn").resolved()
    assert (c.model, c.width, c.norm, c.dropout, c.batch_size, c.epochs) == (
        "cnn",
        [32, 64, 128],
        "batch",
        0.0,
        128,
        15,
    )
    assert (c.optimizer, c.lr, c.weight_decay, c.schedule, c.nesterov) == ("sgd", 0.1, 5e-4, "cosine", True)
    assert default_config("cnn", lr=0.05, epochs=3).resolved().lr == 0.05
    assert default_config("cnn", optimizer="adam").resolved().lr == 1e-3  # the optimizer's default
    assert CNN_RECIPE["model"] == "cnn"
    assert default_config("mlp") == default_config()


def test_train_cnn_end_to_end(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(tiny, out, model="cnn", width="8,16", epochs=3, batch_size=25, threads=1)) == 0
    printed = capsys.readouterr().out
    assert "normreg-train: cnn width=[8, 16]" in printed and "batch 25" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model"] == "cnn" and metrics["config"]["dropout"] == 0.0
    last = metrics["epochs"][-1]
    assert last["test_acc"] > 0.5, printed  # 10 classes: chance is 0.1
    state = normreg.load(out / "checkpoint.npz")
    config = default_config("cnn", width=[8, 16])
    model = build_model(config, 784, 10)
    model.load_state_dict(state["model"])
    _, _, x_test, y_test = load_fashion_mnist(tiny)
    assert evaluate(model, x_test, y_test)[1] == pytest.approx(last["test_acc"], abs=1e-12)


@pytest.mark.parametrize("extra", [["--dropout", "0.2"], ["--norm", "group", "--width", "12"]])
def test_train_cnn_bad_configuration(tiny, tmp_path, extra, capsys):
    assert main(train_argv(tiny, tmp_path / "r", *extra, model="cnn", epochs=1)) == 2
    assert "normreg-train:" in capsys.readouterr().err
