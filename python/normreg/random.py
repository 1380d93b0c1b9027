"""Random number generation: seeds, generators and the default generator.

A :class:`Generator` is a seed and a counter. Each use takes the next counter value,
so a draw depends only on (seed, counter) -- never on the number of threads:

* dropout masks come from Philox4x32-10 in C, keyed by the seed, with the counter
  selecting the call and the element index selecting the byte (docs/conventions.md);
* initializers and data shuffling draw from a NumPy generator made from
  ``(seed, counter)`` (:meth:`Generator.numpy`).

``normreg.manual_seed(s)`` reseeds the default generator, which every module uses
unless it is given its own ``generator=``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _validation as V

__all__ = ["Generator", "default_generator", "manual_seed", "initial_seed", "seed"]

_SEED_MOD = 1 << 64
# The same initial seed PyTorch's default CPU generator has, so runs are reproducible
# without any call to manual_seed.
_DEFAULT_SEED = 67280421310721


_WORD = 1 << 32
_WIDE_TAG = 0x9E3779B9  # the fifth entropy word of the streams of seeds or offsets >= 2**32


def _check_seed(seed: Any) -> int:
    return V.integer(seed, "seed", "Generator") % _SEED_MOD


class Generator:
    """A counter-based random generator: ``Generator(seed=None)``.

    ``seed=None`` takes fresh entropy from the operating system.
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> Generator:
        """Reseed (``seed`` is reduced modulo 2**64) and restart the counter; returns self."""
        self._seed = _check_seed(seed)
        self._offset = 0
        return self

    def initial_seed(self) -> int:
        """The seed in use (given to the constructor or :meth:`manual_seed`, or drawn for
        ``seed=None``), modulo 2**64."""
        return self._seed

    def next_offset(self) -> int:
        """The counter value for the next draw (and advance the counter)."""
        offset = self._offset
        self._offset = (offset + 1) % _SEED_MOD  # a 64-bit counter, as the kernels take it
        return offset

    def numpy(self) -> np.random.Generator:
        """A fresh ``numpy.random.Generator`` for the next draw, determined by (seed, counter):
        a different pair, a different stream."""
        seed, offset = self._seed, self.next_offset()
        if seed < _WORD and offset < _WORD:
            return np.random.default_rng([seed, offset])
        # NumPy's SeedSequence splits an int into 32-bit words and pads the list with zero
        # words, so [s + (o << 32), 0] and [s, o] were one stream (seed 2**32 repeated seed
        # 0's second draw): above 32 bits, fixed-width words and a fifth word no pair
        # below has (the pairs below keep their streams)
        words = [seed % _WORD, seed // _WORD, offset % _WORD, offset // _WORD, _WIDE_TAG]
        return np.random.default_rng(words)

    def get_state(self) -> np.ndarray:
        """The state as an int64 array ``[seed, offset]`` (seed stored as its bit pattern)."""
        return np.array([self._seed, self._offset], dtype=np.uint64).view(np.int64)

    def set_state(self, state: npt.ArrayLike) -> Generator:
        """Restore a state of :meth:`get_state`: ``[seed, offset]``, an array or a pair of
        ints (each any 64-bit pattern: a negative int64 is the unsigned value of its bits, as
        :meth:`get_state` gives an offset from 2**63); returns self."""
        if isinstance(state, (list, tuple)) and len(state) == 2 and all(V.is_integer(v) for v in state):
            seed, offset = (int(v) for v in state)  # Python ints as they are (2**64 - 1 too)
        else:
            arr = np.asarray(state)
            if arr.shape != (2,) or arr.dtype.kind not in "iu":
                raise ValueError(f"state must be 2 integers [seed, offset], got {state!r}")
            seed, offset = (int(v) for v in arr)
        if not -(1 << 63) <= seed < _SEED_MOD:
            raise ValueError(f"state: the seed must be a 64-bit integer, got {seed}")
        if not -(1 << 63) <= offset < _SEED_MOD:
            raise ValueError(f"state: the offset must be a 64-bit integer, got {offset}")
        self._seed, self._offset = seed % _SEED_MOD, offset % _SEED_MOD
        return self

    def __repr__(self) -> str:
        return f"Generator(seed={self._seed}, offset={self._offset})"


default_generator = Generator(_DEFAULT_SEED)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (dropout masks, initializers, shuffling); returns it."""
    return default_generator.manual_seed(seed)


def initial_seed() -> int:
    """The seed of the default generator."""
    return default_generator.initial_seed()


def seed() -> int:
    """Seed the default generator from fresh entropy; returns the seed."""
    s = int(np.random.SeedSequence().entropy) % _SEED_MOD  # type: ignore[arg-type]
    default_generator.manual_seed(s)
    return s


def as_generator(value: Any, where: str, name: str = "generator") -> Generator:
    """``value`` (a :class:`Generator`), or the default generator for None; TypeError
    naming ``where`` and ``name`` for anything else (a ``generator=`` argument)."""
    if value is None:
        return default_generator
    if not isinstance(value, Generator):
        raise TypeError(f"{where}: {name} must be a normreg.Generator or None, got {type(value).__name__}")
    return value
