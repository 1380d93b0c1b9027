"""Argument checks for every layer of normreg: one policy, one message format.

The policy, which every public function and class follows:

* **Wrong type: TypeError; wrong value: ValueError.** The message names the function or
  class, the argument, what was expected and what was given, as
  ``"StepLR: gamma must be a finite real number, got nan"``.
* **bool is not a number.** ``True`` (or ``np.True_``) where a number or an int is
  expected is a TypeError; where a flag must be a bool, only ``bool``/``np.bool_`` pass.
* **Real numbers** are Python ints and floats and NumPy integer and floating scalars
  (whatever :class:`numbers.Real` accepts); they come back as Python floats. **Integers**
  are Python ints and NumPy integer scalars; they come back as Python ints.
* **Hyperparameters are finite**: NaN or +-Inf as an eps, a momentum, a learning rate, a
  probability, a gain... is a ValueError. Where infinity means something (``norm_type``,
  ``max_norm``) the caller allows it (``allow_inf``); where the number is data, not a
  setting (an upstream gradient), NaN is let through too (``allow_nan``).
* **Masked arrays** (``numpy.ma``) are a TypeError wherever an array is taken: normreg
  would compute with the values under the mask, so the caller says what they are
  (``x.filled(0)``, ``x.data``).
* **Arrays** of the float ops are float32 or float64 (anything else is a TypeError), are
  converted to C-contiguous, aligned, native-order ndarrays without being modified, and
  must have the dtype of the other arrays of the call (TypeError) and the expected shape
  (ValueError). Arrays written in place (``out=``, gradient accumulators, optimizer state,
  running statistics) are checked, never converted: a copy would leave the caller's array
  unwritten.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import numpy.typing as npt

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INF = math.inf


# ---- scalars -----------------------------------------------------------------------------


def _bound(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"  # 2**64 - 1 in full


def interval(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    """How an error names the interval from ``low`` to ``high`` ("in [0, 1)", ">= 1", "<= 5");
    an end that is None is unbounded."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_bound(low)}"
    return f"{'<' if high_open else '<='} {_bound(high)}"  # type: ignore[arg-type]


def real(
    value: Any,
    name: str,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
    allow_nan: bool = False,
) -> float:
    """``value`` as a float: a real number (not a bool), finite unless allowed, within
    ``[low, high]`` (a bound is excluded with ``low_open``/``high_open``)."""
    if type(value) is float:  # the common case, without the abstract-class check below
        v = value
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a real number, got {type(value).__name__}")
    else:
        try:
            v = float(value)
        except OverflowError:  # an int beyond float's range: as large as a float can be
            v = _INF if value > 0 else -_INF  # type: ignore[operator]
    if v != v:
        if allow_nan:
            return v
        raise ValueError(f"{where}: {name} must be a finite real number, got nan")
    if not allow_inf and (v == _INF or v == -_INF):
        raise ValueError(f"{where}: {name} must be a finite real number, got {v}")
    if (low is not None and (v < low or (low_open and v == low))) or (
        high is not None and (v > high or (high_open and v == high))
    ):
        raise ValueError(f"{where}: {name} must be {interval(low, high, low_open, high_open)}, got {v:g}")
    return v


#: The most threads ``normreg.set_num_threads`` takes (the limit of the extension, csrc/module.c).
MAX_THREADS = 1024


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an int or a NumPy integer (not a bool): what :func:`integer` takes."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(value: Any, name: str, where: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int: an int or NumPy integer (not a bool) within ``[low, high]``."""
    if type(value) is not int and (
        isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
    ):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        bounds = "positive" if low == 1 and high is None else interval(low, high)
        raise ValueError(f"{where}: {name} must be {bounds}, got {v}")
    return v


_INT32_MAX = 2**31 - 1


