"""Weight initialization, as ``torch.nn.init`` defines it, in place on a Parameter or ndarray.

Every function fills its argument in place (a :class:`~normreg.nn.Parameter`'s ``.data``
or a writeable float ndarray) and returns it. Random draws come from ``generator``
(default: normreg's default generator), one fresh NumPy generator per call
(:meth:`normreg.Generator.numpy`), so ``normreg.manual_seed(s)`` makes them reproducible.

**Fans.** A 2-D array is a weight in normreg's Linear layout ``(in_features,
out_features)`` (``y = x @ W``), the transpose of PyTorch's: ``fan_in = shape[0]``,
``fan_out = shape[1]``. An array of three or more dimensions is a convolution weight in
PyTorch's layout ``(out, in, *kernel)`` (as :class:`~normreg.nn.Conv2d` stores it):
``fan_in = in * prod(kernel) = shape[1] * prod(shape[2:])`` and
``fan_out = out * prod(kernel) = shape[0] * prod(shape[2:])``, PyTorch's own rule. So a
Linear and a Conv2d weight get the same fans as their PyTorch twins. Fans are not defined
for fewer than two dimensions (``ValueError``), as in PyTorch.

* ``xavier_uniform_``: U(-a, a), ``a = gain * sqrt(6 / (fan_in + fan_out))``;
  ``xavier_normal_``: N(0, std²), ``std = gain * sqrt(2 / (fan_in + fan_out))``.
* ``kaiming_uniform_``: U(-b, b), ``b = gain * sqrt(3 / fan)``; ``kaiming_normal_``:
  N(0, std²), ``std = gain / sqrt(fan)``; ``fan`` is ``fan_in`` (``mode='fan_in'``,
  default) or ``fan_out``; ``gain = calculate_gain(nonlinearity, a)``.
* ``trunc_normal_``, ``orthogonal_``, ``eye_``, ``dirac_``, ``sparse_``: PyTorch's, with
  ``eye_`` and ``orthogonal_`` the same in either 2-D layout and ``sparse_`` zeroing in
  each row of an ``(in, out)`` weight what PyTorch zeroes in each column of its
  ``(out, in)`` one (their docstrings say why).

**Draws** are made in the array's own dtype, in place: ``numpy.random.Generator.random``
and ``standard_normal`` with ``dtype=`` and ``out=`` straight into a C-contiguous float32 or
float64 array (every Parameter is one), then scaled and shifted in place, so initializing
an array needs no memory beyond it. Another layout is drawn into a buffer of its dtype and
copied; float16 and longdouble arrays are drawn in float64 and rounded. The same seed
gives the same values. Apart: ``trunc_normal_`` and ``orthogonal_`` compute in float64
and round (work arrays of the array's size), and ``sparse_`` draws float64 keys to place
its zeros.

Also importable as ``normreg.init``. Every number (bounds, mean, std, gain, fill value) must
be a finite real number (``normreg._validation``'s policy), but for ``trunc_normal_``'s
bounds, which may be infinite (``a=0, b=math.inf``: a half-normal).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Optional, TypeVar, Union

import numpy as np

from .. import _validation as V
from ..random import Generator, as_generator
from .parameter import Parameter

__all__ = [
    "calculate_gain",
    "calculate_fan_in_and_fan_out",
    "uniform_",
    "normal_",
    "constant_",
    "zeros_",
    "ones_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "trunc_normal_",
    "orthogonal_",
    "eye_",
    "dirac_",
    "sparse_",
]

Tensor = TypeVar("Tensor", bound=Union[Parameter, np.ndarray])
OptionalGenerator = Optional[Generator]


def _target(tensor: Any, where: str) -> np.ndarray:
    """The ndarray to write: a Parameter's data or a writeable float ndarray."""
    arr = tensor.data if isinstance(tensor, Parameter) else tensor
    if not isinstance(arr, np.ndarray):
        raise TypeError(
            f"{where}: tensor must be a normreg.nn.Parameter or a numpy.ndarray, got {type(tensor).__name__}"
        )
    if arr.dtype.kind != "f":
        raise TypeError(f"{where}: tensor must have a floating dtype, got {arr.dtype}")
    if not arr.flags.writeable:
        raise ValueError(f"{where}: tensor is filled in place and must be writeable")
    return arr


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table): 1 for linear, conv*d and
    sigmoid; 5/3 for tanh; sqrt(2) for relu; sqrt(2 / (1 + slope²)) for leaky_relu
    (``param`` = negative slope, default 0.01); 3/4 for selu."""
    linear_fns = [
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
    ]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (bool, np.bool_)) or not isinstance(param, numbers.Real):
            # PyTorch's exception and words for this case
            raise ValueError(f"negative_slope {param} not a valid number")
        else:
            slope = V.real(param, "negative_slope", "calculate_gain")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def calculate_fan_in_and_fan_out(tensor: Parameter | np.ndarray) -> tuple[int, int]:
    """``(fan_in, fan_out)``: ``(shape[0], shape[1])`` for a 2-D ``(in, out)`` Linear weight;
    ``(in * prod(kernel), out * prod(kernel))`` for an ``(out, in, *kernel)`` convolution
    weight of 3 or more dimensions (PyTorch's rule; see the module doc)."""
    shape = np.shape(tensor.data if isinstance(tensor, Parameter) else tensor)
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than "
            f"2 dimensions (got shape {shape})"
        )
    if len(shape) == 2:  # normreg's Linear layout (in_features, out_features)
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])  # PyTorch's (out_channels, in_channels, *kernel)
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor: Parameter | np.ndarray, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _draw(arr: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Fill ``arr`` with standard draws of ``kind`` ('uniform': [0, 1), 'normal') from
    ``rng``; returns the array to scale in place (``arr`` itself, or a copy for other
    layouts and a float64 one for exotic dtypes)."""
    if arr.dtype in V.FLOAT_DTYPES:
        direct = arr.flags.c_contiguous and arr.flags.aligned and arr.dtype.isnative
        buf = arr if direct else np.empty(arr.shape, arr.dtype)
        if kind == "uniform":
            rng.random(out=buf, dtype=buf.dtype)
        else:
            rng.standard_normal(out=buf, dtype=buf.dtype)
        return buf
    return rng.random(arr.shape) if kind == "uniform" else rng.standard_normal(arr.shape)


def _clip_into(u: np.ndarray, a: float, b: float) -> None:
    """Clip ``u`` in place to the values of its dtype within [a, b]: rounding to the dtype
    may reach a bound, never pass it."""
    t = u.dtype.type
    lo, hi = t(a), t(b)
    lo = lo if float(lo) >= a else np.nextafter(lo, t(np.inf))
    hi = hi if float(hi) <= b else np.nextafter(hi, t(-np.inf))
    np.clip(u, lo, hi, out=u)


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: OptionalGenerator = None) -> Tensor:
    """Fill with draws from U(a, b) (every value within [a, b])."""
    where = "uniform_"
    arr = _target(tensor, where)
    a, b = V.real(a, "a", where), V.real(b, "b", where)
    if a > b:
        raise ValueError(f"{where}: expects a <= b, got a={a} > b={b}")
    if a == math.inf or b == -math.inf:
        raise ValueError(f"{where}: [a, b] = [{a}, {b}] holds no finite number")
    gen = as_generator(generator, where)
    if arr.size:  # an empty array draws nothing: the generator's counter stays
        u = _draw(arr, gen.numpy(), "uniform")
        t = u.dtype.type
        # a + (b - a) * u, in u's dtype; rounding may reach a bound, never pass it
        np.multiply(u, t(b - a), out=u)
        np.add(u, t(a), out=u)
        _clip_into(u, a, b)
        if u is not arr:
            arr[...] = u
    return tensor


def normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: OptionalGenerator = None
) -> Tensor:
    """Fill with draws from N(mean, std²)."""
    where = "normal_"
    arr = _target(tensor, where)
    mean, std = V.real(mean, "mean", where), V.real(std, "std", where, low=0.0)
    gen = as_generator(generator, where)
    if arr.size:
        z = _draw(arr, gen.numpy(), "normal")
        t = z.dtype.type
        np.multiply(z, t(std), out=z)
        np.add(z, t(mean), out=z)
        if z is not arr:
            arr[...] = z
    return tensor


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    _target(tensor, "constant_")[...] = V.real(val, "val", "constant_")
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0."""
    _target(tensor, "zeros_")[...] = 0
    return tensor


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1."""
    _target(tensor, "ones_")[...] = 1
    return tensor


def _xavier_std(tensor: Parameter | np.ndarray, gain: float, where: str) -> float:
    _target(tensor, where)
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    gain = V.real(gain, "gain", where)
    return gain * math.sqrt(2.0 / float(fan_in + fan_out)) if fan_in + fan_out else 0.0


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: OptionalGenerator = None) -> Tensor:
    """Glorot uniform: U(-a, a), ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    a = math.sqrt(3.0) * _xavier_std(tensor, gain, "xavier_uniform_")
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: OptionalGenerator = None) -> Tensor:
    """Glorot normal: N(0, std²), ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    return normal_(tensor, 0.0, _xavier_std(tensor, gain, "xavier_normal_"), generator)


def _kaiming_std(
    tensor: Parameter | np.ndarray, a: float, mode: str, nonlinearity: str, where: str
) -> float | None:
    arr = _target(tensor, where)
    fan = _fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    if arr.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    return gain / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: OptionalGenerator = None,
) -> Tensor:
    """He uniform: U(-b, b), ``b = gain * sqrt(3 / fan)``,
    ``gain = calculate_gain(nonlinearity, a)``.

    ``a``: the negative slope of the rectifier after this layer (leaky_relu only);
    ``mode``: ``'fan_in'`` keeps the forward variance, ``'fan_out'`` the backward one.
    On an empty array it warns and does nothing, as PyTorch.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: OptionalGenerator = None,
) -> Tensor:
    """He normal: N(0, std²), ``std = gain / sqrt(fan)`` (arguments as :func:`kaiming_uniform_`)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


# ---- truncated normal, orthogonal, identity, Dirac, sparse ---------------------------------


def _standard_trunc_normal(rng: np.random.Generator, n: int, alpha: float, beta: float) -> np.ndarray:
    """``n`` draws of N(0, 1) truncated to ``[alpha, beta]`` (``alpha <= beta``, ends maybe
    infinite but not both on one side), by rejection from a proposal that accepts at least
    30% of its draws wherever the interval lies (Robert, 1995): N(0, 1) itself when the
    interval holds 30% of its mass or more; otherwise U(alpha, beta) (accepting ``x``
    with probability ``exp((m² - x²) / 2)``, ``m`` the point of the interval nearest 0) when
    that density varies by a factor of at most e^0.8 over the interval; otherwise, in a
    tail, ``alpha`` plus an exponential of rate ``lam = (alpha + sqrt(alpha² + 4)) / 2``
    (accepting with probability ``exp(-(x - lam)² / 2)``). Each round redraws the
    rejected."""
    if beta <= 0:  # left of 0: the mirror image of a draw right of it
        return -_standard_trunc_normal(rng, n, -beta, -alpha)
    if alpha <= 0:  # 0 within the interval
        mass = 0.5 * (math.erf(beta / math.sqrt(2.0)) - math.erf(alpha / math.sqrt(2.0)))
        kind, m = ("normal" if mass >= 0.3 else "uniform"), 0.0
    else:  # a right tail; (beta - alpha) * (beta + alpha) / 2 = log of the density's ratio
        spread = (beta - alpha) * (0.5 * alpha + 0.5 * beta) if beta > alpha else 0.0
        kind, m = ("uniform" if spread <= 0.8 else "exponential"), alpha
    lam = 0.5 * alpha + math.hypot(0.5 * alpha, 1.0)
    out = np.empty(n)
    pending = np.arange(n)
    while pending.size:
        k = pending.size
        if kind == "normal":
            x = rng.standard_normal(k)
            ok = (x >= alpha) & (x <= beta)
        elif kind == "uniform":
            x = alpha + (beta - alpha) * rng.random(k)
            ok = rng.standard_exponential(k) >= 0.5 * (x - m) * (x + m)
        else:
            x = alpha + rng.standard_exponential(k) / lam
            ok = (x <= beta) & (rng.standard_exponential(k) >= 0.5 * (x - lam) ** 2)
        out[pending[ok]] = x[ok]
        pending = pending[~ok]
    return out


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: OptionalGenerator = None,
) -> Tensor:
    """Fill with draws from N(mean, std²) truncated to [a, b] (``a``, ``b`` absolute bounds,
    not in standard deviations): the normal's law conditioned on [a, b], every value within
    [a, b] (after rounding to the array's dtype too).

    Exact rejection sampling (see ``_standard_trunc_normal``), which keeps this law and a
    bounded cost wherever [a, b] lies, even far in a tail (unlike PyTorch, no warning when
    ``mean`` is more than 2 std from [a, b]: the law is not approximated there). Drawn in
    float64 and rounded to the dtype. ``std > 0``; ``a == b`` fills with ``a``.
    """
    where = "trunc_normal_"
    arr = _target(tensor, where)
    mean = V.real(mean, "mean", where)
    std = V.real(std, "std", where, low=0.0, low_open=True)
    a, b = V.real(a, "a", where, allow_inf=True), V.real(b, "b", where, allow_inf=True)
    if a > b:
        raise ValueError(f"{where}: expects a <= b, got a={a} > b={b}")
    if a == math.inf or b == -math.inf:
        raise ValueError(f"{where}: [a, b] = [{a}, {b}] holds no finite number")
    gen = as_generator(generator, where)
    if arr.size:
        alpha, beta = (a - mean) / std, (b - mean) / std
        if alpha == math.inf or beta == -math.inf:  # so many std away that the ratio overflows:
            # the law tends to the point mass at the bound nearest the mean
            arr[...] = a if alpha == math.inf else b
        else:
            x = _standard_trunc_normal(gen.numpy(), arr.size, alpha, beta)
            np.clip(mean + std * x, a, b, out=x)
            arr[...] = x.reshape(arr.shape)
        _clip_into(arr, a, b)
    return tensor


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: OptionalGenerator = None) -> Tensor:
    """Fill with a (semi-)orthogonal matrix times ``gain`` (Saxe et al., 2013), as PyTorch:
    ``rows = shape[0]``, ``cols = size // rows`` (the trailing dimensions flattened); the QR
    factorization of a (rows, cols) N(0, 1) matrix (of its transpose if rows < cols), with
    Q's columns multiplied by the signs of R's diagonal so Q is uniform (Haar) on its set.

    The smaller side gets orthonormal vectors: ``W.T @ W = gain² I`` if rows >= cols,
    ``W @ W.T = gain² I`` if rows <= cols (``W`` the (rows, cols) flattening). That
    condition does not depend on the layout. For a Linear weight ``(in_features,
    out_features)`` with ``in <= out`` the rows are orthonormal, so ``|x @ W| = gain |x|``
    for every ``x``, as ``|x @ W_torch.T|`` for PyTorch's ``(out, in)`` weight with
    ``out >= in`` (orthonormal columns); with ``in > out`` the columns are orthonormal,
    norms kept within their span. For a convolution weight ``(out, in, *kernel)`` it is
    PyTorch's: orthonormal across the ``in * prod(kernel)`` inputs of a patch if
    ``out >= in * prod(kernel)``. Computed in float64 and rounded to the dtype.
    """
    where = "orthogonal_"
    arr = _target(tensor, where)
    gain = V.real(gain, "gain", where)
    if arr.ndim < 2:
        raise ValueError(f"{where}: tensor must have 2 or more dimensions, got shape {arr.shape}")
    gen = as_generator(generator, where)
    if arr.size:
        rows = arr.shape[0]
        cols = arr.size // rows
        flat = gen.numpy().standard_normal((rows, cols))
        q, r = np.linalg.qr(flat.T if rows < cols else flat)
        q *= np.where(np.diagonal(r) < 0, -gain, gain)  # the sign correction, and the gain
        arr[...] = (q.T if rows < cols else q).reshape(arr.shape)
    return tensor


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D array with the identity: ``W[i, i] = 1``, 0 elsewhere (PyTorch's; the
    rectangular identity is its own transpose, so for a Linear weight ``(in, out)``,
    ``x @ W`` keeps the first ``min(in, out)`` inputs as the outputs, as PyTorch's)."""
    arr = _target(tensor, "eye_")
    if arr.ndim != 2:
        raise ValueError(f"eye_: tensor must have 2 dimensions, got shape {arr.shape}")
    arr[...] = 0
    d = np.arange(min(arr.shape))
    arr[d, d] = 1
    return tensor


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-D convolution weight ``(out, in, *kernel)`` with the Dirac delta
    (PyTorch's): output channel ``g * out_per_group + d`` of each of the ``groups`` groups
    copies input channel ``d`` for ``d < min(out // groups, in)`` (1 at the kernel's centre,
    ``kernel_size // 2`` along each axis), every other weight 0. With ``in == out``, an odd
    kernel, ``padding = kernel_size // 2``, stride 1 and a zero bias, the convolution
    returns its input."""
    where = "dirac_"
    arr = _target(tensor, where)
    groups = V.integer(groups, "groups", where, low=1)
    if arr.ndim not in (3, 4, 5):
        raise ValueError(
            f"{where}: tensor must have 3, 4 or 5 dimensions (out, in, *kernel), got shape {arr.shape}"
        )
    if arr.shape[0] % groups:
        raise ValueError(f"{where}: groups must divide the tensor's dim 0 ({arr.shape[0]}), got {groups}")
    arr[...] = 0
    if arr.size:
        per_group = arr.shape[0] // groups
        d = np.arange(min(per_group, arr.shape[1]))
        centre = tuple(s // 2 for s in arr.shape[2:])
        for g in range(groups):
            arr[(g * per_group + d, d) + centre] = 1
    return tensor


def sparse_(
    tensor: Tensor, sparsity: float, std: float = 0.01, generator: OptionalGenerator = None
) -> Tensor:
    """Fill a 2-D Linear weight ``(in_features, out_features)`` as a sparse matrix (Martens,
    2010): N(0, std²) draws, then in each row ``ceil(sparsity * out_features)`` of them
    (PyTorch's formula), at places drawn uniformly, set to 0.

    PyTorch zeroes that many entries of each *column* of its ``(out, in)`` weight: a column
    there is one input's weights to all the outputs, which is a *row* of normreg's
    ``(in, out)`` weight. So a normreg Linear and its PyTorch twin get the same pattern:
    every input keeps ``out - ceil(sparsity * out)`` nonzero weights. ``sparsity`` in
    [0, 1]. Unlike PyTorch (whose places come from its global generator), the places are
    drawn from ``generator`` too.
    """
    where = "sparse_"
    arr = _target(tensor, where)
    if arr.ndim != 2:
        raise ValueError(f"{where}: tensor must have 2 dimensions, got shape {arr.shape}")
    sparsity = V.real(sparsity, "sparsity", where, low=0.0, high=1.0)
    std = V.real(std, "std", where, low=0.0)
    gen = as_generator(generator, where)
    n_in, n_out = arr.shape
    zeros = min(math.ceil(sparsity * n_out), n_out)
    if arr.size:
        rng = gen.numpy()
        w = _draw(arr, rng, "normal")
        np.multiply(w, w.dtype.type(std), out=w)
        if zeros:  # the `zeros` smallest of uniform keys: a uniform subset of each row
            keys = rng.random((n_in, n_out))
            np.put_along_axis(w, np.argpartition(keys, zeros - 1, axis=1)[:, :zeros], 0, axis=1)
        if w is not arr:
            arr[...] = w
    return tensor
