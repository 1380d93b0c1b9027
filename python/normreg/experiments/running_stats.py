"""Experiment 6: BatchNorm's running estimates (``running-stats``).

In training a BatchNorm layer normalizes with the statistics of the batch; in evaluation,
with running estimates updated at every training step as
``running := (1 - m) * running + m * batch_stat``. Two questions:

* What if evaluation used batch statistics instead (of an evaluation batch of 1, of 8, of
  the whole test set)? Then an image's prediction depends on the images evaluated with it.
  With one image per batch: the CNN's BatchNorm2d still has the 28x28 (14x14, 7x7) positions
  of each channel to average over, so it normalizes each image by its own statistics, as
  InstanceNorm does; the MLP's BatchNorm1d has one value per feature, x - mean = 0, and
  every layer outputs its bias whatever the image: all images get the same prediction.
* How far are the running estimates from the statistics they estimate, and what does the
  momentum m change? The target is the full-data statistics: the mean and variance of each
  layer's input over the whole training set, with the network fixed (each earlier layer
  normalized by its own full-data statistics). The momentum does not change training at all
  (training normalizes with batch statistics), so one training run serves every momentum:
  the run keeps, beside the layers' own estimates (m = 0.1), the estimates each momentum of
  ``MOMENTA`` would have made from the same batch statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import functional as F
from .._reports import figure
from ..nn import Module, Sequential
from ..train import build_model, evaluate
from ._bnstats import (
    BN_TYPES,
    Stats,
    bn_layers,
    distances,
    evaluate_with,
    flat,
    full_data_stats,
    running_stats,
)
from ._common import Result, Runs, fmt, markdown, recipe_sgd, save_png, subset

MOMENTA = (0.001, 0.01, 0.1, 0.5)
#: Evaluation batch sizes for batch statistics; None: the whole test set as one batch.
EVAL_BATCHES = (1, 8, None)
MODEL_NAMES = {"mlp": "MLP", "cnn": "CNN"}


class Tracked(Sequential):
    """``model``'s layers, keeping for each momentum of ``momenta`` the running estimates a
    BatchNorm layer with that momentum would have (PyTorch's update, from the same batch
    statistics: the batch mean and the unbiased batch variance, from 0 and 1), and calling
    ``on_step(step)`` before the training steps listed in ``measure_at`` (``step`` counts
    the forwards in training mode, when the layers update their estimates). Forward and
    backward are the model's."""

    def __init__(
        self,
        model: Module,
        momenta: tuple[float, ...],
        measure_at: set[int] | None = None,
        on_step: Callable[[int], Any] | None = None,
    ) -> None:
        super().__init__(*flat(model))
        self.momenta = momenta
        self.measure_at = set(measure_at or ())
        self.on_step = on_step
        self.step = 0
        self.estimates = {
            m: [(np.zeros(bn.num_features), np.ones(bn.num_features)) for bn in bn_layers(self)]
            for m in momenta
        }

    def forward(self, x: Any) -> Any:
        # Whenever the layers update their own estimates: every forward in training mode.
        training_step = self.training
        if training_step and self.on_step is not None and self.step in self.measure_at:
            self.on_step(self.step)
        k = 0
        for layer in self:
            if training_step and isinstance(layer, BN_TYPES):
                self._observe(k, x)
                k += 1
            x = layer(x)
        self.save_for_backward()
        if training_step:
            self.step += 1
        return x

    def _observe(self, k: int, x: Any) -> None:
        moments = F.batch_norm_stats(x)  # (2, C): mean, sum of squared deviations
        n = np.size(x) // np.shape(x)[1]
        mean, var = moments[0], moments[1] / (n - 1)
        for m, est in self.estimates.items():
            rm, rv = est[k]
            est[k] = ((1 - m) * rm + m * mean, (1 - m) * rv + m * var)


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return dict(
            mlp=dict(width=128, depth=2, train=1000, epochs=2, batch=64),
            cnn=dict(width=(8, 16, 32), depth=None, train=512, epochs=2, batch=32),
            test=500,
            probe=300,
        )
    return dict(
        mlp=dict(width=256, depth=3, train=20000, epochs=5, batch=128),
        cnn=dict(width=(16, 32, 64), depth=None, train=10000, epochs=5, batch=128),
        test=None,
        probe=2000,
    )


def _lr(size: dict[str, Any]) -> float:
    """0.1 at batch 128, scaled linearly with the batch size."""
    return 0.1 * size["batch"] / 128


