"""The benchmark MLP's training step in JAX, compiled by XLA (``jax.jit``): the optional
column of the MLP section, like PyTorch's (``pip install jax jaxlib``; absent: skipped).

The same step as normreg's and PyTorch's: 784-1024-512-10, each hidden Linear followed by
BatchNorm1d (batch statistics, running estimates updated with momentum 0.1 and the unbiased
variance), ReLU and Dropout(0.2); mean softmax cross-entropy; SGD with momentum 0.9 and
weight decay 5e-4 (coupled, PyTorch's rule). Parameters, momentum buffers and running
estimates are donated to the compiled step, so XLA updates them in place as the others do.
XLA runs on its own thread pool (every core); the suite reports it at the largest thread
count of the run.
"""

import functools

LAYERS = (784, 1024, 512, 10)
LR, MOMENTUM, WEIGHT_DECAY, P_DROP, EPS, BN_MOMENTUM = 0.01, 0.9, 5e-4, 0.2, 1e-5, 0.1


def load_jax():
    """JAX if it is installed (CPU), else None."""
    try:
        import jax
    except ImportError:
        return None
    return jax


def step_fn(jax, x_np, y_np, seed=0):
    """A callable running one training step on (x, y) and waiting for its result."""
    jnp = jax.numpy
    key = jax.random.PRNGKey(seed)
    params, stats = [], []
    for i, (a, b) in enumerate(zip(LAYERS[:-1], LAYERS[1:])):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / a**0.5
        params += [
            jax.random.uniform(kw, (a, b), jnp.float32, -bound, bound),
            jax.random.uniform(kb, (b,), jnp.float32, -bound, bound),
        ]
        if i < len(LAYERS) - 2:
            params += [jnp.ones(b, jnp.float32), jnp.zeros(b, jnp.float32)]
            stats += [jnp.zeros(b, jnp.float32), jnp.ones(b, jnp.float32)]

    def loss_fn(params, stats, x, y, key):
        h, new_stats, n = x, [], x.shape[0]
        for i in range(len(LAYERS) - 2):
            w, b, gamma, beta = params[4 * i : 4 * i + 4]
            h = h @ w + b
            mean, var = h.mean(0), h.var(0)
            h = (h - mean) * jax.lax.rsqrt(var + EPS) * gamma + beta
            rm, rv = stats[2 * i], stats[2 * i + 1]
            new_stats += [
                (1 - BN_MOMENTUM) * rm + BN_MOMENTUM * mean,
                (1 - BN_MOMENTUM) * rv + BN_MOMENTUM * var * (n / (n - 1)),
            ]
            h = jnp.maximum(h, 0)
            key, sub = jax.random.split(key)
            keep = jax.random.bernoulli(sub, 1 - P_DROP, h.shape)
            h = jnp.where(keep, h / (1 - P_DROP), 0)
        logits = h @ params[-2] + params[-1]
        lse = jax.nn.logsumexp(logits, axis=1)
        loss = jnp.mean(lse - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0])
        return loss, [jax.lax.stop_gradient(s) for s in new_stats]

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def step(params, bufs, stats, x, y, key):
        key, sub = jax.random.split(key)
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, y, sub)
        bufs = [MOMENTUM * m + g + WEIGHT_DECAY * p for m, g, p in zip(bufs, grads, params)]
        params = [p - LR * m for p, m in zip(params, bufs)]
        return params, bufs, stats, key, loss

    state = [params, [jnp.zeros_like(p) for p in params], stats, key]
    x, y = jnp.asarray(x_np), jnp.asarray(y_np.astype("int32"))

    def run():
        params, bufs, stats, key, loss = step(*state[:3], x, y, state[3])
        state[:] = [params, bufs, stats, key]
        loss.block_until_ready()

    return run
