"""nn.LayerNorm's call on a small (32, 64) float32 input, where Python overhead dominates:
the previous forward (the binding called from the module, F.layer_norm when it raised)
against the current one (one path, functional.layer_norm_rows), alternating in one process.

    python benchmarks/layernorm_module.py [rounds]
"""

import sys
import timeit

import numpy as np

from normreg import _C, nn
from normreg import functional as F


class PreviousLayerNorm(nn.LayerNorm):
    """LayerNorm.forward as it was before functional.layer_norm_rows."""

    def forward(self, x):
        if type(x) is np.ndarray and x.ndim == 2 and x.dtype is self.dtype and x.shape[1] == self._row_size:
            w, b = self.weight, self.bias
            try:
                y, mean, rstd = _C.layer_norm_forward(
                    x, None if w is None else w.data, None if b is None else b.data, self.eps, None
                )
            except (TypeError, ValueError):
                pass
            else:
                self.save_for_backward(x, mean, rstd)
                return y
        x = self._input(x, "x")
        w, b = self.weight, self.bias
        w_data = None if w is None else w.data
        b_data = None if b is None else b.data
        y, mean, rstd = F.layer_norm(x, self.normalized_shape, w_data, b_data, self.eps)
        self.save_for_backward(x, mean, rstd)
        return y


def main(rounds=21):
    x = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)
    layers = {"previous": PreviousLayerNorm(64), "current": nn.LayerNorm(64)}
    np.testing.assert_array_equal(layers["previous"](x), layers["current"](x))
    times = {name: [] for name in layers}
    for _ in range(rounds):
        for name, layer in layers.items():
            best = min(timeit.repeat(lambda layer=layer: layer(x), number=2000, repeat=3))
            times[name].append(best / 2000 * 1e6)
    for t in times.values():
        t.sort()
    for name, t in times.items():
        print(f"{name:9s} min {t[0]:.3f} us  median {t[len(t) // 2]:.3f} us per call")
    mid = rounds // 2
    print(f"current / previous: {times['current'][mid] / times['previous'][mid]:.3f} (medians)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
