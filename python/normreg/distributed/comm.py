"""The communicator: MPI through mpi4py, or a one-process stand-in.

normreg uses only a handful of buffer collectives of an mpi4py communicator
(``Allreduce``, ``Allgather``, ``Bcast``, ``Get_rank``, ``Get_size``, ``Abort``), always on
contiguous NumPy arrays, so every message is one MPI call on a flat buffer.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Protocol

import numpy as np

__all__ = [
    "init",
    "world",
    "is_available",
    "LocalComm",
    "get_rank",
    "get_world_size",
    "local_size",
    "install_abort_handler",
    "abort_on_failure",
    "set_timeout",
    "get_timeout",
    "allreduce_sum_",
    "allgather",
    "broadcast_",
    "all_reduce_mean",
]


class Comm(Protocol):
    """What normreg uses of a communicator: an mpi4py ``Comm`` or a :class:`LocalComm`."""

    def Get_rank(self) -> int: ...
    def Get_size(self) -> int: ...
    def Allreduce(self, sendbuf: Any, recvbuf: Any, op: Any = ...) -> Any: ...
    def Allgather(self, sendbuf: Any, recvbuf: Any) -> Any: ...
    def Bcast(self, buf: Any, root: int = ...) -> Any: ...
    def Barrier(self) -> Any: ...
    def Abort(self, errorcode: int = ...) -> Any: ...


#: The methods of :class:`Comm`, which a ``comm`` argument must have.
_COMM_METHODS = ("Get_rank", "Get_size", "Allreduce", "Allgather", "Bcast", "Barrier", "Abort")


def _check_comm(comm: Any, where: str) -> None:
    """TypeError naming ``comm`` unless it has every method of :class:`Comm`."""
    missing = [name for name in _COMM_METHODS if not callable(getattr(comm, name, None))]
    if missing:
        raise TypeError(
            f"{where}: comm must be an mpi4py communicator or a LocalComm (an object with the "
            f"methods {', '.join(_COMM_METHODS)}) or None, got {type(comm).__name__} without "
            f"{', '.join(missing)}"
        )


def is_available() -> bool:
    """True when mpi4py (and the MPI library it needs) can be imported."""
    try:  # optional dependency: imported on first use, here and in _mpi
        from mpi4py import MPI  # noqa: F401
    except Exception:  # ImportError, or the MPI library missing at load time
        return False
    return True


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "normreg.distributed needs mpi4py and an MPI library: pip install 'normreg[mpi]' "
            "(mpi4py with MPICH from PyPI), or build mpi4py against your cluster's MPI "
            "(see README, 'Distributed training')"
        ) from exc
    return MPI


class LocalComm:
    """A communicator of one process (rank 0 of 1): collectives are copies.

    Lets :class:`SyncBatchNorm`, :class:`DistributedDataParallel` and the sampler run
    unchanged without MPI (``world()`` returns one when mpi4py is missing)."""

    rank = 0
    size = 1

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def Allreduce(self, sendbuf: Any, recvbuf: Any, op: Any = None) -> None:
        if not _is_in_place(sendbuf):
            np.copyto(recvbuf, sendbuf)

    def Allgather(self, sendbuf: Any, recvbuf: Any) -> None:
        np.copyto(recvbuf.reshape(np.shape(sendbuf)), sendbuf)

    def Bcast(self, buf: Any, root: int = 0) -> None:
        pass

    def Barrier(self) -> None:
        pass

    def Abort(self, errorcode: int = 1) -> None:
        os._exit(errorcode)

    def __repr__(self) -> str:
        return "LocalComm()"


def _is_in_place(buf: Any) -> bool:
    return not isinstance(buf, np.ndarray)


_world: Comm | None = None


def world() -> Comm:
    """MPI's COMM_WORLD when mpi4py is available, else a :class:`LocalComm`."""
    global _world
    if _world is None:
        _world = _mpi().COMM_WORLD if is_available() else LocalComm()
    return _world


def get_rank(comm: Comm | None = None) -> int:
    return (comm if comm is not None else world()).Get_rank()


def get_world_size(comm: Comm | None = None) -> int:
    return (comm if comm is not None else world()).Get_size()


