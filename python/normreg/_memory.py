"""Allocating large arrays: a ``MemoryError`` naming the size instead of an OOM kill.

Linux hands out memory it does not have (overcommit): ``np.empty`` of 18 GiB succeeds on a
machine with 16 GiB free, and the process is killed later, when the pages are written.
Arrays of :data:`CHECK_BYTES` and more (parameters, their initial values) are therefore
compared first with the memory the system can still give: ``MemAvailable`` plus
``SwapFree`` from ``/proc/meminfo``, and the room left under a cgroup memory limit
(v2 ``memory.max``, v1 ``memory.limit_in_bytes``) when there is one. Where none of these
can be read (not Linux), NumPy's own ``MemoryError`` is the only check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["CHECK_BYTES", "available_bytes", "empty", "full", "format_bytes"]

#: Allocations from this size on are checked against the available memory.
CHECK_BYTES = 64 << 20

_CGROUP_LIMITS = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def available_bytes() -> int | None:
    """The bytes this process can still get from the system, or None when unknown."""
    room: int | None = None
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        kib = int(fields["MemAvailable"].split()[0]) + int(fields.get("SwapFree", "0 kB").split()[0])
        room = kib * 1024
    except (OSError, KeyError, ValueError):
        pass
    for limit_path, usage_path in _CGROUP_LIMITS:
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and usage is not None and limit < (1 << 62):  # v1 "no limit" is ~2**63
            room = max(limit - usage, 0) if room is None else min(room, max(limit - usage, 0))
    return room


def format_bytes(n: int) -> str:
    """``n`` bytes, and in GiB or MiB: ``'68719476736 bytes (64.0 GiB)'``."""
    unit, scale = ("GiB", 1 << 30) if n >= 1 << 30 else ("MiB", 1 << 20)
    return f"{n} bytes ({n / scale:.1f} {unit})"


def empty(shape: Sequence[int], dtype: npt.DTypeLike, where: str) -> np.ndarray:
    """``np.empty(shape, dtype)``, or a MemoryError naming ``where`` and the size when the
    array does not fit in the memory available (checked before anything is allocated)."""
    dt = np.dtype(dtype)
    nbytes = math.prod(int(d) for d in shape) * dt.itemsize
    what = f"{where}: an array of shape {tuple(shape)} ({dt}) needs {format_bytes(nbytes)}"
    if nbytes >= CHECK_BYTES:
        room = available_bytes()
        if nbytes > np.iinfo(np.intp).max:
            raise MemoryError(f"{what}, more than an address space holds")
        if room is not None and nbytes > room:
            raise MemoryError(f"{what}, more than the {format_bytes(room)} of memory available")
    try:
        return np.empty(tuple(shape), dt)
    except MemoryError as exc:
        raise MemoryError(f"{what}, which could not be allocated ({exc})") from None


def full(shape: Sequence[int], fill_value: Any, dtype: npt.DTypeLike, where: str) -> np.ndarray:
    """:func:`empty` filled with ``fill_value``."""
    arr = empty(shape, dtype, where)
    arr.fill(fill_value)
    return arr
