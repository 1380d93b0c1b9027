"""Replays fuzz inputs through their target without any fuzzing library, on any build.

    python tests/fuzz/replay.py TARGET FILE...

prints ``START<TAB>file`` before each input and ``OK<TAB>file<TAB>seconds`` or
``FINDING<TAB>file<TAB>what`` after it, then ``DONE``: a process that dies (a crash, a
sanitizer report) or hangs leaves the input it was running as the last START.
``tests/reliability/test_fuzz_corpus.py`` runs it on the committed corpus.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def limit_memory(gib: int = 4) -> None:
    """An address-space limit, so an allocation of a size that is not there fails as on a
    machine without the memory (not under AddressSanitizer, whose shadow memory needs
    terabytes of address space: there ASAN_OPTIONS=max_allocation_size_mb does it)."""
    import resource

    if "asan" in os.environ.get("LD_PRELOAD", ""):
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = gib << 30
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _selftest(data: bytes) -> None:
    if data == b"segfault":
        import ctypes

        ctypes.string_at(0)
    raise RuntimeError("selftest")


def main() -> None:
    target, files = sys.argv[1], sys.argv[2:]
    warnings.simplefilter("ignore")
    limit_memory()
    if target == "selftest":  # proves the replay test sees a crash
        fn = _selftest
    else:
        import targets

        targets.setup(target)
        fn = targets.TARGETS[target]
    out = sys.stdout
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        print(f"START\t{path}", file=out, flush=True)
        t = time.perf_counter()
        try:
            fn(data)
        except BaseException as exc:  # a Finding or an exception the target let out
            what = f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("\t", " ")[:2000]
            print(f"FINDING\t{path}\t{what}", file=out, flush=True)
            continue
        print(f"OK\t{path}\t{time.perf_counter() - t:.3f}", file=out, flush=True)
    print("DONE", file=out, flush=True)


if __name__ == "__main__":
    main()
