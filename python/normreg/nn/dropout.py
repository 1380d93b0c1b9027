"""Inverted dropout."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V
from .. import conventions
from .. import functional as F
from ..random import Generator, as_generator
from .activation import check_dy, output_like
from .parameter import Module


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale
    the rest by ``1 / (1 - p)``; in evaluation, the identity. Masks come from
    ``generator`` (default: normreg's default generator, see ``normreg.manual_seed``).

    ``p_is_keep_prob=True`` (cs231n's convention, see :mod:`normreg.conventions`) reads
    ``p`` as the probability of *keeping* a unit: drop with ``1 - p``, scale kept units
    by ``1 / p``. ``drop_prob`` is the drop probability either way. ``inplace=True`` (as
    PyTorch's) writes the output into the input array and returns it.
    """

    def __init__(
        self,
        p: float = 0.5,
        generator: Generator | None = None,
        *,
        inplace: bool = False,
        p_is_keep_prob: bool | None = None,
        convention: str | conventions.Convention | None = None,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.p = V.probability(p, "p", where)
        if isinstance(generator, (bool, np.bool_)):  # PyTorch's second argument is inplace
            raise TypeError(
                f"{where}: the second argument is the generator; inplace is keyword-only: "
                f"Dropout(p, inplace={bool(generator)})"
            )
        self.inplace = V.boolean(inplace, "inplace", where)
        self.p_is_keep_prob = bool(conventions.resolve(convention, "dropout_p_is_keep_prob", p_is_keep_prob))
        self.generator = None if generator is None else as_generator(generator, where)

    @property
    def drop_prob(self) -> float:
        return 1.0 - self.p if self.p_is_keep_prob else self.p

    def forward(self, x: Any) -> np.ndarray:
        drop_prob = self.drop_prob
        if self.inplace and self.training and drop_prob > 0:  # else x is returned as it is
            V.inplace_input(x, type(self).__name__)
        y, mask = F.dropout(x, drop_prob, self.training, generator=self.generator)
        if self.inplace and isinstance(x, np.ndarray) and y is not x:
            np.copyto(x, y)
            y = x
        self.save_for_backward(mask, output_like(y), drop_prob)  # mask is None when nothing was dropped
        return y

    __call__ = forward  # a leaf: saves last, calls no module (see Module.__call__)

    def backward(self, dy: Any) -> np.ndarray:
        mask, like, drop_prob = self.saved()
        dy = check_dy(dy, like, type(self).__name__)
        return F.dropout_backward(dy, mask, drop_prob)

    def extra_repr(self) -> str:
        return (
            f"p={self.p}"
            + f", inplace={self.inplace}"  # as PyTorch's repr
            + (", p_is_keep_prob=True" if self.p_is_keep_prob else "")
        )
