"""A plain ``(init, apply)`` pair of functions as a flax module.

Bring-your-own models that are not flax modules (hand-written JAX, a haiku or equinox
model turned into two functions) enter the toolkit through :class:`FunctionalModel`:

* ``init(key, inputs) -> params``: a pytree of arrays, given the example inputs of
  the dataset (a batch of examples; for a node task the whole graph);
* ``apply(params, inputs, *, train, key) -> logits``: ``(n, num_classes)``, with
  ``key`` a PRNG key for dropout when ``train`` is true (else ``None``).

The parameters sit under the single name ``"fn"`` of the module's ``params``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn

__all__ = ["FunctionalModel"]


class FunctionalModel(nn.Module):
    """``(init, apply)`` as a module (module docstring).

    Attributes:
        init_fn: ``(key, inputs) -> params``.
        apply_fn: ``(params, inputs, *, train, key) -> logits``.
    """

    init_fn: Callable[..., Any]
    apply_fn: Callable[..., Any]

    @nn.compact
    def __call__(self, inputs: Any, *, train: bool = False):
        params = self.param("fn", lambda key: self.init_fn(key, inputs))
        key = self.make_rng("dropout") if train and self.has_rng("dropout") else None
        return self.apply_fn(params, inputs, train=train, key=key)
