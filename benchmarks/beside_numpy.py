"""normreg's MLP training step right after another call: none, a sleep, a threaded product of
normreg's own OpenBLAS, a NumPy product (NumPy's OpenBLAS), each in alternation with the step;
in fresh processes with ``import numpy`` first and with ``import normreg`` first.

    python benchmarks/beside_numpy.py [--batch 128] [--threads 2] [--steps 40]

The environment is passed on as it is: run it again with, e.g., ``OPENBLAS_THREAD_TIMEOUT=28``
(OpenBLAS's default spin) or ``GLIBC_TUNABLES=...`` to see what a setting changes (see
docs/performance.md, "Beside NumPy's own products"). Also printed: the page faults a step
(``ru_minflt``), which glibc returning freed memory to the system shows up as.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = """
import sys
if sys.argv[1] == "normreg":
    import normreg  # before NumPy: NumPy's OpenBLAS then loads with the settings normreg made
import numpy as np
import normreg
import json, resource, statistics, time
sys.path.insert(0, sys.argv[2])
import training
from normreg import _C
batch, threads, steps = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
normreg.set_num_threads(threads)
step = training.normreg_step_fn(batch)
rng = np.random.default_rng(0)
a = rng.standard_normal((batch, 784), dtype=np.float32)
w = rng.standard_normal((784, 1024), dtype=np.float32)
y = np.empty((batch, 1024), np.float32)
before = {
    "nothing": lambda: None,
    "a 5 ms sleep": lambda: time.sleep(0.005),
    "normreg's threaded sgemm": lambda: _C.sgemm(False, False, a, w, y, 0.0),
    "NumPy's a @ w": lambda: a @ w,
}
out = {}
for name, call in before.items():
    for _ in range(5):
        call()
        step()
    times, f0 = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        call()
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / steps
    out[name] = (statistics.median(times), faults)
print(json.dumps(out))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args(argv)
    names = ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS", "GLIBC_TUNABLES")
    shown = {k: os.environ[k] for k in names if k in os.environ} or "as normreg sets it"
    print(f"# batch {args.batch}, {args.threads} threads, medians of {args.steps} steps")
    print(f"# environment: {shown}")
    print(f"{'imported first':<16}{'the call before each step':<28}{'step':>10}{'faults/step':>13}")
    for first in ("numpy", "normreg"):
        res = subprocess.run(
            [sys.executable, "-c", CHILD, first, HERE, str(args.batch), str(args.threads), str(args.steps)],
            capture_output=True,
            text=True,
            check=True,
        )
        for name, (t, faults) in json.loads(res.stdout.strip().splitlines()[-1]).items():
            print(f"{first:<16}{name:<28}{t * 1e3:>8.2f}ms{faults:>13.0f}")


if __name__ == "__main__":
    main()
