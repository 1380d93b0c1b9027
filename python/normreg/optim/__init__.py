"""Optimizers: SGD, Adam and AdamW, with parameter groups, as PyTorch defines them.

Each ``step()`` updates every parameter with one fused C pass over its buffer
(parameter, gradient and state read and written once). The weight decay of
:class:`SGD` and :class:`Adam` is coupled, i.e. the L2 gradient ``weight_decay * W`` is
added to the gradient, so plain SGD computes the lecture's
``W := (1 - lr*weight_decay) * W - lr * grad``; :class:`AdamW` decays the weights
directly (``W *= 1 - lr*weight_decay``) before its Adam step.

``param_groups`` is a list of dicts, each with its own ``'params'`` and
hyperparameters (missing ones are filled from the optimizer's defaults);
:func:`param_groups` builds the usual two groups from a module, with weight decay for
the weight matrices and none for biases and normalization weights. ``state`` maps each
parameter to its state (``'momentum_buffer'``; ``'step'``, ``'exp_avg'``,
``'exp_avg_sq'``). ``state_dict()`` / ``load_state_dict()`` use PyTorch's layout: the
state keyed by the parameter's index over all groups, and the groups with the indices
of their parameters.
"""
import collections.abc
import copy
import math
import numbers

import numpy as np

from .. import conventions
from .. import functional as F
from ..nn import Module, Parameter
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "param_groups", "lr_scheduler"]


def _number(value, name, minimum=None, below=None, allow_equal_min=True):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"Invalid {name} value: {value}")
    if minimum is not None and (value < minimum or (value == minimum and not allow_equal_min)):
        raise ValueError(f"Invalid {name} value: {value} (must be >{'=' if allow_equal_min else ''} {minimum})")
    if below is not None and not value < below:
        raise ValueError(f"Invalid {name} value: {value} (must be < {below})")
    return value


