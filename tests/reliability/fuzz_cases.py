"""Fuzz cases for the binding (every function of ``normreg._C``, found with ``dir``), the
functional API and the modules: wrong types, wrong argument counts, None, huge and
negative sizes, mismatched shapes, non-arrays and objects whose ``__array__`` raises.

The case list is deterministic, so a child process can rebuild it and run a slice:

    python tests/reliability/fuzz_cases.py START STOP

prints one line per case, ``index<TAB>status<TAB>detail``, then ``DONE``. A case passes
when it returns or raises TypeError, ValueError or OverflowError; a child that dies (a
signal, a sanitizer report) or hangs fails the case it was running.
"""

import os
import re
import sys

import numpy as np

ALLOWED = (TypeError, ValueError, OverflowError)


class HostileError(Exception):
    """Raised by the hostile objects' own methods; it may propagate unchanged."""


class RaisesOnArray:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("__array__ refuses")


class RaisesOnArrayInterface:
    @property
    def __array_interface__(self):
        raise RuntimeError("__array_interface__ refuses")


class BadSequence:
    """A sequence whose own methods raise (so does ``bool()`` of it)."""

    def __len__(self):
        raise HostileError("__len__ refuses")

    def __getitem__(self, i):
        raise HostileError("__getitem__ refuses")


class BadNumber:
    """Looks like a number to nobody: __bool__, __float__, __index__ raise."""

    def __bool__(self):
        raise HostileError("__bool__")

    def __float__(self):
        raise HostileError("__float__")

    def __index__(self):
        raise HostileError("__index__")


def _unaligned(shape, dtype=np.float32):
    n = int(np.prod(shape))
    buf = bytearray(n * np.dtype(dtype).itemsize + 1)
    return np.frombuffer(buf, dtype=dtype, count=n, offset=1).reshape(shape)


def _readonly(shape):
    a = np.ones(shape, np.float32)
    a.flags.writeable = False
    return a


def hostile_values(with_huge_views=True):
    """(label, factory) pairs: factories so every case gets fresh objects."""
    vals = [
        ("None", lambda: None),
        ("True", lambda: True),
        ("0", lambda: 0),
        ("-1", lambda: -1),
        ("2**31", lambda: 2**31),
        ("2**63", lambda: 2**63),
        ("-2**63-1", lambda: -(2**63) - 1),
        ("2**64", lambda: 2**64),
        ("10**30", lambda: 10**30),
        ("nan", lambda: float("nan")),
        ("inf", lambda: float("inf")),
        ("-inf", lambda: float("-inf")),
        ("1e308", lambda: 1e308),
        ("-0.5", lambda: -0.5),
        ("str", lambda: "x"),
        ("bytes", lambda: b"x"),
        ("list", lambda: [1.0, 2.0]),
        ("ragged", lambda: [[1.0], [2.0, 3.0]]),
        ("dict", lambda: {}),
        ("object", lambda: object()),
        ("raises_array", RaisesOnArray),
        ("raises_array_interface", RaisesOnArrayInterface),
        ("bad_sequence", BadSequence),
        ("bad_number", BadNumber),
        ("tuple_huge", lambda: (2**62, 2**62)),
        ("tuple_negative", lambda: (-3,)),
        ("f32 (4,)", lambda: np.ones(4, np.float32)),
        ("f64 (4,)", lambda: np.ones(4)),
        ("f32 (2,3)", lambda: np.ones((2, 3), np.float32)),
        ("f64 (4,3)", lambda: np.ones((4, 3))),
        ("f32 (4,3,2)", lambda: np.ones((4, 3, 2), np.float32)),
        ("f32 0-d", lambda: np.array(1.0, np.float32)),
        ("f32 (0,)", lambda: np.ones(0, np.float32)),
        ("f32 (0,3)", lambda: np.ones((0, 3), np.float32)),
        ("f32 (4,0)", lambda: np.ones((4, 0), np.float32)),
        ("f16", lambda: np.ones(4, np.float16)),
        ("i32", lambda: np.ones(4, np.int32)),
        ("i64 (4,)", lambda: np.zeros(4, np.int64)),
        ("u8", lambda: np.ones(4, np.uint8)),
        ("c64", lambda: np.ones(4, np.complex64)),
        ("bool", lambda: np.ones(4, bool)),
        ("object array", lambda: np.array([1.0, None], dtype=object)),
        ("datetime", lambda: np.zeros(4, "M8[s]")),
        ("structured", lambda: np.zeros(4, "f4,f4")),
        ("f32 strided", lambda: np.ones(8, np.float32)[::2]),
        ("f32 negative strides", lambda: np.ones((4, 3), np.float32)[::-1]),
        ("f32 F-order", lambda: np.ones((3, 4), np.float32, order="F")),
        ("f32 read-only", lambda: _readonly((4, 3))),
        ("f32 unaligned", lambda: _unaligned((4, 3))),
        ("f32 byteswapped", lambda: np.ones((4, 3), ">f4")),
        ("f32 NaN (4,3)", lambda: np.full((4, 3), np.nan, np.float32)),
        ("f32 Inf (4,3)", lambda: np.full((4, 3), np.inf, np.float32)),
        (
            "f32 mixed NaN/Inf/-Inf (4,3,2)",
            lambda: np.array([np.nan, np.inf, -np.inf, 0.0] * 6, np.float32).reshape(4, 3, 2),
        ),
        ("f64 NaN (4,3)", lambda: np.full((4, 3), np.nan)),
        ("f32 masked", lambda: np.ma.array(np.ones((4, 3), np.float32))),
        ("f32 huge zero-size", lambda: np.empty((2**40, 0, 2**20), np.float32)),
        ("f32 huge zero-size 2-D", lambda: np.empty((2**40, 0), np.float32)),
        ("f32 huge-columns zero-size", lambda: np.empty((0, 2**40), np.float32)),
    ]
    if with_huge_views:
        # zero-stride views of 2**62 elements: copying them cannot succeed
        vals.append(("f32 huge broadcast", lambda: np.broadcast_to(np.float32(1), (2**31, 2**31))))
    return vals


