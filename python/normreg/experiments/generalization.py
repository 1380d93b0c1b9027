"""Experiments on generalization: 2. regularization (``regularization``), 4. different
configurations with similar accuracy (``summary``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._reports import figure
from ..train import TrainConfig, evaluate
from ._common import Result, Runs, fmt, last, markdown_columns, save_png, sgd, strip, subset

# ---- 2. regularization and generalization -----------------------------------------------------


def regularization(data, out_dir, quick=False, progress=None, log=print, seed=0) -> Result:
    """An over-parameterized MLP on a small subset: none / dropout / weight decay / both."""
    if quick:
        base: dict[str, Any] = dict(width=[128, 128], epochs=8, batch_size=50)
        n_train, test_n = 300, 1000
    else:
        base = dict(width=[512, 512], epochs=40, batch_size=50)
        n_train, test_n = 1000, None
    dropout_p, decay = 0.5, 5e-3
    variants = [
        ("none", 0.0, 0.0),
        ("dropout", dropout_p, 0.0),
        ("weight decay", 0.0, decay),
        ("dropout + weight decay", dropout_p, decay),
    ]
    x_tr, y_tr, x_te, y_te = data
    x_sub, y_sub = subset(x_tr, y_tr, n_train, seed)
    x_te, y_te = subset(x_te, y_te, test_n, seed)
    sub = (x_sub, y_sub, x_te, y_te)
    runs = Runs("regularization", len(variants), progress, log)
    results: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for label, p, wd in variants:
        cfg = sgd("none", 0.05, seed, dropout=p, weight_decay=wd, **base)
        r = runs(label, cfg, sub)
        _, train_acc = evaluate(r["model"], x_sub, y_sub)  # evaluation mode: no dropout
        test_acc = last(r, "test_acc")
        r["train_acc_eval"] = train_acc
        results[label] = r
        rows.append(
            {
                "regularization": label,
                "dropout": p,
                "weight_decay": wd,
                "train_acc": train_acc,
                "test_acc": test_acc,
                "gap": train_acc - test_acc,
                "test_loss": last(r, "test_loss"),
            }
        )
    runs.close()
    nparams = sum(p.size for p in results["none"]["model"].parameters())
    md = (
        f"MLP {'-'.join(map(str, [x_tr.shape[1]] + base['width'] + [10]))} "
        f"({nparams:,} parameters, "
        f"no normalization) on {len(x_sub)} training images, {base['epochs']} epochs of SGD "
        f"(momentum 0.9, lr 0.05, cosine); dropout p={dropout_p}, weight decay {decay:g}. "
        "Train accuracy measured in evaluation mode.\n\n"
    )
    md += markdown_columns(
        {
            "regularization": lambda r: r["regularization"],
            "train acc": lambda r: fmt(r["train_acc"]),
            "test acc": lambda r: fmt(r["test_acc"]),
            "gap": lambda r: fmt(r["gap"]),
            "test loss": lambda r: fmt(r["test_loss"], 3),
        },
        rows,
    )

    fig, axes = figure(2, 1, width=4.6)
    ax = axes[0, 0]
    xs = np.arange(len(rows))
    ax.bar(xs - 0.2, [r["train_acc"] for r in rows], 0.4, label="train (eval mode)")
    ax.bar(xs + 0.2, [r["test_acc"] for r in rows], 0.4, label="test")
    ax.set_xticks(xs)
    ax.set_xticklabels([r["regularization"].replace(" + ", "\n+ ") for r in rows], fontsize=8)
    lo = min(r["test_acc"] for r in rows)
    ax.set(ylim=(max(0.0, lo - 0.1), 1.005), ylabel="accuracy", title="train vs test accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax = axes[0, 1]
    for label, r in results.items():
        ep = [h["epoch"] for h in r["history"]]
        (line,) = ax.plot(ep, [h["test_loss"] for h in r["history"]], label=f"{label} (test)")
        ax.plot(ep, [h["train_loss"] for h in r["history"]], ":", color=line.get_color())
    ax.set(xlabel="epoch", ylabel="loss", yscale="log", title="test loss (solid), train loss (dotted)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    png = save_png(fig, out_dir, "regularization.png")
    return {"rows": rows, "markdown": md, "plots": [png], "runs": {k: strip(r) for k, r in results.items()}}


# ---- 4. different roads, similar accuracy --------------------------------------------------


def _summary_configs(quick: bool) -> list[tuple[str, TrainConfig]]:
    def cfg(norm: str, optimizer: str, lr: float, wd: float, width: Any, **rest: Any) -> TrainConfig:
        return TrainConfig(
            width=width,
            norm=norm,
            optimizer=optimizer,
            lr=lr,
            weight_decay=wd,
            epochs=2 if quick else 8,
            **rest,
        )

    def q(full: Any, small: Any) -> Any:  # the full run's value, or the quick one's
        return small if quick else full

    return [
        ("MLP BatchNorm + dropout, SGD Nesterov (the default recipe)",
         cfg("batch", "sgd", 0.1, 5e-4, q([1024, 512, 256], [256, 128]), dropout=0.2)),
        ("MLP LayerNorm, AdamW",
         cfg("layer", "adamw", 1e-3, 0.05, q([512, 512], [128, 128]), dropout=0.0)),
        ("MLP no norm + dropout, Adam",
         cfg("none", "adam", 1e-3, 0.0, q([512, 256], [128, 64]), dropout=0.2, batch_size=128)),
        ("MLPResNet (hw2: 3 blocks of 100, BatchNorm, dropout 0.1), Adam",
         cfg("batch", "adam", 1e-3, 1e-3, 100, model="resnet", depth=3, dropout=0.1, batch_size=128)),
        ("wide shallow MLP, no norm, plain SGD",
         cfg("none", "sgd", 0.1, 0.0, q([1024], [256]), dropout=0.0, momentum=0.0, batch_size=64,
             schedule="cosine")),
    ]  # fmt: skip


def summary(data, out_dir, quick=False, progress=None, log=print, seed=0) -> Result:
    """Several very different configurations that reach similar test accuracy."""
    configs = _summary_configs(quick)
    x_tr, y_tr, x_te, y_te = data
    if quick:
        x_tr, y_tr = subset(x_tr, y_tr, 2000, seed)
        x_te, y_te = subset(x_te, y_te, 1000, seed)
    runs = Runs("summary", len(configs), progress, log)
    results: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for label, cfg in configs:
        cfg = dataclasses.replace(cfg, seed=seed)
        r = runs(label, cfg, (x_tr, y_tr, x_te, y_te))
        results[label] = r
        c = r["config"]
        nparams = sum(p.size for p in r["model"].parameters())
        rows.append(
            {
                "configuration": label,
                "model": c["model"],
                "width": c["width"],
                "norm": c["norm"],
                "dropout": c["dropout"],
                "optimizer": c["optimizer"],
                "lr": c["lr"],
                "weight_decay": c["weight_decay"],
                "batch_size": c["batch_size"],
                "epochs": c["epochs"],
                "parameters": int(nparams),
                "train_acc": last(r, "train_acc"),
                "test_acc": last(r, "test_acc"),
                "seconds": r["seconds"],
            }
        )
    runs.close()
    md = (
        f"{len(x_tr)} training images, test accuracy on {len(x_te)}; train accuracy is the "
        "running mean over the last epoch (training mode).\n\n"
    )
    md += markdown_columns(
        {
            "configuration": lambda r: r["configuration"],
            "hidden": lambda r: r["width"],
            "optimizer (lr, wd)": lambda r: f"{r['optimizer']} ({r['lr']:g}, {r['weight_decay']:g})",
            "params": lambda r: f"{r['parameters']:,}",
            "epochs": lambda r: r["epochs"],
            "train acc": lambda r: fmt(r["train_acc"]),
            "test acc": lambda r: fmt(r["test_acc"]),
            "time": lambda r: f"{r['seconds']:.0f} s",
        },
        rows,
    )
    fig, axes = figure(1, 1, width=7.5, height=3.6)
    ax = axes[0, 0]
    for label, r in results.items():
        ax.plot(
            [h["epoch"] for h in r["history"]], [h["test_acc"] for h in r["history"]], "-o", ms=3, label=label
        )
    ax.set(xlabel="epoch", ylabel="test accuracy", title="different configurations, similar accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    png = save_png(fig, out_dir, "summary.png")
    return {"rows": rows, "markdown": md, "plots": [png], "runs": {k: strip(r) for k, r in results.items()}}
