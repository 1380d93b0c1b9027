"""The training checkpoint: everything a run needs to continue exactly where it stopped.

``checkpoint.npz`` (written with :func:`normreg.save` after every epoch, atomically) holds
the epoch, the resolved configuration, the model's parameters and buffers, the optimizer's
and the scheduler's state, every random state the run draws from (normreg's default
generator, each module's own generator, the data loader's shuffling generator), the thread
count, the per-epoch history and the per-step losses. Restoring all of it into a freshly
built run and training on gives bit for bit what the uninterrupted run gives, for the same
thread count (``tests/test_train.py`` and ``scripts/kill-test.py`` check it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

import normreg

from .. import _validation as V
from ..nn import Module
from ..optim import Optimizer, lr_scheduler
from ..random import Generator, default_generator
from .recipe import TrainConfig

#: The file name of the checkpoint in a run's output directory.
CHECKPOINT = "checkpoint.npz"

_KEYS = ("epoch", "config", "model", "optimizer", "rng", "threads", "world_size", "history", "steps")


def module_generators(model: Module) -> dict[str, Generator]:
    """The generators the modules of ``model`` hold (other than the default one), by
    ``<module path>.<attribute>``."""
    found = {}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, Generator) and value is not default_generator:
                found[f"{name}.{attr}" if name else attr] = value
    return found


def make(
    epoch: int,
    config: TrainConfig,
    model: Module,
    opt: Optimizer,
    sched: lr_scheduler.LRScheduler | None,
    loader_generator: Generator | None,
    history: Iterable[Mapping[str, Any]],
    steps: Mapping[str, Any],
    world_size: int,
) -> dict[str, Any]:
    """The checkpoint of a run after ``epoch`` epochs, as a tree :func:`normreg.save` writes."""
    state: dict[str, Any] = {
        "epoch": np.int64(epoch),
        "config": dataclasses.asdict(config),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": {
            "default": default_generator.get_state(),
            "modules": {k: g.get_state() for k, g in module_generators(model).items()},
        },
        "threads": normreg.get_num_threads(),
        "world_size": world_size,
        "history": [dict(h) for h in history],
        "steps": dict(steps),
    }
    if loader_generator is not None:
        state["rng"]["loader"] = loader_generator.get_state()
    if sched is not None:
        state["scheduler"] = sched.state_dict()
    return state


def remove_stale_temporaries(out_dir: str) -> list[str]:
    """Delete the temporary files a process killed while writing ``out_dir``'s checkpoint or
    metrics left there (``normreg.save``'s ``.checkpoint.npz.*.tmp``, ``metrics.json.tmp*``);
    returns their names."""
    stale = [
        name
        for name in os.listdir(out_dir)
        if (name.startswith(f".{CHECKPOINT}.") and name.endswith(".tmp"))
        or name.startswith("metrics.json.tmp")
    ]
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out_dir, name))
    return stale


def resume_path(path: str) -> str:
    """The checkpoint file of ``path``: the file itself, or a run directory's checkpoint.
    FileNotFoundError saying which is missing."""
    if os.path.isdir(path):
        file = os.path.join(path, CHECKPOINT)
        if not os.path.isfile(file):
            raise FileNotFoundError(f"{path} holds no {CHECKPOINT} (no epoch of a run finished there)")
        return file
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    return path


#: The values a checkpoint's configuration may hold for the fields with a fixed set of them.
_CHOICES = {
    "model": ("mlp", "resnet", "cnn"),
    "norm": ("batch", "group", "layer", "instance", "none"),
    "optimizer": ("sgd", "adam", "adamw"),
    "schedule": ("cosine", "step", "constant"),
    "dtype": ("float32", "float64"),
}


def _is_int(value: Any, low: int, high: float = math.inf) -> bool:
    return V.is_integer(value) and bool(low <= value <= high)


def _is_real(value: Any, low: float = -math.inf, high: float = math.inf, high_open: bool = False) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and bool(low <= value <= high)
        and not (high_open and value == high)
    )


def _show(value: Any) -> str:
    """A value of a checkpoint as a message shows it: numbers as Python prints them."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _is_width(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(_is_int(v, 1) for v in value)
    return _is_int(value, 1)


#: What each field of a checkpoint's configuration must be, and how a message says it.
_RULES: dict[str, tuple[Any, str]] = {
    **{
        name: (lambda v, c=choices: v in c, f"one of {', '.join(choices)}")
        for name, choices in _CHOICES.items()
    },
    "width": (_is_width, "an int >= 1 or a non-empty list of them"),
    "depth": (lambda v: v is None or _is_int(v, 0), "None or an int >= 0"),
    "dropout": (lambda v: _is_real(v, 0.0, 1.0, high_open=True), "a number in [0, 1)"),
    "lr": (lambda v: v is None or _is_real(v) and v > 0, "None or a finite number > 0"),
    "momentum": (lambda v: _is_real(v, 0.0), "a finite number >= 0"),
    "nesterov": (lambda v: isinstance(v, (bool, np.bool_)), "a bool"),
    "weight_decay": (lambda v: v is None or _is_real(v, 0.0), "None or a finite number >= 0"),
    "warmup_epochs": (lambda v: _is_real(v, 0.0), "a finite number >= 0"),
    "epochs": (lambda v: _is_int(v, 1), "an int >= 1"),
    "batch_size": (lambda v: _is_int(v, 1), "an int >= 1"),
    "seed": (lambda v: _is_int(v, 0, 2**64 - 1), "an int in [0, 2**64 - 1]"),
    "train_subset": (lambda v: v is None or _is_int(v, 1), "None or an int >= 1"),
    "init_gain": (_is_real, "a finite number"),
}


def check(state: Any) -> TrainConfig:
    """The configuration of a loaded checkpoint, after checking it is one :func:`make`
    wrote: every key there, each field of the configuration of its type and in its range,
    the epoch in [1, epochs] with one history record per epoch, the thread count and the
    world size positive ints (ValueError naming what is wrong)."""
    if not isinstance(state, dict):
        raise ValueError(f"not a training checkpoint (it holds a {type(state).__name__})")
    missing = [k for k in _KEYS if k not in state]
    if missing:
        raise ValueError(f"not a normreg-train checkpoint: no {', '.join(repr(k) for k in missing)}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = state["config"]
    if not isinstance(config, dict) or set(config) != fields:
        raise ValueError("the checkpoint's configuration is not one this normreg-train knows")
    for name, (valid, what) in _RULES.items():
        if not valid(config[name]):
            raise ValueError(f"the checkpoint's configuration has {name}={_show(config[name])}, not {what}")
    epoch, epochs = state["epoch"], config["epochs"]
    if not _is_int(epoch, 1, epochs):
        raise ValueError(f"the checkpoint is of epoch {_show(epoch)}, not one of the run's 1 to {epochs}")
    history = state["history"]
    if not isinstance(history, list) or len(history) != epoch:
        n = len(history) if isinstance(history, list) else type(history).__name__
        raise ValueError(f"the checkpoint of epoch {epoch} has a history of {n} epochs")
    for key in ("threads", "world_size"):
        if not _is_int(state[key], 1):
            raise ValueError(f"the checkpoint's {key} is {_show(state[key])}, not an int >= 1")
    return TrainConfig(**config)


def check_model(state: Mapping[str, Any], model: Module) -> None:
    """ValueError unless the checkpoint's model parameters and buffers have the names and
    shapes of ``model`` (the model its configuration builds)."""
    saved = state["model"]
    if not isinstance(saved, dict):
        raise ValueError(f"the checkpoint's model is a {type(saved).__name__}, not a state dict")
    expected = {k: tuple(np.shape(v)) for k, v in model.state_dict().items()}
    found = {k: tuple(np.shape(v)) for k, v in saved.items()}
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    shapes = [
        f"{k} {found[k]} (expected {expected[k]})" for k in expected if k in found and found[k] != expected[k]
    ]
    problems = [
        f"{what} {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
        for what, names in (("missing", missing), ("unexpected", extra), ("shapes", shapes))
        if names
    ]
    if problems:
        raise ValueError(
            "the checkpoint's model weights do not fit the model its configuration builds: "
            + "; ".join(problems)
        )


def _set_offset(generator: Generator, state: Any) -> None:
    """Continue ``generator``'s own seed at the counter of ``state``."""
    own = generator.get_state()
    generator.set_state(np.array([own[0], np.asarray(state)[1]], dtype=np.int64))


def restore(
    state: Mapping[str, Any],
    config: TrainConfig,
    model: Module,
    opt: Optimizer,
    sched: lr_scheduler.LRScheduler | None,
    loader_generator: Generator | None,
    rank: int,
    world_size: int,
) -> int:
    """Load ``state`` (from :func:`make`, checked by :func:`check`) into a run freshly built
    from ``config``; returns the epoch it had finished. Everything is checked before the
    random states change: a configuration or world size other than the checkpoint's is a
    ValueError naming the difference."""
    saved = check(state)
    differ = [
        f"{k}={getattr(saved, k)!r} (here {getattr(config, k)!r})"
        for k in (f.name for f in dataclasses.fields(TrainConfig))
        if getattr(saved, k) != getattr(config, k)
    ]
    if differ:
        raise ValueError(f"the checkpoint was written by another configuration: {', '.join(differ)}")
    if int(state["world_size"]) != world_size:
        raise ValueError(
            f"the checkpoint was written by a run over {int(state['world_size'])} processes, "
            f"this one has {world_size}"
        )
    rng = state["rng"]
    generators = module_generators(model)
    if set(rng["modules"]) != set(generators):
        raise ValueError(
            f"the checkpoint has generators for modules {sorted(rng['modules'])}, "
            f"the model for {sorted(generators)}"
        )
    if (loader_generator is None) != ("loader" not in rng):
        raise ValueError("the checkpoint's data loader and this run's differ in shuffling")
    if (sched is None) != ("scheduler" not in state):
        raise ValueError("the checkpoint's learning-rate schedule and this run's differ")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if sched is not None:
        sched.load_state_dict(state["scheduler"])
    if rank == 0:
        default_generator.set_state(rng["default"])
    else:  # the other ranks draw from their own seed, as many times as rank 0
        _set_offset(default_generator, rng["default"])
    for name, generator in generators.items():
        generator.set_state(rng["modules"][name])
    if loader_generator is not None:
        loader_generator.set_state(rng["loader"])
    return int(state["epoch"])
