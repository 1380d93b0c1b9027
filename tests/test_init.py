"""Initializers: statistics of the draws against the formulas, fans in normreg's (in, out)
Linear layout for 2-D weights and PyTorch's (out, in, *kernel) layout for convolution
weights, reproducibility, bad arguments."""

import math
import warnings

import numpy as np
import pytest

import normreg
from normreg import init, nn
from normreg.nn import Parameter

N_SIGMA = 6  # tolerance on sample statistics, in standard errors


def check_uniform(x, bound):
    """x drawn from U(-bound, bound): bounds, mean and variance within N_SIGMA standard errors."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    assert x.min() >= -bound and x.max() <= bound
    assert x.min() < -0.95 * bound and x.max() > 0.95 * bound
    var = bound**2 / 3
    assert abs(x.mean()) < N_SIGMA * math.sqrt(var / n)
    # Var of x**2 for U(-b, b): b^4/5 - b^4/9
    assert abs(x.var() - var) < N_SIGMA * math.sqrt(4 * bound**4 / 45 / n)


def check_normal(x, mean, std):
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    assert abs(x.mean() - mean) < N_SIGMA * std / math.sqrt(n)
    assert abs(x.var() - std**2) < N_SIGMA * math.sqrt(2 * std**4 / n)
    # tails: about 4.55% outside 2 std
    outside = np.mean(np.abs(x - mean) > 2 * std)
    assert abs(outside - 0.0455) < N_SIGMA * math.sqrt(0.0455 * 0.9545 / n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_and_normal(dtype):
    x = np.empty((300, 200), dtype)
    assert init.uniform_(x, -0.5, 1.5) is x
    x64 = x.astype(np.float64)
    assert x64.min() >= -0.5 and x64.max() <= 1.5
    check_uniform(x64 - 0.5, 1.0)
    init.normal_(x, mean=2.0, std=0.3)
    assert x.dtype == dtype
    check_normal(x, 2.0, 0.3)


def test_constant_zeros_ones_on_parameters_and_arrays():
    p = Parameter(np.empty((3, 4)))
    assert init.constant_(p, 2.5) is p
    np.testing.assert_array_equal(p.data, 2.5)
    init.zeros_(p)
    np.testing.assert_array_equal(p.data, 0.0)
    x = np.empty(5, np.float32)
    init.ones_(x)
    np.testing.assert_array_equal(x, 1.0)


def test_calculate_gain_table():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "a")


def test_fans_follow_the_in_out_layout():
    assert init.calculate_fan_in_and_fan_out(np.empty((30, 7))) == (30, 7)
    assert init.calculate_fan_in_and_fan_out(Parameter(np.empty((7, 30)))) == (7, 30)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.calculate_fan_in_and_fan_out(np.empty(5))


@pytest.mark.parametrize(
    "shape, fans",
    [
        # (out, in, *kernel): fan_in = in * prod(kernel), fan_out = out * prod(kernel)
        ((8, 4, 5), (4 * 5, 8 * 5)),
        ((64, 3, 3, 3), (3 * 9, 64 * 9)),
        ((4, 5, 3, 2), (5 * 6, 4 * 6)),
        ((2, 3, 4, 5, 6), (3 * 120, 2 * 120)),
        ((6, 2, 0, 3), (0, 0)),
    ],
)
def test_fans_of_convolution_weights_follow_pytorch_layout(shape, fans):
    assert init.calculate_fan_in_and_fan_out(np.empty(shape)) == fans
    assert init.calculate_fan_in_and_fan_out(Parameter(np.empty(shape, np.float32))) == fans


def test_fans_of_the_layers_weights():
    lin = nn.Linear(20, 50)  # weight (in, out)
    assert init.calculate_fan_in_and_fan_out(lin.weight) == (20, 50)
    conv = nn.Conv2d(3, 64, 3)  # weight (out, in, kh, kw)
    assert init.calculate_fan_in_and_fan_out(conv.weight) == (3 * 3 * 3, 64 * 3 * 3)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_on_a_conv2d_weight(mode):
    conv = nn.Conv2d(16, 32, 3, dtype=np.float64)
    fan = 16 * 3 * 3 if mode == "fan_in" else 32 * 3 * 3
    normreg.manual_seed(1)
    init.kaiming_uniform_(conv.weight, mode=mode, nonlinearity="relu")
    check_uniform(conv.weight.data, math.sqrt(2) * math.sqrt(3 / fan))  # gain * sqrt(3 / fan)
    init.kaiming_normal_(conv.weight, mode=mode, nonlinearity="relu")
    check_normal(conv.weight.data, 0.0, math.sqrt(2) / math.sqrt(fan))  # gain / sqrt(fan)


def test_kaiming_normal_on_a_conv2d_weight_of_few_input_channels():
    conv = nn.Conv2d(3, 64, 3, dtype=np.float64)
    init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    check_normal(conv.weight.data, 0.0, math.sqrt(2 / 27))  # fan_in = 3 * 3 * 3


def test_xavier_on_a_conv2d_weight():
    conv = nn.Conv2d(8, 24, (3, 2), dtype=np.float64)
    fan_in, fan_out = 8 * 6, 24 * 6
    init.xavier_uniform_(conv.weight, gain=1.5)
    check_uniform(conv.weight.data, 1.5 * math.sqrt(6 / (fan_in + fan_out)))
    init.xavier_normal_(conv.weight)
    check_normal(conv.weight.data, 0.0, math.sqrt(2 / (fan_in + fan_out)))


def test_conv2d_default_initialization_uses_pytorch_fan_in():
    """PyTorch's rule: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = in_channels * kH * kW, and the bias from the same range."""
    normreg.manual_seed(4)
    conv = nn.Conv2d(4, 200, 3, dtype=np.float64)  # fan_in 36, fan_out 1800
    check_uniform(conv.weight.data, 1 / math.sqrt(36))
    assert np.abs(conv.bias.data).max() <= 1 / math.sqrt(36)
    assert np.abs(conv.bias.data).max() > 1 / math.sqrt(1800)


