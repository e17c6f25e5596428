"""Model zoo: registry, shapes, and agreement of the graph models with dense references."""

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from hgcnet_jax import models
from hgcnet_jax.models._graph import to_sparse
from hgcnet_jax.models.gat import prepare_gat
from hgcnet_jax.models.gcn import prepare_gcn


def _graph(n=12, d=9, seed=0, density=0.3):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, d)) < density) * rng.random((n, d))
    x = x.astype(np.float32)
    a = np.triu(rng.random((n, n)) < 0.3, 1)
    a = a | a.T
    s, r = np.nonzero(a)
    g = jraph.GraphsTuple(
        nodes=x, edges=None, senders=s.astype(np.int32), receivers=r.astype(np.int32),
        n_node=np.array([n]), n_edge=np.array([len(s)]), globals=None,
    )
    return g, x, a.astype(np.float64)


def test_registry_lists_every_model_and_rejects_unknown_names():
    assert set(models.available()) >= {"gcn", "gat", "mlp", "lenet5", "alexnet", "resnet18", "transformer"}
    with pytest.raises(KeyError, match="available"):
        models.get("nope")
    with pytest.raises(TypeError, match="gcn"):
        models.get("gcn", num_classes=3, not_a_field=1)
    with pytest.raises(ValueError, match="already registered"):
        models.register("gcn", kinds=("node",))(object)


@pytest.mark.parametrize("sparse", [True, False])
def test_gcn_matches_dense_reference(sparse):
    g, x, a = _graph()
    n = x.shape[0]
    prepared = prepare_gcn(g, sparse=sparse)
    module = models.get("gcn", num_classes=4, hidden=5)
    params = module.init(jax.random.key(0), prepared)["params"]
    out = jax.jit(lambda p: module.apply({"params": p}, prepared))(params)
    a_hat = a + np.eye(n)
    dinv = 1 / np.sqrt(a_hat.sum(1))
    a_hat = dinv[:, None] * a_hat * dinv[None, :]
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), params)
    h = np.maximum(a_hat @ x @ p["conv0"]["kernel"] + p["conv0"]["bias"], 0)
    ref = a_hat @ h @ p["conv1"]["kernel"] + p["conv1"]["bias"]
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-5)


def test_sparse_dropout_equals_dense_dropout_on_the_nonzeros():
    g, x, _ = _graph(density=0.4)
    module = models.get("gcn", num_classes=3, hidden=4, dropout=0.5)
    sp, de = prepare_gcn(g, sparse=True), prepare_gcn(g, sparse=False)
    params = module.init(jax.random.key(0), sp)["params"]
    # Same key, different shapes of random draws: compare the distribution instead: the
    # mean over many dropout masks must approach the deterministic output (inverted dropout).
    keys = jax.random.split(jax.random.key(1), 4000)
    f = jax.jit(jax.vmap(lambda k: module.apply({"params": params}, sp, train=True, rngs={"dropout": k})))
    # First layer only: with hidden dropout the mean is not the eval output, so check layer 0.
    from hgcnet_jax.models.gcn import GCNConv

    conv = GCNConv(4)
    cp = {"params": params["conv0"]}
    drop_vals = jax.vmap(lambda k: jax.random.bernoulli(k, 0.5, sp.nodes.vals.shape) * sp.nodes.vals / 0.5)(keys)
    mean_sparse = jnp.mean(jax.vmap(lambda v: conv.apply(cp, sp.nodes, sp, v))(drop_vals), 0)
    np.testing.assert_allclose(mean_sparse, conv.apply(cp, de.nodes, de), atol=0.05)
    assert f(keys[:2]).shape == (2, x.shape[0], 3)


def _segment_softmax_dense(e, recv, n):
    out = np.zeros_like(e)
    for i in range(n):
        m = recv == i
        z = np.exp(e[m] - e[m].max(0))
        out[m] = z / z.sum(0)
    return out