def int_pair(value: Any, name: str, where: str, *, low: int) -> tuple[int, int]:
    """An int or a pair of ints (a tuple or list of two), each >= ``low``, as a pair: the
    ``kernel_size``, ``stride`` and ``padding`` of the 2-d layers (PyTorch's ``_pair``)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{where}: {name} must be an int or a pair of ints, got {len(value)} values")
        return (integer(value[0], name, where, low=low), integer(value[1], name, where, low=low))
    v = integer(value, name, where, low=low)
    return (v, v)


#: A 2-d size argument (kernel_size, stride, padding, dilation): an int for both axes or an
#: (h, w) pair, PyTorch's ``_size_2_t``.
IntPair = Union[int, tuple[int, int]]


def pool_window(
    kernel_size: Any, stride: Any, padding: Any, ceil_mode: Any, where: str
) -> tuple[int, int, int, int, int, int, bool]:
    """A 2-d pooling window as (kH, kW, sH, sW, pH, pW, ceil_mode): each size an int or a
    pair; ``stride`` None is the kernel size; the padding at most half the kernel, as
    PyTorch requires; ``ceil_mode`` a bool. Each size at most 2**31 - 1, PyTorch's int (a
    window's count of positions, with padding, then fits in 64 bits)."""
    kh, kw = int_pair(kernel_size, "kernel_size", where, low=1)
    sh, sw = (kh, kw) if stride is None else int_pair(stride, "stride", where, low=1)
    ph, pw = int_pair(padding, "padding", where, low=0)
    for name, pair in (("kernel_size", (kh, kw)), ("stride", (sh, sw)), ("padding", (ph, pw))):
        if max(pair) > _INT32_MAX:
            raise ValueError(f"{where}: {name} must be at most 2**31 - 1 (PyTorch's int), got {max(pair)}")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{where}: padding ({ph}, {pw}) must be at most half the kernel_size ({kh}, {kw})")
    return kh, kw, sh, sw, ph, pw, boolean(ceil_mode, "ceil_mode", where)


def pool_dilation(dilation: Any, where: str) -> None:
    """Max pooling's ``dilation``: an int or a pair; only 1 (no gaps) is supported, anything
    else a ValueError that says so."""
    dh, dw = int_pair(dilation, "dilation", where, low=1)
    if (dh, dw) != (1, 1):
        raise ValueError(f"{where}: dilation other than 1 is not supported, got ({dh}, {dw})")


def divisor_override(value: Any, where: str) -> int:
    """Average pooling's ``divisor_override``: None (0 for the kernels) or an int >= 1."""
    return 0 if value is None else integer(value, "divisor_override", where, low=1, high=2**63 - 1)


def output_size_pair(value: Any, where: str) -> tuple[int | None, int | None]:
    """Adaptive pooling's ``output_size``: an int >= 1, or a pair of them where None keeps the
    input's size (PyTorch's convention)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{where}: output_size must be an int or a pair, got {len(value)} values")
        h, w = (None if v is None else integer(v, "output_size", where, low=1) for v in value)
        return h, w
    v = integer(value, "output_size", where, low=1)
    return v, v


def boolean(value: Any, name: str, where: str) -> bool:
    """``value`` as a bool: only ``bool`` and ``np.bool_`` pass."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be a bool, got {type(value).__name__}")
    return bool(value)


def choice(value: Any, name: str, where: str, choices: Sequence[str]) -> str:
    """``value``, one of the strings ``choices``."""
    options = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be one of {options}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{where}: {name} must be one of {options}, got {value!r}")
    return value


def probability(value: Any, name: str, where: str) -> float:
    """A probability: a finite real number in [0, 1]."""
    return real(value, name, where, low=0.0, high=1.0)


def cross_entropy_options(
    ignore_index: Any, reduction: Any, label_smoothing: Any, where: str
) -> tuple[int, str, float]:
    """The cross-entropy's options but its class weights: ``ignore_index`` an int,
    ``reduction`` one of "mean", "sum", "none", ``label_smoothing`` a real number in [0, 1]."""
    return (
        integer(ignore_index, "ignore_index", where),
        choice(reduction, "reduction", where, ("mean", "sum", "none")),
        real(label_smoothing, "label_smoothing", where, low=0.0, high=1.0),
    )


def eps(value: Any, where: str) -> float:
    """A normalization's ``eps``: a finite real number >= 0."""
    if type(value) is float and 0.0 <= value < _INF:
        return value
    return real(value, "eps", where, low=0.0)


def normalized_shape(value: Any, where: str, nonempty: bool = False) -> tuple[int, ...]:
    """A ``normalized_shape``: an int or a sequence of ints >= 0, as a tuple (with at least
    one dimension when ``nonempty``)."""
    if type(value) is tuple and value and all(type(d) is int and d >= 0 for d in value):
        return value
    if type(value) is int and value >= 0:
        return (value,)
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value,)
    try:
        dims = tuple(value)
    except TypeError:
        dims = None
    if (
        dims is None
        or isinstance(value, (str, bytes))
        or not all(isinstance(d, numbers.Integral) and not isinstance(d, (bool, np.bool_)) for d in dims)
    ):
        raise TypeError(f"{where}: normalized_shape must be an int or a sequence of ints, got {value!r}")
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        raise ValueError(f"{where}: normalized_shape must not be negative, got {shape}")
    if nonempty and not shape:
        raise ValueError(f"{where}: normalized_shape must have at least one dimension")
    return shape


