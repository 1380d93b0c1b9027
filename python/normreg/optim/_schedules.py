"""More of PyTorch's learning-rate schedules, with its chainable ``get_lr()`` and closed forms:
:class:`MultiStepLR`, :class:`ExponentialLR`, :class:`ConstantLR`, :class:`PolynomialLR`,
:class:`LambdaLR` and :class:`MultiplicativeLR` (re-exported by
:mod:`normreg.optim.lr_scheduler`)."""

from __future__ import annotations

import bisect
import collections
import collections.abc
import types
from collections.abc import Callable, Iterable
from typing import Any

from .. import _validation as V
from ._scheduler_base import LRScheduler, check_optimizer, per_group
from .optimizer import Optimizer

__all__ = ["MultiStepLR", "ExponentialLR", "ConstantLR", "PolynomialLR", "LambdaLR", "MultiplicativeLR"]

LRLambda = Callable[[int], float]


def _milestone_counter(milestones: Any, where: str) -> collections.Counter[int]:
    """``milestones`` as PyTorch's ``Counter``: epochs (ints >= 0, any order, repeats
    counted), or a mapping of epoch -> count (a Counter, or the dict a checkpoint holds)."""
    if isinstance(milestones, collections.abc.Mapping):
        counts = collections.Counter[int]()
        for k, n in milestones.items():
            epoch = V.integer(k, "milestones (an epoch)", where, low=0)
            counts[epoch] = V.integer(n, f"milestones[{epoch}] (a count)", where, low=1)
        return counts
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
        raise TypeError(f"{where}: milestones must be an iterable of ints, got {type(milestones).__name__}")
    return collections.Counter(
        V.integer(m, f"milestones[{i}]", where, low=0) for i, m in enumerate(milestones)
    )


