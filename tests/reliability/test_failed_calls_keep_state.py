"""Errors keep state intact: a failed forward or backward (wrong shape, dtype, type, ...)
leaves parameters, gradients, running statistics, generator counters and the pending
forwards (what each forward saved for its backward) exactly as they were; a failed functional call leaves its
accumulators and running statistics untouched."""

import copy

import numpy as np
import pytest

import normreg
from normreg import functional as F
from normreg import nn

pytestmark = pytest.mark.sanitize


class RaisesOnArray:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("no")


def _f(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(dtype)


def state(module):
    """Every observable piece of a module's state, copied."""
    s = {}
    for name, p in module.named_parameters():
        s["data " + name] = p.data.copy()
        s["grad " + name] = None if p.grad is None else p.grad.copy()
    for name, b in module.named_buffers():
        s["buffer " + name] = np.array(b, copy=True)
    for name, m in module.named_modules():
        s["training " + name] = m.training
        s["pending " + name] = m.pending_forwards
        gen = getattr(m, "generator", None)
        if gen is not None:
            s["generator " + name] = gen.get_state().copy()
    s["default generator"] = normreg.default_generator.get_state().copy()
    return s


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=True), k
            assert a[k].tobytes() == b[k].tobytes(), k
        else:
            assert a[k] == b[k], k


BAD_INPUTS = {
    "wrong features": lambda x: np.ones((x.shape[0], x.shape[1] + 1), x.dtype),
    "wrong rank": lambda x: np.ones(x.shape[1], x.dtype),
    "wrong dtype": lambda x: x.astype(np.float64),
    "integers": lambda x: x.astype(np.int32),
    "None": lambda x: None,
    "string": lambda x: "x",
    "__array__ raises": lambda x: RaisesOnArray(),
    "ragged list": lambda x: [[1.0], [2.0, 3.0]],
}

MODULES = {
    "Linear": lambda: nn.Linear(6, 4),
    "LayerNorm": lambda: nn.LayerNorm(6),
    "BatchNorm1d": lambda: nn.BatchNorm1d(6),
    "BatchNorm1d eval": lambda: nn.BatchNorm1d(6).eval(),
    "BatchNorm1d momentum=None": lambda: nn.BatchNorm1d(6, momentum=None),
    "Dropout": lambda: nn.Dropout(0.5),
    "Dropout own generator": lambda: nn.Dropout(0.5, generator=normreg.Generator(3)),
    "ReLU": lambda: nn.ReLU(),
    "RMSNorm": lambda: nn.RMSNorm(6),
    "GroupNorm": lambda: nn.GroupNorm(3, 6),
    "InstanceNorm1d": lambda: nn.InstanceNorm1d(6, affine=True, track_running_stats=True),
    "BatchNorm2d": lambda: nn.BatchNorm2d(6),
    "Sequential": lambda: nn.Sequential(
        nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.LayerNorm(8), nn.Linear(8, 3)
    ),
}


# Inputs that are valid for a module are not failures: elementwise modules take any shape
# and dtype, Linear and LayerNorm take a single sample. (In a Sequential, a failure in a
# later layer comes after the earlier layers ran, as in PyTorch: see RELIABILITY.md.)
_VALID = {
    ("wrong features", "Dropout"),
    ("wrong features", "Dropout own generator"),
    ("wrong features", "ReLU"),
    ("wrong dtype", "Dropout"),
    ("wrong dtype", "Dropout own generator"),
    ("wrong dtype", "ReLU"),
    ("wrong rank", "Dropout"),
    ("wrong rank", "Dropout own generator"),
    ("wrong rank", "ReLU"),
    ("wrong rank", "Linear"),
    ("wrong rank", "LayerNorm"),
    ("wrong rank", "Sequential"),
    ("wrong rank", "RMSNorm"),
}
INPUT_SHAPES = {"InstanceNorm1d": (5, 6, 3), "BatchNorm2d": (5, 6, 2, 2)}
_FAILING = [(bad, mod) for bad in BAD_INPUTS for mod in MODULES if (bad, mod) not in _VALID]


