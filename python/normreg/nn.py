"""Modules with explicit forward and backward.

A :class:`Module` keeps in ``forward`` what its ``backward`` needs. ``backward(dy)``
returns the gradient with respect to the input and **adds** the parameter gradients
into each :class:`Parameter`'s ``.grad`` (they accumulate until ``zero_grad()``, as in
PyTorch). Layers take the names and arguments of their PyTorch counterparts; a
:class:`Linear` weight is stored as (in_features, out_features), so ``y = x @ W + b``.
"""
import collections
import math

import numpy as np

from . import functional as F

__all__ = [
    "Parameter", "Module", "Linear", "ReLU", "LayerNorm", "BatchNorm1d", "Dropout",
    "Sequential", "Residual", "Flatten", "Identity", "SoftmaxLoss", "CrossEntropyLoss",
]

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
        y = F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)
        self._ctx = x
        return y

    def backward(self, dy):
        (x,) = self._cached("_ctx")
        dy = F._as_float_array(dy, "dy", self.weight.dtype, "the dtype of Linear's parameters")
        dx, _, _ = F.linear_backward(
            dy, x, self.weight.data, has_bias=self.bias is not None, dweight=self.weight.grad,
            dbias=None if self.bias is None else self.bias.grad)
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
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=self.dtype))
            self.bias = Parameter(np.zeros(self.normalized_shape, dtype=self.dtype)) if bias else None
        else:
            self.weight = None
            self.bias = None

    def forward(self, x):
        x = F._as_float_array(x, "x", self.dtype, "the dtype of LayerNorm's parameters")
        y, mean, rstd = F.layer_norm(
            x, self.normalized_shape, None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data, self.eps)
        self._ctx = (x, mean, rstd)
        return y

    def backward(self, dy):
        ((x, mean, rstd),) = self._cached("_ctx")
        dy = F._as_float_array(dy, "dy", self.dtype, "the dtype of LayerNorm's parameters")
        dx, _, _ = F.layer_norm_backward(
            dy, x, mean, rstd, None if self.weight is None else self.weight.data,
            has_bias=self.bias is not None,
            dweight=None if self.weight is None else self.weight.grad,
            dbias=None if self.bias is None else self.bias.grad)
        return dx

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class BatchNorm1d(Module):
    """Batch normalization of (N, C) or (N, C, L) input per channel C.

    In training: normalizes with the batch mean and biased variance and updates
    ``running_mean``/``running_var`` as ``(1 - momentum) * running + momentum * stat``
    (running_var with the unbiased variance; ``momentum=None`` takes the cumulative
    average over ``num_batches_tracked``). In evaluation: normalizes with the running
    estimates (or with batch statistics if ``track_running_stats=False``).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features")
        self.eps = F._eps(eps)
        if momentum is not None:
            momentum = F._real(momentum, "momentum")
            if not 0.0 <= momentum <= 1.0:
                raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.dtype = _float_dtype(dtype)
        C = self.num_features
        self.weight = Parameter(np.ones(C, dtype=self.dtype)) if self.affine else None
        self.bias = Parameter(np.zeros(C, dtype=self.dtype)) if self.affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, dtype=self.dtype))
            self.register_buffer("running_var", np.ones(C, dtype=self.dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def forward(self, x):
        x = F._as_float_array(x, "x", self.dtype, "the dtype of BatchNorm1d's parameters")
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d({self.num_features}) expects input (N, {self.num_features}) "
                             f"or (N, {self.num_features}, L), got shape {x.shape}")
        use_batch_stats = self.training or not self.track_running_stats
        update = self.training and self.track_running_stats and x.shape[0] > 0
        momentum = 0.0
        if update:
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked + 1)
            else:
                momentum = self.momentum
        y, save_mean, save_rstd = F.batch_norm(
            x, self.running_mean if update or not use_batch_stats else None,
            self.running_var if update or not use_batch_stats else None,
            None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data,
            training=use_batch_stats, momentum=momentum, eps=self.eps)
        if update:
            self.num_batches_tracked += 1
        self._ctx = (x, save_mean, save_rstd, use_batch_stats)
        return y

    def backward(self, dy):
        ((x, save_mean, save_rstd, use_batch_stats),) = self._cached("_ctx")
        dy = F._as_float_array(dy, "dy", self.dtype, "the dtype of BatchNorm1d's parameters")
        dx, _, _ = F.batch_norm_backward(
            dy, x, save_mean, save_rstd, None if self.weight is None else self.weight.data,
            training=use_batch_stats, has_bias=self.bias is not None,
            dweight=None if self.weight is None else self.weight.grad,
            dbias=None if self.bias is None else self.bias.grad)
        return dx

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale
    the rest by ``1 / (1 - p)``; in evaluation, the identity. Masks come from
    ``generator`` (default: normreg's default generator, see ``normreg.manual_seed``)."""

    def __init__(self, p=0.5, generator=None):
        super().__init__()
        self.p = F._probability(p)
        self.generator = None if generator is None else F._generator(generator)

    def forward(self, x):
        y, mask = F.dropout(x, self.p, self.training, generator=self.generator)
        self._ctx = (mask, np.shape(y))  # mask is None when nothing was dropped
        return y

    def backward(self, dy):
        ((mask, shape),) = self._cached("_ctx")
        if np.shape(dy) != shape:
            raise ValueError(f"Dropout.backward: dy has shape {np.shape(dy)}, expected {shape}")
        return F.dropout_backward(dy, mask, self.p)

    def extra_repr(self):
        return f"p={self.p}"


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
