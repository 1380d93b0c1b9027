"""normreg and PyTorch in one process (a notebook comparing both): the MLP training step
of both, timed in the same rounds, with ``import torch`` before and after ``import normreg``
and with the OpenMP wait policy left to the libraries or set by the user.

    python benchmarks/beside_torch.py [--batch 128] [--threads 2] [--budget 3]

Each case runs in a fresh process (the import order and the environment only act when the
libraries load). PyTorch's wheel brings its own ``libgomp.so.1``; whichever of the two is
loaded first serves both libraries (one soname, one OpenMP runtime), with the wait policy
it read from the environment when it loaded. normreg sets ``OMP_WAIT_POLICY=PASSIVE``
unless the environment sets a policy, before its runtime loads: that covers the runtime
only when normreg is imported first. The table gives, per case, the runtime normreg's
kernels run on, the two steps and their ratio (see docs/performance.md).
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [  # (name, import torch first, environment)
    ("normreg first, default environment", False, {}),
    ("torch first, default environment", True, {}),
    ("normreg first, OMP_WAIT_POLICY=PASSIVE", False, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("torch first, OMP_WAIT_POLICY=PASSIVE", True, {"OMP_WAIT_POLICY": "PASSIVE"}),
]


def child(torch_first, batch, threads, budget):
    """One case, in this process: imports in the order asked, then the interleaved timing."""
    if torch_first:
        import torch

        import normreg
    else:
        import normreg  # isort: skip (the order is the point)
        import torch
    sys.path.insert(0, HERE)
    import common
    import kernels
    import training

    kernels.torch = torch
    normreg.set_num_threads(threads)
    torch.set_num_threads(threads)
    fns = {
        "normreg": training.normreg_step_fn(batch),
        "torch": training.torch_step_fn(torch, batch),
        "floor": training.gemm_floor_fn(batch),
    }
    t = common.measure_apart(fns, ("floor",), sample_time=0.02, budget=budget, min_rounds=5)
    # CPU seconds of the whole process per step (every thread): what spinning waits burn,
    # which a loaded machine's wall-clock times hide
    for name in ("normreg", "torch"):
        fns[name]()
        c0 = time.process_time()
        for _ in range(10):
            fns[name]()
        t[name + "_cpu"] = (time.process_time() - c0) / 10
    config = normreg.show_config(mode="dicts")
    t["openmp_runtime"] = config["OpenMP"]["runtime"]
    t["wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    print(json.dumps(t))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=3.0, help="seconds of timing per case")
    ap.add_argument("--child", choices=("torch", "normreg"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child == "torch", args.batch, args.threads, args.budget)
        return
    print(f"MLP training step, batch {args.batch}, {args.threads} threads; ratio = torch / normreg\n")
    print(
        f"{'case':<42}{'normreg':>10}{'torch':>10}{'ratio':>8}{'nr/floor':>10}{'nr CPU':>10}"
        f"{'torch CPU':>10}  OpenMP runtime"
    )
    for name, torch_first, env in CASES:
        environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        environ.update(env)
        cmd = [sys.executable, __file__, "--child", "torch" if torch_first else "normreg"]
        cmd += ["--batch", str(args.batch), "--threads", str(args.threads), "--budget", str(args.budget)]
        res = subprocess.run(cmd, env=environ, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"{name}: failed\n{res.stderr[-2000:]}")
        t = json.loads(res.stdout.strip().splitlines()[-1])
        print(
            f"{name:<42}{t['normreg'] * 1e3:>8.2f}ms{t['torch'] * 1e3:>8.2f}ms"
            f"{t['torch'] / t['normreg']:>7.2f}x{t['normreg'] / t['floor']:>9.2f}x"
            f"{t['normreg_cpu'] * 1e3:>8.2f}ms{t['torch_cpu'] * 1e3:>8.2f}ms  {t['openmp_runtime']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
