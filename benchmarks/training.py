"""Optimizer updates and a whole MLP training step, normreg against PyTorch.

The model: 784-1024-512-10 with BatchNorm1d, ReLU and Dropout(0.2) after each hidden
Linear, softmax cross-entropy, SGD with momentum 0.9 and weight decay 5e-4.

Peak memory is measured in a separate process per framework (``--peak normreg|torch``):
after setup (imports, model, optimizer, data, one warm-up step) the process's resident-set
high-water mark is reset (``/proc/self/clear_refs``), a number of steps run, and the report
is the new high-water mark (``VmHWM``) minus the resident set before the steps: the memory
the training steps themselves need on top of the model and the data, C allocations
included (tracemalloc would see only Python's).
"""

import json
import os
import subprocess
import sys

import common
import kernels
import mlp_jax
import numpy as np

import normreg
from normreg import _C, nn, optim

LAYERS = (784, 1024, 512, 10)


def mlp(layers):
    """The benchmark MLP built from ``layers``, normreg.nn or torch.nn (the same names)."""
    mods = []
    for i, (a, b) in enumerate(zip(LAYERS[:-1], LAYERS[1:])):
        mods.append(layers.Linear(a, b))
        if i < len(LAYERS) - 2:
            mods += [layers.BatchNorm1d(b), layers.ReLU(), layers.Dropout(0.2)]
    return layers.Sequential(*mods)


def normreg_mlp(seed=0):
    normreg.manual_seed(seed)
    return mlp(nn)


def torch_mlp(torch):
    return mlp(torch.nn)


def make_data(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, LAYERS[0]), dtype=np.float32)
    y = rng.integers(0, LAYERS[-1], batch).astype(np.int64)
    return x, y


def normreg_step_fn(batch):
    model = normreg_mlp()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    # x is data: no gradient for it (torch's step computes none either)
    return common.normreg_step(model, opt, *make_data(batch), input_grad=False)


def torch_step_fn(torch, batch):
    model = torch_mlp(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return common.torch_step(torch, model, opt, *make_data(batch))


def gemm_floor_fn(batch, seed=0):
    """The matrix products of one training step, alone, as the step calls them: per Linear
    layer the forward ``x w``, ``dw = x^T dy`` and, except for the first layer (its input is
    data, whose gradient neither framework computes), ``dx = dy w^T``; through the same
    OpenBLAS with the same thread setting (``normreg._C.sgemm``). Each writes a fresh output
    (gemm's beta = 0), as the step's do: its gradients start from None after ``zero_grad``.
    (Accumulating ``dw += x^T dy`` into an existing array instead, beta = 1, skips the
    pass in which OpenBLAS zeroes its output first: about 0.2 ms less at batch 128 on the
    Emerald Rapids of BENCHMARKS.md, a floor the step cannot reach without an array that is
    already zero.) The step's time over this is what everything around the products costs (norms,
    activations, dropout, loss, optimizer, Python)."""
    rng = np.random.default_rng(seed)
    calls = []
    for i, (a, b) in enumerate(zip(LAYERS[:-1], LAYERS[1:])):
        x = rng.standard_normal((batch, a), dtype=np.float32)
        w = rng.standard_normal((a, b), dtype=np.float32)
        dy = rng.standard_normal((batch, b), dtype=np.float32)
        y, dx, dw = np.empty((batch, b), np.float32), np.empty_like(x), np.empty_like(w)
        calls += [(False, False, x, w, y, 0.0), (True, False, x, dy, dw, 0.0)]
        if i > 0:
            calls.append((False, True, dy, w, dx, 0.0))
    sgemm = _C.sgemm

    def floor():
        for c in calls:
            sgemm(*c)

    return floor


def bench_optim(args, threads_list, out):
    """One update of every parameter of the MLP: SGD (momentum, weight decay) and AdamW."""
    torch = kernels.torch
    print("\n## Optimizer step over the MLP's parameters (float32)\n")
    model = normreg_mlp()
    params = list(model.parameters())
    P = sum(p.size for p in params)
    rng = np.random.default_rng(0)
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(p.dtype)
    print(
        f"{'optimizer':<10}{'params':>10}{'thr':>4}{'normreg':>10}{'torch':>10}{'t/nr':>7}"
        f"{'bytes':>9}{'GB/s':>7}{'copyGB/s':>9}{'%roof':>7}"
    )
    for name in ("SGD", "AdamW"):
        if name == "SGD":
            opt = optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4)
            nbytes, arrays = 5 * 4 * P, 3  # reads p, g, buf; writes p, buf
        else:
            opt = optim.AdamW(params, lr=1e-3, weight_decay=1e-2)
            nbytes, arrays = 7 * 4 * P, 4  # reads p, g, m, v; writes p, m, v
        roof = common.Roofline.of_working_set(arrays * 4 * P)
        fns = {"normreg": opt.step, "copy": roof}
        if torch is not None:
            tparams = [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in params]
            for tp, p in zip(tparams, params):
                tp.grad = torch.from_numpy(p.grad.copy())
            if name == "SGD":
                topt = torch.optim.SGD(tparams, lr=1e-3, momentum=0.9, weight_decay=5e-4)
            else:
                topt = torch.optim.AdamW(tparams, lr=1e-3, weight_decay=1e-2)
            fns["torch"] = topt.step
        for threads in threads_list:
            common.set_threads(threads)
            roof.threads = threads
            t = common.measure_run(fns, args)
            row = {"optimizer": name, "params": P, "threads": threads, **t, **roof.columns(nbytes, t)}
            row["ratio_torch"] = common.ratio(t, "torch")
            out["optim"].append(row)
            fmt_time, fmt_ratio = common.fmt_time, common.fmt_ratio
            print(
                f"{name:<10}{P:>10}{threads:>4}{fmt_time(t['normreg']):>10}"
                f"{fmt_time(t.get('torch')):>10}{fmt_ratio(row['ratio_torch']):>7}"
                f"{common.fmt_bytes(nbytes):>9}{row['gbs']:>7.1f}{row['copy_gbs']:>9.1f}{row['roof_pct']:>6.0f}%"
            )


