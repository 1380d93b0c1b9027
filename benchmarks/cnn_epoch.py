"""Seconds per training epoch of the CNN recipe on Fashion-MNIST: normreg against PyTorch.

    python benchmarks/cnn_epoch.py                    # 1 epoch each, 2 threads
    python benchmarks/cnn_epoch.py --epochs 15        # the whole recipe, test accuracy per epoch
    python benchmarks/cnn_epoch.py --threads 1 --no-torch

The network and recipe are ``normreg-train --model cnn``'s defaults (``train.CNN_RECIPE``):
``models.CNN(channels=(32, 64, 128), norm='batch')``, SGD with Nesterov momentum 0.9, lr 0.1
with a per-batch cosine decay to 0 over the whole run, weight decay 5e-4 on the weights only,
batches of 128 (the last partial batch dropped), shuffled per epoch. PyTorch trains the same
network (``conv.torch_cnn``) with the same recipe. The frameworks alternate epoch by epoch,
so a change of the machine's load hits both alike; each line gives the training seconds of
the epoch (evaluation excluded), the CPU seconds the process used meanwhile (all its
threads: on a machine shared with other work, a measure of the work done that the other
jobs do not inflate), the test accuracy after it, and the load average.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import conv

import normreg
from normreg import nn, optim
from normreg.data import load_fashion_mnist
from normreg.models import CNN
from normreg.optim import lr_scheduler
from normreg.train import CNN_RECIPE, default_config, evaluate


class NormregRun:
    name = "normreg"

    def __init__(self, recipe, steps_total, seed):
        normreg.manual_seed(seed)
        self.model = CNN(1, 10, channels=recipe.width, norm=recipe.norm, input_shape=(1, 28, 28))
        groups = optim.param_groups(self.model, recipe.weight_decay)
        self.opt = optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
        self.sched = lr_scheduler.CosineAnnealingLR(self.opt, T_max=steps_total)
        self.loss = nn.SoftmaxLoss()

    def epoch(self, x, y, order, batch):
        self.model.train()
        for s in range(len(order) // batch):
            idx = order[s * batch : (s + 1) * batch]
            self.opt.zero_grad()
            self.loss(self.model(x[idx]), y[idx])
            self.model.backward(self.loss.backward())
            self.opt.step()
            self.sched.step()

    def accuracy(self, x, y):
        return evaluate(self.model, x, y)[1]


class TorchRun:
    name = "torch"

    def __init__(self, torch, recipe, steps_total, seed):
        self.torch = torch
        torch.manual_seed(seed)
        self.model = conv.torch_cnn(torch, tuple(recipe.width))
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        rest = [p for p in self.model.parameters() if p.ndim < 2]
        self.opt = torch.optim.SGD(
            [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov,
        )
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=steps_total)

    def epoch(self, x, y, order, batch):
        torch = self.torch
        self.model.train()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for s in range(len(order) // batch):
            idx = torch.from_numpy(order[s * batch : (s + 1) * batch])
            self.opt.zero_grad()
            torch.nn.functional.cross_entropy(self.model(xt[idx]), yt[idx]).backward()
            self.opt.step()
            self.sched.step()

    def accuracy(self, x, y):
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            correct = sum(
                int(
                    (self.model(torch.from_numpy(x[i : i + 1000])).argmax(1).numpy() == y[i : i + 1000]).sum()
                )
                for i in range(0, len(x), 1000)
            )
        return correct / len(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="epochs of each framework (the cosine schedule spans --schedule-epochs)",
    )
    ap.add_argument(
        "--schedule-epochs",
        type=int,
        default=CNN_RECIPE["epochs"],
        help="the length of the cosine schedule (the recipe's 15)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--subset", type=int, default=None, help="train on the first N images only (a smoke test)"
    )
    ap.add_argument("--json", help="write the per-epoch rows to this file")
    args = ap.parse_args(argv)
    recipe = default_config("cnn").resolved()
    x_train, y_train, x_test, y_test = load_fashion_mnist(args.data_dir)
    if args.subset is not None:
        x_train, y_train = x_train[: args.subset], y_train[: args.subset]
    batch = recipe.batch_size
    steps_total = args.schedule_epochs * (len(x_train) // batch)
    normreg.set_num_threads(args.threads)
    runs = [NormregRun(recipe, steps_total, args.seed)]
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            torch.set_num_threads(args.threads)
            runs.append(TorchRun(torch, recipe, steps_total, args.seed))
    print(
        f"# CNN {recipe.width} {recipe.norm}, SGD lr {recipe.lr} nesterov, wd {recipe.weight_decay}, batch "
        f"{batch}, {args.threads} threads; {os.cpu_count()} cores; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}",
        flush=True,
    )
    rng = np.random.default_rng(args.seed)
    rows = []
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))  # the same batches for both frameworks
        for run in runs:
            load0 = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), time.process_time()
            run.epoch(x_train, y_train, order, batch)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            acc = run.accuracy(x_test, y_test)
            row = {
                "framework": run.name,
                "epoch": epoch,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "test_acc": acc,
                "load": (load0 + os.getloadavg()[0]) / 2,
            }
            rows.append(row)
            print(
                f"{run.name:<8} epoch {epoch:2d}  {seconds:7.1f} s  {cpu:7.1f} cpu s  test acc {acc:.4f}  "
                f"load {row['load']:.1f}",
                flush=True,
            )
    for run in runs:
        mine = [r for r in rows if r["framework"] == run.name]
        print(
            f"{run.name:<8} median {np.median([r['seconds'] for r in mine]):.1f} s, "
            f"{np.median([r['cpu_seconds'] for r in mine]):.1f} cpu s per epoch over {len(mine)} epoch(s)"
        )
    if len(runs) == 2:
        for key in ("seconds", "cpu_seconds"):
            ratio = [t[key] / n[key] for n, t in zip(rows[0::2], rows[1::2])]
            print(
                f"torch/normreg {key} per epoch: median {np.median(ratio):.2f}x "
                f"(min {min(ratio):.2f}, max {max(ratio):.2f})"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "threads": args.threads, "recipe": str(recipe)}, f, indent=1)
    return 0 if all(math.isfinite(r["seconds"]) for r in rows) else 1


if __name__ == "__main__":
    # passive OpenMP waits, as the suite (see run.py)
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "passive"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    sys.exit(main())