def num_groups(value: Any, channels: int, where: str) -> int:
    """A group norm's ``num_groups``: an int >= 1 that divides ``channels``."""
    groups = integer(value, "num_groups", where)
    if groups < 1 or channels % groups != 0:
        raise ValueError(
            f"{where}: num_groups must be >= 1 and divide the number of channels {channels}, got {groups}"
        )
    return groups


def float_dtype(value: Any, where: str) -> np.dtype[Any]:
    """A ``dtype=`` argument: float32 or float64, as a NumPy dtype."""
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"{where}: dtype must be float32 or float64, got {value!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dt}")
    return dt


# ---- arrays ------------------------------------------------------------------------------


def not_masked(x: Any, name: str, where: str) -> None:
    """TypeError when ``x`` is a masked array (its mask would be ignored)."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{where}: {name} is a masked array, whose mask normreg would ignore: pass its "
            ".filled(value) or its .data"
        )


def array(x: Any, name: str, where: str) -> np.ndarray:
    """``x`` as an ndarray of any dtype (``np.asarray``), not None and not masked."""
    if type(x) is np.ndarray:
        return x
    not_masked(x, name, where)
    if x is None:
        raise TypeError(f"{where}: {name} must be an array, not None")
    try:
        return np.asarray(x)
    except Exception as exc:  # an object whose __array__ raises, a ragged list, ...
        raise TypeError(f"{where}: {name} could not be converted to an array: {exc}") from exc


def float_array(
    x: Any, name: str, where: str, dtype: npt.DTypeLike | None = None, dtype_from: str = "the other arguments"
) -> np.ndarray:
    """``x`` as a C-contiguous, aligned, native-order float32/float64 ndarray (``x`` itself
    when it is one), of dtype ``dtype`` when that is given (``dtype_from`` says why)."""
    if type(x) is not np.ndarray:
        x = array(x, name, where)
    dt = x.dtype
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        raise TypeError(f"{where}: {name} must have dtype float32 or float64, got {dt}")
    if not dt.isnative:
        x = x.astype(dt.newbyteorder("="))
        dt = x.dtype
    if dtype is not None and dt != dtype:
        raise TypeError(f"{where}: {name} has dtype {dt}, expected {np.dtype(dtype)} ({dtype_from})")
    if not (x.flags.c_contiguous and x.flags.aligned):
        x = np.require(x, requirements=("C", "A"))
    return x


def optional_float_array(
    x: Any, name: str, where: str, dtype: npt.DTypeLike | None, dtype_from: str
) -> np.ndarray | None:
    """:func:`float_array`, or None for None."""
    return None if x is None else float_array(x, name, where, dtype, dtype_from)


def check_shape(arr: np.ndarray, name: str, where: str, shape: Sequence[int], what: str) -> None:
    """ValueError unless ``arr`` has ``shape`` (``what`` says where that shape comes from)."""
    if arr.shape != tuple(shape):
        raise ValueError(f"{where}: {name} must have shape {tuple(shape)} ({what}), got {arr.shape}")


def inplace_array(
    arr: Any,
    name: str,
    where: str,
    shape: Sequence[int],
    dtype: npt.DTypeLike | None,
    *,
    dtype_from: str,
    shape_from: str,
    purpose: str = "updated in place",
) -> np.ndarray:
    """``arr``, an array the call writes into: an ndarray of ``dtype`` and ``shape``,
    C-contiguous, aligned and writeable (checked, never converted)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{where}: {name} must be a numpy.ndarray ({purpose}), got {type(arr).__name__}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{where}: {name} has dtype {arr.dtype}, expected {np.dtype(dtype)} ({dtype_from})")
    check_shape(arr, name, where, shape, shape_from)
    if not (arr.flags.c_contiguous and arr.flags.aligned and arr.flags.writeable):
        raise ValueError(f"{where}: {name} is {purpose} and must be C-contiguous, aligned and writeable")
    return arr


