"""normreg: normalization and regularization layers with C kernels on NumPy buffers.

Explicit forward/backward modules (``normreg.nn``), gradient recording on or off
(``normreg.no_grad``), stateless functions (``normreg.functional``), seeds
(``normreg.manual_seed``) and threads (``normreg.set_num_threads``); optimizers and
schedules (``normreg.optim``), initializers (``normreg.init``) and checkpoints
(``normreg.save`` / ``normreg.load``).
"""

from __future__ import annotations

__version__ = "0.1.0"

import warnings as _warnings

# OpenMP's idle threads busy-wait for milliseconds by default. Importing _openmp sets
# OMP_WAIT_POLICY=PASSIVE with a short spin (about 0.3 ms) before the extension loads its
# runtime, unless the environment chose a policy, and a short spin for its OpenBLAS's threads
# (_openmp.py says why and what it measured).
from . import _openmp

# isort: split
from . import _C, _config, _validation, conventions, functional, grad_mode, init, nn, optim, random, testing
from . import serialization as serialization
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .random import Generator, default_generator, initial_seed, manual_seed, seed
from .serialization import CheckpointError, load, save

_HAS_OPENMP = _C.build_info()["openmp_version"] > 0
_warned_no_openmp = False


def set_num_threads(n: int) -> None:
    """Threads used by normreg's kernels and by its OpenBLAS (one setting for both).

    In a build without OpenMP (``show_config()`` says "enabled: no") the kernels run on one
    thread whatever n is, and n > 1 warns once (RuntimeWarning); OpenBLAS still uses n.
    n must be in [1, 1024]: otherwise ValueError (TypeError for a non-int)."""
    global _warned_no_openmp
    n = _validation.integer(n, "n", "set_num_threads", low=1, high=_validation.MAX_THREADS)
    _C.set_num_threads(n)
    if n > 1 and not _HAS_OPENMP and not _warned_no_openmp:
        _warned_no_openmp = True
        _warnings.warn(
            f"set_num_threads({n}): normreg was built without OpenMP, so its kernels run on one "
            f"thread (OpenBLAS uses {n}); README's 'Install' section tells how to build with OpenMP",
            RuntimeWarning,
            stacklevel=2,
        )


def get_num_threads() -> int:
    """Threads used by normreg's kernels and OpenBLAS (default: OMP_NUM_THREADS or the cores;
    1 in a build without OpenMP)."""
    return _C.get_num_threads()


def cpu_capability() -> str:
    """The CPU tier whose kernels this process runs: ``"avx512"``, ``"avx2"`` or
    ``"baseline"`` on x86-64, ``"neon"`` on aarch64, ``"baseline"`` elsewhere.

    Chosen once, when normreg is imported: the best tier the CPU supports, or the one the
    environment variable ``NORMREG_CPU_CAPABILITY`` names if the CPU supports it (a lower
    tier, e.g. to compare tiers or to rule one out); a name the CPU cannot run, or that is
    not a tier, gives a RuntimeWarning and the best tier. Every tier computes the same dropout
    masks, and the same results within the tests' tolerances."""
    return _C.cpu_capability()


def show_config(mode: str = "stdout") -> dict[str, dict[str, object]] | None:
    """Print how normreg was built and what it runs on, as ``numpy.show_config()`` does.

    The active CPU tier and the tiers this CPU supports; the compiler, its version and the
    flags the extension was built with (per tier too); OpenMP (enabled, version, runtime
    library, wait policy); BLAS (library, version, configuration, threads, the spin of its
    idle threads); Python and NumPy.
    ``mode="stdout"`` prints it; ``mode="dicts"`` returns it as a dict of sections instead."""
    mode = _validation.choice(mode, "mode", "show_config", ("stdout", "dicts"))
    build = _C.build_info()
    config = _config.describe(__version__, _C.cpu_capability(), _C.cpu_tiers(), build, _C.blas_info())
    if config["OpenMP"]["enabled"]:
        config["OpenMP"]["wait_policy"] = _openmp.POLICY.describe(build["openmp_library"])
    config["BLAS"]["thread_timeout"] = _openmp.BLAS_SPIN.describe(config["BLAS"]["path"])
    if mode == "dicts":
        return config
    print(_config.format_config(config))
    return None


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
    "cpu_capability",
    "show_config",
    "__version__",
]
__all__ += ["init", "optim", "save", "load", "CheckpointError"]
__all__ += ["grad_mode", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]


def empty_cache() -> None:
    """Give the cached memory of freed large output arrays back to the system.

    Outputs of 128 KiB and more come from a pool of blocks that stay mapped, so a training
    loop does not page-fault on every new array; a block returns to the pool only when its
    array (and every view of it) has been freed, so arrays you hold are never reused. The
    pool keeps at most 1 GiB; this releases all of it (e.g. after training)."""
    _C.empty_cache()


__all__ += ["empty_cache"]
