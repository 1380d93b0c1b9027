"""Modules with explicit forward and backward.

A :class:`Module` keeps in ``forward`` what its ``backward`` needs. ``backward(dy)``
returns the gradient with respect to the input and **adds** the parameter gradients
into each :class:`Parameter`'s ``.grad`` (they accumulate until ``zero_grad()``, as in
PyTorch). Layers take the names and arguments of their PyTorch counterparts; a
:class:`Linear` weight is stored as (in_features, out_features), so ``y = x @ W + b``.
"""
import collections
import math
import warnings

import numpy as np

from . import _C
from . import conventions
from . import functional as F
from .conventions import DEFAULT

__all__ = [
    "Parameter", "Module", "Linear", "ReLU", "LayerNorm", "BatchNorm1d", "Dropout",
    "Sequential", "Residual", "Flatten", "Identity", "SoftmaxLoss", "CrossEntropyLoss",
]
__all__ += ["BatchNorm2d", "RMSNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "utils"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _float_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _positive_int(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else 'positive'}, got {value}")
    return int(value)


def _data(param):
    """``param.data``, or None for an absent parameter."""
    return None if param is None else param.data


def _grad(param):
    """``param.grad``, or None for an absent parameter."""
    return None if param is None else param.grad


def _input(module, a, name):
    """``a`` as a float array of the dtype of ``module``'s parameters (TypeError naming
    ``name`` otherwise)."""
    return F._as_float_array(a, name, module.dtype,
                             f"the dtype of {type(module).__name__}'s parameters")


def _affine_grads(module):
    """The keywords by which a normalization's functional backward adds into the
    ``.grad`` of ``module``'s weight and bias (either may be absent)."""
    return dict(has_bias=module.bias is not None, dweight=_grad(module.weight),
                dbias=_grad(module.bias))


class Parameter:
    """A trainable array: ``.data`` (the values) and ``.grad`` (same shape, accumulated by
    ``backward``; zeros at creation and after ``zero_grad()``)."""

    __slots__ = ("data", "grad")

    def __init__(self, data):
        data = np.array(data, copy=True, order="C")
        if data.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"Parameter data must be float32 or float64, got {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        self.grad[...] = 0

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


_IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class: subclasses set their parameters, buffers and sub-modules as attributes
    and implement ``forward`` and ``backward``."""

    def __init__(self):
        self.training = True
        self._buffer_names = []

    # -- calls ---------------------------------------------------------------------------

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _cached(self, *names):
        """The values ``forward`` stored for ``backward``; ValueError if there was none."""
        values = [getattr(self, n, None) for n in names]
        if getattr(self, "_ctx", None) is None:
            raise ValueError(f"{type(self).__name__}.backward called before forward")
        return values

    # -- structure -----------------------------------------------------------------------

    def register_buffer(self, name, value):
        """Keep ``value`` (an ndarray or None) as state that is saved but not trained."""
        setattr(self, name, value)
        if name not in self._buffer_names:
            self._buffer_names.append(name)

    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item

    def children(self):
        return (m for _, m in self.named_children())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix=""):
        """(name, Parameter) pairs: this module's own, then each child's, dotted names."""
        seen = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, value in vars(mod).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        for mod_name, mod in self.named_modules(prefix):
            for name in getattr(mod, "_buffer_names", ()):
                value = getattr(mod, name)
                if value is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    # -- modes and gradients -------------------------------------------------------------

    def train(self, mode=True):
        """Set training mode (``True``) or evaluation mode here and in every sub-module."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        """Reset every parameter's ``.grad`` to zeros (in place)."""
        for p in self.parameters():
            p.zero_grad()

    # -- state ---------------------------------------------------------------------------

    def _state_targets(self):
        """name -> the live array, in PyTorch's order: each module's parameters, then its
        buffers, then its children's."""
        targets = collections.OrderedDict()
        seen = set()
        for mod_name, mod in self.named_modules():
            prefix = f"{mod_name}." if mod_name else ""
            for name, value in vars(mod).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    targets[prefix + name] = value.data
            for name in getattr(mod, "_buffer_names", ()):
                value = getattr(mod, name)
                if value is not None:
                    targets[prefix + name] = value
        return targets

    def state_dict(self):
        """An ordered dict of copies of the parameters' data and the buffers."""
        return collections.OrderedDict((k, np.array(v, copy=True)) for k, v in self._state_targets().items())

    def load_state_dict(self, state_dict, strict=True):
        """Copy ``state_dict``'s arrays into the parameters and buffers, in place.

        Every key is checked (shape, dtype) before anything is written, so a failed load
        changes nothing. With ``strict=True`` missing or unexpected keys raise KeyError;
        with ``strict=False`` they are returned as ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        targets = self._state_targets()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        updates = []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key])
            if value.shape != target.shape:
                raise ValueError(f"load_state_dict: '{key}' has shape {value.shape}, expected {target.shape}")
            if value.dtype != target.dtype:
                raise TypeError(f"load_state_dict: '{key}' has dtype {value.dtype}, expected {target.dtype}")
            updates.append((target, value))
        for target, value in updates:
            np.copyto(target, value)
        return _IncompatibleKeys(missing, unexpected)

    # -- display -------------------------------------------------------------------------

    def extra_repr(self):
        return ""

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Linear(Module):
    """``y = x @ weight + bias``; weight (in_features, out_features), bias (out_features,).

    Initialized as PyTorch does (:meth:`reset_parameters`): weight and bias uniform in
    ``(-1/sqrt(in_features), 1/sqrt(in_features))``.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, generator=None):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", allow_zero=True)
        self.out_features = _positive_int(out_features, "out_features", allow_zero=True)
        dt = _float_dtype(dtype)
        self.weight = Parameter(np.empty((self.in_features, self.out_features), dtype=dt))
        self.bias = Parameter(np.empty(self.out_features, dtype=dt)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        """PyTorch's default: ``init.kaiming_uniform_(weight, a=sqrt(5))``, i.e. U(-b, b) with
        ``b = gain * sqrt(3 / fan_in) = 1/sqrt(in_features)`` (gain = sqrt(2 / (1 + 5)),
        fan_in = in_features), and the bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        Draws from ``generator`` (default: normreg's default generator)."""
        from . import init  # init imports this module
        F._generator(generator)  # TypeError naming it, even when nothing is drawn
        if self.weight.data.size:
            init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, x):
        x = F._as_float_array(x, "x", self.weight.dtype, "the dtype of Linear's parameters")
        y = F.linear(x, self.weight.data, _data(self.bias))
        self._ctx = x
        return y

    def backward(self, dy):
        (x,) = self._cached("_ctx")
        dy = F._as_float_array(dy, "dy", self.weight.dtype, "the dtype of Linear's parameters")
        dx, _, _ = F.linear_backward(
            dy, x, self.weight.data, has_bias=self.bias is not None, dweight=self.weight.grad,
            dbias=_grad(self.bias))
        return dx

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    """``y = max(x, 0)``."""

    def forward(self, x):
        y = F.relu(x)
        self._ctx = y
        return y

    def backward(self, dy):
        (y,) = self._cached("_ctx")
        return F.relu_backward(dy, y)


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` dimensions.

    ``y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias``, biased variance; weight
    starts at ones and bias at zeros (``elementwise_affine=True``; ``bias=False`` drops
    the bias).
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=np.float32):
        super().__init__()
        self.normalized_shape = F._normalized_shape(normalized_shape)
        if len(self.normalized_shape) == 0:
            raise ValueError("normalized_shape must have at least one dimension")
        self.eps = F._eps(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.dtype = _float_dtype(dtype)
        # the row size of (M, D) input the forward's fast path takes (-1: none)
        self._row_size = self.normalized_shape[0] if len(self.normalized_shape) == 1 else -1
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=self.dtype))
            self.bias = Parameter(np.zeros(self.normalized_shape, dtype=self.dtype)) if bias else None
        else:
            self.weight = None
            self.bias = None

    def forward(self, x):
        # Fast path: a C-contiguous (M, D) array of the parameters' dtype goes straight to the
        # binding, which checks everything memory safety needs; anything it rejects takes the
        # general path below, which coerces or raises the friendly error.
        if type(x) is np.ndarray and x.ndim == 2 and x.dtype is self.dtype and \
                x.shape[1] == self._row_size:
            w, b = self.weight, self.bias
            try:
                y, mean, rstd = _C.layer_norm_forward(
                    x, None if w is None else w.data, None if b is None else b.data, self.eps, None)
            except (TypeError, ValueError):
                pass
            else:
                self._ctx = (x, mean, rstd)
                return y
        x = _input(self, x, "x")
        y, mean, rstd = F.layer_norm(
            x, self.normalized_shape, _data(self.weight), _data(self.bias), self.eps)
        self._ctx = (x, mean, rstd)
        return y

    def backward(self, dy):
        ((x, mean, rstd),) = self._cached("_ctx")
        dy = _input(self, dy, "dy")
        dx, _, _ = F.layer_norm_backward(
            dy, x, mean, rstd, _data(self.weight), **_affine_grads(self))
        return dx

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class _BatchNorm(Module):
    """Batch normalization per channel C of (N, C, *) input (see BatchNorm1d/BatchNorm2d).

    In training: normalizes with the batch mean and biased variance over N and the
    positions ``*``, and updates ``running_mean``/``running_var``; in evaluation:
    normalizes with the running estimates. The update follows the convention switches
    (PyTorch's by default, see :mod:`normreg.conventions`):

    * ``momentum_style='torch'``: ``running = (1 - momentum) * running + momentum * batch``;
      ``'cs231n'``: ``running = momentum * running + (1 - momentum) * batch``.
      ``momentum=None`` takes the cumulative average over ``num_batches_tracked``.
    * ``running_var_estimator='unbiased'`` (divides by n - 1) or ``'biased'`` (by n).
    * ``initial_running_var``: 1.0 (PyTorch, needle) or 0.0 (cs231n).

    Policies:

    * ``track_running_stats=False``: no running estimates; batch statistics in training
      and in evaluation (PyTorch).
    * ``freeze_stats=True``: normalize with the running estimates and never update them,
      even in training mode, while weight and bias still train (what PyTorch users get by
      calling ``.eval()`` on the batch-norm layers of a training model; unlike that trick,
      a later ``model.train()`` does not undo it).
    * An empty batch (no values per channel) gives an empty output and leaves the running
      estimates and ``num_batches_tracked`` untouched; its backward adds nothing.
    * A channel whose batch mean or variance is not finite (NaN/Inf in the input, or a
      variance beyond the dtype's range) keeps its running mean and variance from before
      the batch (a ``RuntimeWarning`` says so);
      the other channels are updated, and ``num_batches_tracked`` counts the batch. The
      output of such a channel is not finite either: that is the input's doing.
    """

    _input_doc = "(N, C, *)"

    def __init__(self, num_features, eps=1e-5, momentum=DEFAULT, affine=True,
                 track_running_stats=True, dtype=np.float32, *, momentum_style=None,
                 running_var_estimator=None, initial_running_var=None, freeze_stats=False,
                 convention=None):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features")
        self.eps = F._eps(eps)
        if momentum is DEFAULT:  # None is PyTorch's cumulative average, not "unset"
            momentum = conventions.get(convention).bn_momentum
        if momentum is not None:
            momentum = F._real(momentum, "momentum")
            if not 0.0 <= momentum <= 1.0:
                raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        self.momentum = momentum
        self.momentum_style = conventions.check_choice(
            conventions.resolve(convention, "bn_momentum_style", momentum_style),
            "momentum_style", conventions._MOMENTUM_STYLES)
        self.running_var_estimator = conventions.check_choice(
            conventions.resolve(convention, "bn_running_var_estimator", running_var_estimator),
            "running_var_estimator", conventions._VAR_ESTIMATORS)
        self.initial_running_var = F._real(
            conventions.resolve(convention, "bn_initial_running_var", initial_running_var),
            "initial_running_var")
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.freeze_stats = bool(freeze_stats)
        if self.freeze_stats and not self.track_running_stats:
            raise ValueError("freeze_stats=True needs track_running_stats=True (there are no running "
                             "statistics to freeze)")
        self.dtype = _float_dtype(dtype)
        C = self.num_features
        self.weight = Parameter(np.ones(C, dtype=self.dtype)) if self.affine else None
        self.bias = Parameter(np.zeros(C, dtype=self.dtype)) if self.affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, dtype=self.dtype))
            self.register_buffer("running_var", np.full(C, self.initial_running_var, dtype=self.dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        # Scratch for the running update (see _forward_train_update): O(C) work, no second
        # pass over the input.
        self._batch_mean = np.zeros(C, dtype=self.dtype)
        self._batch_var = np.zeros(C, dtype=self.dtype)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = self.initial_running_var
            self.num_batches_tracked[...] = 0

    def _as_ncl(self, x):
        """x as (N, C, L), checked; subclasses define the accepted shapes."""
        raise NotImplementedError

    def _bad_shape(self, x):
        name = type(self).__name__
        return ValueError(f"{name}({self.num_features}) expects input {self._input_doc} with "
                          f"C = {self.num_features}, got shape {x.shape}")

    def _new_weight(self):
        """The weight of the batch statistic in the running update."""
        if self.momentum is None:  # cumulative moving average
            return 1.0 / float(self.num_batches_tracked + 1)
        return self.momentum if self.momentum_style == "torch" else 1.0 - self.momentum

    def _forward_train_update(self, x3, weight, bias):
        """The training forward and the running update of this layer's convention, with
        the non-finite policy; O(C) work besides the kernel's, no second pass over x3."""
        N, C, L = x3.shape
        w = self._new_weight()
        rm, rv = self.running_mean, self.running_var
        if self.running_var_estimator == "unbiased":
            # PyTorch's rule (either momentum style is a weight w of the batch statistic):
            # the kernel updates rm, rv in place; a channel it made non-finite is put back.
            np.copyto(self._batch_mean, rm)
            np.copyto(self._batch_var, rv)
            out = F.batch_norm(x3, rm, rv, weight, bias, training=True, momentum=w, eps=self.eps)
            skipped = 0
            if not math.isfinite(float(rm.sum()) + float(rv.sum())):
                was_finite = np.isfinite(self._batch_mean) & np.isfinite(self._batch_var)
                bad = was_finite & ~(np.isfinite(rm) & np.isfinite(rv))
                np.copyto(rm, self._batch_mean, where=bad)
                np.copyto(rv, self._batch_var, where=bad)
                skipped = int(bad.sum())
        else:
            # The kernel writes the batch mean and unbiased variance into the scratch buffers
            # (momentum 1 into zeros); the biased variance and the update follow in float64.
            self._batch_mean.fill(0)
            self._batch_var.fill(0)
            out = F.batch_norm(x3, self._batch_mean, self._batch_var, weight, bias, training=True,
                               momentum=1.0, eps=self.eps)
            mean = self._batch_mean.astype(np.float64)
            var = self._batch_var.astype(np.float64) * ((N * L - 1) / (N * L))
            finite = np.isfinite(mean) & np.isfinite(var)
            np.copyto(rm, (1.0 - w) * rm.astype(np.float64) + w * mean, casting="unsafe", where=finite)
            np.copyto(rv, (1.0 - w) * rv.astype(np.float64) + w * var, casting="unsafe", where=finite)
            skipped = int(C - finite.sum())
        self.num_batches_tracked += 1
        if skipped:
            warnings.warn(f"{type(self).__name__}: batch statistics of {skipped} channel(s) are not "
                          "finite; their running estimates were not updated", RuntimeWarning,
                          stacklevel=3)
        return out

    def forward(self, x):
        x = _input(self, x, "x")
        x3 = self._as_ncl(x)
        N, C, L = x3.shape
        if self.freeze_stats and not self.track_running_stats:
            raise ValueError("freeze_stats=True needs track_running_stats=True")
        use_batch_stats = not self.track_running_stats or (self.training and not self.freeze_stats)
        update = use_batch_stats and self.track_running_stats
        if N * L == 0:  # empty batch: nothing to normalize, nothing learned about the data
            self._ctx = (x.shape, None, None, None, use_batch_stats)
            return np.empty_like(x)
        weight = _data(self.weight)
        bias = _data(self.bias)
        if update:
            y, save_mean, save_rstd = self._forward_train_update(x3, weight, bias)
        elif use_batch_stats:
            y, save_mean, save_rstd = F.batch_norm(x3, None, None, weight, bias, training=True,
                                                   eps=self.eps)
        else:
            y, save_mean, save_rstd = F.batch_norm(x3, self.running_mean, self.running_var, weight,
                                                   bias, training=False, eps=self.eps)
        self._ctx = (x.shape, x3, save_mean, save_rstd, use_batch_stats)
        return y.reshape(x.shape)

    def backward(self, dy):
        ((shape, x3, save_mean, save_rstd, use_batch_stats),) = self._cached("_ctx")
        name = type(self).__name__
        dy = _input(self, dy, "dy")
        if dy.shape != shape:
            raise ValueError(f"{name}.backward: dy has shape {dy.shape}, expected {shape}")
        if x3 is None:  # empty batch
            return np.empty_like(dy)
        dx, _, _ = F.batch_norm_backward(
            dy.reshape(x3.shape), x3, save_mean, save_rstd,
            _data(self.weight), training=use_batch_stats, **_affine_grads(self))
        return dx.reshape(shape)

    def extra_repr(self):
        s = (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
             f"affine={self.affine}, track_running_stats={self.track_running_stats}")
        if self.momentum_style != "torch":
            s += f", momentum_style={self.momentum_style!r}"
        if self.running_var_estimator != "unbiased":
            s += f", running_var_estimator={self.running_var_estimator!r}"
        if self.freeze_stats:
            s += ", freeze_stats=True"
        return s


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) input per channel C.

    ``BatchNorm1d(num_features, eps=1e-5, momentum=0.1, affine=True,
    track_running_stats=True, dtype=np.float32, *, momentum_style=None,
    running_var_estimator=None, initial_running_var=None, freeze_stats=False,
    convention=None)``; an omitted ``momentum`` and the switches left at None take the
    convention's values (PyTorch's by default: 0.1, ``'torch'``, ``'unbiased'``, 1.0).

    In training: normalizes with the batch mean and biased variance and updates
    ``running_mean``/``running_var`` as ``(1 - momentum) * running + momentum * stat``
    (running_var with the unbiased variance; ``momentum=None`` takes the cumulative
    average over ``num_batches_tracked``). In evaluation: normalizes with the running
    estimates (or with batch statistics if ``track_running_stats=False``). The switches
    after ``*`` select a course's convention and the policies: see :class:`_BatchNorm`.
    """

    _input_doc = "(N, C) or (N, C, L)"

    def _as_ncl(self, x):
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise self._bad_shape(x)
        return x.reshape(x.shape[0], x.shape[1], 1) if x.ndim == 2 else x


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) input per channel C, with statistics over N, H
    and W; otherwise exactly :class:`BatchNorm1d` (same arguments, running estimates,
    conventions and policies). Runs the batch-norm kernel on the (N, C, H * W) view."""

    _input_doc = "(N, C, H, W)"

    def _as_ncl(self, x):
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise self._bad_shape(x)
        return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])


class RMSNorm(Module):
    """RMS normalization over the trailing ``normalized_shape`` dimensions (PyTorch's
    ``nn.RMSNorm``): ``y = x / sqrt(mean(x**2) + eps) * weight``.

    ``eps=None`` is the machine epsilon of the dtype (``np.finfo(dtype).eps``); weight
    starts at ones (``elementwise_affine=True``); there is no bias.
    """

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, dtype=np.float32):
        super().__init__()
        self.normalized_shape = F._normalized_shape(normalized_shape)
        if len(self.normalized_shape) == 0:
            raise ValueError("normalized_shape must have at least one dimension")
        self.dtype = _float_dtype(dtype)
        self.eps = None if eps is None else F._eps(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.weight = (Parameter(np.ones(self.normalized_shape, dtype=self.dtype))
                       if self.elementwise_affine else None)

    def forward(self, x):
        x = _input(self, x, "x")
        y, rstd = F.rms_norm(x, self.normalized_shape,
                             _data(self.weight), self.eps)
        self._ctx = (x, rstd)
        return y

    def backward(self, dy):
        ((x, rstd),) = self._cached("_ctx")
        dy = _input(self, dy, "dy")
        dx, _ = F.rms_norm_backward(dy, x, rstd, _data(self.weight),
                                    dweight=_grad(self.weight))
        return dx

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Group normalization of (N, C, *) input (PyTorch's ``nn.GroupNorm``).

    The ``num_channels`` channels form ``num_groups`` groups of consecutive channels; each
    sample's group is normalized by its mean and biased variance over its channels and
    all positions ``*``; then each channel gets ``* weight[c] + bias[c]`` (ones and zeros
    at first, ``affine=True``). ``GroupNorm(1, C)`` is a LayerNorm over (C, *) with
    per-channel affine; ``GroupNorm(C, C)`` is an InstanceNorm with affine.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32):
        super().__init__()
        self.num_channels = _positive_int(num_channels, "num_channels")
        self.num_groups = F._num_groups(num_groups, self.num_channels)
        self.eps = F._eps(eps)
        self.affine = bool(affine)
        self.dtype = _float_dtype(dtype)
        C = self.num_channels
        self.weight = Parameter(np.ones(C, dtype=self.dtype)) if self.affine else None
        self.bias = Parameter(np.zeros(C, dtype=self.dtype)) if self.affine else None

    def _check_input(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{type(self).__name__} expects input (N, {self.num_channels}, *), "
                             f"got shape {x.shape}")

    def forward(self, x):
        x = _input(self, x, "x")
        self._check_input(x)
        y, mean, rstd = F.group_norm(x, self.num_groups,
                                     _data(self.weight), _data(self.bias), self.eps)
        self._ctx = (x, mean, rstd)
        return y

    def backward(self, dy):
        ((x, mean, rstd),) = self._cached("_ctx")
        dy = _input(self, dy, "dy")
        dx, _, _ = F.group_norm_backward(
            dy, x, mean, rstd, _data(self.weight), **_affine_grads(self))
        return dx

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _InstanceNorm(GroupNorm):
    """Instance normalization: each (sample, channel) normalized over its positions by its
    own mean and biased variance, i.e. GroupNorm with one group per channel (its kernel
    runs it). PyTorch's defaults: ``affine=False``, ``track_running_stats=False``;
    unbatched input (C, *) is accepted too.

    ``track_running_stats=True`` keeps ``running_mean``/``running_var`` as PyTorch does:
    in training they move (momentum m) towards the batch average of the instance means
    and of the instance unbiased variances, and evaluation normalizes every instance with
    them. A channel whose statistics are not finite keeps its running estimates (as
    BatchNorm). As in PyTorch, ``num_batches_tracked`` is kept for the state dict but not
    counted, and ``momentum=None`` means no update.
    """

    _spatial = 1

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, dtype=np.float32):
        num_features = _positive_int(num_features, "num_features")
        super().__init__(num_features, num_features, eps=eps, affine=affine, dtype=dtype)
        if momentum is not None:
            momentum = F._real(momentum, "momentum")
            if not 0.0 <= momentum <= 1.0:
                raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        self.num_features = num_features
        self.momentum = momentum
        self.track_running_stats = bool(track_running_stats)
        C = num_features
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, dtype=self.dtype))
            self.register_buffer("running_var", np.ones(C, dtype=self.dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _check_input(self, x):
        want = self._spatial + 2
        if x.ndim != want or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expects input with "
                             f"{want} dimensions (N, {self.num_features}, ...) or {want - 1} "
                             f"(unbatched), got shape {x.shape}")

    def _update_running_stats(self, mean, rstd, S):
        # instance variances from rstd = 1 / sqrt(var + eps), in float64
        var = np.maximum(1.0 / np.square(rstd.astype(np.float64)) - self.eps, 0.0) * (S / (S - 1))
        batch_mean = mean.astype(np.float64).mean(axis=0)
        batch_var = var.mean(axis=0)
        finite = np.isfinite(batch_mean) & np.isfinite(batch_var)
        m = self.momentum
        np.copyto(self.running_mean, (1 - m) * self.running_mean.astype(np.float64) + m * batch_mean,
                  casting="unsafe", where=finite)
        np.copyto(self.running_var, (1 - m) * self.running_var.astype(np.float64) + m * batch_var,
                  casting="unsafe", where=finite)
        if not finite.all():
            warnings.warn(f"{type(self).__name__}: statistics of {int((~finite).sum())} channel(s) "
                          "are not finite; their running estimates were not updated",
                          RuntimeWarning, stacklevel=3)

    def forward(self, x):
        name = type(self).__name__
        x = _input(self, x, "x")
        unbatched = x.ndim == self._spatial + 1
        if unbatched:
            x = x[np.newaxis]
        self._check_input(x)
        N, C = x.shape[:2]
        S = math.prod(x.shape[2:])
        weight = _data(self.weight)
        bias = _data(self.bias)
        use_input_stats = self.training or not self.track_running_stats
        if use_input_stats:
            if S == 1:
                raise ValueError(f"{name}: expected more than 1 spatial element when normalizing "
                                 f"with the input's statistics, got input size {x.shape}")
            y, mean, rstd = F.group_norm(x, C, weight, bias, self.eps)
            if (self.training and self.track_running_stats and self.momentum is not None
                    and N * S > 0):
                self._update_running_stats(mean, rstd, S)
            self._ctx = (unbatched, x, mean, rstd, True)
        else:  # every instance normalized with the running estimates, as batch norm in eval
            x3 = x.reshape(N, C, S)
            y, mean, rstd = F.batch_norm(x3, self.running_mean, self.running_var, weight, bias,
                                         training=False, eps=self.eps)
            y = y.reshape(x.shape)
            self._ctx = (unbatched, x, mean, rstd, False)
        return y[0] if unbatched else y

    def backward(self, dy):
        ((unbatched, x, mean, rstd, use_input_stats),) = self._cached("_ctx")
        name = type(self).__name__
        dy = _input(self, dy, "dy")
        if unbatched:
            dy = dy[np.newaxis]
        if dy.shape != x.shape:
            raise ValueError(f"{name}.backward: dy has shape {dy.shape[unbatched:]}, "
                             f"expected {x.shape[unbatched:]}")
        weight = _data(self.weight)
        if use_input_stats:
            dx, _, _ = F.group_norm_backward(dy, x, mean, rstd, weight, **_affine_grads(self))
        else:
            N, C = x.shape[:2]
            x3 = x.reshape(N, C, math.prod(x.shape[2:]))
            dx, _, _ = F.batch_norm_backward(dy.reshape(x3.shape), x3, mean, rstd, weight,
                                             training=False, **_affine_grads(self))
            dx = dx.reshape(x.shape)
        return dx[0] if unbatched else dx

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) or unbatched (C, L) input over L."""

    _spatial = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) or unbatched (C, H, W) input over H, W."""

    _spatial = 2


# Layers whose parameters are scales and shifts of normalized values: weight decay does not
# regularize them (normreg.optim.param_groups leaves them out, whatever their shape).
_NORMALIZATION_LAYERS = (LayerNorm, _BatchNorm, RMSNorm, GroupNorm)


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale
    the rest by ``1 / (1 - p)``; in evaluation, the identity. Masks come from
    ``generator`` (default: normreg's default generator, see ``normreg.manual_seed``).

    ``p_is_keep_prob=True`` (cs231n's convention, see :mod:`normreg.conventions`) reads
    ``p`` as the probability of *keeping* a unit: drop with ``1 - p``, scale kept units
    by ``1 / p``. ``drop_prob`` is the drop probability either way.
    """

    def __init__(self, p=0.5, generator=None, *, p_is_keep_prob=None, convention=None):
        super().__init__()
        self.p = F._probability(p)
        self.p_is_keep_prob = bool(conventions.resolve(convention, "dropout_p_is_keep_prob",
                                                       p_is_keep_prob))
        self.generator = None if generator is None else F._generator(generator)

    @property
    def drop_prob(self):
        return 1.0 - self.p if self.p_is_keep_prob else self.p

    def forward(self, x):
        drop_prob = self.drop_prob
        y, mask = F.dropout(x, drop_prob, self.training, generator=self.generator)
        self._ctx = (mask, np.shape(y), drop_prob)  # mask is None when nothing was dropped
        return y

    def backward(self, dy):
        ((mask, shape, drop_prob),) = self._cached("_ctx")
        dy = F._as_float_array(dy, "dy")
        if dy.shape != shape:
            raise ValueError(f"Dropout.backward: dy has shape {np.shape(dy)}, expected {shape}")
        return F.dropout_backward(dy, mask, drop_prob)

    def extra_repr(self):
        return f"p={self.p}" + (", p_is_keep_prob=True" if self.p_is_keep_prob else "")


class Sequential(Module):
    """Modules applied in order; ``backward`` runs their backwards in reverse."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential argument {i} is not a Module: {type(m).__name__}")
        self._layers = list(modules)

    def named_children(self):
        for i, m in enumerate(self._layers):
            yield str(i), m

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"can only append a Module, not {type(module).__name__}")
        self._layers.append(module)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
        return self._layers[index]

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)

    def forward(self, x):
        for m in self._layers:
            x = m(x)
        return x

    def backward(self, dy):
        for m in reversed(self._layers):
            dy = m.backward(dy)
        return dy


class Residual(Module):
    """``y = fn(x) + x``."""

    def __init__(self, fn):
        super().__init__()
        if not isinstance(fn, Module):
            raise TypeError(f"Residual needs a Module, got {type(fn).__name__}")
        self.fn = fn

    def forward(self, x):
        y = self.fn(x)
        if np.shape(y) != np.shape(x):
            raise ValueError(f"Residual: fn changed the shape from {np.shape(x)} to {np.shape(y)}")
        self._ctx = True
        return y + x

    def backward(self, dy):
        self._cached("_ctx")
        return self.fn.backward(dy) + dy


class Flatten(Module):
    """Flatten dimensions ``start_dim`` to the last: (N, *rest) -> (N, prod(rest))."""

    def __init__(self, start_dim=1):
        super().__init__()
        if isinstance(start_dim, bool) or not isinstance(start_dim, (int, np.integer)):
            raise TypeError(f"start_dim must be an int, got {type(start_dim).__name__}")
        self.start_dim = int(start_dim)

    def forward(self, x):
        x = np.asarray(x)
        if not 0 <= self.start_dim <= max(x.ndim - 1, 0):
            raise ValueError(f"Flatten(start_dim={self.start_dim}) needs input with more dimensions, got {x.shape}")
        self._ctx = x.shape
        return x.reshape(x.shape[:self.start_dim] + (-1,))

    def backward(self, dy):
        (shape,) = self._cached("_ctx")
        dy = np.asarray(dy)
        if dy.size != math.prod(shape):
            raise ValueError(f"Flatten.backward: dy of shape {dy.shape} does not match input {shape}")
        return dy.reshape(shape)


class Identity(Module):
    """``y = x``."""

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


class SoftmaxLoss(Module):
    """Mean softmax cross-entropy: ``loss = fn(logits, labels)``, ``dlogits = fn.backward()``.

    logits (B, K) float, labels (B,) integers in [0, K). The loss is a Python float.
    """

    def forward(self, logits, labels):
        logits = F._logits(logits)
        labels = F._labels(labels, logits.shape[0])
        loss, lse = F.cross_entropy(logits, labels)
        self._ctx = (logits, labels, lse)
        return loss

    def backward(self, dloss=1.0):
        ((logits, labels, lse),) = self._cached("_ctx")
        return F.cross_entropy_backward(logits, labels, lse, dloss)


CrossEntropyLoss = SoftmaxLoss


# ---- L2 regularization ------------------------------------------------------------------

__all__ += ["l2_penalty"]


def l2_penalty(params, lam):
    """The L2 penalty ``lam / 2 * sum ||W||²`` over ``params``, returned as a float; its
    gradient ``lam * W`` is **added** into each parameter's ``.grad`` (call it after
    ``backward``, before the optimizer step). With plain SGD this gives the same
    trajectory as ``SGD(..., weight_decay=lam)``: ``W := (1 - lr*lam) W - lr * grad``.

    ``params``: an iterable of Parameters (e.g. ``model.parameters()``, or only the
    weight matrices to leave biases and normalization weights undecayed).
    """
    if isinstance(lam, (bool, np.bool_)) or not isinstance(lam, (int, float, np.integer, np.floating)):
        raise TypeError(f"lam must be a real number, got {type(lam).__name__}")
    lam = float(lam)
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if isinstance(params, Parameter):
        params = [params]
    params = list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"params[{i}] must be a Parameter, got {type(p).__name__}")
    total = 0.0
    for p in params:
        flat = p.data.reshape(-1)
        total += float(np.dot(flat, flat))
        if lam != 0:
            p.grad += p.data.dtype.type(lam) * p.data
    return 0.5 * lam * total


# ---- convolution and pooling (NCHW) ---------------------------------------------------------

__all__ += ["Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Unflatten"]


class Conv2d(Module):
    """2-d convolution (PyTorch's ``nn.Conv2d``, without groups and dilation) of
    (N, C, H, W) input, or unbatched (C, H, W).

    ``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
    dtype=np.float32, generator=None)``: kernel_size, stride and padding an int or a pair;
    weight (out_channels, in_channels, kH, kW) (PyTorch's layout), bias (out_channels,).
    ``y[n, o] = bias[o] + sum_c weight[o, c] (cross-correlated with) x[n, c]`` with zero
    padding; see :func:`normreg.functional.conv2d`.

    Initialized as PyTorch does (:meth:`reset_parameters`).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype=np.float32, generator=None):
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.kernel_size = F._pair(kernel_size, "kernel_size", 1)
        self.stride = F._pair(stride, "stride", 1)
        self.padding = F._pair(padding, "padding", 0)
        self.dtype = dt = _float_dtype(dtype)
        self.weight = Parameter(np.empty((self.out_channels, self.in_channels) + self.kernel_size,
                                         dtype=dt))
        self.bias = Parameter(np.empty(self.out_channels, dtype=dt)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        """PyTorch's default: ``kaiming_uniform_(weight, a=sqrt(5))`` with PyTorch's fan_in
        ``in_channels * kH * kW``, i.e. U(-b, b) with ``b = gain * sqrt(3 / fan_in) =
        1/sqrt(fan_in)`` (gain = sqrt(2 / (1 + 5))), and the bias from U(-b, b) with the same
        b. (The fan is given explicitly: ``init``'s fans read a weight as normreg's Linear
        layout (in, out, ...), the transpose of this one.) Draws from ``generator``."""
        from . import init  # init imports this module
        F._generator(generator)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = init.calculate_gain("leaky_relu", math.sqrt(5)) * math.sqrt(3.0 / fan_in)
        init.uniform_(self.weight, -bound, bound, generator=generator)
        if self.bias is not None:
            init.uniform_(self.bias, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in),
                          generator=generator)

    def forward(self, x):
        x = _input(self, x, "x")
        y = F.conv2d(x, self.weight.data, _data(self.bias), self.stride, self.padding)
        self._ctx = x
        return y

    def backward(self, dy):
        (x,) = self._cached("_ctx")
        dy = _input(self, dy, "dy")
        dx, _, _ = F.conv2d_backward(dy, x, self.weight.data, self.stride, self.padding,
                                     has_bias=self.bias is not None, dweight=self.weight.grad,
                                     dbias=_grad(self.bias))
        return dx

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s


class MaxPool2d(Module):
    """Max pooling of (N, C, H, W) or (C, H, W) input (PyTorch's ``nn.MaxPool2d``):
    ``MaxPool2d(kernel_size, stride=None, padding=0)``, each an int or a pair; stride
    defaults to kernel_size; padding at most half the kernel (padded positions never win).
    The gradient goes to each window's maximum (the first one in row-major order on a tie,
    as PyTorch's CPU kernel)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        F._pool_args(kernel_size, stride, padding)  # checked now, not at the first call
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x):
        y, idx = F.max_pool2d(x, self.kernel_size, self.stride, self.padding)
        self._ctx = (idx, np.shape(x))
        return y

    def backward(self, dy):
        ((idx, shape),) = self._cached("_ctx")
        return F.max_pool2d_backward(dy, idx, shape)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling of (N, C, H, W) or (C, H, W) input (PyTorch's ``nn.AvgPool2d``):
    ``AvgPool2d(kernel_size, stride=None, padding=0, count_include_pad=True)``; each window
    is divided by ``kH * kW`` (the zero padding counts) or, with
    ``count_include_pad=False``, by its number of positions inside the image."""

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__()
        F._pool_args(kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        y = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)
        self._ctx = np.shape(x)
        return y

    def backward(self, dy):
        (shape,) = self._cached("_ctx")
        return F.avg_pool2d_backward(dy, shape, self.kernel_size, self.stride, self.padding,
                                     self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Adaptive average pooling to ``output_size`` (PyTorch's ``nn.AdaptiveAvgPool2d``): an
    int or a pair (None keeps that input size); ``AdaptiveAvgPool2d(1)`` is global average
    pooling, (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self, output_size):
        super().__init__()
        if isinstance(output_size, (tuple, list)):
            if len(output_size) != 2:
                raise ValueError(f"output_size must be an int or a pair, got {output_size!r}")
            for v in output_size:
                if v is not None:
                    F._int_arg(v, "output_size", 1)
            output_size = tuple(output_size)
        else:
            F._int_arg(output_size, "output_size", 1)
        self.output_size = output_size

    def forward(self, x):
        y = F.adaptive_avg_pool2d(x, self.output_size)
        self._ctx = np.shape(x)
        return y

    def backward(self, dy):
        (shape,) = self._cached("_ctx")
        return F.adaptive_avg_pool2d_backward(dy, shape)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Unflatten(Module):
    """Expand dimension ``dim`` into ``unflattened_size`` (PyTorch's ``nn.Unflatten``), e.g.
    ``Unflatten(1, (1, 28, 28))``: (N, 784) -> (N, 1, 28, 28)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        if not isinstance(unflattened_size, (tuple, list)) or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
                for d in unflattened_size):
            raise TypeError(f"unflattened_size must be a tuple of positive ints, got {unflattened_size!r}")
        self.dim, self.unflattened_size = int(dim), tuple(int(d) for d in unflattened_size)

    def forward(self, x):
        x = np.asarray(x)
        d = self.dim if self.dim >= 0 else self.dim + x.ndim
        if not 0 <= d < x.ndim or x.shape[d] != math.prod(self.unflattened_size):
            raise ValueError(f"Unflatten({self.dim}, {self.unflattened_size}) does not fit input of shape {x.shape}")
        self._ctx = x.shape
        return x.reshape(x.shape[:d] + self.unflattened_size + x.shape[d + 1:])

    def backward(self, dy):
        (shape,) = self._cached("_ctx")
        dy = np.asarray(dy)
        if dy.size != math.prod(shape):
            raise ValueError(f"Unflatten.backward: dy of shape {dy.shape} does not match input {shape}")
        return dy.reshape(shape)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


# ``normreg.nn.utils`` (clip_grad_norm_, ...), importable as a submodule as in PyTorch.
from . import _nn_utils as utils  # noqa: E402
import sys as _sys  # noqa: E402

_sys.modules[__name__ + ".utils"] = utils
