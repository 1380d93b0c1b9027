"""Type stub of the C extension ``normreg._C`` (csrc/): the kernels' bindings.

Arrays are NumPy arrays of the documented shapes, C-contiguous and aligned; float arrays
of one call share one dtype, float32 or float64. The binding checks all of it and raises
TypeError or ValueError naming the argument. Call these through ``normreg.functional``,
which converts and checks arguments first.
"""

from typing import Any

import numpy as np
from numpy.typing import NDArray

_A = NDArray[Any]
_O = NDArray[Any] | None  # an optional array argument
_Ts = tuple[_A, ...]  # one array per parameter (the *_steps functions)
_Os = tuple[_O, ...]
_Fs = tuple[float, ...]
_F64 = NDArray[np.float64]

# ---- settings and memory ------------------------------------------------------------------

def set_num_threads(n: int, /) -> None: ...
def get_num_threads() -> int: ...
def empty_cache() -> None: ...
def pool_stats() -> tuple[int, int, int, int]: ...

# ---- build and CPU configuration (normreg.cpu_capability, normreg.show_config) ------------

def cpu_capability() -> str: ...
def cpu_tiers() -> dict[str, Any]: ...
def build_info() -> dict[str, Any]: ...
def blas_info() -> dict[str, Any]: ...

# ---- dense, activation, loss ----------------------------------------------------------------

def linear_forward(x: _A, weight: _A, bias: _O, out: _O, /) -> _A: ...
def linear_backward(
    dy: _A, x: _A, weight: _A, dx_out: _O, dweight: _A, dbias: _O, need_dx: bool, /
) -> _O: ...
def linear_grads(dy: _A, x: _A, weight: _A, has_bias: bool, need_dx: bool, /) -> tuple[_O, _A, _O]: ...
def relu_forward(x: _A, out: _O, /) -> _A: ...
def exp(x: _A, out: _O, /) -> _A: ...
def relu_backward(dy: _A, y: _A, out: _O, /) -> _A: ...
def cross_entropy_forward(logits: _A, labels: NDArray[np.int64], /) -> tuple[float, _A]: ...
def cross_entropy_backward(
    logits: _A, labels: NDArray[np.int64], lse: _A, dloss: float, out: _O, /
) -> _A: ...

# ---- normalizations ---------------------------------------------------------------------------

def layer_norm_forward(x: _A, weight: _O, bias: _O, eps: float, out: _O, /) -> tuple[_A, _A, _A]: ...
def layer_norm_backward(
    dy: _A, x: _A, mean: _A, rstd: _A, weight: _O, dweight: _O, dbias: _O, out: _O, /
) -> _A: ...
def rms_norm_forward(x: _A, weight: _O, eps: float, out: _O, /) -> tuple[_A, _A]: ...
def rms_norm_backward(dy: _A, x: _A, rstd: _A, weight: _O, dweight: _O, out: _O, /) -> _A: ...
def group_norm_forward(
    x: _A, weight: _O, bias: _O, num_groups: int, eps: float, out: _O, /
) -> tuple[_A, _A, _A]: ...
def group_norm_backward(
    dy: _A, x: _A, mean: _A, rstd: _A, weight: _O, dweight: _O, dbias: _O, num_groups: int, out: _O, /
) -> _A: ...
def batch_norm_forward(
    x: _A,
    weight: _O,
    bias: _O,
    running_mean: _O,
    running_var: _O,
    training: bool,
    momentum: float,
    eps: float,
    out: _O,
    /,
) -> tuple[_A, _A, _A]: ...
def batch_norm_backward(
    dy: _A,
    x: _A,
    save_mean: _A,
    save_rstd: _A,
    weight: _O,
    dweight: _O,
    dbias: _O,
    training: bool,
    out: _O,
    /,
) -> _A: ...
def sync_batch_norm_stats(x: _A, /) -> _F64: ...

# mean: the global mean, float64 for either dtype of x
def sync_batch_norm_forward(x: _A, mean: _F64, rstd: _A, weight: _O, bias: _O, out: _O, /) -> _A: ...
def sync_batch_norm_grad_sums(dy: _A, x: _A, mean: _F64, rstd: _A, /) -> _F64: ...
def sync_batch_norm_backward(
    dy: _A, x: _A, mean: _F64, rstd: _A, weight: _O, sums: _F64, count: float, out: _O, /
) -> _A: ...