def samples(x: Any, y: Any, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A data set's ``x`` (the samples along its first axis) and ``y`` (one label per sample,
    or None) as arrays, which must have the same number of samples (ValueError)."""
    x = np.asarray(x)
    y = None if y is None else np.asarray(y)
    if x.ndim == 0:
        raise ValueError(f"{where}: x must have at least one dimension (the samples)")
    if y is not None and (y.ndim == 0 or y.shape[0] != x.shape[0]):
        raise ValueError(
            f"{where}: x and y must have the same number of samples, got "
            f"{x.shape[0]} and {y.shape[0] if y.ndim else 'a scalar'}"
        )
    return x, y


def out_array(out: Any, where: str, shape: Sequence[int], dtype: npt.DTypeLike) -> np.ndarray:
    """An ``out=`` array: checked before anything is computed or drawn."""
    return inplace_array(
        out,
        "out",
        where,
        shape,
        dtype,
        dtype_from="the output's dtype",
        shape_from="the output's shape",
        purpose="written in place",
    )


def inplace_input(x: Any, where: str) -> None:
    """For a module with ``inplace=True``: ValueError when x is an array that cannot be
    written (before anything is computed or saved)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        raise ValueError(
            f"{where}(inplace=True): x is read-only; pass a writeable array or use inplace=False"
        )


def out_target(out: np.ndarray | None, *inputs: Any) -> np.ndarray | None:
    """Where a kernel is to write the output for a checked ``out=``: ``out`` itself, or None
    (a fresh array, which :func:`out_result` copies into ``out``) when ``out`` may share
    memory with one of ``inputs``. A norm's kernel reads its input again after writing part
    of its output (the output pass after the statistics, a row or channel redone in double
    when its sums overflowed), so an ``out`` that overlaps the input gets the result a
    separate one would, as NumPy's ufuncs give."""
    if out is None:
        return None
    for a in inputs:
        if isinstance(a, np.ndarray) and np.may_share_memory(out, a):
            return None
    return out


def out_apart(out: Any, where: str, **inputs: Any) -> None:
    """ValueError when ``out`` shares memory with one of ``inputs`` (by name; None skipped),
    for the kernels that cannot compute into an overlapping ``out``: the products and the
    poolings write one thread's block of the output while another thread may still read what
    it overwrites (PyTorch refuses such an ``out`` too)."""
    if isinstance(out, np.ndarray):
        for name, a in inputs.items():
            if a is not None and np.may_share_memory(out, a):
                raise ValueError(f"{where}: out must not overlap {name}")


def out_result(
    out: np.ndarray | None, y: np.ndarray, given: np.ndarray | None, shape: Sequence[int]
) -> np.ndarray:
    """What a function given ``out=`` returns: ``given`` itself (the caller's array, as NumPy's
    ufuncs return it), holding the kernel's output ``y`` (copied into ``out``, ``given``
    reshaped for the kernel, when ``y`` was computed apart: :func:`out_target`); without
    ``out=``, ``y`` as ``shape``."""
    if out is not None and not np.may_share_memory(out, y):
        np.copyto(out.reshape(y.shape), y)
    return given if given is not None else y.reshape(shape)


def buffer_value(value: Any, current: Any, name: str, where: str) -> Any:
    """``value`` assigned to a module's registered buffer ``name`` whose array is
    ``current``: an ndarray of its dtype (TypeError) and shape (ValueError), kept as given
    when C-contiguous, aligned and writeable (the module updates it in place), else copied;
    a list or scalar is converted to the buffer's dtype. Anything goes when there is no
    current array (a buffer that is not tracked)."""
    if not isinstance(current, np.ndarray):
        return value
    dt, shape = current.dtype, current.shape
    expected = f"an ndarray of dtype {dt} and shape {shape}"
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{where}: {name} must be {expected}, got a masked array")
    if isinstance(value, np.ndarray):
        if value.dtype != dt:
            raise TypeError(f"{where}: {name} must be {expected}, got dtype {value.dtype}")
        arr = value
    else:
        try:
            arr = np.asarray(value, dtype=dt)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{where}: {name} must be {expected}, got {type(value).__name__}") from exc
    if arr.shape != shape:
        raise ValueError(f"{where}: {name} must have shape {shape}, got {arr.shape}")
    if not (arr.flags.c_contiguous and arr.flags.aligned and arr.flags.writeable):
        arr = np.array(arr, order="C", copy=True)
    return arr
