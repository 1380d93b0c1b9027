"""Conv2d against its GEMM floor and PyTorch, and the CNN training step against PyTorch.

Conv2d (forward + backward: y, dx, dweight, dbias) for the layer shapes of
``normreg.models.CNN`` (3x3, padding 1; stages of 32, 64 and 128 channels on 28x28
Fashion-MNIST images) is timed next to:

* ``sgemm``: the three products of the same im2col matrices, each done as one OpenBLAS
  sgemm over the whole batch (``col`` (C 9, N OH OW), already built): ``y = w col``,
  ``dw += dy col^T``, ``dcol = w^T dy``. This is the floor of any im2col scheme: what is
  left is building ``col`` and scattering ``dcol`` back (and the per-sample split). With T
  threads the batch is split in T parts, each part's three products one single-threaded
  sgemm call on a thread of its own (as normreg's kernel splits the samples over its
  threads): OpenBLAS's own threads on one product run far slower than that on a machine
  whose cores other jobs also use (and on a quiet one they are no faster);
* ``torch``: ``torch.nn.functional.conv2d`` forward and backward (oneDNN on x86 CPUs).

The training step is the CNN's (``models.CNN(channels=(32, 64, 128), norm='batch')``, softmax
cross-entropy, SGD with Nesterov momentum 0.9, weight decay 5e-4 on the weights) on one batch,
against the same network and step in PyTorch.
"""

from concurrent.futures import ThreadPoolExecutor

import common
import kernels
import numpy as np

import normreg
from normreg import _C, optim
from normreg import functional as F
from normreg.models import CNN

CHANNELS = (32, 64, 128)
IMAGE = 28


def layer_shapes(channels=CHANNELS, image=IMAGE):
    """(C_in, C_out, H) of each convolution of the CNN: the image halves between stages."""
    shapes, c_in, h = [], 1, image
    for i, c in enumerate(channels):
        if i > 0:
            h //= 2
        shapes.append((c_in, c, h))
        c_in = c
    return shapes


