"""The model registry: a name -> :class:`ModelEntry` table filled by :func:`register`.

The model modules (``gcn``, ``gat``, ``mlp``, ``cnn``, ``text``) import :func:`register`
from here and :mod:`hgcnet_jax.models` imports them, so the registry is full once the
package is imported and the import graph has no cycle.
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
    return tuple(sorted(_REGISTRY))

