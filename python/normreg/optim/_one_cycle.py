"""OneCycleLR: PyTorch's 1cycle policy, which cycles the momentum too (re-exported by
:mod:`normreg.optim.lr_scheduler`)."""

from __future__ import annotations

import collections.abc
import math
from collections.abc import Callable
from typing import Any

from .. import _validation as V
from ._scheduler_base import LRScheduler, check_optimizer
from .optimizer import Optimizer

__all__ = ["OneCycleLR"]

_LR_KEYS = ("initial_lr", "max_lr", "min_lr")
_MOMENTUM_KEYS = ("max_momentum", "base_momentum")
_PHASE_KEYS = ("end_step", "start_lr", "end_lr", "start_momentum", "end_momentum")


def _per_group(value: Any, name: str, where: str, n: int, **bounds: Any) -> list[float]:
    """A number, or a list (or tuple) of one per parameter group, as a list of ``n`` floats
    (PyTorch's ``_format_param``)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(
                f"{where}: {name} has {len(value)} values, the optimizer has {n} parameter groups"
            )
        return [V.real(v, f"{name}[{i}]", where, **bounds) for i, v in enumerate(value)]
    return [V.real(value, name, where, **bounds)] * n


def _phases(total_steps: int, pct_start: float, three_phase: bool) -> list[dict[str, Any]]:
    """PyTorch's ``_schedule_phases``: where each phase ends and which group keys it goes
    between."""
    up = {
        "end_step": float(pct_start * total_steps) - 1,
        "start_lr": "initial_lr",
        "end_lr": "max_lr",
        "start_momentum": "max_momentum",
        "end_momentum": "base_momentum",
    }
    if not three_phase:
        down = {"start_lr": "max_lr", "end_lr": "min_lr", "start_momentum": "base_momentum"}
        return [up, {"end_step": total_steps - 1, **down, "end_momentum": "max_momentum"}]
    return [
        up,
        {
            "end_step": float(2 * pct_start * total_steps) - 2,
            "start_lr": "max_lr",
            "end_lr": "initial_lr",
            "start_momentum": "base_momentum",
            "end_momentum": "max_momentum",
        },
        {
            "end_step": total_steps - 1,
            "start_lr": "initial_lr",
            "end_lr": "min_lr",
            "start_momentum": "max_momentum",
            "end_momentum": "max_momentum",
        },
    ]


def _anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


class OneCycleLR(LRScheduler):
    """The 1cycle policy, as PyTorch's: over ``total_steps`` steps (or ``epochs *
    steps_per_epoch``), the rate goes from ``max_lr / div_factor`` up to ``max_lr`` in the
    first ``pct_start`` of the steps, then down to ``max_lr / div_factor / final_div_factor``
    (``three_phase=True``: back down to the initial rate over as many steps, then to the
    minimum), by half cosines (``anneal_strategy='cos'``) or straight lines (``'linear'``).
    The schedule is computed from the epoch alone, not chained. Step it once per batch; a
    step past ``total_steps`` is a ValueError.

    The constructor writes each group's ``'initial_lr'``, ``'max_lr'`` and ``'min_lr'``; with
    ``cycle_momentum=True`` (the default) also ``'max_momentum'`` and ``'base_momentum'``, and
    every step sets the momentum (SGD's ``'momentum'``, or the first of Adam's ``'betas'``)
    inversely to the rate, from ``max_momentum`` down to ``base_momentum`` at the peak and
    back. ``max_lr``, ``base_momentum`` and ``max_momentum`` are a number or a list of one
    per group. Arguments are checked before anything is written (TypeError/ValueError
    naming them): ``pct_start`` in [0, 1], ``div_factor`` and ``final_div_factor`` > 0, the
    momenta >= 0 (in [0, 1) for Adam's beta1)."""

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        where = type(self).__name__
        groups = check_optimizer(optimizer, where).param_groups
        if total_steps is not None:
            total_steps = V.integer(total_steps, "total_steps", where, low=1)
        elif epochs is not None and steps_per_epoch is not None:
            total_steps = V.integer(epochs, "epochs", where, low=1) * V.integer(
                steps_per_epoch, "steps_per_epoch", where, low=1
            )
        else:
            raise ValueError(f"{where}: give either total_steps or both epochs and steps_per_epoch")
        pct_start = V.real(pct_start, "pct_start", where, low=0.0, high=1.0)
        anneal_strategy = V.choice(anneal_strategy, "anneal_strategy", where, ("cos", "linear"))
        cycle_momentum = V.boolean(cycle_momentum, "cycle_momentum", where)
        three_phase = V.boolean(three_phase, "three_phase", where)
        div_factor = V.real(div_factor, "div_factor", where, low=0.0, low_open=True)
        final_div_factor = V.real(final_div_factor, "final_div_factor", where, low=0.0, low_open=True)
        max_lrs = _per_group(max_lr, "max_lr", where, len(groups), low=0.0)
        last_epoch = V.integer(last_epoch, "last_epoch", where, low=-1)
        use_beta1 = "betas" in optimizer.defaults
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and not use_beta1:
                raise ValueError(f"{where}: cycle_momentum=True needs an optimizer with a momentum or betas")
            bounds: dict[str, Any] = dict(low=0.0, high=1.0, high_open=True) if use_beta1 else dict(low=0.0)
            max_momenta = _per_group(max_momentum, "max_momentum", where, len(groups), **bounds)
            base_momenta = _per_group(base_momentum, "base_momentum", where, len(groups), **bounds)
        keys = _LR_KEYS + (_MOMENTUM_KEYS if cycle_momentum else ())
        if last_epoch != -1:
            for i, group in enumerate(groups):
                missing = [k for k in keys if k not in group]
                if missing:
                    raise KeyError(f"{where}: param_groups[{i}] has no {missing} to resume from")
        saved = [{k: group[k] for k in (*keys, "lr", "momentum", "betas") if k in group} for group in groups]
        try:
            if last_epoch == -1:
                for i, group in enumerate(groups):
                    group["initial_lr"] = max_lrs[i] / div_factor
                    group["max_lr"] = max_lrs[i]
                    group["min_lr"] = group["initial_lr"] / final_div_factor
                    if cycle_momentum:
                        if use_beta1:
                            group["betas"] = (max_momenta[i], *group["betas"][1:])
                        else:
                            group["momentum"] = max_momenta[i]
                        group["max_momentum"] = max_momenta[i]
                        group["base_momentum"] = base_momenta[i]
            # the attributes in PyTorch's order (that of its state_dict())
            self.total_steps = total_steps
            self._schedule_phases = _phases(total_steps, pct_start, three_phase)
            self._anneal_func_type = anneal_strategy
            self.cycle_momentum = cycle_momentum
            if cycle_momentum:  # PyTorch sets use_beta1 only then
                self.use_beta1 = use_beta1
            super().__init__(optimizer, last_epoch)
        except BaseException:
            for group, before in zip(groups, saved):
                for k in keys:
                    group.pop(k, None)
                group.update(before)
            raise

    def _check(self) -> None:
        where = type(self).__name__
        self.total_steps = V.integer(self.total_steps, "total_steps", where, low=1)
        self._anneal_func_type = V.choice(
            self._anneal_func_type, "_anneal_func_type", where, ("cos", "linear")
        )
        self.cycle_momentum = V.boolean(self.cycle_momentum, "cycle_momentum", where)
        if self.cycle_momentum:
            self.use_beta1 = V.boolean(getattr(self, "use_beta1", None), "use_beta1", where)
        phases = self._schedule_phases
        if not isinstance(phases, (list, tuple)) or len(phases) not in (2, 3):
            raise ValueError(f"{where}: _schedule_phases must be a list of 2 or 3 phases")
        checked = []
        for i, phase in enumerate(phases):
            name = f"_schedule_phases[{i}]"
            if not isinstance(phase, collections.abc.Mapping):
                raise TypeError(f"{where}: {name} must be a dict, got {type(phase).__name__}")
            if set(phase) != set(_PHASE_KEYS):
                raise ValueError(f"{where}: {name} must have the keys {list(_PHASE_KEYS)}, got {list(phase)}")
            end = phase["end_step"]  # a float, the last phase's an int (as PyTorch's)
            p: dict[str, Any] = {
                "end_step": int(end) if V.is_integer(end) else V.real(end, f"{name}['end_step']", where)
            }
            for k in _PHASE_KEYS[1:]:
                p[k] = V.choice(
                    phase[k], f"{name}[{k!r}]", where, _LR_KEYS if k.endswith("lr") else _MOMENTUM_KEYS
                )
            checked.append(p)
        self._schedule_phases = checked

    def _schedule(self) -> tuple[list[float], list[float]]:
        """The rates and momenta of the step to ``last_epoch``, one each per group."""
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"{type(self).__name__}: tried to step {step} times; the specified number of "
                f"total steps is {self.total_steps}"
            )
        anneal: Callable[[float, float, float], float]
        anneal = _anneal_cos if self._anneal_func_type == "cos" else _anneal_linear
        lrs, momenta = [], []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end = phase["end_step"]
                if step <= end or i == len(self._schedule_phases) - 1:
                    pct = (step - start) / (end - start)
                    lrs.append(anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
                    if self.cycle_momentum:
                        momenta.append(
                            anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                        )
                    break
                start = end
        return lrs, momenta

    def get_lr(self) -> list[float]:
        """The rates of the step to ``last_epoch``; with ``cycle_momentum``, it sets the
        groups' momenta (as PyTorch's)."""
        lrs, momenta = self._schedule()
        for group, m in zip(self.optimizer.param_groups, momenta):
            if self.use_beta1:
                group["betas"] = (m, *group["betas"][1:])
            else:
                group["momentum"] = m
        return lrs

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()  # computed from the epoch alone: PyTorch's step(epoch) runs get_lr()

    def _apply(self, compute: Callable[[], list[float]]) -> None:
        # get_lr() sets the momenta: put them back if the rates are refused
        saved: list[dict[str, Any]] = [
            {k: g[k] for k in ("momentum", "betas") if k in g} for g in self.optimizer.param_groups
        ]
        try:
            super()._apply(compute)
        except BaseException:
            for group, before in zip(self.optimizer.param_groups, saved):
                group.update(before)
            raise
