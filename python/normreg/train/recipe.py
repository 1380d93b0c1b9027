"""A training recipe: :class:`TrainConfig` and the model, optimizer and schedule it builds."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import numpy as np

from .. import _validation as V
from .. import optim
from ..models import CNN, MLP, NORMS_2D, MLPResNet
from ..nn import Conv2d, Linear, Module
from ..optim import lr_scheduler
from ..random import manual_seed


@dataclasses.dataclass
class TrainConfig:
    """A training run. ``lr=None`` / ``weight_decay=None`` take the optimizer's default here:
    sgd lr 0.1, weight decay 5e-4; adam lr 1e-3, weight decay 0; adamw lr 1e-3, weight decay 0.05.

    ``width`` is a list of hidden widths (MLP) or one int (MLP: repeated ``depth`` times; resnet:
    the block width, ``depth`` blocks; CNN: the channels of its stages, ``depth`` conv blocks
    per stage). ``schedule`` is ``cosine`` (per step, to 0), ``step`` (x0.1 after each third
    of the steps) or ``constant``; ``warmup_epochs`` adds a linear warm-up from 0.1*lr.
    ``init_gain`` rescales every Linear (and Conv2d) weight after the default initialization
    (1 keeps it). The defaults are the MLP's recipe; :func:`default_config` gives each model's.
    """

    model: str = "mlp"
    width: Any = (1024, 512, 256)
    depth: Any = None
    norm: str = "batch"
    dropout: float = 0.2
    optimizer: str = "sgd"
    lr: Any = None
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: Any = None
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    epochs: int = 15
    batch_size: int = 256
    seed: int = 0
    train_subset: Any = None
    init_gain: float = 1.0
    dtype: str = "float32"

    def resolved(self) -> TrainConfig:
        """A checked copy, with lr and weight_decay filled in from the optimizer's defaults.

        Each field is checked as the command line checks its flag (TypeError/ValueError naming
        the field): a bool is no batch size, ``epochs=1.5`` no number of epochs; a warm-up as
        long as the run is a ValueError. The model's own arguments (widths, depth, the norm
        for the model) are checked by its constructor (:func:`build_model`)."""
        where = "TrainConfig"
        defaults = {"sgd": (0.1, 5e-4), "adam": (1e-3, 0.0), "adamw": (1e-3, 0.05)}
        optimizer = V.choice(self.optimizer, "optimizer", where, sorted(defaults))
        lr, wd = defaults[optimizer]
        epochs = V.integer(self.epochs, "epochs", where, low=1)
        warmup = V.real(self.warmup_epochs, "warmup_epochs", where, low=0.0)
        if warmup >= epochs:  # not cut to the run
            raise ValueError(
                f"{where}: warmup_epochs (--warmup-epochs) {warmup:g} must be less than epochs "
                f"(--epochs) {epochs}"
            )
        depth, subset = self.depth, self.train_subset
        depth = None if depth is None else V.integer(depth, "depth", where, low=0)
        subset = None if subset is None else V.integer(subset, "train_subset", where, low=1)
        if V.is_integer(self.width):
            width: Any = V.integer(self.width, "width", where, low=1)
        elif isinstance(self.width, (list, tuple)):
            width = [V.integer(w, f"width[{i}]", where, low=1) for i, w in enumerate(self.width)]
        else:
            raise TypeError(
                f"{where}: width must be an int or a list of ints, got {type(self.width).__name__}"
            )
        dtype = self.dtype
        if dtype is not None and not isinstance(dtype, str):  # np.float32, np.dtype("float64"): by name
            with contextlib.suppress(TypeError):  # else V.choice's TypeError below
                dtype = np.dtype(dtype).name
        return dataclasses.replace(
            self,
            model=V.choice(self.model, "model", where, ("mlp", "resnet", "cnn")),
            width=width,
            norm=self.norm if self.norm is None else V.choice(self.norm, "norm", where, NORMS_2D),
            dropout=V.real(self.dropout, "dropout", where, low=0.0, high=1.0, high_open=True),
            lr=lr if self.lr is None else V.real(self.lr, "lr", where, low=0.0, low_open=True),
            momentum=V.real(self.momentum, "momentum", where, low=0.0),
            nesterov=V.boolean(self.nesterov, "nesterov", where),
            weight_decay=wd
            if self.weight_decay is None
            else V.real(self.weight_decay, "weight_decay", where, low=0.0),
            schedule=V.choice(self.schedule, "schedule", where, ("cosine", "step", "constant")),
            warmup_epochs=warmup,
            epochs=epochs,
            batch_size=V.integer(self.batch_size, "batch_size", where, low=1),
            seed=V.integer(self.seed, "seed", where, low=0, high=2**64 - 1),
            init_gain=V.real(self.init_gain, "init_gain", where),
            dtype=V.choice(dtype, "dtype", where, ("float32", "float64")),
            depth=depth,
            train_subset=subset,
        )


#: The defaults of ``--model cnn`` (:func:`default_config`): the recipe that reaches >= 0.92
#: test accuracy on Fashion-MNIST in 15 epochs. lr and weight_decay are the optimizer's
#: defaults (sgd: 0.1 and 5e-4).
CNN_RECIPE: dict[str, Any] = dict(
    model="cnn",
    width=(32, 64, 128),
    norm="batch",
    dropout=0.0,
    optimizer="sgd",
    lr=None,
    momentum=0.9,
    nesterov=True,
    weight_decay=None,
    schedule="cosine",
    epochs=15,
    batch_size=128,
)


def default_config(model: str = "mlp", **overrides: Any) -> TrainConfig:
    """The default recipe of ``model`` (``TrainConfig()``'s for the MLP and the residual MLP,
    :data:`CNN_RECIPE` for the CNN) with ``overrides`` applied."""
    base = dict(CNN_RECIPE) if model == "cnn" else dict(model=model)
    base.update(overrides)
    return TrainConfig(**base)


# ---- building blocks ----------------------------------------------------------------------


def build_model(config: TrainConfig, in_features: int, num_classes: int) -> Module:
    """The model ``config`` describes (MLP, MLPResNet or CNN). Reseeds normreg's default generator
    with ``config.seed`` first (``normreg.manual_seed``), so initial weights and dropout masks
    are reproducible."""
    manual_seed(config.seed)
    dtype = np.dtype(config.dtype)
    model: Module
    if config.model == "mlp":
        model = MLP(
            in_features,
            config.width,
            num_classes,
            norm=config.norm,
            dropout=config.dropout,
            depth=config.depth,
            dtype=dtype,
        )
    elif config.model == "resnet":
        if not isinstance(config.width, int):
            raise ValueError(
                f"the resnet model takes one int width (the residual stream), got {config.width!r}"
            )
        model = MLPResNet(
            in_features,
            config.width,
            num_classes,
            num_blocks=3 if config.depth is None else config.depth,
            norm=config.norm,
            dropout=config.dropout,
            dtype=dtype,
        )
    elif config.model == "cnn":
        side = math.isqrt(in_features)
        if side * side != in_features:
            raise ValueError(
                f"the cnn model takes square single-channel images, got rows of {in_features} values"
            )
        if config.dropout:
            raise ValueError(f"the cnn model has no dropout, got dropout={config.dropout}")
        model = CNN(
            1,
            num_classes,
            channels=[config.width] if isinstance(config.width, int) else config.width,
            norm=config.norm,
            input_shape=(1, side, side),
            blocks=1 if config.depth is None else config.depth,
            dtype=dtype,
        )
    else:
        raise ValueError(f"model must be 'mlp', 'resnet' or 'cnn', got {config.model!r}")
    if config.init_gain != 1.0:
        for m in model.modules():
            if isinstance(m, (Linear, Conv2d)):
                m.weight.data *= m.weight.data.dtype.type(config.init_gain)
    return model


def build_optimizer(
    config: TrainConfig, model: Module, steps_per_epoch: int
) -> tuple[optim.Optimizer, lr_scheduler.LRScheduler | None]:
    """``(optimizer, scheduler)`` for ``config``: weight decay only on the weights (not on
    biases and normalization parameters), the scheduler stepped once per batch."""
    groups = optim.param_groups(model, config.weight_decay)
    opt: optim.Optimizer
    if config.optimizer == "sgd":
        opt = optim.SGD(
            groups,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=bool(config.nesterov and config.momentum > 0),
        )
    elif config.optimizer == "adam":
        opt = optim.Adam(groups, lr=config.lr)
    elif config.optimizer == "adamw":
        opt = optim.AdamW(groups, lr=config.lr)
    else:
        raise ValueError(f"optimizer must be sgd, adam or adamw, got {config.optimizer!r}")
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total - 1)
    main_sched: lr_scheduler.LRScheduler | None
    if config.schedule == "cosine":
        main_sched = lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup)
    elif config.schedule == "step":  # x0.1 after each third of the (post-warm-up) steps
        main_sched = lr_scheduler.StepLR(opt, step_size=max(1, (total - warmup) // 3), gamma=0.1)
    elif config.schedule == "constant":
        main_sched = None
    else:
        raise ValueError(f"schedule must be cosine, step or constant, got {config.schedule!r}")
    if warmup <= 0:
        return opt, main_sched
    warm = lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=warmup)
    if main_sched is None:
        return opt, warm
    return opt, lr_scheduler.SequentialLR(opt, [warm, main_sched], milestones=[warmup])
