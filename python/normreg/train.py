"""The training command: ``normreg-train`` (or ``python -m normreg.train``).

Trains an :class:`~normreg.models.MLP`, :class:`~normreg.models.MLPResNet` or
:class:`~normreg.models.CNN` on Fashion-MNIST and writes into the output directory:

* ``checkpoint.npz``: model, optimizer and scheduler state and the epoch, rewritten after
  every epoch, atomically, by :func:`normreg.save` (read it with :func:`normreg.load`);
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
import argparse
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np

__all__ = ["TrainConfig", "train", "evaluate", "build_model", "build_optimizer", "plot_curves",
           "write_json", "main", "CNN_RECIPE", "default_config"]


@dataclasses.dataclass
class TrainConfig:
    """A training run. ``lr=None`` / ``weight_decay=None`` take the optimizer's default here:
    sgd lr 0.1, weight decay 5e-4; adam lr 1e-3, weight decay 0; adamw lr 1e-3, weight decay 0.05.

    ``width`` is a list of hidden widths (MLP) or one int (MLP: repeated ``depth`` times; resnet:
    the block width, ``depth`` blocks; CNN: the channels of its stages, ``depth`` conv blocks
    per stage). ``schedule`` is
    ``cosine`` (per step, to 0), ``step`` (x0.1 after each third of the steps) or ``constant``;
    ``warmup_epochs`` adds a linear warm-up from 0.1*lr. ``init_gain`` rescales every Linear
    (and Conv2d) weight after the default initialization (1 keeps it). The defaults are the
    MLP's recipe; :func:`default_config` gives each model's.
    """

    model: str = "mlp"
    width: object = (1024, 512, 256)
    depth: object = None
    norm: str = "batch"
    dropout: float = 0.2
    optimizer: str = "sgd"
    lr: object = None
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: object = None
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    epochs: int = 15
    batch_size: int = 256
    seed: int = 0
    train_subset: object = None
    init_gain: float = 1.0
    dtype: str = "float32"

    def resolved(self):
        """A copy with lr and weight_decay filled in from the optimizer's defaults."""
        defaults = {"sgd": (0.1, 5e-4), "adam": (1e-3, 0.0), "adamw": (1e-3, 0.05)}
        if self.optimizer not in defaults:
            raise ValueError(f"optimizer must be one of {sorted(defaults)}, got {self.optimizer!r}")
        lr, wd = defaults[self.optimizer]
        width = self.width if isinstance(self.width, int) else list(self.width)
        return dataclasses.replace(
            self, width=width,
            lr=lr if self.lr is None else float(self.lr),
            weight_decay=wd if self.weight_decay is None else float(self.weight_decay))


#: The defaults of ``--model cnn`` (:func:`default_config`): the recipe that reaches >= 0.92
#: test accuracy on Fashion-MNIST in 15 epochs.
#: lr and weight_decay are the optimizer's defaults (sgd: 0.1 and 5e-4).
CNN_RECIPE = dict(model="cnn", width=(32, 64, 128), norm="batch", dropout=0.0, optimizer="sgd",
                  lr=None, momentum=0.9, nesterov=True, weight_decay=None, schedule="cosine",
                  epochs=15, batch_size=128)


def default_config(model="mlp", **overrides):
    """The default recipe of ``model`` (``TrainConfig()``'s for the MLP and the residual MLP,
    :data:`CNN_RECIPE` for the CNN) with ``overrides`` applied."""
    base = dict(CNN_RECIPE) if model == "cnn" else dict(model=model)
    base.update(overrides)
    return TrainConfig(**base)


# ---- building blocks ----------------------------------------------------------------------


