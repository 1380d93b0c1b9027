"""The fuzz cases of the binding (fuzz_cases.py): every function of ``normreg._C``, found
with ``dir``, from a valid call (a template, or one guessed from its docstring) with each
argument in turn replaced by a hostile value, and with wrong argument counts and keywords.
"""

import re

import numpy as np
from fuzz_values import f32, hostile_values, norm_backward_args, optimizer_args, shape_variants


def _c_templates():
    """Valid argument tuples for the known binding functions."""

    def labels():
        return np.array([0, 1, 2, 0], np.int64)

    return {
        "linear_forward": lambda: (f32(4, 3), f32(3, 5), f32(5), None),
        "linear_backward": lambda: (
            f32(4, 5),
            f32(4, 3),
            f32(3, 5),
            None,
            np.zeros((3, 5), np.float32),
            np.zeros(5, np.float32),
            True,
        ),
        "linear_grads": lambda: (f32(4, 5), f32(4, 3), f32(3, 5), True, True),
        "relu_forward": lambda: (f32(4, 3), None),
        "exp": lambda: (f32(4, 3), None),
        "relu_backward": lambda: (f32(4, 3), f32(4, 3), None),
        "layer_norm_forward": lambda: (f32(4, 3), f32(3), f32(3), 1e-5, None),
        "layer_norm_backward": lambda: (*norm_backward_args((4, 3), (4,), 3, grads=2), None),
        "batch_norm_forward": lambda: (
            f32(4, 3, 2),
            f32(3),
            f32(3),
            np.zeros(3, np.float32),
            np.ones(3, np.float32),
            True,
            0.1,
            1e-5,
            None,
        ),
        "batch_norm_backward": lambda: (*norm_backward_args((4, 3, 2), (3,), 3, grads=2), True, None),
        "dropout_forward": lambda: (f32(4, 3), 0.5, 1, 2, None),
        "dropout_backward": lambda: (f32(4, 3), np.full(2, 0xA5, np.uint8), 0.5, None),
        "philox4x32": lambda: (1, 2, 3, 4, 5, 6),
        "cross_entropy_forward": lambda: (f32(4, 3), labels()),
        "cross_entropy_backward": lambda: (f32(4, 3), labels(), f32(4), 1.0, None),
        "sgd_step": lambda: (*optimizer_args((4, 3), 1), 0.1, 0.9, 0.0, 0.01, False, True),
        "adam_step": lambda: (*optimizer_args((4, 3), 3), 1e-3, 0.9, 0.999, 1e-8, 0.01, False, 0.1, 0.001),
        "rms_norm_forward": lambda: (f32(4, 3), f32(3), 1e-6, None),
        "rms_norm_backward": lambda: (
            f32(4, 3),
            f32(4, 3),
            np.ones(4, np.float32),
            f32(3),
            np.zeros(3, np.float32),
            None,
        ),
        "group_norm_forward": lambda: (f32(2, 4, 3), f32(4), f32(4), 2, 1e-5, None),
        "group_norm_backward": lambda: (*norm_backward_args((2, 4, 3), (2, 2), 4, grads=2), 2, None),
        "conv2d_forward": lambda: (f32(2, 3, 5, 5), f32(4, 3, 3, 3), f32(4), 1, 1, 1, 1, None),
        "conv2d_backward": lambda: (
            f32(2, 4, 5, 5),
            f32(2, 3, 5, 5),
            f32(4, 3, 3, 3),
            1,
            1,
            1,
            1,
            np.zeros((4, 3, 3, 3), np.float32),
            np.zeros(4, np.float32),
            True,
        ),
        "max_pool2d_forward": lambda: (f32(2, 3, 4, 4), 2, 2, 2, 2, 0, 0, None),
        "max_pool2d_backward": lambda: (f32(2, 3, 2, 2), np.zeros((2, 3, 2, 2), np.int64), 4, 4, None),
        "avg_pool2d_forward": lambda: (f32(2, 3, 4, 4), 2, 2, 2, 2, 0, 0, True, None),
        "avg_pool2d_backward": lambda: (f32(2, 3, 2, 2), 4, 4, 2, 2, 2, 2, 0, 0, True, None),
        "adaptive_avg_pool2d_forward": lambda: (f32(2, 3, 4, 4), 1, 1, None),
        "adaptive_avg_pool2d_backward": lambda: (f32(2, 3, 1, 1), 4, 4, None),
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


def c_cases():
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
