"""Adam and AdamW."""

from __future__ import annotations

import collections.abc
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _validation as V
from ..functional.optim import adam_steps, bias_correction
from ..nn.parameter import Parameter
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (coupled weight decay: ``g = grad + weight_decay*W``)::

        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g**2
        W -= lr / (1 - beta1**t) * m / (sqrt(v / (1 - beta2**t)) + eps)

    ``amsgrad=True`` uses the running maximum of ``v`` in the denominator; ``maximize=True``
    (as PyTorch's) takes ``-grad`` for ``g``, leaving ``.grad`` as it is. State per
    parameter: ``'step'`` (int), ``'exp_avg'``, ``'exp_avg_sq'`` (and ``'max_exp_avg_sq'``).
    ``betas`` is any sequence of two real numbers (a tuple, a list, a NumPy array), stored as
    a tuple of floats. ``weight_decay=None`` is the class's default: 0 for Adam, 1e-2 for :class:`AdamW`; with
    0 nothing is added (no ``0 * W``, which is NaN for an infinite entry), as in PyTorch.
    """

    _decoupled = False
    _default_weight_decay = 0.0
    _state_kinds: dict[str, str] = {
        "step": "int",
        "exp_avg": "array",
        "exp_avg_sq": "array",
        "max_exp_avg_sq": "array?",
    }

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | None = None,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if weight_decay is None:  # 0 for Adam, 1e-2 for AdamW (PyTorch's defaults)
            weight_decay = self._default_weight_decay
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        where = type(self).__name__
        group["eps"] = V.real(group["eps"], "eps (epsilon value)", where, low=0.0)
        betas = group["betas"]
        if isinstance(betas, np.ndarray) and betas.ndim == 1:
            betas = list(betas)  # NumPy scalars, checked (and made floats) below
        if (
            not isinstance(betas, collections.abc.Sequence)
            or isinstance(betas, (str, bytes))
            or len(betas) != 2
        ):
            raise ValueError(
                f"{where}: betas must be a pair (beta1, beta2): a sequence of two real numbers, got {betas!r}"
            )
        group["betas"] = tuple(
            V.real(b, f"betas[{i}] (beta parameter at index {i})", where, low=0.0, high=1.0, high_open=True)
            for i, b in enumerate(betas)
        )
        group["amsgrad"] = V.boolean(group["amsgrad"], "amsgrad", where)

    def _update_group(
        self,
        group: dict[str, Any],
        grads: Mapping[Parameter, np.ndarray] | None = None,
        datas: Mapping[Parameter, np.ndarray] | None = None,
    ) -> None:
        beta1, beta2 = group["betas"]
        amsgrad = group["amsgrad"]
        params = [p for p in group["params"] if p.grad is not None]
        states = []  # each parameter's state after this step, stored once the step is done
        for p in params:
            state = dict(self.state.get(p) or {"step": 0})
            for name in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ()):
                if state.get(name) is None:
                    state[name] = np.zeros_like(self._data(p, datas))
            state["step"] += 1
            states.append(state)
        # one call for all: the binding checks every array before it writes any
        adam_steps(
            tuple(self._data(p, datas) for p in params),
            tuple(p.grad if grads is None else grads[p] for p in params),
            tuple(s["exp_avg"] for s in states),
            tuple(s["exp_avg_sq"] for s in states),
            tuple(s["max_exp_avg_sq"] if amsgrad else None for s in states),
            tuple(bias_correction(beta1, s["step"]) for s in states),
            tuple(bias_correction(beta2, s["step"]) for s in states),
            group["lr"],
            beta1,
            beta2,
            group["eps"],
            group["weight_decay"],
            self._decoupled,
        )
        for p, state in zip(params, states):
            self.state.setdefault(p, {}).update(state)  # an existing entry stays the same dict


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: decoupled weight decay ``W *= 1 - lr*weight_decay``
    (default 1e-2), then the Adam step on the plain gradient. Arguments as :class:`Adam`."""

    _decoupled = True
    _default_weight_decay = 1e-2
