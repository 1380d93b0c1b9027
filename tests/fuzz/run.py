"""Coverage-guided fuzzing of one target (``targets.py``) with atheris (libFuzzer).

    python tests/fuzz/run.py TARGET [libFuzzer options] [corpus directories]

``scripts/fuzz.sh`` runs it on the instrumented build (the extension compiled by clang with
``-fsanitize=fuzzer-no-link,address,undefined``, libFuzzer and the sanitizers' runtime
preloaded), which is what gives the binding target its coverage: the C edges. For the
file targets the Python code that parses the file is instrumented here: normreg's reader
and the standard library and NumPy modules it drives.
"""

from __future__ import annotations

import os
import sys
import traceback
import types
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

#: The Python modules whose branches count as coverage, per target.
PYTHON_COVERAGE = {
    "binding": [],
    "load": ["normreg.serialization", "zipfile", "numpy.lib._format_impl", "numpy.lib._utils_impl"],
    "idx": ["normreg.data", "gzip", "_compression"],
}


def _instrument_module(atheris: types.ModuleType, name: str) -> int:
    """Instruments the functions and methods defined in module ``name`` (already imported,
    so ``atheris.instrument_imports`` could not); returns how many."""
    import importlib
    import inspect

    try:
        mod = importlib.import_module(name)
    except ImportError:
        return 0
    count = 0

    def visit(obj: object) -> None:
        nonlocal count
        if inspect.isfunction(obj) and obj.__module__ == name:
            atheris.instrument_func(obj)
            count += 1

    for obj in list(vars(mod).values()):
        if inspect.isclass(obj) and obj.__module__ == name:
            for attr in list(vars(obj).values()):
                if isinstance(attr, (staticmethod, classmethod)):
                    attr = attr.__func__
                if isinstance(attr, property):
                    for f in (attr.fget, attr.fset, attr.fdel):
                        visit(f)
                else:
                    visit(attr)
        else:
            visit(obj)
    return count


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in PYTHON_COVERAGE:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(PYTHON_COVERAGE)}}} [libFuzzer options] [corpus...]")
    target = sys.argv.pop(1)
    import atheris
    import numpy  # noqa: F401  (imported before instrumenting: NumPy's own code is not measured)
    import targets

    targets.setup(target)
    n = sum(_instrument_module(atheris, m) for m in PYTHON_COVERAGE[target])
    print(f"INFO: target {target}: {n} Python functions instrumented", file=sys.stderr)
    atheris.Setup(sys.argv, _aborting(targets.TARGETS[target]))
    atheris.Fuzz()


def _aborting(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``fn``, reporting what it lets out (a Finding or any exception) with its traceback and
    SIGABRT, which libFuzzer turns into a crash- input. (atheris's own report goes through
    exit(), where libFuzzer's -timeout alarm can kill the process before it saves the input.)"""

    def target(data: bytes) -> None:
        try:
            fn(data)
        except KeyboardInterrupt:
            raise
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os.abort()

    return target


if __name__ == "__main__":
    main()