def shape_variants(template):
    """Arrays of the template's dtype in other shapes, to mismatch the others."""
    dt = template.dtype
    shapes = [
        (),
        (0,),
        (1,),
        (5,),
        (4, 4),
        (3, 4),
        (2, 3, 4),
        (4, 3, 1),
        (4, 3, 0),
        (0, 3),
        (4, 0),
        (1, 1, 1),
        (4, 3, 2, 1),
    ]
    return [
        (f"{dt} {s}", (lambda s=s: np.ones(s, dt) if dt != np.int64 else np.zeros(s, dt))) for s in shapes
    ]


# ---- templates of valid calls ------------------------------------------------------------


def _f(*shape):
    return np.random.default_rng(sum(shape) + 1).standard_normal(shape).astype(np.float32)


def _c_templates():
    """Valid argument tuples for the known binding functions."""

    def labels():
        return np.array([0, 1, 2, 0], np.int64)

    return {
        "linear_forward": lambda: (_f(4, 3), _f(3, 5), _f(5), None),
        "linear_backward": lambda: (
            _f(4, 5),
            _f(4, 3),
            _f(3, 5),
            None,
            np.zeros((3, 5), np.float32),
            np.zeros(5, np.float32),
            True,
        ),
        "relu_forward": lambda: (_f(4, 3), None),
        "exp": lambda: (_f(4, 3), None),
        "relu_backward": lambda: (_f(4, 3), _f(4, 3), None),
        "layer_norm_forward": lambda: (_f(4, 3), _f(3), _f(3), 1e-5, None),
        "layer_norm_backward": lambda: (
            _f(4, 3),
            _f(4, 3),
            _f(4),
            np.ones(4, np.float32),
            _f(3),
            np.zeros(3, np.float32),
            np.zeros(3, np.float32),
            None,
        ),
        "batch_norm_forward": lambda: (
            _f(4, 3, 2),
            _f(3),
            _f(3),
            np.zeros(3, np.float32),
            np.ones(3, np.float32),
            True,
            0.1,
            1e-5,
            None,
        ),
        "batch_norm_backward": lambda: (
            _f(4, 3, 2),
            _f(4, 3, 2),
            _f(3),
            np.ones(3, np.float32),
            _f(3),
            np.zeros(3, np.float32),
            np.zeros(3, np.float32),
            True,
            None,
        ),
        "dropout_forward": lambda: (_f(4, 3), 0.5, 1, 2, None),
        "dropout_backward": lambda: (_f(4, 3), np.full(2, 0xA5, np.uint8), 0.5, None),
        "philox4x32": lambda: (1, 2, 3, 4, 5, 6),
        "cross_entropy_forward": lambda: (_f(4, 3), labels()),
        "cross_entropy_backward": lambda: (_f(4, 3), labels(), _f(4), 1.0, None),
        "sgd_step": lambda: (
            _f(4, 3),
            _f(4, 3),
            np.zeros((4, 3), np.float32),
            0.1,
            0.9,
            0.0,
            0.01,
            False,
            True,
        ),
        "adam_step": lambda: (
            _f(4, 3),
            _f(4, 3),
            np.zeros((4, 3), np.float32),
            np.zeros((4, 3), np.float32),
            np.zeros((4, 3), np.float32),
            1e-3,
            0.9,
            0.999,
            1e-8,
            0.01,
            False,
            0.1,
            0.001,
        ),
        "rms_norm_forward": lambda: (_f(4, 3), _f(3), 1e-6, None),
        "rms_norm_backward": lambda: (
            _f(4, 3),
            _f(4, 3),
            np.ones(4, np.float32),
            _f(3),
            np.zeros(3, np.float32),
            None,
        ),
        "group_norm_forward": lambda: (_f(2, 4, 3), _f(4), _f(4), 2, 1e-5, None),
        "group_norm_backward": lambda: (
            _f(2, 4, 3),
            _f(2, 4, 3),
            _f(2, 2),
            np.ones((2, 2), np.float32),
            _f(4),
            np.zeros(4, np.float32),
            np.zeros(4, np.float32),
            2,
            None,
        ),
        "conv2d_forward": lambda: (_f(2, 3, 5, 5), _f(4, 3, 3, 3), _f(4), 1, 1, 1, 1, None),
        "conv2d_backward": lambda: (
            _f(2, 4, 5, 5),
            _f(2, 3, 5, 5),
            _f(4, 3, 3, 3),
            1,
            1,
            1,
            1,
            np.zeros((4, 3, 3, 3), np.float32),
            np.zeros(4, np.float32),
            True,
        ),
        "max_pool2d_forward": lambda: (_f(2, 3, 4, 4), 2, 2, 2, 2, 0, 0, None),
        "max_pool2d_backward": lambda: (_f(2, 3, 2, 2), np.zeros((2, 3, 2, 2), np.int64), 4, 4, None),
        "avg_pool2d_forward": lambda: (_f(2, 3, 4, 4), 2, 2, 2, 2, 0, 0, True, None),
        "avg_pool2d_backward": lambda: (_f(2, 3, 2, 2), 4, 4, 2, 2, 2, 2, 0, 0, True, None),
        "adaptive_avg_pool2d_forward": lambda: (_f(2, 3, 4, 4), 1, 1, None),
        "adaptive_avg_pool2d_backward": lambda: (_f(2, 3, 1, 1), 4, 4, None),
        "set_num_threads": lambda: (1,),
        "get_num_threads": lambda: (),
    }


