"""Bad input raises TypeError/ValueError naming the argument; nothing crashes."""

import numpy as np
import pytest

import normreg
from normreg import _C, nn
from normreg import functional as F

f32, f64 = np.float32, np.float64


def a(shape, dtype=f32):
    return np.ones(shape, dtype=dtype)


# ---- functional: wrong dtype / integer input -> TypeError naming the argument ----------

TYPE_CASES = [
    ("x", lambda: F.linear(a((2, 3), np.int64), a((3, 4)))),
    ("weight", lambda: F.linear(a((2, 3)), a((3, 4), f64))),
    ("bias", lambda: F.linear(a((2, 3)), a((3, 4)), a(4, f64))),
    ("x", lambda: F.linear("abc", a((3, 4)))),
    ("x", lambda: F.linear(None, a((3, 4)))),
    ("dy", lambda: F.linear_backward(a((2, 4), f64), a((2, 3)), a((3, 4)))),
    ("x", lambda: F.relu(a((2, 3), np.int32))),
    ("x", lambda: F.relu(a((2, 3), np.bool_))),
    ("x", lambda: F.relu(a((2, 3), np.float16))),
    ("x", lambda: F.relu(a((2, 3), np.complex128))),
    ("dy", lambda: F.relu_backward(a((2, 3), np.int64), a((2, 3)))),
    ("dy", lambda: F.relu_backward(a((2, 3), f64), a((2, 3)))),
    ("x", lambda: F.layer_norm(a((2, 3), np.int64), 3)),
    ("weight", lambda: F.layer_norm(a((2, 3)), 3, a(3, f64))),
    ("bias", lambda: F.layer_norm(a((2, 3)), 3, a(3), a(3, f64))),
    ("normalized_shape", lambda: F.layer_norm(a((2, 3)), "x")),
    ("normalized_shape", lambda: F.layer_norm(a((2, 3)), 3.0)),
    ("normalized_shape", lambda: F.layer_norm(a((2, 3)), (3.5,))),
    ("normalized_shape", lambda: nn.LayerNorm((3.0,))),
    ("eps", lambda: F.layer_norm(a((2, 3)), 3, eps="small")),
    ("dy", lambda: F.layer_norm_backward(a((2, 3), f64), a((2, 3)), a(2), a(2))),
    ("x", lambda: F.batch_norm(a((4, 3), np.int64), None, None, training=True)),
    ("running_mean", lambda: F.batch_norm(a((4, 3)), a(3, f64), a(3), training=True)),
    ("running_var", lambda: F.batch_norm(a((4, 3)), a(3), [1.0, 1.0, 1.0], training=True)),
    ("weight", lambda: F.batch_norm(a((4, 3)), None, None, a(3, f64), training=True)),
    ("momentum", lambda: F.batch_norm(a((4, 3)), None, None, training=True, momentum="0.1")),
    ("dy", lambda: F.batch_norm_backward(a((4, 3), f64), a((4, 3)), a(3), a(3))),
    ("x", lambda: F.dropout(a((4, 3), np.int64), 0.5)),
    ("p", lambda: F.dropout(a((4, 3)), "0.5")),
    ("p", lambda: F.dropout(a((4, 3)), None)),
    ("dy", lambda: F.dropout_backward(a((4, 3), np.int64), np.zeros(2, np.uint8), 0.5)),
    ("mask", lambda: F.dropout_backward(a((4, 3)), np.zeros(2, np.int64), 0.5)),
    ("logits", lambda: F.cross_entropy(a((4, 3), np.int64), np.zeros(4, np.int64))),
    ("labels", lambda: F.cross_entropy(a((4, 3)), np.zeros(4, f32))),
    ("lse", lambda: F.cross_entropy_backward(a((4, 3)), np.zeros(4, np.int64), a(4, f64))),
    ("dloss", lambda: F.cross_entropy_backward(a((4, 3)), np.zeros(4, np.int64), a(4), "1")),
]


