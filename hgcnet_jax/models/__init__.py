"""Model zoo: flax modules used functionally, looked up by name.

Every model is a ``flax.linen`` module whose variables are plain pytrees, so a
leading replica axis of ``params`` can be ``jax.vmap``-ed over without any
per-step Python dispatch. The registry maps a name to a :class:`ModelEntry`,
which records the kinds of dataset the model accepts and, for graph models, a
``prepare`` function that turns a dataset's graph into the model's input once
(self-loops, normalisation, a sparse view of the features) outside the replica
axis.

Example:
    >>> from hgcnet_jax import models
    >>> module = models.get("gcn", num_classes=7)
    >>> sorted(models.available())[:3]
    ['alexnet', 'gat', 'gcn']

Calling convention, for every model: ``module.apply(variables, inputs, train=...,
rngs={"dropout": key})`` returns logits of shape ``(n, num_classes)``. For graph
models ``inputs`` is the prepared ``jraph.GraphsTuple`` and ``n`` is the number
of nodes; for the others ``inputs`` is a batch of examples.
"""

from hgcnet_jax.models.registry import ModelEntry, available, entry, get, register

# The built-in models: importing their modules runs their @register decorators.
from hgcnet_jax.models import cnn, gat, gcn, mlp, text  # noqa: E402, F401  (isort: skip)

__all__ = ["ModelEntry", "register", "get", "entry", "available"]
