"""Experiment 5: batch size x normalization (``batch-size``).

BatchNorm normalizes each example with statistics of the batch it came in, so its output
for one image depends on the other images of the batch, and the noise of those statistics
grows as the batch shrinks; in evaluation it uses running estimates gathered from those
small batches. LayerNorm and GroupNorm normalize each example by itself and do not depend
on the batch size. The GroupNorm paper (Wu and He, 2018, figure 1) shows the consequence:
BatchNorm's error grows at small batches, GroupNorm's does not. Here: the MLP and the CNN
with BatchNorm, GroupNorm, LayerNorm and no normalization at batch sizes 2 to 128, the same
number of epochs for each.

Learning rate: scaled linearly with the batch size, ``BASE_LR * B / BASE_BATCH`` (Goyal et
al., 2017; the GroupNorm paper does the same). In an epoch of N examples SGD takes N/B steps
of lr * (mean gradient + noise of variance s^2/B): the drift per epoch is N * lr/B * mean
gradient and the noise added per epoch has variance N * lr^2 * s^2 / B^2, so both stay the
same when lr/B does. The square-root rule (lr/sqrt(B) fixed) keeps each step's noise instead
and multiplies the drift per epoch by sqrt(128/B): 8x at batch 2, where the networks without
normalization would diverge first; it suits adaptive optimizers, not SGD.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._reports import figure
from ..nn import GroupNorm, LayerNorm, Module, Sequential
from ..random import manual_seed
from ..train import TrainConfig, build_model
from ._bnstats import distances, evaluate_with, full_data_stats, running_stats
from ._common import NORM_NAMES, Result, Runs, fmt, last, markdown, recipe_sgd, save_png, strip, subset

BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128)
NORMS = ("batch", "group", "layer", "none")
BASE_BATCH, BASE_LR = 128, 0.1
#: GroupNorm's groups, for the MLP's hidden features and the CNN's channels alike.
GROUPS = 8
MODEL_NAMES = {"mlp": "MLP", "cnn": "CNN"}


def scaled_lr(batch_size: int) -> float:
    """The linear scaling rule: ``BASE_LR * batch_size / BASE_BATCH``."""
    return BASE_LR * batch_size / BASE_BATCH


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return dict(
            batch_sizes=(2, 8, 32, 128),
            mlp=dict(width=128, depth=2, train=500, epochs=2),
            cnn=dict(width=(8, 16, 32), depth=None, train=256, epochs=2),
            test=500,
        )
    return dict(
        batch_sizes=BATCH_SIZES,
        mlp=dict(width=256, depth=3, train=10000, epochs=6),
        cnn=dict(width=(8, 16, 32), depth=None, train=4000, epochs=6),
        test=None,
    )


def build(config: TrainConfig, in_features: int, num_classes: int) -> Module:
    """The network of ``config``; an MLP with ``norm='group'`` is the LayerNorm MLP of the
    same seed with each LayerNorm replaced by ``GroupNorm(GROUPS, width)`` (normalization
    over groups of consecutive features of each example)."""
    if config.model != "mlp" or config.norm != "group":
        return build_model(config, in_features, num_classes)
    manual_seed(config.seed)
    base = build_model(dataclasses.replace(config, norm="layer"), in_features, num_classes)
    assert isinstance(base, Sequential)
    return Sequential(
        *[
            GroupNorm(GROUPS, m.normalized_shape[0], dtype=np.dtype(config.dtype))
            if isinstance(m, LayerNorm)
            else m
            for m in base
        ]
    )


def batch_size_norm(data, out_dir, quick=False, progress=None, log=print, seed=0) -> Result:
    """BatchNorm / GroupNorm / LayerNorm / none x batch sizes 2..128, on the MLP and the CNN."""
    sizes = _sizes(quick)
    batch_sizes = sizes["batch_sizes"]
    x_tr, y_tr, x_te, y_te = data
    x_te, y_te = subset(x_te, y_te, sizes["test"], seed)
    num_classes = int(max(y_tr.max(), y_te.max()) + 1)
    runs = Runs("batch-size", 2 * len(NORMS) * len(batch_sizes), progress, log)
    results: dict[tuple[str, str, int], Any] = {}
    rows: list[dict[str, Any]] = []
    train_sizes = {}
    for model in ("mlp", "cnn"):
        size = sizes[model]
        x_sub, y_sub = subset(x_tr, y_tr, size["train"], seed)
        train_sizes[model] = len(x_sub)
        for norm in NORMS:
            for bs in batch_sizes:
                cfg = recipe_sgd(model, size, norm, scaled_lr(bs), bs, seed)
                net = build(cfg, x_sub.shape[1], num_classes)
                r = runs(f"{model} norm={norm} batch={bs}", cfg, (x_sub, y_sub, x_te, y_te), model=net)
                row = {
                    "model": model,
                    "norm": norm,
                    "batch_size": bs,
                    "lr": cfg.lr,
                    "steps": cfg.epochs * (len(x_sub) // bs if len(x_sub) > bs else 1),
                    "train_loss": last(r, "train_loss"),
                    "test_loss": last(r, "test_loss"),
                    "test_acc": last(r, "test_acc"),
                    "diverged": r["diverged"],
                    "seconds": r["seconds"],
                }
                if norm == "batch" and not r["diverged"]:
                    # The same network with its running estimates replaced by the exact
                    # statistics of the training set: what is left is training's doing.
                    stats = full_data_stats(r["model"], x_sub)
                    row["test_acc_full_data_stats"] = evaluate_with(r["model"], x_te, y_te, stats)[1]
                    # How far the running estimates are from those statistics (averaged
                    # over the layers): noisier the smaller the batches they came from.
                    mean_err, var_err = distances(running_stats(r["model"]), stats)
                    row["running_mean_err"] = float(np.mean(mean_err))
                    row["running_var_err"] = float(np.mean(var_err))
                results[(model, norm, bs)] = r
                rows.append(row)
    runs.close()
    md = _markdown(rows, sizes, train_sizes, len(x_te))
    png = _plot(rows, batch_sizes, out_dir)
    return {
        "rows": rows,
        "markdown": md,
        "plots": [png],
        "runs": {f"{m} {n} batch={b}": strip(r) for (m, n, b), r in results.items()},
    }


def _markdown(
    rows: list[dict[str, Any]], sizes: dict[str, Any], train_sizes: dict[str, int], n_test: int
) -> str:
    batch_sizes = sizes["batch_sizes"]
    mlp, cnn = sizes["mlp"], sizes["cnn"]
    md = (
        f"Test accuracy ({n_test} test images) after the same number of epochs at every batch "
        f"size: MLP {mlp['depth']}x{mlp['width']} on {train_sizes['mlp']} training images "
        f"({mlp['epochs']} epochs), CNN {'-'.join(map(str, cnn['width']))} on "
        f"{train_sizes['cnn']} ({cnn['epochs']} epochs). SGD with Nesterov momentum 0.9, "
        f"cosine decay, weight decay 5e-4, learning rate {BASE_LR:g} x batch / {BASE_BATCH} "
        f"(linear scaling); GroupNorm with {GROUPS} groups. BatchNorm is evaluated with its "
        "running estimates (evaluation mode); the row below it evaluates the same network "
        "with the exact statistics of the training set instead; the next row gives the error of "
        "the running estimates against those statistics (RMS over the channels, averaged over "
        "the layers, of (running mean - mean) / std and of (running var - var) / var).\n"
    )
    names = NORM_NAMES
    for model in ("mlp", "cnn"):
        by = {(r["norm"], r["batch_size"]): r for r in rows if r["model"] == model}
        table = []
        for norm in NORMS:
            table.append([names[norm]] + [fmt(by[(norm, b)]["test_acc"]) for b in batch_sizes])
            if norm == "batch":
                table.append(
                    ["BatchNorm, full-data statistics"]
                    + [fmt(by[(norm, b)].get("test_acc_full_data_stats")) for b in batch_sizes]
                )
                table.append(
                    ["BatchNorm: running estimates' error, mean / var"]
                    + [_errors(by[(norm, b)]) for b in batch_sizes]
                )
        md += f"\n{MODEL_NAMES[model]}:\n\n"
        md += markdown(["norm \\ batch size"] + [str(b) for b in batch_sizes], table)
    return md


def _errors(row: dict[str, Any]) -> str:
    if "running_mean_err" not in row:
        return "-"
    return f"{row['running_mean_err']:.2g} / {row['running_var_err']:.2g}"


def _plot(rows: list[dict[str, Any]], batch_sizes: tuple[int, ...], out_dir: str) -> str:
    names = NORM_NAMES
    fig, axes = figure(2, 2, width=4.6, height=3.2)
    for j, model in enumerate(("mlp", "cnn")):
        by = {(r["norm"], r["batch_size"]): r for r in rows if r["model"] == model}
        ax_acc, ax_loss = axes[0, j], axes[1, j]
        for norm in NORMS:
            (line,) = ax_acc.plot(
                batch_sizes, [by[(norm, b)]["test_acc"] for b in batch_sizes], "-o", ms=4, label=names[norm]
            )
            ax_loss.plot(
                batch_sizes, [by[(norm, b)]["train_loss"] for b in batch_sizes], "-o", ms=4, label=names[norm]
            )
            if norm == "batch":
                ax_acc.plot(
                    batch_sizes,
                    [by[(norm, b)].get("test_acc_full_data_stats", np.nan) for b in batch_sizes],
                    "--",
                    color=line.get_color(),
                    alpha=0.7,
                    label="BatchNorm, full-data stats",
                )
        ax_acc.set(title=f"{MODEL_NAMES[model]}: test accuracy", ylabel="test accuracy")
        ax_loss.set(title=f"{MODEL_NAMES[model]}: training loss (last epoch)", ylabel="loss", yscale="log")
        for ax in (ax_acc, ax_loss):
            ax.set_xscale("log", base=2)
            ax.set_xticks(batch_sizes)
            ax.set_xticklabels([str(b) for b in batch_sizes])
            ax.set_xlabel("batch size (lr scaled linearly)")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return save_png(fig, out_dir, "batch-size.png")
