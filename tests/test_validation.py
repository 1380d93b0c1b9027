"""The one argument-check policy (``normreg._validation``), as users meet it everywhere:

* wrong type -> TypeError, wrong value -> ValueError, the message naming the function or
  class and the argument: ``"StepLR: gamma must be a finite real number, got nan"``;
* bool is not a number;
* NaN and Inf are refused where a hyperparameter must be finite, accepted where infinity
  means something (``max_norm``, ``norm_type``) or the number is data (``dloss``);
* NumPy scalars are numbers like Python's.
"""

import math

import numpy as np
import pytest
from helpers import set_grad

import normreg
from normreg import functional as F
from normreg import init, nn, optim
from normreg.data import DataLoader
from normreg.optim import lr_scheduler as L

nan, inf = float("nan"), math.inf


def _params():
    p = nn.Parameter(np.ones((3, 2), np.float32))
    set_grad(p, 1.0)
    return [p]


def _opt():
    return optim.SGD(_params(), lr=0.1)


X = np.arange(12, dtype=np.float32).reshape(3, 4)
W = np.ones((4, 2), np.float32)

CASES = [
    # bool is not a number
    (lambda: optim.SGD(_params(), lr=True), TypeError, r"^SGD: lr .*must be a real number, got bool"),
    (lambda: nn.Dropout(p=True), TypeError, r"^Dropout: p must be a real number, got bool"),
    (lambda: F.layer_norm(X, 4, eps=True), TypeError, r"^layer_norm: eps must be a real number"),
    (lambda: nn.Linear(True, 3), TypeError, r"^Linear: in_features must be an int, got bool"),
    (lambda: L.StepLR(_opt(), step_size=True), TypeError, r"^StepLR: step_size must be an int"),
    (lambda: DataLoader(X, batch_size=True), TypeError, r"^DataLoader: batch_size must be an int"),
    (lambda: init.normal_(W.copy(), std=np.True_), TypeError, r"^normal_: std must be a real"),
    (lambda: normreg.set_num_threads(True), TypeError, r"^set_num_threads: n must be an int"),
    (
        lambda: normreg.set_num_threads(2**63),
        ValueError,
        r"^set_num_threads: n must be in \[1, 1024\], got 9223",
    ),
    (
        lambda: normreg.set_num_threads(1025),
        ValueError,
        r"^set_num_threads: n must be in \[1, 1024\], got 1025$",
    ),
    (lambda: normreg.set_num_threads(0), ValueError, r"^set_num_threads: n must be in \[1, 1024\], got 0$"),
    (lambda: nn.utils.clip_grad_value_(_params(), False), TypeError, r"^clip_grad_value_: clip_value"),
    (lambda: optim.Adam(_params(), amsgrad=1), TypeError, r"^Adam: amsgrad must be a bool, got int"),
    # NaN or Inf as a hyperparameter
    (
        lambda: L.StepLR(_opt(), 2, gamma=nan),
        ValueError,
        r"^StepLR: gamma must be a finite real number, got nan$",
    ),
    (
        lambda: L.CosineAnnealingLR(_opt(), 10, eta_min=inf),
        ValueError,
        r"^CosineAnnealingLR: eta_min must be a finite",
    ),
    (
        lambda: optim.Adam(_params(), lr=inf),
        ValueError,
        r"^Adam: lr \(learning rate\) must be a finite real number, got inf$",
    ),
    (lambda: optim.SGD(_params(), lr=0.1, momentum=nan), ValueError, r"^SGD: momentum must be a finite"),
    (
        lambda: optim.param_groups(nn.Linear(2, 2), weight_decay=nan),
        ValueError,
        r"^param_groups: weight_decay",
    ),
    (lambda: nn.BatchNorm1d(3, eps=inf), ValueError, r"^BatchNorm1d: eps must be a finite"),
    (lambda: nn.BatchNorm1d(3, momentum=nan), ValueError, r"^BatchNorm1d: momentum must be a finite"),
    (lambda: nn.LayerNorm(4, eps=nan), ValueError, r"^LayerNorm: eps must be a finite"),
    (lambda: F.batch_norm(X, None, None, training=True, momentum=nan), ValueError, r"^batch_norm: momentum"),
    (lambda: F.dropout(X, p=nan), ValueError, r"^dropout: p must be a finite"),
    (lambda: init.uniform_(W.copy(), a=-inf), ValueError, r"^uniform_: a must be a finite"),
    (lambda: init.xavier_normal_(W.copy(), gain=nan), ValueError, r"^xavier_normal_: gain must be a finite"),
    (lambda: nn.l2_penalty(_params(), inf), ValueError, r"^l2_penalty: lam must be a finite"),
    (lambda: nn.utils.clip_grad_norm_(_params(), max_norm=nan), ValueError, r"^clip_grad_norm_: max_norm"),
    (lambda: F.sgd_step_(W.copy(), W, lr=nan), ValueError, r"^sgd_step_: lr must be a finite"),
    # other wrong values
    (lambda: nn.GroupNorm(3, 4), ValueError, r"^GroupNorm: num_groups must be >= 1 and divide"),
    (
        lambda: L.LinearLR(_opt(), start_factor=0.0),
        ValueError,
        r"^LinearLR: start_factor must be in \(0, 1\], got 0$",
    ),
    (lambda: DataLoader(X, batch_size=0), ValueError, r"^DataLoader: batch_size must be positive, got 0$"),
    (lambda: optim.Adam(_params(), betas=(0.9, 1.0)), ValueError, r"^Adam: betas\[1\] .*must be in \[0, 1\)"),
    (lambda: nn.Linear(3, -1), ValueError, r"^Linear: out_features must be >= 0, got -1$"),
    (lambda: F.layer_norm(X, 4, eps=-1.0), ValueError, r"^layer_norm: eps must be >= 0, got -1$"),
    # other wrong types
    (lambda: nn.BatchNorm1d(3, momentum_style=1), TypeError, r"^BatchNorm1d: momentum_style must be one of"),
    (
        lambda: nn.BatchNorm1d(3, momentum_style="ema"),
        ValueError,
        r"^BatchNorm1d: momentum_style must be one of",
    ),
    (lambda: nn.Linear(3, 3, dtype=np.int32), TypeError, r"^Linear: dtype must be float32 or float64"),
    (lambda: F.linear(X.astype(np.int64), W), TypeError, r"^linear: x must have dtype float32 or float64"),
    (
        lambda: F.linear(X, W.astype(np.float64)),
        TypeError,
        r"^linear: weight has dtype float64, expected float32",
    ),
    (lambda: F.relu(X, out=[0.0]), TypeError, r"^relu: out must be a numpy.ndarray"),
    (
        lambda: F.dropout(X, generator=np.random.default_rng()),
        TypeError,
        r"^dropout: generator must be a normreg.Generator",
    ),
    (lambda: L.StepLR(_opt(), 2, gamma="0.1"), TypeError, r"^StepLR: gamma must be a real number, got str$"),
]


