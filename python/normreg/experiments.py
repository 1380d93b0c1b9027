"""The lecture's claims as experiments: ``normreg-experiments`` (or ``python -m normreg.experiments``).

1. ``norm-lr``: no normalization / BatchNorm / LayerNorm across learning rates spanning two
   orders of magnitude with plain SGD -- normalization tolerates higher learning rates.
2. ``regularization``: an over-parameterized MLP on a small training subset with no
   regularization / dropout / weight decay / both -- train vs test accuracy and the gap.
3. ``init``: well and badly scaled initialization, with and without normalization --
   normalization makes training insensitive to the scale of the initial weights.
4. ``summary``: very different configurations that reach similar test accuracy.

Each experiment writes ``<name>.md`` (a markdown table), ``<name>.json`` (every run's
configuration and history) and PNG plots into the output directory, shows a progress bar
over its runs, and has a ``--quick`` mode (small subsets, few epochs: well under a minute)
besides the full one (a few minutes each on 2 cores).

From Python: ``run(name, out_dir, data=None, quick=False)`` returns a dict with the rows of
the table, the markdown, and the paths written.
"""
import argparse
import dataclasses
import math
import os
import sys
import time

import numpy as np

from .train import TrainConfig, evaluate, build_model, train, write_json

__all__ = ["EXPERIMENTS", "run", "run_all", "main", "norm_lr", "regularization", "init_scale",
           "summary"]


# ---- helpers ----------------------------------------------------------------------------------


def _subset(x, y, n, seed):
    if n is None or n >= len(x):
        return x, y
    pick = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return x[pick], y[pick]


def _figure(ncols=1, nrows=1, width=4.2, height=3.3):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width * ncols, height * nrows), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, out_dir, name):
    fig.tight_layout()
    path = os.path.join(out_dir, name)
    fig.savefig(path)
    return path


def _fmt(v, digits=4):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "diverged"
    return f"{v:.{digits}f}"


def _markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


class _Runs:
    """Runs a list of (label, config[, model]) with a progress bar and a log line per run."""

    def __init__(self, name, total, progress, log):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, desc=name, unit="run", leave=True,
                        disable=None if progress is None else not progress, dynamic_ncols=True)
        self.name, self.log = name, log

    def __call__(self, label, config, data, model=None):
        self.bar.set_postfix_str(label)
        t0 = time.perf_counter()
        result = train(config, data, progress=False, log=None, model=model,
                       record_every=None)
        result["seconds"] = time.perf_counter() - t0
        last = result["history"][-1] if result["history"] else {}
        if self.log:
            status = "diverged" if result["diverged"] else \
                f"train loss {last['train_loss']:.4f}, test acc {last['test_acc']:.4f}"
            msg = f"[{self.name}] {label}: {status} ({result['seconds']:.1f} s)"
            (self.log if self.bar.disable else self.bar.write)(msg)
        self.bar.update(1)
        return result

    def close(self):
        self.bar.close()


def _last(result, key):
    h = result["history"]
    if result["diverged"] or not h:
        return float("nan")
    return h[-1][key]


def _steps(result):
    """Training-loss curve as (steps, losses); NaN after a divergence."""
    s = np.array(result["steps"], dtype=float).reshape(-1, 2)
    return s[:, 0], s[:, 1]


def _strip(result):
    return {k: v for k, v in result.items() if k != "model"}


def _cell(result):
    if result["diverged"]:
        return "diverged"
    return f"{_fmt(_last(result, 'test_acc'))} ({_fmt(_last(result, 'train_loss'), 3)})"


# ---- 1. normalization x learning rate ---------------------------------------------------------