@pytest.mark.parametrize("shape", [(400, 100), (100, 400)])
def test_xavier(shape):
    fan_in, fan_out = shape
    w = np.empty(shape, np.float64)
    init.xavier_uniform_(w, gain=2.0)
    check_uniform(w, 2.0 * math.sqrt(6 / (fan_in + fan_out)))
    init.xavier_normal_(w, gain=0.5)
    check_normal(w, 0.0, 0.5 * math.sqrt(2 / (fan_in + fan_out)))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_uses_shape0_as_fan_in(mode):
    shape = (500, 80)  # (in_features, out_features)
    fan = 500 if mode == "fan_in" else 80
    w = Parameter(np.empty(shape, np.float32))
    init.kaiming_uniform_(w, mode=mode, nonlinearity="relu")
    check_uniform(w.data, math.sqrt(2) * math.sqrt(3 / fan))
    init.kaiming_normal_(w, a=0.1, mode=mode)
    check_normal(w.data, 0.0, math.sqrt(2 / (1 + 0.01)) / math.sqrt(fan))


def test_linear_default_initialization_statistics():
    """PyTorch's rule: weight = kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), bias
    U(-1/sqrt(in), 1/sqrt(in)); with normreg's (in, out) layout fan_in is in_features."""
    normreg.manual_seed(3)
    layer = nn.Linear(256, 300)
    assert layer.weight.shape == (256, 300)
    check_uniform(layer.weight.data, 1 / math.sqrt(256))
    big_bias = nn.Linear(16, 40000)
    check_uniform(big_bias.bias.data, 1 / math.sqrt(16))
    # not the out-features fan: bound 1/sqrt(300) would be violated by the spread
    assert np.abs(layer.weight.data).max() > 1 / math.sqrt(300)
    empty = nn.Linear(0, 3)
    np.testing.assert_array_equal(empty.bias.data, 0.0)


def test_reproducible_with_manual_seed_and_generators():
    normreg.manual_seed(42)
    a = nn.Linear(5, 4)
    w1 = init.kaiming_normal_(np.empty((6, 6)))
    normreg.manual_seed(42)
    b = nn.Linear(5, 4)
    w2 = init.kaiming_normal_(np.empty((6, 6)))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    np.testing.assert_array_equal(w1, w2)
    g1, g2 = normreg.Generator(7), normreg.Generator(7)
    x1 = init.uniform_(np.empty(10), generator=g1)
    x2 = init.uniform_(np.empty(10), generator=g2)
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(init.uniform_(np.empty(10), generator=g1), x1)  # the counter moved


def test_bad_arguments():
    with pytest.raises(TypeError, match="floating"):
        init.uniform_(np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="Parameter or a numpy.ndarray"):
        init.normal_([1.0, 2.0])
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(np.zeros(3), 1.0, 0.0)
    with pytest.raises(ValueError, match="std"):
        init.normal_(np.zeros(3), std=-1.0)
    with pytest.raises(ValueError, match="Mode"):
        init.kaiming_uniform_(np.zeros((3, 3)), mode="fan_avg")
    with pytest.raises(ValueError, match="fewer than 2"):
        init.xavier_uniform_(np.zeros(4))
    with pytest.raises(ValueError, match="Unsupported"):
        init.kaiming_normal_(np.zeros((3, 3)), nonlinearity="gelu")
    ro = np.zeros((2, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        init.ones_(ro)
    with pytest.raises(TypeError, match="generator"):
        init.uniform_(np.zeros(3), generator=np.random.default_rng(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        init.kaiming_uniform_(np.zeros((0, 3)))
    assert any("zero-element" in str(w.message) for w in caught)


def test_matches_torch_gain_and_bounds():
    torch = pytest.importorskip("torch")
    for nl, param in [("relu", None), ("tanh", None), ("leaky_relu", 0.3), ("selu", None)]:
        assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))
    # torch's (out, in) weight and normreg's (in, out) weight get the same bound
    tw = torch.empty(300, 200)
    torch.nn.init.kaiming_uniform_(tw, a=math.sqrt(5))
    w = init.kaiming_uniform_(np.empty((200, 300)), a=math.sqrt(5))
    bound = 1 / math.sqrt(200)
    assert tw.abs().max().item() <= bound and np.abs(w).max() <= bound
    assert tw.abs().max().item() > 0.99 * bound and np.abs(w).max() > 0.99 * bound


def test_matches_torch_fans_of_conv_weights():
    torch = pytest.importorskip("torch")
    for shape in [(64, 3, 3, 3), (8, 4, 5), (2, 3, 4, 5, 6)]:
        expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        assert init.calculate_fan_in_and_fan_out(np.empty(shape)) == tuple(expected)