@pytest.mark.parametrize("bad, module", _FAILING, ids=[f"{m}-{b}" for b, m in _FAILING])
def test_failed_forward_and_backward_keep_module_state(bad, module):
    normreg.manual_seed(0)
    m = MODULES[module]()
    x = _f(*INPUT_SHAPES.get(module, (5, 6)))
    y = m(x)
    dy = _f(*y.shape, seed=1)
    m.backward(dy)  # grads are now non-zero, running stats moved, counters advanced
    twin = copy.deepcopy(m)  # same parameters, buffers and generators; nothing pending
    generator_state = normreg.default_generator.get_state().copy()
    m(x)  # pending: its backward is what the failed calls must leave alone
    normreg.default_generator.set_state(generator_state)
    twin(x)  # the same forward (same dropout masks)
    expected_dx = twin.backward(dy)
    before = state(m)
    with pytest.raises((TypeError, ValueError)):
        m(BAD_INPUTS[bad](x))
    assert_same_state(before, state(m))
    bad_dy = BAD_INPUTS[bad](dy)
    if bad == "wrong dtype" and module in ("Dropout", "Dropout own generator", "ReLU"):
        bad_dy = dy.astype(np.int32)
    with pytest.raises((TypeError, ValueError)):
        m.backward(bad_dy)
    assert_same_state(before, state(m))
    # the pending forward survived both failures: its backward takes it
    np.testing.assert_array_equal(m.backward(dy), expected_dx)
    with pytest.raises(RuntimeError, match="no pending forward"):
        m.backward(dy)


@pytest.mark.parametrize("make", MODULES.values(), ids=list(MODULES))
def test_backward_before_forward_changes_nothing(make):
    m = make()
    before = state(m)
    with pytest.raises(RuntimeError, match="no pending forward"):
        m.backward(np.ones((5, 6), np.float32))
    assert_same_state(before, state(m))


def test_batch_norm_single_value_in_training_changes_nothing():
    m = nn.BatchNorm1d(3)
    m(_f(4, 3))
    before = state(m)
    with pytest.raises(ValueError):
        m(_f(1, 3))
    assert_same_state(before, state(m))


def test_softmax_loss_failures_keep_cache():
    loss_fn = nn.SoftmaxLoss()
    z, labels = _f(4, 3), np.array([0, 1, 2, 0])
    loss_fn(z, labels)
    twin = nn.SoftmaxLoss()
    twin(z, labels)
    expected = twin.backward()
    for bad_labels in ([0, 1, 2, 3], [0, 1], "x", None, np.array([0.5, 1, 2, 0])):
        with pytest.raises((TypeError, ValueError)):
            loss_fn(z, bad_labels)
    with pytest.raises(TypeError):
        loss_fn.backward("x")
    np.testing.assert_array_equal(loss_fn.backward(), expected)
    assert loss_fn.pending_forwards == 0


# ---- functional: accumulators, running statistics, generator counters -----------------


def test_linear_backward_failure_keeps_accumulators():
    x, w, dy = _f(4, 3), _f(3, 5), _f(4, 5)
    dw, db = _f(3, 5, seed=2), _f(5, seed=3)
    dw0, db0 = dw.copy(), db.copy()
    for kwargs in (
        dict(dbias=np.zeros(4, np.float32)),
        dict(dbias=np.zeros(5, np.float64)),
        dict(dbias=np.zeros(10, np.float32)[::2]),
    ):
        with pytest.raises((TypeError, ValueError)):
            F.linear_backward(dy, x, w, dweight=dw, **kwargs)
    with pytest.raises(ValueError):
        F.linear_backward(dy[:, :4], x, w, dweight=dw, dbias=db)
    np.testing.assert_array_equal(dw, dw0)
    np.testing.assert_array_equal(db, db0)