class Optimizer:
    """Base class: holds ``param_groups`` and ``state``; subclasses define ``defaults``
    (through ``__init__``), ``_check_group`` and ``_update_group``."""

    # state entries of one parameter: name -> "array" (param's shape and dtype) or "int";
    # a trailing "?" allows None / absence
    _state_kinds = {}
    # group keys besides the hyperparameters: set by schedulers, or a label for the user
    _extra_group_keys = ("initial_lr", "name")

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        if isinstance(params, (Parameter, np.ndarray)):
            raise TypeError("params must be an iterable of Parameters or of dicts, "
                            f"got a single {type(params).__name__}")
        if isinstance(params, Module):
            raise TypeError("params must be an iterable of Parameters or of dicts: "
                            "pass module.parameters() or normreg.optim.param_groups(module, ...)")
        try:
            groups = list(params)
        except TypeError:
            raise TypeError("params must be an iterable of Parameters or of dicts, "
                            f"got {type(params).__name__}") from None
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], collections.abc.Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- groups ------------------------------------------------------------------------

    def add_param_group(self, param_group):
        """Add a dict with ``'params'`` (Parameters) and optional hyperparameters (the
        optimizer's defaults fill the others). Besides the hyperparameters a group may hold
        ``'initial_lr'`` (set by the schedulers) and ``'name'`` (a label); other keys are a
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
                raise TypeError(f"params[{i}] must be a normreg.nn.Parameter, got {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains a parameter more than once")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        unknown = [k for k in group if k != "params" and k not in self.defaults
                   and k not in self._extra_group_keys]
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {unknown} for {type(self).__name__} "
                             f"(expected some of {sorted(self.defaults)})")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group["params"] = params
        self._check_group(group)
        self._check_extra_keys(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        """Validate (and normalize) the hyperparameters of ``group`` in place."""

    def _check_extra_keys(self, group):
        if "initial_lr" in group:
            group["initial_lr"] = _number(group["initial_lr"], "initial_lr", minimum=0.0)
        if "name" in group and not isinstance(group["name"], str):
            raise TypeError(f"a group's 'name' must be a str, got {type(group['name']).__name__}")

    # -- steps -------------------------------------------------------------------------

    def zero_grad(self):
        """Reset the ``.grad`` of every parameter to zeros, in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` if given.

        Everything the update reads is checked first (each group's hyperparameters, each
        parameter, gradient and state array), so a step that raises has changed nothing:
        no parameter, no state entry, no step count."""
        loss = None if closure is None else closure()
        for group in self.param_groups:
            self._check_group(group)
            for p in group["params"]:
                if p.grad is not None:
                    self._check_step_param(p)
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _check_step_param(self, p):
        """Raises what updating ``p`` would raise, before anything is written."""
        F._param_array(p.data)
        grad = F._as_float_array(p.grad, "grad", p.data.dtype, "the dtype of param")
        F._check_shape(grad, "grad", p.data.shape, "the shape of param")
        for name, value in self.state.get(p, {}).items():
            if isinstance(value, np.ndarray) or self._state_kinds.get(name, "").startswith("array"):
                F._state_array(value, name, p.data)

    def _update_group(self, group):
        raise NotImplementedError

    # -- state -------------------------------------------------------------------------

    def _all_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self):
        """``{'state': {index: {name: value}}, 'param_groups': [{..., 'params': [index]}]}``
        with copies of the state arrays (later steps never change what it returns)."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        groups = []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state = {}
        for p in self._all_params():
            if p in self.state:
                state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                       for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
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
            raise ValueError(f"load_state_dict: 'param_groups' has {n} groups, the optimizer has "
                             f"{len(self.param_groups)}")
        params = self._all_params()
        new_groups = []
        seen = []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, collections.abc.Mapping) or "params" not in saved:
                raise ValueError(f"load_state_dict: param_groups[{gi}] must be a dict with 'params'")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"load_state_dict: param_groups[{gi}] has {len(saved['params'])} "
                                 f"parameters, the optimizer's group has {len(group['params'])}")
            seen.extend(saved["params"])
            unknown = [k for k in saved if k != "params" and k not in self.defaults
                       and k not in self._extra_group_keys]
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
        if sorted(int(i) for i in seen) != list(range(len(params))):
            raise ValueError("load_state_dict: the groups' 'params' must number the parameters "
                             f"0..{len(params) - 1}, got {seen}")
        # PyTorch's mapping: the saved indices, in group order, name the current parameters
        by_index = dict(zip((int(i) for i in seen), params))
        saved_state = state_dict["state"]
        if not isinstance(saved_state, collections.abc.Mapping):
            raise TypeError(f"load_state_dict: 'state' must be a mapping, got {type(saved_state).__name__}")
        new_state = {}
        for key, entry in saved_state.items():
            if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or int(key) not in by_index:
                raise KeyError(f"load_state_dict: state key {key!r} is not a parameter index "
                               f"in 0..{len(params) - 1}")
            p = by_index[int(key)]
            new_state[p] = self._check_param_state(entry, p, f"state[{int(key)}]")
        self.param_groups = new_groups
        self.state = new_state

    def _check_param_state(self, entry, p, where):
        if not isinstance(entry, collections.abc.Mapping):
            raise TypeError(f"load_state_dict: {where} must be a dict, got {type(entry).__name__}")
        kinds = self._state_kinds
        unexpected = [k for k in entry if k not in kinds]
        missing = [k for k, kind in kinds.items() if k not in entry and not kind.endswith("?")]
        if unexpected or missing:
            raise KeyError(f"load_state_dict: {where} has missing keys {missing}, unexpected keys {unexpected}")
        out = {}
        for k, value in entry.items():
            kind = kinds[k].rstrip("?")
            name = f"{where}['{k}']"
            if kind == "int":
                if isinstance(value, np.ndarray) and value.shape == ():
                    value = value[()]
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 0:
                    raise TypeError(f"load_state_dict: {name} must be an int >= 0, got {value!r}")
                out[k] = int(value)
            elif value is None and kinds[k].endswith("?"):
                out[k] = None
            else:
                if not isinstance(value, np.ndarray):
                    raise TypeError(f"load_state_dict: {name} must be an ndarray, got {type(value).__name__}")
                if value.shape != p.data.shape:
                    raise ValueError(f"load_state_dict: {name} has shape {value.shape}, expected {p.data.shape}")
                if value.dtype != p.data.dtype:
                    raise TypeError(f"load_state_dict: {name} has dtype {value.dtype}, expected {p.data.dtype}")
                out[k] = np.array(value, copy=True, order="C")
        return out

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``::

        d = grad + weight_decay * W                                 (coupled L2 term)
        buf = d on the first step, then momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf                 (when momentum != 0)
        W -= lr * d

    With ``momentum=0`` this is ``W := (1 - lr*weight_decay) * W - lr * grad``.
    ``lr`` is required. ``state[p]['momentum_buffer']`` holds the buffer (None until
    the first step, or when momentum is 0).

    ``momentum_style`` (a per-group hyperparameter; default from the active
    :mod:`normreg.conventions`, PyTorch's ``'heavy_ball'``):

    * ``'heavy_ball'``: the rule above, ``buf = momentum * buf + (1 - dampening) * d``
      (cs231n's ``v = momentum * v - lr * dw; w += v`` is the same update).
    * ``'ema'``: needle's exponential moving average ``buf = momentum * buf +
      (1 - momentum) * d``, starting from ``buf = 0`` (so the first step moves by
      ``lr * (1 - momentum) * d``); no dampening, no Nesterov. The same fused kernel runs
      it, with the dampening set to the momentum and a zero-initialized buffer.
    """

    _state_kinds = {"momentum_buffer": "array?"}

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 *, momentum_style=None, convention=None):
        momentum_style = conventions.resolve(convention, "sgd_momentum_style", momentum_style)
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov,
                        momentum_style=momentum_style)
        self._check_group(dict(defaults))
        super().__init__(params, defaults)

    def _check_group(self, group):
        group["lr"] = _number(group["lr"], "learning rate", minimum=0.0)
        group["momentum"] = _number(group["momentum"], "momentum", minimum=0.0)
        group["dampening"] = _number(group["dampening"], "dampening")
        group["weight_decay"] = _number(group["weight_decay"], "weight_decay", minimum=0.0)
        if not isinstance(group["nesterov"], (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {type(group['nesterov']).__name__}")
        group["nesterov"] = bool(group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        group["momentum_style"] = conventions.check_choice(
            group["momentum_style"], "momentum_style", conventions._SGD_STYLES)
        if group["momentum_style"] == "ema" and (group["nesterov"] or group["dampening"] != 0):
            raise ValueError("momentum_style='ema' takes neither nesterov nor a dampening "
                             "(its buffer is momentum * buf + (1 - momentum) * grad)")

    def _update_group(self, group):
        momentum = group["momentum"]
        ema = group.get("momentum_style", "heavy_ball") == "ema"
        # ema: buf = m buf + (1 - m) d is the heavy-ball kernel with dampening m, from buf = 0
        dampening = momentum if ema else group["dampening"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state.setdefault(p, {"momentum_buffer": None})
            buf = state.get("momentum_buffer")
            first = False
            if momentum != 0 and buf is None:
                buf = np.zeros_like(p.data) if ema else np.empty_like(p.data)
                state["momentum_buffer"] = buf
                first = not ema
            F.sgd_step_(p.data, p.grad, buf if momentum != 0 else None, lr=group["lr"],
                        momentum=momentum, dampening=dampening,
                        weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                        first_step=first)


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (coupled weight decay: ``g = grad + weight_decay*W``)::

        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g**2
        W -= lr / (1 - beta1**t) * m / (sqrt(v / (1 - beta2**t)) + eps)

    ``amsgrad=True`` uses the running maximum of ``v`` in the denominator. State per
    parameter: ``'step'`` (int), ``'exp_avg'``, ``'exp_avg_sq'`` (and ``'max_exp_avg_sq'``).
    """

    _decoupled = False
    _state_kinds = {"step": "int", "exp_avg": "array", "exp_avg_sq": "array",
                    "max_exp_avg_sq": "array?"}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        self._check_group(dict(defaults))
        super().__init__(params, defaults)

    def _check_group(self, group):
        group["lr"] = _number(group["lr"], "learning rate", minimum=0.0)
        group["eps"] = _number(group["eps"], "epsilon value", minimum=0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (_number(betas[0], "beta parameter at index 0", minimum=0.0, below=1.0),
                          _number(betas[1], "beta parameter at index 1", minimum=0.0, below=1.0))
        group["weight_decay"] = _number(group["weight_decay"], "weight_decay value", minimum=0.0)
        if not isinstance(group["amsgrad"], (bool, np.bool_)):
            raise TypeError(f"amsgrad must be a bool, got {type(group['amsgrad']).__name__}")
        group["amsgrad"] = bool(group["amsgrad"])

    def _update_group(self, group):
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state.get(p)
            if state is None:
                state = {"step": 0, "exp_avg": np.zeros_like(p.data),
                         "exp_avg_sq": np.zeros_like(p.data)}
                self.state[p] = state
            if group["amsgrad"] and state.get("max_exp_avg_sq") is None:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            F.adam_step_(p.data, p.grad, state["exp_avg"], state["exp_avg_sq"],
                         state.get("max_exp_avg_sq") if group["amsgrad"] else None,
                         step=state["step"], lr=group["lr"], beta1=beta1, beta2=beta2,
                         eps=group["eps"], weight_decay=group["weight_decay"],
                         decoupled=self._decoupled)


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: decoupled weight decay ``W *= 1 - lr*weight_decay``
    (default 1e-2), then the Adam step on the plain gradient."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)


def param_groups(module, weight_decay, no_decay_weight_decay=0.0):
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
    if not isinstance(module, Module):
        raise TypeError(f"module must be a normreg.nn.Module, got {type(module).__name__}")
    weight_decay = _number(weight_decay, "weight_decay", minimum=0.0)
    no_decay_weight_decay = _number(no_decay_weight_decay, "no_decay_weight_decay", minimum=0.0)
    from ..nn import _NORMALIZATION_LAYERS
    norm_params = {id(p) for m in module.modules() if isinstance(m, _NORMALIZATION_LAYERS)
                   for p in m.parameters()}
    decay, no_decay = [], []
    for _, p in module.named_parameters():
        (decay if p.data.ndim >= 2 and id(p) not in norm_params else no_decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": no_decay_weight_decay})
    return groups
