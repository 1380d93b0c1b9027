"""The hostile arguments of the fuzz cases (fuzz_cases.py): objects whose own methods raise,
None, bools, huge and negative ints, NaN/Inf, strings, ragged lists, wrong dtypes and every
memory layout, arrays of mismatched shapes; and ``f32`` (with ``norm_backward_args`` and
``optimizer_args``), the float32 arrays of the valid calls the cases start from.
"""

import numpy as np


class HostileError(Exception):
    """Raised by the hostile objects' own methods; it may propagate unchanged."""


class RaisesOnArray:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("__array__ refuses")


class RaisesOnArrayInterface:
    @property
    def __array_interface__(self):
        raise RuntimeError("__array_interface__ refuses")


class BadSequence:
    """A sequence whose own methods raise (so does ``bool()`` of it)."""

    def __len__(self):
        raise HostileError("__len__ refuses")

    def __getitem__(self, i):
        raise HostileError("__getitem__ refuses")


class BadNumber:
    """Looks like a number to nobody: __bool__, __float__, __index__ raise."""

    def __bool__(self):
        raise HostileError("__bool__")

    def __float__(self):
        raise HostileError("__float__")

    def __index__(self):
        raise HostileError("__index__")


def _unaligned(shape, dtype=np.float32):
    n = int(np.prod(shape))
    buf = bytearray(n * np.dtype(dtype).itemsize + 1)
    return np.frombuffer(buf, dtype=dtype, count=n, offset=1).reshape(shape)


def _readonly(shape):
    a = np.ones(shape, np.float32)
    a.flags.writeable = False
    return a


def hostile_values(with_huge_views=True):
    """(label, factory) pairs: factories so every case gets fresh objects."""
    vals = [
        ("None", lambda: None),
        ("True", lambda: True),
        ("0", lambda: 0),
        ("-1", lambda: -1),
        ("2**31", lambda: 2**31),
        ("2**63", lambda: 2**63),
        ("-2**63-1", lambda: -(2**63) - 1),
        ("2**64", lambda: 2**64),
        ("10**30", lambda: 10**30),
        ("nan", lambda: float("nan")),
        ("inf", lambda: float("inf")),
        ("-inf", lambda: float("-inf")),
        ("1e308", lambda: 1e308),
        ("-0.5", lambda: -0.5),
        ("str", lambda: "x"),
        ("bytes", lambda: b"x"),
        ("list", lambda: [1.0, 2.0]),
        ("ragged", lambda: [[1.0], [2.0, 3.0]]),
        ("dict", lambda: {}),
        ("object", lambda: object()),
        ("raises_array", RaisesOnArray),
        ("raises_array_interface", RaisesOnArrayInterface),
        ("bad_sequence", BadSequence),
        ("bad_number", BadNumber),
        ("tuple_huge", lambda: (2**62, 2**62)),
        ("tuple_negative", lambda: (-3,)),
        ("f32 (4,)", lambda: np.ones(4, np.float32)),
        ("f64 (4,)", lambda: np.ones(4)),
        ("f32 (2,3)", lambda: np.ones((2, 3), np.float32)),
        ("f64 (4,3)", lambda: np.ones((4, 3))),
        ("f32 (4,3,2)", lambda: np.ones((4, 3, 2), np.float32)),
        ("f32 0-d", lambda: np.array(1.0, np.float32)),
        ("f32 (0,)", lambda: np.ones(0, np.float32)),
        ("f32 (0,3)", lambda: np.ones((0, 3), np.float32)),
        ("f32 (4,0)", lambda: np.ones((4, 0), np.float32)),
        ("f16", lambda: np.ones(4, np.float16)),
        ("i32", lambda: np.ones(4, np.int32)),
        ("i64 (4,)", lambda: np.zeros(4, np.int64)),
        ("u8", lambda: np.ones(4, np.uint8)),
        ("c64", lambda: np.ones(4, np.complex64)),
        ("bool", lambda: np.ones(4, bool)),
        ("object array", lambda: np.array([1.0, None], dtype=object)),
        ("datetime", lambda: np.zeros(4, "M8[s]")),
        ("structured", lambda: np.zeros(4, "f4,f4")),
        ("f32 strided", lambda: np.ones(8, np.float32)[::2]),
        ("f32 negative strides", lambda: np.ones((4, 3), np.float32)[::-1]),
        ("f32 F-order", lambda: np.ones((3, 4), np.float32, order="F")),
        ("f32 read-only", lambda: _readonly((4, 3))),
        ("f32 unaligned", lambda: _unaligned((4, 3))),
        ("f32 byteswapped", lambda: np.ones((4, 3), ">f4")),
        ("f32 NaN (4,3)", lambda: np.full((4, 3), np.nan, np.float32)),
        ("f32 Inf (4,3)", lambda: np.full((4, 3), np.inf, np.float32)),
        (
            "f32 mixed NaN/Inf/-Inf (4,3,2)",
            lambda: np.array([np.nan, np.inf, -np.inf, 0.0] * 6, np.float32).reshape(4, 3, 2),
        ),
        ("f64 NaN (4,3)", lambda: np.full((4, 3), np.nan)),
        ("f32 masked", lambda: np.ma.array(np.ones((4, 3), np.float32))),
        ("f32 huge zero-size", lambda: np.empty((2**40, 0, 2**20), np.float32)),
        ("f32 huge zero-size 2-D", lambda: np.empty((2**40, 0), np.float32)),
        ("f32 huge-columns zero-size", lambda: np.empty((0, 2**40), np.float32)),
    ]
    if with_huge_views:
        # zero-stride views of 2**62 elements: copying them cannot succeed
        vals.append(("f32 huge broadcast", lambda: np.broadcast_to(np.float32(1), (2**31, 2**31))))
    return vals


def shape_variants(template):
    """Arrays of the template's dtype in other shapes, to mismatch the others."""
    dt = template.dtype
    shapes = [
        (),
        (0,),
        (1,),
        (5,),
        (4, 4),
        (3, 4),
        (2, 3, 4),
        (4, 3, 1),
        (4, 3, 0),
        (0, 3),
        (4, 0),
        (1, 1, 1),
        (4, 3, 2, 1),
    ]
    return [
        (f"{dt} {s}", (lambda s=s: np.ones(s, dt) if dt != np.int64 else np.zeros(s, dt))) for s in shapes
    ]


def f32(*shape):
    return np.random.default_rng(sum(shape) + 1).standard_normal(shape).astype(np.float32)


def norm_backward_args(x_shape, stats_shape, channels, grads=0):
    """The leading arrays of a valid normalization backward call, as the binding and the
    functional API both take them: dy, x, the saved mean, the saved rstd (ones) and the
    weight; then ``grads`` zeroed gradient buffers of the weight's shape (dweight, dbias)."""
    arrays = (
        f32(*x_shape),
        f32(*x_shape),
        f32(*stats_shape),
        np.ones(stats_shape, np.float32),
        f32(channels),
    )
    return arrays + tuple(np.zeros(channels, np.float32) for _ in range(grads))


def optimizer_args(shape, states):
    """The arrays of a valid optimizer step: the parameter, its gradient and ``states``
    zeroed state buffers (SGD: the momentum buffer; Adam: both moments and their maximum)."""
    return (f32(*shape), f32(*shape)) + tuple(np.zeros(shape, np.float32) for _ in range(states))
