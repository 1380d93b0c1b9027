"""Inverted dropout, with masks from a counter-based generator."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _C
from .. import _validation as V
from ..random import Generator, as_generator


def dropout(
    x: Any,
    p: float = 0.5,
    training: bool = True,
    *,
    generator: Generator | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverted dropout: keep each element with probability ``1 - p`` and scale it by
    ``1 / (1 - p)``, else set it to 0 (exactly 0, also for NaN or Inf input).

    Returns (y, mask): mask is a packed bit array (uint8, ``ceil(x.size / 8)`` bytes,
    bit ``i % 8`` of byte ``i // 8`` set where element ``i`` is kept), or None when
    nothing is dropped (``training=False`` or ``p=0``), in which case y is x itself (as a
    contiguous float array: a copy only when x was not one) and ``out`` is not written.
    The mask comes from ``generator`` (default: normreg's default generator) and
    depends only on its seed and counter, not on the number of threads.
    """
    where = "dropout"
    x = V.float_array(x, "x", where)
    p = V.probability(p, "p", where)
    if not V.boolean(training, "training", where) or p == 0.0:
        return x, None
    if out is not None:  # checked before the generator's counter advances
        V.out_array(out, where, x.shape, x.dtype)
    gen = as_generator(generator, where)
    return _C.dropout_forward(x, p, gen.initial_seed(), gen.next_offset(), out)


def dropout_backward(dy: Any, mask: np.ndarray | None, p: float) -> np.ndarray:
    """``dx = dy / (1 - p)`` where the mask keeps, else 0; ``mask=None`` gives dy."""
    where = "dropout_backward"
    dy = V.float_array(dy, "dy", where)
    p = V.probability(p, "p", where)
    if mask is None:
        return dy
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 1:
        raise TypeError(f"{where}: mask must be the 1-D uint8 array returned by dropout")
    if mask.size != (dy.size + 7) // 8:
        raise ValueError(
            f"{where}: mask has {mask.size} bytes, dy of size {dy.size} needs {(dy.size + 7) // 8}"
        )
    return _C.dropout_backward(dy, np.ascontiguousarray(mask), p, None)