def _measure_steps(total: int, per_epoch: int) -> set[int]:
    """Powers of two (the first steps, for the fast momenta), then four times an epoch."""
    steps = {2**k for k in range(total.bit_length()) if 2**k < total}
    steps |= set(range(0, total, max(1, per_epoch // 4)))
    return {s for s in steps if s > 0}


def _train_one(model_name, size, data, probe, seed, runs) -> dict[str, Any]:
    x_sub, y_sub, x_te, y_te = data
    x_probe, y_probe = probe
    cfg = recipe_sgd(model_name, size, "batch", _lr(size), size["batch"], seed)
    per_epoch = len(x_sub) // cfg.batch_size
    total = per_epoch * cfg.epochs
    curve: list[dict[str, Any]] = []
    net = Tracked(
        build_model(cfg, x_sub.shape[1], int(y_sub.max()) + 1), MOMENTA, _measure_steps(total, per_epoch)
    )

    def measure(step: int) -> None:
        truth = full_data_stats(net, x_sub)
        point: dict[str, Any] = {"step": step, "epoch": step / per_epoch, "mean_err": {}, "var_err": {}}
        point["test_acc"] = {}
        for m, est in net.estimates.items():
            mean_err, var_err = distances(est, truth)
            point["mean_err"][str(m)], point["var_err"][str(m)] = mean_err, var_err
            point["test_acc"][str(m)] = evaluate_with(net, x_probe, y_probe, est)[1]
        point["test_acc"]["full data"] = evaluate_with(net, x_probe, y_probe, truth)[1]
        curve.append(point)

    net.on_step = measure
    r = runs(f"{model_name} BatchNorm", cfg, data, model=net)
    measure(net.step)
    r.update(curve=curve, tracked=net, truth=full_data_stats(net, x_sub))
    return r


def _evaluations(net: Tracked, truth: Stats, x_te: np.ndarray, y_te: np.ndarray, seed: int) -> list[tuple]:
    """(label, kind, momentum or eval batch, test loss, test acc) for every way of evaluating."""
    out: list[tuple] = []
    loss, acc = evaluate(net, x_te, y_te)  # the layers' own running estimates, as users evaluate
    out.append(("running estimates, momentum 0.1 (evaluation mode)", "running", 0.1, loss, acc))
    for m in MOMENTA:
        loss, acc = evaluate_with(net, x_te, y_te, net.estimates[m])
        out.append((f"running estimates, momentum {m:g}", "momentum", m, loss, acc))
    loss, acc = evaluate_with(net, x_te, y_te, truth)
    out.append(("full training-set statistics", "full data", None, loss, acc))
    order = np.random.default_rng(seed).permutation(len(x_te))  # batches of mixed classes
    x_mix, y_mix = x_te[order], y_te[order]
    for b in EVAL_BATCHES:
        if b is None:  # one batch of the whole test set: its exact statistics, layer by layer
            loss, acc = evaluate_with(net, x_te, y_te, full_data_stats(net, x_te))
            out.append(("batch statistics, the whole test set as one batch", "batch", len(x_te), loss, acc))
        else:
            loss, acc = evaluate_with(net, x_mix, y_mix, "batch", batch_size=b)
            out.append((f"batch statistics, evaluation batches of {b}", "batch", b, loss, acc))
    return out


def running_estimates(data, out_dir, quick=False, progress=None, log=print, seed=0) -> Result:
    """BatchNorm evaluated with running estimates (momenta 0.001..0.5), full-data statistics
    and batch statistics; the running estimates' distance from the full-data statistics."""
    sizes = _sizes(quick)
    x_tr, y_tr, x_te, y_te = data
    x_te, y_te = subset(x_te, y_te, sizes["test"], seed)
    probe = subset(x_te, y_te, sizes["probe"], seed + 1)
    runs = Runs("running-stats", 2, progress, log)
    results, rows = {}, []
    for model in ("mlp", "cnn"):
        size = sizes[model]
        x_sub, y_sub = subset(x_tr, y_tr, size["train"], seed)
        r = _train_one(model, size, (x_sub, y_sub, x_te, y_te), probe, seed, runs)
        results[model] = r
        final = r["curve"][-1]
        for label, kind, value, loss, acc in _evaluations(r["tracked"], r["truth"], x_te, y_te, seed):
            row = {"model": model, "evaluation": label, "kind": kind, "value": value}
            row.update(test_loss=loss, test_acc=acc)
            if kind == "momentum":
                row["mean_err"] = float(np.mean(final["mean_err"][str(value)]))
                row["var_err"] = float(np.mean(final["var_err"][str(value)]))
            rows.append(row)
        r["train_size"] = len(x_sub)
        r["own_vs_tracked"] = distances(running_stats(r["tracked"]), r["tracked"].estimates[0.1])
    runs.close()
    md = _markdown(rows, sizes, results, len(x_te))
    plots = [_plot_accuracy(rows, out_dir), _plot_curves(results, out_dir)]
    return {
        "rows": rows,
        "markdown": md,
        "plots": plots,
        "runs": {
            m: {k: v for k, v in r.items() if k not in ("model", "tracked", "truth")}
            for m, r in results.items()
        },
    }


def _markdown(rows, sizes, results, n_test) -> str:
    md = (
        "BatchNorm networks trained once each (SGD Nesterov 0.9, cosine, weight decay 5e-4, "
        f"{sizes['mlp']['epochs']} epochs): MLP {sizes['mlp']['depth']}x{sizes['mlp']['width']} "
        f"on {results['mlp']['train_size']} training images (batch {sizes['mlp']['batch']}, lr "
        f"{_lr(sizes['mlp']):g}), CNN {'-'.join(map(str, sizes['cnn']['width']))} on "
        f"{results['cnn']['train_size']} (batch {sizes['cnn']['batch']}, lr {_lr(sizes['cnn']):g}); "
        f"then evaluated on {n_test} test images in each way "
        "below. The momenta other than PyTorch's 0.1 are running estimates kept from the same "
        "batch statistics during the same run (the momentum does not change training). "
        "Error of the final estimates against the exact training-set statistics: RMS over the "
        "channels (averaged over the layers) of (running mean - mean) / std and of "
        "(running var - var) / var. With evaluation batches of 1, the MLP's layers output "
        "their bias for any image (one value per feature: x - mean = 0), so every image gets "
        "the same class; the CNN's normalize each image by its own per-channel statistics "
        "over the positions.\n\n"
    )
    table = []
    labels = [r["evaluation"] for r in rows if r["model"] == "mlp"]
    by = {(r["model"], r["evaluation"]): r for r in rows}
    for label in labels:
        cells = [label]
        for model in ("mlp", "cnn"):
            r = by[(model, label)]
            err = f", err {r['mean_err']:.3g} / {r['var_err']:.3g}" if "mean_err" in r else ""
            cells.append(f"{fmt(r['test_acc'])} (loss {fmt(r['test_loss'], 3)}{err})")
        table.append(cells)
    md += markdown(["evaluation", "MLP test acc", "CNN test acc"], table)
    return md


def _plot_accuracy(rows, out_dir) -> str:
    fig, axes = figure(2, 1, width=5.2, height=3.6)
    for ax, model in zip(axes[0], ("mlp", "cnn")):
        mine = [r for r in rows if r["model"] == model]
        ys = np.arange(len(mine))
        accs = [r["test_acc"] for r in mine]
        ax.barh(ys, accs, color=[_colour(r["kind"]) for r in mine])
        for y, acc in zip(ys, accs):
            ax.text(acc + 0.01, y, f"{acc:.3f}", va="center", fontsize=6)
        ax.set_yticks(ys)
        ax.set_yticklabels(
            [r["evaluation"].replace("evaluation mode", "eval mode") for r in mine], fontsize=7
        )
        ax.invert_yaxis()
        ax.set(xlim=(0, 1.1), xlabel="test accuracy", title=f"{MODEL_NAMES[model]} with BatchNorm")
        ax.grid(alpha=0.3, axis="x")
    return save_png(fig, out_dir, "running-stats.png")


def _colour(kind: str) -> str:
    return {"running": "C0", "momentum": "C0", "full data": "C2", "batch": "C3"}[kind]


def _plot_curves(results, out_dir) -> str:
    fig, axes = figure(2, 3, width=4.4, height=2.9)
    for j, model in enumerate(("mlp", "cnn")):
        curve = [p for p in results[model]["curve"] if p["step"] > 0]
        steps = [p["step"] for p in curve]
        for m in MOMENTA:
            key = str(m)
            axes[0, j].plot(steps, [np.mean(p["mean_err"][key]) for p in curve], "-", label=f"m = {m:g}")
            axes[1, j].plot(steps, [np.mean(p["var_err"][key]) for p in curve], "-", label=f"m = {m:g}")
            axes[2, j].plot(steps, [p["test_acc"][key] for p in curve], "-", label=f"m = {m:g}")
        axes[2, j].plot(steps, [p["test_acc"]["full data"] for p in curve], "k:", label="full-data stats")
        name = MODEL_NAMES[model]
        axes[0, j].set(yscale="log", ylabel="|mean error| / std", title=f"{name}: running mean")
        axes[1, j].set(yscale="log", ylabel="|var error| / var", title=f"{name}: running variance")
        axes[2, j].set(ylabel="test accuracy (probe)", title=f"{name}: test accuracy", ylim=(0, 1))
        for i in range(3):
            axes[i, j].set(xscale="log", xlabel="training step")
            axes[i, j].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    axes[2, 0].legend(fontsize=7)
    return save_png(fig, out_dir, "running-stats-curves.png")
