"""What the batch-norm experiments measure: the full-data statistics of every BatchNorm
layer's input, and a network evaluated with the statistics of one's choice.

The networks are flat :class:`~normreg.nn.Sequential` models (the MLP and the CNN of
:mod:`normreg.models`). ``Stats`` is one ``(mean, var)`` pair of float64 arrays (C,) per
BatchNorm layer, in order; ``var`` is the biased variance, the one the normalization uses.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Union

import numpy as np

from .. import functional as F
from ..distributed import merge_moments
from ..grad_mode import no_grad
from ..nn import BatchNorm1d, BatchNorm2d, Module, Sequential, SoftmaxLoss

BN_TYPES = (BatchNorm1d, BatchNorm2d)
Stats = list[tuple[np.ndarray, np.ndarray]]
#: ``"batch"``: each BatchNorm normalizes with the statistics of the batch it is given.
How = Union[Stats, str]


def flat(model: Module) -> Sequential:
    """``model``, checked to be a Sequential whose BatchNorm layers are all direct children."""
    if not isinstance(model, Sequential):
        raise TypeError(f"expected a flat Sequential model, got {type(model).__name__}")
    bn_layers(model)
    return model


def bn_layers(model: Module) -> list[Any]:
    """The BatchNorm layers of ``model``, which must all be direct children of a Sequential."""
    if not isinstance(model, Sequential):
        raise TypeError(f"expected a flat Sequential model, got {type(model).__name__}")
    direct = [m for m in model if isinstance(m, BN_TYPES)]
    if len(direct) != sum(isinstance(m, BN_TYPES) for m in model.modules()):
        raise ValueError("every BatchNorm layer must be a direct child of the Sequential model")
    return direct


def running_stats(model: Module) -> Stats:
    """The running estimates of every BatchNorm layer of ``model``, as float64."""
    return [
        (np.asarray(m.running_mean, np.float64), np.asarray(m.running_var, np.float64))
        for m in bn_layers(model)
    ]


def _normalize(bn: Any, h: np.ndarray, stats: Any) -> np.ndarray:
    """``bn``'s normalization of ``h`` with ``stats`` ((mean, var), or ``"batch"``)."""
    weight, bias = bn.weight.data, bn.bias.data
    if isinstance(stats, str):
        if h.size // h.shape[1] == 1:
            # One value per channel: x - mean is exactly 0, so the output is the bias for
            # every input (the layer refuses such a batch in training for that reason).
            return np.broadcast_to(bias.reshape((1, -1) + (1,) * (h.ndim - 2)), h.shape).copy()
        # F.batch_norm takes (N, C) or (N, C, L): the positions of a feature map as L.
        h3 = h.reshape(h.shape[0], h.shape[1], -1)
        return F.batch_norm(h3, None, None, weight, bias, training=True, eps=bn.eps)[0].reshape(h.shape)
    mean, var = stats
    rstd = (1.0 / np.sqrt(var + bn.eps)).astype(h.dtype)
    return F.batch_norm_elemt(h, mean, rstd, weight, bias)


def _forward(layers: list[Module], h: np.ndarray, how: How) -> np.ndarray:
    """``h`` through ``layers``, the k-th BatchNorm normalizing with ``how[k]`` or batch
    statistics; the other layers as they are (evaluation mode, nothing recorded)."""
    k = 0
    for m in layers:
        if isinstance(m, BN_TYPES):
            h = _normalize(m, h, how if isinstance(how, str) else how[k])
            k += 1
        else:
            h = m(h)
    return h


@contextlib.contextmanager
def _frozen(model: Module) -> Iterator[list[Module]]:
    """``model``'s layers, with the model in evaluation mode and nothing recorded for a
    backward; its mode is restored after."""
    layers = list(flat(model))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            yield layers
    finally:
        model.train(was_training)


def forward_with(model: Module, x: np.ndarray, how: How) -> np.ndarray:
    """The logits of ``model`` for the batch ``x``, every BatchNorm layer normalizing with
    ``how``: a ``Stats`` list, or ``"batch"`` for the statistics of ``x`` itself."""
    with _frozen(model) as layers:
        return _forward(layers, x, how)


def full_data_stats(model: Module, x: np.ndarray, chunk: int = 1000) -> Stats:
    """The mean and biased variance of every BatchNorm layer's input over all of ``x``,
    with the model fixed: layer by layer, each earlier BatchNorm normalizing with the
    statistics found for it. These are the statistics a single batch of all of ``x`` would
    have, computed in chunks of ``chunk`` rows (merged exactly, in float64)."""
    stats: Stats = []
    with _frozen(model) as layers:
        for i, m in enumerate(layers):
            if not isinstance(m, BN_TYPES):
                continue
            counts, means, m2s = [], [], []
            for start in range(0, len(x), chunk):
                h = _forward(layers[:i], x[start : start + chunk], stats)
                moments = F.batch_norm_stats(h)
                counts.append(h.size // h.shape[1])
                means.append(moments[0])
                m2s.append(moments[1])
            n, mean, m2 = merge_moments(counts, means, m2s)
            stats.append((mean, m2 / n))
    return stats


def evaluate_with(
    model: Module, x: np.ndarray, y: np.ndarray, how: How, batch_size: int = 1000
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)`` in batches of
    ``batch_size``, every BatchNorm normalizing with ``how`` (see :func:`forward_with`)."""
    loss_fn = SoftmaxLoss()
    total, correct = 0.0, 0
    with _frozen(model) as layers:
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = _forward(layers, xb, how)
            total += loss_fn(logits, yb) * len(yb)
            correct += int((logits.argmax(axis=1) == yb).sum())
    n = max(len(x), 1)
    return total / n, correct / n


def distances(estimates: Stats, truth: Stats, eps: float = 1e-5) -> tuple[list[float], list[float]]:
    """Per BatchNorm layer, how far ``estimates`` are from ``truth``: the RMS over channels
    of the mean's error in units of the true standard deviation, ``(m - mu) / sigma``, and
    of the variance's relative error, ``(v - sigma^2) / sigma^2``."""
    mean_err, var_err = [], []
    for (m, v), (mu, var) in zip(estimates, truth):
        mean_err.append(math.sqrt(float(np.mean((m - mu) ** 2 / (var + eps)))))
        var_err.append(math.sqrt(float(np.mean(((v - var) / (var + eps)) ** 2))))
    return mean_err, var_err