def norm_lr(data, out_dir, quick=False, progress=None, log=print, seed=0):
    """No norm / BatchNorm / LayerNorm x learning rates over two orders of magnitude, plain SGD."""
    if quick:
        lrs, norms = [0.01, 0.1, 1.0], ["none", "batch", "layer"]
        base = dict(width=64, depth=2, epochs=2, batch_size=64, train_subset=1000)
        test_n = 1000
    else:
        lrs, norms = [0.01, 0.03, 0.1, 0.3, 1.0], ["none", "batch", "layer"]
        base = dict(width=256, depth=3, epochs=5, batch_size=128, train_subset=20000)
        test_n = None
    x_tr, y_tr, x_te, y_te = data
    x_te, y_te = _subset(x_te, y_te, test_n, seed)
    data = (x_tr, y_tr, x_te, y_te)
    runs = _Runs("norm-lr", len(lrs) * len(norms), progress, log)
    results = {}
    for norm in norms:
        for lr in lrs:
            cfg = TrainConfig(norm=norm, dropout=0.0, optimizer="sgd", lr=lr, momentum=0.0,
                              weight_decay=0.0, schedule="constant", seed=seed, **base)
            results[(norm, lr)] = runs(f"norm={norm} lr={lr:g}", cfg, data)
    runs.close()

    rows = []
    for norm in norms:
        for lr in lrs:
            r = results[(norm, lr)]
            rows.append({"norm": norm, "lr": lr, "train_loss": _last(r, "train_loss"),
                         "test_loss": _last(r, "test_loss"), "test_acc": _last(r, "test_acc"),
                         "diverged": r["diverged"]})
    names = {"none": "no norm", "batch": "BatchNorm", "layer": "LayerNorm"}
    md = (f"Test accuracy after {base['epochs']} epochs of plain SGD (MLP {base['depth']}x{base['width']}, "
          f"{min(base['train_subset'], len(x_tr))} training images, batch {base['batch_size']}); "
          "final training loss in parentheses.\n\n")
    md += _markdown(["norm \\ lr"] + [f"{lr:g}" for lr in lrs],
                    [[names[n]] + [_cell(results[(n, lr)]) for lr in lrs] for n in norms])

    fig, axes = _figure(2, 1, width=4.6)
    ax = axes[0, 0]
    for n in norms:
        ax.plot(lrs, [_last(results[(n, lr)], "test_acc") for lr in lrs], "-o", label=names[n])
    ax.set(xscale="log", xlabel="learning rate (plain SGD)", ylabel="test accuracy",
           title="final test accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    ax = axes[0, 1]
    for n in norms:
        ax.plot(lrs, [_last(results[(n, lr)], "train_loss") for lr in lrs], "-o", label=names[n])
    ax.set(xscale="log", yscale="log", xlabel="learning rate (plain SGD)", ylabel="training loss",
           title="final training loss (missing: diverged)")
    ax.grid(alpha=0.3)
    ax.legend()
    summary_png = _save(fig, out_dir, "norm-lr.png")

    fig, axes = _figure(len(norms), 1, width=3.6)
    for ax, n in zip(axes[0], norms):
        for lr in lrs:
            steps, losses = _steps(results[(n, lr)])
            ax.plot(steps, losses, label=f"lr {lr:g}")
        ax.set(yscale="log", xlabel="step", title=names[n])
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("training loss")
    axes[0, -1].legend(fontsize=8)
    curves_png = _save(fig, out_dir, "norm-lr-curves.png")
    return {"rows": rows, "markdown": md, "plots": [summary_png, curves_png],
            "runs": {f"{n} lr={lr:g}": _strip(r) for (n, lr), r in results.items()}}


# ---- 2. regularization and generalization -----------------------------------------------------


def regularization(data, out_dir, quick=False, progress=None, log=print, seed=0):
    """An over-parameterized MLP on a small subset: none / dropout / weight decay / both."""
    if quick:
        base = dict(width=[128, 128], epochs=8, batch_size=50)
        n_train, test_n = 300, 1000
    else:
        base = dict(width=[512, 512], epochs=40, batch_size=50)
        n_train, test_n = 1000, None
    dropout_p, decay = 0.5, 5e-3
    variants = [("none", 0.0, 0.0), ("dropout", dropout_p, 0.0), ("weight decay", 0.0, decay),
                ("dropout + weight decay", dropout_p, decay)]
    x_tr, y_tr, x_te, y_te = data
    x_sub, y_sub = _subset(x_tr, y_tr, n_train, seed)
    x_te, y_te = _subset(x_te, y_te, test_n, seed)
    sub = (x_sub, y_sub, x_te, y_te)
    runs = _Runs("regularization", len(variants), progress, log)
    results, rows = {}, []
    for label, p, wd in variants:
        cfg = TrainConfig(norm="none", dropout=p, optimizer="sgd", lr=0.05, momentum=0.9,
                          weight_decay=wd, schedule="cosine", seed=seed, **base)
        r = runs(label, cfg, sub)
        _, train_acc = evaluate(r["model"], x_sub, y_sub)  # evaluation mode: no dropout
        test_acc = _last(r, "test_acc")
        r["train_acc_eval"] = train_acc
        results[label] = r
        rows.append({"regularization": label, "dropout": p, "weight_decay": wd,
                     "train_acc": train_acc, "test_acc": test_acc, "gap": train_acc - test_acc,
                     "test_loss": _last(r, "test_loss")})
    runs.close()
    nparams = sum(p.size for p in results["none"]["model"].parameters())
    md = (f"MLP {'-'.join(map(str, [x_tr.shape[1]] + base['width'] + [10]))} ({nparams:,} parameters, "
          f"no normalization) on {len(x_sub)} training images, {base['epochs']} epochs of SGD "
          f"(momentum 0.9, lr 0.05, cosine); dropout p={dropout_p}, weight decay {decay:g}. "
          "Train accuracy measured in evaluation mode.\n\n")
    md += _markdown(["regularization", "train acc", "test acc", "gap", "test loss"],
                    [[r["regularization"], _fmt(r["train_acc"]), _fmt(r["test_acc"]),
                      _fmt(r["gap"]), _fmt(r["test_loss"], 3)] for r in rows])

    fig, axes = _figure(2, 1, width=4.6)
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
        line, = ax.plot(ep, [h["test_loss"] for h in r["history"]], label=f"{label} (test)")
        ax.plot(ep, [h["train_loss"] for h in r["history"]], ":", color=line.get_color())
    ax.set(xlabel="epoch", ylabel="loss", yscale="log", title="test loss (solid), train loss (dotted)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    png = _save(fig, out_dir, "regularization.png")
    return {"rows": rows, "markdown": md, "plots": [png],
            "runs": {k: _strip(r) for k, r in results.items()}}


# ---- 3. initialization x normalization ----------------------------------------------------


def _kaiming_init(model, scale, seed):
    """Linear weights ~ N(0, scale^2 * 2 / fan_in) (scale 1: Kaiming/He), biases 0."""
    from .nn import Linear
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, Linear):
            std = scale * math.sqrt(2.0 / m.in_features)
            m.weight.data[...] = rng.normal(0.0, std, m.weight.shape)
            if m.bias is not None:
                m.bias.data[...] = 0


def _activation_stds(model, x):
    """Standard deviation of the output of every ReLU (hidden layer) for one batch, at init."""
    from .nn import ReLU
    stds = []
    h = x
    model.train()
    for m in model:
        h = m(h)
        if isinstance(m, ReLU):
            stds.append(float(np.std(h)))
    return stds


def init_scale(data, out_dir, quick=False, progress=None, log=print, seed=0):
    """Initial weight scale (too small / Kaiming / too large) x normalization."""
    if quick:
        base = dict(width=64, depth=4, epochs=2, batch_size=64, train_subset=1000)
        test_n = 1000
    else:
        base = dict(width=256, depth=6, epochs=4, batch_size=128, train_subset=20000)
        test_n = None
    scales, norms = [0.25, 1.0, 4.0], ["none", "batch", "layer"]
    names = {"none": "no norm", "batch": "BatchNorm", "layer": "LayerNorm"}
    x_tr, y_tr, x_te, y_te = data
    x_te, y_te = _subset(x_te, y_te, test_n, seed)
    data = (x_tr, y_tr, x_te, y_te)
    probe = x_tr[:256]
    runs = _Runs("init", len(scales) * len(norms), progress, log)
    results, stds = {}, {}
    for norm in norms:
        for scale in scales:
            cfg = TrainConfig(norm=norm, dropout=0.0, optimizer="sgd", lr=0.01, momentum=0.9,
                              weight_decay=0.0, schedule="constant", seed=seed, **base)
            model = build_model(cfg, x_tr.shape[1], 10)
            _kaiming_init(model, scale, seed)
            stds[(norm, scale)] = _activation_stds(model, probe)
            results[(norm, scale)] = runs(f"norm={norm} init x{scale:g}", cfg, data, model=model)
    runs.close()
    rows = [{"norm": n, "init_scale": s, "train_loss": _last(results[(n, s)], "train_loss"),
             "test_acc": _last(results[(n, s)], "test_acc"), "diverged": results[(n, s)]["diverged"],
             "activation_std_at_init": stds[(n, s)]} for n in norms for s in scales]
    md = (f"Weights ~ N(0, (scale * sqrt(2 / fan_in))^2) (scale 1 = Kaiming), MLP {base['depth']}x{base['width']}, "
          f"SGD momentum 0.9, lr 0.01, {base['epochs']} epochs on {min(base['train_subset'], len(x_tr))} images. "
          "Test accuracy (final training loss); last column: std of the last hidden layer's "
          "activations at initialization.\n\n")
    md += _markdown(["norm", "init scale", "test acc", "train loss", "last hidden std at init"],
                    [[names[r["norm"]], f"x{r['init_scale']:g}", _fmt(r["test_acc"]),
                      _fmt(r["train_loss"], 3), f"{r['activation_std_at_init'][-1]:.3g}"] for r in rows])

    fig, axes = _figure(len(norms), 2, width=3.6, height=3.0)
    for j, n in enumerate(norms):
        ax = axes[0, j]
        for s in scales:
            ax.plot(range(1, len(stds[(n, s)]) + 1), stds[(n, s)], "-o", ms=3, label=f"x{s:g}")
        ax.set(yscale="log", xlabel="hidden layer", title=f"{names[n]}: activation std at init")
        ax.grid(alpha=0.3)
        ax = axes[1, j]
        for s in scales:
            steps, losses = _steps(results[(n, s)])
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
    png = _save(fig, out_dir, "init.png")
    return {"rows": rows, "markdown": md, "plots": [png],
            "runs": {f"{n} x{s:g}": _strip(r) for (n, s), r in results.items()}}


# ---- 4. different roads, similar accuracy --------------------------------------------------


def _summary_configs(quick):
    e = 2 if quick else 8
    big = [256, 128] if quick else [1024, 512, 256]
    return [
        ("MLP BatchNorm + dropout, SGD Nesterov (the default recipe)",
         TrainConfig(width=big, norm="batch", dropout=0.2, optimizer="sgd", lr=0.1,
                     weight_decay=5e-4, epochs=e)),
        ("MLP LayerNorm, AdamW",
         TrainConfig(width=[512, 512] if not quick else [128, 128], norm="layer", dropout=0.0,
                     optimizer="adamw", lr=1e-3, weight_decay=0.05, epochs=e)),
        ("MLP no norm + dropout, Adam",
         TrainConfig(width=[512, 256] if not quick else [128, 64], norm="none", dropout=0.2,
                     optimizer="adam", lr=1e-3, weight_decay=0.0, epochs=e, batch_size=128)),
        ("MLPResNet (hw2: 3 blocks of 100, BatchNorm, dropout 0.1), Adam",
         TrainConfig(model="resnet", width=100, depth=3, norm="batch", dropout=0.1,
                     optimizer="adam", lr=1e-3, weight_decay=1e-3, epochs=e, batch_size=128)),
        ("wide shallow MLP, no norm, plain SGD",
         TrainConfig(width=[1024] if not quick else [256], norm="none", dropout=0.0,
                     optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, epochs=e,
                     batch_size=64, schedule="cosine")),
    ]


def summary(data, out_dir, quick=False, progress=None, log=print, seed=0):
    """Several very different configurations that reach similar test accuracy."""
    configs = _summary_configs(quick)
    x_tr, y_tr, x_te, y_te = data
    if quick:
        x_tr, y_tr = _subset(x_tr, y_tr, 2000, seed)
        x_te, y_te = _subset(x_te, y_te, 1000, seed)
    runs = _Runs("summary", len(configs), progress, log)
    results, rows = {}, []
    for label, cfg in configs:
        cfg = dataclasses.replace(cfg, seed=seed)
        r = runs(label, cfg, (x_tr, y_tr, x_te, y_te))
        results[label] = r
        c = r["config"]
        nparams = sum(p.size for p in r["model"].parameters())
        rows.append({"configuration": label, "model": c["model"], "width": c["width"],
                     "norm": c["norm"], "dropout": c["dropout"], "optimizer": c["optimizer"],
                     "lr": c["lr"], "weight_decay": c["weight_decay"], "batch_size": c["batch_size"],
                     "epochs": c["epochs"], "parameters": int(nparams),
                     "train_acc": _last(r, "train_acc"), "test_acc": _last(r, "test_acc"),
                     "seconds": r["seconds"]})
    runs.close()
    md = (f"{len(x_tr)} training images, test accuracy on {len(x_te)}; train accuracy is the "
          "running mean over the last epoch (training mode).\n\n")
    md += _markdown(["configuration", "hidden", "optimizer (lr, wd)", "params", "epochs",
                     "train acc", "test acc", "time"],
                    [[r["configuration"], r["width"], f"{r['optimizer']} ({r['lr']:g}, {r['weight_decay']:g})",
                      f"{r['parameters']:,}", r["epochs"], _fmt(r["train_acc"]), _fmt(r["test_acc"]),
                      f"{r['seconds']:.0f} s"] for r in rows])
    fig, axes = _figure(1, 1, width=7.5, height=3.6)
    ax = axes[0, 0]
    for label, r in results.items():
        ax.plot([h["epoch"] for h in r["history"]], [h["test_acc"] for h in r["history"]], "-o",
                ms=3, label=label)
    ax.set(xlabel="epoch", ylabel="test accuracy", title="different configurations, similar accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    png = _save(fig, out_dir, "summary.png")
    return {"rows": rows, "markdown": md, "plots": [png],
            "runs": {k: _strip(r) for k, r in results.items()}}


# ---- running ----------------------------------------------------------------------------------

EXPERIMENTS = {
    "norm-lr": norm_lr,
    "regularization": regularization,
    "init": init_scale,
    "summary": summary,
}

_TITLES = {
    "norm-lr": "1. Normalization x learning rate",
    "regularization": "2. Regularization and generalization",
    "init": "3. Initialization x normalization",
    "summary": "4. Different configurations, similar accuracy",
}


def run(name, out_dir, data=None, data_dir=None, quick=False, progress=None, log=print, seed=0):
    """Run the experiment ``name`` (one of :data:`EXPERIMENTS`) and write ``<name>.md``,
    ``<name>.json`` and its PNGs into ``out_dir``. ``data``: ``(x_train, y_train, x_test,
    y_test)``; default :func:`normreg.data.load_fashion_mnist(data_dir)`. Returns a dict with
    ``rows``, ``markdown``, ``plots``, ``json``, ``markdown_path`` and ``seconds``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    if data is None:
        from .data import load_fashion_mnist
        data = load_fashion_mnist(data_dir)
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    result = EXPERIMENTS[name](data, out_dir, quick=quick, progress=progress, log=log, seed=seed)
    result["seconds"] = time.perf_counter() - t0
    result["markdown"] = f"### {_TITLES[name]}\n\n" + result["markdown"]
    md_path = os.path.join(out_dir, f"{name}.md")
    with open(md_path, "w") as f:
        f.write(result["markdown"])
    json_path = os.path.join(out_dir, f"{name}.json")
    write_json({"experiment": name, "quick": quick, "seconds": result["seconds"],
                "rows": result["rows"], "runs": result["runs"]}, json_path)
    result.update(json=json_path, markdown_path=md_path)
    return result


def run_all(out_dir, data=None, data_dir=None, quick=False, progress=None, log=print, seed=0,
            names=None):
    """Run several experiments (default: all four); returns {name: result}."""
    if data is None:
        from .data import load_fashion_mnist
        data = load_fashion_mnist(data_dir)
    return {name: run(name, out_dir, data, quick=quick, progress=progress, log=log, seed=seed)
            for name in (names or EXPERIMENTS)}


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="normreg-experiments",
        description="Run the lecture's experiments on Fashion-MNIST: " + "; ".join(
            f"{k} ({_TITLES[k][3:].lower()})" for k in EXPERIMENTS) + ".")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT", default=["all"],
                   help=f"which to run: all (default) or any of {', '.join(EXPERIMENTS)}")
    p.add_argument("--quick", action="store_true", help="small subsets and few epochs (< 1 minute each)")
    p.add_argument("--out", default="runs/experiments", help="output directory")
    p.add_argument("--data-dir", default=None, help="directory with the Fashion-MNIST files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="threads for normreg (default: all cores)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    args = p.parse_args(argv)
    names = list(EXPERIMENTS) if "all" in args.experiments else args.experiments
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        p.error(f"unknown experiment(s) {', '.join(unknown)}; choose from all, {', '.join(EXPERIMENTS)}")
    import normreg
    from .data import load_fashion_mnist
    if args.threads is not None:
        normreg.set_num_threads(args.threads)
    try:
        data = load_fashion_mnist(args.data_dir)
    except (RuntimeError, ValueError) as exc:
        print(f"normreg-experiments: {exc}", file=sys.stderr)
        return 2
    log = lambda line: print(line, flush=True)  # noqa: E731
    for name in names:
        result = run(name, args.out, data, quick=args.quick, progress=args.progress, log=log,
                     seed=args.seed)
        print()
        print(result["markdown"])
        print(f"wrote {result['markdown_path']}, {result['json']}, "
              f"{', '.join(result['plots'])} ({result['seconds']:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
