"""What a kernel on 2 threads costs after the process was idle: BatchNorm1d's training forward
on 128 x 1024 float32 (a batch-128 MLP's activation), timed right after sleeping for a gap,
then once more. normreg's OpenMP threads spin about 0.3 ms after a parallel region, then sleep
(normreg._openmp); a longer gap makes the next regions wake them. Then the same for the
benchmark MLP's whole training step (benchmarks/training.py) with a pause before each step,
the main thread asleep or busy in Python, as a training loop's work between steps would be.

    python benchmarks/wake.py [--threads 2] [--calls 100] [--batch 128] [--steps 200]

Run it again with GOMP_SPINCOUNT=300000000 (threads that never sleep) to see the cost of the
wake-up alone.
"""

import argparse
import statistics
import time

import numpy as np
import training

import normreg
from normreg import nn


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128, help="the MLP step's batch")
    ap.add_argument("--steps", type=int, default=200, help="MLP steps a gap")
    args = ap.parse_args()
    normreg.set_num_threads(args.threads)
    x = np.random.default_rng(0).standard_normal((128, 1024), dtype=np.float32)
    bn = nn.BatchNorm1d(1024)
    print(f"{normreg.cpu_capability()}, {args.threads} threads, medians of {args.calls}")
    with normreg.no_grad():
        for gap in (0, 0.2e-3, 0.5e-3, 1e-3, 3e-3, 10e-3):
            first, second = [], []
            for _ in range(args.calls):
                if gap:
                    time.sleep(gap)
                t0 = time.perf_counter()
                bn(x)
                t1 = time.perf_counter()
                bn(x)
                first.append(t1 - t0)
                second.append(time.perf_counter() - t1)
            print(
                f"after {gap * 1e3:4.1f} ms idle: first call {statistics.median(first) * 1e6:7.1f} us, "
                f"the next {statistics.median(second) * 1e6:7.1f} us"
            )
    print(f"\nthe MLP training step at batch {args.batch}, medians of {args.steps} (the pause not counted)")
    step = training.normreg_step_fn(args.batch)
    for _ in range(20):
        step()
    for gap, how in ((0, ""), (0.5e-3, "busy"), (3e-3, "busy"), (0.5e-3, "asleep"), (3e-3, "asleep")):
        times = []
        for _ in range(args.steps):
            if how == "asleep":
                time.sleep(gap)
            elif how == "busy":  # the main thread working in Python; the other threads idle
                end = time.perf_counter() + gap
                while time.perf_counter() < end:
                    pass
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        label = f"after {gap * 1e3:4.1f} ms {how}" if gap else "back to back"
        print(f"{label:<22} step {statistics.median(times) * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
