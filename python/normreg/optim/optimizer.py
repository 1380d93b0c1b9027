"""The optimizer base class: parameter groups, state, ``step()`` and the state dict
in PyTorch's layout; and :func:`param_groups`, the usual two groups of a module."""

from __future__ import annotations

import collections.abc
import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import _validation as V
from ..functional.optim import check_step_arrays, write_back
from ..nn.normalization import NORMALIZATION_LAYERS
from ..nn.parameter import Module, Parameter

__all__ = ["Optimizer", "param_groups"]


_ndarray = np.ndarray


def _plain_grads(group: dict[str, Any]) -> bool:
    """Whether every gradient of ``group`` is a plain ndarray (or None)."""
    return all(type(p.grad) is _ndarray or p.grad is None for p in group["params"])


class Optimizer:
    """Base class: holds ``param_groups`` and ``state``; subclasses define ``defaults``
    (through ``__init__``), ``_check_group`` and ``_update_group``."""

    # state entries of one parameter: name -> "array" (param's shape and dtype) or "int";
    # a trailing "?" allows None / absence
    _state_kinds: dict[str, str] = {}
    # group keys besides the hyperparameters: set by schedulers (OneCycleLR's bounds too), or
    # a label for the user
    _extra_group_keys = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum", "name")

    def __init__(self, params: Any, defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self._check_group(dict(self.defaults))  # a bad default raises before anything else
        self.state: dict[Parameter, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, (Parameter, np.ndarray)):
            raise TypeError(
                f"params must be an iterable of Parameters or of dicts, got a single {type(params).__name__}"
            )
        if isinstance(params, Module):
            raise TypeError(
                "params must be an iterable of Parameters or of dicts: "
                "pass module.parameters() or normreg.optim.param_groups(module, ...)"
            )
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(
                f"params must be an iterable of Parameters or of dicts, got {type(params).__name__}"
            ) from None
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], collections.abc.Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- groups ------------------------------------------------------------------------

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a dict with ``'params'`` (Parameters) and optional hyperparameters (the
        optimizer's defaults fill the others). Besides the hyperparameters a group may hold
        ``'initial_lr'`` (set by the schedulers; OneCycleLR adds ``'max_lr'``, ``'min_lr'``,
        ``'max_momentum'`` and ``'base_momentum'``) and ``'name'`` (a label); other keys are a
        ValueError, which catches misspelt hyperparameters."""
        if not isinstance(param_group, collections.abc.Mapping):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a parameter group needs the key 'params'")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("params of a group must be an ordered sequence (a list), not a set")
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{type(self).__name__}: params[{i}] must be a normreg.nn.Parameter, "
                    f"got {type(p).__name__}"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains a parameter more than once")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        unknown = [
            k for k in group if k != "params" and k not in self.defaults and k not in self._extra_group_keys
        ]
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {unknown} for {type(self).__name__} "
                f"(expected some of {sorted(self.defaults)})"
            )
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group["params"] = params
        self._check_group(group)
        self._check_extra_keys(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate (and normalize) the hyperparameters of ``group`` in place: here those of
        every optimizer, ``lr`` and ``weight_decay``; subclasses add theirs."""
        where = type(self).__name__
        group["lr"] = V.real(group["lr"], "lr (learning rate)", where, low=0.0)
        group["weight_decay"] = V.real(group["weight_decay"], "weight_decay", where, low=0.0)
        if "maximize" in group:
            group["maximize"] = V.boolean(group["maximize"], "maximize", where)

    def _check_extra_keys(self, group: dict[str, Any]) -> None:
        where = type(self).__name__
        for key in self._extra_group_keys:
            if key != "name" and key in group:  # the schedulers' numbers
                group[key] = V.real(group[key], key, where, low=0.0)
        if "name" in group and not isinstance(group["name"], str):
            raise TypeError(f"{where}: a group's 'name' must be a str, got {type(group['name']).__name__}")

    # -- steps -------------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradient of every parameter: ``.grad = None`` (default, as PyTorch 2),
        or zeros in place with ``set_to_none=False``."""
        set_to_none = V.boolean(set_to_none, "set_to_none", f"{type(self).__name__}.zero_grad")
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad(set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient (a parameter whose ``.grad`` is None
        is skipped: no update, no weight decay, no state); returns ``closure()`` if given.

        Everything the update reads is checked first (each group's hyperparameters, each
        parameter, gradient and state array), so a step that raises has changed nothing:
        no parameter, no state entry, no step count."""
        loss = None if closure is None else closure()
        for group in self.param_groups:
            self._check_group(group)
        maximize = any(group.get("maximize") for group in self.param_groups)
        if len(self.param_groups) == 1 and not maximize and _plain_grads(self.param_groups[0]):
            # one group: its update (one kernel call for all its parameters) checks every
            # array before it writes any, so the Python checks below are needed only to say
            # what is wrong, or to convert what the kernels do not take as it is (the
            # kernels would take an ndarray subclass's data as it is: a masked array's
            # masked values too, so subclasses take the checked path)
            try:
                self._update_group(self.param_groups[0])
                return loss
            except (TypeError, ValueError):
                pass
        grads = {}  # each gradient as the kernels take it (a list or a strided array converted)
        datas = {}  # a C-contiguous copy of each parameter of another layout, copied back after
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    data, g = self._check_step_param(p)
                    if data is not p.data:
                        datas[p] = data
                    # maximize: the update of -grad (as PyTorch's), .grad left as it is
                    grads[p] = np.negative(g) if group.get("maximize") else g
        for group in self.param_groups:
            self._update_group(group, grads, datas)
        write_back(*((p.data, data) for p, data in datas.items()))  # the same arrays, in place
        return loss

    def _check_step_param(self, p: Parameter) -> tuple[np.ndarray, np.ndarray]:
        """Raises what updating ``p`` would raise, before anything is written; returns the
        parameter's array and the gradient as the kernels take them (the array is
        ``p.data``, or a C-contiguous copy of it when it has another layout)."""
        arrays = {
            name: value
            for name, value in self.state.get(p, {}).items()
            if isinstance(value, np.ndarray) or self._state_kinds.get(name, "").startswith("array")
        }
        data, grad, _ = check_step_arrays(p.data, p.grad, type(self).__name__, **arrays)
        return data, grad

    def _update_group(
        self,
        group: dict[str, Any],
        grads: Mapping[Parameter, np.ndarray] | None = None,
        datas: Mapping[Parameter, np.ndarray] | None = None,
    ) -> None:
        """Update the parameters of ``group`` that have a gradient (``grads[p]``, or
        ``p.grad`` itself when ``grads`` is None), in one kernel call that checks all their
        arrays before it writes any: a TypeError or ValueError leaves the parameters and the
        state as they were (new state is stored after the call). ``datas[p]``, when there,
        is the array updated for ``p`` (a C-contiguous copy of ``p.data``, which the caller
        copies back); new state arrays are made like it, C-contiguous."""
        raise NotImplementedError

    @staticmethod
    def _data(p: Parameter, datas: Mapping[Parameter, np.ndarray] | None) -> np.ndarray:
        """The array the kernels update for ``p``: ``datas[p]`` if there, else ``p.data``."""
        return datas.get(p, p.data) if datas else p.data

    # -- state -------------------------------------------------------------------------

    def _all_params(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {name: value}}, 'param_groups': [{..., 'params': [index]}]}``
        with copies of the state arrays (later steps never change what it returns)."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        groups = []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state: dict[int, dict[str, Any]] = {}
        for p in self._all_params():
            if p in self.state:
                state[index[id(p)]] = {
                    k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.state[p].items()
                }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the hyperparameters and state saved by :meth:`state_dict`.

        Everything is checked before anything changes: the number of groups and of their
        parameters, each state entry's name, shape and dtype (errors name the entry, e.g.
        ``state[3]['exp_avg']``), and the hyperparameters. The arrays are copied.
        """
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise KeyError(f"load_state_dict: state_dict has no key '{key}'")
        extra = [k for k in state_dict if k not in ("state", "param_groups")]
        if extra:
            raise KeyError(f"load_state_dict: unexpected keys {extra}")
        saved_groups = state_dict["param_groups"]
        if not isinstance(saved_groups, (list, tuple)) or len(saved_groups) != len(self.param_groups):
            n = len(saved_groups) if isinstance(saved_groups, (list, tuple)) else type(saved_groups).__name__
            raise ValueError(
                f"load_state_dict: 'param_groups' has {n} groups, the optimizer has {len(self.param_groups)}"
            )
        params = self._all_params()
        new_groups = []
        seen = []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, collections.abc.Mapping) or "params" not in saved:
                raise ValueError(f"load_state_dict: param_groups[{gi}] must be a dict with 'params'")
            indices = _param_indices(saved["params"], f"param_groups[{gi}]['params']")
            if len(indices) != len(group["params"]):
                raise ValueError(
                    f"load_state_dict: param_groups[{gi}] has {len(indices)} "
                    f"parameters, the optimizer's group has {len(group['params'])}"
                )
            seen.extend(indices)
            unknown = [
                k
                for k in saved
                if k != "params" and k not in self.defaults and k not in self._extra_group_keys
            ]
            if unknown:
                raise KeyError(f"load_state_dict: param_groups[{gi}] has unknown keys {unknown}")
            new = dict(group)
            new.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
            try:
                self._check_group(new)
                self._check_extra_keys(new)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"load_state_dict: param_groups[{gi}]: {exc}") from None
            new_groups.append(new)
        if sorted(seen) != list(range(len(params))):
            raise ValueError(
                "load_state_dict: the groups' 'params' must number the parameters "
                f"0..{len(params) - 1}, each once, got {seen}"
            )
        # PyTorch's mapping: the saved indices, in group order, name the current parameters
        by_index = dict(zip(seen, params))
        saved_state = state_dict["state"]
        if not isinstance(saved_state, collections.abc.Mapping):
            raise TypeError(f"load_state_dict: 'state' must be a mapping, got {type(saved_state).__name__}")
        new_state: dict[Parameter, dict[str, Any]] = {}
        for key, entry in saved_state.items():
            if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or int(key) not in by_index:
                raise KeyError(
                    f"load_state_dict: state key {key!r} is not a parameter index in 0..{len(params) - 1}"
                )
            p = by_index[int(key)]
            new_state[p] = self._check_param_state(entry, p, f"state[{int(key)}]")
        self.param_groups = new_groups
        self.state = new_state

    def _check_param_state(self, entry: Any, p: Parameter, where: str) -> dict[str, Any]:
        if not isinstance(entry, collections.abc.Mapping):
            raise TypeError(f"load_state_dict: {where} must be a dict, got {type(entry).__name__}")
        kinds = self._state_kinds
        unexpected = [k for k in entry if k not in kinds]
        missing = [k for k, kind in kinds.items() if k not in entry and not kind.endswith("?")]
        if unexpected or missing:
            raise KeyError(
                f"load_state_dict: {where} has missing keys {missing}, unexpected keys {unexpected}"
            )
        out: dict[str, Any] = {}
        for k, value in entry.items():
            kind = kinds[k].rstrip("?")
            name = f"{where}['{k}']"
            if kind == "int":
                if isinstance(value, np.ndarray) and value.shape == ():
                    value = value[()]
                if isinstance(value, (float, np.floating)) and float(value).is_integer():
                    value = int(value)  # PyTorch keeps its step count as a float tensor
                out[k] = V.integer(value, name, "load_state_dict", low=0)
            elif value is None and kinds[k].endswith("?"):
                out[k] = None
            else:
                if not isinstance(value, np.ndarray):
                    raise TypeError(f"load_state_dict: {name} must be an ndarray, got {type(value).__name__}")
                if value.shape != p.data.shape:
                    raise ValueError(
                        f"load_state_dict: {name} has shape {value.shape}, expected {p.data.shape}"
                    )
                if value.dtype != p.data.dtype:
                    raise TypeError(
                        f"load_state_dict: {name} has dtype {value.dtype}, expected {p.data.dtype}"
                    )
                out[k] = np.array(value, copy=True, order="C")
        return out

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def _param_indices(value: Any, name: str) -> list[int]:
    """A saved group's ``'params'``: a list (or tuple) of ints (Python or NumPy, not bool),
    as a list of Python ints; a TypeError naming ``name`` (and the entry) otherwise."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = list(value)
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            f"load_state_dict: {name} must be a list of parameter indices (ints), got {type(value).__name__}"
        )
    return [V.integer(v, f"{name}[{j}] (a parameter index)", "load_state_dict") for j, v in enumerate(value)]


