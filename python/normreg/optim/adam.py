"""Adam and AdamW."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V
from .. import functional as F
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (coupled weight decay: ``g = grad + weight_decay*W``)::

        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g**2
        W -= lr / (1 - beta1**t) * m / (sqrt(v / (1 - beta2**t)) + eps)

    ``amsgrad=True`` uses the running maximum of ``v`` in the denominator. State per
    parameter: ``'step'`` (int), ``'exp_avg'``, ``'exp_avg_sq'`` (and ``'max_exp_avg_sq'``).
    """

    _decoupled = False
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
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        self._check_group(dict(defaults))
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        where = type(self).__name__
        group["lr"] = V.real(group["lr"], "lr (learning rate)", where, low=0.0)
        group["eps"] = V.real(group["eps"], "eps (epsilon value)", where, low=0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = tuple(
            V.real(
                b,
                f"betas[{i}] (beta parameter at index {i})",
                where,
                low=0.0,
                high=1.0,
                high_open=True,
            )
            for i, b in enumerate(betas)
        )
        group["weight_decay"] = V.real(group["weight_decay"], "weight_decay", where, low=0.0)
        group["amsgrad"] = V.boolean(group["amsgrad"], "amsgrad", where)

    def _update_group(self, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state.get(p)
            if state is None:
                state = {
                    "step": 0,
                    "exp_avg": np.zeros_like(p.data),
                    "exp_avg_sq": np.zeros_like(p.data),
                }
                self.state[p] = state
            if group["amsgrad"] and state.get("max_exp_avg_sq") is None:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            F.adam_step_(
                p.data,
                p.grad,
                state["exp_avg"],
                state["exp_avg_sq"],
                state.get("max_exp_avg_sq") if group["amsgrad"] else None,
                step=state["step"],
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                decoupled=self._decoupled,
            )


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: decoupled weight decay ``W *= 1 - lr*weight_decay``
    (default 1e-2), then the Adam step on the plain gradient."""

    _decoupled = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )
