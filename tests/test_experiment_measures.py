"""What experiments 5-7 measure, against NumPy float64 references: the full-data statistics of
BatchNorm inputs, evaluation with given or batch statistics, the running estimates kept for
other momenta, dropout with its rescale moved or removed, and the mean inputs of later layers."""

import numpy as np
import pytest
import reference as R
from _synthetic import make_images

import normreg
from normreg import nn
from normreg.experiments import _bnstats, batchsize, running_stats
from normreg.experiments import dropout as dropout_scaling
from normreg.grad_mode import no_grad
from normreg.train import TrainConfig, build_model, train

MLP_CONFIG = TrainConfig(model="mlp", width=24, depth=2, norm="batch", dropout=0.0, seed=3)
CNN_CONFIG = TrainConfig(model="cnn", width=(4, 8), norm="batch", dropout=0.0, seed=3)


def _images(n, seed=0):
    x, y = make_images(n, seed)
    return (x.reshape(n, -1) / 255.0).astype(np.float32), y.astype(np.int64)


def _model(config, seed=7):
    """``config``'s network with random BatchNorm affine parameters (not the identity)."""
    model = build_model(config, 784, 10)
    rng = np.random.default_rng(seed)
    for m in _bnstats.bn_layers(model):
        m.weight.data[...] = rng.uniform(0.5, 1.5, m.weight.shape)
        m.bias.data[...] = rng.normal(0.0, 0.5, m.bias.shape)
    return model


def ref_forward(model, x, how):
    """float64 forward of a flat Sequential in evaluation mode, the k-th BatchNorm normalizing
    with ``how[k]`` = (mean, var) or, for ``how="batch"``, the statistics of ``x``.
    -> (logits, [input of each BatchNorm])."""
    h, inputs = np.asarray(x, np.float64), []
    for m in model:
        bias = None if getattr(m, "bias", None) is None else m.bias.data
        if isinstance(m, nn.Unflatten):
            h = h.reshape((len(h),) + tuple(m.unflattened_size))
        elif isinstance(m, nn.Linear):
            h = R.linear(h, m.weight.data, bias)
        elif isinstance(m, nn.Conv2d):
            h = R.conv2d(h, m.weight.data, bias, m.stride, m.padding)
        elif isinstance(m, _bnstats.BN_TYPES):
            inputs.append(h)
            if how == "batch":
                h = R.batch_norm_train(h, m.weight.data, bias, eps=m.eps)[0]
            else:
                mean, var = how[len(inputs) - 1]
                h = R.batch_norm_eval(h, mean, var, m.weight.data, bias, eps=m.eps)
        elif isinstance(m, nn.ReLU):
            h = R.relu(h)
        elif isinstance(m, nn.MaxPool2d):
            h = R.max_pool2d(h, m.kernel_size, m.stride)[0]
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            h = R.adaptive_avg_pool2d(h, m.output_size)
        elif isinstance(m, nn.Flatten):
            h = h.reshape(len(h), -1)
        elif not isinstance(m, (nn.Dropout, dropout_scaling.ScaledDropout)):
            raise TypeError(f"no reference for {type(m).__name__}")
    return h, inputs


def _channel_moments(h):
    axes = (0,) + tuple(range(2, h.ndim))
    return h.mean(axis=axes), h.var(axis=axes)


@pytest.mark.parametrize("config", [MLP_CONFIG, CNN_CONFIG], ids=["mlp", "cnn"])
def test_full_data_stats_are_those_of_one_batch_of_everything(config):
    model = _model(config)
    x, _ = _images(90)
    stats = _bnstats.full_data_stats(model, x, chunk=37)  # three uneven chunks, merged
    _, inputs = ref_forward(model, x, "batch")
    assert len(stats) == len(inputs) == len(_bnstats.bn_layers(model))
    for (mean, var), h in zip(stats, inputs):
        ref_mean, ref_var = _channel_moments(h)
        np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(var, ref_var, rtol=1e-4, atol=1e-6)
    assert model.training  # the mode is restored


@pytest.mark.parametrize("config", [MLP_CONFIG, CNN_CONFIG], ids=["mlp", "cnn"])
def test_evaluation_with_given_and_with_batch_statistics(config):
    model = _model(config)
    x, y = _images(24, seed=1)
    rng = np.random.default_rng(2)
    stats = [
        (rng.normal(0, 0.3, m.num_features), rng.uniform(0.2, 2.0, m.num_features))
        for m in _bnstats.bn_layers(model)
    ]
    logits = _bnstats.forward_with(model, x, stats)
    np.testing.assert_allclose(logits, ref_forward(model, x, stats)[0], rtol=1e-4, atol=1e-5)
    logits = _bnstats.forward_with(model, x[:8], "batch")
    np.testing.assert_allclose(logits, ref_forward(model, x[:8], "batch")[0], rtol=1e-4, atol=1e-5)
    # evaluate_with in batches of 8: the mean cross-entropy and accuracy over the batches
    ref_logits = np.concatenate([ref_forward(model, x[i : i + 8], "batch")[0] for i in range(0, 24, 8)])
    loss, acc = _bnstats.evaluate_with(model, x, y, "batch", batch_size=8)
    assert loss == pytest.approx(R.cross_entropy(ref_logits, y)[0], rel=1e-4)
    assert acc == np.mean(ref_logits.argmax(axis=1) == y)


