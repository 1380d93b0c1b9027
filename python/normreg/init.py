"""Weight initialization, as ``torch.nn.init`` defines it, in place on a Parameter or ndarray.

Every function fills its argument in place (a :class:`~normreg.nn.Parameter`'s ``.data``
or a writeable float ndarray) and returns it. Random draws come from ``generator``
(default: normreg's default generator), one fresh NumPy generator per call
(:meth:`normreg.Generator.numpy`), so ``normreg.manual_seed(s)`` makes them reproducible.

**Fans.** normreg stores a Linear weight as ``(in_features, out_features)`` (``y = x @ W``),
the transpose of PyTorch's, so for an array of shape ``(a, b, *k)``:
``fan_in = a * prod(k)`` and ``fan_out = b * prod(k)``, i.e. for 2-D ``fan_in = shape[0]``,
``fan_out = shape[1]``, and further dimensions count as a receptive field multiplying both
(PyTorch's rule with the first two dimensions in normreg's order). Fans are not defined for
fewer than two dimensions (``ValueError``), as in PyTorch.

* ``xavier_uniform_``: U(-a, a), ``a = gain * sqrt(6 / (fan_in + fan_out))``;
  ``xavier_normal_``: N(0, std²), ``std = gain * sqrt(2 / (fan_in + fan_out))``.
* ``kaiming_uniform_``: U(-b, b), ``b = gain * sqrt(3 / fan)``; ``kaiming_normal_``:
  N(0, std²), ``std = gain / sqrt(fan)``; ``fan`` is ``fan_in`` (``mode='fan_in'``,
  default) or ``fan_out``; ``gain = calculate_gain(nonlinearity, a)``.
"""
import math
import numbers
import warnings

import numpy as np

from .nn import Parameter
from .random import default_generator

__all__ = ["calculate_gain", "calculate_fan_in_and_fan_out", "uniform_", "normal_", "constant_",
           "zeros_", "ones_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_"]


def _target(tensor, name="tensor"):
    """The ndarray to write: a Parameter's data or a writeable float ndarray."""
    arr = tensor.data if isinstance(tensor, Parameter) else tensor
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a normreg.nn.Parameter or a numpy.ndarray, "
                        f"got {type(tensor).__name__}")
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must have a floating dtype, got {arr.dtype}")
    if not arr.flags.writeable:
        raise ValueError(f"{name} is filled in place and must be writeable")
    return arr


def _rng(generator):
    gen = default_generator if generator is None else generator
    if not hasattr(gen, "numpy"):
        raise TypeError(f"generator must be a normreg.Generator or None, got {type(generator).__name__}")
    return gen.numpy()


def _real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return value


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table): 1 for linear, conv*d and
    sigmoid; 5/3 for tanh; sqrt(2) for relu; sqrt(2 / (1 + slope²)) for leaky_relu
    (``param`` = negative slope, default 0.01); 3/4 for selu."""
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (bool, np.bool_)) or not isinstance(param, numbers.Real):
            raise ValueError(f"negative_slope {param} not a valid number")
        else:
            slope = float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out)`` of an array ``(in, out, *receptive_field)`` (see the module doc)."""
    shape = np.shape(tensor.data if isinstance(tensor, Parameter) else tensor)
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than "
                         f"2 dimensions (got shape {shape})")
    receptive = math.prod(shape[2:])
    return shape[0] * receptive, shape[1] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with draws from U(a, b)."""
    arr = _target(tensor)
    a, b = _real(a, "a"), _real(b, "b")
    if a > b:
        raise ValueError(f"uniform_ expects a <= b, got a={a} > b={b}")
    if arr.size:
        arr[...] = _rng(generator).uniform(a, b, arr.shape)
    return tensor


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with draws from N(mean, std²)."""
    arr = _target(tensor)
    mean, std = _real(mean, "mean"), _real(std, "std")
    if std < 0:
        raise ValueError(f"normal_ expects std >= 0, got {std}")
    if arr.size:
        arr[...] = _rng(generator).normal(mean, std, arr.shape)
    return tensor


def constant_(tensor, val):
    """Fill with ``val``."""
    _target(tensor)[...] = _real(val, "val")
    return tensor


def zeros_(tensor):
    """Fill with 0."""
    _target(tensor)[...] = 0
    return tensor


def ones_(tensor):
    """Fill with 1."""
    _target(tensor)[...] = 1
    return tensor


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: U(-a, a), ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    _target(tensor)
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = _real(gain, "gain") * math.sqrt(2.0 / float(fan_in + fan_out)) if fan_in + fan_out else 0.0
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: N(0, std²), ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    _target(tensor)
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = _real(gain, "gain") * math.sqrt(2.0 / float(fan_in + fan_out)) if fan_in + fan_out else 0.0
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    arr = _target(tensor)
    fan = _fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    if arr.size == 0:
        return None
    return gain / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: U(-b, b), ``b = gain * sqrt(3 / fan)``, ``gain = calculate_gain(nonlinearity, a)``.

    ``a``: the negative slope of the rectifier after this layer (leaky_relu only);
    ``mode``: ``'fan_in'`` keeps the forward variance, ``'fan_out'`` the backward one.
    On an empty array it warns and does nothing, as PyTorch.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        warnings.warn("Initializing zero-element tensors is a no-op")
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: N(0, std²), ``std = gain / sqrt(fan)`` (arguments as :func:`kaiming_uniform_`)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        warnings.warn("Initializing zero-element tensors is a no-op")
        return tensor
    return normal_(tensor, 0.0, std, generator)
