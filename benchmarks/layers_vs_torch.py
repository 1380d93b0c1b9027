"""Every ``normreg.nn`` layer beside PyTorch's, as a user calls them: a survey for slow spots.

    python benchmarks/layers_vs_torch.py [--threads 2] [--only NAME,...]

For each layer and a few shapes: the time of one forward and one backward through the Module
(training mode), and for the layers that behave differently in evaluation (BatchNorm, Dropout)
of one evaluation forward under ``no_grad``; beside each, PyTorch's time for the same calls
(autograd's backward) and the ratio PyTorch / normreg (below 1: normreg is slower). Each time
is the best of five runs of a loop of at least 20 ms. Needs PyTorch (a benchmark-only
dependency). The rows below 1 are where to look; benchmarks/analysis.md says what was found.
"""

import argparse
import time

import numpy as np

import normreg
from normreg import nn


def best_time(fn):
    """Seconds per call: the best of five loops of at least 20 ms."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > 0.02:
            break
        n *= 4
    best = dt / n
    for _ in range(4):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def layer_cases(torch):
    """(name, normreg module, torch module, input shape, has an evaluation mode)."""
    tnn = torch.nn
    out = []
    for shape in [(32, 64), (8192, 64), (256, 1024)]:
        D = shape[1]
        out += [
            ("LayerNorm", nn.LayerNorm(D), tnn.LayerNorm(D), shape, False),
            ("BatchNorm1d", nn.BatchNorm1d(D), tnn.BatchNorm1d(D), shape, True),
            ("RMSNorm", nn.RMSNorm(D), tnn.RMSNorm(D), shape, False),
            ("GroupNorm(8)", nn.GroupNorm(8, D), tnn.GroupNorm(8, D), shape, False),
            ("ReLU", nn.ReLU(), tnn.ReLU(), shape, False),
            ("Dropout(0.2)", nn.Dropout(0.2), tnn.Dropout(0.2), shape, True),
        ]
    # rows and groups shorter than a vector register (several rows to a register, or one)
    for shape in [(32768, 4), (16384, 8), (10923, 12)]:
        D = shape[1]
        out += [
            ("LayerNorm", nn.LayerNorm(D), tnn.LayerNorm(D), shape, False),
            ("RMSNorm", nn.RMSNorm(D), tnn.RMSNorm(D), shape, False),
        ]
    for groups, C in ((32, 64), (32, 96)):
        out.append(
            (f"GroupNorm({groups})", nn.GroupNorm(groups, C), tnn.GroupNorm(groups, C), (4096, C), False)
        )
    for shape in [(16, 50, 64), (64, 128, 256)]:
        D = shape[-1]
        out += [
            ("LayerNorm", nn.LayerNorm(D), tnn.LayerNorm(D), shape, False),
            ("RMSNorm", nn.RMSNorm(D), tnn.RMSNorm(D), shape, False),
            ("BatchNorm1d", nn.BatchNorm1d(shape[1]), tnn.BatchNorm1d(shape[1]), shape, True),
        ]
    for shape in [(32, 16, 28, 28), (128, 64, 8, 8), (128, 256, 4, 4), (8, 32, 64, 64)]:
        C = shape[1]
        out += [
            ("BatchNorm2d", nn.BatchNorm2d(C), tnn.BatchNorm2d(C), shape, True),
            ("GroupNorm(8)", nn.GroupNorm(8, C), tnn.GroupNorm(8, C), shape, False),
            ("InstanceNorm2d", nn.InstanceNorm2d(C), tnn.InstanceNorm2d(C), shape, False),
            ("MaxPool2d(2)", nn.MaxPool2d(2), tnn.MaxPool2d(2), shape, False),
            ("AvgPool2d(2)", nn.AvgPool2d(2), tnn.AvgPool2d(2), shape, False),
            ("AdaptiveAvgPool2d(1)", nn.AdaptiveAvgPool2d(1), tnn.AdaptiveAvgPool2d(1), shape, False),
            (
                "Conv2d(C, C, 3, padding=1)",
                nn.Conv2d(C, C, 3, padding=1),
                tnn.Conv2d(C, C, 3, padding=1),
                shape,
                False,
            ),
            ("ReLU", nn.ReLU(), tnn.ReLU(), shape, False),
        ]
    for B, I, O in [(32, 64, 64), (128, 784, 256), (512, 1024, 1024)]:
        out.append((f"Linear({I}, {O})", nn.Linear(I, O), tnn.Linear(I, O), (B, I), False))
    return out


def run_layer(torch, rng, name, nm, tm, shape, has_eval):
    x = rng.standard_normal(shape).astype(np.float32)
    with normreg.no_grad():
        dy = rng.standard_normal(nm(x).shape).astype(np.float32)
    xt, dyt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

    def ours():
        nm(x)
        nm.backward(dy)

    def theirs():
        tm(xt).backward(dyt)

    a, b = best_time(ours), best_time(theirs)
    line = f"{name:<28}{str(shape):<19}{a * 1e6:10.1f}{b * 1e6:10.1f}{b / a:8.2f}"
    if has_eval:
        nm.eval()
        tm.eval()
        with normreg.no_grad():
            a = best_time(lambda: nm(x))
        with torch.no_grad():
            b = best_time(lambda: tm(xt))
        line += f"{a * 1e6:10.1f}{b * 1e6:10.1f}{b / a:8.2f}"
    print(line, flush=True)


def run_loss(torch, rng):
    for B, K in [(128, 10), (8192, 10), (128, 100), (1024, 1000)]:
        z = rng.standard_normal((B, K)).astype(np.float32)
        labels = rng.integers(0, K, B)
        loss, tloss = nn.SoftmaxLoss(), torch.nn.CrossEntropyLoss()
        zt, lt = torch.from_numpy(z).requires_grad_(), torch.from_numpy(labels)

        def ours(loss=loss, z=z, labels=labels):
            loss(z, labels)
            loss.backward()

        def theirs(tloss=tloss, zt=zt, lt=lt):
            tloss(zt, lt).backward()

        a, b = best_time(ours), best_time(theirs)
        print(f"{'SoftmaxLoss':<28}{str((B, K)):<19}{a * 1e6:10.1f}{b * 1e6:10.1f}{b / a:8.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="normreg's and PyTorch's threads")
    ap.add_argument("--only", default=None, help="comma-separated layer names (as printed) to run")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    normreg.set_num_threads(args.threads)
    only = None if args.only is None else {s.strip() for s in args.only.split(",")}
    tier, threads = normreg.cpu_capability(), args.threads
    print(f"normreg {normreg.__version__} ({tier}), torch {torch.__version__}, {threads} threads")
    print("times in us; ratio = PyTorch's time / normreg's (below 1: normreg is slower)\n")
    print(
        f"{'layer':<28}{'input':<19}{'f+b':>10}{'torch':>10}{'ratio':>8}{'eval':>10}{'torch':>10}{'ratio':>8}"
    )
    rng = np.random.default_rng(0)
    for name, nm, tm, shape, has_eval in layer_cases(torch):
        if only is None or name in only:
            run_layer(torch, rng, name, nm, tm, shape, has_eval)
    if only is None or "SoftmaxLoss" in only:
        run_loss(torch, rng)


if __name__ == "__main__":
    main()
