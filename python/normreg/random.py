"""Random number generation: seeds, generators and the default generator.

A :class:`Generator` is a seed and a counter. Each use takes the next counter value,
so a draw depends only on (seed, counter) -- never on the number of threads:

* dropout masks come from Philox4x32-10 in C, keyed by the seed, with the counter
  selecting the call and the element index selecting the word;
* initializers and data shuffling draw from a NumPy generator made from
  ``(seed, counter)`` (:meth:`Generator.numpy`).

``normreg.manual_seed(s)`` reseeds the default generator, which every module uses
unless it is given its own ``generator=``.
"""
import numpy as np

__all__ = ["Generator", "default_generator", "manual_seed", "initial_seed", "seed"]

_SEED_MOD = 1 << 64
# The same initial seed PyTorch's default CPU generator has, so runs are reproducible
# without any call to manual_seed.
_DEFAULT_SEED = 67280421310721


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return int(seed) % _SEED_MOD


class Generator:
    """A counter-based random generator: ``Generator(seed=None)``.

    ``seed=None`` takes fresh entropy from the operating system.
    """

    def __init__(self, seed=None):
        if seed is None:
            seed = np.random.SeedSequence().entropy
        self.manual_seed(seed)

    def manual_seed(self, seed):
        """Reseed (``seed`` is reduced modulo 2**64) and restart the counter; returns self."""
        self._seed = _check_seed(seed)
        self._offset = 0
        return self

    def initial_seed(self):
        """The seed in use (given to the constructor or :meth:`manual_seed`, or drawn for
        ``seed=None``), modulo 2**64."""
        return self._seed

    def next_offset(self):
        """The counter value for the next draw (and advance the counter)."""
        offset = self._offset
        self._offset += 1
        return offset

    def numpy(self):
        """A fresh ``numpy.random.Generator`` for the next draw, determined by (seed, counter)."""
        return np.random.default_rng([self._seed, self.next_offset()])

    def get_state(self):
        """The state as an int64 array ``[seed, offset]`` (seed stored as its bit pattern)."""
        return np.array([self._seed, self._offset], dtype=np.uint64).view(np.int64)

    def set_state(self, state):
        state = np.asarray(state)
        if state.shape != (2,) or state.dtype.kind not in "iu":
            raise ValueError(f"state must be 2 integers [seed, offset], got {state!r}")
        seed, offset = (int(v) for v in state.astype(np.int64).view(np.uint64))
        self._seed, self._offset = seed, offset
        return self

    def __repr__(self):
        return f"Generator(seed={self._seed}, offset={self._offset})"


default_generator = Generator(_DEFAULT_SEED)


def manual_seed(seed):
    """Seed the default generator (dropout masks, initializers, shuffling); returns it."""
    return default_generator.manual_seed(seed)


def initial_seed():
    """The seed of the default generator."""
    return default_generator.initial_seed()


def seed():
    """Seed the default generator from fresh entropy; returns the seed."""
    s = int(np.random.SeedSequence().entropy) % _SEED_MOD
    default_generator.manual_seed(s)
    return s
