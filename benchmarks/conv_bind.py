"""Conv2d forward + backward on one sample (each product split among normreg's threads, as
few samples have it), with the OpenMP runtime's default placement and with OMP_PROC_BIND=true,
each in a fresh process, side by side.

    python benchmarks/conv_bind.py [--threads 2] [--reps 15]

OMP_PROC_BIND binds the main thread to one core when the runtime starts; threads it creates
later (a BLAS library's own pool) inherit that core. normreg's products therefore run on its
OpenMP threads, each a one-thread BLAS call (csrc/kernels/gemm_body.h).
"""

import argparse
import os
import subprocess
import sys

SHAPES = ((64, 128, 56), (3, 64, 224), (256, 256, 14))  # (C, O, H = W), 3x3, padding 1


def measure(threads, reps):
    """One line: the median f+b time of each shape, in ms, in this process."""
    import common
    import numpy as np

    import normreg
    from normreg import nn

    normreg.set_num_threads(threads)
    rng = np.random.default_rng(0)
    times = []
    for c, o, h in SHAPES:
        conv = nn.Conv2d(c, o, 3, padding=1)
        x = rng.standard_normal((1, c, h, h), dtype=np.float32)
        dy = np.ones((1, o, h, h), np.float32)

        def fwd_bwd(conv=conv, x=x, dy=dy):
            conv(x)
            conv.backward(dy)

        times.append(common.median_ms(fwd_bwd, reps, warmup=3))
    print(" ".join(f"{t:.3f}" for t in times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        measure(args.threads, args.reps)
        return
    argv = [sys.executable, __file__, "--child", "--threads", str(args.threads), "--reps", str(args.reps)]
    rows = {}
    for bind in (None, "true"):
        env = dict(os.environ)
        env.pop("OMP_PROC_BIND", None)
        if bind:
            env["OMP_PROC_BIND"] = bind
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
        rows[bind or "(unset)"] = [float(v) for v in out.split()]
    print(f"Conv2d 3x3 f+b on one sample, {args.threads} threads, medians of {args.reps} (ms)\n")
    print(f"{'C->O HxW':<18}{'default':>10}{'PROC_BIND':>11}{'ratio':>8}")
    base, bound = rows["(unset)"], rows["true"]
    for (c, o, h), t0, t1 in zip(SHAPES, base, bound):
        print(f"{f'{c}->{o} {h}x{h}':<18}{t0:10.2f}{t1:11.2f}{t1 / t0:7.2f}x")


if __name__ == "__main__":
    main()