def peak_memory(framework, batch, steps, threads):
    """Runs this file in a fresh process and returns its peak-memory report (a dict)."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--peak",
        framework,
        str(batch),
        str(steps),
        str(threads),
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"peak-memory run failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _peak_main(framework, batch, steps, threads):
    normreg.set_num_threads(threads)
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        step = torch_step_fn(torch, batch)
    else:
        step = normreg_step_fn(batch)
    step()
    rss0 = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
        reset = True
    except OSError:
        reset = False
    for _ in range(steps):
        step()
    hwm = _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "framework": framework,
                "batch": batch,
                "rss_before_kib": rss0,
                "hwm_kib": hwm,
                "peak_extra_kib": hwm - rss0 if reset else None,
                "hwm_reset": reset,
            }
        )
    )


def bench_mlp(args, out):
    torch = kernels.torch
    print(
        "\n## MLP training step 784-1024-512-10 (BatchNorm1d, ReLU, Dropout 0.2, "
        "SGD momentum 0.9 weight decay 5e-4), float32\n"
    )
    jax = None if getattr(args, "no_jax", False) else mlp_jax.load_jax()
    print(
        f"{'batch':>6}{'thr':>4}{'normreg':>10}{'beside':>10}{'floor':>10}{'nr/fl':>7}{'optim':>9}{'torch':>10}"
        f"{'t/nr':>7}{'jax':>10}{'jax/nr':>7}{'nr peak+':>10}{'t peak+':>10}{'nr HWM':>10}{'t HWM':>10}"
    )
    batches = (128, 512) if not args.quick else (32,)
    threads_list = [int(t) for t in args.threads.split(",")]
    if args.quick:
        threads_list = threads_list[-1:]
    set_threads, fmt_time, fmt_ratio = common.set_threads, common.fmt_time, common.fmt_ratio
    for batch in batches:
        step = normreg_step_fn(batch)
        fns = {"normreg": step, "floor": gemm_floor_fn(batch), "optim": step.optimizer.step}
        if torch is not None:
            fns["torch"] = torch_step_fn(torch, batch)
        for threads in threads_list:
            set_threads(threads)
            # XLA keeps its own pool of every core: its column is at the run's largest count
            if jax is not None and threads == max(threads_list):
                fns["jax"] = mlp_jax.step_fn(jax, *make_data(batch))
            else:
                fns.pop("jax", None)
            # samples of several steps, each after an untimed one: a step that follows
            # another framework's finds normreg's OpenMP threads asleep, and on a KVM guest
            # getting them back took 0.4-0.7 ms (benchmarks/wake.py), which a training loop,
            # one step after another, does not pay
            # the step against its products in their phase (normreg_apart), in alternation
            t = common.measure_run(
                fns,
                args,
                budget=3,
                apart=("floor",),
                against="normreg",
                sample_time=None if args.quick else 0.025,
                lead_in=True,
            )
            steps = 3 if args.quick else 20
            mem = {"normreg": peak_memory("normreg", batch, steps, threads)}
            if torch is not None:
                mem["torch"] = peak_memory("torch", batch, steps, threads)
            row = {"batch": batch, "threads": threads, **t, "memory": mem}
            row["ratio_torch"] = common.ratio(t, "torch")
            row["ratio_jax"] = common.ratio(t, "jax")
            row["ratio_floor"] = t["normreg_apart"] / t["floor"]
            out["mlp"].append(row)

            def mib(m, key):
                return "-" if m is None or m.get(key) is None else f"{m[key] / 1024:.1f}M"

            print(
                f"{batch:>6}{threads:>4}{fmt_time(t['normreg']):>10}{fmt_time(t['normreg_apart']):>10}"
                f"{fmt_time(t['floor']):>10}"
                f"{row['ratio_floor']:>6.2f}x{fmt_time(t['optim']):>9}"
                f"{fmt_time(t.get('torch')):>10}{fmt_ratio(row['ratio_torch']):>7}"
                f"{fmt_time(t.get('jax')):>10}{fmt_ratio(row['ratio_jax']):>7}"
                f"{mib(mem['normreg'], 'peak_extra_kib'):>10}"
                f"{mib(mem.get('torch'), 'peak_extra_kib'):>10}"
                f"{mib(mem['normreg'], 'hwm_kib'):>10}{mib(mem.get('torch'), 'hwm_kib'):>10}"
            )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--peak":
        _peak_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit("usage: run through benchmarks/run.py (--sections optim,mlp)")
