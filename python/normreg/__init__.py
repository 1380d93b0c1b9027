"""normreg: normalization and regularization layers with C kernels on NumPy buffers.

Explicit forward/backward modules (``normreg.nn``), gradient recording on or off
(``normreg.no_grad``), stateless functions (``normreg.functional``), seeds
(``normreg.manual_seed``) and threads (``normreg.set_num_threads``); optimizers and
schedules (``normreg.optim``), initializers (``normreg.init``) and checkpoints
(``normreg.save`` / ``normreg.load``).
"""

__version__ = "0.1.0"

import os as _os

# OpenMP's idle threads busy-wait by default (libgomp: OMP_WAIT_POLICY unset spins for a
# while after each parallel region). Between two kernels those spinning threads compete for
# the cores with OpenBLAS's own threads, which made a training step several times slower on
# 2 cores. Passive waiting costs a few microseconds per region; set OMP_WAIT_POLICY
# yourself, before importing normreg, to choose otherwise.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _C, _validation, conventions, functional, grad_mode, init, nn, optim, random, testing
from . import serialization as serialization
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .random import Generator, default_generator, initial_seed, manual_seed, seed
from .serialization import CheckpointError, load, save


def set_num_threads(n: int) -> None:
    """Threads used by normreg's kernels and by its OpenBLAS (one setting for both)."""
    _C.set_num_threads(_validation.integer(n, "n", "set_num_threads", low=1))


def get_num_threads() -> int:
    """Threads used by normreg's kernels and OpenBLAS (default: OMP_NUM_THREADS or the cores)."""
    return _C.get_num_threads()


__all__ = [
    "functional",
    "nn",
    "random",
    "conventions",
    "testing",
    "Generator",
    "manual_seed",
    "initial_seed",
    "seed",
    "default_generator",
    "set_num_threads",
    "get_num_threads",
    "__version__",
]
__all__ += ["init", "optim", "save", "load", "CheckpointError"]
__all__ += ["grad_mode", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]


def empty_cache() -> None:
    """Give the cached memory of freed large output arrays back to the system.

    Outputs of 1 MiB and more come from a pool of blocks that stay mapped, so a training
    loop does not page-fault on every new array; a block returns to the pool only when its
    array (and every view of it) has been freed, so arrays you hold are never reused. The
    pool keeps at most 1 GiB; this releases all of it (e.g. after training)."""
    _C.empty_cache()


__all__ += ["empty_cache"]