def param_groups(
    module: Module, weight_decay: float, no_decay_weight_decay: float = 0.0
) -> list[dict[str, Any]]:
    """The usual two parameter groups of ``module``.

    ``[{'params': decay, 'weight_decay': weight_decay},
    {'params': no_decay, 'weight_decay': no_decay_weight_decay}]``: parameters with
    two or more dimensions (the weight matrices of Linear layers) are decayed; those with
    at most one (biases) and those of normalization layers (LayerNorm, BatchNorm, RMSNorm,
    GroupNorm, InstanceNorm, whatever their shape) are not, which is what is done in
    practice since decaying a scale or a shift does not regularize the function the
    network computes. Empty groups are left out. Each group can take more keys (e.g.
    ``'lr'``) before being passed to an optimizer.
    """
    where = "param_groups"
    if not isinstance(module, Module):
        raise TypeError(f"{where}: module must be a normreg.nn.Module, got {type(module).__name__}")
    weight_decay = V.real(weight_decay, "weight_decay", where, low=0.0)
    no_decay_weight_decay = V.real(no_decay_weight_decay, "no_decay_weight_decay", where, low=0.0)
    norm_params = {
        id(p) for m in module.modules() if isinstance(m, NORMALIZATION_LAYERS) for p in m.parameters()
    }
    decay: list[Parameter] = []
    no_decay: list[Parameter] = []
    for _, p in module.named_parameters():
        (decay if p.data.ndim >= 2 and id(p) not in norm_params else no_decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": no_decay_weight_decay})
    return groups