def test_batch_statistics_of_one_example():
    # BatchNorm1d with a batch of one: x - mean = 0, every layer outputs its bias, and every
    # image gets the same logits. BatchNorm2d still averages over the positions.
    mlp, cnn = _model(MLP_CONFIG), _model(CNN_CONFIG)
    x, _ = _images(5, seed=4)
    one_by_one = np.stack([_bnstats.forward_with(mlp, x[i : i + 1], "batch")[0] for i in range(5)])
    np.testing.assert_array_equal(one_by_one, np.broadcast_to(one_by_one[0], one_by_one.shape))
    np.testing.assert_allclose(one_by_one[0], ref_forward(mlp, x[:1], "batch")[0][0], rtol=1e-5, atol=1e-6)
    for i in range(2):
        got = _bnstats.forward_with(cnn, x[i : i + 1], "batch")
        np.testing.assert_allclose(got, ref_forward(cnn, x[i : i + 1], "batch")[0], rtol=1e-4, atol=1e-5)


def test_distances():
    rng = np.random.default_rng(0)
    truth = [(rng.normal(size=6), rng.uniform(1, 4, 6)), (rng.normal(size=3), rng.uniform(1, 4, 3))]
    zero = _bnstats.distances(truth, truth)
    assert zero == ([0.0, 0.0], [0.0, 0.0])
    # the mean off by 2 standard deviations in every channel, the variance doubled
    off = [(m + 2 * np.sqrt(v), 2 * v) for m, v in truth]
    mean_err, var_err = _bnstats.distances(off, truth)
    np.testing.assert_allclose(mean_err, [2.0, 2.0], rtol=1e-5)
    np.testing.assert_allclose(var_err, [1.0, 1.0], rtol=1e-5)


def test_flat_models_only():
    with pytest.raises(TypeError, match="flat Sequential"):
        _bnstats.full_data_stats(nn.BatchNorm1d(3), np.zeros((4, 3), np.float32))
    nested = nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.BatchNorm1d(3)))
    with pytest.raises(ValueError, match="direct child"):
        _bnstats.bn_layers(nested)


