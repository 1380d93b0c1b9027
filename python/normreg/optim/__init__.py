"""Optimizers: SGD, Adam and AdamW, with parameter groups, as PyTorch defines them.

Each ``step()`` updates every parameter with one fused C pass over its buffer
(parameter, gradient and state read and written once). The weight decay of
:class:`SGD` and :class:`Adam` is coupled, i.e. the L2 gradient ``weight_decay * W`` is
added to the gradient, so plain SGD computes the lecture's
``W := (1 - lr*weight_decay) * W - lr * grad``; :class:`AdamW` decays the weights
directly (``W *= 1 - lr*weight_decay``) before its Adam step.

``param_groups`` is a list of dicts, each with its own ``'params'`` and
hyperparameters (missing ones are filled from the optimizer's defaults);
:func:`param_groups` builds the usual two groups from a module, with weight decay for
the weight matrices and none for biases and normalization weights. ``state`` maps each
parameter to its state (``'momentum_buffer'``; ``'step'``, ``'exp_avg'``,
``'exp_avg_sq'``). ``state_dict()`` / ``load_state_dict()`` use PyTorch's layout: the
state keyed by the parameter's index over all groups, and the groups with the indices
of their parameters.
"""

from ..nn.parameter import Module as Module
from ..nn.parameter import Parameter as Parameter
from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer, param_groups
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "param_groups", "lr_scheduler"]