_SCALAR_NAMES = {
    "lr",
    "eps",
    "momentum",
    "p",
    "beta1",
    "beta2",
    "weight_decay",
    "dampening",
    "dloss",
    "alpha",
    "step",
    "t",
    "seed",
    "offset",
    "nesterov",
    "maximize",
    "training",
    "need_dx",
    "amsgrad",
    "bias_correction1",
    "bias_correction2",
}


def _guess_template(fn):
    """A plausible argument tuple for a binding function the templates do not know, from
    its docstring ``name(a, b, ...)``: scalars for known scalar names, else float32 (8,)."""
    doc = fn.__doc__ or ""
    m = re.match(r"\s*\w+\((.*?)\)", doc)
    if not m:
        return None
    names = [a.strip().split("=")[0].strip() for a in m.group(1).split(",") if a.strip()]
    args = []
    for name in names:
        base = name.split(" ")[0].lower()
        if base in ("out", "dx_out") or base.endswith("_out"):
            args.append(None)
        elif base in ("step", "t", "seed", "offset", "num_groups"):
            args.append(1)
        elif base in ("nesterov", "maximize", "training", "need_dx", "amsgrad", "first_step", "decoupled"):
            args.append(False)
        elif base in _SCALAR_NAMES:
            args.append(0.01)
        else:
            args.append(np.full(8, 0.5, np.float32))
    return lambda: (
        tuple(args)
        if not any(isinstance(a, np.ndarray) for a in args)
        else tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
    )


