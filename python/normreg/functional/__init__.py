"""Stateless forward and backward functions over normreg's C kernels.

Every op has a forward that returns what its backward needs, and a backward that
returns the input gradient. Conventions (as the kernels, see ``csrc/kernels``):

* dtypes float32 and float64; every float argument of one call has the same dtype,
  else ``TypeError``. Integer or other input is a ``TypeError``.
* Any memory layout is accepted (non-contiguous input is copied to a contiguous
  buffer first); inputs are never written to.
* Parameter gradients accumulate: when ``dweight``/``dbias`` arrays are passed, the
  gradient is **added** into them in place (as ``Module.backward`` does with
  ``.grad``); when they are ``None``, fresh arrays are returned. Input gradients are
  always new arrays (or ``out=``).
* ``out=``: an optional C-contiguous array of the output's shape and dtype to write
  the result into; it is returned.
* Bad arguments raise TypeError (wrong type or dtype) or ValueError (wrong shape or
  value) naming the function and the argument (the policy of ``normreg._validation``).

This package is the only part of normreg's Python layer that calls the extension
``normreg._C``; the modules of ``normreg.nn``, the optimizers and
``normreg.distributed`` call these functions. One file per op family.
"""

from ..random import Generator as Generator
from ..random import default_generator as default_generator
from .activation import relu, relu_backward
from .batchnorm import (
    batch_norm,
    batch_norm_backward,
    batch_norm_backward_elemt,
    batch_norm_backward_reduce,
    batch_norm_elemt,
    batch_norm_stats,
)
from .conv import conv2d, conv2d_backward
from .dropout import dropout, dropout_backward
from .linear import linear, linear_backward
from .loss import cross_entropy, cross_entropy_backward
from .normalization import (
    group_norm,
    group_norm_backward,
    layer_norm,
    layer_norm_backward,
    layer_norm_rows,
    rms_norm,
    rms_norm_backward,
)
from .optim import adam_step_, sgd_step_
from .pooling import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)

# in the order of the imports above: one group per file
__all__ = [
    "relu",
    "relu_backward",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_backward_elemt",
    "batch_norm_backward_reduce",
    "batch_norm_elemt",
    "batch_norm_stats",
    "conv2d",
    "conv2d_backward",
    "dropout",
    "dropout_backward",
    "linear",
    "linear_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "group_norm",
    "group_norm_backward",
    "layer_norm",
    "layer_norm_backward",
    "layer_norm_rows",
    "rms_norm",
    "rms_norm_backward",
    "adam_step_",
    "sgd_step_",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
]
