import jax
import jax.numpy as jnp
import jraph
import numpy as np

from hgcnet_jax import _compat


def _padded_graph():
    g = jraph.GraphsTuple(
        nodes=jnp.ones((3, 2)),
        edges=jnp.ones((2, 1)),
        senders=jnp.array([0, 1]),
        receivers=jnp.array([1, 2]),
        n_node=jnp.array([3]),
        n_edge=jnp.array([2]),
        globals=jnp.ones((1, 1)),
    )
    return jraph.pad_with_graphs(g, n_node=5, n_edge=4, n_graph=2)


def test_shim_is_still_needed():
    # When this fails, jraph no longer calls jax.tree_map: delete hgcnet_jax/_compat.py's shim.
    assert not hasattr(jax, "tree_map")
    assert _compat.jraph_needs_tree_map_shim()


def test_zero_out_padding_works_with_shim():
    _compat.install_jraph_shim()
    padded = _padded_graph()
    padded = padded._replace(nodes=jnp.asarray(padded.nodes).at[3:].set(7.0))
    out = jraph.zero_out_padding(padded)
    np.testing.assert_array_equal(np.asarray(out.nodes[:3]), 1.0)
    np.testing.assert_array_equal(np.asarray(out.nodes[3:]), 0.0)
    # the global jax namespace is left alone
    assert not hasattr(jax, "tree_map")
