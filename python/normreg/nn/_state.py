"""Loading a module's state: the checks ``Module.load_state_dict`` makes on every key
before it writes any, and the copy."""

from __future__ import annotations

import collections.abc
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import _validation as V


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(..., strict=False)`` did not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def load_into(targets: Mapping[str, np.ndarray], state_dict: Any, strict: bool) -> IncompatibleKeys:
    """Copy ``state_dict``'s arrays into ``targets`` (name -> the live array), every key
    checked first; see ``Module.load_state_dict``."""
    if not isinstance(state_dict, collections.abc.Mapping):
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    strict = V.boolean(strict, "strict", "load_state_dict")
    # a batch norm's count may be absent (PyTorch's checkpoints from before it had one):
    # the count is kept, as PyTorch does
    missing = [k for k in targets if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in targets]
    if strict and (missing or unexpected):
        raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
    updates = []
    for key, target in targets.items():
        if key not in state_dict:
            continue
        value = state_dict[key]
        V.not_masked(value, f"'{key}'", "load_state_dict")
        value = np.asarray(value)
        if value.shape != target.shape:
            raise ValueError(f"load_state_dict: '{key}' has shape {value.shape}, expected {target.shape}")
        kinds = {value.dtype.kind, target.dtype.kind}  # float into float, integer into integer
        if value.dtype != target.dtype and len(kinds) > 1 and kinds != {"i", "u"}:
            # a float64 state loads into a float32 model (rounded), as PyTorch's copy_
            # does; a float into an integer count, an integer or bool into a float
            # parameter, or anything not a number does not
            raise TypeError(f"load_state_dict: '{key}' has dtype {value.dtype}, expected {target.dtype}")
        if target.dtype.kind in "iu" and value.dtype.kind in "iu" and value.size:
            info = np.iinfo(target.dtype)  # a count must not wrap around
            if int(value.min()) < info.min or int(value.max()) > info.max:
                raise ValueError(f"load_state_dict: '{key}' holds values beyond {target.dtype}'s range")
            if key.endswith("num_batches_tracked") and int(value.min()) < 0:
                raise ValueError(f"load_state_dict: '{key}' is a count of batches, got {int(value.min())}")
        updates.append((target, value))
    for target, value in updates:
        np.copyto(target, value, casting="same_kind")
    return IncompatibleKeys(missing, unexpected)
