"""The training command: ``normreg-train`` (or ``python -m normreg.train``).

Trains an :class:`~normreg.models.MLP`, :class:`~normreg.models.MLPResNet` or
:class:`~normreg.models.CNN` on Fashion-MNIST and writes into the output directory:

* ``checkpoint.npz``: the epoch, the configuration, model, optimizer and scheduler state,
  every random state and the history, rewritten after every epoch, atomically, by
  :func:`normreg.save` (read it with :func:`normreg.load`); ``normreg-train --resume DIR``
  continues the run to bit for bit the result of an uninterrupted one (see
  :mod:`normreg.train.checkpoint`);
* ``metrics.json``: the configuration and, per epoch, the learning rate, train and test
  loss and accuracy and the seconds taken (rewritten after every epoch);
* ``curves.png``: loss and accuracy against epochs.

The defaults are the recipe that reaches >= 0.90 test accuracy in 15 epochs: an MLP
784-1024-512-256-10 with BatchNorm and Dropout(0.2), SGD with Nesterov momentum 0.9,
lr 0.1 with cosine decay, weight decay 5e-4 on the weights (not on biases and norm
parameters), batches of 256.

``--model cnn`` has its own defaults (:data:`CNN_RECIPE`, the recipe that reaches >= 0.92
test accuracy in 15 epochs): the CNN with stages of 32, 64 and 128 channels and BatchNorm2d,
SGD with Nesterov momentum 0.9, lr 0.1 with cosine decay, weight decay 5e-4 on the weights,
batches of 128; any option given on the command line overrides them.

``--distributed`` (under ``mpiexec -n R normreg-train --distributed ...``) trains data-parallel
over MPI with :mod:`normreg.distributed`: the global batch of ``--batch-size`` examples is split
across the ranks, BatchNorm layers become SyncBatchNorm (statistics of the global batch),
gradients are summed across the ranks before each step, and rank 0 alone prints and writes
the checkpoint, metrics and curves.

The same machinery is a library: :class:`TrainConfig` holds a configuration,
:func:`train` runs it on arrays and returns the history, and :func:`main` is the command.
"""

from .._reports import plot_curves, write_json
from . import checkpoint as checkpoint
from .cli import main
from .cli import parser as parser
from .loop import evaluate, train
from .recipe import CNN_RECIPE, TrainConfig, build_model, build_optimizer, default_config

__all__ = [
    "TrainConfig",
    "train",
    "evaluate",
    "build_model",
    "build_optimizer",
    "plot_curves",
    "write_json",
    "main",
    "CNN_RECIPE",
    "default_config",
]
