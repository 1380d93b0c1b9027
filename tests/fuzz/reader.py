"""The fuzzer's bytes as a stream of choices, and the hostile objects the decoders pass.

Everything here is deterministic: the same bytes give the same choices, with or without
the fuzzer, so an input saved by the fuzzer replays exactly in a plain test. Reading past
the end gives zeros, and a zero byte always means the ordinary choice (a valid argument),
so short inputs are valid calls and the fuzzer spends its bytes on what it varies.
"""

from __future__ import annotations

import struct

import numpy as np


class Reader:
    """Reads choices from ``data`` front to back."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        pos = self.pos
        if pos < len(self.data):
            self.pos = pos + 1
            return self.data[pos]
        return 0

    def take(self, n: int) -> bytes:
        """``n`` bytes (zeros past the end)."""
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk + bytes(n - len(chunk))

    def below(self, n: int) -> int:
        """A number in [0, n)."""
        if n <= 256:
            return self.byte() % n
        return int.from_bytes(self.take(4), "little") % n

    def pick(self, seq):
        return seq[self.below(len(seq))]

    def rare(self, threshold: int = 224) -> bool:
        """True for bytes >= ``threshold`` (1 in 8 by default): a hostile choice."""
        return self.byte() >= threshold

    def double(self) -> float:
        """Any float64, NaN payloads and subnormals included."""
        return struct.unpack("<d", self.take(8))[0]


# ---- objects that misbehave -------------------------------------------------------------------


class HostileError(Exception):
    """Raised by the hostile objects' own methods; it may propagate unchanged (as with
    Python's builtins, which let the exception of an argument's ``__index__`` through)."""


class BadNumber:
    """Looks like a number to nobody: __bool__, __float__, __index__ raise."""

    def __bool__(self) -> bool:
        raise HostileError("__bool__")

    def __float__(self) -> float:
        raise HostileError("__float__")

    def __index__(self) -> int:
        raise HostileError("__index__")

    def __repr__(self) -> str:
        return "BadNumber()"


class RaisesOnArray:
    """An array-like whose conversion fails."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("__array__ refuses")

    def __repr__(self) -> str:
        return "RaisesOnArray()"


class Subclass(np.ndarray):
    """A plain ndarray subclass."""


# ---- scalars ----------------------------------------------------------------------------------

#: Real hyperparameters: ordinary, boundary and extreme values, NaN and infinities.
REALS = (
    0.5, 0.1, 0.0, 1.0, 0.9, 0.999, 1e-5, 1e-8, 2.0, -0.5, -1.0, 1.5, 100.0, 0.01, -0.0,
    1e-300, 5e-324, 1e300, 3.4e38, 6.9e38, -1e300, float("nan"), float("inf"), float("-inf"),
)  # fmt: skip
#: Integers around every width a binding converts to.
INT_EXTREMES = (0, -1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63), -(2**63) - 1, 10**30)
#: Extremes of a count of threads: out of range (threads are at most 1024), but never a valid
#: request for billions of them.
COUNT_EXTREMES = (0, -1, 1025, -(2**63), 2**63, 2**64, 10**30)
#: Extremes of a count of repetitions: out of range only. A valid large count is a request for
#: that much work (1025 repetitions of a 2**18-element LayerNorm ran 1.5-30 s instrumented),
#: which would stop the fuzzer as a timeout without anything being wrong.
REPS_EXTREMES = (0, -1, -(2**63), 2**63, 2**64, 10**30)
#: What no scalar argument accepts (or accepts only by Python's conversion rules).
HOSTILE_SCALARS = (
    None, "1", b"1", [1.0], (), {}, object(), BadNumber(), complex(1, 2), 2**1100,
    -(2**1100), np.array([1.0, 2.0]), np.float32(0.5), np.int64(3), np.array(2.0), True, 1.5,
)  # fmt: skip


def real(r: Reader) -> object:
    if r.rare():
        return r.pick(HOSTILE_SCALARS)
    b = r.byte()
    return r.double() if b >= 240 else REALS[b % len(REALS)]


def integer(r: Reader, valid: object, extremes: tuple = INT_EXTREMES) -> object:
    """``valid`` (the intended value) mostly, else an extreme or hostile one."""
    b = r.byte()
    if b < 192:
        return valid
    if b < 240:
        return extremes[b % len(extremes)]
    return r.pick(HOSTILE_SCALARS)


def unsigned(r: Reader, bits: int) -> object:
    b = r.byte()
    if b < 128:
        return int.from_bytes(r.take(bits // 8), "little")
    if b < 224:
        return r.pick((0, 1, 2**bits - 1, 2**bits, -1, 2 ** (bits - 1), 2**64, 2**128))
    return r.pick(HOSTILE_SCALARS)


def boolean(r: Reader, valid: bool) -> object:
    b = r.byte()
    if b < 192:
        return valid
    return r.pick(
        (not valid, 0, 1, 2, np.bool_(valid), [], [0], None, BadNumber(), np.array([1, 2]), "", "x")
    )