def build_model(config, in_features, num_classes):
    """The model ``config`` describes (MLP, MLPResNet or CNN). Reseeds normreg's default generator
    with ``config.seed`` first (``normreg.manual_seed``), so initial weights and dropout masks
    are reproducible."""
    import normreg
    from .models import CNN, MLP, MLPResNet
    normreg.manual_seed(config.seed)
    dtype = np.dtype(config.dtype)
    if config.model == "mlp":
        model = MLP(in_features, config.width, num_classes, norm=config.norm,
                    dropout=config.dropout, depth=config.depth, dtype=dtype)
    elif config.model == "resnet":
        if not isinstance(config.width, int):
            raise ValueError("the resnet model takes one int width (the residual stream), "
                             f"got {config.width!r}")
        model = MLPResNet(in_features, config.width, num_classes,
                          num_blocks=3 if config.depth is None else config.depth,
                          norm=config.norm, dropout=config.dropout, dtype=dtype)
    elif config.model == "cnn":
        side = math.isqrt(in_features)
        if side * side != in_features:
            raise ValueError(f"the cnn model takes square single-channel images, got rows of "
                             f"{in_features} values")
        if config.dropout:
            raise ValueError(f"the cnn model has no dropout, got dropout={config.dropout}")
        channels = [config.width] if isinstance(config.width, int) else config.width
        model = CNN(1, num_classes, channels=channels, norm=config.norm,
                    input_shape=(1, side, side), blocks=1 if config.depth is None else config.depth,
                    dtype=dtype)
    else:
        raise ValueError(f"model must be 'mlp', 'resnet' or 'cnn', got {config.model!r}")
    if config.init_gain != 1.0:
        from .nn import Conv2d, Linear
        for m in model.modules():
            if isinstance(m, (Linear, Conv2d)):
                m.weight.data *= m.weight.data.dtype.type(config.init_gain)
    return model