def test_norm_backward_failure_keeps_accumulators():
    x, dy = _f(4, 3), _f(4, 3, seed=1)
    y, mean, rstd = F.layer_norm(x, 3, np.ones(3, np.float32))
    dw, db = _f(3, seed=2), _f(3, seed=3)
    dw0, db0 = dw.copy(), db.copy()
    with pytest.raises(ValueError):
        F.layer_norm_backward(
            dy, x, mean, rstd, np.ones(3, np.float32), dweight=dw, dbias=np.zeros(2, np.float32)
        )
    with pytest.raises(ValueError):
        F.batch_norm_backward(
            dy, x, mean[:3], rstd[:3], np.ones(3, np.float32), dweight=dw, dbias=np.zeros(2, np.float32)
        )
    _, bmean, brstd = F.batch_norm(x, None, None, training=True)
    read_only = db.copy()
    read_only.setflags(write=False)
    for x_, dy_ in ((x, dy), (x.reshape(2, 3, 2), dy.reshape(2, 3, 2))):  # (N, C) and (N, C, L)
        with pytest.raises(ValueError):  # dweight comes first: it must not be added to
            F.batch_norm_backward(dy_, x_, bmean, brstd, np.ones(3, np.float32), dweight=dw, dbias=read_only)
    np.testing.assert_array_equal(dw, dw0)
    np.testing.assert_array_equal(db, db0)


@pytest.mark.parametrize(
    "bad",
    [
        "weight",
        "bias",
        "out",
        "momentum",
        "eps",
        "one value",
        "running_var",
        "read-only running_var",
        "ncl weight",
    ],
)
def test_batch_norm_failure_keeps_running_stats(bad):
    x = _f(4, 3)
    rm, rv = _f(3, seed=5), np.abs(_f(3, seed=6)) + 1
    rm0, rv0 = rm.copy(), rv.copy()
    kwargs = dict(
        weight=np.ones(3, np.float32), bias=np.zeros(3, np.float32), training=True, momentum=0.1, eps=1e-5
    )
    args = [x, rm, rv]
    if bad in ("weight", "bias"):
        kwargs[bad] = np.ones(4, np.float32)
    elif bad == "out":
        kwargs["out"] = np.empty((4, 3), np.float32, order="F")[:, :3].T.T[::1, ::-1]
    elif bad == "momentum":
        kwargs["momentum"] = 1.5
    elif bad == "eps":
        kwargs["eps"] = -1.0
    elif bad == "one value":
        args[0] = x[:1]
    elif bad == "running_var":
        args[2] = rv.astype(np.float64)
    elif bad == "read-only running_var":  # running_mean comes first: it must not be updated
        args[2] = rv.copy()
        args[2].setflags(write=False)
    elif bad == "ncl weight":
        args[0] = _f(4, 3, 2)
        kwargs["weight"] = np.ones(3, np.float64)
    with pytest.raises((TypeError, ValueError)):
        F.batch_norm(*args, **kwargs)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)


@pytest.mark.parametrize(
    "bad", ["out shape", "out dtype", "out Fortran", "out read-only", "p", "x", "generator"]
)
def test_dropout_failure_keeps_generator_counter(bad):
    gen = normreg.Generator(7)
    gen.next_offset()
    state0 = gen.get_state().copy()
    default0 = normreg.default_generator.get_state().copy()
    x = _f(4, 3)
    kwargs = dict(generator=gen)
    args = [x, 0.5]
    if bad == "out shape":
        kwargs["out"] = np.empty((3, 4), np.float32)
    elif bad == "out dtype":
        kwargs["out"] = np.empty((4, 3), np.float64)
    elif bad == "out Fortran":
        kwargs["out"] = np.empty((4, 3), np.float32, order="F")
    elif bad == "out read-only":
        out = np.empty((4, 3), np.float32)
        out.flags.writeable = False
        kwargs["out"] = out
    elif bad == "p":
        args[1] = 1.5
    elif bad == "x":
        args[0] = x.astype(np.int64)
    elif bad == "generator":
        kwargs["generator"] = 7
    with pytest.raises((TypeError, ValueError)):
        F.dropout(*args, **kwargs)
    np.testing.assert_array_equal(gen.get_state(), state0)
    np.testing.assert_array_equal(normreg.default_generator.get_state(), default0)


# ---- optimizers ---------------------------------------------------------------------------


def _opt_state(model, opt):
    s = state(model)
    for i, p in enumerate(model.parameters()):
        for k, v in opt.state.get(p, {}).items():
            s[f"opt {i} {k}"] = v.copy() if isinstance(v, np.ndarray) else v
    s["opt keys"] = tuple(sorted(id(p) for p in opt.state))
    for gi, g in enumerate(opt.param_groups):
        for k, v in g.items():
            if k != "params":
                s[f"group {gi} {k}"] = v
    return s


