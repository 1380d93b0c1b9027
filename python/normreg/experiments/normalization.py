"""Experiments on normalization: 1. learning rates (``norm-lr``), 3. initialization (``init``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._reports import figure
from ..grad_mode import no_grad
from ..nn import Linear, Module, ReLU, Sequential
from ..train import build_model
from ._common import (
    NORM_NAMES,
    Result,
    Runs,
    cell,
    fmt,
    last,
    markdown,
    plain_sgd,
    save_png,
    step_losses,
    strip,
    with_test_subset,
)

# ---- 1. normalization x learning rate ---------------------------------------------------------


def norm_lr(data, out_dir, quick=False, progress=None, log=print, seed=0) -> Result:
    """No norm / BatchNorm / LayerNorm x learning rates over two orders of magnitude, plain SGD."""
    if quick:
        lrs, norms = [0.01, 0.1, 1.0], ["none", "batch", "layer"]
        base: dict[str, Any] = dict(width=64, depth=2, epochs=2, batch_size=64, train_subset=1000)
        test_n = 1000
    else:
        lrs, norms = [0.01, 0.03, 0.1, 0.3, 1.0], ["none", "batch", "layer"]
        base = dict(width=256, depth=3, epochs=5, batch_size=128, train_subset=20000)
        test_n = None
    data = with_test_subset(data, test_n, seed)
    x_tr = data[0]
    runs = Runs("norm-lr", len(lrs) * len(norms), progress, log)
    results = {}
    for norm in norms:
        for lr in lrs:
            cfg = plain_sgd(norm, lr, 0.0, seed, base)
            results[(norm, lr)] = runs(f"norm={norm} lr={lr:g}", cfg, data)
    runs.close()

    rows = []
    for norm in norms:
        for lr in lrs:
            r = results[(norm, lr)]
            rows.append(
                {
                    "norm": norm,
                    "lr": lr,
                    "train_loss": last(r, "train_loss"),
                    "test_loss": last(r, "test_loss"),
                    "test_acc": last(r, "test_acc"),
                    "diverged": r["diverged"],
                }
            )
    names = NORM_NAMES
    md = (
        f"Test accuracy after {base['epochs']} epochs of plain SGD "
        f"(MLP {base['depth']}x{base['width']}, "
        f"{min(base['train_subset'], len(x_tr))} training images, batch {base['batch_size']}); "
        "final training loss in parentheses.\n\n"
    )
    md += markdown(
        ["norm \\ lr"] + [f"{lr:g}" for lr in lrs],
        [[names[n]] + [cell(results[(n, lr)]) for lr in lrs] for n in norms],
    )

    fig, axes = figure(2, 1, width=4.6)
    ax = axes[0, 0]
    for n in norms:
        ax.plot(lrs, [last(results[(n, lr)], "test_acc") for lr in lrs], "-o", label=names[n])
    ax.set(
        xscale="log", xlabel="learning rate (plain SGD)", ylabel="test accuracy", title="final test accuracy"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    ax = axes[0, 1]
    for n in norms:
        ax.plot(lrs, [last(results[(n, lr)], "train_loss") for lr in lrs], "-o", label=names[n])
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate (plain SGD)",
        ylabel="training loss",
        title="final training loss (missing: diverged)",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    summary_png = save_png(fig, out_dir, "norm-lr.png")

    fig, axes = figure(len(norms), 1, width=3.6)
    for ax, n in zip(axes[0], norms):
        for lr in lrs:
            steps, losses = step_losses(results[(n, lr)])
            ax.plot(steps, losses, label=f"lr {lr:g}")
        ax.set(yscale="log", xlabel="step", title=names[n])
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("training loss")
    axes[0, -1].legend(fontsize=8)
    curves_png = save_png(fig, out_dir, "norm-lr-curves.png")
    return {
        "rows": rows,
        "markdown": md,
        "plots": [summary_png, curves_png],
        "runs": {f"{n} lr={lr:g}": strip(r) for (n, lr), r in results.items()},
    }


# ---- 3. initialization x normalization ----------------------------------------------------


def _kaiming_init(model: Module, scale: float, seed: int) -> None:
    """Linear weights ~ N(0, scale^2 * 2 / fan_in) (scale 1: Kaiming/He), biases 0."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, Linear):
            std = scale * math.sqrt(2.0 / m.in_features)
            m.weight.data[...] = rng.normal(0.0, std, m.weight.shape)
            if m.bias is not None:
                m.bias.data[...] = 0


