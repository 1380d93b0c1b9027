"""Pure-NumPy references of normreg's ops, forward and backward: the one twin of every op
that the tests compare the library against (``import reference as R``).

Each is written from the math stated in normreg's documentation (docs/api.md; the formulas
are repeated in the docstrings) and PyTorch's documentation, independently of normreg's
kernels: everything is computed in float64 and returned in float64, and the tests compare
the library's result against it within a dtype-dependent tolerance. Arrays of any memory
layout are accepted (they are copied to float64 first); empty arrays are handled wherever
the op defines a result.

- ``core.py``: linear, relu, layer_norm, batch_norm (training, evaluation, the synchronized
  backward), rms_norm, group_norm (instance norm is group norm with one channel per group),
  dropout (and the Philox4x32-10 generator of its masks), cross_entropy, the SGD and
  Adam/AdamW steps;
- ``spatial.py``: the spatial ops on NCHW arrays, conv2d, max_pool2d, avg_pool2d and
  adaptive_avg_pool2d, written independently of the kernels' im2col scheme.
"""

from .core import (
    adam_step,
    batch_norm_eval,
    batch_norm_eval_backward,
    batch_norm_stats,
    batch_norm_train,
    batch_norm_train_backward,
    cross_entropy,
    cross_entropy_backward,
    cross_entropy_options,
    dropout,
    dropout_backward,
    dropout_keep,
    dropout_keep_philox,
    f64,
    group_norm,
    group_norm_backward,
    instance_norm,
    layer_norm,
    layer_norm_backward,
    linear,
    linear_backward,
    logsumexp,
    philox4x32_10,
    relu,
    relu_backward,
    rms_norm,
    rms_norm_backward,
    sgd_step,
    sync_batch_norm_backward,
)
from .spatial import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward,
    max_pool2d,
    max_pool2d_backward,
    out_size,
)

__all__ = [
    "f64",
    "linear",
    "linear_backward",
    "relu",
    "relu_backward",
    "layer_norm",
    "layer_norm_backward",
    "batch_norm_train",
    "batch_norm_eval",
    "batch_norm_train_backward",
    "batch_norm_eval_backward",
    "batch_norm_stats",
    "sync_batch_norm_backward",
    "rms_norm",
    "rms_norm_backward",
    "group_norm",
    "group_norm_backward",
    "instance_norm",
    "dropout_keep",
    "dropout",
    "dropout_backward",
    "philox4x32_10",
    "dropout_keep_philox",
    "logsumexp",
    "cross_entropy",
    "cross_entropy_backward",
    "cross_entropy_options",
    "sgd_step",
    "adam_step",
    "out_size",
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
]