def build_optimizer(config, model, steps_per_epoch):
    """``(optimizer, scheduler)`` for ``config``: weight decay only on the weights (not on
    biases and normalization parameters), the scheduler stepped once per batch."""
    from . import optim
    from .optim import lr_scheduler
    groups = optim.param_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        opt = optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                        nesterov=bool(config.nesterov and config.momentum > 0))
    elif config.optimizer == "adam":
        opt = optim.Adam(groups, lr=config.lr)
    elif config.optimizer == "adamw":
        opt = optim.AdamW(groups, lr=config.lr)
    else:
        raise ValueError(f"optimizer must be sgd, adam or adamw, got {config.optimizer!r}")
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total - 1)
    if config.schedule == "cosine":
        main_sched = lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup)
    elif config.schedule == "step":  # x0.1 after each third of the (post-warm-up) steps
        main_sched = lr_scheduler.StepLR(opt, step_size=max(1, (total - warmup) // 3), gamma=0.1)
    elif config.schedule == "constant":
        main_sched = None
    else:
        raise ValueError(f"schedule must be cosine, step or constant, got {config.schedule!r}")
    if warmup > 0:
        warm = lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=warmup)
        sched = warm if main_sched is None else lr_scheduler.SequentialLR(
            opt, [warm, main_sched], milestones=[warmup])
    else:
        sched = main_sched
    return opt, sched


def evaluate(model, x, y, batch_size=1000):
    """Mean cross-entropy loss and accuracy of ``model`` (in evaluation mode) on ``(x, y)``."""
    from .nn import SoftmaxLoss
    was_training = model.training
    model.eval()
    loss_fn = SoftmaxLoss()
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        logits = model(xb)
        total_loss += loss_fn(logits, yb) * len(yb)
        correct += int((logits.argmax(axis=1) == yb).sum())
    model.train(was_training)
    n = max(len(x), 1)
    return total_loss / n, correct / n


def _current_lr(opt):
    return float(opt.param_groups[0]["lr"])


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("training needs tqdm and matplotlib: pip install 'normreg[train]'") from None
    return tqdm


def write_json(obj, path):
    """Write ``obj`` as JSON atomically (temporary file, then rename); NaN becomes null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            return clean(v.item())
        return v
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(clean(obj), f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def plot_curves(history, path, title=None):
    """Loss and accuracy (train and test) against epochs, as a PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, style in (("train", "-o"), ("test", "-s")):
        ax_loss.plot(epochs, [h[f"{key}_loss"] for h in history], style, ms=3, label=key)
        ax_acc.plot(epochs, [h[f"{key}_acc"] for h in history], style, ms=3, label=key)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return path


# ---- the loop -------------------------------------------------------------------------------


def train(config, data, out_dir=None, progress=None, log=print, model=None, record_every=None,
          comm=None):
    """Train ``config`` on ``data = (x_train, y_train, x_test, y_test)``.

    Returns a dict: ``config`` (resolved, as a dict), ``history`` (one dict per epoch:
    epoch, lr, train_loss, train_acc, test_loss, test_acc, seconds, train_seconds),
    ``steps`` (mean training loss over every ``record_every`` batches, as ``[step, loss]``
    pairs; default about 20 per epoch),
    ``diverged`` (the loss became NaN/Inf: training stopped there), ``model``.
    ``train_loss``/``train_acc`` are running means over the epoch's batches (training mode).
    With ``out_dir``, writes checkpoint.npz and metrics.json after every epoch and curves.png
    at the end. ``progress``: a tqdm bar per epoch (None: only on a terminal). ``log``: where
    the per-epoch lines go (None: nowhere). ``model``: train this module instead of building one.
    ``comm``: an MPI communicator (``normreg.distributed.init()``) to train data-parallel over
    its ranks: every rank calls ``train`` with the same data and configuration; each processes
    its share of every global batch of ``config.batch_size``, the metrics are those of the
    global batch, and only rank 0 logs and writes ``out_dir``.
    """
    import normreg
    from .data import DataLoader
    from .nn import SoftmaxLoss

    config = config.resolved()
    x_train, y_train, x_test, y_test = data
    dtype = np.dtype(config.dtype)
    x_train = np.asarray(x_train, dtype=dtype)
    x_test = np.asarray(x_test, dtype=dtype)
    if config.train_subset is not None and config.train_subset < len(x_train):
        pick = np.random.default_rng(config.seed).permutation(len(x_train))[:config.train_subset]
        x_train, y_train = x_train[np.sort(pick)], y_train[np.sort(pick)]
    num_classes = int(max(y_train.max(), y_test.max()) + 1)
    if model is None:
        model = build_model(config, x_train.shape[1], num_classes)
    rank = 0 if comm is None else comm.Get_rank()
    net = model  # what forward/backward go through: the model, or its data-parallel wrapper
    if comm is not None:
        from . import distributed as dist
        model = dist.convert_sync_batchnorm(model, comm)
        net = dist.DistributedDataParallel(model, comm)  # rank 0's initial weights everywhere
        if rank > 0:  # dropout masks differ between ranks (rank 0 keeps the single-process stream)
            normreg.manual_seed(config.seed + 7919 * rank)
        if rank != 0:
            out_dir, log, progress = None, None, False
    drop_last = len(x_train) > config.batch_size  # no tiny last batch for BatchNorm
    if comm is None:
        loader = DataLoader(x_train, y_train, config.batch_size, shuffle=True, drop_last=drop_last,
                            seed=config.seed)
    else:  # this rank's share of each global batch: the batches of the DataLoader above
        loader = dist.DistributedDataLoader(x_train, y_train, config.batch_size, shuffle=True,
                                            drop_last=drop_last, comm=comm,
                                            generator=normreg.Generator(config.seed))
    opt, sched = build_optimizer(config, model, len(loader))
    loss_fn = SoftmaxLoss()
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)

    history, steps, diverged = [], [], False
    meta = {"config": dataclasses.asdict(config), "train_size": len(x_train), "test_size": len(x_test),
            "threads": normreg.get_num_threads(), "normreg_version": normreg.__version__,
            "world_size": 1 if comm is None else comm.Get_size()}
    tqdm = _tqdm()
    step = 0
    window = []
    if record_every is None:
        record_every = max(1, len(loader) // 20)
    for epoch in range(1, config.epochs + 1):
        lr = _current_lr(opt)
        t0 = time.perf_counter()
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{config.epochs}", leave=False, unit="batch",
                   disable=(None if progress is None else not progress), dynamic_ncols=True)
        for xb, yb in bar:
            opt.zero_grad()
            logits = net(xb)
            loss = loss_fn(logits, yb)
            n_batch, n_correct = len(yb), int((logits.argmax(axis=1) == yb).sum())
            if comm is not None:  # the global batch's loss: every rank takes the same decisions
                totals = dist.allreduce_sum_(comm, np.array([loss * n_batch if n_batch else 0.0,
                                                             n_correct, n_batch], dtype=np.float64))
                loss, n_correct, n_batch = totals[0] / totals[2], int(totals[1]), int(totals[2])
            if not math.isfinite(loss):
                diverged = True
                break
            net.backward(loss_fn.backward())
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            loss_sum += loss * n_batch
            correct += n_correct
            seen += n_batch
            window.append(loss)
            if len(window) == record_every:
                steps.append([step, float(np.mean(window))])
                window = []
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
        bar.close()
        train_seconds = time.perf_counter() - t0
        if diverged:
            if log:
                log(f"epoch {epoch:3d}/{config.epochs}  the training loss became NaN/Inf "
                    f"(lr {lr:.3g}): stopped")
            history.append({"epoch": epoch, "lr": lr, "train_loss": float("nan"), "train_acc": float("nan"),
                            "test_loss": float("nan"), "test_acc": float("nan"),
                            "seconds": train_seconds, "train_seconds": train_seconds})
            break
        if comm is None:
            test_loss, test_acc = evaluate(model, x_test, y_test)
        else:  # each rank evaluates a share of the test set
            start, stop = dist.shard_bounds(len(x_test), comm.Get_size(), rank)
            share = evaluate(model, x_test[start:stop], y_test[start:stop])
            test_loss, test_acc = dist.all_reduce_mean(share, stop - start, comm)
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch, "lr": lr, "train_loss": loss_sum / max(seen, 1),
                  "train_acc": correct / max(seen, 1), "test_loss": test_loss, "test_acc": test_acc,
                  "seconds": seconds, "train_seconds": train_seconds}
        history.append(record)
        if log:
            log(f"epoch {epoch:3d}/{config.epochs}  train loss {record['train_loss']:.4f} "
                f"acc {record['train_acc']:.4f}  test loss {test_loss:.4f} acc {test_acc:.4f}  "
                f"lr {lr:.3g}  {seconds:.1f} s")
        if out_dir is not None:
            _save_checkpoint(os.path.join(out_dir, "checkpoint.npz"), model, opt, sched, epoch, config)
            write_json({**meta, "epochs": history, "diverged": diverged},
                       os.path.join(out_dir, "metrics.json"))
    if out_dir is not None:
        write_json({**meta, "epochs": history, "diverged": diverged, "steps": steps},
                   os.path.join(out_dir, "metrics.json"))
        if history:
            plot_curves(history, os.path.join(out_dir, "curves.png"),
                        title=f"{config.model} {config.width} norm={config.norm} dropout={config.dropout} "
                              f"{config.optimizer} lr={config.lr:g} wd={config.weight_decay:g}")
    return {"config": dataclasses.asdict(config), "history": history, "steps": steps,
            "diverged": diverged, "model": model}