def _activation_stds(model: Sequential, x: np.ndarray) -> list[float]:
    """Standard deviation of the output of every ReLU (hidden layer) for one batch, at init."""
    stds = []
    h = x
    model.train()
    with no_grad():  # measured, never differentiated
        for m in model:
            h = m(h)
            if isinstance(m, ReLU):
                stds.append(float(np.std(h)))
    return stds


def init_scale(data, out_dir, quick=False, progress=None, log=print, seed=0) -> Result:
    """Initial weight scale (too small / Kaiming / too large) x normalization."""
    if quick:
        base: dict[str, Any] = dict(width=64, depth=4, epochs=2, batch_size=64, train_subset=1000)
        test_n = 1000
    else:
        base = dict(width=256, depth=6, epochs=4, batch_size=128, train_subset=20000)
        test_n = None
    scales, norms = [0.25, 1.0, 4.0], ["none", "batch", "layer"]
    names = NORM_NAMES
    data = with_test_subset(data, test_n, seed)
    x_tr = data[0]
    probe = x_tr[:256]
    runs = Runs("init", len(scales) * len(norms), progress, log)
    results, stds = {}, {}
    for norm in norms:
        for scale in scales:
            cfg = plain_sgd(norm, 0.01, 0.9, seed, base)
            model = build_model(cfg, x_tr.shape[1], 10)
            _kaiming_init(model, scale, seed)
            assert isinstance(model, Sequential)
            stds[(norm, scale)] = _activation_stds(model, probe)
            results[(norm, scale)] = runs(f"norm={norm} init x{scale:g}", cfg, data, model=model)
    runs.close()
    rows = [
        {
            "norm": n,
            "init_scale": s,
            "train_loss": last(results[(n, s)], "train_loss"),
            "test_acc": last(results[(n, s)], "test_acc"),
            "diverged": results[(n, s)]["diverged"],
            "activation_std_at_init": stds[(n, s)],
        }
        for n in norms
        for s in scales
    ]
    md = (
        "Weights ~ N(0, (scale * sqrt(2 / fan_in))^2) (scale 1 = Kaiming), "
        f"MLP {base['depth']}x{base['width']}, SGD momentum 0.9, lr 0.01, {base['epochs']} epochs "
        f"on {min(base['train_subset'], len(x_tr))} images. "
        "Test accuracy (final training loss); last column: std of the last hidden layer's "
        "activations at initialization.\n\n"
    )
    md += markdown(
        ["norm", "init scale", "test acc", "train loss", "last hidden std at init"],
        [
            [
                names[r["norm"]],
                f"x{r['init_scale']:g}",
                fmt(r["test_acc"]),
                fmt(r["train_loss"], 3),
                f"{r['activation_std_at_init'][-1]:.3g}",
            ]
            for r in rows
        ],
    )

    fig, axes = figure(len(norms), 2, width=3.6, height=3.0)
    for j, n in enumerate(norms):
        ax = axes[0, j]
        for s in scales:
            ax.plot(range(1, len(stds[(n, s)]) + 1), stds[(n, s)], "-o", ms=3, label=f"x{s:g}")
        ax.set(yscale="log", xlabel="hidden layer", title=f"{names[n]}: activation std at init")
        ax.grid(alpha=0.3)
        ax = axes[1, j]
        for s in scales:
            steps, losses = step_losses(results[(n, s)])
            ax.plot(steps, losses, label=f"init x{s:g}")
        ax.set(yscale="log", xlabel="step", title=f"{names[n]}: training loss")
        ax.grid(alpha=0.3)
    all_stds = [v for k in stds for v in stds[k] if v > 0]
    for ax in axes[0]:  # one scale for the three panels, so they compare
        ax.set_ylim(min(all_stds + [0.1]) / 2, max(all_stds + [10.0]) * 2)
    axes[0, 0].set_ylabel("std")
    axes[1, 0].set_ylabel("loss")
    axes[0, -1].legend(fontsize=8)
    axes[1, -1].legend(fontsize=8)
    png = save_png(fig, out_dir, "init.png")
    return {
        "rows": rows,
        "markdown": md,
        "plots": [png],
        "runs": {f"{n} x{s:g}": strip(r) for (n, s), r in results.items()},
    }
