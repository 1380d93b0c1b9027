"""Modules with explicit forward and backward (PyTorch's ``torch.nn``).

A :class:`Module` keeps in ``forward`` what its ``backward`` needs. ``backward(dy)``
returns the gradient with respect to the input and **adds** the parameter gradients
into each :class:`Parameter`'s ``.grad`` (they accumulate until ``zero_grad()``, as in
PyTorch). Layers take the names and arguments of their PyTorch counterparts; a
:class:`Linear` weight is stored as (in_features, out_features), so ``y = x @ W + b``.

One file per family: :mod:`~normreg.nn.parameter` (Parameter, Module),
:mod:`~normreg.nn.linear`, :mod:`~normreg.nn.activation` (ReLU, Flatten, Unflatten, Identity),
:mod:`~normreg.nn.conv` (Conv2d), :mod:`~normreg.nn.pooling` (MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d),
:mod:`~normreg.nn.normalization` (LayerNorm, RMSNorm, GroupNorm, InstanceNorm1d/2d),
:mod:`~normreg.nn.batchnorm` (BatchNorm1d/2d), :mod:`~normreg.nn.dropout`,
:mod:`~normreg.nn.container` (Sequential, Residual, ModuleList, ModuleDict), :mod:`~normreg.nn.loss`
(SoftmaxLoss, l2_penalty); :mod:`~normreg.nn.init` (initializers, also
``normreg.init``) and :mod:`~normreg.nn.utils` (gradient clipping, ...).
"""

from ..conventions import DEFAULT as DEFAULT
from . import init as init
from . import utils
from .activation import Flatten, Identity, ReLU, Unflatten
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleDict, ModuleList, Residual, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .linear import Linear
from .loss import CrossEntropyLoss, SoftmaxLoss, l2_penalty
from .normalization import GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm, RMSNorm
from .parameter import Module, Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "Parameter",
    "Module",
    "Linear",
    "ReLU",
    "LayerNorm",
    "BatchNorm1d",
    "Dropout",
    "Sequential",
    "Residual",
    "Flatten",
    "Identity",
    "SoftmaxLoss",
    "CrossEntropyLoss",
    "BatchNorm2d",
    "RMSNorm",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "utils",
    "l2_penalty",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "Unflatten",
    "ModuleList",
    "ModuleDict",
]