@pytest.mark.parametrize("name,call", TYPE_CASES)
def test_functional_type_errors(name, call):
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        call()


# ---- functional: shapes and values -> ValueError naming the argument --------------------

VALUE_CASES = [
    ("x", lambda: F.linear(a((2, 5)), a((3, 4)))),
    ("weight", lambda: F.linear(a((2, 3)), a(3))),
    ("bias", lambda: F.linear(a((2, 3)), a((3, 4)), a(5))),
    ("out", lambda: F.linear(a((2, 3)), a((3, 4)), out=a((2, 5)))),
    ("dy", lambda: F.linear_backward(a((2, 5)), a((2, 3)), a((3, 4)))),
    ("dy", lambda: F.linear_backward(a((3, 4)), a((2, 3)), a((3, 4)))),
    ("dweight", lambda: F.linear_backward(a((2, 4)), a((2, 3)), a((3, 4)), dweight=a((4, 3)))),
    ("dy", lambda: F.relu_backward(a((2, 4)), a((2, 3)))),
    ("normalized_shape", lambda: F.layer_norm(a((2, 3)), 4)),
    ("normalized_shape", lambda: F.layer_norm(a((2, 3)), (2, 3, 1))),
    ("weight", lambda: F.layer_norm(a((2, 3)), 3, a(4))),
    ("bias", lambda: F.layer_norm(a((2, 3)), 3, a(3), a(2))),
    ("eps", lambda: F.layer_norm(a((2, 3)), 3, eps=-1e-5)),
    ("dy", lambda: F.layer_norm_backward(a((2, 4)), a((2, 3)), a(2), a(2))),
    ("mean", lambda: F.layer_norm_backward(a((2, 3)), a((2, 3)), a(3), a(2))),
    ("rstd", lambda: F.layer_norm_backward(a((2, 3)), a((2, 3)), a(2), a(3))),
    ("x", lambda: F.batch_norm(a(4), None, None, training=True)),
    ("running_mean", lambda: F.batch_norm(a((4, 3)), a(2), a(3), training=True)),
    ("running_var", lambda: F.batch_norm(a((4, 3)), a(3), a(4), training=True)),
    ("weight", lambda: F.batch_norm(a((4, 3)), a(3), a(3), a(2), training=True)),
    ("bias", lambda: F.batch_norm(a((4, 3)), a(3), a(3), a(3), a(5), training=True)),
    ("eps", lambda: F.batch_norm(a((4, 3)), a(3), a(3), training=True, eps=-1.0)),
    ("momentum", lambda: F.batch_norm(a((4, 3)), a(3), a(3), training=True, momentum=1.5)),
    ("per channel", lambda: F.batch_norm(a((1, 3)), a(3), a(3), training=True)),
    ("per channel", lambda: F.batch_norm(a((1, 3, 1)), None, None, training=True)),
    ("running_mean", lambda: F.batch_norm(a((4, 3)), None, None, training=False)),
    ("dy", lambda: F.batch_norm_backward(a((4, 2)), a((4, 3)), a(3), a(3))),
    ("save_mean", lambda: F.batch_norm_backward(a((4, 3)), a((4, 3)), a(2), a(3))),
    ("save_rstd", lambda: F.batch_norm_backward(a((4, 3)), a((4, 3)), a(3), a(2))),
    ("p", lambda: F.dropout(a((4, 3)), 1.5)),
    ("p", lambda: F.dropout(a((4, 3)), -0.1)),
    ("p", lambda: F.dropout(a((4, 3)), float("nan"))),
    ("p", lambda: F.dropout_backward(a((4, 3)), np.zeros(2, np.uint8), 2.0)),
    ("mask", lambda: F.dropout_backward(a((4, 3)), np.zeros(3, np.uint8), 0.5)),
    ("labels", lambda: F.cross_entropy(a((4, 3)), np.array([0, 1, 2, 3]))),
    ("labels", lambda: F.cross_entropy(a((4, 3)), np.array([0, -1, 2, 0]))),
    ("labels", lambda: F.cross_entropy(a((4, 3)), np.array([0, 1, 2]))),
    ("logits", lambda: F.cross_entropy(a(4), np.array([0, 1, 2, 0]))),
    ("labels", lambda: F.cross_entropy_backward(a((4, 3)), np.array([0, 1, 5, 0]), a(4))),
    ("lse", lambda: F.cross_entropy_backward(a((4, 3)), np.array([0, 1, 2, 0]), a(3))),
]