def c_functions():
    from normreg import _C

    return sorted(n for n in dir(_C) if not n.startswith("_") and callable(getattr(_C, n)))


def _c_cases():
    from normreg import _C

    templates = _c_templates()
    hostile = hostile_values(with_huge_views=True)
    cases = []
    for name in c_functions():
        fn = getattr(_C, name)
        make = templates.get(name) or _guess_template(fn)
        if make is None:

            def make():
                return ()

        n = len(make())
        for count in range(0, n + 3):
            if count != n:
                cases.append(
                    (
                        f"_C.{name} with {count} arguments",
                        lambda fn=fn, make=make, count=count: fn(*(list(make()) * 2 + [None] * 3)[:count]),
                        False,
                    )
                )
        cases.append((f"_C.{name} with a keyword", lambda fn=fn, make=make: fn(*make(), bogus=1), False))
        for i in range(n):
            variants = list(hostile)
            tmpl = make()[i]
            if isinstance(tmpl, np.ndarray):
                variants += shape_variants(tmpl)
            for label, factory in variants:

                def call(fn=fn, make=make, i=i, factory=factory):
                    args = list(make())
                    args[i] = factory()
                    return fn(*args)

                # an int argument may be an output size: 2**31 of them is a legitimate request
                # for gigabytes, which MemoryError answers
                mem_ok = "huge" in label or (label == "2**31" and type(tmpl) is int)
                cases.append((f"_C.{name} argument {i} = {label}", call, mem_ok))
    return cases


# ---- functional API and modules --------------------------------------------------------


def _functional_templates():
    import normreg

    def lab():
        return np.array([0, 1, 2, 0], np.int64)

    return {
        "linear": lambda: ((_f(4, 3), _f(3, 5), _f(5)), {"out": None}),
        "linear_backward": lambda: (
            (_f(4, 5), _f(4, 3), _f(3, 5)),
            {"has_bias": True, "need_dx": True, "dweight": None, "dbias": None},
        ),
        "relu": lambda: ((_f(4, 3),), {"out": None}),
        "relu_backward": lambda: ((_f(4, 3), _f(4, 3)), {"out": None}),
        "layer_norm": lambda: ((_f(4, 3), 3, _f(3), _f(3), 1e-5), {"out": None}),
        "layer_norm_backward": lambda: (
            (_f(4, 3), _f(4, 3), _f(4), np.ones(4, np.float32), _f(3)),
            {"has_bias": True, "dweight": None, "dbias": None},
        ),
        "batch_norm": lambda: (
            (_f(4, 3, 2), np.zeros(3, np.float32), np.ones(3, np.float32), _f(3), _f(3), True, 0.1, 1e-5),
            {"out": None},
        ),
        "batch_norm_backward": lambda: (
            (_f(4, 3, 2), _f(4, 3, 2), _f(3), np.ones(3, np.float32), _f(3), True),
            {"has_bias": True, "dweight": None, "dbias": None},
        ),
        "dropout": lambda: ((_f(4, 3), 0.5, True), {"generator": normreg.Generator(1), "out": None}),
        "dropout_backward": lambda: ((_f(4, 3), np.full(2, 0xA5, np.uint8), 0.5), {}),
        "cross_entropy": lambda: ((_f(4, 3), lab()), {}),
        "cross_entropy_backward": lambda: ((_f(4, 3), lab(), _f(4), 1.0), {"out": None}),
        "rms_norm": lambda: ((_f(4, 3), 3, _f(3), 1e-6), {"out": None}),
        "rms_norm_backward": lambda: ((_f(4, 3), _f(4, 3), np.ones(4, np.float32), _f(3)), {"dweight": None}),
        "group_norm": lambda: ((_f(2, 4, 3), 2, _f(4), _f(4), 1e-5), {"out": None}),
        "group_norm_backward": lambda: (
            (_f(2, 4, 3), _f(2, 4, 3), _f(2, 2), np.ones((2, 2), np.float32), _f(4)),
            {"has_bias": True, "dweight": None, "dbias": None},
        ),
        "conv2d": lambda: ((_f(2, 3, 5, 5), _f(4, 3, 3, 3), _f(4), 1, 1), {"out": None}),
        "conv2d_backward": lambda: (
            (_f(2, 4, 5, 5), _f(2, 3, 5, 5), _f(4, 3, 3, 3), 1, 1),
            {"has_bias": True, "need_dx": True, "dweight": None, "dbias": None},
        ),
        "max_pool2d": lambda: ((_f(2, 3, 4, 4), 2, 2, 0), {"out": None}),
        "max_pool2d_backward": lambda: (
            (_f(2, 3, 2, 2), np.zeros((2, 3, 2, 2), np.int64), (2, 3, 4, 4)),
            {"out": None},
        ),
        "avg_pool2d": lambda: ((_f(2, 3, 4, 4), 2, 2, 0, True), {"out": None}),
        "avg_pool2d_backward": lambda: ((_f(2, 3, 2, 2), (2, 3, 4, 4), 2, 2, 0, True), {"out": None}),
        "adaptive_avg_pool2d": lambda: ((_f(2, 3, 4, 4), 1), {"out": None}),
        "adaptive_avg_pool2d_backward": lambda: ((_f(2, 3, 1, 1), (2, 3, 4, 4)), {"out": None}),
        "sgd_step_": lambda: (
            (_f(4, 3), _f(4, 3), np.zeros((4, 3), np.float32)),
            dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=False, first_step=True),
        ),
        "adam_step_": lambda: (
            (
                _f(4, 3),
                _f(4, 3),
                np.zeros((4, 3), np.float32),
                np.zeros((4, 3), np.float32),
                np.zeros((4, 3), np.float32),
            ),
            dict(step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=False),
        ),
    }


def _functional_cases():
    from normreg import functional as F

    templates = _functional_templates()
    hostile = hostile_values(with_huge_views=False)
    cases = []
    for name in F.__all__:
        fn = getattr(F, name)
        make = templates.get(name)
        if make is None:  # an op added without a template: at least call it with hostile args

            def make():
                return (), {}

        args0, kwargs0 = make()
        n = len(args0)
        for count in range(0, n + 2):
            if count < n and count > 0 or count == n + 1:
                cases.append(
                    (
                        f"F.{name} with {count} positional arguments",
                        lambda fn=fn, make=make, count=count: fn(*(list(make()[0]) + [None])[:count]),
                        False,
                    )
                )
        slots = [("pos", i) for i in range(n)] + [("kw", k) for k in kwargs0]
        for kind, key in slots:
            tmpl = args0[key] if kind == "pos" else kwargs0[key]
            variants = list(hostile)
            if isinstance(tmpl, np.ndarray):
                variants += shape_variants(tmpl)
            for label, factory in variants:

                def call(fn=fn, make=make, kind=kind, key=key, factory=factory):
                    args, kwargs = make()
                    args = list(args)
                    if kind == "pos":
                        args[key] = factory()
                    else:
                        kwargs[key] = factory()
                    return fn(*args, **kwargs)

                cases.append(
                    (
                        f"F.{name} {'argument ' + str(key) if kind == 'pos' else key} = {label}",
                        call,
                        "huge" in label,
                    )
                )
    return cases


