"""Where the MLP training step's time goes, alone in a process (no other framework's steps
interleaved): the step and its GEMM floor (benchmarks/training.py), then the step taken apart,
each module's forward and backward, the loss and the optimizer timed where they run.

    python benchmarks/mlp_parts.py [--batch 128] [--threads 2] [--steps 40] [--again]

The parts run the modules one by one as Sequential does (the first Linear's backward without
the gradient of its input, the data, as in the step); medians over --steps steps. With
--again, each forward but Linear's runs a second time right after the first, on the same
input (under no_grad, so its backward is unchanged): that input is then in the caches, where
the first call found it after a product had streamed its weights through them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import common
import training

import normreg
from normreg import nn, optim


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--again", action="store_true", help="time each forward but Linear's twice")
    args = ap.parse_args()
    normreg.set_num_threads(args.threads)
    step, floor = training.normreg_step_fn(args.batch), training.gemm_floor_fn(args.batch)
    t_step, t_floor = common.median_ms(step, args.steps), common.median_ms(floor, args.steps)
    print(f"{normreg.cpu_capability()}, batch {args.batch}, {args.threads} threads")
    print(f"step {t_step:.2f} ms, GEMM floor {t_floor:.2f} ms: {t_step / t_floor:.2f}x")

    model = training.normreg_mlp()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, y = training.make_data(args.batch)
    loss_fn = nn.SoftmaxLoss()
    parts = defaultdict(list)

    def timed(name, fn, *a):
        t = time.perf_counter()
        out = fn(*a)
        parts[name].append(time.perf_counter() - t)
        return out

    def parted_step():
        timed("zero_grad", opt.zero_grad)
        out = x
        for i, m in enumerate(model):
            name = f"{i} {type(m).__name__} forward"
            inp, out = out, timed(name, m, out)
            if args.again and not isinstance(m, nn.Linear):
                with normreg.no_grad():
                    timed(name + " again", m, inp)
        timed("loss forward", loss_fn, out, y)
        grad = timed("loss backward", loss_fn.backward)
        for i in reversed(range(1, len(model))):
            grad = timed(f"{i} {type(model[i]).__name__} backward", model[i].backward, grad)
        # the first layer's input is data: no gradient for it, as in the step
        timed(f"0 {type(model[0]).__name__} backward", lambda g: model[0].backward(g, input_grad=False), grad)
        timed("optimizer step", opt.step)

    for _ in range(5):
        parted_step()
    parts.clear()
    for _ in range(args.steps):
        parted_step()
    for name, samples in sorted(parts.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"  {name:<30}{statistics.median(samples) * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
