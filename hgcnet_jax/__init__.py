"""hgcnet_jax: intervene on training, measure what happens inside, fit a causal hypergraph."""

__version__ = "0.1.0"
