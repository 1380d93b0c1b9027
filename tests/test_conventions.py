"""Course-convention presets: each convention's values on small worked examples."""
import numpy as np
import pytest

import normreg
from normreg import conventions, nn

# The worked example: one training step, momentum 0.1 (cs231n: 0.9, its style).
X = np.array([[1, 2, 3], [3, 6, 9], [5, 10, 15], [7, 14, 21]], dtype=np.float64)


@pytest.fixture(autouse=True)
def restore_convention():
    before = conventions.current()
    yield
    conventions.use(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bn_worked_example_torch_and_needle(dtype):
    expected = {"torch": [1.5667, 3.5667, 6.9], "needle": [1.4, 2.9, 5.4]}
    for name, running_var in expected.items():
        bn = nn.BatchNorm1d(3, momentum=0.1, convention=name, dtype=dtype)
        bn(X.astype(dtype))
        np.testing.assert_allclose(bn.running_var, running_var, atol=1e-4)
        np.testing.assert_allclose(bn.running_mean, [0.4, 0.8, 1.2], rtol=1e-6)
    # the same values from the definitions: unbiased (n - 1) vs biased (n) batch variance
    bn = nn.BatchNorm1d(3, convention="torch", dtype=dtype)
    bn(X.astype(dtype))
    np.testing.assert_allclose(bn.running_var, 0.9 * 1 + 0.1 * X.var(axis=0, ddof=1), rtol=1e-6)


def test_bn_worked_example_cs231n():
    # cs231n's batchnorm_forward: running_var starts at zeros, sample_var = np.var(x, axis=0)
    # (biased), running = momentum * running + (1 - momentum) * sample with momentum 0.9.
    bn = nn.BatchNorm1d(3, convention="cs231n", dtype=np.float64)
    assert bn.momentum == 0.9 and bn.momentum_style == "cs231n"
    np.testing.assert_array_equal(bn.running_var, 0.0)
    bn(X)
    np.testing.assert_allclose(bn.running_mean, 0.9 * 0 + 0.1 * X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.9 * 0 + 0.1 * X.var(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, [0.5, 2.0, 4.5], rtol=1e-12)


def _course_reference(name, batches, momentum, C):
    """The running estimates as each course's own code computes them, several steps."""
    rm = np.zeros(C)
    rv = np.zeros(C) if name == "cs231n" else np.ones(C)
    for x in batches:
        mean = x.mean(axis=0)
        if name == "cs231n":  # cs231n layers.py
            var = x.var(axis=0)
            rm = momentum * rm + (1 - momentum) * mean
            rv = momentum * rv + (1 - momentum) * var
        elif name == "needle":  # needle nn_basic.py BatchNorm1d
            var = ((x - mean) ** 2).sum(axis=0) / x.shape[0]
            rm = (1 - momentum) * rm + momentum * mean
            rv = (1 - momentum) * rv + momentum * var
        else:  # PyTorch
            var = x.var(axis=0, ddof=1)
            rm = (1 - momentum) * rm + momentum * mean
            rv = (1 - momentum) * rv + momentum * var
    return rm, rv


@pytest.mark.parametrize("name,momentum", [("torch", 0.1), ("needle", 0.1), ("cs231n", 0.9), ("needle", 0.3)])
def test_bn_several_steps_and_eval_follow_each_course(name, momentum):
    r = np.random.default_rng(0)
    batches = [3 * r.standard_normal((8, 5)) + 2 for _ in range(4)]
    bn = nn.BatchNorm1d(5, momentum=momentum, convention=name, dtype=np.float64)
    for x in batches:
        bn(x)
    rm, rv = _course_reference(name, batches, momentum, 5)
    np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bn.running_var, rv, rtol=1e-12, atol=1e-14)
    bn.eval()
    x = batches[0]
    np.testing.assert_allclose(bn(x), (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-12, atol=1e-12)


def test_bn_torch_convention_matches_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(1)
    bn = nn.BatchNorm1d(4, momentum=0.2, dtype=np.float64)
    tbn = torch.nn.BatchNorm1d(4, momentum=0.2).double()
    for _ in range(3):
        x = 2 * r.standard_normal((6, 4, 3)) + 1
        bn(x)
        tbn(torch.from_numpy(x))
    np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-12)


def test_explicit_switches_win_over_the_convention():
    bn = nn.BatchNorm1d(3, convention="cs231n", running_var_estimator="unbiased", momentum=0.5,
                        initial_running_var=1.0)
    assert (bn.momentum, bn.momentum_style, bn.running_var_estimator) == (0.5, "cs231n", "unbiased")
    bn(X.astype(np.float32))
    np.testing.assert_allclose(bn.running_var, 0.5 * 1 + 0.5 * X.var(axis=0, ddof=1), rtol=1e-6)
    bn = nn.BatchNorm1d(3, momentum_style="cs231n", momentum=0.9)  # torch otherwise
    bn(X.astype(np.float32))
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * X.var(axis=0, ddof=1), rtol=1e-6)
    bn.running_var[...] = 7
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_var, 1.0)
    with conventions.use("cs231n"):
        bn = nn.BatchNorm2d(3)
        bn.running_var[...] = 7
        bn.reset_running_stats()
        np.testing.assert_array_equal(bn.running_var, 0.0)


