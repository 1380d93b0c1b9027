"""Module hooks (PyTorch's): register_forward_pre_hook, register_forward_hook,
register_full_backward_pre_hook, register_full_backward_hook and their handles.

Each hooked module is compared with an unhooked deep copy of itself made before the hooks:
what the hooks get must equal that copy's input, output, dy and dx, and after the hooks are
removed the module computes exactly what the copy computes."""

import copy
import pickle
import warnings

import numpy as np
import pytest

import normreg
from normreg import nn


def _leaves():
    return {
        "LayerNorm": lambda: nn.LayerNorm(8),
        "Linear": lambda: nn.Linear(8, 8, generator=normreg.Generator().manual_seed(1)),
        "ReLU": lambda: nn.ReLU(),
        "Dropout": lambda: nn.Dropout(0.3, generator=normreg.Generator().manual_seed(2)),
        "BatchNorm1d": lambda: nn.BatchNorm1d(8),
    }


def _sequential():
    g = normreg.Generator().manual_seed(3)
    return nn.Sequential(nn.Linear(8, 8, generator=g), nn.ReLU(), nn.LayerNorm(8))


MAKERS = {**_leaves(), "Sequential": _sequential}


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 8)).astype(np.float32), rng.standard_normal((6, 8)).astype(np.float32)


def _record(module, log):
    """Register one hook of each kind that appends what it gets to ``log``; the handles."""
    return [
        module.register_forward_pre_hook(lambda m, args: log.append(("forward_pre", m, args))),
        module.register_forward_hook(lambda m, args, out: log.append(("forward", m, args, out))),
        module.register_full_backward_pre_hook(lambda m, go: log.append(("backward_pre", m, go))),
        module.register_full_backward_hook(lambda m, gi, go: log.append(("backward", m, gi, go))),
    ]


def _grads(module):
    return [None if p.grad is None else p.grad.copy() for p in module.parameters()]


def _assert_same_grads(a, b):
    for ga, gb in zip(_grads(a), _grads(b)):
        assert (ga is None) == (gb is None)
        if ga is not None:
            np.testing.assert_array_equal(ga, gb)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_called_directly_the_hooks_get_the_input_output_dy_and_dx(name):
    m = MAKERS[name]()
    ref = copy.deepcopy(m)
    x, dy = _data()
    log = []
    _record(m, log)
    y = m(x)
    dx = m.backward(dy)
    y_ref = ref(x)
    dx_ref = ref.backward(dy)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    _assert_same_grads(m, ref)
    assert [e[0] for e in log] == ["forward_pre", "forward", "backward_pre", "backward"]
    (_, m1, args1), (_, m2, args2, out), (_, m3, go3), (_, m4, gi4, go4) = log
    assert m1 is m2 is m3 is m4 is m
    assert type(args1) is tuple and len(args1) == 1 and args1[0] is x and args2[0] is x
    assert out is y
    assert type(go3) is tuple and len(go3) == 1 and go3[0] is dy
    assert go4[0] is dy and type(gi4) is tuple and len(gi4) == 1 and gi4[0] is dx


@pytest.mark.parametrize("name", sorted(_leaves()))
@pytest.mark.parametrize("container", ["Sequential", "Residual", "ModuleList"])
def test_inside_a_container_the_hooks_of_a_layer_fire_with_its_own_values(name, container):
    x, dy = _data(1)
    first = nn.Linear(8, 8, generator=normreg.Generator().manual_seed(5))
    layer = _leaves()[name]()
    first_ref, layer_ref = copy.deepcopy(first), copy.deepcopy(layer)
    log = []
    _record(layer, log)
    if container == "Sequential":
        model = nn.Sequential(first, layer)
    elif container == "Residual":
        model = nn.Sequential(first, nn.Residual(layer))
    else:
        model = _ListModel(first, layer)
    out = model(x)
    model.backward(dy)
    # the layer's own input, output and gradients, by hand
    h = first_ref(x)
    y = layer_ref(h)
    np.testing.assert_array_equal(out, y + h if container == "Residual" else y)
    dh = layer_ref.backward(dy)
    assert [e[0] for e in log] == ["forward_pre", "forward", "backward_pre", "backward"]
    np.testing.assert_array_equal(log[0][2][0], h)
    np.testing.assert_array_equal(log[1][3], y)
    np.testing.assert_array_equal(log[2][2][0], dy)
    np.testing.assert_array_equal(log[3][2][0], dh)
    first_ref.backward(dh + dy if container == "Residual" else dh)
    _assert_same_grads(first, first_ref)


