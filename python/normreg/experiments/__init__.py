"""The lecture's claims as experiments: ``normreg-experiments``
(or ``python -m normreg.experiments``).

1. ``norm-lr``: no normalization / BatchNorm / LayerNorm across learning rates spanning two
   orders of magnitude with plain SGD -- normalization tolerates higher learning rates.
2. ``regularization``: an over-parameterized MLP on a small training subset with no
   regularization / dropout / weight decay / both -- train vs test accuracy and the gap.
3. ``init``: well and badly scaled initialization, with and without normalization --
   normalization makes training insensitive to the scale of the initial weights.
4. ``summary``: very different configurations that reach similar test accuracy.
5. ``batch-size``: BatchNorm / GroupNorm / LayerNorm / none at batch sizes 2 to 128, on the
   MLP and the CNN -- BatchNorm depends on the batch size, the others do not.
6. ``running-stats``: BatchNorm evaluated with its running estimates (momenta 0.001 to 0.5),
   the exact training-set statistics, or batch statistics (evaluation batches of 1, 8, all),
   and how far the running estimates are from the statistics they estimate.
7. ``dropout-scaling``: inverted dropout vs dropout without the 1/(1-p) rescale and with the
   rescale at test time -- what the later layers receive in training and in evaluation.

Each experiment writes ``<name>.md`` (a markdown table), ``<name>.json`` (every run's
configuration and history) and PNG plots into the output directory, shows a progress bar
over its runs, and has a ``--quick`` mode (small subsets, few epochs: well under a minute)
besides the full one (a few minutes each on 2 cores; ``batch-size`` about half an hour).

From Python: ``run(name, out_dir, data=None, quick=False)`` returns a dict with the rows of
the table, the markdown, and the paths written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import normreg

from .. import _cli
from .._reports import write_json
from ..data import load_fashion_mnist
from ..train import TrainConfig as TrainConfig
from ..train import build_model as build_model
from ..train import evaluate as evaluate
from ..train import train as train
from .batchsize import batch_size_norm
from .dropout import dropout_scaling
from .generalization import regularization, summary
from .normalization import init_scale, norm_lr
from .running_stats import running_estimates

__all__ = [
    "EXPERIMENTS",
    "run",
    "run_all",
    "main",
    "norm_lr",
    "regularization",
    "init_scale",
    "summary",
    "batch_size_norm",
    "running_estimates",
    "dropout_scaling",
]


# ---- running ----------------------------------------------------------------------------------

EXPERIMENTS = {
    "norm-lr": norm_lr,
    "regularization": regularization,
    "init": init_scale,
    "summary": summary,
    "batch-size": batch_size_norm,
    "running-stats": running_estimates,
    "dropout-scaling": dropout_scaling,
}

_TITLES = {
    "norm-lr": "1. Normalization x learning rate",
    "regularization": "2. Regularization and generalization",
    "init": "3. Initialization x normalization",
    "summary": "4. Different configurations, similar accuracy",
    "batch-size": "5. Batch size x normalization",
    "running-stats": "6. BatchNorm's running estimates",
    "dropout-scaling": "7. Dropout's rescaling",
}


def run(name, out_dir, data=None, data_dir=None, quick=False, progress=None, log=print, seed=0):
    """Run the experiment ``name`` (one of :data:`EXPERIMENTS`) and write ``<name>.md``,
    ``<name>.json`` and its PNGs into ``out_dir``. ``data``: ``(x_train, y_train, x_test,
    y_test)``; default :func:`normreg.data.load_fashion_mnist(data_dir)`. Returns a dict with
    ``rows``, ``markdown``, ``plots``, ``json``, ``markdown_path`` and ``seconds``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    if data is None:
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
    write_json(
        {
            "experiment": name,
            "quick": quick,
            "seconds": result["seconds"],
            "rows": result["rows"],
            "runs": result["runs"],
        },
        json_path,
    )
    result.update(json=json_path, markdown_path=md_path)
    return result


def run_all(out_dir, data=None, data_dir=None, quick=False, progress=None, log=print, seed=0, names=None):
    """Run several experiments (default: all of them); returns {name: result}."""
    if data is None:
        data = load_fashion_mnist(data_dir)
    return {
        name: run(name, out_dir, data, quick=quick, progress=progress, log=log, seed=seed)
        for name in (names or EXPERIMENTS)
    }


def _parser() -> argparse.ArgumentParser:
    p = _cli.Parser(
        prog="normreg-experiments",
        formatter_class=_cli.HelpFormatter,
        description="Run the lecture's experiments on Fashion-MNIST: "
        + "; ".join(f"{k} ({_TITLES[k][3:].lower()})" for k in EXPERIMENTS)
        + ".",
    )
    p.add_argument(
        "experiments",
        nargs="*",
        metavar="EXPERIMENT",
        default=["all"],
        help=f"which to run: all (default) or any of {', '.join(EXPERIMENTS)}",
    )
    p.add_argument("--quick", action="store_true", help="small subsets and few epochs (< 1 minute each)")
    p.add_argument("--out", default="runs/experiments", help="output directory")
    p.add_argument("--data-dir", default=None, help="directory with the Fashion-MNIST files")
    p.add_argument("--seed", type=_cli.seed, default=0, help="in [0, 2**64 - 1]")
    p.add_argument(
        "--threads",
        type=_cli.threads,
        default=None,
        help="threads for normreg, 1 to 1024 (default: all cores)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command: mistakes on the command line are one ``normreg-experiments: error: ...``
    line and exit status 2, found before anything is loaded or written; Ctrl-C is one line
    and exit status 130."""
    p = _parser()
    args = p.parse_args(argv)
    names = list(EXPERIMENTS) if "all" in args.experiments else args.experiments
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        p.error(f"unknown experiment(s) {', '.join(unknown)}; choose from all, {', '.join(EXPERIMENTS)}")
    made = None
    try:
        if args.data_dir is not None:
            _cli.check_data_dir(args.data_dir)
        made = _cli.check_out(args.out, create=True)
        if args.threads is not None:
            normreg.set_num_threads(args.threads)
        data = load_fashion_mnist(args.data_dir)
    except _cli.UsageError as exc:
        return _error(str(exc))
    except (RuntimeError, ValueError, OSError) as exc:
        _cli.remove_made(args.out, made)
        return _error(str(exc))
    except KeyboardInterrupt:
        _cli.remove_made(args.out, made)
        print("normreg-experiments: interrupted before the first experiment started", file=sys.stderr)
        return 130

    def log(line: str) -> None:
        print(line, flush=True)

    done: list[str] = []
    try:
        for name in names:
            result = run(
                name, args.out, data, quick=args.quick, progress=args.progress, log=log, seed=args.seed
            )
            print()
            print(result["markdown"])
            print(
                f"wrote {result['markdown_path']}, {result['json']}, "
                f"{', '.join(result['plots'])} ({result['seconds']:.0f} s)\n",
                flush=True,
            )
            done.append(name)
    except KeyboardInterrupt:
        _cli.remove_made(args.out, made)
        finished = f"finished {', '.join(done)} (in {args.out})" if done else "no experiment finished"
        print(f"normreg-experiments: interrupted during {name}; {finished}", file=sys.stderr)
        return 130
    return 0


def _error(message: str) -> int:
    print(f"normreg-experiments: error: {message}", file=sys.stderr)
    return 2
