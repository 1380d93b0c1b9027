"""One decoder (a :class:`calls.Spec`) per function of ``normreg._C``.

The first byte of an input picks the function by its number here: a function keeps its
number for ever (committed corpus files start with it), so new functions are appended.
:func:`check_complete` fails when the extension has a function without a decoder (add one
below) or a decoder names a function the extension no longer has.
"""

from __future__ import annotations

from calls import Arr, Num, PerParam, Spec, divisor_of, flag, shape, size, small
from reader import COUNT_EXTREMES, REPS_EXTREMES


def _mask_len(d) -> tuple:
    n = 1
    for s in d.X:
        n *= s
    return ((n + 7) // 8,)


def _rows_cols(d) -> tuple:
    return (d.M, d.D)


X = {"X": shape}
MD = {"M": size, "D": size}
NCL = {"N": size, "C": size, "L": size}
_x = lambda d: d.X  # noqa: E731
_md = _rows_cols
_m = lambda d: (d.M,)  # noqa: E731
_d = lambda d: (d.D,)  # noqa: E731
_ncl = lambda d: (d.N, d.C, d.L)  # noqa: E731
_c = lambda d: (d.C,)  # noqa: E731
_ng = lambda d: (d.N, d.G)  # noqa: E731


# 2-D windows (Conv2d, the poolings): x (N, C, H, W), kernel KH x KW, stride SH x SW,
# padding PH x PW; valid geometries are drawn, then the scalars may turn hostile.
NCHW = {"N": size, "C": size, "H": size, "W": size}
_nchw = lambda d: (d.N, d.C, d.H, d.W)  # noqa: E731


def _steps(r, d) -> int:
    return r.pick((1, 2, 3))


def _conv_kernel(axis: str):
    """A kernel size that fits the padded input (1 when that is empty: an error)."""

    def choose(r, d) -> int:
        padded = getattr(d, axis) + 2 * getattr(d, "P" + axis)
        return d.budget.count(min(r.pick((1, 2, 3, 5)), max(padded, 1)))

    return choose


def _pool_kernel(axis: str):
    def choose(r, d) -> int:
        return d.budget.count(min(r.pick((1, 2, 3, 4)), max(getattr(d, axis), 1)))

    return choose


def _pool_padding(axis: str):  # at most half the kernel, as PyTorch requires
    return lambda r, d: r.below(getattr(d, "K" + axis) // 2 + 1)


def _pool_stride(axis: str):  # PyTorch's default stride is the kernel size
    return lambda r, d: r.pick((1, 2, getattr(d, "K" + axis)))


CONV = {**NCHW, "O": size, "SH": _steps, "SW": _steps, "PH": lambda r, d: r.pick((0, 1, 2)),
        "PW": lambda r, d: r.pick((0, 1, 2)), "KH": _conv_kernel("H"), "KW": _conv_kernel("W")}  # fmt: skip
POOL = {**NCHW, "KH": _pool_kernel("H"), "KW": _pool_kernel("W"), "PH": _pool_padding("H"),
        "PW": _pool_padding("W"), "SH": _pool_stride("H"), "SW": _pool_stride("W"), "ceil": flag}  # fmt: skip
ADAPTIVE = {**NCHW, "OH": small(1, 2, 3, 5, 7), "OW": small(1, 2, 3, 5, 7)}


def _window_out(d) -> tuple:
    """(OH, OW) of the window geometry in ``d`` (0 where the kernel does not fit)."""
    ceil = getattr(d, "ceil", False)  # pooling's ceil_mode: one more window if it starts in the image
    return tuple(
        (n + 2 * p - k) // s
        + 1
        + (ceil and (n + 2 * p - k) % s != 0 and ((n + 2 * p - k) // s + 1) * s < n + p)
        if n + 2 * p >= k
        else 0
        for n, k, s, p in ((d.H, d.KH, d.SH, d.PH), (d.W, d.KW, d.SW, d.PW))
    )


def _window_args(kernel: bool, conv: bool) -> list:
    """The int arguments (kernel_h, kernel_w,) stride_h, stride_w, padding_h, padding_w and a
    pooling's ceil_mode; a convolution's padding sizes its output (a pooling's is at most
    half the kernel)."""
    nums = [Num("kernel_h", "int", lambda d: d.KH), Num("kernel_w", "int", lambda d: d.KW)] if kernel else []
    ceil = [Num("ceil_mode", "bool", lambda d: d.ceil)] if kernel else []
    return nums + [
        Num("stride_h", "int", lambda d: d.SH), Num("stride_w", "int", lambda d: d.SW),
        Num("padding_h", "int", lambda d: d.PH, sizes_output=conv),
        Num("padding_w", "int", lambda d: d.PW, sizes_output=conv),
    ] + ceil  # fmt: skip


_conv_y = lambda d: (d.N, d.O, *_window_out(d))  # noqa: E731
_conv_w = lambda d: (d.O, d.C, d.KH, d.KW)  # noqa: E731
_pool_y = lambda d: (d.N, d.C, *_window_out(d))  # noqa: E731
_adaptive_y = lambda d: (d.N, d.C, d.OH, d.OW)  # noqa: E731
#: input_h, input_w of a pooling's backward: they size its output
_INPUT_HW = [Num("input_h", "int", lambda d: d.H, sizes_output=True),
             Num("input_w", "int", lambda d: d.W, sizes_output=True)]  # fmt: skip


def _threads(r, d) -> int:
    return 1 + r.byte() % 4


def _opt(name: str, shp, written: bool = False, dtype: str = "f") -> Arr:
    return Arr(name, dtype, shp, optional=True, written=written)


def _out(shp) -> Arr:
    return Arr("out", "f", shp, optional=True, written=True)


SPECS: list[Spec] = [
    Spec("relu_forward", X, [Arr("x", "f", _x), _out(_x)]),
    Spec("relu_backward", X, [Arr("dy", "f", _x), Arr("y", "f", _x), _out(_x)]),
    Spec(
        "linear_forward",
        {"M": size, "K": size, "N": size},
        [Arr("x", "f", lambda d: (d.M, d.K)), Arr("weight", "f", lambda d: (d.K, d.N)),
         _opt("bias", lambda d: (d.N,)), _out(lambda d: (d.M, d.N))],
    ),
    Spec(
        "linear_backward",
        {"M": size, "K": size, "N": size, "need_dx": flag},
        [Arr("dy", "f", lambda d: (d.M, d.N)), Arr("x", "f", lambda d: (d.M, d.K)),
         Arr("weight", "f", lambda d: (d.K, d.N)), _opt("dx_out", lambda d: (d.M, d.K), True),
         _opt("dweight", lambda d: (d.K, d.N), True), _opt("dbias", lambda d: (d.N,), True),
         Num("need_dx", "bool", lambda d: d.need_dx)],
    ),
    Spec(
        "layer_norm_forward",
        MD,
        [Arr("x", "f", _md), _opt("weight", _d), _opt("bias", _d), Num("eps", "real"), _out(_md)],
    ),
    Spec(
        "layer_norm_backward",
        MD,
        [Arr("dy", "f", _md), Arr("x", "f", _md), Arr("mean", "f", _m), Arr("rstd", "f", _m),
         _opt("weight", _d), _opt("dweight", _d, True), _opt("dbias", _d, True), _out(_md)],
    ),
    Spec(
        "batch_norm_forward",
        {**NCL, "training": flag},
        [Arr("x", "f", _ncl), _opt("weight", _c), _opt("bias", _c), _opt("running_mean", _c, True),
         _opt("running_var", _c, True), Num("training", "bool", lambda d: d.training),
         Num("momentum", "real"), Num("eps", "real"), _out(_ncl)],
    ),
    Spec(
        "batch_norm_backward",
        {**NCL, "training": flag},
        [Arr("dy", "f", _ncl), Arr("x", "f", _ncl), Arr("save_mean", "f", _c),
         Arr("save_rstd", "f", _c), _opt("weight", _c), _opt("dweight", _c, True),
         _opt("dbias", _c, True), Num("training", "bool", lambda d: d.training), _out(_ncl)],
    ),
    Spec(
        "dropout_forward",
        X,
        [Arr("x", "f", _x), Num("p", "real"), Num("seed", "u64"), Num("offset", "u64"), _out(_x)],
    ),
    Spec(
        "dropout_backward",
        X,
        [Arr("dy", "f", _x), Arr("mask", "u1", _mask_len, fill="bytes"), Num("p", "real"), _out(_x)],
    ),
    Spec("philox4x32", {}, [Num(f"w{i}", "u32") for i in range(6)]),
    Spec(
        "cross_entropy_forward",
        {"B": size, "K": size},
        [Arr("logits", "f", lambda d: (d.B, d.K)), Arr("labels", "i8", lambda d: (d.B,), fill="labels")],
    ),
    Spec(
        "cross_entropy_backward",
        {"B": size, "K": size},
        [Arr("logits", "f", lambda d: (d.B, d.K)), Arr("labels", "i8", lambda d: (d.B,), fill="labels"),
         Arr("lse", "f", lambda d: (d.B,)), Num("dloss", "real"), _out(lambda d: (d.B, d.K))],
    ),
    Spec("rms_norm_forward", MD, [Arr("x", "f", _md), _opt("weight", _d), Num("eps", "real"), _out(_md)]),
    Spec(
        "rms_norm_backward",
        MD,
        [Arr("dy", "f", _md), Arr("x", "f", _md), Arr("rstd", "f", _m), _opt("weight", _d),
         _opt("dweight", _d, True), _out(_md)],
    ),
    Spec(
        "group_norm_forward",
        {**NCL, "G": divisor_of("C")},
        [Arr("x", "f", _ncl), _opt("weight", _c), _opt("bias", _c),
         Num("num_groups", "int", lambda d: d.G, sizes_output=True), Num("eps", "real"), _out(_ncl)],
    ),
    Spec(
        "group_norm_backward",
        {**NCL, "G": divisor_of("C")},
        [Arr("dy", "f", _ncl), Arr("x", "f", _ncl), Arr("mean", "f", _ng), Arr("rstd", "f", _ng),
         _opt("weight", _c), _opt("dweight", _c, True), _opt("dbias", _c, True),
         Num("num_groups", "int", lambda d: d.G, sizes_output=True), _out(_ncl)],
    ),
    Spec(
        "sgd_step",
        {**X, "nesterov": flag, "first": flag},
        [Arr("param", "f", _x, written=True), Arr("grad", "f", _x), _opt("momentum_buffer", _x, True),
         Num("lr", "real"), Num("momentum", "real"), Num("dampening", "real"), Num("weight_decay", "real"),
         Num("nesterov", "bool", lambda d: d.nesterov), Num("first_step", "bool", lambda d: d.first)],
    ),
    Spec(
        "adam_step",
        {**X, "decoupled": flag},
        [Arr("param", "f", _x, written=True), Arr("grad", "f", _x), Arr("exp_avg", "f", _x, written=True),
         Arr("exp_avg_sq", "f", _x, written=True), _opt("max_exp_avg_sq", _x, True), Num("lr", "real"),
         Num("beta1", "real"), Num("beta2", "real"), Num("eps", "real"), Num("weight_decay", "real"),
         Num("decoupled", "bool", lambda d: d.decoupled), Num("bias_correction1", "real"),
         Num("bias_correction2", "real")],
    ),
    Spec("sync_batch_norm_stats", NCL, [Arr("x", "f", _ncl)]),
    Spec(
        "sync_batch_norm_forward",
        NCL,
        [Arr("x", "f", _ncl), Arr("mean", "f", _c), Arr("rstd", "f", _c), _opt("weight", _c),
         _opt("bias", _c), _out(_ncl)],
    ),
    Spec(
        "sync_batch_norm_grad_sums",
        NCL,
        [Arr("dy", "f", _ncl), Arr("x", "f", _ncl), Arr("mean", "f", _c), Arr("rstd", "f", _c)],
    ),
    Spec(
        "sync_batch_norm_backward",
        NCL,
        [Arr("dy", "f", _ncl), Arr("x", "f", _ncl), Arr("mean", "f", _c), Arr("rstd", "f", _c),
         _opt("weight", _c), Arr("sums", "f8", lambda d: (2, d.C)),
         Num("count", "real", lambda d: float(max(d.N * d.L, 1)), real_valid=True), _out(_ncl)],
    ),
    # thread counts are requests for threads: valid ones stay small (the target restores the count)
    Spec("set_num_threads", {"n": _threads}, [Num("n", "int", lambda d: d.n, COUNT_EXTREMES)]),
    Spec("get_num_threads"),
    Spec("empty_cache"),
    Spec("pool_stats"),
    Spec(
        "copy_f32",
        {**X, "n": _threads},
        [Arr("dst", "f4", _x, written=True), Arr("src", "f4", _x),
         Num("nthreads", "int", lambda d: d.n, COUNT_EXTREMES)],
    ),
    # reps is a request for work: valid ones stay small
    Spec(
        "layer_norm_kernel_time",
        {**MD, "reps": lambda r, d: 1 + r.byte() % 3},
        [Arr("x", "f4", _md), Arr("weight", "f4", _d), Arr("bias", "f4", _d),
         Num("reps", "int", lambda d: d.reps, REPS_EXTREMES)],
    ),
    Spec(
        "sgemm",
        {"M": size, "K": size, "N": size, "ta": flag, "tb": flag},
        [Num("trans_a", "bool", lambda d: d.ta), Num("trans_b", "bool", lambda d: d.tb),
         Arr("a", "f4", lambda d: (d.K, d.M) if d.ta else (d.M, d.K)),
         Arr("b", "f4", lambda d: (d.N, d.K) if d.tb else (d.K, d.N)),
         Arr("c", "f4", lambda d: (d.M, d.N), written=True), Num("beta", "real")],
    ),
    Spec(
        "conv2d_forward",
        CONV,
        [Arr("x", "f", _nchw), Arr("weight", "f", _conv_w), _opt("bias", lambda d: (d.O,)),
         *_window_args(False, True), _out(_conv_y)],
    ),
    Spec(
        "conv2d_backward",
        {**CONV, "need_dx": flag},
        [Arr("dy", "f", _conv_y), Arr("x", "f", _nchw), Arr("weight", "f", _conv_w),
         *_window_args(False, True), _opt("dweight", _conv_w, True),
         _opt("dbias", lambda d: (d.O,), True), Num("need_dx", "bool", lambda d: d.need_dx)],
    ),
    Spec("max_pool2d_forward", POOL, [Arr("x", "f", _nchw), *_window_args(True, False), _out(_pool_y)]),
    Spec(
        "max_pool2d_backward",
        POOL,
        [Arr("dy", "f", _pool_y), Arr("indices", "i8", _pool_y, fill="positions"), *_INPUT_HW,
         _out(_nchw)],
    ),
    Spec(
        "avg_pool2d_forward",
        {**POOL, "include_pad": flag, "divisor": small(0, 1, 3)},
        [Arr("x", "f", _nchw), *_window_args(True, False),
         Num("count_include_pad", "bool", lambda d: d.include_pad),
         Num("divisor_override", "int", lambda d: d.divisor), _out(_pool_y)],
    ),
    Spec(
        "avg_pool2d_backward",
        {**POOL, "include_pad": flag, "divisor": small(0, 1, 3)},
        [Arr("dy", "f", _pool_y), *_INPUT_HW, *_window_args(True, False),
         Num("count_include_pad", "bool", lambda d: d.include_pad),
         Num("divisor_override", "int", lambda d: d.divisor), _out(_nchw)],
    ),
    Spec(
        "adaptive_avg_pool2d_forward",
        ADAPTIVE,
        [Arr("x", "f", _nchw), Num("output_h", "int", lambda d: d.OH, sizes_output=True),
         Num("output_w", "int", lambda d: d.OW, sizes_output=True), _out(_adaptive_y)],
    ),
    Spec(
        "adaptive_avg_pool2d_backward",
        ADAPTIVE,
        [Arr("dy", "f", _adaptive_y), *_INPUT_HW, _out(_nchw)],
    ),
    # the build and CPU-tier reports (no arguments: a call with any is a TypeError)
    Spec("blas_info"),
    Spec("build_info"),
    Spec("cpu_capability"),
    Spec("cpu_tiers"),
    # the softmax's exponential alone (accuracy tests)
    Spec("exp", X, [Arr("x", "f", _x), _out(_x)]),
    # the optimizer steps of several parameters in one call
    Spec(
        "sgd_steps",
        {"nesterov": flag},
        [PerParam([Arr("param", "f", _x, written=True), Arr("grad", "f", _x),
                   _opt("momentum_buffer", _x, True), Num("first_step", "bool", lambda d: 1)]),
         Num("lr", "real"), Num("momentum", "real"), Num("dampening", "real"), Num("weight_decay", "real"),
         Num("nesterov", "bool", lambda d: d.nesterov)],
    ),
    Spec(
        "adam_steps",
        {"decoupled": flag},
        [PerParam([Arr("param", "f", _x, written=True), Arr("grad", "f", _x),
                   Arr("exp_avg", "f", _x, written=True), Arr("exp_avg_sq", "f", _x, written=True),
                   _opt("max_exp_avg_sq", _x, True), Num("bias_correction1", "real"),
                   Num("bias_correction2", "real")]),
         Num("lr", "real"), Num("beta1", "real"), Num("beta2", "real"), Num("eps", "real"),
         Num("weight_decay", "real"), Num("decoupled", "bool", lambda d: d.decoupled)],
    ),
    # new functions go last: a corpus input's first byte is its function's place here
    Spec(
        "linear_grads",
        {"M": size, "K": size, "N": size, "has_bias": flag, "need_dx": flag},
        [Arr("dy", "f", lambda d: (d.M, d.N)), Arr("x", "f", lambda d: (d.M, d.K)),
         Arr("weight", "f", lambda d: (d.K, d.N)), Num("has_bias", "bool", lambda d: d.has_bias),
         Num("need_dx", "bool", lambda d: d.need_dx)],
    ),
    Spec(
        "layer_norm_backward_kernel_time",
        {**MD, "reps": lambda r, d: 1 + r.byte() % 3},
        [Arr("dy", "f4", _md), Arr("x", "f4", _md), Arr("weight", "f4", _d),
         Num("reps", "int", lambda d: d.reps, REPS_EXTREMES)],
    ),
]  # fmt: skip

BY_NAME = {spec.name: spec for spec in SPECS}


def extension_functions() -> list[str]:
    """The public functions of ``normreg._C``, as ``dir()`` lists them."""
    from normreg import _C

    return sorted(n for n in dir(_C) if not n.startswith("_") and callable(getattr(_C, n)))


def check_complete() -> None:
    """Raises when a function of the extension has no decoder, or a decoder no function."""
    have = set(extension_functions())
    missing = sorted(have - set(BY_NAME))
    stale = sorted(set(BY_NAME) - have)
    if missing or stale or len(BY_NAME) != len(SPECS):
        raise RuntimeError(
            "tests/fuzz/binding_specs.py does not match normreg._C: "
            + (f"no decoder for {missing} (append a Spec to SPECS); " if missing else "")
            + (f"decoders for functions the extension lacks: {stale}; " if stale else "")
            + ("a function has two decoders" if len(BY_NAME) != len(SPECS) else "")
        )
