"""Stochastic gradient descent with momentum."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _validation as V
from .. import conventions
from ..functional.optim import sgd_steps
from ..nn.parameter import Parameter
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``::

        d = grad + weight_decay * W                                 (coupled L2 term)
        buf = d on the first step, then momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf                 (when momentum != 0)
        W -= lr * d

    With ``momentum=0`` this is ``W := (1 - lr*weight_decay) * W - lr * grad``. With
    ``weight_decay=0`` the L2 term is left out (not added as ``0 * W``, which is NaN for an
    infinite entry), as in PyTorch.
    ``maximize=True`` (as PyTorch's) takes ``-grad`` for ``grad``, leaving ``.grad`` as it is.
    ``lr`` defaults to 1e-3, as in PyTorch 2. ``state[p]['momentum_buffer']`` holds the buffer (None until
    the first step, or when momentum is 0).

    ``momentum_style`` (a per-group hyperparameter; default from the active
    :mod:`normreg.conventions`, PyTorch's ``'heavy_ball'``):

    * ``'heavy_ball'``: the rule above, ``buf = momentum * buf + (1 - dampening) * d``
      (cs231n's ``v = momentum * v - lr * dw; w += v`` is the same update).
    * ``'ema'``: needle's exponential moving average ``buf = momentum * buf +
      (1 - momentum) * d``, starting from ``buf = 0`` (so the first step moves by
      ``lr * (1 - momentum) * d``); no dampening, no Nesterov. The same fused kernel runs
      it, with the dampening set to the momentum and a zero-initialized buffer.
    """

    _state_kinds: dict[str, str] = {"momentum_buffer": "array?"}

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        momentum_style: str | None = None,
        convention: str | conventions.Convention | None = None,
    ) -> None:
        momentum_style = conventions.resolve(convention, "sgd_momentum_style", momentum_style)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            momentum_style=momentum_style,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        where = type(self).__name__
        group["momentum"] = V.real(group["momentum"], "momentum", where, low=0.0)
        group["dampening"] = V.real(group["dampening"], "dampening", where)
        group["nesterov"] = V.boolean(group["nesterov"], "nesterov", where)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{where}: Nesterov momentum requires a momentum and zero dampening")
        group["momentum_style"] = V.choice(
            group["momentum_style"], "momentum_style", where, conventions.SGD_MOMENTUM_STYLES
        )
        if group["momentum_style"] == "ema" and (group["nesterov"] or group["dampening"] != 0):
            raise ValueError(
                f"{where}: momentum_style='ema' takes neither nesterov nor a "
                "dampening (its buffer is momentum * buf + (1 - momentum) * grad)"
            )

    def _update_group(
        self,
        group: dict[str, Any],
        grads: Mapping[Parameter, np.ndarray] | None = None,
        datas: Mapping[Parameter, np.ndarray] | None = None,
    ) -> None:
        momentum = group["momentum"]
        ema = group.get("momentum_style", "heavy_ball") == "ema"
        # ema: buf = m buf + (1 - m) d is the heavy-ball kernel with dampening m, from buf = 0
        dampening = momentum if ema else group["dampening"]
        params = [p for p in group["params"] if p.grad is not None]
        bufs: list[np.ndarray | None] = []
        firsts, made = [], {}
        for p in params:
            buf = self.state.get(p, {}).get("momentum_buffer")
            if momentum != 0 and buf is None:  # the first step: buf = d (ema: from zeros)
                data = self._data(p, datas)
                buf = made[p] = np.zeros_like(data) if ema else np.empty_like(data)
            bufs.append(buf if momentum != 0 else None)
            firsts.append(p in made and not ema)
        # one call for all: the binding checks every array before it writes any
        sgd_steps(
            tuple(self._data(p, datas) for p in params),
            tuple(p.grad if grads is None else grads[p] for p in params),
            tuple(bufs),
            tuple(firsts),
            group["lr"],
            momentum,
            dampening,
            group["weight_decay"],
            group["nesterov"],
        )
        for p in params:
            state = self.state.setdefault(p, {"momentum_buffer": None})
            if p in made:
                state["momentum_buffer"] = made[p]