def _module_cases():
    from normreg import nn

    makers = {
        "Linear": (lambda: nn.Linear(3, 5), lambda: _f(4, 3)),
        "ReLU": (lambda: nn.ReLU(), lambda: _f(4, 3)),
        "LayerNorm": (lambda: nn.LayerNorm(3), lambda: _f(4, 3)),
        "BatchNorm1d": (lambda: nn.BatchNorm1d(3), lambda: _f(4, 3)),
        "BatchNorm1d eval": (lambda: nn.BatchNorm1d(3).eval(), lambda: _f(4, 3)),
        "Dropout": (lambda: nn.Dropout(0.5), lambda: _f(4, 3)),
        "RMSNorm": (lambda: nn.RMSNorm(3), lambda: _f(4, 3)),
        "GroupNorm": (lambda: nn.GroupNorm(2, 4), lambda: _f(2, 4, 3)),
        "InstanceNorm1d": (
            lambda: nn.InstanceNorm1d(4, affine=True, track_running_stats=True),
            lambda: _f(2, 4, 3),
        ),
        "BatchNorm2d": (lambda: nn.BatchNorm2d(3), lambda: _f(2, 3, 2, 2)),
        "Sequential": (lambda: nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.ReLU()), lambda: _f(4, 3)),
        "Conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), lambda: _f(2, 3, 5, 5)),
        "MaxPool2d": (lambda: nn.MaxPool2d(2), lambda: _f(2, 3, 4, 4)),
        "AvgPool2d": (lambda: nn.AvgPool2d(3, 1, 1), lambda: _f(2, 3, 4, 4)),
        "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((2, 3)), lambda: _f(2, 3, 4, 5)),
    }
    cases = []
    for mname, (make_mod, make_x) in makers.items():
        for label, factory in hostile_values(with_huge_views=False):

            def fwd(make_mod=make_mod, factory=factory):
                return make_mod()(factory())

            def bwd(make_mod=make_mod, make_x=make_x, factory=factory):
                m = make_mod()
                m(make_x())
                return m.backward(factory())

            cases.append((f"nn.{mname}.forward(x = {label})", fwd, "huge" in label))
            cases.append((f"nn.{mname}.backward(dy = {label})", bwd, "huge" in label))
    for label, factory in hostile_values(with_huge_views=False):

        def loss_fwd(factory=factory, which=0):
            args = [_f(4, 3), np.array([0, 1, 2, 0])]
            args[which] = factory()
            return nn.SoftmaxLoss()(*args)

        cases.append((f"nn.SoftmaxLoss(logits = {label})", loss_fwd, "huge" in label))
        cases.append((f"nn.SoftmaxLoss(labels = {label})", lambda f=factory: loss_fwd(f, 1), "huge" in label))
        if label == "2**31":  # a legitimate request for gigabytes, not hostile input
            continue
        for ctor in (
            "Linear",
            "LayerNorm",
            "BatchNorm1d",
            "Dropout",
            "RMSNorm",
            "BatchNorm2d",
            "InstanceNorm1d",
            "MaxPool2d",
            "AvgPool2d",
            "AdaptiveAvgPool2d",
        ):

            def construct(ctor=ctor, factory=factory):
                return getattr(nn, ctor)(factory())

            cases.append((f"nn.{ctor}({label})", construct, True))
    return cases