def test_use_sets_globally_and_as_context_manager():
    assert conventions.current().name == "torch"
    assert nn.BatchNorm1d(2).running_var_estimator == "unbiased"
    with conventions.use("needle") as conv:
        assert conv.name == "needle" and conventions.current() is conventions.PRESETS["needle"]
        assert nn.BatchNorm1d(2).running_var_estimator == "biased"
        with conventions.use("cs231n"):
            assert nn.Dropout(0.8).p_is_keep_prob
        assert not nn.Dropout(0.8).p_is_keep_prob
    assert conventions.current().name == "torch"
    conventions.use("cs231n")
    assert nn.BatchNorm1d(2).momentum == 0.9
    assert nn.BatchNorm1d(2, convention="torch").momentum == 0.1  # keyword wins over the global
    conventions.use("torch")
    # a layer keeps the convention it was built with
    with conventions.use("needle"):
        bn = nn.BatchNorm1d(3, dtype=np.float64)
    bn(X)
    np.testing.assert_allclose(bn.running_var, [1.4, 2.9, 5.4], atol=1e-12)


def test_custom_convention_and_bad_values():
    mine = conventions.Convention("mine", bn_momentum=0.5, bn_running_var_estimator="biased")
    bn = nn.BatchNorm1d(3, convention=mine, dtype=np.float64)
    bn(X)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * X.var(axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="convention"):
        conventions.use("keras")
    with pytest.raises(ValueError, match="convention"):
        nn.BatchNorm1d(3, convention="keras")
    with pytest.raises(ValueError, match="running_var_estimator"):
        nn.BatchNorm1d(3, running_var_estimator="sample")
    with pytest.raises(ValueError, match="momentum_style"):
        nn.BatchNorm2d(3, momentum_style="ema")
    with pytest.raises(ValueError, match="sgd_momentum_style"):
        conventions.Convention("bad", sgd_momentum_style="nesterov")
    assert conventions.current().name == "torch"  # a failed use() changes nothing


def test_cumulative_average_ignores_the_style():
    r = np.random.default_rng(2)
    batches = [r.standard_normal((5, 3)) for _ in range(3)]
    for style in ("torch", "cs231n"):
        bn = nn.BatchNorm1d(3, momentum=None, momentum_style=style, dtype=np.float64)
        for x in batches:
            bn(x)
        np.testing.assert_allclose(bn.running_mean, np.mean([x.mean(axis=0) for x in batches], axis=0),
                                   rtol=1e-12)


def test_dropout_keep_probability_convention():
    r = np.random.default_rng(3)
    x = r.standard_normal((200, 500)).astype(np.float32) + 3
    keep = nn.Dropout(0.8, p_is_keep_prob=True, generator=normreg.Generator(5))
    drop = nn.Dropout(0.2, generator=normreg.Generator(5))
    assert keep.drop_prob == pytest.approx(0.2)
    y_keep, y_drop = keep(x), drop(x)
    np.testing.assert_array_equal(y_keep, y_drop)  # the same layer, spelled two ways
    kept = y_keep != 0
    np.testing.assert_allclose(y_keep[kept], x[kept] / np.float32(0.8), rtol=1e-6)
    frac = kept.mean()
    assert abs(frac - 0.8) < 5 * np.sqrt(0.8 * 0.2 / x.size)  # binomial: 5 sigma
    dy = r.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(keep.backward(dy), np.where(kept, dy / np.float32(0.8), 0), rtol=1e-6)
    # cs231n's p = 1 keeps everything; PyTorch's p = 1 drops everything
    with conventions.use("cs231n"):
        np.testing.assert_array_equal(nn.Dropout(1.0)(x), x)
    assert not np.any(nn.Dropout(1.0)(x))
