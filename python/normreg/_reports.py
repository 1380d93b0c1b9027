"""What the training command and the experiments write: JSON files (atomically) and PNG
figures (matplotlib's Agg canvas, no display needed).

matplotlib is an optional dependency (``pip install 'normreg[train]'``): it is imported
when the first figure is made, not when normreg is.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np


def figure(
    ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.3, dpi: int = 90
) -> tuple[Any, Any]:
    """A figure of ``nrows`` x ``ncols`` axes, each ``width`` x ``height`` inches:
    ``(fig, axes)`` with ``axes[row, col]``."""
    # optional dependency: imported on first use
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save(fig: Any, path: str | os.PathLike[str]) -> str:
    """Lay out ``fig`` and write it as a PNG at ``path``; returns the path."""
    fig.tight_layout()
    fig.savefig(path)
    return os.fspath(path)


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as JSON atomically (temporary file, then rename); NaN becomes null."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            return clean(v.item())
        return v

    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(clean(obj), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:  # an error or Ctrl-C: no temporary left behind
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def plot_curves(
    history: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str | None = None
) -> str:
    """Loss and accuracy (train and test) against epochs, as a PNG at ``path``."""
    epochs = [h["epoch"] for h in history]
    fig, axes = figure(2, 1, width=4.5, height=3.4, dpi=100)
    ax_loss, ax_acc = axes[0]
    for key, style in (("train", "-o"), ("test", "-s")):
        ax_loss.plot(epochs, [h[f"{key}_loss"] for h in history], style, ms=3, label=key)
        ax_acc.plot(epochs, [h[f"{key}_acc"] for h in history], style, ms=3, label=key)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)
