"""Decoding the fuzzer's bytes into one call of a binding function (``normreg._C``).

A function is described by a :class:`Spec`: its dimensions (sizes chosen from the bytes,
including 0 and sizes of 2**31 and more that only an empty array can have) and its
arguments, each an array of a shape computed from the dimensions (:class:`Arr`) or a scalar
(:class:`Num`). Each argument is first made valid, then, when the bytes say so, replaced by a
hostile variant: another dtype, rank or size, a strided, Fortran-ordered, negatively
strided, read-only, misaligned or byte-swapped view, a masked array or subclass, another
argument of the same call (aliasing), an empty array with a huge dimension, a broadcast view
of 2**40 elements, None, a list, a string, an object whose conversion raises... Values are
normal, zero, constant, NaN/Inf/extremes or the fuzzer's raw bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
from reader import INT_EXTREMES, BadNumber, RaisesOnArray, Reader, Subclass, boolean, integer, real, unsigned

#: Sizes of one dimension: small and boundary ones (vector widths, tiles), then huge ones.
SIZES = (2, 1, 3, 4, 5, 0, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257,
         511, 1024, 1025, 4096, 65536)  # fmt: skip
HUGE = (2**31, 2**31 + 1, 2**32, 2**40, 2**62, 2**63 - 1)
#: At most this many elements in all the (non-huge) dimensions of a call together: enough for
#: the 1 MiB outputs normreg takes from its pool of blocks, and for several threads.
BUDGET = 1 << 18
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e38, -1e38, 1e-45, 1.0, -1.0, 3e-39, 65504.0])


@dataclass
class Arr:
    name: str
    dtype: str  # "f": the call's float dtype; else a NumPy dtype ("i8", "u1", "f8", "f4")
    shape: Callable[[Any], tuple]
    optional: bool = False  # None is a valid value
    written: bool = False  # the function writes it: out=, accumulators, state
    fill: str = "float"  # "float", "labels" (int64 in [0, d.K)), "positions" ([0, d.H d.W)), "bytes"


@dataclass
class Num:
    name: str
    kind: str  # "real", "int", "bool", "u32", "u64"
    valid: Callable[[Any], Any] = lambda d: 1  # the intended value of "int" and "bool"
    # "int": the extreme values tried (counts of work or threads exclude large valid ones)
    extremes: tuple = INT_EXTREMES
    real_valid: bool = False  # "real": ``valid`` is a value that passes the binding's checks
    sizes_output: bool = False  # "int": a dimension of an output (huge beyond BUDGET)


@dataclass
class PerParam:
    """The arguments of a multi-parameter call (the optimizers' ``*_steps``): one tuple per
    entry of ``args`` (an Arr or a Num), each with an entry per parameter; every parameter
    has its own shape ``X`` (the Arr shapes read ``d.X``)."""

    args: list[Arr | Num]


@dataclass
class Spec:
    name: str
    dims: dict[str, Callable[[Reader, Any], Any]] = field(default_factory=dict)
    args: list[Arr | Num | PerParam] = field(default_factory=list)
    float_dtypes: tuple[str, ...] = ("f4", "f8")


class Budget:
    """Sizes drawn for one call, their product kept under BUDGET (huge ones excepted)."""

    def __init__(self) -> None:
        self.used = 1
        self.huge = False

    def size(self, r: Reader) -> int:
        b = r.byte()
        if b >= 244:
            self.huge = True
            return HUGE[b % len(HUGE)]
        return self.count(SIZES[b % len(SIZES)])

    def count(self, n: int) -> int:
        """``n``, made smaller if needed to keep the product of the call's sizes in BUDGET."""
        if n > 1 and self.used * n > BUDGET:
            n = max(1, BUDGET // self.used)
        self.used *= max(n, 1)
        return n


def size(r: Reader, d: Any) -> int:
    return d.budget.size(r)


def shape(r: Reader, d: Any) -> tuple:
    """A shape of 0 to 4 dimensions."""
    return tuple(d.budget.size(r) for _ in range(r.byte() % 5))


def flag(r: Reader, d: Any) -> bool:
    return bool(r.byte() & 1)


def small(*choices: int) -> Callable[[Reader, Any], int]:
    """One of ``choices`` (a kernel size, an output size), counted in the call's budget."""

    def choose(r: Reader, d: Any) -> int:
        return d.budget.count(r.pick(choices))

    return choose


def divisor_of(dim: str) -> Callable[[Reader, Any], int]:
    """A number of groups that divides dimension ``dim`` (any positive one when it is 0)."""

    def choose(r: Reader, d: Any) -> int:
        n = getattr(d, dim)
        cands = [g for g in (1, 2, 3, 4, 5, 8, 16, 64) if n == 0 or n % g == 0] + ([n] if n > 0 else [])
        return r.pick(cands)

    return choose


# ---- arrays -------------------------------------------------------------------------------------


_NORMAL: dict[int, np.ndarray] = {}


def _normal(seed: int) -> np.ndarray:
    """4099 standard normal values (repeated to fill larger arrays: a prime period)."""
    if seed not in _NORMAL:
        _NORMAL[seed] = np.random.default_rng(seed).standard_normal(4099)
    return _NORMAL[seed]


def _fill(r: Reader, a: np.ndarray, how: str, d: Any) -> None:
    n = a.size
    if n == 0:
        return
    flat = a.reshape(-1)
    kind = r.byte()
    if how in ("labels", "positions"):
        k = max(d.H * d.W if how == "positions" else getattr(d, "K", 1), 1)
        if kind < 192:
            flat[:] = np.arange(n) * (r.byte() + 1) % k
        else:
            flat[:] = np.resize(np.array([-1, k, 2**63 - 1, -(2**63), 0], np.int64), n)
        return
    if how == "bytes" or kind >= 224:  # the fuzzer's raw bytes, repeated
        raw = r.take(min(64, a.nbytes))
        flat.view(np.uint8)[:] = np.resize(np.frombuffer(raw, np.uint8), a.nbytes)
        return
    sel = kind % 6
    if sel == 0:
        flat[:] = np.resize(_normal(r.byte()), n)
    elif sel == 1:
        flat[:] = 0
    elif sel == 2:
        flat[:] = SPECIALS[r.byte() % len(SPECIALS)]
    elif sel == 3:
        flat[:] = np.resize(SPECIALS[np.arange(r.byte() % 7, len(SPECIALS))], n)
    elif sel == 4:
        flat[:] = np.resize(_normal(r.byte()), n) * 1e30
    else:
        flat[:] = np.arange(n) % 7 - 3


def _make(r: Reader, shp: tuple, dtype: str, d: Any, how: str) -> np.ndarray:
    """A valid array: C-contiguous, aligned, writeable; a zero-stride view (read-only) when
    the shape is too big to allocate."""
    if math.prod(shp) > 8 * BUDGET:  # decided by the size, never by what malloc says
        d.budget.huge = True
        try:
            return np.broadcast_to(np.zeros((), dtype), shp)
        except ValueError:  # more elements than an array can index
            return np.zeros((1,) * len(shp), dtype)
    try:
        a = np.empty(shp, dtype)
    except ValueError:  # empty, but the other dimensions overflow: NumPy refuses it
        return np.empty((0,) * len(shp), dtype)
    _fill(r, a, how, d)
    return a


def _misaligned(a: np.ndarray) -> np.ndarray:
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


def _strided(a: np.ndarray) -> np.ndarray:
    if a.ndim == 0:
        return a
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    view = big[..., ::2]
    view[...] = a
    return view


def _readonly(a: np.ndarray) -> np.ndarray:
    c = a.copy()
    c.flags.writeable = False
    return c


def _resized(r: Reader, a: np.ndarray) -> np.ndarray:
    if a.ndim == 0:
        return np.zeros(1, a.dtype)
    shp = list(a.shape)
    shp[r.below(a.ndim)] += r.pick((1, -1, 2))
    return np.zeros([max(s, 0) for s in shp], a.dtype)


def _huge_view(r: Reader, a: np.ndarray) -> np.ndarray:
    shp = list(a.shape) or [1]
    shp[r.below(len(shp))] = 2**40
    return np.broadcast_to(np.zeros((), a.dtype), tuple(shp))


def _empty_huge(r: Reader, a: np.ndarray) -> np.ndarray:
    """Of the same rank, one dimension 0 and another huge (1-D: just empty)."""
    if a.ndim < 2:
        return np.empty((0,) * a.ndim, a.dtype)
    shp = list(a.shape)
    i = r.below(len(shp))
    shp[i] = 0
    shp[(i + 1 + r.below(len(shp) - 1)) % len(shp)] = r.pick((2**40, 2**62, 2**31))
    return np.empty(tuple(shp), a.dtype)


def _fewer_dims(a: np.ndarray) -> np.ndarray:
    if a.ndim == 0:
        return a.reshape(1)
    if a.ndim > 1:
        return a.reshape(-1)
    return a[:1].reshape(()) if a.size else np.zeros((), a.dtype)


def _normreg_owned(a: np.ndarray) -> np.ndarray:
    """A copy made by normreg (large ones come from its pool of output blocks)."""
    from normreg import _C

    if a.dtype.kind != "f" or not a.dtype.isnative or a.dtype.itemsize not in (4, 8):
        return a
    return _C.dropout_forward(np.ascontiguousarray(a), 0.0, 0, 0, None)[0]


#: Hostile replacements of a valid array ``a`` (``prev``: the earlier arguments' arrays).
VARIANTS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("None", lambda r, a, prev: None),
    ("other float dtype", lambda r, a, prev: a.astype("f8" if a.dtype == np.float32 else "f4")),
    ("float16", lambda r, a, prev: a.astype(np.float16)),
    ("int32", lambda r, a, prev: a.astype(np.int32, casting="unsafe")),
    ("int64", lambda r, a, prev: a.astype(np.int64, casting="unsafe")),
    ("uint8", lambda r, a, prev: a.astype(np.uint8, casting="unsafe")),
    ("complex64", lambda r, a, prev: a.astype(np.complex64)),
    ("bool", lambda r, a, prev: a.astype(bool)),
    ("object", lambda r, a, prev: a.astype(object)),
    ("byteswapped", lambda r, a, prev: a.astype(a.dtype.newbyteorder())),
    ("strided", lambda r, a, prev: _strided(a)),
    ("Fortran", lambda r, a, prev: np.asfortranarray(a)),
    ("reversed", lambda r, a, prev: a.copy()[::-1] if a.ndim else a),
    ("read-only", lambda r, a, prev: _readonly(a)),
    ("misaligned", lambda r, a, prev: _misaligned(a)),
    ("one more dimension", lambda r, a, prev: a[None]),
    ("one dimension less", lambda r, a, prev: _fewer_dims(a)),
    ("resized", _resized),
    ("0-d", lambda r, a, prev: np.zeros((), a.dtype)),
    ("list", lambda r, a, prev: a.tolist() if a.size <= 64 else [1.0, 2.0]),
    ("float", lambda r, a, prev: 1.0),
    ("str", lambda r, a, prev: "x"),
    ("raises on __array__", lambda r, a, prev: RaisesOnArray()),
    ("BadNumber", lambda r, a, prev: BadNumber()),
    ("alias", lambda r, a, prev: r.pick(prev) if prev else a),
    ("huge broadcast view", _huge_view),
    ("empty with a huge dimension", _empty_huge),
    ("masked", lambda r, a, prev: np.ma.array(a)),
    ("subclass", lambda r, a, prev: a.view(Subclass)),
    ("normreg-owned copy", lambda r, a, prev: _normreg_owned(a)),
    ("memoryview", lambda r, a, prev: memoryview(a) if a.flags.c_contiguous else b""),
)  # fmt: skip


# ---- calls --------------------------------------------------------------------------------------


class Call:
    """One decoded call: ``fn(*args, **kwargs)`` and what the checks need to know."""

    def __init__(
        self, name: str, args: list, kwargs: dict, written: list[bool], huge: bool, notes: list[str]
    ):
        self.name, self.args, self.kwargs, self.written = name, args, kwargs, written
        self.huge = huge  # a size too large to allocate is involved: MemoryError is fair
        self.notes = notes  # the hostile variants chosen

    def __repr__(self) -> str:
        def show(v: Any) -> str:
            if isinstance(v, np.ndarray):
                f = v.flags
                layout = "C" if f.c_contiguous else "F" if f.f_contiguous else "strided"
                extra = "" if f.writeable else " read-only"
                extra += "" if f.aligned else " misaligned"
                return f"{type(v).__name__}({v.dtype.str}{list(v.shape)} {layout}{extra})"
            text = repr(v)
            return text if len(text) < 60 else text[:57] + "..."

        args = ", ".join(show(a) for a in self.args)
        kw = "".join(f", {k}={show(v)}" for k, v in self.kwargs.items())
        notes = f"  [{'; '.join(self.notes)}]" if self.notes else ""
        return f"_C.{self.name}({args}{kw}){notes}"


def _scalar(r: Reader, num: Num, d: Any) -> Any:
    if num.kind == "real":
        return num.valid(d) if num.real_valid and r.byte() < 128 else real(r)
    if num.kind == "int":
        return integer(r, num.valid(d), num.extremes)
    if num.kind == "bool":
        return boolean(r, bool(num.valid(d)))
    return unsigned(r, 32 if num.kind == "u32" else 64)


def decode(spec: Spec, r: Reader) -> Call:
    """The call of ``spec``'s function that the rest of the bytes describe."""
    with np.errstate(all="ignore"):  # casts of NaN to int in the variants
        return _decode(spec, r)


def _decode(spec: Spec, r: Reader) -> Call:
    d = SimpleNamespace(budget=Budget())
    d.dtype = spec.float_dtypes[r.byte() % len(spec.float_dtypes)]
    for dim, choose in spec.dims.items():
        setattr(d, dim, choose(r, d))
    args: list[Any] = []
    written: list[bool] = []
    notes: list[str] = []
    arrays: list[np.ndarray] = []
    for a in spec.args:
        if isinstance(a, PerParam):
            per = _per_param(r, a, d, arrays, notes)
            args += per
            written += [isinstance(e, Arr) and e.written for e in a.args]
            continue
        value = _argument(r, a, d, arrays, notes)
        written.append(isinstance(a, Arr) and a.written)
        args.append(value)
    kwargs: dict[str, Any] = {}
    shape_of_call = r.byte()
    if shape_of_call >= 248:  # a wrong number of arguments, or keywords
        how = shape_of_call % 4
        if how == 0 and args:
            args.pop()
            written.pop()
        elif how == 1:
            args.append(None)
            written.append(False)
        elif how == 2 and args:
            kwargs["x"] = args.pop()
            written.pop()
        else:
            args = args[: len(args) // 2]
            written = written[: len(args)]
        notes.append(f"{len(args)} positional arguments" + (", a keyword" if kwargs else ""))
    return Call(spec.name, args, kwargs, written, d.budget.huge, notes)


def _argument(r: Reader, a: Arr | Num, d: Any, arrays: list[np.ndarray], notes: list[str]) -> Any:
    """One argument: a number, or an array that may be turned into a hostile variant."""
    if isinstance(a, Num):
        value = _scalar(r, a, d)
        if a.sizes_output and isinstance(value, int) and value > BUDGET:
            d.budget.huge = True
        return value
    value = _make(r, a.shape(d), d.dtype if a.dtype == "f" else a.dtype, d, a.fill)
    if a.optional and r.byte() & 1:
        value = None
    elif r.rare(236):
        label, variant = VARIANTS[r.below(len(VARIANTS))]
        try:
            value = variant(r, value, arrays)
        except (ValueError, TypeError, MemoryError):
            pass  # a variant this array cannot have: keep it valid
        else:
            notes.append(f"{a.name}: {label}")
            if "huge" in label:
                d.budget.huge = True
    if isinstance(value, np.ndarray):
        arrays.append(value)
    return value


def _per_param(r: Reader, a: PerParam, d: Any, arrays: list[np.ndarray], notes: list[str]) -> list[Any]:
    """The tuples of a PerParam: 0 to 3 parameters, each of a shape of its own; rarely one
    tuple made a list or a parameter shorter (the tuples' own checks)."""
    columns: list[list[Any]] = [[] for _ in a.args]
    for _ in range(r.below(4)):
        d.X = shape(r, d)
        for col, e in zip(columns, a.args):
            col.append(_argument(r, e, d, arrays, notes))
    out: list[Any] = [tuple(c) for c in columns]
    if out and r.rare(240):
        k = r.below(len(out))
        how = r.byte() % 3
        out[k] = list(out[k]) if how == 0 else out[k][:-1] if how == 1 else None
        what = ("a list", "one entry short", "None")[how]
        notes.append(f"{a.args[k].name}s: {what}")
    return out


def _arrays_of(v: Any) -> list[np.ndarray]:
    """The ndarrays an argument is or holds (a multi-parameter call's tuples)."""
    if isinstance(v, np.ndarray):
        return [v]
    if isinstance(v, (tuple, list)):
        return [e for e in v if isinstance(e, np.ndarray)]
    return []


def snapshot(call: Call) -> list[tuple[int, np.ndarray, bytes]]:
    """The bytes of every (not too large) ndarray argument, to check what a call wrote."""
    out = []
    for i, arg in enumerate(call.args):
        for v in _arrays_of(arg):
            if v.size and v.nbytes <= 64 * BUDGET and 0 not in v.strides:
                out.append((i, v, v.tobytes()))
    return out


def changed(call: Call, snap: list, failed: bool, result: Any) -> list[str]:
    """Arguments modified by the call: any of them when it failed, else those it does not
    write (unless they share memory with one it writes or with its result)."""
    writes = [v for arg, w in zip(call.args, call.written) if w for v in _arrays_of(arg)]
    results = result if isinstance(result, tuple) else (result,)
    writes += [v for v in results if isinstance(v, np.ndarray)]
    bad = []
    for i, v, before in snap:
        if not failed and (call.written[i] or any(np.may_share_memory(v, w) for w in writes)):
            continue
        if v.tobytes() != before:
            bad.append(f"argument {i} ({'failed call' if failed else 'not an output'})")
    return bad
