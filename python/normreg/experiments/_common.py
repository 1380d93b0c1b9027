"""What the experiments share: subsets, runs with a progress bar, table cells, SGD runs."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np

from .._reports import save
from ..nn import Module
from ..train import TrainConfig, train

Log = Optional[Callable[[str], Any]]
Data = Sequence[np.ndarray]
Result = dict[str, Any]
#: How the tables and plots name the values of ``norm``.
NORM_NAMES = {"none": "no norm", "batch": "BatchNorm", "layer": "LayerNorm", "group": "GroupNorm"}


def subset(x: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n is None or n >= len(x):
        return x, y
    pick = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return x[pick], y[pick]


def save_png(fig: Any, out_dir: str, name: str) -> str:
    return save(fig, os.path.join(out_dir, name))


def fmt(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "diverged"
    return f"{v:.{digits}f}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown_columns(
    columns: dict[str, Callable[[dict[str, Any]], Any]], rows: Sequence[dict[str, Any]]
) -> str:
    """:func:`markdown` of ``rows`` (dicts) with one column per item of ``columns``: its
    header, and the function that gives its cell from a row."""
    return markdown(list(columns), [[cell(r) for cell in columns.values()] for r in rows])


class Runs:
    """Runs a list of (label, config[, model]) with a progress bar and a log line per run."""

    def __init__(self, name: str, total: int, progress: bool | None, log: Log) -> None:
        from tqdm.auto import tqdm  # optional dependency: imported on first use

        self.bar = tqdm(
            total=total,
            desc=name,
            unit="run",
            leave=True,
            disable=None if progress is None else not progress,
            dynamic_ncols=True,
        )
        self.name, self.log = name, log

    def __call__(self, label: str, config: TrainConfig, data: Data, model: Module | None = None) -> Result:
        self.bar.set_postfix_str(label)
        t0 = time.perf_counter()
        result = train(config, data, progress=False, log=None, model=model, record_every=None)
        result["seconds"] = time.perf_counter() - t0
        last = result["history"][-1] if result["history"] else {}
        if self.log:
            status = (
                "diverged"
                if result["diverged"]
                else f"train loss {last['train_loss']:.4f}, test acc {last['test_acc']:.4f}"
            )
            msg = f"[{self.name}] {label}: {status} ({result['seconds']:.1f} s)"
            (self.log if self.bar.disable else self.bar.write)(msg)
        self.bar.update(1)
        return result

    def close(self) -> None:
        self.bar.close()


def last(result: Result, key: str) -> float:
    h = result["history"]
    if result["diverged"] or not h:
        return float("nan")
    return h[-1][key]


def step_losses(result: Result) -> tuple[np.ndarray, np.ndarray]:
    """Training-loss curve as (steps, losses); NaN after a divergence."""
    s = np.array(result["steps"], dtype=float).reshape(-1, 2)
    return s[:, 0], s[:, 1]


def strip(result: Result) -> Result:
    return {k: v for k, v in result.items() if k != "model"}


def cell(result: Result) -> str:
    if result["diverged"]:
        return "diverged"
    return f"{fmt(last(result, 'test_acc'))} ({fmt(last(result, 'train_loss'), 3)})"


#: What :func:`sgd` sets unless told otherwise: no dropout, no weight decay (unlike TrainConfig's
#: defaults, the MLP recipe's), Nesterov momentum 0.9, a cosine schedule.
SGD_SETTINGS: dict[str, Any] = dict(
    dropout=0.0, momentum=0.9, nesterov=True, weight_decay=0.0, schedule="cosine"
)


def sgd(norm: str, lr: float, seed: int, **settings: Any) -> TrainConfig:
    """A run with SGD: ``settings`` replace those of ``SGD_SETTINGS`` and give the network and
    the run's length (model, width, depth, epochs, batch_size, ...)."""
    return TrainConfig(norm=norm, optimizer="sgd", lr=lr, seed=seed, **(SGD_SETTINGS | settings))


def plain_sgd(norm: str, lr: float, momentum: float, seed: int, base: dict[str, Any]) -> TrainConfig:
    """SGD at a constant learning rate, no dropout and no weight decay: what the
    normalization experiments vary ``norm`` and one other setting of."""
    return sgd(norm, lr, seed, momentum=momentum, schedule="constant", **base)


def recipe_sgd(model: str, size: dict[str, Any], norm: str, lr: float, batch: int, seed: int) -> TrainConfig:
    """The models' SGD recipe (Nesterov momentum 0.9, weight decay 5e-4, cosine schedule)
    without dropout, on the network and epochs of ``size`` (its width, depth and epochs)."""
    network = {k: size[k] for k in ("width", "depth", "epochs")}
    return sgd(norm, lr, seed, weight_decay=5e-4, model=model, batch_size=batch, **network)


def with_test_subset(data: Data, n: int | None, seed: int) -> tuple[np.ndarray, ...]:
    """``data`` with a seeded subset of ``n`` test examples (all of them for None)."""
    x_tr, y_tr, x_te, y_te = data
    return (x_tr, y_tr, *subset(x_te, y_te, n, seed))
