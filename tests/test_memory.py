"""Memory of parameters: Parameter keeps the array it is given, ``.grad`` is None until a
backward, initializers draw in place, construction peaks at about the weight's own bytes,
and a weight that cannot fit is a MemoryError naming its size (in a child process: never
an OOM kill)."""

import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
from helpers import set_grad

import normreg
from normreg import _memory, init, nn, optim
from normreg import distributed as dist

MiB = 1 << 20


def _child(code, timeout=300):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"child exited with {proc.returncode}: {proc.stderr[-2000:]}"
    return proc.stdout


_PEAK = """
    import numpy as np
    import normreg
    from normreg import init, nn

    def rss(field="VmRSS"):  # VmHWM: the peak; ru_maxrss would count the parent's at fork
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

    small = nn.Linear(8, 8)  # loads what a first construction loads (NumPy's random module...)
    init.kaiming_normal_(small.weight)
    init.xavier_uniform_(small.weight)
    base = rss()
    {make}
    peak = rss("VmHWM") - base
    print(peak / {nbytes})
"""


@pytest.mark.parametrize(
    "make, nbytes",
    [
        ("layer = nn.Linear(2**26, 1)", 2**28),  # the case: 256 MiB of weight
        ("layer = nn.Linear(2**12, 2**12, dtype=np.float64)", 2**27),
        (
            "p = nn.Parameter(np.empty((2**13, 2**11), np.float64)); init.kaiming_normal_(p); "
            "init.xavier_uniform_(p); init.normal_(p, 1.0, 2.0)",
            2**27,
        ),
    ],
    ids=["Linear(2**26, 1)", "Linear float64", "initializers in place"],
)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_construction_and_initialization_peak_at_the_weights_bytes(make, nbytes):
    ratio = float(_child(_PEAK.format(make=make, nbytes=nbytes)))
    # the weight itself, plus a little (the bias, the interpreter's own allocations);
    # it was 4x for Linear(2**26, 1): a copy, a zero gradient and a float64 draw
    assert ratio <= 1.1, f"peak resident memory {ratio:.2f}x the weight's bytes"


def test_a_weight_larger_than_the_machine_is_a_memory_error():
    out = _child(
        """
        import numpy as np
        from normreg import nn
        for dtype in (np.float32, np.float64):
            try:
                nn.Linear(300000, 300000, dtype=dtype)
            except MemoryError as exc:
                print(exc)
            else:
                print("constructed")
        """
    )
    lines = out.splitlines()
    assert lines[0].startswith(
        "Linear weight: an array of shape (300000, 300000) (float32) needs 360000000000 bytes"
    )
    assert "(335.3 GiB)" in lines[0]
    assert lines[1].startswith(
        "Linear weight: an array of shape (300000, 300000) (float64) needs 720000000000 bytes"
    )


def test_the_check_uses_the_memory_available(monkeypatch):
    monkeypatch.setattr(_memory, "available_bytes", lambda: 100 * MiB)
    with pytest.raises(
        MemoryError, match=r"Linear weight: .* needs 134217728 bytes \(128\.0 MiB\), more than"
    ):
        nn.Linear(2**13, 2**12)
    nn.Linear(2**10, 2**10)  # small arrays are not checked
    monkeypatch.setattr(_memory, "available_bytes", lambda: 1 << 30)
    assert nn.Linear(2**13, 2**12).weight.shape == (2**13, 2**12)
    with pytest.raises(MemoryError, match="LayerNorm"):
        nn.LayerNorm((2**15, 2**14))
    monkeypatch.setattr(_memory, "available_bytes", lambda: None)  # unknown: NumPy decides
    with pytest.raises(MemoryError, match="more than an address space holds"):
        nn.Linear(2**40, 2**40)


def test_available_bytes_reads_the_system():
    room = _memory.available_bytes()
    if sys.platform.startswith("linux"):
        assert room is not None and room > 0
    assert _memory.format_bytes(3 << 30) == "3221225472 bytes (3.0 GiB)"


# ---- Parameter and .grad -----------------------------------------------------------------


def test_grad_is_none_until_a_backward_then_accumulates_in_place():
    l = nn.Linear(3, 2, dtype=np.float64)
    assert l.weight.grad is None and l.bias.grad is None
    x, dy = np.ones((4, 3)), np.ones((4, 2))
    l(x)
    l.backward(dy)
    held = l.weight.grad
    assert isinstance(held, np.ndarray) and held.shape == (3, 2) and held.dtype == np.float64
    l(x)
    l.backward(dy)
    assert l.weight.grad is held  # added into, not replaced
    np.testing.assert_array_equal(held, 2 * x.T @ dy)


def test_optimizers_and_clipping_skip_parameters_without_a_gradient():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    set_grad(a, 10.0)
    for opt in (optim.SGD([a, b], lr=0.1, weight_decay=0.5), optim.AdamW([a, b], lr=0.1)):
        opt.step()
        np.testing.assert_array_equal(b.data, 1.0)  # no step, no weight decay
        assert b not in opt.state and b.grad is None
    assert nn.utils.clip_grad_norm_([a, b], 1.0) == pytest.approx(np.sqrt(300))
    nn.utils.clip_grad_value_([a, b], 0.01)
    assert b.grad is None


def test_gradient_reducer_keeps_a_missing_gradient_missing():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    set_grad(a, 1.5)
    dist.GradientReducer([a, b], dist.LocalComm()).allreduce(scale=2.0)
    np.testing.assert_array_equal(a.grad, 3.0)
    assert b.grad is None


# ---- initializers draw in place -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "fill",
    [
        lambda t: init.uniform_(t, -2.0, 3.0),
        lambda t: init.normal_(t, 1.0, 0.5),
        init.kaiming_uniform_,
        init.kaiming_normal_,
        init.xavier_uniform_,
        init.xavier_normal_,
    ],
    ids=["uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_"],
)
def test_initializers_allocate_nothing_of_the_arrays_size(fill, dtype):
    p = nn.Parameter(np.zeros((1024, 512), dtype))
    data = p.data
    tracemalloc.start()
    try:
        fill(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert p.data is data and p.data.dtype == dtype
    assert peak < data.nbytes / 8, f"{peak} bytes allocated to fill {data.nbytes}"
    assert np.unique(data).size > data.size // 2  # filled with draws


def test_uniform_stays_within_its_bounds_and_layouts_agree():
    normreg.manual_seed(5)
    x = np.empty((400, 500), np.float32)
    init.uniform_(x, -1 / 3, 1 / 3)
    assert float(x.min()) >= -1 / 3 and float(x.max()) <= 1 / 3
    # a Fortran-ordered array gets the same values as a C-ordered one from the same draw
    normreg.manual_seed(5)
    f = np.asfortranarray(np.empty((400, 500), np.float32))
    init.uniform_(f, -1 / 3, 1 / 3)
    np.testing.assert_array_equal(f, x)