class GemmFloor:
    """The three im2col products of a batch of B samples split in ``parts`` parts of whole
    samples, each part's products single-threaded sgemm calls on a thread of its own."""

    def __init__(self, w2, K, L, B, parts, rng):
        self.w2, self.parts = w2, parts
        Co = w2.shape[0]
        sizes = [B * (t + 1) // parts - B * t // parts for t in range(parts)]
        self.blocks = [
            (
                rng.standard_normal((K, n * L), dtype=np.float32),  # col
                np.empty((Co, n * L), np.float32),  # y
                rng.standard_normal((Co, n * L), dtype=np.float32),  # dy
                np.zeros((Co, K), np.float32),  # this part's dw
                np.empty((K, n * L), np.float32),  # dcol
            )
            for n in sizes
        ]
        self.pool = ThreadPoolExecutor(parts) if parts > 1 else None

    def _part(self, t):
        col, y, dy, gw, dcol = self.blocks[t]
        _C.sgemm(False, False, self.w2, col, y, 0.0)
        _C.sgemm(False, True, dy, col, gw, 1.0)
        _C.sgemm(True, False, self.w2, dy, dcol, 0.0)

    def __call__(self):
        if self.pool is None:
            self._part(0)
            return
        threads = normreg.get_num_threads()
        normreg.set_num_threads(1)  # each call single-threaded, as the kernel's per-thread products
        try:
            list(self.pool.map(self._part, range(self.parts)))
        finally:
            normreg.set_num_threads(threads)


def conv_cases(B, C, Co, H, rng, torch=None, threads=1):
    """The callables of one row: normreg, the sgemm floor and (optionally) PyTorch."""
    x = rng.standard_normal((B, C, H, H), dtype=np.float32)
    w = (rng.standard_normal((Co, C, 3, 3), dtype=np.float32) / np.sqrt(9 * C)).astype(np.float32)
    b = rng.standard_normal(Co, dtype=np.float32)
    dy = rng.standard_normal((B, Co, H, H), dtype=np.float32)
    gw, gb = np.zeros_like(w), np.zeros_like(b)
    K, L = 9 * C, H * H
    w2 = np.ascontiguousarray(w.reshape(Co, K))

    def nr():
        F.conv2d(x, w, b, 1, 1)
        F.conv2d_backward(dy, x, w, 1, 1, dweight=gw, dbias=gb)

    fns = {"normreg": nr, "sgemm": GemmFloor(w2, K, L, B, min(threads, B), rng)}
    if torch is not None:
        fns["torch"] = common.torch_layer_fwd_bwd(torch, torch.nn.Conv2d(C, Co, 3, padding=1), x, dy)
    return fns


def bench_conv(args, threads_list, out):
    torch = kernels.torch
    print(
        "\n## Conv2d 3x3 pad 1 forward+backward (y, dx, dweight, dbias) vs its sgemm floor "
        "and PyTorch (float32)\n"
    )
    print(
        f"{'batch':>6}{'C->O':>10}{'HxW':>7}{'thr':>4}{'normreg':>10}{'sgemm':>10}{'nr/sgemm':>9}"
        f"{'GFLOP/s':>8}{'torch':>10}{'t/nr':>7}"
    )
    rng = np.random.default_rng(0)
    batches = (128,) if not args.quick else (8,)
    for B in batches:
        for C, Co, H in layer_shapes():
            flops = 3 * 2 * B * Co * 9 * C * H * H  # three products of the same size
            for threads in threads_list:
                fns = conv_cases(B, C, Co, H, rng, torch, threads)
                common.set_threads(threads)
                t = common.measure_run(fns, args, budget=2)
                row = {
                    "batch": B,
                    "in": C,
                    "out": Co,
                    "hw": H,
                    "threads": threads,
                    **t,
                    "flops": flops,
                    "ratio_sgemm": t["normreg"] / t["sgemm"],
                    "ratio_torch": common.ratio(t, "torch"),
                }
                out["conv"].append(row)
                print(
                    f"{B:>6}{f'{C}->{Co}':>10}{f'{H}x{H}':>7}{threads:>4}"
                    f"{common.fmt_time(t['normreg']):>10}{common.fmt_time(t['sgemm']):>10}"
                    f"{row['ratio_sgemm']:>8.2f}x{flops / t['normreg'] / 1e9:>8.1f}"
                    f"{common.fmt_time(t.get('torch')):>10}{common.fmt_ratio(row['ratio_torch']):>7}",
                    flush=True,
                )


# ---- the CNN training step ------------------------------------------------------------------


def make_batch(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, IMAGE * IMAGE), dtype=np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    return x, y


def normreg_cnn_step(batch, channels=CHANNELS):
    normreg.manual_seed(0)
    model = CNN(1, 10, channels=channels, norm="batch", input_shape=(1, IMAGE, IMAGE))
    opt = optim.SGD(optim.param_groups(model, 5e-4), lr=0.05, momentum=0.9, nesterov=True)
    return common.normreg_step(model, opt, *make_batch(batch))


def torch_cnn(torch, channels=CHANNELS):
    """The same network as ``models.CNN(norm='batch')`` in PyTorch."""
    tnn = torch.nn
    layers, c_in = [tnn.Unflatten(1, (1, IMAGE, IMAGE))], 1
    for i, c in enumerate(channels):
        if i > 0:
            layers.append(tnn.MaxPool2d(2))
        layers += [tnn.Conv2d(c_in, c, 3, padding=1, bias=False), tnn.BatchNorm2d(c), tnn.ReLU()]
        c_in = c
    layers += [tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(c_in, 10)]
    return tnn.Sequential(*layers)


def torch_cnn_step(torch, batch, channels=CHANNELS):
    torch.manual_seed(0)
    model = torch_cnn(torch, channels)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}],
        lr=0.05,
        momentum=0.9,
        nesterov=True,
    )
    return common.torch_step(torch, model, opt, *make_batch(batch))


def bench_cnn(args, threads_list, out):
    torch = kernels.torch
    print(
        f"\n## CNN training step: channels {CHANNELS}, BatchNorm2d, SGD Nesterov momentum 0.9, "
        "weight decay 5e-4, float32\n"
    )
    print(f"{'batch':>6}{'thr':>4}{'normreg':>10}{'torch':>10}{'t/nr':>7}{'images/s':>10}")
    batches = (128,) if not args.quick else (8,)
    for batch in batches:
        fns = {"normreg": normreg_cnn_step(batch)}
        if torch is not None:
            fns["torch"] = torch_cnn_step(torch, batch)
        for threads in threads_list:
            common.set_threads(threads)
            t = common.measure_run(fns, args, budget=3)
            row = {"batch": batch, "threads": threads, **t, "ratio_torch": common.ratio(t, "torch")}
            out["cnn"].append(row)
            print(
                f"{batch:>6}{threads:>4}{common.fmt_time(t['normreg']):>10}"
                f"{common.fmt_time(t.get('torch')):>10}{common.fmt_ratio(row['ratio_torch']):>7}"
                f"{batch / t['normreg']:>10.0f}",
                flush=True,
            )