@pytest.mark.parametrize("config", [MLP_CONFIG, CNN_CONFIG], ids=["mlp", "cnn"])
def test_tracked_estimates_are_the_momentum_updates(config):
    momenta = (0.01, 0.1, 0.5)
    net = running_stats.Tracked(_model(config), momenta)
    x, _ = _images(48, seed=5)
    batches = [x[:16], x[16:32], x[32:]]
    net(batches[0])  # training-mode forwards; the parameters do not change
    net(batches[1])
    with no_grad():  # as the layers' own estimates, whether or not gradients are recorded
        net(batches[2])
    net.eval()  # evaluation changes nothing
    net(x[:16])
    assert net.step == 3
    ref_inputs = [ref_forward(net, xb, "batch")[1] for xb in batches]
    for m in momenta:
        for k, (mean, var) in enumerate(net.estimates[m]):
            ref_mean, ref_var = np.zeros_like(mean), np.ones_like(var)
            for inputs in ref_inputs:
                h = inputs[k]
                n = h.size // h.shape[1]
                batch_mean, batch_var = _channel_moments(h)
                ref_mean = (1 - m) * ref_mean + m * batch_mean
                ref_var = (1 - m) * ref_var + m * batch_var * n / (n - 1)
            np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(var, ref_var, rtol=1e-4, atol=1e-6)
    # momentum 0.1 is what the layers themselves keep (PyTorch's default update)
    for (mean, var), (own_mean, own_var) in zip(net.estimates[0.1], _bnstats.running_stats(net)):
        np.testing.assert_allclose(mean, own_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(var, own_var, rtol=1e-5, atol=1e-6)


def test_tracking_does_not_change_training():
    x, y = _images(160, seed=6)
    data = (x[:128], y[:128], x[128:], y[128:])
    config = TrainConfig(model="mlp", width=16, depth=2, norm="batch", epochs=2, batch_size=32, seed=1)
    plain = train(config, data, log=None, progress=False, model=build_model(config, 784, 10))
    steps = []
    tracked_net = running_stats.Tracked(build_model(config, 784, 10), (0.1,), {1, 3, 6, 100}, steps.append)
    tracked = train(config, data, log=None, progress=False, model=tracked_net)
    assert steps == [1, 3, 6]  # called before those steps; 8 steps in all
    assert tracked_net.step == 8
    for p, q in zip(plain["model"].parameters(), tracked["model"].parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert [h["test_loss"] for h in plain["history"]] == [h["test_loss"] for h in tracked["history"]]


def test_measure_steps():
    steps = running_stats._measure_steps(400, 100)
    assert steps == {1, 2, 4, 8, 16, 32, 64, 128, 256} | set(range(25, 400, 25))


# ---- dropout -----------------------------------------------------------------------------


@pytest.mark.parametrize("rescale", ["test", "none"])
def test_scaled_dropout_keeps_the_units_dropout_keeps_without_rescaling(rescale):
    p = 0.3
    x = np.random.default_rng(0).uniform(0.5, 2.0, (16, 50)).astype(np.float32)  # no zeros
    dy = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    normreg.manual_seed(5)
    keep = nn.Dropout(p)(x) != 0
    layer = dropout_scaling.ScaledDropout(p, rescale)
    normreg.manual_seed(5)
    y = layer(x)
    np.testing.assert_allclose(y, np.where(keep, x, 0.0), rtol=1e-6)
    np.testing.assert_allclose(layer.backward(dy), np.where(keep, dy, 0.0), rtol=1e-6)
    assert 0.6 < keep.mean() < 0.8
    layer.eval()
    np.testing.assert_allclose(layer(x), (1 - p) * x if rescale == "test" else x, rtol=1e-6)
    np.testing.assert_allclose(layer.backward(dy), (1 - p) * dy if rescale == "test" else dy, rtol=1e-6)


def test_scaled_dropout_train_is_inverted_dropout_and_bad_arguments():
    x = np.random.default_rng(0).normal(size=(8, 20)).astype(np.float32)
    normreg.manual_seed(9)
    expected = nn.Dropout(0.4)(x)
    normreg.manual_seed(9)
    np.testing.assert_array_equal(dropout_scaling.ScaledDropout(0.4, "train")(x), expected)
    with pytest.raises(ValueError, match="p"):
        dropout_scaling.ScaledDropout(1.5)
    with pytest.raises(ValueError, match="rescale"):
        dropout_scaling.ScaledDropout(0.5, "later")


def test_input_means_against_a_numpy_forward():
    p = 0.5
    config = TrainConfig(model="mlp", width=[64, 64], norm="none", dropout=p, seed=2)
    x, _ = _images(400, seed=7)
    models = {r: dropout_scaling.build(config, r, 784, 10) for r in ("train", "test", "none")}
    for rescale, model in models.items():
        assert [type(m) for m in model if "Dropout" in type(m).__name__] == [
            nn.Dropout if rescale == "train" else dropout_scaling.ScaledDropout
        ] * 2
        # the same initial weights for the three
        for a, b in zip(models["train"].parameters(), model.parameters()):
            np.testing.assert_array_equal(a.data, b.data)
    layers = list(models["train"])
    h1 = R.relu(R.linear(x, layers[0].weight.data, layers[0].bias.data))  # input of layer 2, eval
    h2 = R.relu(R.linear(h1, layers[3].weight.data, layers[3].bias.data))
    for rescale, scale in (("train", 1.0), ("test", 1 - p), ("none", 1.0)):
        model = models[rescale]
        got = dropout_scaling.input_means(model, x, training=False)
        if rescale == "test":  # every dropout site multiplies by 1 - p in evaluation
            h2_test = R.relu(R.linear(scale * h1, layers[3].weight.data, layers[3].bias.data))
            np.testing.assert_allclose(got, [scale * h1.mean(), scale * h2_test.mean()], rtol=1e-5)
        else:
            np.testing.assert_allclose(got, [h1.mean(), h2.mean()], rtol=1e-5)
        assert model.training  # restored
        # training mode at the first site: inverted dropout keeps the mean, the other two
        # halve it (400 x 64 values: the sampling error is about 1%)
        train_mean = dropout_scaling.input_means(model, x, training=True)[0]
        expected = h1.mean() * (1.0 if rescale == "train" else 1 - p)
        assert train_mean == pytest.approx(expected, rel=0.05)


def test_group_norm_mlp_is_the_layer_norm_mlp_with_group_norm():
    config = TrainConfig(model="mlp", width=32, depth=2, norm="group", dropout=0.0, seed=4)
    model = batchsize.build(config, 784, 10)
    ln = build_model(TrainConfig(model="mlp", width=32, depth=2, norm="layer", dropout=0.0, seed=4), 784, 10)
    groups = [m for m in model if isinstance(m, nn.GroupNorm)]
    assert [(g.num_groups, g.num_channels) for g in groups] == [(batchsize.GROUPS, 32)] * 2
    assert not any(isinstance(m, nn.LayerNorm) for m in model)
    for a, b in zip(ln.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    x, _ = _images(6, seed=8)
    h = np.asarray(x, np.float64)
    for m in model:
        if isinstance(m, nn.Linear):
            h = R.linear(h, m.weight.data, m.bias.data)
        elif isinstance(m, nn.GroupNorm):
            h = R.group_norm(h, m.num_groups, m.weight.data, m.bias.data)[0]
        else:
            h = R.relu(h)
    model.eval()
    np.testing.assert_allclose(model(x), h, rtol=1e-4, atol=1e-5)
    # the other norms: build_model's network
    for a, b in zip(
        build_model(MLP_CONFIG, 784, 10).parameters(), batchsize.build(MLP_CONFIG, 784, 10).parameters()
    ):
        np.testing.assert_array_equal(a.data, b.data)
