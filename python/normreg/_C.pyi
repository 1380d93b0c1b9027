"""Type stub of the C extension ``normreg._C`` (csrc/): the kernels' bindings.

Arrays are NumPy arrays of the documented shapes, C-contiguous and aligned; float arrays
of one call share one dtype, float32 or float64. The binding checks all of it and raises
TypeError or ValueError naming the argument. Call these through ``normreg.functional``,
which converts and checks arguments first.
"""

from typing import Any

import numpy as np
from numpy.typing import NDArray

_Array = NDArray[Any]
_F64 = NDArray[np.float64]

# ---- settings and memory ------------------------------------------------------------------

def set_num_threads(n: int, /) -> None: ...
def get_num_threads() -> int: ...
def empty_cache() -> None: ...
def pool_stats() -> tuple[int, int, int, int]: ...

# ---- dense, activation, loss ----------------------------------------------------------------

def linear_forward(
    x: _Array, weight: _Array, bias: _Array | None, out: _Array | None, /
) -> _Array: ...
def linear_backward(
    dy: _Array,
    x: _Array,
    weight: _Array,
    dx_out: _Array | None,
    dweight: _Array,
    dbias: _Array | None,
    need_dx: bool,
    /,
) -> _Array | None: ...
def relu_forward(x: _Array, out: _Array | None, /) -> _Array: ...
def relu_backward(dy: _Array, y: _Array, out: _Array | None, /) -> _Array: ...
def cross_entropy_forward(logits: _Array, labels: NDArray[np.int64], /) -> tuple[float, _Array]: ...
def cross_entropy_backward(
    logits: _Array,
    labels: NDArray[np.int64],
    lse: _Array,
    dloss: float,
    out: _Array | None,
    /,
) -> _Array: ...

# ---- normalizations ---------------------------------------------------------------------------

def layer_norm_forward(
    x: _Array, weight: _Array | None, bias: _Array | None, eps: float, out: _Array | None, /
) -> tuple[_Array, _Array, _Array]: ...
def layer_norm_backward(
    dy: _Array,
    x: _Array,
    mean: _Array,
    rstd: _Array,
    weight: _Array | None,
    dweight: _Array | None,
    dbias: _Array | None,
    out: _Array | None,
    /,
) -> _Array: ...
def rms_norm_forward(
    x: _Array, weight: _Array | None, eps: float, out: _Array | None, /
) -> tuple[_Array, _Array]: ...
def rms_norm_backward(
    dy: _Array,
    x: _Array,
    rstd: _Array,
    weight: _Array | None,
    dweight: _Array | None,
    out: _Array | None,
    /,
) -> _Array: ...
def group_norm_forward(
    x: _Array,
    weight: _Array | None,
    bias: _Array | None,
    num_groups: int,
    eps: float,
    out: _Array | None,
    /,
) -> tuple[_Array, _Array, _Array]: ...
def group_norm_backward(
    dy: _Array,
    x: _Array,
    mean: _Array,
    rstd: _Array,
    weight: _Array | None,
    dweight: _Array | None,
    dbias: _Array | None,
    num_groups: int,
    out: _Array | None,
    /,
) -> _Array: ...
def batch_norm_forward(
    x: _Array,
    weight: _Array | None,
    bias: _Array | None,
    running_mean: _Array | None,
    running_var: _Array | None,
    training: bool,
    momentum: float,
    eps: float,
    out: _Array | None,
    /,
) -> tuple[_Array, _Array, _Array]: ...
def batch_norm_backward(
    dy: _Array,
    x: _Array,
    save_mean: _Array,
    save_rstd: _Array,
    weight: _Array | None,
    dweight: _Array | None,
    dbias: _Array | None,
    training: bool,
    out: _Array | None,
    /,
) -> _Array: ...
def sync_batch_norm_stats(x: _Array, /) -> _F64: ...
def sync_batch_norm_forward(
    x: _Array,
    mean: _Array,
    rstd: _Array,
    weight: _Array | None,
    bias: _Array | None,
    out: _Array | None,
    /,
) -> _Array: ...
def sync_batch_norm_grad_sums(dy: _Array, x: _Array, mean: _Array, rstd: _Array, /) -> _F64: ...
def sync_batch_norm_backward(
    dy: _Array,
    x: _Array,
    mean: _Array,
    rstd: _Array,
    weight: _Array | None,
    sums: _F64,
    count: float,
    out: _Array | None,
    /,
) -> _Array: ...

# ---- dropout and its generator ----------------------------------------------------------------

def dropout_forward(
    x: _Array, p: float, seed: int, offset: int, out: _Array | None, /
) -> tuple[_Array, NDArray[np.uint8]]: ...
def dropout_backward(
    dy: _Array, mask: NDArray[np.uint8], p: float, out: _Array | None, /
) -> _Array: ...
def philox4x32(
    c0: int, c1: int, c2: int, c3: int, k0: int, k1: int, /
) -> tuple[int, int, int, int]: ...

# ---- optimizer steps (in place) -----------------------------------------------------------------

def sgd_step(
    param: _Array,
    grad: _Array,
    momentum_buffer: _Array | None,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    first_step: bool,
    /,
) -> None: ...
def adam_step(
    param: _Array,
    grad: _Array,
    exp_avg: _Array,
    exp_avg_sq: _Array,
    max_exp_avg_sq: _Array | None,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    bias_correction1: float,
    bias_correction2: float,
    /,
) -> None: ...

# ---- benchmarks' private kernels ----------------------------------------------------------------

def copy_f32(dst: NDArray[np.float32], src: NDArray[np.float32], nthreads: int, /) -> None: ...
def layer_norm_kernel_time(
    x: _Array, weight: _Array | None, bias: _Array | None, reps: int, /
) -> float: ...
def sgemm(
    trans_a: bool,
    trans_b: bool,
    a: NDArray[np.float32],
    b: NDArray[np.float32],
    c: NDArray[np.float32],
    beta: float,
    /,
) -> None: ...