@pytest.mark.parametrize("call,exc,message", CASES, ids=[c[2] for c in CASES])
def test_the_policy(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_infinity_where_it_means_something():
    params = _params()
    total = nn.utils.clip_grad_norm_(params, max_norm=inf)
    assert total == pytest.approx(math.sqrt(6.0))
    np.testing.assert_array_equal(params[0].grad, 1.0)  # never clipped
    assert nn.utils.get_total_norm([np.array([3.0, -4.0])], norm_type=inf) == 4.0
    assert nn.utils.get_total_norm([np.array([3.0, -4.0])], norm_type="inf") == 4.0
    with pytest.raises(ValueError, match="norm_type"):
        nn.utils.get_total_norm([np.ones(2)], norm_type=nan)


def test_an_upstream_gradient_is_data_and_may_be_nan():
    logits = np.zeros((2, 3), np.float32)
    labels = np.array([0, 2])
    _, lse = F.cross_entropy(logits, labels)
    assert np.isnan(F.cross_entropy_backward(logits, labels, lse, dloss=nan)).all()
    with pytest.raises(TypeError, match="dloss"):
        F.cross_entropy_backward(logits, labels, lse, dloss=True)


def test_numpy_scalars_are_numbers():
    opt = optim.SGD(_params(), lr=np.float32(0.5), momentum=np.float64(0.9))
    assert opt.param_groups[0]["lr"] == 0.5 and type(opt.param_groups[0]["lr"]) is float
    layer = nn.Linear(np.int64(3), np.int32(2))
    assert (layer.in_features, layer.out_features) == (3, 2)
    assert type(layer.in_features) is int
    sched = L.StepLR(opt, np.int64(2), gamma=np.float32(0.5))
    assert sched.step_size == 2 and sched.gamma == 0.5


def test_a_failed_check_changes_nothing():
    opt = _opt()
    group = dict(opt.param_groups[0])
    with pytest.raises(ValueError, match="learning rate"):
        opt.add_param_group({"params": _params(), "lr": nan})
    assert len(opt.param_groups) == 1 and opt.param_groups[0] == group


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda x: normreg._C.layer_norm_forward(x, None, None, -0.5, None),
            r"^layer_norm_forward: argument 'eps' must be >= 0, got -0\.5$",
        ),
        (
            lambda x: normreg._C.dropout_forward(x, 1.5, True, None, None),
            r"^dropout_forward: argument 'p' must be in \[0, 1\], got 1\.5$",
        ),
        (
            lambda x: normreg._C.dropout_forward(x, nan, True, None, None),
            r"^dropout_forward: argument 'p' must be in \[0, 1\], got nan$",
        ),
    ],
)
def test_the_extension_names_the_value_it_refuses(call, message):
    """The extension's range errors show the value given (as Python prints it)."""
    with pytest.raises(ValueError, match=message):
        call(np.zeros((2, 3), np.float32))
