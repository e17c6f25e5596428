"""A contextual stochastic block model (CSBM): a seeded synthetic node-classification graph.

The CSBM (Deshpande et al. 2018, "Contextual stochastic block models"; used to
study GNNs by e.g. Baranwal et al. 2021) couples a stochastic block model with
Gaussian node features:

* labels: ``n`` nodes split as evenly as possible over ``C`` classes, in a seeded
  random order;
* edges: each unordered pair ``{i, j}`` is an edge independently, with
  probability ``p_in`` if ``y_i = y_j`` and ``p_out`` otherwise, where
  ``p_in = h * deg / (n/C - 1)`` and ``p_out = (1 - h) * deg / (n - n/C)``, so that
  a node has on average ``deg`` neighbours of which a fraction ``h`` (the edge
  homophily) share its class;
* features: ``x_i = mu_{y_i} + eps_i`` with ``eps_i ~ N(0, I_d)`` and class means
  ``mu_c = snr * u_c`` for orthonormal directions ``u_c`` (random unit vectors when
  ``C > d``); ``snr`` is the distance of a class mean from the origin in units of
  the noise's standard deviation.

Edges are drawn block by block: the number of edges of a block is
``Binomial(#pairs, p)`` and that many distinct pairs are chosen uniformly, which
is the same distribution as independent Bernoulli draws at ``O(#edges)`` cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hgcnet_jax.data.base import Dataset, _check_fractions, _check_seed, node_graph, sorted_unique, stratified_split

__all__ = ["make_csbm"]


def _int_arg(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _float_arg(name: str, value: object, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def _tri_decode(k: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair index ``k`` in ``[0, m(m-1)/2)`` -> ``(i, j)``, ``i < j``, in row-major order of the upper triangle."""
    k = k.astype(np.int64)
    # Row i starts at offset i*m - i*(i+1)/2; invert with the quadratic formula, then fix rounding.
    i = np.floor((2 * m - 1 - np.sqrt((2 * m - 1) ** 2 - 8 * k.astype(np.float64))) / 2).astype(np.int64)
    start = i * m - i * (i + 1) // 2
    i = np.where(start > k, i - 1, i)
    start = i * m - i * (i + 1) // 2
    nxt = (i + 1) * m - (i + 1) * (i + 2) // 2
    i = np.where(nxt <= k, i + 1, i)
    start = i * m - i * (i + 1) // 2
    j = k - start + i + 1
    return i, j


def _sample_pairs(rng: np.random.Generator, num_pairs: int, p: float) -> np.ndarray:
    if num_pairs == 0 or p <= 0:
        return np.zeros(0, np.int64)
    m = int(rng.binomial(num_pairs, min(p, 1.0)))
    return rng.choice(num_pairs, size=m, replace=False)


def make_csbm(
    *,
    num_nodes: int = 1000,
    num_classes: int = 2,
    num_features: int = 16,
    homophily: float = 0.8,
    avg_degree: float = 5.0,
    feature_snr: float = 2.0,
    seed: int = 0,
    split: str = "random",
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> Dataset:
    """Draw a contextual stochastic block model graph (see the module docstring).

    Args:
        num_nodes: Number of nodes ``n`` (>= 2 per class).
        num_classes: Number of classes ``C`` (>= 2).
        num_features: Feature dimension ``d``.
        homophily: Expected fraction ``h`` of a node's edges inside its class, in [0, 1].
        avg_degree: Expected degree ``deg`` (> 0); ``p_in`` and ``p_out`` must stay <= 1.
        feature_snr: Norm of each class mean in noise standard deviations (>= 0;
            0 = features carry no label information).
        seed: Seed of NumPy's generator; the same seed gives the same graph.
        split: ``"random"``: a seeded class-stratified split by ``fractions``.
        fractions: ``(train, val, test)`` fractions (default 60/20/20).

    Returns:
        A ``kind="node"`` :class:`Dataset`; ``meta`` holds the parameters, ``p_in``,
        ``p_out``, the class means and the realised ``edge_homophily`` and ``mean_degree``.

    Raises:
        ValueError: Naming the argument that is out of range.
    """
    n = _int_arg("num_nodes", num_nodes, 2)
    c = _int_arg("num_classes", num_classes, 2)
    d = _int_arg("num_features", num_features, 1)
    h = _float_arg("homophily", homophily, 0.0, 1.0)
    deg = _float_arg("avg_degree", avg_degree, 0.0, float(n - 1))
    if deg <= 0:
        raise ValueError(f"avg_degree must be > 0, got {avg_degree!r}")
    snr = _float_arg("feature_snr", feature_snr, 0.0, float("inf"))
    seed = _check_seed(seed)
    f = _check_fractions(fractions)
    if split != "random":
        raise ValueError(f"csbm: split must be 'random', got {split!r}")
    if n < 2 * c:
        raise ValueError(f"num_nodes must be at least 2 * num_classes = {2 * c}, got {n}")
    p_in = h * deg / (n / c - 1)
    p_out = (1 - h) * deg / (n - n / c)
    if p_in > 1 or p_out > 1:
        raise ValueError(
            f"avg_degree={deg} with homophily={h} needs edge probabilities p_in={p_in:.3g}, p_out={p_out:.3g} "
            "above 1: lower avg_degree or use more nodes"
        )

    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % c).astype(np.int32)
    members = [np.flatnonzero(y == k) for k in range(c)]

    send, recv = [], []
    for a in range(c):
        ma = members[a]
        k = _sample_pairs(rng, ma.size * (ma.size - 1) // 2, p_in)
        i, j = _tri_decode(k, ma.size)
        send.append(ma[i])
        recv.append(ma[j])
        for b in range(a + 1, c):
            mb = members[b]
            k = _sample_pairs(rng, ma.size * mb.size, p_out)
            send.append(ma[k // mb.size])
            recv.append(mb[k % mb.size])
    s = np.concatenate(send)
    r = np.concatenate(recv)
    codes = sorted_unique(np.concatenate([s * n + r, r * n + s]))
    senders = (codes // n).astype(np.int32)
    receivers = (codes % n).astype(np.int32)

    if c <= d:
        q, _ = np.linalg.qr(rng.standard_normal((d, c)))
        directions = q.T
    else:
        g = rng.standard_normal((c, d))
        directions = g / np.linalg.norm(g, axis=1, keepdims=True)
    means = (snr * directions).astype(np.float32)
    x = (means[y] + rng.standard_normal((n, d))).astype(np.float32)

    splits = stratified_split(y, f, seed=seed)
    graph = node_graph(x, senders, receivers)
    same = y[senders] == y[receivers]
    meta = {
        "split": split,
        "seed": seed,
        "fractions": f,
        "homophily": h,
        "avg_degree": deg,
        "feature_snr": snr,
        "p_in": p_in,
        "p_out": p_out,
        "class_means": means,
        "edge_homophily": float(same.mean()) if same.size else float("nan"),
        "mean_degree": senders.size / n,
        "licence": "synthetic",
    }
    return Dataset(name="csbm", kind="node", x=x, y=y, num_classes=c, splits=splits, graph=graph, meta=meta)
