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
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

import normreg

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


def check(state: Any) -> TrainConfig:
    """The configuration of a loaded checkpoint, after checking it is one :func:`make`
    wrote (ValueError naming what is missing)."""
    if not isinstance(state, dict):
        raise ValueError(f"not a training checkpoint (it holds a {type(state).__name__})")
    missing = [k for k in _KEYS if k not in state]
    if missing:
        raise ValueError(f"not a normreg-train checkpoint: no {', '.join(repr(k) for k in missing)}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = state["config"]
    if not isinstance(config, dict) or set(config) != fields:
        raise ValueError("the checkpoint's configuration is not one this normreg-train knows")
    return TrainConfig(**config)


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