@pytest.mark.parametrize("name,call", VALUE_CASES)
def test_functional_value_errors(name, call):
    with pytest.raises(ValueError, match=name):
        call()


def test_read_only_running_stats_are_refused():
    rm = np.zeros(3, f32)
    rm.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(a((4, 3)), rm, a(3), training=True)


# ---- modules ------------------------------------------------------------------------------

MODULES = [
    lambda dt: nn.Linear(3, 3, dtype=dt),
    lambda dt: nn.LayerNorm(3, dtype=dt),
    lambda dt: nn.BatchNorm1d(3, dtype=dt),
]


@pytest.mark.parametrize("make", MODULES)
@pytest.mark.parametrize("dtype", [f32, f64])
def test_module_dtype_mismatch(make, dtype):
    m = make(dtype)
    other = f64 if dtype == f32 else f32
    with pytest.raises(TypeError, match=r"\bx\b"):
        m(a((4, 3), other))
    with pytest.raises(TypeError, match=r"\bx\b"):
        m(a((4, 3), np.int64))
    m(a((4, 3), dtype))
    with pytest.raises(TypeError, match="dy"):
        m.backward(a((4, 3), other))


@pytest.mark.parametrize("make", [lambda: nn.ReLU(), lambda: nn.Dropout(0.5)])
def test_module_integer_input(make):
    with pytest.raises(TypeError, match=r"\bx\b"):
        make()(a((4, 3), np.int64))


ALL_MODULES = [
    lambda: nn.Linear(3, 3),
    lambda: nn.ReLU(),
    lambda: nn.LayerNorm(3),
    lambda: nn.BatchNorm1d(3),
    lambda: nn.Dropout(0.5),
    lambda: nn.Flatten(),
    lambda: nn.Sequential(nn.Linear(3, 3), nn.ReLU()),
    lambda: nn.Residual(nn.Linear(3, 3)),
]


@pytest.mark.parametrize("make", ALL_MODULES)
def test_module_backward_before_forward(make):
    m = make()
    with pytest.raises(RuntimeError, match=rf"{type(m).__name__}\.backward: no pending forward"):
        m.backward(a((4, 3)))


@pytest.mark.parametrize("make", ALL_MODULES)
def test_module_dy_of_wrong_shape(make):
    m = make()
    m(a((4, 3)) + np.arange(12, dtype=f32).reshape(4, 3))
    with pytest.raises(ValueError, match="dy"):
        m.backward(a((4, 2)))


def test_loss_module_errors():
    fn = nn.SoftmaxLoss()
    with pytest.raises(RuntimeError, match="SoftmaxLoss.backward: no pending forward"):
        fn.backward()
    with pytest.raises(ValueError, match="labels"):
        fn(a((4, 3)), np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="labels"):
        fn(a((4, 3)), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="labels"):
        fn(a((4, 3)), np.array([0.0, 1, 2, 0]))
    with pytest.raises(TypeError, match="logits"):
        fn(a((4, 3), np.int64), np.array([0, 1, 2, 0]))
    fn(a((4, 3)), np.array([0, 1, 2, 0]))
    with pytest.raises(TypeError, match="dloss"):
        fn.backward("one")


