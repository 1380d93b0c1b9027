"""Losses: softmax cross-entropy, and the L2 penalty on parameters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _validation as V
from .. import functional as F
from .parameter import Module, Parameter, add_to_grad


class SoftmaxLoss(Module):
    """Softmax cross-entropy: ``loss = fn(logits, labels)``, ``dlogits = fn.backward()``.

    ``SoftmaxLoss(weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0)``,
    PyTorch's ``nn.CrossEntropyLoss`` options, all but ``weight`` by keyword (PyTorch's
    positions hold its deprecated ``size_average`` and ``reduce``; see
    :func:`normreg.functional.cross_entropy`): class weights (K,), a label whose rows are
    left out, ``"mean"`` (over the kept rows, weighted), ``"sum"`` or ``"none"`` (the loss
    of each row), the label smoothing in [0, 1]. logits (B, K) float, labels (B,) integers
    in [0, K) or ``ignore_index``. The loss is a Python float, or a (B,) array with
    ``reduction="none"``, whose ``backward`` takes the gradient of each row (a number
    stands for every row).

    PyTorch's other forms are taken too: logits (N, C, d1, ..., dk) with labels
    (N, d1, ..., dk), each position a sample (the loss with ``"none"``, and the ``dloss``
    its backward takes, of that shape); unbatched logits (C,) with a 0-d label
    (``"none"``: a 0-d loss); and class probabilities, float labels of the shape and dtype
    of logits (per sample ``-sum_c w[c] t[c] log softmax(z)[c]``, ``t`` smoothed to
    ``t (1 - e) + e / C``; the mean divides by the number of samples, not by the weights;
    ``ignore_index`` must be negative, as it does not apply to them).
    """

    def __init__(
        self,
        weight: Any = None,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.weight = None if weight is None else V.float_array(weight, "weight", where).copy()
        self.ignore_index, self.reduction, self.label_smoothing = V.cross_entropy_options(
            ignore_index, reduction, label_smoothing, where
        )

    def _options(self) -> dict[str, Any]:
        """The options of F.cross_entropy and its backward."""
        return {
            "weight": self.weight,
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
            "label_smoothing": self.label_smoothing,
        }

    def forward(self, logits: Any, labels: Any) -> Any:
        loss, lse = F.cross_entropy(logits, labels, **self._options())
        self.save_for_backward(logits, labels, lse)
        return loss

    __call__ = forward  # a leaf: saves last, calls no module (see Module.__call__)

    def backward(self, dloss: Any = 1.0) -> np.ndarray:
        logits, labels, lse = self.saved()
        return F.cross_entropy_backward(logits, labels, lse, dloss, **self._options())


CrossEntropyLoss = SoftmaxLoss


def l2_penalty(params: Parameter | Iterable[Parameter], lam: float) -> float:
    """The L2 penalty ``lam / 2 * sum ||W||²`` over ``params``, returned as a float; its
    gradient ``lam * W`` is **added** into each parameter's ``.grad`` (call it after
    ``backward``, before the optimizer step). With plain SGD this gives the same
    trajectory as ``SGD(..., weight_decay=lam)``: ``W := (1 - lr*lam) W - lr * grad``.

    ``params``: an iterable of Parameters (e.g. ``model.parameters()``, or only the
    weight matrices to leave biases and normalization weights undecayed).
    """
    where = "l2_penalty"
    lam = V.real(lam, "lam", where, low=0.0)
    items = [params] if isinstance(params, Parameter) else list(params)
    for i, p in enumerate(items):
        if not isinstance(p, Parameter):
            raise TypeError(f"{where}: params[{i}] must be a Parameter, got {type(p).__name__}")
    total = 0.0
    for p in items:
        flat = p.data.reshape(-1)
        total += float(np.dot(flat, flat))
        if lam != 0:
            add_to_grad(p, p.data.dtype.type(lam) * p.data)
    return 0.5 * lam * total
