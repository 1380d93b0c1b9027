"""Central finite differences in float64 for the gradient checks.

Checks the analytic gradients of a scalar ``L = sum(dy * f(inputs))`` with a random
upstream gradient ``dy`` (never ``sum(y)``, which hides errors orthogonal to ones).
"""
import numpy as np


def offset_randn(rng, shape, scale=5.0, shift=12.0):
    """float64 inputs with a large mean and spread: ``5 * randn + 12``."""
    return scale * rng.standard_normal(shape) + shift


def numerical_grad(f, arrays, dy, h=1e-6):
    """d sum(dy * f()) / d a for each array a in ``arrays`` (perturbed in place, restored).

    ``f`` is called with no argument and must read the arrays it depends on.
    """
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        flat, gflat = a.reshape(-1), g.reshape(-1)
        assert flat.base is a or flat is a or np.shares_memory(flat, a)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            fp = np.sum(dy * f())
            flat[i] = old - h
            fm = np.sum(dy * f())
            flat[i] = old
            gflat[i] = (fp - fm) / (2 * h)
        grads.append(g)
    return grads


def check_grads(f, arrays, analytic, dy, rtol=1e-5, atol=1e-6, h=1e-6):
    """Assert the analytic gradients match central differences of sum(dy * f())."""
    numeric = numerical_grad(f, arrays, dy, h)
    # rounding floor of a central difference: ~ machine eps * |L| / h (with margin)
    floor = 100 * np.finfo(np.float64).eps * float(np.sum(np.abs(dy * f()))) / h
    assert len(numeric) == len(analytic)
    for k, (num, ana) in enumerate(zip(numeric, analytic)):
        assert ana is not None, f"gradient {k} is missing"
        ana = np.asarray(ana)
        assert ana.shape == num.shape, f"gradient {k}: shape {ana.shape} vs {num.shape}"
        scale = max(np.abs(num).max(), 1e-12)
        np.testing.assert_allclose(ana, num, rtol=rtol, atol=max(atol * scale, floor),
                                   err_msg=f"gradient {k} disagrees with finite differences")
