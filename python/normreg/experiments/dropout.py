"""Experiment 7: dropout's rescaling (``dropout-scaling``).

Dropout keeps each unit with probability 1 - p. Without a rescale, the expected value of a
kept-or-dropped unit in training is (1 - p) x, while in evaluation (nothing dropped) it is
x: every later layer sees inputs 1 / (1 - p) times larger in evaluation than what it was
trained on. Three ways to handle it:

* inverted dropout (``nn.Dropout``, PyTorch's): multiply the kept units by 1 / (1 - p) in
  training, leave evaluation alone;
* the original formulation (Srivastava et al., 2014): train with ``mask * x`` and multiply
  by 1 - p in evaluation instead (``rescale="test"``);
* no rescale at all (``rescale="none"``): the mistake the rescale exists to prevent.

The last two train identically (same masks, same updates, same seed): they differ only in
evaluation. Inverted dropout and the original formulation compute the same functions with
weights scaled by 1 - p, but SGD follows different paths for them. The measure: the mean
of the input each later Linear layer receives, in training mode (dropout on) and in
evaluation mode, on the same test images; and test accuracy and loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V
from .. import functional as F
from .._reports import figure
from ..grad_mode import no_grad
from ..nn import Dropout, Linear, Module, Sequential
from ..train import TrainConfig, build_model
from ._common import Result, Runs, fmt, last, markdown, save_png, sgd, strip, subset

RESCALES = ("train", "test", "none")
VARIANT_NAMES = {
    "off": "no dropout",
    "train": "inverted (x 1/(1-p) in training)",
    "test": "x (1-p) at test time",
    "none": "no rescale",
}


class ScaledDropout(Module):
    """Dropout with the rescale of the kept units moved or removed.

    In training: each element is kept with probability ``1 - p`` (the masks of
    :func:`normreg.functional.dropout`, so the same generator state drops the same units as
    :class:`~normreg.nn.Dropout`) and **not** rescaled: ``y = mask * x``. In evaluation:
    ``y = (1 - p) * x`` with ``rescale="test"`` (Srivastava et al.'s formulation), ``y = x``
    with ``rescale="none"``. ``rescale="train"`` is inverted dropout, as ``nn.Dropout``.
    """

    def __init__(self, p: float = 0.5, rescale: str = "test") -> None:
        super().__init__()
        where = type(self).__name__
        self.p = V.probability(p, "p", where)
        self.rescale = V.choice(rescale, "rescale", where, RESCALES)

    def forward(self, x: Any) -> np.ndarray:
        keep = 1.0 - self.p
        y, mask = F.dropout(x, self.p, self.training)  # kept units scaled by 1 / keep
        if self.training and mask is not None and self.rescale != "train":
            scale = keep  # undo inverted dropout's 1 / keep: mask * x
        elif not self.training and self.rescale == "test":
            scale = keep
        else:
            scale = 1.0
        self.save_for_backward(mask, scale)
        return y * y.dtype.type(scale) if scale != 1.0 else y

    def backward(self, dy: Any) -> np.ndarray:
        mask, scale = self.saved()
        dx = F.dropout_backward(dy, mask, self.p)
        return dx * dx.dtype.type(scale) if scale != 1.0 else dx

    def extra_repr(self) -> str:
        return f"p={self.p}, rescale={self.rescale!r}"


def build(config: TrainConfig, rescale: str, in_features: int, num_classes: int) -> Module:
    """The MLP of ``config`` with its dropout layers rescaled as ``rescale`` says
    (``"train"``: ``nn.Dropout`` itself)."""
    model = build_model(config, in_features, num_classes)  # seeds the default generator
    assert isinstance(model, Sequential)
    if rescale == "train":
        return model
    return Sequential(*[ScaledDropout(m.p, rescale) if isinstance(m, Dropout) else m for m in model])


def input_means(model: Sequential, x: np.ndarray, training: bool) -> list[float]:
    """The mean of the input of every Linear layer after the first (what each later layer
    receives), for the batch ``x``, in training mode (dropout on) or evaluation mode."""
    was_training = model.training
    model.train(training)
    means = []
    seen_linear = False
    try:
        with no_grad():
            h = x
            for m in model:
                if isinstance(m, Linear):
                    if seen_linear:
                        means.append(float(np.mean(h)))
                    seen_linear = True
                h = m(h)
    finally:
        model.train(was_training)
    return means


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return dict(width=[128, 128, 128], train=2000, epochs=4, test=500, ps=(0.5,))
    return dict(width=[256, 256, 256], train=None, epochs=10, test=None, ps=(0.2, 0.5))


def dropout_scaling(data, out_dir, quick=False, progress=None, log=print, seed=0) -> Result:
    """Inverted dropout vs no rescale vs rescale at test time (and no dropout)."""
    sizes = _sizes(quick)
    x_tr, y_tr, x_te, y_te = data
    x_tr, y_tr = subset(x_tr, y_tr, sizes["train"], seed)
    x_te, y_te = subset(x_te, y_te, sizes["test"], seed)
    probe = x_te[:2000]
    variants = [("off", 0.0)] + [(rescale, p) for p in sizes["ps"] for rescale in RESCALES]
    runs = Runs("dropout-scaling", len(variants), progress, log)
    results, rows = {}, []
    size = dict(model="mlp", width=sizes["width"], epochs=sizes["epochs"], batch_size=128)
    for rescale, p in variants:
        cfg = sgd("none", 0.05, seed, dropout=p, **size)
        model = build(cfg, "train" if rescale == "off" else rescale, x_tr.shape[1], int(y_tr.max()) + 1)
        label = VARIANT_NAMES[rescale] + (f", p={p:g}" if p else "")
        r = runs(label, cfg, (x_tr, y_tr, x_te, y_te), model=model)
        assert isinstance(r["model"], Sequential)
        train_means = input_means(r["model"], probe, training=True)
        eval_means = input_means(r["model"], probe, training=False)
        results[label] = r
        rows.append(
            {
                "variant": rescale,
                "p": p,
                "label": label,
                "mean_input_train": train_means,
                "mean_input_eval": eval_means,
                "eval_over_train": [e / t if t else float("nan") for e, t in zip(eval_means, train_means)],
                "train_loss": last(r, "train_loss"),
                "test_loss": last(r, "test_loss"),
                "test_acc": last(r, "test_acc"),
                "diverged": r["diverged"],
            }
        )
    runs.close()
    md = _markdown(rows, sizes, len(x_tr), len(x_te), len(probe))
    plots = [_plot(rows, results, out_dir)]
    return {"rows": rows, "markdown": md, "plots": plots, "runs": {k: strip(r) for k, r in results.items()}}


def _markdown(rows, sizes, n_train, n_test, n_probe) -> str:
    widths = sizes["width"]
    md = (
        f"MLP 784-{'-'.join(map(str, widths))}-10 without normalization, dropout after each "
        f"hidden layer, {sizes['epochs']} epochs of SGD (Nesterov 0.9, lr 0.05, cosine) on "
        f"{n_train} training images, tested on {n_test}. Mean input of each later Linear layer "
        f"over {n_probe} test images, evaluation mode / training mode (1 = the layer sees in "
        "evaluation what it was trained on); test accuracy (test loss).\n\n"
    )
    n_sites = len(widths)
    header = ["dropout", *(f"input of layer {k + 2}: eval / train" for k in range(n_sites - 1))]
    header += ["input of the output layer: eval / train", "test acc (loss)"]
    table = []
    for r in rows:
        ratios = [f"{t:.3g} / {s:.3g} = **{q:.2f}**" for t, s, q in _triples(r)]
        table.append([r["label"], *ratios, f"{fmt(r['test_acc'])} ({fmt(r['test_loss'], 3)})"])
    return md + markdown(header, table)


def _triples(r: dict[str, Any]) -> list[tuple[float, float, float]]:
    return list(zip(r["mean_input_eval"], r["mean_input_train"], r["eval_over_train"]))


def _plot(rows, results, out_dir) -> str:
    fig, axes = figure(2, 1, width=4.8, height=3.4)
    ax = axes[0, 0]
    colours = {r["label"]: f"C{i}" for i, r in enumerate(rows)}  # one per run, in both panels
    dropped = [r for r in rows if r["p"] > 0]
    n_sites = len(dropped[0]["eval_over_train"]) if dropped else 0
    width = 0.8 / max(len(dropped), 1)
    for i, r in enumerate(dropped):
        xs = np.arange(n_sites) + (i - (len(dropped) - 1) / 2) * width
        ax.bar(xs, r["eval_over_train"], width, label=r["label"], color=colours[r["label"]])
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(np.arange(n_sites))
    ax.set_xticklabels([f"layer {k + 2}" for k in range(n_sites - 1)] + ["output layer"])
    ax.set(ylabel="mean input, eval / train", title="what each later layer receives", yscale="log")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3, axis="y")
    ax = axes[0, 1]
    for label, r in results.items():
        ax.plot(
            [h["epoch"] for h in r["history"]],
            [h["test_acc"] for h in r["history"]],
            "-o",
            ms=3,
            label=label,
            color=colours.get(label),
        )
    ax.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    return save_png(fig, out_dir, "dropout-scaling.png")
