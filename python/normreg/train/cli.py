"""The command line of ``normreg-train`` (``python -m normreg.train``): flags, data, log lines
and exit status around :func:`normreg.train.train`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import normreg

from .. import _cli
from .. import _validation as V
from .. import distributed as dist
from ..data import load_fashion_mnist
from ..distributed.comm import Comm
from . import checkpoint
from .loop import Data, train
from .recipe import CNN_RECIPE, TrainConfig, build_model, default_config


def _width(text: str) -> int | list[int]:
    parts = text.replace(" ", "").split(",")
    if "" in parts:
        raise argparse.ArgumentTypeError(
            f"widths must be a comma-separated list of ints, without empty items, got {text!r}"
        )
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"width must be an int or a comma-separated list of ints, got {text!r}"
        ) from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return values[0] if len(values) == 1 else values


_positive_int = _cli.number(int, 0, low_open=True)
_positive_float = _cli.number(float, 0.0, low_open=True)
_nonnegative_float = _cli.number(float, 0.0)


def parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = _cli.Parser(
        prog="normreg-train",
        description="Train an MLP (or the residual MLP, or a CNN) on Fashion-MNIST with normreg. "
        "The defaults reach >= 0.90 test accuracy in 15 epochs (the MLP), >= 0.92 (--model cnn, "
        "whose defaults differ where noted).",
        formatter_class=_cli.HelpFormatter,
    )
    m = p.add_argument_group("model")
    m.add_argument(
        "--model",
        choices=["mlp", "resnet", "cnn"],
        default=d.model,
        help="MLP, the residual MLP of the deep-learning-systems course, or a CNN (conv-norm-ReLU "
        "stages, max pooling, global average pooling)",
    )
    m.add_argument(
        "--width",
        type=_width,
        default=None,
        help="hidden widths: a comma-separated list (mlp), or one width repeated --depth times "
        "(mlp) / the residual stream width (resnet) / the channels of each stage (cnn) (default: "
        f"{','.join(map(str, d.width))}; cnn: {','.join(map(str, CNN_RECIPE['width']))})",
    )
    m.add_argument(
        "--depth",
        type=_cli.number(int, 0),
        default=None,
        help="hidden layers for an int --width (mlp, default 1), residual blocks (resnet, default 3) "
        "or conv blocks per stage (cnn, default 1)",
    )
    m.add_argument(
        "--norm",
        choices=["batch", "group", "layer", "instance", "none"],
        default=None,
        help="normalization after each hidden Linear: BatchNorm1d, LayerNorm or none; after each "
        "convolution (cnn): BatchNorm2d, GroupNorm (min(8, C) groups: widths above 8 a multiple of 8), "
        "layer (GroupNorm(1, C)), "
        "InstanceNorm2d or none (default: batch)",
    )
    m.add_argument(
        "--dropout",
        type=_cli.number(float, 0.0, 1.0, high_open=True),
        default=None,
        help=f"dropout probability (0: none) (default: {d.dropout}; cnn: none)",
    )
    m.add_argument(
        "--init-gain",
        type=_cli.number(float),
        default=d.init_gain,
        help="multiply the default initial Linear (and Conv2d) weights by this",
    )
    o = p.add_argument_group("optimization")
    o.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default=d.optimizer)
    o.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        help="learning rate (default: 0.1 for sgd, 1e-3 for adam/adamw)",
    )
    o.add_argument("--momentum", type=_nonnegative_float, default=d.momentum, help="SGD momentum")
    o.add_argument(
        "--no-nesterov",
        dest="nesterov",
        action="store_false",
        help="classical instead of Nesterov momentum (default: Nesterov)",
    )
    o.add_argument(
        "--weight-decay",
        type=_nonnegative_float,
        default=None,
        help="weight decay on the weights (default: 5e-4 sgd, 0 adam, 0.05 adamw); "
        "biases and normalization parameters are not decayed",
    )
    o.add_argument(
        "--schedule",
        choices=["cosine", "step", "constant"],
        default=d.schedule,
        help="learning rate per batch: cosine decay to 0, x0.1 after each third, or constant",
    )
    o.add_argument(
        "--warmup-epochs",
        type=_nonnegative_float,
        default=d.warmup_epochs,
        help="linear warm-up from 0.1*lr over this many epochs",
    )
    o.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help=f"(default: {d.epochs}; cnn: {CNN_RECIPE['epochs']})",
    )
    o.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help=f"(default: {d.batch_size}; cnn: {CNN_RECIPE['batch_size']})",
    )
    r = p.add_argument_group("data and run")
    r.add_argument("--seed", type=_cli.seed, default=d.seed, help="in [0, 2**64 - 1]")
    r.add_argument(
        "--data-dir",
        default=None,
        help="directory with the Fashion-MNIST files, the only place looked at (default: search "
        "$NORMREG_DATA, ~/.cache/normreg/fashion-mnist, /usr/share/datasets/fashion-mnist, else download)",
    )
    r.add_argument(
        "--train-subset",
        type=_positive_int,
        default=None,
        help="train on this many training images (a seeded random subset)",
    )
    r.add_argument(
        "--threads",
        type=_cli.threads,
        default=None,
        help="threads for normreg's kernels and OpenBLAS, 1 to 1024 (default: all cores; with "
        "--distributed: the cores divided among the ranks on the node)",
    )
    r.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over MPI: run as `mpiexec -n R normreg-train --distributed ...` "
        "(needs pip install 'normreg[mpi]'); --batch-size is the global batch, "
        "split across the ranks; rank 0 alone prints and writes",
    )
    r.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype)
    r.add_argument(
        "--out",
        default=None,
        help="output directory (default: runs/train-YYYYmmdd-HHMMSS; with --resume, the "
        "checkpoint's directory); it must not hold the checkpoint of another run",
    )
    r.add_argument(
        "--resume",
        metavar="PATH",
        default=None,
        help="continue the run whose checkpoint is PATH (a checkpoint.npz, or the run's directory): "
        "same configuration, same thread count unless --threads, bit for bit the same result",
    )
    r.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show the progress bar (default: only on a terminal)",
    )
    r.add_argument("--no-progress", dest="progress", action="store_false")
    return p


# the stages of --model cnn: 28x28 images, halved (rounding down) between stages, stay >= 1x1
_CNN_MAX_STAGES = (28).bit_length()

# flags that may differ from the checkpoint's run when resuming it (they do not change results)
_RESUME_FREE = {"data_dir", "out", "threads", "progress", "resume", "distributed"}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    unset = object()  # not a str, so argparse takes it as it is
    explicit = parser()
    explicit.set_defaults(**dict.fromkeys(vars(args), unset))
    given = {dest for dest, value in vars(explicit.parse_args(argv)).items() if value is not unset}
    if not args.distributed:
        return _main(args, given, None)
    comm = dist.init()  # an uncaught exception on any rank aborts the whole job
    with dist.abort_on_failure(comm):  # so does a non-zero exit status
        status = _main(args, given, comm)
        if status:
            raise SystemExit(status)
    return status


def _config(args: argparse.Namespace) -> TrainConfig:
    """The model's default recipe (:func:`default_config`) with the flags that have a value:
    the flags whose default depends on the model (--width, --norm, ...) are None unless given."""
    fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "model"]
    return default_config(args.model, **{n: getattr(args, n) for n in fields if getattr(args, n) is not None})


def _resume(args: argparse.Namespace, given: set[str], config: TrainConfig) -> tuple[str, Any, TrainConfig]:
    """``(checkpoint file, its content, its configuration)`` of ``--resume``; the flags
    given that would change the run must agree with it."""
    try:
        file = checkpoint.resume_path(args.resume)
        state = normreg.load(file)
        saved = checkpoint.check(state)
    except (OSError, ValueError) as exc:  # CheckpointError is a ValueError
        raise _cli.UsageError(f"--resume {args.resume}: {exc}") from None
    resolved = config.resolved()
    conflicts = [
        f"--{name.replace('_', '-')} {getattr(resolved, name)!r} (the run has {getattr(saved, name)!r})"
        for name in sorted(given - _RESUME_FREE)
        if hasattr(saved, name) and getattr(resolved, name) != getattr(saved, name)
    ]
    if conflicts:
        raise _cli.UsageError(
            f"--resume continues a run with its own configuration; these flags differ: {'; '.join(conflicts)}"
        )
    return file, state, saved


def _check_config(config: TrainConfig) -> TrainConfig:
    widths = [config.width] if isinstance(config.width, int) else list(config.width)
    if config.model == "cnn" and len(widths) > _CNN_MAX_STAGES:
        raise _cli.UsageError(
            f"--width {','.join(map(str, widths))}: {len(widths)} stages for --model cnn, whose "
            f"{len(widths) - 1} 2x2 max-poolings would reduce the 28x28 images to nothing: give at most "
            f"{_CNN_MAX_STAGES} widths"
        )
    if config.model != "cnn" and config.norm not in ("batch", "layer", "none"):
        raise _cli.UsageError(
            f"--norm {config.norm} is for --model cnn; the {config.model} model takes --norm batch, "
            "layer or none"
        )
    if config.model == "cnn" and config.norm == "group":
        odd = [w for w in widths if w > 8 and w % 8]
        if odd:
            raise _cli.UsageError(
                f"--width {','.join(map(str, widths))}: --norm group uses GroupNorm(min(8, C), C), so a "
                f"width above 8 must be a multiple of 8, not {odd[0]}"
            )
    try:
        config = config.resolved()
        build_model(config, 784, 10)  # what the model's constructors refuse, before the data
    except (TypeError, ValueError) as exc:
        raise _cli.UsageError(str(exc)) from None
    if config.norm == "batch" and config.model in ("mlp", "resnet"):
        # BatchNorm1d needs >= 2 examples per batch; a short last batch is dropped
        if config.batch_size < 2:
            raise _cli.UsageError(
                "--norm batch needs batches of at least 2 examples (BatchNorm normalizes with the batch's "
                "statistics): use --batch-size 2 or more, or --norm layer or none"
            )
        if config.train_subset is not None and config.train_subset < 2:
            raise _cli.UsageError(
                f"--train-subset {config.train_subset} is too small for --norm batch, which needs batches "
                "of at least 2 examples (BatchNorm normalizes with the batch's statistics): use "
                "--train-subset 2 or more, or --norm layer or none"
            )
    return config


def _check_out(out: str, resumed: str | None, create: bool) -> str | None:
    """Check (and with ``create``, make) the output directory; returns the topmost directory
    made (see :func:`normreg._cli.check_out`)."""
    existing = os.path.join(out, checkpoint.CHECKPOINT)
    if (
        os.path.isdir(out)
        and os.path.exists(existing)
        and not (resumed is not None and os.path.samefile(existing, resumed))
    ):
        raise _cli.UsageError(
            f"--out {out} holds the checkpoint of another run: continue it with --resume {out}, "
            "or choose another --out"
        )
    return _cli.check_out(out, create)


class _Interrupts:
    """Ctrl-C during training, answered as Python's default handler answers it (a
    KeyboardInterrupt) and remembered. Python drops an exception raised while a finalizer
    runs (a progress bar's ``__del__``, collected when the signal lands), printing it as
    "Exception ignored" with a traceback: there the handler only remembers it, and
    ``check()`` (after each epoch) raises it. Installed only over Python's own handler, in
    the main thread."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.seen = True
        while frame is not None:
            if frame.f_code.co_name == "__del__":
                return
            frame = frame.f_back
        raise KeyboardInterrupt

    def __enter__(self) -> _Interrupts:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt


def _interrupted(out: str | None) -> int:
    """Ctrl-C: one line saying what is saved; exit status 130 (128 + SIGINT)."""
    path = os.path.join(out, checkpoint.CHECKPOINT) if out else None
    try:
        epoch = int(normreg.load(path)["epoch"]) if path and os.path.exists(path) else None
    except (OSError, ValueError, KeyError, TypeError):
        epoch = None
    if epoch is None:
        print(
            "normreg-train: interrupted before the first epoch finished: no checkpoint was written",
            file=sys.stderr,
        )
    else:
        print(
            f"normreg-train: interrupted; the last checkpoint is {path} (epoch {epoch}): "
            f"continue with normreg-train --resume {out}",
            file=sys.stderr,
        )
    return 130


def _plan(args: argparse.Namespace, given: set[str], rank0: bool) -> tuple[TrainConfig, str, Any, str | None]:
    """Every check of the command line, before any data is loaded: ``(config, out,
    checkpoint to resume or None, the topmost directory made for the output or None)``."""
    config = _config(args)
    resume_file, resume_state = None, None
    if args.resume is not None:
        resume_file, resume_state, config = _resume(args, given, config)
    if resume_state is None:
        config = _check_config(config)
    else:
        try:  # its configuration must build a model, whose weights the checkpoint holds
            config = _check_config(config)
            checkpoint.check_model(resume_state, build_model(config, 784, 10))
        except (_cli.UsageError, ValueError) as exc:
            raise _cli.UsageError(f"--resume {args.resume}: {exc}") from None
    if args.data_dir is not None:
        _cli.check_data_dir(args.data_dir)
    if args.out is not None:
        out = args.out
    elif resume_file is not None:
        out = os.path.dirname(resume_file) or "."
    else:
        out = os.path.join("runs", time.strftime("train-%Y%m%d-%H%M%S"))
    made = _check_out(out, resume_file, create=rank0)
    return config, out, resume_state, made


def _main(args: argparse.Namespace, given: set[str], comm: Comm | None) -> int:
    """The command with parsed arguments; ``comm`` for a data-parallel run, else None."""
    world = comm if comm is not None else dist.LocalComm()
    rank0 = world.Get_rank() == 0
    try:
        config, out, resume_state, made = _plan(args, given, rank0)
    except _cli.UsageError as exc:
        print(f"normreg-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted(None)
    try:
        return _train(args, config, out, resume_state, comm, world)
    except KeyboardInterrupt:
        return _interrupted(out) if rank0 else 130
    except _DataError as exc:
        if rank0:
            _cli.remove_made(out, made)  # made for this run, which never started
        print(f"normreg-train: error: {exc}", file=sys.stderr)
        return 2


class _DataError(Exception):
    """The data could not be loaded, or does not suit the configuration."""


def _train(
    args: argparse.Namespace, config: TrainConfig, out: str, resume_state: Any, comm: Comm | None, world: Comm
) -> int:
    say = print if world.Get_rank() == 0 else (lambda *a, **k: None)
    if args.threads is not None:
        normreg.set_num_threads(args.threads)
    elif resume_state is not None:  # the checkpoint's thread count: the same rounding, the same run
        # (one above set_num_threads' limit, e.g. recorded under OMP_NUM_THREADS=1100, becomes the limit)
        normreg.set_num_threads(min(int(resume_state["threads"]), V.MAX_THREADS))
    elif args.distributed and "OMP_NUM_THREADS" not in os.environ:
        normreg.set_num_threads(max(1, (os.cpu_count() or 1) // dist.local_size(world)))
    try:
        data = _load_data(args, world)
    except (RuntimeError, ValueError, OSError) as exc:
        raise _DataError(exc) from None
    n_train = len(data[0]) if config.train_subset is None else min(config.train_subset, len(data[0]))
    momentum = f" momentum={config.momentum:g}" if config.optimizer == "sgd" else ""
    threads = normreg.get_num_threads()
    say(
        f"normreg-train: {config.model} width={config.width} depth={config.depth} "
        f"norm={config.norm} "
        f"dropout={config.dropout} | {config.optimizer} lr={config.lr:g}{momentum} "
        f"weight_decay={config.weight_decay:g} {config.schedule} | {config.epochs} epochs, "
        f"batch {config.batch_size}, {n_train} training images, {threads} "
        f"thread{'s' if threads != 1 else ''} -> {out}",
        flush=True,
    )
    if resume_state is not None:
        say(
            f"normreg-train: resuming after epoch {int(resume_state['epoch'])} of {config.epochs}", flush=True
        )
    if args.distributed:
        say(
            f"normreg-train: data-parallel over {world.Get_size()} ranks: each batch of "
            f"{config.batch_size} split across them, {threads} thread(s) per rank",
            flush=True,
        )

    def log(line: str) -> None:  # after each epoch's checkpoint: a Ctrl-C lost before stops here
        print(line, flush=True)
        interrupts.check()

    try:
        with _Interrupts() as interrupts:
            result = train(
                config, data, out_dir=out, progress=args.progress, log=log, comm=comm, resume=resume_state
            )
            interrupts.check()
    except ValueError as exc:
        raise _DataError(exc) from None
    except OSError as exc:  # a full disk, a quota: the last checkpoint written stays whole
        print(
            f"normreg-train: error: cannot write {exc.filename or out} ({exc.strerror or exc})",
            file=sys.stderr,
        )
        return 1
    history = result["history"]
    if result["diverged"] or not history:
        print(
            "normreg-train: training diverged (loss NaN/Inf); try a smaller --lr (or --weight-decay)",
            file=sys.stderr,
        )
        return 1
    last = history[-1]
    total = sum(h["seconds"] for h in history)
    say(
        f"test accuracy {last['test_acc']:.4f} (test loss {last['test_loss']:.4f}) after "
        f"{last['epoch']} epochs, {total:.0f} s; wrote {out}/checkpoint.npz, metrics.json, "
        "curves.png"
    )
    return 0


def _load_data(args: argparse.Namespace, comm: Comm) -> Data:
    """Fashion-MNIST: rank 0 first (it may download), then the others read its files."""
    data = load_fashion_mnist(args.data_dir) if comm.Get_rank() == 0 else None
    comm.Barrier()
    return data if data is not None else load_fashion_mnist(args.data_dir)