def _edge_cases():
    """Consistent calls with empty arrays whose other dimensions are huge: the work is
    empty, so they must return at once (or raise), never loop over the huge dimensions."""
    from normreg import _C
    from normreg import functional as F

    def e(*shape):
        return np.empty(shape, np.float32)

    cases = [
        (
            "_C.batch_norm_forward training x (2**40, 0, 2**20)",
            lambda: _C.batch_norm_forward(e(2**40, 0, 2**20), None, None, None, None, True, 0.1, 1e-5, None),
        ),
        (
            "_C.batch_norm_forward eval x (2**40, 0, 2**20)",
            lambda: _C.batch_norm_forward(e(2**40, 0, 2**20), None, None, e(0), e(0), False, 0.1, 1e-5, None),
        ),
        (
            "_C.batch_norm_forward eval x (2**31, 2**20, 0)",
            lambda: _C.batch_norm_forward(
                e(2**31, 2**20, 0),
                None,
                None,
                np.zeros(2**20, np.float32),
                np.ones(2**20, np.float32),
                False,
                0.1,
                1e-5,
                None,
            ),
        ),
        (
            "_C.batch_norm_backward x (2**40, 0, 2**20)",
            lambda: _C.batch_norm_backward(
                e(2**40, 0, 2**20), e(2**40, 0, 2**20), e(0), e(0), None, None, None, True, None
            ),
        ),
        (
            "_C.batch_norm_backward x (2**31, 2**20, 0)",
            lambda: _C.batch_norm_backward(
                e(2**31, 2**20, 0),
                e(2**31, 2**20, 0),
                np.zeros(2**20, np.float32),
                np.ones(2**20, np.float32),
                None,
                np.zeros(2**20, np.float32),
                np.zeros(2**20, np.float32),
                True,
                None,
            ),
        ),
        ("F.batch_norm training x (2**40, 0)", lambda: F.batch_norm(e(2**40, 0), None, None, training=True)),
        (
            "F.batch_norm eval x (2**31, 2**20, 0)",
            lambda: F.batch_norm(e(2**31, 2**20, 0), np.zeros(2**20, np.float32), np.ones(2**20, np.float32)),
        ),
        (
            "F.batch_norm_backward x (2**40, 0)",
            lambda: F.batch_norm_backward(e(2**40, 0), e(2**40, 0), e(0), e(0)),
        ),
        (
            "_C.layer_norm_forward x (2**40, 0)",
            lambda: _C.layer_norm_forward(e(2**40, 0), None, None, 1e-5, None),
        ),
        (
            "_C.layer_norm_backward x (2**40, 0)",
            lambda: _C.layer_norm_backward(
                e(2**40, 0), e(2**40, 0), e(2**40), e(2**40), None, None, None, None
            ),
        ),
        ("F.layer_norm x (0, 2**40)", lambda: F.layer_norm(e(0, 2**40), 2**40)),
        ("_C.linear_forward x (0, 2**40)", lambda: _C.linear_forward(e(0, 2**40), e(2**40, 0), None, None)),
        (
            "_C.linear_backward x (2**40, 0)",
            lambda: _C.linear_backward(e(2**40, 0), e(2**40, 0), e(0, 0), None, None, None, True),
        ),
        ("_C.relu_forward x (2**40, 0, 2**20)", lambda: _C.relu_forward(e(2**40, 0, 2**20), None)),
        (
            "_C.dropout_forward x (2**40, 0, 2**20)",
            lambda: _C.dropout_forward(e(2**40, 0, 2**20), 0.5, 1, 2, None),
        ),
        (
            "_C.cross_entropy_forward logits (0, 2**40)",
            lambda: _C.cross_entropy_forward(e(0, 2**40), np.zeros(0, np.int64)),
        ),
        (
            "_C.cross_entropy_backward logits (0, 2**40)",
            lambda: _C.cross_entropy_backward(e(0, 2**40), np.zeros(0, np.int64), e(0), 1.0, None),
        ),
        (
            "_C.conv2d_forward x (0, 3, 2**15, 2**15)",
            lambda: _C.conv2d_forward(e(0, 3, 2**15, 2**15), e(4, 3, 3, 3), None, 1, 1, 1, 1, None),
        ),
        (
            "_C.conv2d_backward x (0, 3, 2**15, 2**15)",
            lambda: _C.conv2d_backward(
                e(0, 4, 2**15, 2**15),
                e(0, 3, 2**15, 2**15),
                e(4, 3, 3, 3),
                1,
                1,
                1,
                1,
                np.zeros((4, 3, 3, 3), np.float32),
                None,
                True,
            ),
        ),
        (
            "_C.max_pool2d_forward x (0, 2**40, 2**20, 2**20)",
            lambda: _C.max_pool2d_forward(e(0, 2**40, 2**20, 2**20), 2, 2, 2, 2, 0, 0, None),
        ),
        (
            "_C.avg_pool2d_backward dy (0, 2**40, 2**19, 2**19)",
            lambda: _C.avg_pool2d_backward(
                e(0, 2**40, 2**19, 2**19), 2**20, 2**20, 2, 2, 2, 2, 0, 0, True, None
            ),
        ),
        (
            "_C.adaptive_avg_pool2d_forward x (0, 2**40, 2**20, 2**20)",
            lambda: _C.adaptive_avg_pool2d_forward(e(0, 2**40, 2**20, 2**20), 2**20, 2**20, None),
        ),
        (
            "_C.max_pool2d_backward dy (0, 2**40, 2**19, 2**19)",
            lambda: _C.max_pool2d_backward(
                e(0, 2**40, 2**19, 2**19), np.empty((0, 2**40, 2**19, 2**19), np.int64), 2**20, 2**20, None
            ),
        ),
    ]
    return [(label, thunk, True) for label, thunk in cases]


