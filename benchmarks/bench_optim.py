"""Benchmark of the fused optimizer steps against NumPy (and PyTorch when installed).

    python benchmarks/bench_optim.py [--sizes 100000 4000000] [--dtype float32] [--repeat 20]

For each parameter size: the time of one step, the effective bandwidth (bytes of
parameter, gradient and state read and written once, the minimum any implementation
moves), and the ratio of NumPy's and PyTorch's time to normreg's.
"""

import argparse
import time

import numpy as np

import normreg
from normreg import optim
from normreg.nn import Parameter


def best_time(fn, repeat):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def numpy_sgd(p, g, buf, lr=0.01, momentum=0.9, wd=5e-4):
    d = g + wd * p
    buf *= momentum
    buf += d
    p -= lr * buf


def numpy_adamw(p, g, m, v, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=1e-2):
    p *= 1 - lr * wd
    m += (1 - b1) * (g - m)
    v *= b2
    v += (1 - b2) * g * g
    denom = np.sqrt(v) / np.sqrt(1 - b2**t) + eps
    p -= lr / (1 - b1**t) * (m / denom)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 4_000_000])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    dtype = np.dtype(args.dtype)
    try:
        import torch
    except ImportError:
        torch = None
    print(f"threads {normreg.get_num_threads()}, dtype {dtype}")
    print(f"{'update':<14}{'n':>10}{'normreg ms':>12}{'GB/s':>8}{'numpy x':>9}{'torch x':>9}")
    rng = np.random.default_rng(0)
    for n in args.sizes:
        w = rng.standard_normal(n).astype(dtype)
        g = rng.standard_normal(n).astype(dtype)
        for name, arrays in [("SGD momentum", 5), ("AdamW", 7)]:
            p = Parameter(w.copy())  # Parameter(w) would share w, which the references start from
            p.grad = g.copy()
            if name == "AdamW":
                opt = optim.AdamW([p], lr=1e-3)
                m, v = np.zeros_like(w), np.zeros_like(w)
                ref_p = w.copy()
                t = [0]

                def ref():
                    t[0] += 1
                    numpy_adamw(ref_p, g, m, v, t[0])
            else:
                opt = optim.SGD([p], lr=0.01, momentum=0.9, weight_decay=5e-4)
                buf, ref_p = np.zeros_like(w), w.copy()

                def ref():
                    numpy_sgd(ref_p, g, buf)

            t_nr = best_time(opt.step, args.repeat)
            t_np = best_time(ref, args.repeat)
            ratio_torch = float("nan")
            if torch is not None:
                tp = torch.nn.Parameter(torch.from_numpy(w.copy()))
                tp.grad = torch.from_numpy(g.copy())
                topt = (
                    torch.optim.AdamW([tp], lr=1e-3)
                    if name == "AdamW"
                    else torch.optim.SGD([tp], lr=0.01, momentum=0.9, weight_decay=5e-4)
                )
                ratio_torch = best_time(topt.step, args.repeat) / t_nr
            gbs = arrays * n * dtype.itemsize / t_nr / 1e9
            print(f"{name:<14}{n:>10}{t_nr * 1e3:>12.3f}{gbs:>8.1f}{t_np / t_nr:>9.2f}{ratio_torch:>9.2f}")


if __name__ == "__main__":
    main()
