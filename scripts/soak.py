#!/usr/bin/env python3
"""Soak: train for N minutes while a second thread calls the functional ops and changes
the thread count; resident memory must stay flat and the ops' results unchanged.

    scripts/soak.py --minutes 10          # the run RELIABILITY.md reports
    scripts/soak.py --minutes 1 --json    # a short one, figures as one JSON line

* The main thread trains round after round (``normreg.train.train``: an MLP with
  BatchNorm and Dropout, SGD with a cosine schedule, 3 epochs on 2,000 synthetic examples),
  each round writing its checkpoint after every epoch and loading it back at the end.
* A second thread sets ``normreg.set_num_threads`` to 1 or 2 at random, then calls every
  functional op on fixed float32 inputs, forward and backward (linear, relu, layer norm,
  batch norm in training mode, RMS norm, group norm, dropout with a fixed generator,
  cross-entropy, an SGD and an Adam step on fresh copies). Every output must equal, bit for
  bit, what the same call gave at the start with the same thread count; the first results
  are also checked against float64 NumPy for linear and layer norm (within 1e-5).
* A third thread samples the resident set size (``/proc/self/statm``) every 2 seconds.
  **Flat** means: after a warm-up of the first fifth of the run (at least 60 s), the median
  of the last tenth of the samples exceeds the median of the first tenth after the warm-up
  by less than 16 MiB, and the least-squares slope after the warm-up is under 1 MiB/min.

Exit status 1 if a result changed, an op raised, or memory grew.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time

import numpy as np

import normreg
from normreg import functional as F
from normreg.train import TrainConfig, train

MIB = 1 << 20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(1234).uniform(0, 1, (10, 784))
    labels = rng.integers(0, 10, n)
    x = np.clip(prototypes[labels] * 0.7 + rng.normal(0, 0.25, (n, 784)) + 0.1, 0, 1).astype(np.float32)
    return x, labels.astype(np.int64)


# ---- the functional thread ---------------------------------------------------------------------


def make_ops() -> dict:
    """Each op: a function of no arguments returning its outputs (fresh arrays each call)."""
    rng = np.random.default_rng(7)
    f32 = np.float32
    x = rng.standard_normal((64, 96)).astype(f32) * 3 + 5
    w = rng.standard_normal((96, 48)).astype(f32) * 0.1  # (in, out)
    b = rng.standard_normal(48).astype(f32)
    dy = rng.standard_normal((64, 48)).astype(f32)
    g = (1 + 0.1 * rng.standard_normal(96)).astype(f32)
    beta = rng.standard_normal(96).astype(f32)
    dx96 = rng.standard_normal((64, 96)).astype(f32)
    x3 = rng.standard_normal((16, 12, 20)).astype(f32)
    labels = rng.integers(0, 48, 64)
    param = rng.standard_normal(5000).astype(f32)
    grad = rng.standard_normal(5000).astype(f32)

    def linear():
        y = F.linear(x, w, b)
        return [y, *F.linear_backward(dy, x, w)]

    def relu():
        y = F.relu(x - 5)
        return [y, F.relu_backward(dx96, y)]

    def layer_norm():
        y, mean, rstd = F.layer_norm(x, 96, g, beta)
        return [y, mean, rstd, *F.layer_norm_backward(dx96, x, mean, rstd, g)]

    def batch_norm():
        running_mean, running_var = np.zeros(96, f32), np.ones(96, f32)
        y, mean, rstd = F.batch_norm(x, running_mean, running_var, g, beta, training=True)
        return [y, mean, rstd, running_mean, running_var, *F.batch_norm_backward(dx96, x, mean, rstd, g)]

    def rms_norm():
        y, rstd = F.rms_norm(x, 96, g)
        return [y, rstd, *F.rms_norm_backward(dx96, x, rstd, g)]

    def group_norm():
        y, mean, rstd = F.group_norm(x3, 4)
        return [y, mean, rstd, *F.group_norm_backward(x3 * 0.5, x3, mean, rstd)]

    def dropout():
        y, mask = F.dropout(x, 0.3, generator=normreg.Generator(11))
        return [y, mask, F.dropout_backward(x, mask, 0.3)]

    def cross_entropy():
        logits = F.linear(x, w, b)
        loss, lse = F.cross_entropy(logits, labels)
        return [np.float64(loss), lse, F.cross_entropy_backward(logits, labels, lse)]

    def sgd():
        p, buf = param.copy(), np.zeros_like(param)
        for i in range(3):
            F.sgd_step_(
                p, grad, buf, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4, first_step=i == 0
            )
        return [p, buf]

    def adam():
        p, m, v = param.copy(), np.zeros_like(param), np.zeros_like(param)
        for step in (1, 2, 3):
            F.adam_step_(p, grad, m, v, step=step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, decoupled=True)
        return [p, m, v]

    ops = dict(
        linear=linear, relu=relu, layer_norm=layer_norm, batch_norm=batch_norm, rms_norm=rms_norm,
        group_norm=group_norm, dropout=dropout, cross_entropy=cross_entropy, sgd=sgd, adam=adam,
    )  # fmt: skip
    # the first results against float64 NumPy, for two of them
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    np.testing.assert_allclose(linear()[0], x64 @ w64 + b, rtol=1e-5, atol=1e-5)
    mean = x64.mean(axis=1, keepdims=True)
    expected = (x64 - mean) / np.sqrt(x64.var(axis=1, keepdims=True) + 1e-5) * g + beta
    np.testing.assert_allclose(layer_norm()[0], expected, rtol=1e-5, atol=1e-5)
    return ops


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (u is None and v is None) or (np.asarray(u).tobytes() == np.asarray(v).tobytes())
        for u, v in zip(a, b)
    )


class Functional(threading.Thread):
    def __init__(self, stop: threading.Event, seed: int) -> None:
        super().__init__(daemon=True)
        self.stop, self.rng = stop, random.Random(seed)
        self.calls, self.switches, self.mismatches, self.errors = 0, 0, [], []
        self.ops = make_ops()
        self.reference: dict[tuple[int, str], list] = {}
        for n in (1, 2):
            normreg.set_num_threads(n)
            for name, op in self.ops.items():
                self.reference[(n, name)] = op()

    def run(self) -> None:
        names = list(self.ops)
        while not self.stop.is_set():
            n = self.rng.choice((1, 2))
            normreg.set_num_threads(n)
            self.switches += 1
            for name in self.rng.sample(names, len(names)):
                try:
                    got = self.ops[name]()
                except Exception as exc:  # recorded: the soak fails
                    self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                self.calls += 1
                if not same(got, self.reference[(n, name)]):
                    self.mismatches.append(f"{name} with {n} thread(s) after {self.calls} calls")


class Sampler(threading.Thread):
    def __init__(self, stop: threading.Event, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.stop, self.every = stop, every
        self.samples: list[tuple[float, int]] = []
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic() - self.t0, rss()))
            self.stop.wait(self.every)


def memory_figures(samples: list[tuple[float, int]], seconds: float) -> dict:
    warm = max(60.0, seconds / 5)
    after = [(t, r) for t, r in samples if t >= warm]
    if len(after) < 10:
        return {"samples": len(samples), "flat": None}
    tenth = max(1, len(after) // 10)
    first = float(np.median([r for _, r in after[:tenth]]))
    last = float(np.median([r for _, r in after[-tenth:]]))
    t = np.array([s for s, _ in after]) / 60
    r = np.array([r for _, r in after]) / MIB
    slope = float(np.polyfit(t, r, 1)[0])
    growth = (last - first) / MIB
    return {
        "samples": len(samples),
        "warmup_seconds": round(warm),
        "rss_start_mib": round(samples[0][1] / MIB, 1),
        "rss_after_warmup_mib": round(first / MIB, 1),
        "rss_end_mib": round(last / MIB, 1),
        "rss_max_mib": round(max(r for _, r in samples) / MIB, 1),
        "growth_mib": round(growth, 2),
        "slope_mib_per_min": round(slope, 3),
        "flat": growth < 16 and slope < 1,
    }


def soak(minutes: float, seed: int = 0, log=print, samples_to: str | None = None) -> dict:
    stop = threading.Event()
    x, y = synthetic(2000, seed)
    xt, yt = synthetic(500, seed + 1)
    data = (x, y, xt, yt)
    functional = Functional(stop, seed)
    sampler = Sampler(stop)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    sampler.start()
    functional.start()
    rounds = epochs = 0
    train_errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="normreg-soak-") as out:
        while time.monotonic() - t0 < minutes * 60:
            config = TrainConfig(width=[256, 128], epochs=3, batch_size=100, seed=rounds, dropout=0.2)
            try:
                result = train(config, data, out_dir=out, progress=False, log=None)
                state = normreg.load(os.path.join(out, "checkpoint.npz"))
                if int(state["epoch"]) != 3 or result["diverged"]:
                    train_errors.append(
                        f"round {rounds}: epoch {int(state['epoch'])}, diverged {result['diverged']}"
                    )
                os.remove(os.path.join(out, "checkpoint.npz"))  # a fresh run next round
            except Exception as exc:
                train_errors.append(f"round {rounds}: {type(exc).__name__}: {exc}")
            rounds += 1
            epochs += 3
            if rounds % 10 == 0:
                log(f"{(time.monotonic() - t0) / 60:5.1f} min: {rounds} rounds, {functional.calls} op calls, "
                    f"rss {rss() / MIB:.0f} MiB")  # fmt: skip
    stop.set()
    functional.join()
    sampler.join()
    seconds = time.monotonic() - t0
    if samples_to:
        with open(samples_to, "w") as f:
            f.write("seconds,rss_mib\n")
            f.writelines(f"{t:.1f},{r / MIB:.2f}\n" for t, r in sampler.samples)
    figures = {
        "minutes": round(seconds / 60, 2),
        "training_rounds": rounds,
        "training_epochs": epochs,
        "functional_calls": functional.calls,
        "thread_count_changes": functional.switches,
        "mismatches": functional.mismatches[:10],
        "op_errors": functional.errors[:10],
        "training_errors": train_errors[:10],
        "memory": memory_figures(sampler.samples, seconds),
        "cpus": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    figures["ok"] = bool(
        not functional.mismatches and not functional.errors and not train_errors and figures["memory"]["flat"]
    )
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print only the figures, as one JSON line")
    p.add_argument("--samples", metavar="CSV", help="write the resident-size samples there")
    args = p.parse_args()
    figures = soak(args.minutes, args.seed, (lambda *a: None) if args.json else print, args.samples)
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=1))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