def _save_checkpoint(path, model, opt, sched, epoch, config):
    import normreg
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "epoch": np.int64(epoch)}
    if sched is not None and hasattr(sched, "state_dict"):
        state["scheduler"] = sched.state_dict()
    normreg.save(state, path)


# ---- command line ---------------------------------------------------------------------------


def _width(text):
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"width must be an int or a comma-separated list of ints, got {text!r}")
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return values[0] if len(values) == 1 else values


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def _nonnegative_float(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def parser():
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="normreg-train",
        description="Train an MLP (or the residual MLP, or a CNN) on Fashion-MNIST with normreg. "
                    "The defaults reach >= 0.90 test accuracy in 15 epochs (the MLP), >= 0.92 "
                    "(--model cnn, whose defaults differ where noted).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=["mlp", "resnet", "cnn"], default=d.model,
                   help="MLP, the residual MLP of the deep-learning-systems course, or a CNN "
                        "(conv-norm-ReLU stages, max pooling, global average pooling)")
    m.add_argument("--width", type=_width, default=None,
                   help="hidden widths: a comma-separated list (mlp), or one width repeated "
                        "--depth times (mlp) / the residual stream width (resnet) / the "
                        "channels of each stage (cnn) (default: "
                        f"{','.join(map(str, d.width))}; cnn: "
                        f"{','.join(map(str, CNN_RECIPE['width']))})")
    m.add_argument("--depth", type=int, default=None,
                   help="hidden layers for an int --width (mlp, default 1), residual blocks "
                        "(resnet, default 3) or conv blocks per stage (cnn, default 1)")
    m.add_argument("--norm", choices=["batch", "group", "layer", "instance", "none"], default=None,
                   help="normalization after each hidden Linear: BatchNorm1d, LayerNorm or none; "
                        "after each convolution (cnn): BatchNorm2d, GroupNorm (8 groups), "
                        "layer (GroupNorm(1, C)), InstanceNorm2d or none (default: batch)")
    m.add_argument("--dropout", type=float, default=None,
                   help=f"dropout probability (0: none) (default: {d.dropout}; cnn: none)")
    m.add_argument("--init-gain", type=float, default=d.init_gain,
                   help="multiply the default initial Linear weights by this")
    o = p.add_argument_group("optimization")
    o.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default=d.optimizer)
    o.add_argument("--lr", type=_positive(float), default=None,
                   help="learning rate (default: 0.1 for sgd, 1e-3 for adam/adamw)")
    o.add_argument("--momentum", type=_nonnegative_float, default=d.momentum, help="SGD momentum")
    o.add_argument("--no-nesterov", dest="nesterov", action="store_false",
                   help="classical instead of Nesterov momentum (default: Nesterov)")
    o.add_argument("--weight-decay", type=_nonnegative_float, default=None,
                   help="weight decay on the weights (default: 5e-4 sgd, 0 adam, 0.05 adamw); "
                        "biases and normalization parameters are not decayed")
    o.add_argument("--schedule", choices=["cosine", "step", "constant"], default=d.schedule,
                   help="learning rate per batch: cosine decay to 0, x0.1 after each third, or constant")
    o.add_argument("--warmup-epochs", type=_nonnegative_float, default=d.warmup_epochs,
                   help="linear warm-up from 0.1*lr over this many epochs")
    o.add_argument("--epochs", type=_positive(int), default=None,
                   help=f"(default: {d.epochs}; cnn: {CNN_RECIPE['epochs']})")
    o.add_argument("--batch-size", type=_positive(int), default=None,
                   help=f"(default: {d.batch_size}; cnn: {CNN_RECIPE['batch_size']})")
    r = p.add_argument_group("data and run")
    r.add_argument("--seed", type=int, default=d.seed)
    r.add_argument("--data-dir", default=None,
                   help="directory with the Fashion-MNIST files (default search: $NORMREG_DATA, "
                        "~/.cache/normreg/fashion-mnist, /usr/share/datasets/fashion-mnist, else download)")
    r.add_argument("--train-subset", type=_positive(int), default=None,
                   help="train on this many training images (a seeded random subset)")
    r.add_argument("--threads", type=_positive(int), default=None,
                   help="threads for normreg's kernels and OpenBLAS (default: all cores; with "
                        "--distributed: the cores divided among the ranks on the node)")
    r.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: run as `mpiexec -n R normreg-train --distributed ...` "
                        "(needs pip install 'normreg[mpi]'); --batch-size is the global batch, "
                        "split across the ranks; rank 0 alone prints and writes")
    r.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype)
    r.add_argument("--out", default=None,
                   help="output directory (default: runs/train-YYYYmmdd-HHMMSS)")
    r.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="always show the progress bar (default: only on a terminal)")
    r.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.distributed:
        from . import distributed as dist
        comm = dist.init()  # an uncaught exception on any rank aborts the whole job
        with dist.abort_on_failure(comm):  # so does a non-zero exit status
            status = _main(args, comm)
            if status:
                raise SystemExit(status)
        return status
    return _main(args, None)


