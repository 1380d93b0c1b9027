"""Checking gradients: ``gradcheck`` compares every backward with central differences.

normreg has no autograd: each layer's ``backward`` is written by hand, so each one can be
wrong. :func:`gradcheck` checks a Module (its input gradient and the gradient of every
Parameter) or a pair of functions against central finite differences in float64, the
way cs231n's checker and ``torch.autograd.gradcheck`` do::

    import numpy as np
    from normreg import nn
    from normreg.testing import gradcheck

    layer = nn.GroupNorm(2, 4, dtype=np.float64)
    x = 5 * np.random.default_rng(0).standard_normal((3, 4, 5)) + 12
    gradcheck(layer, x)                 # True, or GradcheckError with a report

Your own Module needs ``forward(x)`` (keeping what it needs with ``save_for_backward``)
and ``backward(dy)`` returning ``dx`` and *adding* into each ``Parameter.grad``; construct
it in float64. A model that calls a module several times (weight tying, a shared block)
is checked as a whole: each parameter's gradient is the sum over its uses. What is compared is the gradient
of ``sum(dy * forward(x))`` for a random upstream gradient ``dy`` (never ``sum(y)``,
whose gradient through a normalization is zero and hides bugs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _validation as V
from .grad_mode import enable_grad, no_grad
from .nn import Module
from .nn import Parameter as Parameter
from .random import Generator, default_generator

__all__ = ["gradcheck", "check_gradients", "GradcheckError", "GradcheckReport"]

# (input gradients, parameter gradients) of one analytic backward
_Grads = tuple[list[Any], list[np.ndarray]]


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees; ``.report`` holds
    the :class:`GradcheckReport`."""

    def __init__(self, report: GradcheckReport) -> None:
        super().__init__(str(report))
        self.report = report


class _Entry:
    __slots__ = ("name", "shape", "index", "analytic", "numeric", "abs_error", "ratio", "error")

    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name, self.shape = name, shape
        self.index: tuple[int, ...] | None = None
        self.analytic = self.numeric = self.abs_error = math.nan
        self.ratio = 0.0
        self.error: str | None = None


class GradcheckReport:
    """The outcome of a check: ``ok``, and per checked array (``entries``) the worst
    element (its index, analytic and numeric values, absolute error). ``str(report)`` is a
    readable table."""

    def __init__(self, entries: list[_Entry], atol: float, rtol: float, eps: float) -> None:
        self.entries, self.atol, self.rtol, self.eps = entries, atol, rtol, eps

    @property
    def ok(self) -> bool:
        return all(e.error is None and e.ratio <= 1.0 for e in self.entries)

    @property
    def worst(self) -> _Entry | None:
        """The entry with the largest error relative to its tolerance."""
        return max(self.entries, key=lambda e: (e.error is not None, e.ratio), default=None)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = (
            f"gradcheck {'passed' if self.ok else 'FAILED'}: |analytic - numeric| <= "
            f"atol + rtol * |numeric| with atol={self.atol:g}, rtol={self.rtol:g}, "
            f"central differences with eps={self.eps:g}"
        )
        lines = [head]
        for e in self.entries:
            if e.error is not None:
                lines.append(f"  {e.name} {e.shape}: {e.error}")
                continue
            if e.index is None:
                lines.append(f"  {e.name} {e.shape}: empty")
                continue
            mark = "ok  " if e.ratio <= 1.0 else "FAIL"
            lines.append(
                f"  {mark} {e.name} {e.shape}: worst at index {e.index}: analytic "
                f"{e.analytic:.10g}, numeric {e.numeric:.10g}, abs error {e.abs_error:.3g} "
                f"({e.ratio:.3g} x tolerance)"
            )
        return "\n".join(lines)

    __repr__ = __str__