class MultiStepLR(LRScheduler):
    """Multiplies each group's ``'lr'`` by ``gamma`` at each epoch of ``milestones`` (by
    ``gamma ** n`` at an epoch listed ``n`` times, as PyTorch, which keeps the milestones as
    a ``Counter``); alone, ``lr = base_lr * gamma ** (number of milestones <= epoch)``."""

    def __init__(
        self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.milestones: collections.Counter[int] = milestones  # type: ignore[assignment]  # _check: a Counter
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        where = type(self).__name__
        self.milestones = _milestone_counter(self.milestones, where)
        self.gamma = V.real(self.gamma, "gamma", where, low=0.0)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._group_lrs()
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [lr * factor for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        n = bisect.bisect_right(sorted(self.milestones.elements()), self.last_epoch)
        return [base * self.gamma**n for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiplies each group's ``'lr'`` by ``gamma`` every epoch (the constructor's step
    keeps it); alone, ``lr = base_lr * gamma ** epoch``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        self.gamma = V.real(self.gamma, "gamma", type(self).__name__, low=0.0)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class ConstantLR(LRScheduler):
    """Multiplies each group's ``'lr'`` by ``factor`` at epoch 0 and by ``1 / factor`` at
    epoch ``total_iters`` (PyTorch's chainable form); alone, ``lr = base_lr * factor`` before
    ``total_iters`` and ``base_lr`` from there. ``factor`` is in (0, 1]: PyTorch takes 0 too,
    whose ``1 / factor`` then divides by zero at ``total_iters``."""

    def __init__(
        self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1
    ) -> None:
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        where = type(self).__name__
        self.factor = V.real(self.factor, "factor", where, low=0.0, high=1.0, low_open=True)
        self.total_iters = V.integer(self.total_iters, "total_iters", where, low=1)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [lr * self.factor for lr in self._group_lrs()]
        if self.last_epoch != self.total_iters:
            return self._group_lrs()
        return [lr * (1.0 / self.factor) for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        factor = self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor)
        return [base * factor for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Polynomial decay to 0 over ``total_iters`` epochs, in PyTorch's chainable form: each
    step up to ``total_iters`` multiplies the group's ``'lr'`` by ``((1 - epoch / total_iters)
    / (1 - (epoch - 1) / total_iters)) ** power`` (the constructor's step and the steps after
    ``total_iters`` keep it); alone, ``lr = base_lr * (1 - min(epoch, total_iters) /
    total_iters) ** power``. ``power`` must be >= 0 (a negative power would raise the rate
    towards infinity at ``total_iters``)."""

    def __init__(
        self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1
    ) -> None:
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        where = type(self).__name__
        self.total_iters = V.integer(self.total_iters, "total_iters", where, low=1)
        self.power = V.real(self.power, "power", where, low=0.0)

    def get_lr(self) -> list[float]:
        e, total = self.last_epoch, self.total_iters
        if self._is_initial or e > total:
            return self._group_lrs()
        decay = ((1.0 - e / total) / (1.0 - (e - 1) / total)) ** self.power
        return [lr * decay for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        factor = (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
        return [base * factor for base in self.base_lrs]


class _LambdaScheduler(LRScheduler):
    """What :class:`LambdaLR` and :class:`MultiplicativeLR` share: ``lr_lambda``, a function of
    the epoch or a list (or tuple) of one per parameter group, and PyTorch's state dict, in
    which a plain function (or lambda) is saved as None and a callable object as a copy of
    its ``__dict__`` (loaded back into the object's)."""

    lr_lambdas: list[LRLambda]

    def __init__(
        self, optimizer: Optimizer, lr_lambda: LRLambda | list[LRLambda], last_epoch: int = -1
    ) -> None:
        where = type(self).__name__
        self.lr_lambdas = per_group(
            lr_lambda, "lr_lambda", where, len(check_optimizer(optimizer, where).param_groups)
        )
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        where = type(self).__name__
        for i, fn in enumerate(self.lr_lambdas):
            if not callable(fn):
                raise TypeError(
                    f"{where}: lr_lambda must be a function (or a list of functions), got "
                    f"{type(fn).__name__} for param_groups[{i}]"
                )

    def _factors(self) -> list[float]:
        """Each group's ``lr_lambda(last_epoch)``, a real number (TypeError otherwise). An
        arithmetic error raised by the function is a ValueError naming it (the float errors of
        the step itself become the step's "not finite" ValueError)."""
        where, e = type(self).__name__, self.last_epoch
        factors = []
        for i, fn in enumerate(self.lr_lambdas):
            try:
                value = fn(e)
            except ArithmeticError as exc:
                raise ValueError(
                    f"{where}: lr_lambda of param_groups[{i}] raised {exc!r} at epoch {e}"
                ) from exc
            name = f"lr_lambda({e}) of param_groups[{i}]"
            factors.append(V.real(value, name, where, allow_inf=True, allow_nan=True))
        return factors

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}
        state["lr_lambdas"] = [
            None if isinstance(fn, types.FunctionType) or not hasattr(fn, "__dict__") else dict(fn.__dict__)
            for fn in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned: the callable objects' attributes too (a
        plain function's entry is None); everything is checked before anything changes."""
        where = f"{type(self).__name__}.load_state_dict"
        saved = state_dict.get("lr_lambdas", [None] * len(self.lr_lambdas))
        if not isinstance(saved, (list, tuple)) or len(saved) != len(self.lr_lambdas):
            raise ValueError(
                f"{where}: lr_lambdas must be a list of {len(self.lr_lambdas)} entries (None or dicts)"
            )
        for i, entry in enumerate(saved):
            if entry is not None and not isinstance(entry, collections.abc.Mapping):
                raise TypeError(
                    f"{where}: lr_lambdas[{i}] must be None or a dict, got {type(entry).__name__}"
                )
            if entry is not None and not hasattr(self.lr_lambdas[i], "__dict__"):
                raise TypeError(
                    f"{where}: lr_lambdas[{i}] is a dict, but this lr_lambda has no "
                    "attributes to load it into"
                )
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "lr_lambdas"})
        for fn, entry in zip(self.lr_lambdas, saved):
            if entry is not None:
                fn.__dict__.update(entry)


class LambdaLR(_LambdaScheduler):
    """``lr = base_lr * lr_lambda(epoch)`` for each group (``lr_lambda`` a function of the
    epoch, or a list of one per group), as PyTorch's: computed from ``base_lrs``, so a rate
    set by hand or by another scheduler is not carried on."""

    def get_lr(self) -> list[float]:
        return [base * f for base, f in zip(self.base_lrs, self._factors())]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()


class MultiplicativeLR(_LambdaScheduler):
    """Multiplies each group's ``'lr'`` by ``lr_lambda(epoch)`` at every step after the
    constructor's; alone, ``lr = base_lr * lr_lambda(1) * ... * lr_lambda(epoch)``. PyTorch's
    has no closed form: at a :class:`SequentialLR` milestone it runs ``get_lr()``, which
    multiplies the group's ``'lr'`` by ``lr_lambda(0)``, and so does this one."""

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._group_lrs()
        return [lr * f for lr, f in zip(self._group_lrs(), self._factors())]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()