def test_module_shape_errors():
    with pytest.raises(ValueError, match=r"\bx\b"):
        nn.Linear(3, 2)(a((4, 5)))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(3)(a((4, 5)))
    with pytest.raises(ValueError, match="BatchNorm1d"):
        nn.BatchNorm1d(3)(a((4, 5)))
    with pytest.raises(ValueError, match="BatchNorm1d"):
        nn.BatchNorm1d(3)(a(3))
    with pytest.raises(ValueError, match="per channel"):
        nn.BatchNorm1d(3)(a((1, 3)))
    bn = nn.BatchNorm1d(3).eval()
    bn(a((1, 3)))  # one row is fine in evaluation


def test_module_constructor_errors():
    with pytest.raises(ValueError, match="p"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="p"):
        nn.Dropout(-0.5)
    with pytest.raises(TypeError, match="p"):
        nn.Dropout("half")
    with pytest.raises(ValueError, match="eps"):
        nn.LayerNorm(3, eps=-1.0)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm1d(3, eps=-1e-5)
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(3, momentum=2.0)
    with pytest.raises(TypeError, match="dtype"):
        nn.Linear(3, 2, dtype=np.int32)
    with pytest.raises(TypeError, match="dtype"):
        nn.LayerNorm(3, dtype=np.float16)
    with pytest.raises(TypeError, match="dtype"):
        nn.BatchNorm1d(3, dtype="complex128")
    with pytest.raises(TypeError, match="in_features"):
        nn.Linear(3.0, 2)
    with pytest.raises(ValueError, match="out_features"):
        nn.Linear(3, -2)
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm1d(0)
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(nn.ReLU(), np.ones(3))
    with pytest.raises(TypeError, match="seed"):
        normreg.manual_seed(1.5)
    with pytest.raises(TypeError, match="generator"):
        nn.Dropout(0.5, generator=5)
    with pytest.raises(TypeError, match="generator"):
        nn.Linear(3, 2, generator="seed")
    with pytest.raises(TypeError, match="start_dim"):
        nn.Flatten("a")


def test_functional_generator_must_be_a_generator():
    with pytest.raises(TypeError, match="generator"):
        F.dropout(a((4, 3)), 0.5, generator=np.random.default_rng(0))


def test_nothing_crashes_on_odd_arrays():
    # empty, 0-d, huge-strided and byte-swapped inputs either work or raise cleanly
    F.relu(np.zeros((0, 3), f32))
    np.testing.assert_array_equal(F.relu(np.array(-2.0)), np.array(0.0))
    x = np.arange(12, dtype=">f8").reshape(3, 4)
    np.testing.assert_array_equal(F.relu(x - 5), np.maximum(x - 5, 0))
    y, _, _ = F.layer_norm(np.ones((0, 4)), 4)
    assert y.shape == (0, 4)
    with pytest.raises((TypeError, ValueError)):
        F.linear(np.ones((2, 3), dtype=object), np.ones((3, 2)))
    with pytest.raises((TypeError, ValueError)):
        F.linear([[1.0, 2.0], [3.0]], np.ones((2, 2)))


