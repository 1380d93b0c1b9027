"""The fuzz cases of the Python API (fuzz_cases.py): every op of ``normreg.functional``,
the modules and the optimizers from a valid call with each argument in turn replaced by a
hostile value, and consistent calls with empty arrays whose other dimensions are huge.
"""

import numpy as np
from fuzz_values import f32, hostile_values, norm_backward_args, optimizer_args, shape_variants

# ---- functional API and modules --------------------------------------------------------


def _functional_templates():
    import normreg

    def lab():
        return np.array([0, 1, 2, 0], np.int64)

    return {
        "linear": lambda: ((f32(4, 3), f32(3, 5), f32(5)), {"out": None}),
        "linear_backward": lambda: (
            (f32(4, 5), f32(4, 3), f32(3, 5)),
            {"has_bias": True, "need_dx": True, "dweight": None, "dbias": None},
        ),
        "relu": lambda: ((f32(4, 3),), {"out": None}),
        "relu_backward": lambda: ((f32(4, 3), f32(4, 3)), {"out": None}),
        "layer_norm": lambda: ((f32(4, 3), 3, f32(3), f32(3), 1e-5), {"out": None}),
        "layer_norm_backward": lambda: (
            norm_backward_args((4, 3), (4,), 3),
            {"has_bias": True, "dweight": None, "dbias": None},
        ),
        "batch_norm": lambda: (
            (f32(4, 3, 2), np.zeros(3, np.float32), np.ones(3, np.float32), f32(3), f32(3), True, 0.1, 1e-5),
            {"out": None},
        ),
        "batch_norm_backward": lambda: (
            (*norm_backward_args((4, 3, 2), (3,), 3), True),
            {"has_bias": True, "dweight": None, "dbias": None},
        ),
        "dropout": lambda: ((f32(4, 3), 0.5, True), {"generator": normreg.Generator(1), "out": None}),
        "dropout_backward": lambda: ((f32(4, 3), np.full(2, 0xA5, np.uint8), 0.5), {}),
        "cross_entropy": lambda: ((f32(4, 3), lab()), {}),
        "cross_entropy_backward": lambda: ((f32(4, 3), lab(), f32(4), 1.0), {"out": None}),
        "rms_norm": lambda: ((f32(4, 3), 3, f32(3), 1e-6), {"out": None}),
        "rms_norm_backward": lambda: (
            (f32(4, 3), f32(4, 3), np.ones(4, np.float32), f32(3)),
            {"dweight": None},
        ),
        "group_norm": lambda: ((f32(2, 4, 3), 2, f32(4), f32(4), 1e-5), {"out": None}),
        "group_norm_backward": lambda: (
            norm_backward_args((2, 4, 3), (2, 2), 4),
            {"has_bias": True, "dweight": None, "dbias": None},
        ),
        "conv2d": lambda: ((f32(2, 3, 5, 5), f32(4, 3, 3, 3), f32(4), 1, 1), {"out": None}),
        "conv2d_backward": lambda: (
            (f32(2, 4, 5, 5), f32(2, 3, 5, 5), f32(4, 3, 3, 3), 1, 1),
            {"has_bias": True, "need_dx": True, "dweight": None, "dbias": None},
        ),
        "max_pool2d": lambda: ((f32(2, 3, 4, 4), 2, 2, 0, 1, False, True), {"out": None}),
        "max_pool2d_backward": lambda: (
            (f32(2, 3, 2, 2), np.zeros((2, 3, 2, 2), np.int64), (2, 3, 4, 4)),
            {"out": None},
        ),
        "avg_pool2d": lambda: ((f32(2, 3, 4, 4), 2, 2, 0, False, True, None), {"out": None}),
        "avg_pool2d_backward": lambda: (
            (f32(2, 3, 2, 2), (2, 3, 4, 4), 2, 2, 0, False, True, None),
            {"out": None},
        ),
        "adaptive_avg_pool2d": lambda: ((f32(2, 3, 4, 4), 1), {"out": None}),
        "adaptive_avg_pool2d_backward": lambda: ((f32(2, 3, 1, 1), (2, 3, 4, 4)), {"out": None}),
        "sgd_step_": lambda: (
            optimizer_args((4, 3), 1),
            dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=False, first_step=True),
        ),
        "adam_step_": lambda: (
            optimizer_args((4, 3), 3),
            dict(step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=False),
        ),
    }


def functional_cases():
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


def module_cases():
    from normreg import nn

    makers = {
        "Linear": (lambda: nn.Linear(3, 5), lambda: f32(4, 3)),
        "ReLU": (lambda: nn.ReLU(), lambda: f32(4, 3)),
        "LayerNorm": (lambda: nn.LayerNorm(3), lambda: f32(4, 3)),
        "BatchNorm1d": (lambda: nn.BatchNorm1d(3), lambda: f32(4, 3)),
        "BatchNorm1d eval": (lambda: nn.BatchNorm1d(3).eval(), lambda: f32(4, 3)),
        "Dropout": (lambda: nn.Dropout(0.5), lambda: f32(4, 3)),
        "RMSNorm": (lambda: nn.RMSNorm(3), lambda: f32(4, 3)),
        "GroupNorm": (lambda: nn.GroupNorm(2, 4), lambda: f32(2, 4, 3)),
        "InstanceNorm1d": (
            lambda: nn.InstanceNorm1d(4, affine=True, track_running_stats=True),
            lambda: f32(2, 4, 3),
        ),
        "BatchNorm2d": (lambda: nn.BatchNorm2d(3), lambda: f32(2, 3, 2, 2)),
        "Sequential": (lambda: nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.ReLU()), lambda: f32(4, 3)),
        "Conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), lambda: f32(2, 3, 5, 5)),
        "MaxPool2d": (lambda: nn.MaxPool2d(2), lambda: f32(2, 3, 4, 4)),
        "AvgPool2d": (lambda: nn.AvgPool2d(3, 1, 1), lambda: f32(2, 3, 4, 4)),
        "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((2, 3)), lambda: f32(2, 3, 4, 5)),
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
            args = [f32(4, 3), np.array([0, 1, 2, 0])]
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


def edge_cases():
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
            lambda: _C.max_pool2d_forward(e(0, 2**40, 2**20, 2**20), 2, 2, 2, 2, 0, 0, False, None),
        ),
        (
            "_C.avg_pool2d_backward dy (0, 2**40, 2**19, 2**19)",
            lambda: _C.avg_pool2d_backward(
                e(0, 2**40, 2**19, 2**19), 2**20, 2**20, 2, 2, 2, 2, 0, 0, False, True, 0, None
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


def optimizer_cases():
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
