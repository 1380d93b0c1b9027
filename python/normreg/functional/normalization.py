"""Normalizations over the features of each sample: layer norm, RMS norm, group norm."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from .. import _C
from .. import _validation as V
from ._common import affine_grads, affine_params, as_ncl, grad_and_input, stat_array, unchecked_grads

_INF = math.inf
_ndarray = np.ndarray
_layer_norm_forward = _C.layer_norm_forward  # the kernels of the as-is paths, bound once (hot path)
_layer_norm_backward = _C.layer_norm_backward
_rms_norm_forward = _C.rms_norm_forward
_rms_norm_backward = _C.rms_norm_backward
_group_norm_forward = _C.group_norm_forward
_group_norm_backward = _C.group_norm_backward
# rms_norm's eps=None: the machine epsilon of x's dtype (np.finfo costs a call per lookup)
_MACHINE_EPS = {np.dtype(t): float(np.finfo(t).eps) for t in (np.float32, np.float64)}
ShapeLike = Union[int, Sequence[int]]


def _lead_dims(x: np.ndarray, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """The leading dimensions of x, which must end with ``shape`` (a normalized_shape)."""
    k = len(shape)
    if k == 0 or x.ndim < k or x.shape[x.ndim - k :] != shape:
        raise ValueError(f"{where}: x of shape {x.shape} does not end with normalized_shape {shape}")
    return x.shape[: x.ndim - k]


def _normalized_dims(x: np.ndarray, stat: np.ndarray, name: str, where: str) -> tuple[int, ...]:
    """The trailing dimensions of x after those of ``stat`` (a per-row statistic from the
    forward, named ``name``), which must lead x's shape."""
    if x.ndim - stat.ndim < 1 or x.shape[: stat.ndim] != stat.shape:
        raise ValueError(f"{where}: {name} of shape {stat.shape} does not match x of shape {x.shape}")
    return x.shape[stat.ndim :]


