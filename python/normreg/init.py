"""``normreg.init``: the weight initializers of :mod:`normreg.nn.init` (as ``torch.nn.init``),
under their short name. See :mod:`normreg.nn.init` for the fans and the formulas."""

from .nn.init import *  # noqa: F403
from .nn.init import __all__ as __all__
from .nn.parameter import Parameter as Parameter
from .random import default_generator as default_generator
