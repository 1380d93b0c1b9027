"""OpenMP's wait policy, and the spin of OpenBLAS's idle threads (at the end): set before
normreg's runtime and its OpenBLAS load, and reported by show_config().

libgomp, and LLVM's libomp, read ``OMP_WAIT_POLICY`` once, when they load; without it their
idle threads spin for milliseconds after each parallel region (libgomp about 3 ms, libomp
200 ms). normreg's kernels and Linear's matrix products run on these threads (one pool: the
products are single-threaded BLAS calls on each thread's block), but other threads of the
process, such as OpenBLAS's own in a NumPy product, would find the cores taken. So normreg
sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment chose a policy, before its runtime
loads.

A thread that sleeps at once costs the next parallel region its wake-up: tens of
microseconds on an idle core (measured: with 2 threads, ReLU was slower than on one thread
up to 16 MiB of traffic). So with the policy, normreg also asks for a short spin before
sleeping, unless the environment set one: ``GOMP_SPINCOUNT=30000`` (libgomp: about 0.3 ms;
it does not spin when it has more threads than cores) and ``KMP_BLOCKTIME=1`` (LLVM's
libomp: 1 ms). Back-to-back kernels then find their threads awake, and a thread that is
not needed again soon sleeps before it takes a core from anything else.

PyTorch's wheel brings its own ``libgomp.so.1``: one soname, so whichever library loads
first serves both, with the settings it read when it loaded; after ``import torch``,
normreg's kernels run on torch's runtime with its defaults, which
``show_config()`` says. Both import orders were measured at the same speed
(docs/performance.md).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

ENV = "OMP_WAIT_POLICY"
# the short spin before sleeping, per runtime (see above)
SPIN = {"GOMP_SPINCOUNT": "30000", "KMP_BLOCKTIME": "1"}
_RUNTIMES = ("libgomp", "libomp", "libiomp")


@functools.cache
def _mapped_at_import() -> tuple[str, ...]:
    """The shared libraries mapped into this process when normreg was imported (Linux; ()
    elsewhere): /proc/self/maps read once, for both checks below."""
    found: list[str] = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1]
                if ".so" in os.path.basename(path) and path not in found:
                    found.append(path)
    except OSError:
        pass
    return tuple(found)


def _mapped(matches: Callable[[str], bool]) -> list[str]:
    """Those of the libraries mapped at import whose file name ``matches``."""
    return [p for p in _mapped_at_import() if matches(os.path.basename(p))]


def loaded_runtimes() -> list[str]:
    """The OpenMP runtime libraries mapped into this process when normreg was imported."""
    return _mapped(lambda name: name.startswith(_RUNTIMES))


def loaded_openblas() -> list[str]:
    """The OpenBLAS libraries mapped into this process when normreg was imported (NumPy's, or
    a system one)."""
    return _mapped(lambda name: "openblas" in name)


def _among(path: str | None, paths: list[str]) -> bool:
    """Whether ``path`` is one of ``paths`` (the same file)."""
    if not path or not paths:
        return False
    real = os.path.realpath(path)
    return any(os.path.realpath(p) == real for p in paths)


class WaitPolicy:
    """What normreg found and did about the wait policy when it was imported."""

    def __init__(self) -> None:
        self.preset = os.environ.get(ENV)  # the user's own choice, if any
        # runtimes that read the environment before normreg could set it
        self.earlier = [] if self.preset else loaded_runtimes()
        if not self.preset:
            os.environ[ENV] = "PASSIVE"
            # the spin settings normreg sets (any the user set are left as they are)
            self.spin = {k: v for k, v in SPIN.items() if k not in os.environ}
            os.environ.update(self.spin)
        else:
            self.spin = {}

    def loaded_earlier(self, runtime: str | None) -> str | None:
        """``runtime`` (the one normreg's kernels run on) when it loaded before normreg set
        the policy (another library's, as torch's libgomp); else None."""
        return runtime if _among(runtime, self.earlier) else None

    def describe(self, runtime: str | None) -> str:
        """One line for ``show_config()``."""
        if self.preset:
            return f"{self.preset} (from the environment)"
        if self.loaded_earlier(runtime):
            return "the runtime's defaults: it loaded before normreg (another library's, e.g. PyTorch's)"
        spin = ", ".join(f"{k}={v}" for k, v in self.spin.items())
        return "PASSIVE (set by normreg before its runtime loaded)" + (
            f", after a short spin ({spin})" if spin else ""
        )


# OpenBLAS's idle threads spin for 2**OPENBLAS_THREAD_TIMEOUT cycles after each threaded
# product: 2**28 by default, about 0.1 s. normreg's own OpenBLAS runs threaded products for
# the convolutions; meanwhile the next kernel's OpenMP threads found the cores taken (on 2
# cores, a training step right after such a product took 5.5x its time; docs/performance.md,
# "Beside NumPy's own products"). 2**20 cycles (about 0.3 ms at 3 GHz) is the short spin
# asked of OpenMP above.
BLAS_TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT"
BLAS_TIMEOUT = "20"


class BlasTimeout:
    """OpenBLAS's spin before its idle threads sleep: set before normreg's OpenBLAS loads
    (it reads the environment once, when it loads), unless the environment chose one. A
    system OpenBLAS may be shared with a NumPy that loaded it first; then it kept its
    default, which ``describe`` says."""

    def __init__(self) -> None:
        self.preset = os.environ.get(BLAS_TIMEOUT_ENV)
        # OpenBLAS libraries that read the environment before normreg could set it
        self.earlier = [] if self.preset is not None else loaded_openblas()
        if self.preset is None:
            os.environ[BLAS_TIMEOUT_ENV] = BLAS_TIMEOUT

    def describe(self, library: str | None = None) -> str:
        """One line for ``show_config()``; ``library`` the path of the OpenBLAS normreg's
        products run on."""
        if self.preset is not None:
            return f"{BLAS_TIMEOUT_ENV}={self.preset} (from the environment)"
        if _among(library, self.earlier):
            return (
                "OpenBLAS's default (2**28 cycles of spinning): its library loaded before normreg "
                f"could set {BLAS_TIMEOUT_ENV} (shared with another module, e.g. NumPy)"
            )
        return (
            f"{BLAS_TIMEOUT_ENV}={BLAS_TIMEOUT} (set by normreg before its OpenBLAS loaded): idle "
            f"threads sleep after 2**{BLAS_TIMEOUT} cycles of spinning (OpenBLAS's default 2**28)"
        )


# what normreg's import found and did (normreg/__init__.py imports this before the extension)
POLICY = WaitPolicy()
BLAS_SPIN = BlasTimeout()
