"""Benchmark of RMSNorm, GroupNorm and BatchNorm2d (forward + backward) against NumPy (and
PyTorch when installed).

    python benchmarks/bench_norms.py [--dtype float32] [--repeat 15] [--threads N]

For each layer and shape: normreg's time for one forward and one backward, the effective
bandwidth (2 E forward + 3 E backward, E the activation's bytes: the minimum any
implementation moves), and the ratio of NumPy's and PyTorch's time to normreg's. Times are
medians over interleaved repetitions after a warm-up.
"""

import argparse
import statistics
import time

import numpy as np

import normreg
from normreg import nn


def numpy_rms(x, w, dy, eps):
    r = 1 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    y = x * r * w
    g = dy * w
    dx = r * g - x * r**3 * np.mean(g * x, axis=-1, keepdims=True)
    dw = np.sum(dy * x * r, axis=0)
    return y, dx, dw


def numpy_group(x, G, w, b, dy, eps=1e-5):
    N, C = x.shape[:2]
    xg = x.reshape(N, G, -1)
    mean = xg.mean(axis=2, keepdims=True)
    rstd = 1 / np.sqrt(xg.var(axis=2, keepdims=True) + eps)
    xhat = ((xg - mean) * rstd).reshape(x.shape)
    c = (1, C) + (1,) * (x.ndim - 2)
    y = xhat * w.reshape(c) + b.reshape(c)
    g = (dy * w.reshape(c)).reshape(N, G, -1)
    xh = xhat.reshape(N, G, -1)
    dx = rstd * (g - g.mean(axis=2, keepdims=True) - xh * (g * xh).mean(axis=2, keepdims=True))
    axes = (0,) + tuple(range(2, x.ndim))
    return y, dx.reshape(x.shape), np.sum(dy * xhat, axis=axes), np.sum(dy, axis=axes)


def numpy_bn2d(x, w, b, dy, eps=1e-5):
    axes = (0, 2, 3)
    c = (1, -1, 1, 1)
    mean = x.mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    y = xhat * w.reshape(c) + b.reshape(c)
    g = dy * w.reshape(c)
    dx = rstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return y, dx, np.sum(dy * xhat, axis=axes), np.sum(dy, axis=axes)


def timed(fns, repeat):
    """Median time of each function, run interleaved so drifts hit all alike."""
    for f in fns:
        f()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None, help="normreg's and torch's threads")
    args = ap.parse_args()
    if args.threads:
        normreg.set_num_threads(args.threads)
    dtype = np.dtype(args.dtype)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(normreg.get_num_threads())
    rng = np.random.default_rng(0)
    cases = [
        ("RMSNorm", (8192, 1024)),
        ("RMSNorm", (8192, 64)),
        ("RMSNorm", (32, 64)),
        ("GroupNorm(32)", (32, 256, 28, 28)),
        ("GroupNorm(8)", (64, 64, 8, 8)),
        ("BatchNorm2d", (32, 256, 28, 28)),
        ("BatchNorm2d", (64, 64, 8, 8)),
    ]
    print(f"threads {normreg.get_num_threads()}, dtype {dtype}, torch {'yes' if torch else 'no'}")
    print(f"{'layer':<15}{'shape':>20}{'normreg ms':>12}{'GB/s':>8}{'numpy x':>9}{'torch x':>9}")
    for name, shape in cases:
        x = (rng.standard_normal(shape) + 3).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        C = shape[-1] if name == "RMSNorm" else shape[1]
        w = (rng.standard_normal(C) + 1).astype(dtype)
        b = rng.standard_normal(C).astype(dtype)
        if name == "RMSNorm":
            layer = nn.RMSNorm(C, eps=1e-6, dtype=dtype)
            ref = lambda: numpy_rms(x, w, dy, 1e-6)  # noqa: E731
        elif name.startswith("GroupNorm"):
            G = int(name[10:-1])
            layer = nn.GroupNorm(G, C, dtype=dtype)
            ref = lambda: numpy_group(x, G, w, b, dy)  # noqa: E731
        else:
            layer = nn.BatchNorm2d(C, dtype=dtype)
            ref = lambda: numpy_bn2d(x, w, b, dy)  # noqa: E731
        layer.weight.data[...] = w

        def ours():
            layer(x)
            layer.backward(dy)

        fns = [ours, ref]
        if torch is not None:
            tdt = torch.float32 if dtype == np.float32 else torch.float64
            if name == "RMSNorm":
                tl = torch.nn.RMSNorm(C, eps=1e-6, dtype=tdt)
            elif name.startswith("GroupNorm"):
                tl = torch.nn.GroupNorm(G, C, dtype=tdt)
            else:
                tl = torch.nn.BatchNorm2d(C, dtype=tdt)
            tx = torch.from_numpy(x).requires_grad_()
            tdy = torch.from_numpy(dy)

            def theirs():
                tx.grad = None
                tl.zero_grad()
                tl(tx).backward(tdy)

            fns.append(theirs)
        t = timed(fns, args.repeat)
        gbs = 5 * x.nbytes / t[0] / 1e9
        torch_ratio = f"{t[2] / t[0]:9.2f}" if torch is not None else f"{'-':>9}"
        print(f"{name:<15}{str(shape):>20}{t[0] * 1e3:12.3f}{gbs:8.1f}{t[1] / t[0]:9.2f}{torch_ratio}")


if __name__ == "__main__":
    main()
