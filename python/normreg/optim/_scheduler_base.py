"""The base class of the learning-rate schedules, :class:`LRScheduler` (PyTorch's design: a
chainable ``get_lr()`` and a closed form ``_get_closed_form_lr()``); the schedules are in
:mod:`normreg.optim.lr_scheduler`, which re-exports it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import _validation as V
from .optimizer import Optimizer

__all__ = ["LRScheduler", "check_optimizer"]


def check_optimizer(optimizer: Any, where: str) -> Optimizer:
    """``optimizer``, which must be a normreg.optim.Optimizer (TypeError otherwise)."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{where}: {type(optimizer).__name__} is not a normreg.optim.Optimizer")
    return optimizer


def per_group(value: Any, name: str, where: str, n: int) -> list[Any]:
    """``value``, or a list (or tuple) of one per parameter group, as a list of ``n``
    (ValueError naming ``name`` when a list has another length)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{where}: expected {n} {name}s (one per parameter group), got {len(value)}")
        return list(value)
    return [value] * n


def checked_rates(values: Any, name: str, where: str, n_groups: int) -> list[float]:
    """A loaded list of learning rates (``base_lrs``, ``_last_lr``): one real number >= 0
    per parameter group (TypeError/ValueError naming it)."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{where}: {name} must be a list of floats, got {type(values).__name__}")
    if len(values) != n_groups:
        raise ValueError(
            f"{where}: {name} has {len(values)} entries, the optimizer has {n_groups} parameter groups"
        )
    return [V.real(v, f"{name}[{i}]", where, low=0.0) for i, v in enumerate(values)]


class LRScheduler:
    """Base class: subclasses define ``get_lr()`` (the rates of a step, from the groups'
    current ones) and ``_get_closed_form_lr()`` (the rates at ``last_epoch`` from
    ``base_lrs``), as PyTorch's schedulers do."""

    _last_lr: list[float]
    # True during the step the constructor takes (PyTorch's initial step): some schedules
    # then keep the groups' rates as they are
    _is_initial = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        where = type(self).__name__
        self._check()  # the subclass's arguments, set as attributes before this call
        self.optimizer = check_optimizer(optimizer, where)
        last_epoch = V.integer(last_epoch, "last_epoch", where, low=-1)
        added = []  # the groups given an 'initial_lr' here: taken back if the first step raises
        if last_epoch == -1:
            for group in optimizer.param_groups:
                if "initial_lr" not in group:
                    group["initial_lr"] = group["lr"]
                    added.append(group)
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{where}: param 'initial_lr' is not specified in param_groups[{i}] "
                        "when resuming an optimizer"
                    )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        try:
            self._initial_step()
        except BaseException:
            for group in added:
                del group["initial_lr"]
            raise

    def _initial_step(self) -> None:
        self._is_initial = True
        try:
            self.step()
        finally:
            del self._is_initial  # back to the class's False, and out of state_dict()

    def _check(self) -> None:
        """Validate (and normalize) the hyperparameters the subclass's ``__init__`` stored as
        attributes (TypeError/ValueError naming the argument); run by ``__init__`` and
        ``load_state_dict``."""

    def _group_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def get_lr(self) -> list[float]:
        """The learning rates the step to ``last_epoch`` sets, computed from each group's
        current ``'lr'`` (PyTorch's chainable form); ``step()`` calls it."""
        raise NotImplementedError

    def _get_closed_form_lr(self) -> list[float]:
        """The learning rates at ``last_epoch`` computed from ``base_lrs`` alone."""
        raise NotImplementedError

    def _apply(self, compute: Callable[[], list[float]]) -> None:
        try:
            lrs = compute()
        except (OverflowError, ZeroDivisionError):  # a float out of range
            lrs = [math.inf] * len(self.optimizer.param_groups)
        for i, lr in enumerate(lrs):
            if not (lr >= 0.0 and math.isfinite(lr)):  # also catches NaN
                raise ValueError(
                    f"{type(self).__name__}: the learning rate of param_groups[{i}] at epoch "
                    f"{self.last_epoch} would be {lr}; a learning rate must be a finite number >= 0"
                )
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def step(self) -> None:
        """Advance one epoch and set each group's ``'lr'`` (nothing changes if it raises)."""
        self.last_epoch += 1
        try:
            self._apply(self.get_lr)
        except BaseException:
            self.last_epoch -= 1
            raise

    def _update_lr_at(self, epoch: int) -> None:
        """Set ``last_epoch`` to ``epoch`` and the groups' rates to the closed form there
        (PyTorch's ``_update_lr(epoch)``, which SequentialLR runs at a milestone); nothing
        changes if it raises."""
        previous = self.last_epoch
        self.last_epoch = epoch
        try:
            self._apply(self._get_closed_form_lr)
        except BaseException:
            self.last_epoch = previous
            raise

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last ``step()`` (a list, one per group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("optimizer", "_schedulers")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the hyperparameters, base and last
        learning rates (one of each per parameter group of the optimizer) are checked first
        (nothing changes if they are invalid)."""
        where = f"{type(self).__name__}.load_state_dict"
        previous = dict(self.__dict__)
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "_schedulers"})
        try:
            self._check()
            self.last_epoch = V.integer(self.last_epoch, "last_epoch", where, low=-1)
            n_groups = len(self.optimizer.param_groups)
            for name in ("base_lrs", "_last_lr"):
                setattr(self, name, checked_rates(getattr(self, name), name, where, n_groups))
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(previous)
            raise