def local_size(comm: Comm | None = None) -> int:
    """How many ranks of ``comm`` share this node (collective: every rank must call it).
    Useful to divide the node's cores among them (``normreg.set_num_threads``)."""
    comm = comm if comm is not None else world()
    if comm.Get_size() == 1:
        return 1
    node = comm.Split_type(_mpi().COMM_TYPE_SHARED)  # type: ignore[attr-defined]  # MPI only
    try:
        return node.Get_size()
    finally:
        node.Free()


# Seconds between printing the reason and MPI_Abort: the launcher forwards a rank's output
# asynchronously, and an abort tears the job down at once, which could lose the message.
_ABORT_GRACE = 0.5


def _abort(
    comm: Comm,
    code: int,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    """Print the failure with the rank, then abort every rank of the job."""
    rank = comm.Get_rank()
    try:
        if exc_type is not None and not issubclass(exc_type, SystemExit):
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            sys.stderr.write("".join(f"[rank {rank}] {line}" for line in text.splitlines(True)))
        what = (
            f"exit status {code}"
            if exc_type is None or issubclass(exc_type, SystemExit)
            else f"uncaught {exc_type.__name__}"
        )
        sys.stderr.write(f"[rank {rank}] normreg.distributed: {what}, aborting all {comm.Get_size()} ranks\n")
        sys.stderr.flush()
        time.sleep(_ABORT_GRACE)
    finally:
        comm.Abort(code)
        os._exit(code)  # should Abort return, this rank must not go on


def install_abort_handler(comm: Comm | None = None) -> None:
    """Make an uncaught exception on any rank end the whole job instead of a hang.

    Replaces ``sys.excepthook`` with one that prints the traceback (prefixed with the
    rank) and calls ``comm.Abort(1)``: MPI then kills every rank, and ``mpiexec`` exits
    with a non-zero status. Without it, the other ranks would wait forever in their next
    collective for the rank that died. A rank killed by a signal is handled by
    ``mpiexec`` itself, which tears the job down. ``sys.exit(n)`` does not reach the
    hook: run the program inside :func:`abort_on_failure` for that.
    """
    comm = comm if comm is not None else world()
    if comm.Get_size() == 1:
        return

    def abort_on_exception(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        _abort(comm, 1, exc_type, exc, tb)

    sys.excepthook = abort_on_exception


@contextlib.contextmanager
def abort_on_failure(comm: Comm | None = None) -> Iterator[Comm]:
    """Run a block whose failure on any rank must end the whole job::

        with dist.abort_on_failure():
            main()

    An exception, or ``sys.exit`` with a non-zero status, leaving the block on one rank
    aborts every rank (``comm.Abort``) with that status instead of leaving the others
    waiting in a collective. A no-op with one process.
    """
    comm = comm if comm is not None else world()
    try:
        yield comm
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code and comm.Get_size() > 1:
            if not isinstance(exc.code, int):
                sys.stderr.write(f"{exc.code}\n")
            _abort(comm, code, SystemExit, exc, None)
        raise
    except BaseException:
        if comm.Get_size() > 1:
            _abort(comm, 1, *sys.exc_info())
        raise


def init(comm: Comm | None = None, abort_on_error: bool = True, timeout: float | None = None) -> Comm:
    """Start data-parallel work: returns the communicator (MPI COMM_WORLD by default).

    Needs mpi4py when run under ``mpiexec`` with more than one rank; run alone without
    mpi4py it returns a :class:`LocalComm`. With ``abort_on_error`` (default), an uncaught
    exception on any rank aborts the whole job (:func:`install_abort_handler`).
    ``timeout`` (seconds, default None: no limit) sets :func:`set_timeout`. A ``comm`` that
    is neither an mpi4py communicator nor an object with the methods of a :class:`LocalComm`
    is a ``TypeError``, raised before anything is installed.
    """
    if comm is None:
        comm = world()
        if isinstance(comm, LocalComm) and _launched_by_mpiexec():
            _mpi()  # several ranks were started but mpi4py is missing: say so
    else:
        _check_comm(comm, "init")
    if abort_on_error:
        install_abort_handler(comm)
    if timeout is not None:
        set_timeout(timeout)
    return comm


_timeout: float | None = None


def set_timeout(seconds: float | None) -> None:
    """Abort the job when one of normreg's collectives waits longer than ``seconds``
    (None: wait forever, the default).

    A rank that dies is caught by MPI and ``mpiexec``; one that hangs (a deadlock, a
    stalled file system, a rank stopped in a debugger) is not: with a timeout, the
    collectives of :mod:`normreg.distributed` (gradient reduction, SyncBatchNorm,
    broadcasts) run non-blocking and poll, and a rank still waiting after ``seconds``
    prints which collective timed out and calls ``Abort``. Polling costs a little
    latency; choose a limit far above a normal step (minutes)."""
    global _timeout
    if seconds is not None:
        seconds = float(seconds)
        if not seconds > 0:
            raise ValueError(f"timeout must be positive seconds or None, got {seconds}")
    _timeout = seconds


def get_timeout() -> float | None:
    return _timeout


def _wait(comm: Any, request: Any, what: str) -> None:
    """Complete a non-blocking collective, aborting the job after the timeout."""
    assert _timeout is not None
    start = time.monotonic()
    deadline = start + _timeout
    pause = 0.0
    while not request.Test():
        now = time.monotonic()
        if now > deadline:
            rank = comm.Get_rank()
            sys.stderr.write(
                f"[rank {rank}] normreg.distributed: {what} did not complete within "
                f"{_timeout:g} s (another rank failed or hangs); aborting all "
                f"{comm.Get_size()} ranks\n"
            )
            sys.stderr.flush()
            time.sleep(_ABORT_GRACE)
            comm.Abort(1)
            os._exit(1)  # should Abort return, this rank must not go on
        if now - start > 1e-3:  # past the first millisecond, stop spinning
            pause = min(max(pause * 2, 1e-5), 1e-3)
            time.sleep(pause)


def _launched_by_mpiexec() -> bool:
    return any(
        k in os.environ
        for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")
    )


def allreduce_sum_(comm: Any, buf: np.ndarray) -> np.ndarray:
    """Sum ``buf`` (a C-contiguous ndarray) over the ranks, in place; returns it."""
    if comm.Get_size() > 1:
        MPI = _mpi()
        if _timeout is None:
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        else:
            _wait(comm, comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM), "an all-reduce")
    return buf


def allgather(comm: Any, sendbuf: Any) -> np.ndarray:
    """Every rank's ``sendbuf`` (contiguous ndarray) stacked: shape (world size, *shape)."""
    sendbuf = np.ascontiguousarray(sendbuf)
    out = np.empty((comm.Get_size(),) + sendbuf.shape, dtype=sendbuf.dtype)
    if comm.Get_size() == 1:
        out[0] = sendbuf
    elif _timeout is None:
        comm.Allgather(sendbuf, out)
    else:
        _wait(comm, comm.Iallgather(sendbuf, out), "an all-gather")
    return out


def broadcast_(comm: Any, buf: np.ndarray, root: int = 0) -> np.ndarray:
    """Overwrite ``buf`` (C-contiguous ndarray) on every rank with root's; returns it."""
    if comm.Get_size() > 1:
        if _timeout is None:
            comm.Bcast(buf, root=root)
        else:
            _wait(comm, comm.Ibcast(buf, root=root), "a broadcast")
    return buf


def all_reduce_mean(values: Any, counts: float, comm: Comm | None = None) -> Any:
    """The mean over all ranks of per-rank means ``values`` weighted by ``counts``.

    ``values``: a float or 1-D array of this rank's means (e.g. loss and accuracy over its
    shard), ``counts``: the number of examples they average over (0 is allowed: the rank
    then contributes nothing, even if its means are NaN). One all-reduce; with one rank,
    none, and the values come back as they are.
    """
    comm = comm if comm is not None else world()
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if comm.Get_size() == 1:  # one rank: its means are the result, without a rounding
        out = v if counts > 0 else np.full(v.size, np.nan)
        return float(out[0]) if np.ndim(values) == 0 else out
    buf = np.empty(v.size + 1)
    buf[:-1] = v * counts if counts > 0 else 0.0
    buf[-1] = counts
    allreduce_sum_(comm, buf)
    out = buf[:-1] / buf[-1] if buf[-1] > 0 else np.full(v.size, np.nan)
    return float(out[0]) if np.ndim(values) == 0 else out