def _mean_rstd(mean: Any, rstd: Any, x: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``mean`` and ``rstd`` a forward returned, as arrays of x's dtype, of one shape."""
    mean = stat_array(mean, "mean", where, x)
    rstd = stat_array(rstd, "rstd", where, x)
    V.check_shape(rstd, "rstd", where, mean.shape, "the shape of mean")
    return mean, rstd


def _flat(a: np.ndarray | None, size: int) -> np.ndarray | None:
    return None if a is None else a.reshape(size)


def _is_row(normalized_shape: Any, D: int) -> bool:
    """Whether ``normalized_shape`` is the row size D given as an int or a 1-item tuple or
    list of one (the rows of an (M, D) array), without converting anything."""
    if type(normalized_shape) is int:
        return normalized_shape == D
    return (
        (type(normalized_shape) is tuple or type(normalized_shape) is list)
        and len(normalized_shape) == 1
        and type(normalized_shape[0]) is int
        and normalized_shape[0] == D
    )


# ---- layer norm -----------------------------------------------------------------------


def _layer_norm_as_is(
    x: Any, weight: Any, bias: Any, eps: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The kernel's (y, mean, rstd) for arguments it takes as they are (x a C-contiguous
    (M, D) float array, weight and bias C-contiguous (D,) arrays of its dtype or None, eps a
    finite float >= 0); None for anything else, which the checked path converts or refuses."""
    # the kernel refuses a negative or NaN eps, but takes ndarray subclasses: a masked array
    # (whose mask it would ignore) must take the checked path, which refuses it
    if (
        type(eps) is float
        and eps < _INF
        and type(x) is _ndarray
        and (weight is None or type(weight) is _ndarray)
        and (bias is None or type(bias) is _ndarray)
    ):
        try:
            return _layer_norm_forward(x, weight, bias, eps, None)
        except (TypeError, ValueError):
            pass  # something to convert, or an error to explain
    return None


def layer_norm(
    x: Any,
    normalized_shape: ShapeLike,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
    *,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer normalization over the trailing ``normalized_shape`` dimensions.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance of the
    last ``len(normalized_shape)`` dims. x (*, *normalized_shape), weight and bias of
    ``normalized_shape`` or None -> (y like x, mean (*), rstd (*)), where
    ``rstd = 1 / sqrt(var + eps)``. An (M, D) array normalized over its rows goes to the
    kernel as it is when nothing needs converting (as :func:`layer_norm_rows`).
    """
    if out is None and type(x) is _ndarray and x.ndim == 2 and _is_row(normalized_shape, x.shape[1]):
        # (M, D) over its rows, as given: the kernel at once, without the checks below
        res = _layer_norm_as_is(x, weight, bias, eps)
        if res is not None:
            return res
    return _layer_norm_checked(x, normalized_shape, weight, bias, eps, out)


def _layer_norm_checked(
    x: Any, normalized_shape: Any, weight: Any, bias: Any, eps: Any, out: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`layer_norm` with every argument checked and converted."""
    where = "layer_norm"
    x = V.float_array(x, "x", where)
    shape = V.normalized_shape(normalized_shape, where)
    eps = V.eps(eps, where)
    lead = _lead_dims(x, shape, where)
    weight, bias = affine_params(weight, bias, x, where, shape, "normalized_shape")
    D = math.prod(shape)
    rows = math.prod(lead)  # explicit: reshape(-1, 0) is ambiguous for an empty shape
    given = out
    if out is not None:
        out = V.out_array(out, where, x.shape, x.dtype).reshape(rows, D)
    x2 = x.reshape(rows, D)
    target = V.out_target(out, x2, weight, bias)
    y, mean, rstd = _C.layer_norm_forward(x2, _flat(weight, D), _flat(bias, D), eps, target)
    return V.out_result(out, y, given, x.shape), mean.reshape(lead), rstd.reshape(lead)


def layer_norm_rows(
    x: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`layer_norm` over the last dimension of x: ``layer_norm(x, x.shape[-1:],
    weight, bias, eps)``, with the same results and errors, and the least Python work per
    call when nothing needs converting (x a C-contiguous 2-D (M, D) float array, weight
    and bias C-contiguous (D,) arrays of its dtype or None, eps a float): the kernel is
    handed the arguments as they are, and whatever it refuses takes the path of
    :func:`layer_norm`, which converts it or raises the error. ``nn.LayerNorm`` calls
    this for its (M, D) input without a weight.
    """
    res = _layer_norm_as_is(x, weight, bias, eps)
    if res is not None:
        return res
    return _layer_norm_checked(x, np.shape(x)[-1:], weight, bias, eps, None)


def layer_norm_backward(
    dy: Any,
    x: Any,
    mean: Any,
    rstd: Any,
    weight: Any = None,
    *,
    has_bias: bool | None = None,
    dweight: np.ndarray | None = None,
    dbias: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`layer_norm`.

    dy and x (*, *normalized_shape), mean and rstd (*) from the forward, weight or None
    -> (dx like x, dweight or None, dbias or None). ``dweight`` is computed when
    ``weight`` is given; ``dbias`` when ``has_bias`` (default: when ``weight`` is given).
    ``dweight``/``dbias``, when given, are added to in place and returned. (M, D) arrays
    go to the kernel as they are when nothing needs converting.
    """
    if (
        type(dy) is _ndarray
        and type(x) is _ndarray
        and x.ndim == 2
        and x.size > 0
        and dy.shape == x.shape
        and type(mean) is _ndarray
        and type(rstd) is _ndarray
        and mean.ndim == 1
        and (weight is None or type(weight) is _ndarray)
        and (has_bias is None or type(has_bias) is bool)
        and (dweight is None or type(dweight) is _ndarray)
        and (dbias is None or type(dbias) is _ndarray)
    ):
        # (M, D) as it is: the kernel at once (it checks every array before it adds to the
        # accumulators, new zeros for those not given); what it refuses takes the path below
        dw, db = unchecked_grads(weight, has_bias, dweight, dbias, x.shape[1], x.dtype)
        try:
            dx = _layer_norm_backward(dy, x, mean, rstd, weight, dw, db, None)
        except (TypeError, ValueError):
            pass
        else:
            return dx, dw, db
    where = "layer_norm_backward"
    dy, x = grad_and_input(dy, x, where)
    mean, rstd = _mean_rstd(mean, rstd, x, where)
    weight = V.optional_float_array(weight, "weight", where, x.dtype, "the dtype of x")
    shape = _normalized_dims(x, mean, "mean", where)
    D = math.prod(shape)
    rows = mean.size
    dweight, dbias = affine_grads(weight, has_bias, dweight, dbias, where, shape, "normalized_shape", x.dtype)
    dx = _C.layer_norm_backward(
        dy.reshape(rows, D),
        x.reshape(rows, D),
        mean.reshape(-1),
        rstd.reshape(-1),
        _flat(weight, D),
        _flat(dweight, D),
        _flat(dbias, D),
        None,
    )
    return dx.reshape(x.shape), dweight, dbias


# ---- RMS norm -------------------------------------------------------------------------


def _rms_norm_as_is(x: Any, weight: Any, eps: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The kernel's (y, rstd) for arguments it takes as they are (x a C-contiguous (M, D)
    float array, weight a C-contiguous (D,) array of its dtype or None, eps None or a finite
    float >= 0); None for anything else, which the checked path converts or refuses (as
    :func:`_layer_norm_as_is`)."""
    if type(x) is _ndarray and (weight is None or type(weight) is _ndarray):
        if eps is None:
            eps = _MACHINE_EPS.get(x.dtype)
        if type(eps) is float and eps < _INF:
            try:
                return _rms_norm_forward(x, weight, eps, None)
            except (TypeError, ValueError):
                pass  # something to convert, or an error to explain
    return None


def rms_norm(
    x: Any,
    normalized_shape: ShapeLike,
    weight: Any = None,
    eps: float | None = None,
    *,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """RMS normalization over the trailing ``normalized_shape`` dimensions (PyTorch's
    ``F.rms_norm``): ``y = x / sqrt(mean(x**2) + eps) * weight``.

    x (*, *normalized_shape), weight of ``normalized_shape`` or None; ``eps=None`` means
    ``np.finfo(x.dtype).eps``. Returns (y like x, rstd (*)) with
    ``rstd = 1 / sqrt(mean(x**2) + eps)``, which :func:`rms_norm_backward` takes. An (M, D)
    array normalized over its rows goes to the kernel as it is when nothing needs converting.
    """
    if out is None and type(x) is _ndarray and x.ndim == 2 and _is_row(normalized_shape, x.shape[1]):
        res = _rms_norm_as_is(x, weight, eps)
        if res is not None:
            return res
    where = "rms_norm"
    x = V.float_array(x, "x", where)
    shape = V.normalized_shape(normalized_shape, where)
    eps = float(np.finfo(x.dtype).eps) if eps is None else V.eps(eps, where)
    lead = _lead_dims(x, shape, where)
    weight, _ = affine_params(weight, None, x, where, shape, "normalized_shape")
    M, D = math.prod(lead), math.prod(shape)
    given = out
    if out is not None:
        out = V.out_array(out, where, x.shape, x.dtype).reshape(M, D)
    target = V.out_target(out, x, weight)
    y, rstd = _C.rms_norm_forward(x.reshape(M, D), _flat(weight, D), eps, target)
    return V.out_result(out, y, given, x.shape), rstd.reshape(lead)


def rms_norm_backward(
    dy: Any, x: Any, rstd: Any, weight: Any = None, *, dweight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradients of :func:`rms_norm`.

    dy and x (*, *normalized_shape), rstd (*) from the forward, weight or None
    -> (dx like x, dweight or None). ``dweight`` is computed when ``weight`` is given;
    when passed, it is added to in place and returned. (M, D) arrays go to the kernel as
    they are when nothing needs converting.
    """
    if (
        type(dy) is _ndarray
        and type(x) is _ndarray
        and x.ndim == 2
        and x.size > 0
        and dy.shape == x.shape
        and type(rstd) is _ndarray
        and rstd.ndim == 1
        and (weight is None or type(weight) is _ndarray)
        and (dweight is None or type(dweight) is _ndarray)
    ):
        # as layer_norm_backward's: the kernel checks every array before it adds to dweight
        dw, _ = unchecked_grads(weight, False, dweight, None, x.shape[1], x.dtype)
        try:
            dx = _rms_norm_backward(dy, x, rstd, weight, dw, None)
        except (TypeError, ValueError):
            pass
        else:
            return dx, dw
    where = "rms_norm_backward"
    dy, x = grad_and_input(dy, x, where)
    rstd = stat_array(rstd, "rstd", where, x)
    weight = V.optional_float_array(weight, "weight", where, x.dtype, "the dtype of x")
    shape = _normalized_dims(x, rstd, "rstd", where)
    M, D = math.prod(rstd.shape), math.prod(shape)
    dweight, _ = affine_grads(weight, False, dweight, None, where, shape, "normalized_shape", x.dtype)
    dx = _C.rms_norm_backward(
        dy.reshape(M, D), x.reshape(M, D), rstd.reshape(M), _flat(weight, D), _flat(dweight, D), None
    )
    return dx.reshape(x.shape), dweight


# ---- group norm -----------------------------------------------------------------------


def _ncl_view(x: np.ndarray) -> np.ndarray | None:
    """x (N, C), (N, C, L) or (N, C, H, W) as (N, C, L) without checks (a view when x is
    C-contiguous); None for other ranks, which the checked path takes."""
    s = x.shape
    if x.ndim == 3:
        return x
    if x.ndim == 4:
        return x.reshape(s[0], s[1], s[2] * s[3])
    if x.ndim == 2:
        return x.reshape(s[0], s[1], 1)
    return None


def _group_norm_as_is(
    x: Any, num_groups: Any, weight: Any, bias: Any, eps: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The kernel's (y, mean, rstd) for arguments it takes as they are (x an (N, C, *) float
    array of 2 to 4 dimensions, C-contiguous, num_groups an int, weight and bias (C,) arrays
    of its dtype or None, eps a finite float >= 0); None for anything else, which the
    checked path converts or refuses (as :func:`_layer_norm_as_is`)."""
    if (
        type(x) is _ndarray
        and type(num_groups) is int
        and type(eps) is float
        and eps < _INF
        and (weight is None or type(weight) is _ndarray)
        and (bias is None or type(bias) is _ndarray)
    ):
        x3 = _ncl_view(x)
        if x3 is not None and x3.size != num_groups:  # one value a group: the checked path's error
            try:
                y, mean, rstd = _group_norm_forward(x3, weight, bias, num_groups, eps, None)
            except (TypeError, ValueError):
                return None  # something to convert, or an error to explain
            return y.reshape(x.shape), mean, rstd
    return None


def group_norm(
    x: Any,
    num_groups: int,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
    *,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group normalization (PyTorch's ``F.group_norm``) of x (N, C, *).

    The C channels form ``num_groups`` groups of consecutive channels; each sample's group
    is normalized with its own mean and biased variance over its channels and all spatial
    positions, then each channel c gets ``* weight[c] + bias[c]`` (weight, bias (C,) or
    None). Returns (y like x, mean (N, G), rstd (N, G)) with ``rstd = 1 / sqrt(var + eps)``.
    Input of 2 to 4 dimensions goes to the kernel as it is when nothing needs converting.
    """
    if out is None:
        res = _group_norm_as_is(x, num_groups, weight, bias, eps)
        if res is not None:
            return res
    where = "group_norm"
    x = V.float_array(x, "x", where)
    x3 = as_ncl(x, "x", where)
    C = x3.shape[1]
    G = V.num_groups(num_groups, C, where)
    if x3.size == G:
        # PyTorch's check: a single value in each group (and a batch of one) normalizes to 0
        raise ValueError(
            f"{where}: Expected more than 1 value per group, got input size {x.shape} in {G} groups"
        )
    eps = V.eps(eps, where)
    weight, bias = affine_params(weight, bias, x, where, (C,), "the channels of x")
    given = out
    if out is not None:
        out = V.out_array(out, where, x.shape, x.dtype).reshape(x3.shape)
    y, mean, rstd = _C.group_norm_forward(x3, weight, bias, G, eps, V.out_target(out, x3, weight, bias))
    return V.out_result(out, y, given, x.shape), mean, rstd


def group_norm_backward(
    dy: Any,
    x: Any,
    mean: Any,
    rstd: Any,
    weight: Any = None,
    *,
    has_bias: bool | None = None,
    dweight: np.ndarray | None = None,
    dbias: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`group_norm`.

    dy and x (N, C, *), mean and rstd (N, G) from the forward (G is taken from their
    shape), weight (C,) or None -> (dx like x, dweight or None, dbias or None), as
    :func:`layer_norm_backward`.
    """
    if (
        type(dy) is _ndarray
        and type(x) is _ndarray
        and x.size > 0
        and dy.shape == x.shape
        and type(mean) is _ndarray
        and type(rstd) is _ndarray
        and mean.ndim == 2
        and (weight is None or type(weight) is _ndarray)
        and (has_bias is None or type(has_bias) is bool)
        and (dweight is None or type(dweight) is _ndarray)
        and (dbias is None or type(dbias) is _ndarray)
    ):
        # as layer_norm_backward's: the kernel checks every array before it adds to the
        # accumulators; G is mean's second dimension, which the kernel checks against x
        x3, dy3 = _ncl_view(x), _ncl_view(dy)
        if x3 is not None and dy3 is not None:
            dw, db = unchecked_grads(weight, has_bias, dweight, dbias, x.shape[1], x.dtype)
            try:
                dx = _group_norm_backward(dy3, x3, mean, rstd, weight, dw, db, mean.shape[1], None)
            except (TypeError, ValueError):
                pass
            else:
                return dx.reshape(x.shape), dw, db
    where = "group_norm_backward"
    dy, x = grad_and_input(dy, x, where)
    x3 = as_ncl(x, "x", where)
    N, C, _ = x3.shape
    mean, rstd = _mean_rstd(mean, rstd, x, where)
    if mean.ndim != 2 or mean.shape[0] != N:
        raise ValueError(f"{where}: mean must have shape (N, num_groups) = ({N}, G), got {mean.shape}")
    G = mean.shape[1]
    if G < 1 or C % G != 0:
        raise ValueError(
            f"{where}: mean of shape {mean.shape} does not match x: its {G} groups do not "
            f"divide the {C} channels"
        )
    weight = V.optional_float_array(weight, "weight", where, x.dtype, "the dtype of x")
    dweight, dbias = affine_grads(weight, has_bias, dweight, dbias, where, (C,), "the channels of x", x.dtype)
    dx = _C.group_norm_backward(dy.reshape(x3.shape), x3, mean, rstd, weight, dweight, dbias, G, None)
    return dx.reshape(x.shape), dweight, dbias