OPTIMIZERS = {
    "SGD": lambda p: __import__("normreg.optim").optim.SGD(p, lr=0.1),
    "SGD momentum nesterov": lambda p: __import__("normreg.optim").optim.SGD(
        p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01
    ),
    "Adam": lambda p: __import__("normreg.optim").optim.Adam(p, lr=0.01, weight_decay=0.01),
    "Adam amsgrad": lambda p: __import__("normreg.optim").optim.Adam(p, lr=0.01, amsgrad=True),
    "AdamW": lambda p: __import__("normreg.optim").optim.AdamW(p, lr=0.01),
}


def _set_bad(model, opt, what):
    ps = model.parameters()
    last = ps[-1]
    if what == "grad shape":
        last.grad = np.ones((7, 7), last.dtype)
    elif what == "grad dtype":
        last.grad = last.grad.astype(np.float64)
    elif what == "grad type":
        last.grad = "x"
    elif what == "grad integers":
        last.grad = last.grad.astype(np.int32)
    elif what == "param read-only":
        last.data.flags.writeable = False
    elif what == "group lr":
        opt.param_groups[-1]["lr"] = -1.0
    elif what == "group lr type":
        opt.param_groups[-1]["lr"] = "x"
    elif what == "state buffer shape":
        st = opt.state.get(last)
        for k, v in (st or {}).items():
            if isinstance(v, np.ndarray):
                st[k] = np.zeros(7, v.dtype)  # the last parameter is a bias of shape (3,)
                return True
        return False
    return True


BAD_STEPS = [
    "grad shape",
    "grad dtype",
    "grad type",
    "grad integers",
    "param read-only",
    "group lr",
    "group lr type",
    "state buffer shape",
]


@pytest.mark.parametrize("oname", list(OPTIMIZERS))
@pytest.mark.parametrize("what", BAD_STEPS)
def test_failed_step_changes_nothing(oname, what):
    normreg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), nn.Linear(5, 3))
    opt = OPTIMIZERS[oname](model.parameters())
    x = _f(6, 4)
    for _ in range(2):  # state exists (momentum buffers, step counts, moments)
        model.zero_grad()
        model.backward(model(x))
        opt.step()
    model.zero_grad()
    model.backward(model(x))
    good = [(p.data, p.grad) for p in model.parameters()]
    last_state = opt.state.get(model.parameters()[-1], {})
    if what == "state buffer shape" and not any(isinstance(v, np.ndarray) for v in last_state.values()):
        pytest.skip("this optimizer keeps no array state")
    before = _opt_state(model, opt)
    saved = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in before.items()}
    groups_lr = [g["lr"] for g in opt.param_groups]
    _set_bad(model, opt, what)
    with pytest.raises((TypeError, ValueError)):
        opt.step()
    # undo the disturbance, then compare everything with the state before the failed step
    for p, (data, grad) in zip(model.parameters(), good):
        data.flags.writeable = True
        p.data, p.grad = data, grad
    for g, lr in zip(opt.param_groups, groups_lr):
        g["lr"] = lr
    if what == "state buffer shape":
        for i, p in enumerate(model.parameters()):
            for k in opt.state.get(p, {}):
                if f"opt {i} {k}" in saved and isinstance(saved[f"opt {i} {k}"], np.ndarray):
                    opt.state[p][k] = saved[f"opt {i} {k}"].copy()
    after = _opt_state(model, opt)
    assert_same_state(saved, after)
    opt.step()  # and the optimizer still works


def test_failed_functional_steps_change_nothing():
    p, g = _f(4, 3), _f(4, 3, seed=1)
    buf, m, v = _f(4, 3, seed=2), _f(4, 3, seed=3), np.abs(_f(4, 3, seed=4))
    copies = [a.copy() for a in (p, g, buf, m, v)]
    with pytest.raises(ValueError):
        F.sgd_step_(p, g, np.zeros(5, np.float32), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError):
        F.sgd_step_(p, g, None, lr=0.1, momentum=0.9)
    with pytest.raises(TypeError):
        F.adam_step_(p, g, m, v.astype(np.float64), step=1, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
    with pytest.raises((TypeError, ValueError)):
        F.adam_step_(p, g[:2], m, v, step=1, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
    for a, c in zip((p, g, buf, m, v), copies):
        np.testing.assert_array_equal(a, c)