def _optimizer_cases():
    """Constructors with hostile hyperparameters and steps with hostile gradients."""
    from normreg import nn, optim

    cases = []
    ctors = {
        "SGD": (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=False)),
        "Adam": (optim.Adam, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False)),
        "AdamW": (optim.AdamW, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=True)),
    }
    for cname, (cls, kwargs0) in ctors.items():
        for label, factory in hostile_values(with_huge_views=False):
            for key in list(kwargs0) + ["params"]:

                def construct(cls=cls, kwargs0=kwargs0, key=key, factory=factory):
                    kwargs = dict(kwargs0)
                    params = nn.Linear(3, 2).parameters()
                    if key == "params":
                        params = factory()
                    else:
                        kwargs[key] = factory()
                    return cls(params, **kwargs).step()

                cases.append((f"optim.{cname}({key} = {label})", construct, "huge" in label))

            def step_grad(cls=cls, kwargs0=kwargs0, factory=factory):
                lin = nn.Linear(3, 2)
                opt = cls(lin.parameters(), **kwargs0)
                lin.weight.grad = factory()
                opt.step()

            cases.append((f"optim.{cname}.step(grad = {label})", step_grad, "huge" in label))

            def step_group(cls=cls, kwargs0=kwargs0, factory=factory):
                lin = nn.Linear(3, 2)
                opt = cls(lin.parameters(), **kwargs0)
                opt.param_groups[0]["lr"] = factory()
                opt.step()

            cases.append((f"optim.{cname}.step(group lr = {label})", step_group, "huge" in label))
    return cases


def all_cases():
    """[(label, thunk, memory_error_ok)] in a fixed order."""
    cases = _c_cases() + _functional_cases() + _module_cases() + _optimizer_cases() + _edge_cases()
    if os.environ.get("NORMREG_FUZZ_SELFTEST"):  # proves the harness sees a crash
        import ctypes

        cases.append(("selftest: a segfault", lambda: ctypes.string_at(0), False))
        cases.append(("selftest: after the segfault", lambda: None, False))
    return cases


def _limit_memory(gib=4):
    """Caps the address space so a runaway allocation is a MemoryError, not the machine's
    memory (not under AddressSanitizer, which reserves terabytes of shadow memory)."""
    import resource

    if "asan" in os.environ.get("LD_PRELOAD", ""):
        return
    limit = gib << 30
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def run(start, stop):
    import warnings

    warnings.simplefilter("ignore")
    _limit_memory()
    cases = all_cases()
    out = sys.stdout
    for i in range(start, min(stop, len(cases))):
        label, thunk, mem_ok = cases[i]
        print(f"{i}\tSTART", file=out, flush=True)
        try:
            thunk()
            status, detail = "OK", ""
        except ALLOWED as exc:
            status, detail = "OK", type(exc).__name__
        except HostileError:
            status, detail = "OK", "HostileError propagated"
        except MemoryError as exc:
            status, detail = ("OK" if mem_ok else "BAD"), f"MemoryError: {exc}"
        except BaseException as exc:
            status, detail = "BAD", f"{type(exc).__name__}: {exc}"
        detail = detail.replace("\n", " ").replace("\t", " ")[:300]
        print(f"{i}\t{status}\t{detail}", file=out, flush=True)
    print("DONE", file=out, flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["count"]:
        print(len(all_cases()))
    else:
        run(int(sys.argv[1]), int(sys.argv[2]))
