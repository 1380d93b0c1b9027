"""Learning-rate schedules with PyTorch's interface: ``scheduler.step()`` once per epoch
(or per iteration), after ``optimizer.step()``; ``get_last_lr()``.

Every schedule is a closed form of its epoch counter ``last_epoch`` (0 after
construction, +1 per ``step()``), applied to each parameter group's initial learning rate
``group['initial_lr']`` (set from ``group['lr']`` by the first scheduler attached):

* :class:`StepLR`: ``base_lr * gamma ** (epoch // step_size)``
* :class:`CosineAnnealingLR`: ``eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``
* :class:`LinearLR` (warm-up):
  ``base_lr * (start + (end - start) * min(epoch, total_iters) / total_iters)``
* :class:`SequentialLR`: one schedule after the other at ``milestones``, each restarted
  at its own epoch 0 (warm-up then cosine, see the README).

A learning rate below 0 is never written: ``gamma`` and ``eta_min`` must be >= 0 (a
ValueError at construction naming the argument), and a schedule whose rate would come
out negative or not finite (e.g. ``gamma ** epoch`` overflowing) raises ValueError
instead of writing it. ``load_state_dict`` checks the same before changing anything.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .. import _validation as V
from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "LinearLR", "SequentialLR"]


class LRScheduler:
    """Base class: subclasses define ``_lr_at(base_lr, epoch)``."""

    _last_lr: list[float]

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        where = type(self).__name__
        self._check()  # the subclass's arguments, set as attributes before this call
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: {type(optimizer).__name__} is not a normreg.optim.Optimizer")
        self.optimizer = optimizer
        last_epoch = V.integer(last_epoch, "last_epoch", where, low=-1)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{where}: param 'initial_lr' is not specified in param_groups[{i}] "
                        "when resuming an optimizer"
                    )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def _check(self) -> None:
        """Validate (and normalize) the hyperparameters the subclass's ``__init__`` stored as
        attributes (TypeError/ValueError naming the argument); run by ``__init__`` and
        ``load_state_dict``."""

    def _lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        """The learning rates of the groups at ``last_epoch``."""
        return [self._lr_at(base, self.last_epoch) for base in self.base_lrs]

    def _apply(self) -> None:
        try:
            lrs = self.get_lr()
        except OverflowError:  # a float power out of range (gamma ** epoch)
            lrs = [math.inf] * len(self.base_lrs)
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
            self._apply()
        except BaseException:
            self.last_epoch -= 1
            raise

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last ``step()`` (a list, one per group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("optimizer", "_schedulers")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the hyperparameters, base and last
        learning rates are checked first (nothing changes if they are invalid)."""
        where = f"{type(self).__name__}.load_state_dict"
        previous = dict(self.__dict__)
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "_schedulers"})
        try:
            self._check()
            self.last_epoch = V.integer(self.last_epoch, "last_epoch", where, low=-1)
            for name in ("base_lrs", "_last_lr"):
                values = [
                    V.real(v, f"{name}[{i}]", where, low=0.0) for i, v in enumerate(getattr(self, name))
                ]
                setattr(self, name, values)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(previous)
            raise


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        where = type(self).__name__
        self.step_size = V.integer(self.step_size, "step_size", where, low=1)
        self.gamma = V.real(self.gamma, "gamma", where, low=0.0)  # a negative gamma flips the sign

    def _lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``: from
    ``base_lr`` at epoch 0 down to ``eta_min`` at ``T_max`` (and back up after, as PyTorch)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        where = type(self).__name__
        self.T_max = V.integer(self.T_max, "T_max", where, low=1)
        self.eta_min = V.real(self.eta_min, "eta_min", where, low=0.0)

    def _lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LinearLR(LRScheduler):
    """Linear warm-up: the factor goes from ``start_factor`` to ``end_factor`` over
    ``total_iters`` steps, then stays: ``lr = base_lr * (start_factor + (end_factor -
    start_factor) * min(epoch, total_iters) / total_iters)``."""

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        where = type(self).__name__
        self.start_factor = V.real(self.start_factor, "start_factor", where, low=0.0, high=1.0, low_open=True)
        self.end_factor = V.real(self.end_factor, "end_factor", where, low=0.0, high=1.0)
        self.total_iters = V.integer(self.total_iters, "total_iters", where, low=1)

    def _lr_at(self, base_lr: float, epoch: int) -> float:
        frac = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class SequentialLR(LRScheduler):
    """``schedulers[i]`` runs from ``milestones[i-1]`` (its epoch 0) to ``milestones[i]``;
    e.g. ``SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=5), CosineAnnealingLR(opt, 95)],
    milestones=[5])`` warms up for 5 epochs, then anneals."""

    def __init__(
        self,
        optimizer: Optimizer,
        schedulers: Iterable[LRScheduler],
        milestones: Sequence[int],
        last_epoch: int = -1,
    ) -> None:
        where = "SequentialLR"
        schedulers = list(schedulers)
        if len(schedulers) < 1:
            raise ValueError(f"{where}: expects at least one scheduler")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler) or isinstance(s, SequentialLR):
                raise TypeError(
                    f"{where}: schedulers[{i}] must be a (non-sequential) LRScheduler, got {type(s).__name__}"
                )
            if s.optimizer is not optimizer:
                raise ValueError(f"{where}: schedulers[{i}] belongs to another optimizer than the one given")
        milestones = [V.integer(m, f"milestones[{i}]", where, low=1) for i, m in enumerate(milestones)]
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                f"{where}: needs {len(schedulers) - 1} milestones for "
                f"{len(schedulers)} schedulers, got {len(milestones)}"
            )
        if milestones != sorted(set(milestones)):
            raise ValueError(f"{where}: milestones must be increasing, got {milestones}")
        self._schedulers = schedulers
        self._milestones = milestones
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        idx = bisect.bisect_right(self._milestones, self.last_epoch)
        start = self._milestones[idx - 1] if idx > 0 else 0
        sched = self._schedulers[idx]
        sched.last_epoch = self.last_epoch - start
        return [sched._lr_at(base, sched.last_epoch) for base in sched.base_lrs]

    def step(self) -> None:
        super().step()
        for s in self._schedulers:
            s._last_lr = list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for s, sd in zip(self._schedulers, state_dict.get("_schedulers", [])):
            s.load_state_dict(sd)
