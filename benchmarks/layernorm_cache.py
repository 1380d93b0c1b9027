"""LayerNorm's forward and backward kernels against a copy of the same array, at sizes that
stay in the caches (1 thread): nanoseconds per element of each, so that what the kernels cost
beyond moving their data shows (the forward reads x and writes y, as the copy; the backward
reads dy and x and writes dx).

    python benchmarks/layernorm_cache.py [--threads 1] [--reps 2000] [--shapes 8192x64,1024x64]

The kernels are timed by ``_C.layer_norm_kernel_time`` and ``_C.layer_norm_backward_kernel_time``
(their loops in C, no Python per call; the backward's dweight and dbias accumulated, inputs of
mean 5 and std 3); the copy (``_C.copy_f32``) by a Python loop, whose call overhead is under
0.03 ns per element here.
For where the kernel's time goes, run it under a sampling profiler, e.g.
``perf record -e cpu-clock python benchmarks/layernorm_cache.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import normreg
from normreg import _C

SHAPES = [(16, 1024), (64, 1024), (128, 1024), (512, 1024), (256, 64), (1024, 64), (4096, 64)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--shapes", help="M x D list, e.g. 8192x64,1024x64 (default: a set in the caches)")
    args = ap.parse_args()
    shapes = SHAPES
    if args.shapes:
        shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes.split(",")]
    normreg.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{normreg.cpu_capability()}, {args.threads} thread(s); ns per element, best of 5")
    print(f"{'shape':>12}{'KiB':>7}{'forward':>9}{'backward':>10}{'copy':>8}{'fwd/copy':>9}")
    for M, D in shapes:
        x = rng.standard_normal((M, D), dtype=np.float32) * 3 + 5
        w, b = rng.standard_normal(D, dtype=np.float32), rng.standard_normal(D, dtype=np.float32)
        y = np.empty_like(x)
        reps = max(5, args.reps * 65536 // (M * D))
        dy = rng.standard_normal((M, D), dtype=np.float32)
        fwd = min(_C.layer_norm_kernel_time(x, w, b, reps) for _ in range(5))
        bwd = min(_C.layer_norm_backward_kernel_time(dy, x, w, reps) for _ in range(5))
        copy = np.inf
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(reps):
                _C.copy_f32(y, x, args.threads)
            copy = min(copy, (time.perf_counter() - t) / reps)
        n = M * D
        print(
            f"{M:>6}x{D:<5}{n * 4 // 1024:>7}{fwd * 1e9 / n:>9.3f}{bwd * 1e9 / n:>10.3f}"
            f"{copy * 1e9 / n:>8.3f}{fwd / copy:>8.1f}x"
        )


if __name__ == "__main__":
    main()
