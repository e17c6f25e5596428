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

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn

__all__ = ["ModelEntry", "register", "get", "entry", "available"]

_KINDS = ("node", "image", "text", "tabular")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    Attributes:
        name: the registry name.
        factory: builds the flax module from keyword arguments.
        kinds: the dataset kinds (``"node"``, ``"image"``, ``"text"``, ``"tabular"``) it accepts.
        prepare: for graph models, ``prepare(graph) -> inputs`` run once per dataset.
    """

    name: str
    factory: Callable[..., nn.Module]
    kinds: tuple[str, ...]
    prepare: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"ModelEntry.name must be a non-empty string, got {self.name!r}")
        bad = [k for k in self.kinds if k not in _KINDS]
        if not self.kinds or bad:
            raise ValueError(f"ModelEntry.kinds must be a non-empty subset of {_KINDS}, got {self.kinds!r}")


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, *, kinds: tuple[str, ...], prepare: Callable[[Any], Any] | None = None):
    """Class/function decorator that adds a model factory to the registry.

    Args:
        name: registry name; re-registering an existing name raises.
        kinds: dataset kinds the model accepts.
        prepare: optional one-off input preparation (graph models).

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def deco(factory):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name=name, factory=factory, kinds=tuple(kinds), prepare=prepare)
        return factory

    return deco


def entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` registered under ``name``.

    Raises:
        KeyError: naming the available models when ``name`` is unknown.
    """
    _load_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def get(name: str, **kwargs: Any) -> nn.Module:
    """Build the flax module registered under ``name`` with ``kwargs``.

    Raises:
        KeyError: when ``name`` is unknown.
        TypeError: when a keyword is not a field of the model.
    """
    e = entry(name)
    try:
        return e.factory(**kwargs)
    except TypeError as err:
        raise TypeError(f"models.get({name!r}, ...): {err}") from None


def available() -> tuple[str, ...]:
    """Names of all registered models."""
    _load_builtin()
    return tuple(sorted(_REGISTRY))


def _load_builtin() -> None:
    # Importing the modules runs their @register decorators (once: Python caches imports).
    from hgcnet_jax.models import cnn, gat, gcn, mlp, text  # noqa: F401
