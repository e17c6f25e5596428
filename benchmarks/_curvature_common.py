"""Shared set-up of the curvature benchmarks: Fashion-MNIST images, an MLP in JAX and in torch.

The MLP is 784 → 128 → 10 with ReLU (101,770 parameters), on the first 2,048
Fashion-MNIST training images, mean cross-entropy. Weights are created in torch
(seeded), trained for a few Adam steps so the Hessian is that of a network that has
learned something, and copied to JAX exactly (torch ``Linear`` stores ``W`` as
``(out, in)``; we store ``(in, out)``).
"""

from __future__ import annotations

import gzip
import os
import statistics
import time
from pathlib import Path

import numpy as np

N_IMAGES = 2048


def data_dir() -> Path:
    env = os.environ.get("HGCNET_DATA_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return root / "fashion-mnist"


def _idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)


def fashion_mnist(n: int = N_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    d = data_dir()
    x = _idx(d / "train-images-idx3-ubyte.gz")[:n].reshape(n, -1).astype(np.float32) / 255.0
    y = _idx(d / "train-labels-idx1-ubyte.gz")[:n].astype(np.int64)
    return x, y


def torch_mlp(x: np.ndarray, y: np.ndarray, *, seed: int = 0, train_steps: int = 50):
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    crit = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(train_steps):
        opt.zero_grad()
        crit(model(xt), yt).backward()
        opt.step()
    return model, crit, (xt, yt)


def jax_params(model) -> dict:
    """Copy torch weights into our layout (W transposed to (in, out))."""
    import jax.numpy as jnp

    l1, l2 = model[0], model[2]
    t = lambda a: jnp.asarray(a.detach().numpy().copy())  # noqa: E731
    return {
        "dense1": {"kernel": t(l1.weight).T, "bias": t(l1.bias)},
        "dense2": {"kernel": t(l2.weight).T, "bias": t(l2.bias)},
    }


def make_loss(x, y):
    import jax
    import jax.numpy as jnp

    X, Y = jnp.asarray(x), jnp.asarray(y.astype(np.int32))

    def loss(p):
        h = jax.nn.relu(X @ p["dense1"]["kernel"] + p["dense1"]["bias"])
        logits = h @ p["dense2"]["kernel"] + p["dense2"]["bias"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), Y[:, None], axis=1))

    return loss


def timeit(fn, *, repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` (which must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times