def _as_f64(a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return a
    return np.array(a, dtype=np.float64, copy=True)


def _generators(module: Module) -> list[Generator]:
    """Every Generator a forward may draw from: the default one and the module's own."""
    gens = [default_generator]
    for m in module.modules():
        for value in vars(m).values():
            if isinstance(value, Generator) and all(value is not g for g in gens):
                gens.append(value)
    return gens


class _ModuleTarget:
    """Calls of a Module with its state (buffers, generators) restored before each one,
    so that every forward sees the same running statistics and the same dropout masks."""

    def __init__(self, module: Module) -> None:
        params = module.parameters()
        bad = [n for n, p in module.named_parameters() if p.dtype != np.float64]
        if bad:
            raise TypeError(
                f"gradcheck needs a float64 module (construct it with "
                f"dtype=np.float64); parameters {bad} are not float64"
            )
        self.module = module
        self.named = list(module.named_parameters())
        self.buffers = [(b, np.array(b, copy=True)) for _, b in module.named_buffers()]
        self.gens = [(g, g.get_state()) for g in _generators(module)]
        self.grads = [p.grad for p in params]  # the analytic backward makes fresh ones

    def restore_state(self) -> None:
        for b, saved in self.buffers:
            np.copyto(b, saved)
        for g, state in self.gens:
            g.set_state(state)

    def forward(self, inputs: Sequence[np.ndarray]) -> Any:
        self.restore_state()
        with no_grad():  # nothing kept: these forwards are never differentiated
            return self.module(*inputs)

    def analytic(self, inputs: Sequence[np.ndarray], dy: np.ndarray) -> _Grads:
        self.restore_state()
        for _, p in self.named:
            p.grad = None
        with enable_grad():  # one entry per call of each module (several for a shared one)
            self.module(*inputs)
        # a scalar output (a loss) takes its upstream gradient as a Python float
        dx = self.module.backward(float(dy) if dy.ndim == 0 else dy)
        dxs = dx if isinstance(dx, tuple) else (dx,)
        grads = [np.zeros_like(p.data) if p.grad is None else p.grad for _, p in self.named]
        return list(dxs), grads

    def params(self) -> list[tuple[str, np.ndarray]]:
        return [(f"parameter '{n}'", p.data) for n, p in self.named]

    def finish(self) -> None:
        self.restore_state()
        for (_, p), g in zip(self.named, self.grads):
            p.grad = g


class _FunctionTarget:
    def __init__(self, fn: Callable[..., Any], backward: Callable[..., Any] | None) -> None:
        if backward is None:
            raise TypeError(
                "gradcheck of a function needs backward=: a function "
                "backward(dy, *inputs) returning the gradient of each input"
            )
        self.fn, self.bwd = fn, backward

    def forward(self, inputs: Sequence[np.ndarray]) -> Any:
        return self.fn(*inputs)

    def analytic(self, inputs: Sequence[np.ndarray], dy: np.ndarray) -> _Grads:
        grads = self.bwd(dy, *inputs)
        return list(grads) if isinstance(grads, (tuple, list)) else [grads], []

    def params(self) -> list[tuple[str, np.ndarray]]:
        return []

    def finish(self) -> None:
        pass


def check_gradients(
    fn: Module | Callable[..., Any],
    inputs: Any,
    *,
    backward: Callable[..., Any] | None = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    dy: Any = None,
    check_inputs: bool = True,
) -> GradcheckReport:
    """Run the check and return a :class:`GradcheckReport` (never raises on a mismatch).

    Arguments as :func:`gradcheck`.
    """
    eps = V.real(eps, "eps", "gradcheck", low=0.0, low_open=True)
    atol = V.real(atol, "atol", "gradcheck", low=0.0)
    rtol = V.real(rtol, "rtol", "gradcheck", low=0.0)
    single = not isinstance(inputs, (tuple, list))
    inputs = [_as_f64(a) for a in ([inputs] if single else inputs)]
    target: _ModuleTarget | _FunctionTarget
    if isinstance(fn, Module):
        target = _ModuleTarget(fn)
    elif callable(fn):
        target = _FunctionTarget(fn, backward)
    else:
        raise TypeError(f"gradcheck needs a Module or a function, got {type(fn).__name__}")
    try:
        y = np.asarray(target.forward(inputs))
        if y.dtype != np.float64:
            raise TypeError(
                f"gradcheck: the forward returned dtype {y.dtype}, expected float64 (check in float64)"
            )
        if dy is None:
            dy = np.random.default_rng(seed).standard_normal(y.shape)
        dy = np.asarray(dy, dtype=np.float64)
        if dy.shape != y.shape:
            raise ValueError(f"dy has shape {dy.shape}, the output has {y.shape}")
        input_grads, param_grads = target.analytic(inputs, dy)

        def objective() -> float:
            return float(np.sum(dy * np.asarray(target.forward(inputs), dtype=np.float64)))

        entries = []
        checks = []
        if check_inputs:
            for i, a in enumerate(inputs):
                if a.dtype.kind != "f":
                    continue
                g = input_grads[i] if i < len(input_grads) else None
                checks.append((f"input {i}", a, g))
        for (name, data), g in zip(target.params(), param_grads):
            checks.append((name, data, g))
        for name, array, grad in checks:
            entry = _Entry(name, array.shape)
            entries.append(entry)
            if grad is None:
                entry.error = "backward returned no gradient for it"
                continue
            grad = np.asarray(grad)
            if grad.shape != array.shape:
                entry.error = f"analytic gradient has shape {grad.shape}, expected {array.shape}"
                continue
            numeric = np.zeros(array.shape)
            # each element perturbed in place through its index, restored after: any layout
            # (reshape(-1) of a Fortran-ordered or strided array is a copy, whose changes the
            # forward would never see)
            for idx in np.ndindex(array.shape):
                orig = array[idx]
                array[idx] = orig + eps
                fp = objective()
                array[idx] = orig - eps
                fm = objective()
                array[idx] = orig
                numeric[idx] = (fp - fm) / (2 * eps)
            if array.size == 0:
                continue
            diff = np.abs(grad.astype(np.float64) - numeric)
            tol = atol + rtol * np.abs(numeric)
            ratio = np.where(np.isfinite(diff), diff / tol, np.inf)
            k = int(np.argmax(ratio))
            idx = np.unravel_index(k, array.shape)
            entry.index = tuple(int(i) for i in idx)
            entry.analytic = float(grad.reshape(-1)[k])
            entry.numeric = float(numeric.reshape(-1)[k])
            entry.abs_error = float(diff.reshape(-1)[k])
            entry.ratio = float(ratio.reshape(-1)[k])
    finally:
        target.finish()
    return GradcheckReport(entries, atol, rtol, eps)


def gradcheck(
    fn: Module | Callable[..., Any], inputs: Any, *, raise_exception: bool = True, **options: Any
) -> bool:
    """Check analytic gradients against central finite differences in float64.

    ``options`` (keywords): ``backward=None, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, dy=None,
    check_inputs=True``, as :func:`check_gradients` takes them.

    fn: a :class:`~normreg.nn.Module` (float64; its ``backward(dy)`` gives the input
    gradient and adds into ``Parameter.grad``) or a function ``fn(*inputs) -> y``, in
    which case ``backward(dy, *inputs)`` must return the gradient of each input (a tuple,
    ``None`` for an input it does not differentiate; non-float inputs such as labels are
    passed through and not checked).

    inputs: an array or a tuple of arrays; float inputs are copied to float64.

    For a random upstream gradient ``dy`` (standard normal from ``seed``, or given), the
    gradient of ``sum(dy * fn(*inputs))`` with respect to every element of every float
    input and, for a Module, every parameter, is estimated as ``(f(a + eps) - f(a - eps))
    / (2 eps)`` and compared with the analytic one: an element passes when
    ``|analytic - numeric| <= atol + rtol * |numeric|``. A Module's buffers (running
    statistics) and random generators (dropout masks) are restored before every forward,
    and its parameters' ``.grad`` and buffers are as before when the check returns. The
    finite-difference forwards run under ``no_grad`` (they keep nothing); the analytic
    gradient comes from one forward and one backward, so a module called several times in
    the forward is checked with the sum of its uses.

    Returns True when every element passes. Otherwise raises :class:`GradcheckError`
    whose message reports, for each checked array, the worst element (index, analytic,
    numeric, absolute error), or returns False with ``raise_exception=False``, as
    ``torch.autograd.gradcheck``. Use :func:`check_gradients` for the report itself.
    """
    report = check_gradients(fn, inputs, **options)
    if report.ok:
        return True
    if raise_exception:
        raise GradcheckError(report)
    return False
