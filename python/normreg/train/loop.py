"""The training loop: :func:`train` and what it is made of (one job per function), with a
communicator for data-parallel runs (:class:`~normreg.distributed.LocalComm` without one)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Optional

import numpy as np

import normreg

from .. import _validation as V
from .. import distributed as dist
from .. import optim
from .._reports import plot_curves, write_json
from ..data import DataLoader
from ..distributed.comm import Comm
from ..nn import Module, SoftmaxLoss
from ..optim import lr_scheduler
from . import checkpoint
from .recipe import TrainConfig, build_model, build_optimizer

Log = Optional[Callable[[str], Any]]
Data = Sequence[np.ndarray]


def evaluate(model: Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` (in evaluation mode) on ``(x, y)``."""
    was_training = model.training
    model.eval()
    loss_fn = SoftmaxLoss()
    total_loss, correct = 0.0, 0
    with normreg.no_grad():  # nothing kept for a backward
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = model(xb)
            total_loss += loss_fn(logits, yb) * len(yb)
            correct += int((logits.argmax(axis=1) == yb).sum())
    model.train(was_training)
    n = max(len(x), 1)
    return total_loss / n, correct / n


def _tqdm() -> Any:
    try:  # optional dependency: imported on first use
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("training needs tqdm and matplotlib: pip install 'normreg[train]'") from None
    return tqdm


class _StepLosses:
    """The mean training loss over every ``every`` batches, as ``[step, loss]`` pairs."""

    def __init__(self, every: int) -> None:
        self.every, self.step = every, 0
        self.window: list[float] = []
        self.pairs: list[list[float]] = []

    def add(self, loss: float) -> None:
        self.step += 1
        self.window.append(loss)
        if len(self.window) == self.every:
            self.pairs.append([self.step, float(np.mean(self.window))])
            self.window = []

    def state(self) -> dict[str, Any]:
        return {"every": self.every, "step": self.step, "window": list(self.window), "pairs": self.pairs}

    def load(self, state: dict[str, Any]) -> None:
        if int(state["every"]) != self.every:
            raise ValueError(
                f"the checkpoint records a loss every {state['every']} steps, this run every {self.every}"
            )
        self.step, self.window, self.pairs = int(state["step"]), list(state["window"]), list(state["pairs"])


#: the most classes a label may name (a class count of PyTorch's int)
_MAX_CLASSES = 2**31 - 1


def _checked_data(data: Data, rows_only: bool) -> tuple[np.ndarray, ...]:
    """``data`` as four arrays: non-empty training and test sets of real numbers, each with
    one integer label in [0, 2**31 - 2] per sample, their samples of one shape, rows of
    features (2-D) when ``rows_only`` (the models ``build_model`` makes take rows);
    ValueError/TypeError naming the part."""
    where = "train"
    if not isinstance(data, (tuple, list)) or len(data) != 4:
        raise TypeError(f"{where}: data must be a tuple (x_train, y_train, x_test, y_test)")
    names = ("x_train", "y_train", "x_test", "y_test")
    x_train, y_train, x_test, y_test = (V.array(a, name, where) for a, name in zip(data, names))
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.ndim < 2 or (rows_only and x.ndim != 2):
            rows = " (2-D)" if rows_only else ""
            raise ValueError(f"{where}: x_{part} must have a sample per row{rows}, got shape {x.shape}")
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{where}: x_{part} must hold real numbers, got dtype {x.dtype}")
        if len(x) == 0:
            raise ValueError(f"{where}: the {part} set is empty")
        if y.dtype.kind not in "iu":
            raise TypeError(f"{where}: y_{part} must hold integer labels, got dtype {y.dtype}")
        if y.shape != (len(x),):
            raise ValueError(
                f"{where}: y_{part} must have shape ({len(x)},), one label per sample, got {y.shape}"
            )
        if y.min() < 0:
            raise ValueError(f"{where}: y_{part} holds a negative label ({y.min()})")
        if int(y.max()) >= _MAX_CLASSES:
            raise ValueError(f"{where}: y_{part} holds label {int(y.max())}, beyond {_MAX_CLASSES - 1}")
    if x_test.shape[1:] != x_train.shape[1:]:
        raise ValueError(
            f"{where}: the samples of x_test have shape {x_test.shape[1:]}, "
            f"those of x_train {x_train.shape[1:]}"
        )
    return x_train, y_train, x_test, y_test


