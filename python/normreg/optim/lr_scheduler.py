"""Learning-rate schedules with PyTorch's interface: ``scheduler.step()`` once per epoch
(or per iteration), after ``optimizer.step()``; ``get_last_lr()``.

Every schedule is a closed form of its epoch counter ``last_epoch`` (0 after
construction, +1 per ``step()``), applied to each parameter group's initial learning rate
``group['initial_lr']`` (set from ``group['lr']`` by the first scheduler attached):

* :class:`StepLR`: ``base_lr * gamma ** (epoch // step_size)``
* :class:`CosineAnnealingLR`: ``eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``
* :class:`LinearLR` (warm-up): ``base_lr * (start + (end - start) * min(epoch, total_iters) / total_iters)``
* :class:`SequentialLR`: one schedule after the other at ``milestones``, each restarted
  at its own epoch 0 (warm-up then cosine, see the README).
"""
import bisect
import math
import numbers

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "LinearLR", "SequentialLR"]


def _int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


class LRScheduler:
    """Base class: subclasses define ``_lr_at(base_lr, epoch)``."""

    def __init__(self, optimizer, last_epoch=-1):
        from . import Optimizer
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not a normreg.optim.Optimizer")
        self.optimizer = optimizer
        last_epoch = _int(last_epoch, "last_epoch", -1)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming an optimizer")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def _lr_at(self, base_lr, epoch):
        raise NotImplementedError

    def get_lr(self):
        """The learning rates of the groups at ``last_epoch``."""
        return [self._lr_at(base, self.last_epoch) for base in self.base_lrs]

    def _apply(self):
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def step(self):
        """Advance one epoch and set each group's ``'lr'``."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self):
        """The learning rates set by the last ``step()`` (a list, one per group)."""
        return list(self._last_lr)

    def state_dict(self):
        return {k: v for k, v in vars(self).items() if k not in ("optimizer", "_schedulers")}

    def load_state_dict(self, state_dict):
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "_schedulers"})
        self.base_lrs = list(self.base_lrs)
        self._last_lr = list(self._last_lr)


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = _int(step_size, "step_size", 1)
        self.gamma = _real(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``: from
    ``base_lr`` at epoch 0 down to ``eta_min`` at ``T_max`` (and back up after, as PyTorch)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = _int(T_max, "T_max", 1)
        self.eta_min = _real(eta_min, "eta_min")
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LinearLR(LRScheduler):
    """Linear warm-up: the factor goes from ``start_factor`` to ``end_factor`` over
    ``total_iters`` steps, then stays: ``lr = base_lr * (start_factor + (end_factor -
    start_factor) * min(epoch, total_iters) / total_iters)``."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        start_factor = _real(start_factor, "start_factor")
        end_factor = _real(end_factor, "end_factor")
        if not 0 < start_factor <= 1:
            raise ValueError(f"start_factor must be in (0, 1], got {start_factor}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"end_factor must be in [0, 1], got {end_factor}")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = _int(total_iters, "total_iters", 1)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr, epoch):
        frac = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class SequentialLR(LRScheduler):
    """``schedulers[i]`` runs from ``milestones[i-1]`` (its epoch 0) to ``milestones[i]``;
    e.g. ``SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=5), CosineAnnealingLR(opt, 95)],
    milestones=[5])`` warms up for 5 epochs, then anneals."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        schedulers = list(schedulers)
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler) or isinstance(s, SequentialLR):
                raise TypeError(f"schedulers[{i}] must be a (non-sequential) LRScheduler, "
                                f"got {type(s).__name__}")
            if s.optimizer is not optimizer:
                raise ValueError(f"schedulers[{i}] belongs to another optimizer than the one given")
        milestones = [_int(m, "milestone", 1) for m in milestones]
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR needs {len(schedulers) - 1} milestones for "
                             f"{len(schedulers)} schedulers, got {len(milestones)}")
        if milestones != sorted(set(milestones)):
            raise ValueError(f"milestones must be increasing, got {milestones}")
        self._schedulers = schedulers
        self._milestones = milestones
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        idx = bisect.bisect_right(self._milestones, self.last_epoch)
        start = self._milestones[idx - 1] if idx > 0 else 0
        sched = self._schedulers[idx]
        sched.last_epoch = self.last_epoch - start
        return [sched._lr_at(base, sched.last_epoch) for base in sched.base_lrs]

    def step(self):
        super().step()
        for s in self._schedulers:
            s._last_lr = list(self._last_lr)

    def state_dict(self):
        state = super().state_dict()
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for s, sd in zip(self._schedulers, state_dict.get("_schedulers", [])):
            s.load_state_dict(sd)