# ---- dropout and its generator ----------------------------------------------------------------

def dropout_forward(x: _A, p: float, seed: int, offset: int, out: _O, /) -> tuple[_A, NDArray[np.uint8]]: ...
def dropout_backward(dy: _A, mask: NDArray[np.uint8], p: float, out: _O, /) -> _A: ...
def philox4x32(c0: int, c1: int, c2: int, c3: int, k0: int, k1: int, /) -> tuple[int, int, int, int]: ...

# ---- optimizer steps (in place) -----------------------------------------------------------------

def sgd_step(
    param: _A,
    grad: _A,
    momentum_buffer: _O,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    first_step: bool,
    /,
) -> None: ...
def adam_step(
    param: _A,
    grad: _A,
    exp_avg: _A,
    exp_avg_sq: _A,
    max_exp_avg_sq: _O,
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

# the steps of several parameters: per-parameter tuples, then the hyperparameters of all
def sgd_steps(
    params: _Ts, grads: _Ts, momentum_buffers: _Os, first_steps: tuple[bool, ...],
    lr: float, momentum: float, dampening: float, weight_decay: float, nesterov: bool, /,
) -> None: ...  # fmt: skip
def adam_steps(
    params: _Ts, grads: _Ts, exp_avgs: _Ts, exp_avg_sqs: _Ts, max_exp_avg_sqs: _Os,
    bias_corrections1: _Fs, bias_corrections2: _Fs,
    lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, decoupled: bool, /,
) -> None: ...  # fmt: skip

# ---- convolution and pooling (NCHW) ----------------------------------------------------------------

def conv2d_forward(
    x: _A, weight: _A, bias: _O, stride_h: int, stride_w: int, padding_h: int, padding_w: int, out: _O, /
) -> _A: ...
def conv2d_backward(
    dy: _A,
    x: _A,
    weight: _A,
    stride_h: int,
    stride_w: int,
    padding_h: int,
    padding_w: int,
    dweight: _O,
    dbias: _O,
    need_dx: bool,
    /,
) -> _O: ...
def max_pool2d_forward(
    x: _A,
    kernel_h: int,
    kernel_w: int,
    stride_h: int,
    stride_w: int,
    padding_h: int,
    padding_w: int,
    ceil_mode: bool,
    out: _O,
    /,
) -> tuple[_A, NDArray[np.int64]]: ...
def max_pool2d_backward(dy: _A, indices: NDArray[np.int64], input_h: int, input_w: int, out: _O, /) -> _A: ...
def avg_pool2d_forward(
    x: _A,
    kernel_h: int,
    kernel_w: int,
    stride_h: int,
    stride_w: int,
    padding_h: int,
    padding_w: int,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int,
    out: _O,
    /,
) -> _A: ...
def avg_pool2d_backward(
    dy: _A,
    input_h: int,
    input_w: int,
    kernel_h: int,
    kernel_w: int,
    stride_h: int,
    stride_w: int,
    padding_h: int,
    padding_w: int,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int,
    out: _O,
    /,
) -> _A: ...
def adaptive_avg_pool2d_forward(x: _A, output_h: int, output_w: int, out: _O, /) -> _A: ...
def adaptive_avg_pool2d_backward(dy: _A, input_h: int, input_w: int, out: _O, /) -> _A: ...

# ---- benchmarks' private kernels ----------------------------------------------------------------

def copy_f32(dst: NDArray[np.float32], src: NDArray[np.float32], nthreads: int, /) -> None: ...
def layer_norm_kernel_time(x: _A, weight: _O, bias: _O, reps: int, /) -> float: ...
def layer_norm_backward_kernel_time(dy: _A, x: _A, weight: _A, reps: int, /) -> float: ...
def sgemm(
    trans_a: bool,
    trans_b: bool,
    a: NDArray[np.float32],
    b: NDArray[np.float32],
    c: NDArray[np.float32],
    beta: float,
    /,
) -> None: ...