def _main(args, comm):
    import normreg
    rank = 0 if comm is None else comm.Get_rank()
    say = print if rank == 0 else (lambda *a, **k: None)
    if comm is not None and args.threads is None and "OMP_NUM_THREADS" not in os.environ:
        from .distributed import local_size
        normreg.set_num_threads(max(1, (os.cpu_count() or 1) // local_size(comm)))
    from .data import load_fashion_mnist
    if args.threads is not None:
        normreg.set_num_threads(args.threads)
    given = dict(width=args.width, norm=args.norm, dropout=args.dropout, epochs=args.epochs,
                 batch_size=args.batch_size)  # None: the model's default recipe decides
    config = default_config(
        args.model, depth=args.depth, optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
        nesterov=args.nesterov, weight_decay=args.weight_decay, schedule=args.schedule,
        warmup_epochs=args.warmup_epochs, seed=args.seed, train_subset=args.train_subset,
        init_gain=args.init_gain, dtype=args.dtype,
        **{k: v for k, v in given.items() if v is not None})
    try:
        config = config.resolved()
        if comm is None:
            data = load_fashion_mnist(args.data_dir)
        else:  # rank 0 first (it may download), then the others read its files
            if rank == 0:
                data = load_fashion_mnist(args.data_dir)
            comm.Barrier()
            if rank != 0:
                data = load_fashion_mnist(args.data_dir)
    except (RuntimeError, ValueError) as exc:
        print(f"normreg-train: {exc}", file=sys.stderr)
        return 2
    out = args.out or os.path.join("runs", time.strftime("train-%Y%m%d-%H%M%S"))
    n_train = len(data[0]) if config.train_subset is None else min(config.train_subset, len(data[0]))
    momentum = f" momentum={config.momentum:g}" if config.optimizer == "sgd" else ""
    threads = normreg.get_num_threads()
    say(f"normreg-train: {config.model} width={config.width} depth={config.depth} norm={config.norm} "
        f"dropout={config.dropout} | {config.optimizer} lr={config.lr:g}{momentum} "
        f"weight_decay={config.weight_decay:g} {config.schedule} | {config.epochs} epochs, "
        f"batch {config.batch_size}, {n_train} training images, {threads} "
        f"thread{'s' if threads != 1 else ''} -> {out}", flush=True)
    if comm is not None:
        say(f"normreg-train: data-parallel over {comm.Get_size()} ranks: each batch of "
            f"{config.batch_size} split across them, {threads} thread(s) per rank", flush=True)
    try:
        result = train(config, data, out_dir=out, progress=args.progress,
                       log=lambda line: print(line, flush=True), comm=comm)
    except ValueError as exc:
        print(f"normreg-train: {exc}", file=sys.stderr)
        return 2
    history = result["history"]
    if result["diverged"] or not history:
        print("normreg-train: training diverged (loss NaN/Inf); try a smaller --lr", file=sys.stderr)
        return 1
    last = history[-1]
    total = sum(h["seconds"] for h in history)
    say(f"test accuracy {last['test_acc']:.4f} (test loss {last['test_loss']:.4f}) after "
        f"{last['epoch']} epochs, {total:.0f} s; wrote {out}/checkpoint.npz, metrics.json, curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
