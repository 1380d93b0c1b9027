"""The fuzz targets: each takes the fuzzer's bytes, runs them through normreg and raises
:class:`Finding` (or lets an unexpected exception out) when normreg misbehaves.

* ``binding``: one call of a function of ``normreg._C`` decoded from the bytes
  (``binding_specs.py``). Expected: a result, TypeError, ValueError, OverflowError, the
  exception of an argument's own ``__bool__``/``__float__``/``__index__`` (HostileError),
  and MemoryError only when the call involves a size too large to allocate. Checked too: a
  call that fails writes nothing; a call that succeeds writes only its outputs.
* ``load``: ``normreg.load`` of the bytes as a file object. Expected: a result or
  CheckpointError. Checked too: the arrays loaded add up to at most the file's size, and the
  same bytes read from an offset of a file object give the same outcome.
* ``idx``: ``normreg.data.read_idx`` of the bytes as a file object. Expected: an array or
  ValueError. Checked too: a raw file's array holds exactly the bytes after the header, a
  gzip file's at most 1032 times the file; the array is native-endian and writeable; the
  same outcome from an offset.

Crashes, sanitizer reports and hangs are what the fuzzer itself detects. These functions
use no fuzzing library: ``tests/reliability/test_fuzz_corpus.py`` replays the corpus
through them on any build.
"""

from __future__ import annotations

import io
from typing import Any, Callable

import numpy as np
from binding_specs import SPECS, check_complete
from calls import Call, changed, decode, snapshot
from reader import HostileError, Reader

#: The thread count every binding input starts from (and is restored to).
THREADS = 2
#: Junk in front of the bytes for the offset checks: a file object read from its position.
PREFIX = b"JUNK\x00PK\x05\x06"


class Finding(AssertionError):
    """normreg did something these targets do not allow."""


# ---- normreg._C ---------------------------------------------------------------------------------


def decode_binding(data: bytes) -> tuple[Call, int]:
    """The call the bytes describe and the thread count to run it with: byte 0 picks the
    function (its number in SPECS), byte 1 the thread count, the rest the arguments."""
    r = Reader(data)
    first = r.byte()
    spec = SPECS[first if first < len(SPECS) else first % len(SPECS)]
    threads = (THREADS, 1, 3, 4)[r.byte() % 4]
    return decode(spec, r), threads


def binding(data: bytes) -> None:
    from normreg import _C

    call, threads = decode_binding(data)
    fn = getattr(_C, call.name)
    before = snapshot(call)
    _C.set_num_threads(threads)
    try:
        result = fn(*call.args, **call.kwargs)
    except (TypeError, ValueError, OverflowError, HostileError) as exc:
        _check_writes(call, before, True, None, exc)
        return
    except MemoryError as exc:
        if not call.huge:
            raise Finding(f"{call}: MemoryError without a huge size: {exc}") from exc
        _check_writes(call, before, True, None, exc)
        return
    except BaseException as exc:
        raise Finding(f"{call}: unexpected {type(exc).__name__}: {exc}") from exc
    finally:
        _C.set_num_threads(THREADS)
    _check_writes(call, before, False, result, None)


def _check_writes(call: Call, before: list, failed: bool, result: Any, exc: BaseException | None) -> None:
    bad = changed(call, before, failed, result)
    if bad:
        what = f"raised {type(exc).__name__}: {exc}" if exc else "succeeded"
        raise Finding(f"{call} {what} but modified {', '.join(bad)}")


# ---- files ----------------------------------------------------------------------------------------


def _outcome(read: Callable[[io.BytesIO], Any], data: bytes, offset: bool, expected: type) -> tuple:
    """("ok", value) or ("refused", message) for the bytes in a file object (after
    PREFIX, read from there, when ``offset``); other exceptions propagate as Findings."""
    f = io.BytesIO(PREFIX + data if offset else data)
    if offset:
        f.seek(len(PREFIX))
    try:
        return ("ok", read(f))
    except expected as exc:
        return ("refused", str(exc))
    except BaseException as exc:
        where = " at an offset" if offset else ""
        raise Finding(f"{len(data)} bytes{where}: unexpected {type(exc).__name__}: {exc}") from exc


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (dict, list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            return False
        if isinstance(a, dict):
            return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
        return all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


def _compare(name: str, data: bytes, plain: tuple, shifted: tuple) -> None:
    if plain[0] != shifted[0] or (plain[0] == "ok" and not _same(plain[1], shifted[1])):
        raise Finding(
            f"{name} of {len(data)} bytes: {plain[0]} from offset 0 but {shifted[0]} from offset "
            f"{len(PREFIX)} ({str(plain[1])[:200]} / {str(shifted[1])[:200]})"
        )


def _arrays(obj: Any) -> list[np.ndarray]:
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [a for v in obj for a in _arrays(v)]
    return []


def load(data: bytes) -> None:
    import normreg

    plain = _outcome(normreg.load, data, False, normreg.CheckpointError)
    shifted = _outcome(normreg.load, data, True, normreg.CheckpointError)
    _compare("normreg.load", data, plain, shifted)
    if plain[0] == "ok":
        total = sum(a.nbytes for a in _arrays(plain[1]))
        if total > len(data):
            raise Finding(f"normreg.load of {len(data)} bytes returned {total} bytes of arrays")


def idx(data: bytes) -> None:
    from normreg.data import read_idx

    plain = _outcome(read_idx, data, False, ValueError)
    shifted = _outcome(read_idx, data, True, ValueError)
    _compare("read_idx", data, plain, shifted)
    if plain[0] != "ok":
        return
    a = plain[1]
    if not isinstance(a, np.ndarray) or not a.dtype.isnative or not a.flags.writeable:
        raise Finding(f"read_idx of {len(data)} bytes returned {type(a).__name__} {getattr(a, 'dtype', '')}")
    if data[:2] == b"\x1f\x8b":
        if a.nbytes > 1032 * len(data):
            raise Finding(f"read_idx of a {len(data)}-byte gzip file returned {a.nbytes} bytes")
    elif a.nbytes != len(data) - 4 - 4 * a.ndim:
        raise Finding(f"read_idx of {len(data)} raw bytes returned {a.nbytes} bytes of shape {a.shape}")


TARGETS: dict[str, Callable[[bytes], None]] = {"binding": binding, "load": load, "idx": idx}


def setup(target: str) -> None:
    """What a target needs before its first input (also checks the binding's decoders)."""
    if target == "binding":
        check_complete()
        from normreg import _C

        _C.set_num_threads(THREADS)
