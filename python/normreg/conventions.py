"""Course conventions: named presets for the choices on which courses and PyTorch differ.

Students check their layers against their course's expected values, and the courses
disagree on a few details of batch norm, dropout and SGD momentum. Each detail is an
explicit switch on the layer or optimizer; a *convention* sets them together:

====================================  ================  ==============  ================
switch                                ``'torch'``       ``'needle'``    ``'cs231n'``
====================================  ================  ==============  ================
BatchNorm ``momentum`` (default)      0.1               0.1             0.9
BatchNorm ``momentum_style``          ``'torch'``       ``'torch'``     ``'cs231n'``
BatchNorm ``running_var_estimator``   ``'unbiased'``    ``'biased'``    ``'biased'``
BatchNorm ``initial_running_var``     1.0               1.0             0.0
Dropout ``p_is_keep_prob``            False             False           True
SGD ``momentum_style``                ``'heavy_ball'``  ``'ema'``       ``'heavy_ball'``
====================================  ================  ==============  ================

* ``momentum_style='torch'``: ``running = (1 - momentum) * running + momentum * batch``;
  ``'cs231n'``: ``running = momentum * running + (1 - momentum) * batch``.
* ``running_var_estimator``: the batch variance fed to ``running_var``, unbiased (divides
  by n - 1, PyTorch) or biased (divides by n, the one that normalizes). Normalization in
  training always uses the biased variance.
* ``p_is_keep_prob=True``: Dropout's ``p`` is the probability of *keeping* a unit (cs231n).
* SGD ``momentum_style='heavy_ball'``: ``u = momentum * u + g`` (PyTorch; cs231n's
  ``v = momentum * v - lr * g`` is the same update); ``'ema'``: ``u = momentum * u +
  (1 - momentum) * g`` (needle).

PyTorch's convention is the default. A convention is read when a layer or optimizer is
*constructed* (switches given explicitly win over it); changing it later does not change
existing objects::

    import normreg
    normreg.conventions.use("needle")            # from now on, in this process
    with normreg.conventions.use("cs231n"):      # only inside the block
        bn = normreg.nn.BatchNorm1d(3)
    bn = normreg.nn.BatchNorm1d(3, convention="needle")   # just this layer
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from . import _validation as V

__all__ = ["Convention", "PRESETS", "use", "current", "get", "DEFAULT"]


class _Default:
    """Marks an argument whose default comes from the active convention."""

    def __repr__(self) -> str:
        return "<convention default>"


DEFAULT = _Default()

#: The values of the switches (see the table above).
BN_MOMENTUM_STYLES = ("torch", "cs231n")
BN_VAR_ESTIMATORS = ("unbiased", "biased")
SGD_MOMENTUM_STYLES = ("heavy_ball", "ema")


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``choices``: TypeError for a non-string,
    ValueError for another string."""
    return V.choice(value, name, "conventions", choices)


@dataclasses.dataclass(frozen=True)
class Convention:
    """The switches a convention sets (see the module documentation)."""

    name: str
    bn_momentum: float = 0.1
    bn_momentum_style: str = "torch"
    bn_running_var_estimator: str = "unbiased"
    bn_initial_running_var: float = 1.0
    dropout_p_is_keep_prob: bool = False
    sgd_momentum_style: str = "heavy_ball"

    def __post_init__(self) -> None:
        where = "Convention"
        V.choice(self.bn_momentum_style, "bn_momentum_style", where, BN_MOMENTUM_STYLES)
        V.choice(self.bn_running_var_estimator, "bn_running_var_estimator", where, BN_VAR_ESTIMATORS)
        V.choice(self.sgd_momentum_style, "sgd_momentum_style", where, SGD_MOMENTUM_STYLES)


PRESETS = {
    "torch": Convention("torch"),
    "needle": Convention("needle", bn_running_var_estimator="biased", sgd_momentum_style="ema"),
    "cs231n": Convention(
        "cs231n",
        bn_momentum=0.9,
        bn_momentum_style="cs231n",
        bn_running_var_estimator="biased",
        bn_initial_running_var=0.0,
        dropout_p_is_keep_prob=True,
    ),
}

_current = PRESETS["torch"]


def get(convention: str | Convention | None = None) -> Convention:
    """The :class:`Convention` for a preset name, a Convention itself, or the current one
    for ``None``."""
    if convention is None:
        return _current
    if isinstance(convention, Convention):
        return convention
    if isinstance(convention, str) and convention in PRESETS:
        return PRESETS[convention]
    raise ValueError(
        f"conventions: convention must be one of {', '.join(repr(n) for n in PRESETS)} "
        f"or a Convention, got {convention!r}"
    )


def current() -> Convention:
    """The convention new layers and optimizers take their defaults from."""
    return _current


class _Use:
    def __init__(self, previous: Convention, active: Convention) -> None:
        self._previous = previous
        self.convention = active

    def __enter__(self) -> Convention:
        return self.convention

    def __exit__(self, *exc: object) -> None:
        global _current
        _current = self._previous

    def __repr__(self) -> str:
        return f"conventions.use({self.convention.name!r})"


def use(convention: str | Convention) -> _Use:
    """Make ``convention`` ('torch', 'needle', 'cs231n' or a :class:`Convention`) the
    current one for every layer and optimizer constructed from now on.

    Also a context manager: ``with use('needle'): ...`` restores the previous convention
    when the block ends. The setting is process-wide (not per thread).
    """
    global _current
    active = get(convention)
    previous, _current = _current, active
    return _Use(previous, active)


def resolve(convention: str | Convention | None, field: str, explicit: Any) -> Any:
    """``explicit`` unless it is None or DEFAULT, else ``field`` of the convention."""
    if explicit is not None and explicit is not DEFAULT:
        return explicit
    return getattr(get(convention), field)
