"""Run with `mpiexec -n 2 python check_failure.py MODE`: rank 1 fails while rank 0 waits in
a collective. The job must end (non-zero exit) instead of hanging.
MODE: raise (an uncaught exception), kill (SIGKILL), exit (sys.exit(3) inside
normreg.distributed.abort_on_failure), hang (rank 1 sleeps; the collective timeout of
2 s ends the job)."""

import os
import signal
import sys
import time

import numpy as np

from normreg import distributed as dist
from normreg import nn


def main(mode):
    comm = dist.init(timeout=2.0 if mode == "hang" else None)
    rank = comm.Get_rank()
    model = dist.DistributedDataParallel(nn.Sequential(nn.Linear(4, 3), dist.SyncBatchNorm(3)), comm)
    x = np.ones((5, 4), dtype=np.float32) * (rank + 1)
    model(x)  # a collective every rank joins
    if rank == 1:
        if mode == "raise":
            raise RuntimeError("rank 1 failed on purpose")
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "exit":
            sys.exit(3)
        if mode == "hang":
            time.sleep(60)
    model(x)  # rank 0 waits here for rank 1, which never comes
    print(f"rank {rank}: should not get here", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "exit":
        with dist.abort_on_failure():
            sys.exit(main(sys.argv[1]))
    sys.exit(main(sys.argv[1]))