def _prepare_data(config: TrainConfig, data: Data, rows_only: bool = True) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` in the configuration's dtype, with its
    seeded training subset."""
    x_train, y_train, x_test, y_test = _checked_data(data, rows_only)
    dtype = np.dtype(config.dtype)
    x_train = np.asarray(x_train, dtype=dtype)
    x_test = np.asarray(x_test, dtype=dtype)
    if config.train_subset is not None and config.train_subset < len(x_train):
        pick = np.random.default_rng(config.seed).permutation(len(x_train))[: config.train_subset]
        x_train, y_train = x_train[np.sort(pick)], y_train[np.sort(pick)]
    return x_train, y_train, x_test, y_test


def check_batch_norm_batches(config: TrainConfig, n_train: int) -> None:
    """ValueError when ``config`` uses BatchNorm1d with training batches of fewer than 2
    examples (the batch's variance is then undefined)."""
    if config.norm != "batch" or config.model not in ("mlp", "resnet"):  # BatchNorm1d over (N, C)
        return
    smallest = config.batch_size if n_train > config.batch_size else n_train  # a short last batch is dropped
    if smallest < 2:
        why = (
            f"batch_size={config.batch_size}"
            if n_train > config.batch_size
            else f"{n_train} training example(s)"
        )
        raise ValueError(
            f"norm='batch' needs at least 2 examples per training batch (BatchNorm normalizes with the "
            f"batch's statistics), but {why} gives batches of {smallest}: use more, or norm 'layer' or 'none'"
        )


def _parallelize(
    config: TrainConfig, model: Module, x: np.ndarray, y: np.ndarray, comm: Comm, data_parallel: bool
) -> tuple[Module, Module, Iterable[Any]]:
    """``(model, net, loader)``: ``net`` is what forward and backward go through (the model,
    or its data-parallel wrapper) and ``loader`` yields this rank's batches."""
    drop_last = len(x) > config.batch_size  # no tiny last batch for BatchNorm
    if not data_parallel:
        loader: Iterable[Any] = DataLoader(
            x, y, config.batch_size, shuffle=True, drop_last=drop_last, seed=config.seed
        )
        return model, model, loader
    model = dist.convert_sync_batchnorm(model, comm)
    net = dist.DistributedDataParallel(model, comm)  # rank 0's initial weights everywhere
    rank = comm.Get_rank()
    if rank > 0:  # dropout masks differ between ranks (rank 0 keeps the single-process stream)
        normreg.manual_seed(config.seed + 7919 * rank)
    # this rank's share of each global batch: the batches of the DataLoader above
    loader = dist.DistributedDataLoader(
        x,
        y,
        config.batch_size,
        shuffle=True,
        drop_last=drop_last,
        comm=comm,
        generator=normreg.Generator(config.seed),
    )
    return model, net, loader


def _global_batch(comm: Comm, loss: float, correct: int, size: int) -> tuple[float, int, int]:
    """The loss, correct count and size of the global batch whose shares the ranks hold,
    so that every rank takes the same decisions (one all-reduce; one rank holds it all)."""
    if comm.Get_size() == 1:
        return loss, correct, size
    totals = dist.allreduce_sum_(
        comm, np.array([loss * size if size else 0.0, correct, size], dtype=np.float64)
    )
    return totals[0] / totals[2], int(totals[1]), int(totals[2])


def _evaluate_shared(model: Module, x: np.ndarray, y: np.ndarray, comm: Comm) -> tuple[float, float]:
    """:func:`evaluate` on the whole test set, each rank evaluating a share of it."""
    start, stop = dist.shard_bounds(len(x), comm.Get_size(), comm.Get_rank())
    share = evaluate(model, x[start:stop], y[start:stop])
    loss, acc = dist.all_reduce_mean(share, stop - start, comm)
    return float(loss), float(acc)


def _train_epoch(
    net: Module,
    loader: Iterable[Any],
    opt: optim.Optimizer,
    sched: lr_scheduler.LRScheduler | None,
    comm: Comm,
    steps: _StepLosses,
) -> tuple[float, int, int, bool]:
    """One pass over ``loader`` (an iterable of batches, e.g. a progress bar): returns the
    summed loss, the correct count, the number of examples and whether the loss became
    NaN/Inf (training stops at that batch)."""
    loss_fn = SoftmaxLoss()
    loss_sum, correct, seen = 0.0, 0, 0
    for xb, yb in loader:
        opt.zero_grad()
        logits = net(xb)
        loss, n_correct, n_batch = _global_batch(
            comm, loss_fn(logits, yb), int((logits.argmax(axis=1) == yb).sum()), len(yb)
        )
        if not math.isfinite(loss):
            return loss_sum, correct, seen, True
        net.backward(loss_fn.backward())
        opt.step()
        if sched is not None:
            sched.step()
        loss_sum += loss * n_batch
        correct += n_correct
        seen += n_batch
        steps.add(loss)
        if steps.step % 20 == 0 and hasattr(loader, "set_postfix"):
            loader.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
    return loss_sum, correct, seen, False


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {record['epoch']:3d}/{epochs}  train loss {record['train_loss']:.4f} "
        f"acc {record['train_acc']:.4f}  test loss {record['test_loss']:.4f} acc "
        f"{record['test_acc']:.4f}  lr {record['lr']:.3g}  {record['seconds']:.1f} s"
    )


def train(
    config: TrainConfig,
    data: Data,
    out_dir: str | None = None,
    progress: bool | None = None,
    log: Log = print,
    model: Module | None = None,
    record_every: int | None = None,
    comm: Comm | None = None,
    resume: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``config`` on ``data = (x_train, y_train, x_test, y_test)``.

    Returns a dict: ``config`` (resolved, as a dict), ``history`` (one dict per epoch:
    epoch, lr, train_loss, train_acc, test_loss, test_acc, seconds, train_seconds),
    ``steps`` (mean training loss over every ``record_every`` batches, as ``[step, loss]``
    pairs; default about 20 per epoch),
    ``diverged`` (the training loss, or an epoch's test loss, became NaN/Inf: training stopped
    there, without a checkpoint of that epoch), ``model``.
    ``train_loss``/``train_acc`` are running means over the epoch's batches (training mode).
    With ``out_dir``, writes checkpoint.npz and metrics.json after every epoch and curves.png
    at the end. ``progress``: a tqdm bar per epoch (None: only on a terminal). ``log``: where
    the per-epoch lines go (None: nowhere). ``model``: train this module instead of building one.
    ``comm``: an MPI communicator (``normreg.distributed.init()``) to train data-parallel over
    its ranks: every rank calls ``train`` with the same data and configuration; each processes
    its share of every global batch of ``config.batch_size``, the metrics are those of the
    global batch, and only rank 0 logs and writes ``out_dir``. Without it, the run is that
    of one process (a :class:`~normreg.distributed.LocalComm`), with the model as it is.
    ``resume``: a checkpoint written by a run of the same configuration (``normreg.load``
    of its ``checkpoint.npz``, see :mod:`normreg.train.checkpoint`): training continues after
    its epoch with its parameters, optimizer, schedule, random states and history, and
    reaches bit for bit what the uninterrupted run reaches (for the same thread count). A
    finished run resumed with an ``out_dir`` that holds no checkpoint gets its checkpoint
    written there.
    """
    data_parallel = comm is not None
    comm = comm if comm is not None else dist.LocalComm()
    config = config.resolved()
    x_train, y_train, x_test, y_test = _prepare_data(config, data, rows_only=model is None)
    check_batch_norm_batches(config, len(x_train))
    if model is None:
        num_classes = int(max(y_train.max(), y_test.max()) + 1)
        model = build_model(config, x_train.shape[1], num_classes)
    model, net, loader = _parallelize(config, model, x_train, y_train, comm, data_parallel)
    if comm.Get_rank() != 0:
        out_dir, log, progress = None, None, False
    opt, sched = build_optimizer(config, model, len(loader))  # type: ignore[arg-type]
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        checkpoint.remove_stale_temporaries(out_dir)  # of a run killed while writing here
    meta = {
        "config": dataclasses.asdict(config),
        "train_size": len(x_train),
        "test_size": len(x_test),
        "threads": normreg.get_num_threads(),
        "normreg_version": normreg.__version__,
        "world_size": comm.Get_size(),
    }
    tqdm = _tqdm()
    history: list[dict[str, Any]] = []
    steps = _StepLosses(max(1, len(loader) // 20) if record_every is None else record_every)  # type: ignore[arg-type]
    loader_generator = getattr(loader, "generator", None)
    done = 0
    if resume is not None:
        done = checkpoint.restore(
            resume, config, model, opt, sched, loader_generator, comm.Get_rank(), comm.Get_size()
        )
        history = [dict(h) for h in resume["history"]]
        steps.load(resume["steps"])
        path = os.path.join(out_dir, checkpoint.CHECKPOINT) if out_dir is not None else None
        if path is not None and done >= config.epochs and not os.path.exists(path):
            with _writing(path):  # a finished run resumed into another directory: its checkpoint there
                normreg.save(dict(resume), path)
    diverged = False
    for epoch in range(done + 1, config.epochs + 1):
        lr = float(opt.param_groups[0]["lr"])
        t0 = time.perf_counter()
        model.train()
        bar = tqdm(
            loader,
            desc=f"epoch {epoch}/{config.epochs}",
            leave=False,
            unit="batch",
            disable=(None if progress is None else not progress),
            dynamic_ncols=True,
        )
        loss_sum, correct, seen, diverged = _train_epoch(net, bar, opt, sched, comm, steps)
        bar.close()
        train_seconds = time.perf_counter() - t0
        if diverged:
            if log:
                log(
                    f"epoch {epoch:3d}/{config.epochs}  the training loss became NaN/Inf "
                    f"(lr {lr:.3g}): stopped"
                )
            nan = float("nan")
            history.append(
                {
                    "epoch": epoch,
                    "lr": lr,
                    "train_loss": nan,
                    "train_acc": nan,
                    "test_loss": nan,
                    "test_acc": nan,
                    "seconds": train_seconds,
                    "train_seconds": train_seconds,
                }
            )
            break
        test_loss, test_acc = _evaluate_shared(model, x_test, y_test, comm)
        record = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "test_loss": test_loss,
            "test_acc": test_acc,
            "seconds": time.perf_counter() - t0,
            "train_seconds": train_seconds,
        }
        history.append(record)
        if not math.isfinite(test_loss):  # diverged as well: the weights are no longer finite
            diverged = True
            if log:
                log(_epoch_line(record, config.epochs) + "  the test loss is NaN/Inf: stopped")
            break
        if out_dir is not None:  # the checkpoint first: a line printed is an epoch saved
            state = checkpoint.make(
                epoch, config, model, opt, sched, loader_generator, history, steps.state(), comm.Get_size()
            )
            path = os.path.join(out_dir, checkpoint.CHECKPOINT)
            with _writing(path):
                normreg.save(state, path)
            path = os.path.join(out_dir, "metrics.json")
            with _writing(path):
                write_json({**meta, "epochs": history, "diverged": diverged}, path)
        if log:
            log(_epoch_line(record, config.epochs))
    if out_dir is not None:
        _write_outputs(out_dir, config, meta, history, diverged, steps.pairs)
    return {
        "config": dataclasses.asdict(config),
        "history": history,
        "steps": steps.pairs,
        "diverged": diverged,
        "model": model,
    }


def _write_outputs(
    out_dir: str,
    config: TrainConfig,
    meta: dict[str, Any],
    history: list[dict[str, Any]],
    diverged: bool,
    steps: list[list[float]],
) -> None:
    """The final metrics.json (with the per-step losses) and curves.png."""
    path = os.path.join(out_dir, "metrics.json")
    with _writing(path):
        write_json({**meta, "epochs": history, "diverged": diverged, "steps": steps}, path)
    if history:
        path = os.path.join(out_dir, "curves.png")
        with _writing(path):
            plot_curves(
                history,
                path,
                title=f"{config.model} {config.width} norm={config.norm} "
                f"dropout={config.dropout} {config.optimizer} lr={config.lr:g} "
                f"wd={config.weight_decay:g}",
            )


@contextlib.contextmanager
def _writing(path: str) -> Iterator[None]:
    """An OSError while writing ``path`` (a full disk, a quota) names ``path`` as its
    ``filename`` (not the temporary file written first)."""
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), path) from exc