class _ListModel(nn.Module):
    """A module of its own calling the modules of a ModuleList."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for m in self.layers:
            x = m(x)
        return x

    def backward(self, dy):
        for m in reversed(self.layers):
            dy = m.backward(dy)
        return dy


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_returned_values_replace_the_input_output_dy_and_dx(name):
    x, dy = _data(2)
    makers = MAKERS[name]
    base = makers()
    # forward pre-hook: a value that is not a tuple stands for (value,)
    m, ref = copy.deepcopy(base), copy.deepcopy(base)
    m.register_forward_pre_hook(lambda mod, args: 2 * args[0])
    np.testing.assert_array_equal(m(x), ref(2 * x))
    # forward hook: 2 * output
    m, ref = copy.deepcopy(base), copy.deepcopy(base)
    m.register_forward_hook(lambda mod, args, out: 2 * out)
    np.testing.assert_array_equal(m(x), 2 * ref(x))
    # backward pre-hook: (3 dy,) is the dy of the backward, parameter gradients included
    m, ref = copy.deepcopy(base), copy.deepcopy(base)
    m.register_full_backward_pre_hook(lambda mod, go: (3 * go[0],))
    m(x), ref(x)
    np.testing.assert_array_equal(m.backward(dy), ref.backward(3 * dy))
    _assert_same_grads(m, ref)
    # backward hook: (2 dx,) is what backward returns; the parameter gradients stay
    m, ref = copy.deepcopy(base), copy.deepcopy(base)
    m.register_full_backward_hook(lambda mod, gi, go: (2 * gi[0],))
    m(x), ref(x)
    np.testing.assert_array_equal(m.backward(dy), 2 * ref.backward(dy))
    _assert_same_grads(m, ref)


def test_a_replaced_dx_is_what_the_layer_before_gets_in_a_sequential():
    x, dy = _data(3)
    model = _sequential()
    ref = copy.deepcopy(model)
    model[2].register_full_backward_hook(lambda mod, gi, go: (2 * gi[0],))
    model(x), ref(x)
    model.backward(dy)
    dh = ref[2].backward(dy)
    ref[0].backward(ref[1].backward(2 * dh))
    _assert_same_grads(model, ref)


def test_hooks_run_in_the_order_registered_and_prepend_puts_one_first():
    x, dy = _data()
    m = nn.LayerNorm(8)
    order = []
    for tag, prepend in (("a", False), ("b", False), ("c", True), ("d", False), ("e", True)):
        m.register_forward_pre_hook(lambda mod, args, t=tag: order.append("fp" + t), prepend=prepend)
        m.register_forward_hook(lambda mod, args, out, t=tag: order.append("f" + t), prepend=prepend)
        m.register_full_backward_pre_hook(lambda mod, go, t=tag: order.append("bp" + t), prepend=prepend)
        m.register_full_backward_hook(lambda mod, gi, go, t=tag: order.append("b" + t), prepend=prepend)
    m(x)
    m.backward(dy)
    expected = ["e", "c", "a", "b", "d"]
    assert order == [p + t for p in ("fp", "f", "bp", "b") for t in expected]


def test_each_hook_gets_what_the_one_before_returned():
    x, _ = _data()
    m = nn.ReLU()
    seen = []
    m.register_forward_hook(lambda mod, args, out: out + 1)
    m.register_forward_hook(lambda mod, args, out: seen.append(out.copy()))  # None: kept
    m.register_forward_hook(lambda mod, args, out: out * 10)
    y = m(x)
    np.testing.assert_array_equal(seen[0], np.maximum(x, 0) + 1)
    np.testing.assert_array_equal(y, (np.maximum(x, 0) + 1) * 10)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_after_removal_the_module_is_of_its_class_and_computes_as_before(name):
    x, dy = _data(4)
    m = MAKERS[name]()
    cls = type(m)
    ref = copy.deepcopy(m)
    log = []
    handles = _record(m, log)
    assert type(m) is not cls and isinstance(m, cls) and type(m).__name__ == cls.__name__
    for h in handles:
        h.remove()
        h.remove()  # again: nothing
    assert type(m) is cls and "_module_hooks" not in vars(m)
    np.testing.assert_array_equal(m(x), ref(x))
    np.testing.assert_array_equal(m.backward(dy), ref.backward(dy))
    _assert_same_grads(m, ref)
    assert log == []


def test_removing_one_hook_keeps_the_others_and_a_handle_is_a_context_manager():
    x, _ = _data()
    m = nn.ReLU()
    calls = []
    keep = m.register_forward_hook(lambda mod, args, out: calls.append("keep"))
    with m.register_forward_hook(lambda mod, args, out: calls.append("block")) as h:
        assert isinstance(h.id, int) and h.id != keep.id
        m(x)
    m(x)
    assert calls == ["keep", "block", "keep"]
    keep.remove()
    assert type(m) is nn.ReLU
    m(x)
    assert calls == ["keep", "block", "keep"]


def test_no_hooks_means_the_class_call_itself():
    # a module without hooks runs its class's __call__ (for a leaf, its forward) with
    # nothing added; only a hooked module gets the class that runs hooks
    for make in MAKERS.values():
        m = make()
        assert type(m) is type(make())
        assert type(m).__call__ is type(make()).__call__
    assert nn.LayerNorm.__call__ is nn.LayerNorm.forward


def test_input_grad_false_gives_grad_input_none_and_refuses_a_gradient_for_it():
    x, dy = _data(5)
    model = _sequential()
    log = []
    _record(model, log)
    _record(model[0], log)
    model(x)
    assert model.backward(dy, input_grad=False) is None
    backward = [e for e in log if e[0] == "backward"]
    assert [e[1] for e in backward] == [model[0], model]
    assert backward[0][2] == (None,) and backward[1][2] == (None,)
    lin = nn.Linear(8, 8)
    lin.register_full_backward_hook(lambda mod, gi, go: (None,))  # allowed
    lin(x)
    assert lin.backward(dy, input_grad=False) is None
    lin.register_full_backward_hook(lambda mod, gi, go: (np.zeros_like(x),))
    lin(x)
    with pytest.raises(RuntimeError, match="no input requires gradient"):
        lin.backward(dy, input_grad=False)


def test_a_backward_hook_must_return_none_or_one_gradient():
    x, dy = _data()
    m = nn.ReLU()
    h = m.register_full_backward_hook(lambda mod, gi, go: gi[0])
    m(x)
    with pytest.raises(TypeError, match="tuple"):
        m.backward(dy)
    h.remove()
    m.register_full_backward_pre_hook(lambda mod, go: (dy, dy))
    m(x)
    with pytest.raises(RuntimeError, match="invalid number of grad_output, got 2, but expected 1"):
        m.backward(dy)


def test_forward_hooks_run_under_no_grad_and_backward_hooks_only_in_backward():
    x, dy = _data()
    m = nn.LayerNorm(8)
    log = []
    _record(m, log)
    with normreg.no_grad():
        y = m(x)
    assert [e[0] for e in log] == ["forward_pre", "forward"] and log[1][3] is y
    assert m.pending_forwards == 0
    with pytest.raises(RuntimeError, match="LayerNorm.backward: no pending forward"):
        m.backward(dy)
    assert "backward" not in [e[0] for e in log]


def test_a_loss_backward_with_its_default_dloss():
    logits, _ = _data()
    labels = np.array([0, 1, 2, 3, 4, 5])
    loss, ref = nn.SoftmaxLoss(), nn.SoftmaxLoss()
    log = []
    _record(loss, log)
    loss(logits, labels), ref(logits, labels)
    dlogits = loss.backward()
    np.testing.assert_array_equal(dlogits, ref.backward())
    assert log[0][2] == (logits, labels)
    assert log[2][2] == (1.0,) and log[3][2][0] is dlogits
    loss(logits, labels), ref(logits, labels)
    np.testing.assert_array_equal(loss.backward(dloss=2.0), ref.backward(2.0))
    assert log[-1][3] == (2.0,)


def test_a_call_that_raises_in_a_hook_leaves_nothing_saved():
    x, _ = _data()
    model = _sequential()

    def fail(mod, args, out):
        raise ValueError("hook")

    model.register_forward_hook(fail)
    with pytest.raises(ValueError, match="hook"):
        model(x)
    assert [m.pending_forwards for m in model.modules()] == [0, 0, 0, 0]


def test_with_kwargs_and_always_call():
    x, _ = _data()
    m = nn.ReLU()
    seen = []
    m.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0] - 1,), kwargs), with_kwargs=True)
    m.register_forward_hook(lambda mod, args, kwargs, out: seen.append(kwargs) or out + 5, with_kwargs=True)
    np.testing.assert_array_equal(m(x), np.maximum(x - 1, 0) + 5)
    assert seen == [{}]
    m.register_forward_pre_hook(lambda mod, args, kwargs: args, with_kwargs=True)
    with pytest.raises(RuntimeError, match="new_args, new_kwargs"):
        m(x)
    lin = nn.Linear(8, 8)
    got = []
    lin.register_forward_hook(lambda mod, args, out: got.append(out), always_call=True)
    lin.register_forward_hook(lambda mod, args, out: got.append("not always"))
    with pytest.raises(ValueError):
        lin(np.zeros((2, 3), np.float32))  # wrong width: forward raises
    assert got == [None]
    with pytest.raises(TypeError, match="with_kwargs must be a bool"):
        lin.register_forward_hook(print, with_kwargs=1)
    with pytest.raises(TypeError, match="hook must be callable"):
        lin.register_forward_hook(3)


def hook_times_two(module, args, output):  # module level: picklable
    return 2 * output


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_a_hooked_module_pickles_copies_and_keeps_its_state_dict(name, tmp_path):
    x, _ = _data(6)
    m = MAKERS[name]().eval()  # no draws of Dropout's generator: a copy computes the same
    ref = copy.deepcopy(m)
    h = m.register_forward_hook(hook_times_two)
    assert repr(m) == repr(ref)
    assert list(m.state_dict()) == list(ref.state_dict())
    m(x)  # a pending forward: left behind by copies, as without hooks
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m), copy.copy(m)):
        assert isinstance(clone, type(ref)) and type(clone).__name__ == type(ref).__name__
        assert clone.pending_forwards == 0 and m.pending_forwards == 1
        with normreg.no_grad():
            np.testing.assert_array_equal(clone(x), 2 * ref(x))  # the hook came along
    # the handle acts on its own module only; the copies keep their hooks
    clones = [copy.deepcopy(m), copy.copy(m)]
    h.remove()
    assert type(m) is type(ref)
    with normreg.no_grad():
        for clone in clones:
            np.testing.assert_array_equal(clone(x), 2 * ref(x))
    # state_dict, load_state_dict and normreg.save / load of a hooked module
    m.register_forward_hook(hook_times_two)
    for p in m.parameters():
        p.data += 1
    state = m.state_dict()
    normreg.save(state, tmp_path / "m.npz")
    loaded = normreg.load(tmp_path / "m.npz")
    fresh = MAKERS[name]()
    fresh.register_forward_hook(hook_times_two)
    fresh.load_state_dict(loaded)
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, state[k])


def test_a_lambda_hook_does_not_pickle_but_deepcopies():
    m = nn.ReLU()
    m.register_forward_hook(lambda mod, args, out: out)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(m)
    assert type(copy.deepcopy(m)).__name__ == "ReLU"


def _mlp(batchnorm, generator):
    layers = []
    for n_in, n_out in ((20, 64), (64, 64), (64, 64)):
        layers.append(nn.Linear(n_in, n_out, generator=generator))
        if batchnorm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_use_case_activation_statistics_of_an_mlp(batchnorm):
    """Per-layer activation means and stds collected by forward hooks, checked against a
    forward run layer by layer by hand."""
    x = (np.random.default_rng(7).standard_normal((128, 20)) * 3 + 1).astype(np.float32)
    model = _mlp(batchnorm, normreg.Generator().manual_seed(11))
    ref = copy.deepcopy(model)
    stats = {}

    def collect(name):
        def hook(module, args, out):
            stats[name] = (float(out.mean()), float(out.std()))

        return hook

    handles = [m.register_forward_hook(collect(name)) for name, m in model.named_children()]
    model(x)
    for h in handles:
        h.remove()
    assert list(stats) == [str(i) for i in range(len(model))]
    h = x
    for i, layer in enumerate(ref):
        h = layer(h)
        mean, std = stats[str(i)]
        assert mean == pytest.approx(float(h.mean()), rel=1e-6, abs=1e-7)
        assert std == pytest.approx(float(h.std()), rel=1e-6)
        if isinstance(layer, nn.BatchNorm1d):  # what the statistics are for
            assert abs(mean) < 1e-5 and std == pytest.approx(1.0, abs=1e-3)
    assert all(s > 0 for _, s in stats.values())


def _torch_pair(torch):
    ours = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    theirs = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    with torch.no_grad():
        for i in (0, 2):
            theirs[i].weight.copy_(torch.from_numpy(ours[i].weight.data.T.copy()))
            theirs[i].bias.copy_(torch.from_numpy(ours[i].bias.data))
    return ours, theirs


def _hook_log(model, as_np):
    log = []
    for name, m in model.named_modules():
        m.register_forward_pre_hook(lambda mod, a, n=name: log.append(("fp", n, [as_np(t) for t in a])))
        m.register_forward_hook(lambda mod, a, o, n=name: log.append(("f", n, [as_np(o)])))
        m.register_full_backward_pre_hook(
            lambda mod, go, n=name: log.append(("bp", n, [as_np(g) for g in go]))
        )
        m.register_full_backward_hook(
            lambda mod, gi, go, n=name: log.append(("b", n, [as_np(g) for g in gi + go]))
        )
    return log


@pytest.mark.parametrize("input_grad", [True, False])
def test_torch_calls_the_hooks_in_the_same_order_with_the_same_values(input_grad):
    torch = pytest.importorskip("torch")
    x, _ = _data(8)
    dy = np.random.default_rng(9).standard_normal((6, 4)).astype(np.float32)
    ours, theirs = _torch_pair(torch)
    ours_log = _hook_log(ours, lambda a: a)
    theirs_log = _hook_log(theirs, lambda t: None if t is None else t.detach().numpy().copy())
    ours(x)
    ours.backward(dy, input_grad=input_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTorch's of the case input_grad=False
        theirs(torch.from_numpy(x).requires_grad_(input_grad)).backward(torch.from_numpy(dy))
    # fp/f of "", "0", "1", "2" nested; then bp "", bp/b of "2", "1", "0", b ""
    order = "fp: fp:0 f:0 fp:1 f:1 fp:2 f:2 f: bp: bp:2 b:2 bp:1 b:1 bp:0 b:0 b:"
    events = [tuple(e.split(":")) for e in order.split()]
    assert [e[:2] for e in ours_log] == events
    if not input_grad:
        # PyTorch calls the full backward hook of a module none of whose inputs requires
        # grad at once after its pre-hook (with a warning): the Sequential's comes second
        # there, last here (after its backward, as when the input requires grad)
        assert [e[:2] for e in theirs_log[8:10]] == [("bp", ""), ("b", "")]
        theirs_log.append(theirs_log.pop(9))
    assert [e[:2] for e in theirs_log] == events
    for a, b in zip(ours_log, theirs_log):
        assert len(a[2]) == len(b[2]), a[:2]
        for u, v in zip(a[2], b[2]):
            assert (u is None) == (v is None), a[:2]
            if u is not None:
                np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6, err_msg=str(a[:2]))
