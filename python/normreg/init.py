"""``normreg.init``: the weight initializers of :mod:`normreg.nn.init` (as ``torch.nn.init``),
under their short name. See :mod:`normreg.nn.init` for the fans and the formulas."""

from .nn.init import (
    calculate_fan_in_and_fan_out,
    calculate_gain,
    constant_,
    kaiming_normal_,
    kaiming_uniform_,
    normal_,
    ones_,
    uniform_,
    xavier_normal_,
    xavier_uniform_,
    zeros_,
)
from .nn.parameter import Parameter as Parameter
from .random import default_generator as default_generator

__all__ = [
    "calculate_gain",
    "calculate_fan_in_and_fan_out",
    "uniform_",
    "normal_",
    "constant_",
    "zeros_",
    "ones_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
]
