"""Fuzz cases for the binding (every function of ``normreg._C``, found with ``dir``), the
functional API and the modules: wrong types, wrong argument counts, None, huge and
negative sizes, mismatched shapes, non-arrays and objects whose ``__array__`` raises.

The hostile values are in fuzz_values.py, the cases of the binding in fuzz_binding.py, those
of the functional API, modules and optimizers in fuzz_api.py. The case list is
deterministic, so a child process can rebuild it and run a slice:

    python tests/reliability/fuzz_cases.py START STOP

prints one line per case, ``index<TAB>status<TAB>detail``, then ``DONE``. A case passes
when it returns or raises TypeError, ValueError or OverflowError; a child that dies (a
signal, a sanitizer report) or hangs fails the case it was running.
"""

import os
import sys

from fuzz_api import edge_cases, functional_cases, module_cases, optimizer_cases
from fuzz_binding import c_cases
from fuzz_values import HostileError

ALLOWED = (TypeError, ValueError, OverflowError)


def all_cases():
    """[(label, thunk, memory_error_ok)] in a fixed order."""
    cases = c_cases() + functional_cases() + module_cases() + optimizer_cases() + edge_cases()
    if os.environ.get("NORMREG_FUZZ_SELFTEST"):  # proves the harness sees a crash
        import ctypes

        cases.append(("selftest: a segfault", lambda: ctypes.string_at(0), False))
        cases.append(("selftest: after the segfault", lambda: None, False))
    return cases


def _limit_memory(gib=4):
    """Caps the address space so a runaway allocation is a MemoryError, not the machine's
    memory (not under AddressSanitizer, which reserves terabytes of shadow memory)."""
    import resource

    if "asan" in os.environ.get("LD_PRELOAD", ""):
        return
    limit = gib << 30
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def run(start, stop):
    import warnings

    warnings.simplefilter("ignore")
    _limit_memory()
    cases = all_cases()
    out = sys.stdout
    for i in range(start, min(stop, len(cases))):
        label, thunk, mem_ok = cases[i]
        print(f"{i}\tSTART", file=out, flush=True)
        try:
            thunk()
            status, detail = "OK", ""
        except ALLOWED as exc:
            status, detail = "OK", type(exc).__name__
        except HostileError:
            status, detail = "OK", "HostileError propagated"
        except MemoryError as exc:
            status, detail = ("OK" if mem_ok else "BAD"), f"MemoryError: {exc}"
        except BaseException as exc:
            status, detail = "BAD", f"{type(exc).__name__}: {exc}"
        detail = detail.replace("\n", " ").replace("\t", " ")[:300]
        print(f"{i}\t{status}\t{detail}", file=out, flush=True)
    print("DONE", file=out, flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["count"]:
        print(len(all_cases()))
    else:
        run(int(sys.argv[1]), int(sys.argv[2]))
