"""ReduceLROnPlateau: PyTorch's schedule driven by a metric (re-exported by
:mod:`normreg.optim.lr_scheduler`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _validation as V
from ._scheduler_base import LRScheduler, check_optimizer, checked_rates, per_group
from .optimizer import Optimizer

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau(LRScheduler):
    """Reduces each group's ``'lr'`` to ``max(lr * factor, min_lr)`` when the metric given to
    ``step(metrics)`` has not improved for more than ``patience`` steps, as PyTorch's.

    A metric improves on the best so far, ``best``, when it is below ``best * (1 -
    threshold)`` (``mode='min'``, ``threshold_mode='rel'``), below ``best - threshold``
    (``'min'``, ``'abs'``), above ``best * (1 + threshold)`` (``'max'``, ``'rel'``) or above
    ``best + threshold`` (``'max'``, ``'abs'``); the first one always does. Each step without
    improvement adds one to ``num_bad_epochs``; once that is over ``patience``, the rates are
    reduced, ``num_bad_epochs`` goes back to 0 and the next ``cooldown`` steps count no bad
    epoch. A group's rate is left as it is when the reduction would take less than ``eps``
    off it. ``min_lr`` is one number or a list of one per group.

    As in PyTorch, the constructor takes no step and sets no ``'initial_lr'`` (there is no
    ``base_lrs``), ``last_epoch`` starts at 0, and ``get_last_lr()`` gives the groups' rates
    after the last step (or at construction). ``metrics`` is a real number or a 0-d array;
    NaN or an infinity counts as no improvement (a NaN is never better). ``factor`` must be
    in [0, 1), ``patience``, ``cooldown`` ints >= 0, ``threshold``, ``eps`` and ``min_lr``
    >= 0. A step that raises changes nothing.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0,
        eps: float = 1e-8,
    ) -> None:
        where = type(self).__name__
        n = len(check_optimizer(optimizer, where).param_groups)
        min_lrs = per_group(min_lr, "min_lr", where, n)
        default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lr
        # the attributes in PyTorch's order (that of its state_dict())
        self.factor = factor
        self.optimizer = optimizer
        self.default_min_lr = default_min_lr
        self.min_lrs = min_lrs
        self.patience, self.cooldown, self.eps = patience, cooldown, eps
        self.last_epoch = 0
        self._last_lr = self._group_lrs()
        self.mode_worse = math.inf
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        self._check()
        self._reset()

    def _check(self) -> None:
        where = type(self).__name__
        self.factor = V.real(self.factor, "factor", where, low=0.0, high=1.0, high_open=True)
        if self.default_min_lr is not None:
            self.default_min_lr = V.real(self.default_min_lr, "min_lr", where, low=0.0)
        if not isinstance(self.min_lrs, (list, tuple)):
            raise TypeError(f"{where}: min_lrs must be a list of floats, got {type(self.min_lrs).__name__}")
        name = "min_lr" if self.default_min_lr is not None else "min_lr[{}]"
        self.min_lrs = [V.real(v, name.format(i), where, low=0.0) for i, v in enumerate(self.min_lrs)]
        self.patience = V.integer(self.patience, "patience", where, low=0)
        self.cooldown = V.integer(self.cooldown, "cooldown", where, low=0)
        self.eps = V.real(self.eps, "eps", where, low=0.0)
        self.mode = V.choice(self.mode, "mode", where, ("min", "max"))
        self.threshold = V.real(self.threshold, "threshold", where, low=0.0)
        self.threshold_mode = V.choice(self.threshold_mode, "threshold_mode", where, ("rel", "abs"))
        self.mode_worse = math.inf if self.mode == "min" else -math.inf  # PyTorch's _init_is_better

    def _reset(self) -> None:
        """Forget the best metric, the bad epochs and the cooldown."""
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def get_lr(self) -> list[float]:
        raise NotImplementedError("ReduceLROnPlateau sets the rates in step(metrics); see get_last_lr()")

    def step(self, metrics: Any) -> None:  # type: ignore[override]
        """One epoch's metric (e.g. the validation loss): reduce the rates if it is the
        ``patience + 1``-th step in a row without improvement (cooldown aside). Nothing
        changes if it raises."""
        where = f"{type(self).__name__}.step"
        if isinstance(metrics, np.ndarray) and metrics.shape == ():
            metrics = metrics[()]
        current = V.real(metrics, "metrics", where, allow_inf=True, allow_nan=True)
        best, bad, cooldown = self.best, self.num_bad_epochs, self.cooldown_counter
        if self._is_better(current, best):
            best, bad = current, 0
        else:
            bad += 1
        if cooldown > 0:
            cooldown -= 1
            bad = 0  # no bad epochs in cooldown
        groups = self.optimizer.param_groups
        min_lrs, new_lrs = self.min_lrs, self._group_lrs()
        if bad > self.patience:
            if len(min_lrs) != len(groups):
                if self.default_min_lr is None:
                    raise RuntimeError(
                        f"{where}: the optimizer has {len(groups)} parameter groups, min_lr had "
                        f"{len(min_lrs)} values (one per group when ReduceLROnPlateau was made); "
                        "set min_lrs to one per group"
                    )
                min_lrs = [self.default_min_lr] * len(groups)
            for i, old in enumerate(new_lrs):
                new = max(old * self.factor, min_lrs[i])
                if old - new > self.eps:
                    new_lrs[i] = new
            cooldown, bad = self.cooldown, 0
        for group, lr in zip(groups, new_lrs):
            group["lr"] = lr
        self.min_lrs = min_lrs
        self.last_epoch += 1
        self.best, self.num_bad_epochs, self.cooldown_counter = best, bad, cooldown
        self._last_lr = list(new_lrs)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (every entry checked first: nothing
        changes if one is invalid); ``mode_worse`` follows ``mode``, as in PyTorch."""
        where = f"{type(self).__name__}.load_state_dict"
        previous = dict(self.__dict__)
        self.__dict__.update(state_dict)
        try:
            self._check()
            self.last_epoch = V.integer(self.last_epoch, "last_epoch", where, low=0)
            self.best = V.real(self.best, "best", where, allow_inf=True)
            self.num_bad_epochs = V.integer(self.num_bad_epochs, "num_bad_epochs", where, low=0)
            self.cooldown_counter = V.integer(self.cooldown_counter, "cooldown_counter", where, low=0)
            self._last_lr = checked_rates(self._last_lr, "_last_lr", where, len(self.optimizer.param_groups))
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(previous)
            raise