def test_gat_matches_dense_reference():
    g, x, a = _graph(n=10, d=7)
    n = x.shape[0]
    prepared = prepare_gat(g, sparse=False)
    module = models.get("gat", num_classes=3, hidden=4, heads=2)
    params = module.init(jax.random.key(0), prepared)["params"]
    out = np.asarray(jax.jit(lambda p: module.apply({"params": p}, prepared))(params))
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), params)
    s = np.asarray(prepared.senders)
    r = np.asarray(prepared.receivers)

    def layer(h, q, heads, f, concat):
        z = (h @ q["kernel"]).reshape(n, heads, f)
        e = (z * q["att_src"]).sum(-1)[s] + (z * q["att_dst"]).sum(-1)[r]
        e = np.where(e > 0, e, 0.2 * e)
        alpha = _segment_softmax_dense(e, r, n)
        o = np.zeros((n, heads, f))
        np.add.at(o, r, z[s] * alpha[..., None])
        o = o.reshape(n, heads * f) if concat else o.mean(1)
        return o + q["bias"]

    h = layer(x.astype(np.float64), p["conv0"], 2, 4, True)
    h = np.where(h > 0, h, np.expm1(h))
    ref = layer(h, p["conv1"], 1, 3, False)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    # self-loops were added exactly once per node
    assert np.sum(s == r) == n
    # the sparse path gives the same logits
    sp = prepare_gat(g, sparse=True)
    np.testing.assert_allclose(np.asarray(module.apply({"params": params}, sp)), out, rtol=1e-5, atol=1e-6)


def test_to_sparse_roundtrip():
    x = np.array([[0, 1.5, 0], [2, 0, 0], [0, 0, 0]], np.float32)
    sp = to_sparse(x)
    np.testing.assert_array_equal(np.asarray(sp.todense()), x)
    assert sp.shape == (3, 3) and sp.vals.shape == (2,)
    with pytest.raises(ValueError, match="2-D"):
        to_sparse(np.zeros(3))


@pytest.mark.parametrize(
    "name,shape,kwargs",
    [
        ("mlp", (3, 8, 8, 1), {"hidden": (5, 4)}),
        ("lenet5", (3, 28, 28, 1), {}),
        ("alexnet", (3, 16, 16, 3), {"dense_width": 8}),
        pytest.param("resnet18", (3, 8, 8, 3), {"widths": (4, 4, 8, 8)}, marks=pytest.mark.slow),
    ],
)
def test_image_models_produce_logits(name, shape, kwargs):
    module = models.get(name, num_classes=5, **kwargs)
    x = jnp.ones(shape)
    variables = jax.jit(module.init)({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
    out = jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, x)
    assert out.shape == (3, 5) and np.all(np.isfinite(out))


@pytest.mark.slow
def test_resnet_batch_norm_is_vmap_safe():
    """Statistics are per replica: vmapped training apply equals applying each replica alone."""
    module = models.get("resnet18", num_classes=3, widths=(4, 4, 4, 4))
    x = jax.random.uniform(jax.random.key(0), (2, 6, 6, 3))
    vs = jax.jit(jax.vmap(lambda k: module.init(k, x)))(jax.random.split(jax.random.key(1), 3))
    xs = jax.random.uniform(jax.random.key(2), (3, 2, 6, 6, 3))

    def f(v, xb):
        return module.apply(v, xb, train=True, mutable=["batch_stats"])

    out_v, st_v = jax.jit(jax.vmap(f))(vs, xs)
    f = jax.jit(f)
    for i in range(3):
        out_i, st_i = f(jax.tree.map(lambda a: a[i], vs), xs[i])
        np.testing.assert_allclose(out_v[i], out_i, rtol=1e-3, atol=2e-4)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-3, atol=1e-5), st_v, st_i)
    assert "batch_stats" in vs and "batch_stats" not in vs["params"]


def test_transformer_ignores_padding():
    module = models.get("transformer", num_classes=2, vocab_size=20, max_len=10)
    toks = jnp.array([[3, 4, 5, 0, 0, 0], [7, 8, 0, 0, 0, 0]], jnp.int32)
    v = jax.jit(module.init)(jax.random.key(0), toks)
    apply = jax.jit(module.apply)
    a = apply(v, toks)
    b = apply(v, jnp.pad(toks, ((0, 0), (0, 4))))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert a.shape == (2, 2)
