"""Learning-rate schedules with PyTorch's interface and behaviour: ``scheduler.step()``
once per epoch (or per iteration), after ``optimizer.step()``; ``get_last_lr()``.

Each ``step()`` advances the epoch counter ``last_epoch`` (0 after construction) and sets
every parameter group's ``'lr'`` from the ``'lr'`` it has now, as PyTorch's chainable
``get_lr()`` does: so two schedulers on one optimizer compose (each applies its factor to
what the other set), and a learning rate you write into ``group['lr']`` between steps is
the one the next step starts from. On its own, a schedule follows its closed form of
``last_epoch`` and each group's initial learning rate ``group['initial_lr']`` (``base_lrs``,
set from ``group['lr']`` by the first scheduler attached):

* :class:`StepLR`: ``lr *= gamma`` when ``epoch`` is a multiple of ``step_size`` (alone:
  ``base_lr * gamma ** (epoch // step_size)``)
* :class:`CosineAnnealingLR`: PyTorch's recursive form (alone:
  ``eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``)
* :class:`LinearLR` (warm-up): the ratio of consecutive factors (alone:
  ``base_lr * (start + (end - start) * min(epoch, total_iters) / total_iters)``)
* :class:`MultiStepLR`: ``lr *= gamma ** n`` at an epoch listed ``n`` times in
  ``milestones`` (alone: ``base_lr * gamma ** (milestones <= epoch)``)
* :class:`ExponentialLR`: ``lr *= gamma`` (alone: ``base_lr * gamma ** epoch``)
* :class:`ConstantLR`: ``lr *= factor`` at epoch 0, ``lr /= factor`` at ``total_iters``
  (alone: ``base_lr * factor`` before ``total_iters``, ``base_lr`` from there)
* :class:`PolynomialLR`: the ratio of consecutive factors (alone:
  ``base_lr * (1 - min(epoch, total_iters) / total_iters) ** power``)
* :class:`LambdaLR`: ``base_lr * lr_lambda(epoch)`` (from ``base_lrs``, not chained)
* :class:`MultiplicativeLR`: ``lr *= lr_lambda(epoch)`` (alone:
  ``base_lr * lr_lambda(1) * ... * lr_lambda(epoch)``)
* :class:`OneCycleLR`: the 1cycle policy, up to ``max_lr`` and down, per batch, cycling the
  momentum (or Adam's beta1) inversely (from the epoch alone, not chained)
* :class:`SequentialLR`: one schedule after the other: the active one's ``step()``, and at
  each milestone the next one set to its epoch 0 from ``base_lrs`` (its closed form), as
  PyTorch does (warm-up then cosine, see the README).
* :class:`ReduceLROnPlateau`: ``step(metrics)``: ``lr = max(lr * factor, min_lr)`` after
  more than ``patience`` steps without improvement of the metric (no ``base_lrs``).

A learning rate below 0 is never written: ``gamma``, ``eta_min`` and the other factors
must be >= 0 (a ValueError at construction naming the argument), and a step whose rate
would come out negative or not finite (e.g. ``lr * gamma`` overflowing) raises ValueError
and changes nothing. ``load_state_dict`` checks the same, and that there is one base and
one last learning rate per parameter group, before changing anything.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .. import _validation as V
from ._one_cycle import OneCycleLR
from ._plateau import ReduceLROnPlateau
from ._scheduler_base import LRScheduler
from ._schedules import ConstantLR, ExponentialLR, LambdaLR, MultiplicativeLR, MultiStepLR, PolynomialLR
from .optimizer import Optimizer

__all__ = [
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
    "ConstantLR",
    "PolynomialLR",
    "LambdaLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "SequentialLR",
    "ReduceLROnPlateau",
]


class StepLR(LRScheduler):
    """Multiplies each group's ``'lr'`` by ``gamma`` every ``step_size`` epochs (at epochs
    ``step_size``, ``2 * step_size``, ...); alone, ``lr = base_lr * gamma ** (epoch //
    step_size)``."""

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        where = type(self).__name__
        self.step_size = V.integer(self.step_size, "step_size", where, low=1)
        self.gamma = V.real(self.gamma, "gamma", where, low=0.0)  # a negative gamma flips the sign

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the group's rate down to ``eta_min`` over ``T_max`` epochs (and
    back up after, as PyTorch), in PyTorch's recursive form::

        lr = eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / (1 + cos(pi * (epoch - 1) / T_max))

    except at the epochs after a minimum (``(epoch - 1 - T_max) % (2 * T_max) == 0``, where
    the ratio is 0 / 0), which add ``(base_lr - eta_min) * (1 - cos(pi / T_max)) / 2``; the
    constructor's step keeps the rate. Alone this is the closed form
    ``eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``. (PyTorch's third
    case, the closed form on a first ``step()`` at an epoch > 0, is never reached by a
    scheduler that its constructor has stepped, so it has no counterpart here.)"""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        where = type(self).__name__
        self.T_max = V.integer(self.T_max, "T_max", where, low=1)
        self.eta_min = V.real(self.eta_min, "eta_min", where, low=0.0)

    def get_lr(self) -> list[float]:
        e, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._group_lrs()
        if (e - 1 - T) % (2 * T) == 0:
            rise = (1 - math.cos(math.pi / T)) / 2
            return [lr + (base - eta_min) * rise for base, lr in zip(self.base_lrs, self._group_lrs())]
        ratio = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T))
        return [ratio * (lr - eta_min) + eta_min for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        cos = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cos for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Linear warm-up: the factor goes from ``start_factor`` to ``end_factor`` over
    ``total_iters`` steps, then stays. As PyTorch's, epoch 0 multiplies the group's rate by
    ``start_factor`` and each later step up to ``total_iters`` by the ratio of consecutive
    factors, ``1 + (end - start) / (total_iters * start + (epoch - 1) * (end - start))``;
    alone, ``lr = base_lr * (start_factor + (end_factor - start_factor) * min(epoch,
    total_iters) / total_iters)``."""

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

    def get_lr(self) -> list[float]:
        e, start, end = self.last_epoch, self.start_factor, self.end_factor
        if e == 0:
            return [lr * start for lr in self._group_lrs()]
        if self._is_initial or e > self.total_iters:
            return self._group_lrs()
        ratio = 1.0 + (end - start) / (self.total_iters * start + (e - 1) * (end - start))
        return [lr * ratio for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        frac = min(self.last_epoch, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * frac
        return [base * factor for base in self.base_lrs]


class SequentialLR(LRScheduler):
    """``schedulers[i]`` runs from ``milestones[i-1]`` to ``milestones[i]``; e.g.
    ``SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=5), CosineAnnealingLR(opt, 95)],
    milestones=[5])`` warms up for 5 epochs, then anneals.

    As PyTorch's: construction sets each group's ``'lr'`` back to ``'initial_lr'``, undoes
    the step each scheduler's constructor took and takes the first scheduler's again;
    ``step()`` is the active scheduler's ``step()``, except at a milestone, where the next
    scheduler is set to its epoch 0 by its closed form (from ``base_lrs``)."""

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
            if isinstance(s, ReduceLROnPlateau):  # as PyTorch: its step() needs the metric
                raise ValueError(
                    f"{where}: schedulers[{i}] is a ReduceLROnPlateau, whose step() needs a metric"
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
        last_epoch = V.integer(last_epoch, "last_epoch", where, low=-1)
        self._schedulers = schedulers
        self._milestones = milestones
        self.optimizer = optimizer
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch + 1
        lrs = self._group_lrs()
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for s in schedulers:  # undo the step of each scheduler's constructor
            s.last_epoch -= 1
        first = schedulers[bisect.bisect_right(milestones, 0)]  # the first: milestones are >= 1
        try:
            first._initial_step()
        except BaseException:
            for s in schedulers:
                s.last_epoch += 1
            for group, lr in zip(optimizer.param_groups, lrs):
                group["lr"] = lr
            raise
        self._last_lr = first.get_last_lr()

    def step(self) -> None:
        """Advance one epoch: the active scheduler's ``step()``, or at a milestone the next
        scheduler's epoch 0 (nothing changes if it raises)."""
        epoch = self.last_epoch + 1
        idx = bisect.bisect_right(self._milestones, epoch)
        sched = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == epoch:
            sched._update_lr_at(0)
        else:
            sched.step()
        self.last_epoch = epoch
        self._last_lr = sched.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def _checked_milestones(self, milestones: Any) -> list[int]:
        """Loaded milestones: increasing ints >= 1, one fewer than the schedulers."""
        where = "SequentialLR.load_state_dict"
        n = len(self._schedulers) - 1
        if not isinstance(milestones, (list, tuple)) or len(milestones) != n:
            raise ValueError(f"{where}: _milestones must be a list of {n} ints, got {milestones!r}")
        checked = [V.integer(m, f"_milestones[{i}]", where, low=1) for i, m in enumerate(milestones)]
        if checked != sorted(set(checked)):
            raise ValueError(f"{where}: _milestones must be increasing, got {checked}")
        return checked

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore this scheduler's state and its schedulers' (each checked; nothing changes
        if any is invalid)."""
        children = state_dict.get("_schedulers", [None] * len(self._schedulers))
        if not isinstance(children, (list, tuple)) or len(children) != len(self._schedulers):
            raise ValueError(
                f"SequentialLR.load_state_dict: _schedulers must hold {len(self._schedulers)} state dicts"
            )
        everyone = (self, *self._schedulers)
        previous = [dict(s.__dict__) for s in everyone]
        try:
            super().load_state_dict(state_dict)
            self._milestones = self._checked_milestones(self._milestones)
            for s, sd in zip(self._schedulers, children):
                if sd is not None:
                    s.load_state_dict(sd)
        except BaseException:
            for s, saved in zip(everyone, previous):
                s.__dict__.clear()
                s.__dict__.update(saved)
            raise