def test_norm_layers_raise_named_errors():
    """RMSNorm, GroupNorm, InstanceNorm, BatchNorm2d (modules, functional and binding)."""
    x32 = np.ones((2, 4, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="x"):
        nn.RMSNorm(3)(x32.astype(np.float64))
    with pytest.raises(TypeError, match="x"):
        nn.GroupNorm(2, 4)(np.ones((2, 4, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.RMSNorm(5)(x32)
    with pytest.raises(ValueError, match="num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(TypeError, match="num_groups"):
        F.group_norm(x32, True)
    with pytest.raises(TypeError, match="num_groups"):
        F.group_norm(x32, 2.0)
    with pytest.raises(ValueError, match="GroupNorm"):
        nn.GroupNorm(2, 6)(x32)
    with pytest.raises(ValueError, match="eps"):
        F.rms_norm(x32, 3, eps=-1.0)
    with pytest.raises(ValueError, match="weight"):
        F.group_norm(x32, 2, np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match="weight"):
        F.rms_norm(x32, 3, np.ones(3))
    with pytest.raises(ValueError, match="BatchNorm2d"):
        nn.BatchNorm2d(4)(x32)
    with pytest.raises(RuntimeError, match="no pending forward"):
        nn.GroupNorm(2, 4).backward(x32)  # backward before forward
    with pytest.raises(ValueError, match="rstd"):
        F.rms_norm_backward(x32, x32, np.ones(5, dtype=np.float32))
    with pytest.raises(ValueError, match="mean"):
        F.group_norm_backward(x32, x32, np.ones((2, 3), dtype=np.float32), np.ones((2, 3), dtype=np.float32))
    # the binding itself rejects what would be unsafe, naming the argument
    with pytest.raises(ValueError, match="num_groups"):
        _C.group_norm_forward(x32, None, None, 3, 1e-5, None)
    with pytest.raises(ValueError, match="x"):
        _C.rms_norm_forward(x32, None, 1e-5, None)
    with pytest.raises(ValueError, match="rstd"):
        _C.rms_norm_backward(x32[0], x32[0], np.ones(7, dtype=np.float32), None, None, None)
    with pytest.raises(TypeError):
        _C.group_norm_backward(x32, x32, None, None, None, None, None, 2, None)
    with pytest.raises(ValueError, match="dweight"):
        _C.group_norm_backward(
            x32,
            x32,
            np.ones((2, 2), np.float32),
            np.ones((2, 2), np.float32),
            None,
            np.ones(4, np.float32)[::-1],
            None,
            2,
            None,
        )


# ---- masked arrays (issue 11, item 10): a mask would be ignored, so they are refused -------


def _masked(shape=(4, 3), dtype=np.float32):
    return np.ma.array(np.ones(shape, dtype), mask=np.eye(*shape, dtype=bool) if len(shape) == 2 else False)


@pytest.mark.parametrize("make", ALL_MODULES + [lambda: nn.SoftmaxLoss()])
def test_modules_refuse_masked_arrays(make):
    m = make()
    args = (_masked(), np.array([0, 1, 2, 0])) if isinstance(m, nn.SoftmaxLoss) else (_masked(),)
    with pytest.raises(TypeError, match="masked array"):
        m(*args)
    assert m.pending_forwards == 0
    if isinstance(m, nn.SoftmaxLoss):
        with pytest.raises(TypeError, match="labels is a masked array"):
            m(np.ones((4, 3), f32), np.ma.array([0, 1, 2, 0], mask=[0, 1, 0, 0]))
        return
    y = m(np.ones((4, 3), f32))
    with pytest.raises(TypeError, match="masked array"):
        m.backward(_masked(y.shape))


def test_functional_ops_parameters_state_and_save_refuse_masked_arrays(tmp_path):
    x = _masked()
    for call in (
        lambda: F.relu(x),
        lambda: F.layer_norm(x, 3),
        lambda: F.layer_norm_rows(x),
        lambda: F.layer_norm_rows(np.ones((4, 3), f32), _masked((3,))),
        lambda: F.linear(np.ones((4, 3), f32), _masked((3, 2))),
        lambda: F.linear(x, np.ones((3, 2), f32), _masked((2,))),
        lambda: F.linear_backward(_masked((4, 2)), np.ones((4, 3), f32), np.ones((3, 2), f32)),
        lambda: F.dropout(x, 0.5),
        lambda: F.batch_norm(x, None, None, training=True),
        lambda: nn.Parameter(x),
    ):
        with pytest.raises(TypeError, match="masked"):
            call()
    lin = nn.Linear(3, 2)
    state = lin.state_dict()
    state["weight"] = np.ma.array(state["weight"])
    with pytest.raises(TypeError, match="masked"):
        lin.load_state_dict(state)
    with pytest.raises(TypeError, match=r"normreg.save: obj\['w'\] is a masked array"):
        normreg.save({"w": x}, tmp_path / "ck.npz")
    assert not (tmp_path / "ck.npz").exists()
