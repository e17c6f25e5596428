"""A :class:`Task` binds a model to a dataset and exposes pure, vmap-able functions.

What a *batch* is:

* images, text, tabular data: an ordinary minibatch of examples ``idx``;
* node classification: the graph is propagated **in full** on every step, and the
  batch is the set of labelled nodes ``idx`` whose cross-entropy forms that
  step's gradient. "Batch size" for a GCN here is therefore the number of
  labelled nodes per gradient step, not a sampled subgraph; with the batch
  equal to the whole training split this is Kipf & Welling's full-batch training.

The dataset is moved to the device once (``task.data``); every function takes
index arrays into it, so a vmapped bucket of replicas shares one copy.

A Task's compiled programs depend on its :class:`TaskSpec` (the model and how its
inputs are read: hashable, compared by value) and on the shapes of its arrays, never
on the Task object: the spec's functions take the data pytree as an argument, so
two Tasks of the same model on data of the same shapes share their compiled
programs, and a compile cache that holds a spec holds no data.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from hgcnet_jax import models as _models

__all__ = ["Task", "TaskSpec", "make_task"]

Params = Any


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """The structural part of a :class:`Task`: everything its programs depend on besides array values.

    Hashable and compared by value (a flax module compares by its fields), so it is
    the static argument of compiled programs (``jax.jit(..., static_argnames=("spec",))``):
    equal specs on data of equal shapes and dtypes share one compilation, and a compile
    cache keyed on a spec keeps no data alive. Every function takes the data pytree
    explicitly (the layout of :attr:`Task.data`); none reads arrays from anywhere else.

    Attributes:
        model_name: the registry name of the model.
        module: the flax module.
        kind: the dataset's kind (``"node"``, ``"image"``, ``"text"``, ``"tabular"``).
        eval_batch_size: examples per chunk when evaluating non-node tasks.
        stateful: whether the model carries batch-norm state (see :class:`Task`).
    """

    model_name: str
    module: nn.Module
    kind: str
    eval_batch_size: int = 1024
    stateful: bool = False

    def init_variables(self, key: PRNGKeyArray, data) -> tuple[Params, dict]:
        """``(params, state)`` of a fresh model; ``data`` supplies the example inputs flax initialises on."""
        inputs = data["inputs"] if self.kind == "node" else data["inputs"][:2]
        variables = dict(self.module.init({"params": key, "dropout": key}, inputs, train=False))
        params = variables.pop("params")
        return params, variables

    def apply(self, params, data, idx, *, key=None, train=False, state=None):
        """Logits of examples ``idx`` of ``data``; returns ``(logits, new_state)`` (see :meth:`Task.apply`)."""
        dropout = bool(train) and key is not None
        rngs = {"dropout": key} if dropout else {}
        inputs = data["inputs"] if self.kind == "node" else jnp.take(data["inputs"], idx, axis=0)
        if self.stateful:
            have_state = state is not None and bool(jax.tree.leaves(state))
            if train or not have_state:
                # Batch statistics of these examples; running averages updated only in training.
                variables = {"params": params, **(state if have_state else {})}
                out, upd = self.module.apply(variables, inputs, train=True, rngs=rngs, mutable=["batch_stats"])
                new_state = dict(upd) if (train and have_state) else (state or {})
            else:
                out = self.module.apply({"params": params, **state}, inputs, train=False)
                new_state = state
        else:
            out = self.module.apply({"params": params}, inputs, train=dropout, rngs=rngs)
            new_state = state if state is not None else {}
        if self.kind == "node":
            out = jnp.take(out, idx, axis=0)
        return out, new_state

    def evaluate(self, params, data, idx, *, state=None) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """Eval-mode ``(mean loss, accuracy)`` over ``idx`` of ``data`` (see :meth:`Task.evaluate`)."""
        idx = jnp.asarray(idx)
        m = idx.shape[0]
        if m == 0:
            return jnp.float32(jnp.nan), jnp.float32(jnp.nan)
        if self.kind == "node" or m <= self.eval_batch_size:
            logits, _ = self.apply(params, data, idx, state=state)
            y = jnp.take(data["y"], idx, axis=0)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            return jnp.mean(ce), jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))
        bs = self.eval_batch_size
        nchunks = -(-m // bs)
        pad = nchunks * bs - m
        idx_p = jnp.concatenate([idx, jnp.zeros((pad,), idx.dtype)]).reshape(nchunks, bs)
        mask = (jnp.arange(nchunks * bs) < m).reshape(nchunks, bs).astype(jnp.float32)

        def one(args):
            i, w = args
            logits, _ = self.apply(params, data, i, state=state)
            y = jnp.take(data["y"], i, axis=0)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            correct = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
            return jnp.sum(ce * w), jnp.sum(correct * w)

        ce, correct = jax.lax.map(one, (idx_p, mask))
        return jnp.sum(ce) / m, jnp.sum(correct) / m

    def split_metrics(self, params, data, *, state=None) -> dict[str, Float[Array, ""]]:
        """Eval-mode loss and accuracy on every split of ``data["splits"]`` (see :meth:`Task.split_metrics`)."""
        out = {}
        if self.kind == "node":
            logits, _ = self.apply(params, data, jnp.arange(data["y"].shape[0]), state=state)
            for name, idx in data["splits"].items():
                if idx.shape[0] == 0:
                    out[f"{name}_loss"] = out[f"{name}_acc"] = jnp.float32(jnp.nan)
                    continue
                lg = jnp.take(logits, idx, axis=0)
                y = jnp.take(data["y"], idx, axis=0)
                out[f"{name}_loss"] = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(lg, y))
                out[f"{name}_acc"] = jnp.mean((jnp.argmax(lg, -1) == y).astype(jnp.float32))
            return out
        for name, idx in data["splits"].items():
            out[f"{name}_loss"], out[f"{name}_acc"] = self.evaluate(params, data, idx, state=state)
        return out



@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A model bound to a dataset. Build it with :func:`make_task`.

    All functions are pure, jit-able and vmap-able over a leading replica axis
    of ``params``.

    Attributes:
        dataset: the :class:`hgcnet_jax.data.Dataset`.
        model_name: the registry name of the model.
        module: the flax module.
        data: device pytree ``{"inputs": ..., "y": ...}`` (functions taking ``data`` also read an
            optional ``"splits"`` entry); for node tasks ``inputs`` is
            the prepared graph (self-loops, normalisation, sparse features), otherwise ``x``.
        splits: ``"train"/"val"/"test"`` → device int32 index arrays.
        eval_batch_size: examples per chunk when evaluating non-node tasks.
        model_kwargs: the keyword arguments the module was built with.

    Models with batch norm (``resnet18``) keep its running statistics in a
    separate *state* pytree (``task.init_state``), never in ``params``: every
    function below takes it as ``state=``. In train mode the statistics of the
    batch are used; in eval mode the running averages in ``state``, or, when
    ``state`` is ``None``, the statistics of the evaluated examples themselves.
    ``task.loss(params, idx)`` is therefore differentiable in ``params`` alone.
    """

    dataset: Any
    model_name: str
    module: nn.Module
    data: Any
    splits: dict[str, Int[Array, " m"]]
    eval_batch_size: int = 1024
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    stateful: bool = False

    def __post_init__(self) -> None:
        if self.eval_batch_size < 1:
            raise ValueError(f"Task.eval_batch_size must be >= 1, got {self.eval_batch_size}")

    # ---- properties -------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.dataset.kind

    @property
    def num_classes(self) -> int:
        return int(self.dataset.num_classes)

    @property
    def has_state(self) -> bool:
        """True when the model carries non-differentiable state (batch-norm statistics)."""
        return self.stateful

    @property
    def spec(self) -> TaskSpec:
        """The :class:`TaskSpec` of this Task: the static, data-free key of its compiled programs."""
        return TaskSpec(self.model_name, self.module, self.kind, self.eval_batch_size, self.stateful)

    def num_params(self, params: Params) -> int:
        """Number of scalar parameters (per replica when ``params`` is unstacked)."""
        return int(sum(np.prod(np.shape(p)) for p in jax.tree.leaves(params)))

    # ---- init ------------------------------------------------------------------
    def _init_variables(self, key: PRNGKeyArray):
        return self.spec.init_variables(key, self.data)

    def init(self, key: PRNGKeyArray) -> Params:
        """Fresh differentiable parameters (the model's own initialisers)."""
        return self._init_variables(key)[0]

    def init_state(self, key: PRNGKeyArray) -> dict:
        """Fresh non-differentiable state (``{}`` for models without batch norm)."""
        return self._init_variables(key)[1]

    # ---- forward ---------------------------------------------------------------
    def apply(self, params, data, idx, *, key=None, train=False, state=None):
        """Logits of examples ``idx`` with an explicit ``data`` pytree; returns ``(logits, new_state)``.

        This is the primitive the sweep uses (``data`` passed once as an argument of
        the compiled program); the methods below bind ``data=self.data``. Dropout is
        active only when ``train`` is true and a ``key`` is given.
        """
        return self.spec.apply(params, data, idx, key=key, train=train, state=state)

    def logits(self, params, idx: Int[Array, " b"], *, key=None, train: bool = False, state=None) -> Float[Array, "b c"]:
        """Logits of examples ``idx``; for node tasks the whole graph is propagated."""
        return self.apply(params, self.data, idx, key=key, train=train, state=state)[0]

    def per_example_loss(self, params, idx, *, key=None, train: bool = False, state=None) -> Float[Array, " b"]:
        """Cross-entropy of each example in ``idx`` (no regulariser)."""
        logits = self.logits(params, idx, key=key, train=train, state=state)
        y = jnp.take(self.data["y"], idx, axis=0)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y)

    def loss(self, params, idx, *, key=None, train: bool = False, state=None) -> Float[Array, ""]:
        r"""Mean cross-entropy :math:`\frac{1}{|I|}\sum_{i\in I} -\log p_\theta(y_i \mid x_i)` over ``idx``."""
        return jnp.mean(self.per_example_loss(params, idx, key=key, train=train, state=state))

    def accuracy(self, params, idx, *, state=None) -> Float[Array, ""]:
        """Eval-mode accuracy over ``idx`` (evaluated in chunks for non-node tasks)."""
        return self.evaluate(params, self.data, idx, state=state)[1]

    def evaluate(self, params, data, idx, *, state=None) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """Eval-mode ``(mean loss, accuracy)`` over ``idx``.

        Node tasks use one forward pass; other tasks go through ``idx`` in chunks of
        ``eval_batch_size`` (``lax.map``), so memory stays bounded for large splits.
        """
        return self.spec.evaluate(params, data, idx, state=state)

    def split_metrics(self, params, data=None, *, state=None) -> dict[str, Float[Array, ""]]:
        """Eval-mode loss and accuracy on every non-empty split, one forward for node tasks.

        Returns:
            ``{"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"}``
            (NaN for an empty split).
        """
        data = self.data if data is None else data
        if "splits" not in data:
            data = {**data, "splits": self.splits}
        return self.spec.split_metrics(params, data, state=state)


def _as_hashable(value: Any) -> Any:
    """``value`` with every list (nested too) turned into a tuple."""
    if isinstance(value, list) or type(value) is tuple:
        return tuple(_as_hashable(v) for v in value)
    return value


def _as_dataset(dataset: Any, kind: str | None):
    """A :class:`~hgcnet_jax.data.Dataset` from a Dataset, ``(x, y)`` or ``(x, y, splits)``."""
    from hgcnet_jax.data import Dataset

    if isinstance(dataset, Dataset):
        if kind is not None and kind != dataset.kind:
            raise ValueError(f"make_task: kind={kind!r} but the dataset {dataset.name!r} has kind {dataset.kind!r}")
        return dataset
    if isinstance(dataset, (tuple, list)) and len(dataset) in (2, 3):
        splits = dataset[2] if len(dataset) == 3 else None
        return Dataset.from_arrays(dataset[0], dataset[1], kind=kind, splits=splits)
    raise TypeError(
        f"make_task: data must be a hgcnet_jax.Dataset, (x, y) or (x, y, splits) arrays, got {type(dataset).__name__}"
    )


def _module_fields(module: nn.Module) -> dict[str, Any]:
    """A user module's fields, for the sweep's fingerprint (functions by qualified name)."""
    out = {}
    for f in dataclasses.fields(module):
        if f.name in ("parent", "name"):
            continue
        v = getattr(module, f.name)
        out[f.name] = f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', repr(v))}" if callable(v) else v
    return out


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


def _resolve_model(model: Any, dataset, kwargs: dict) -> tuple[str, nn.Module, Any]:
    """``(name, module, prepare)`` for a registry name, a flax module (instance or class) or ``(init, apply)``."""
    kwargs = dict(kwargs)
    if isinstance(model, str):
        try:
            entry = _models.entry(model)
        except KeyError as err:
            raise KeyError(f"{err.args[0]}; or pass your own flax Module (instance or class) or an (init, apply) "
                           "pair, or register it with hgcnet_jax.models.register") from None
        kind = dataset.kind
        if kind not in entry.kinds:
            raise ValueError(
                f"make_task: model {model!r} accepts datasets of kind {entry.kinds}, but dataset "
                f"{getattr(dataset, 'name', '?')!r} has kind {kind!r}; pick another model"
            )
        kwargs.setdefault("num_classes", int(dataset.num_classes))
        if model == "transformer":
            meta = getattr(dataset, "meta", {}) or {}
            kwargs.setdefault("vocab_size", int(meta.get("vocab_size", int(np.max(dataset.x)) + 1)))
            kwargs.setdefault("max_len", int(dataset.x.shape[1]))
        # Lists (e.g. ``hidden=[64, 32]`` from a config file) become tuples, so that the module
        # hashes by value: it is part of the TaskSpec that keys the compiled programs.
        module = _models.get(model, **{k: _as_hashable(v) for k, v in kwargs.items()})
        return model, module, entry.prepare or (lambda graph: jnp.asarray(graph.nodes)), kwargs
    if isinstance(model, nn.Module):
        if kwargs:
            raise TypeError(f"make_task: a module instance takes no model keywords (got {sorted(kwargs)}); "
                            f"set them on the module: {type(model).__name__}(...)")
        return type(model).__name__, model, None, _module_fields(model)
    if isinstance(model, type) and issubclass(model, nn.Module):
        if "num_classes" in _fields(model):
            kwargs.setdefault("num_classes", int(dataset.num_classes))
        try:
            module = model(**{k: _as_hashable(v) for k, v in kwargs.items()})
        except TypeError as err:
            raise TypeError(f"make_task({model.__name__}, ...): {err}") from None
        return model.__name__, module, None, _module_fields(module)
    if isinstance(model, tuple) and len(model) == 2 and all(callable(f) for f in model):
        if kwargs:
            raise TypeError(f"make_task: an (init, apply) pair takes no model keywords (got {sorted(kwargs)})")
        from hgcnet_jax.models.functional import FunctionalModel

        module = FunctionalModel(*model)
        return f"functional:{getattr(model[1], '__name__', 'apply')}", module, None, _module_fields(module)
    raise TypeError(
        "make_task: model must be a registry name (see hgcnet_jax.models.available()), a flax Module instance "
        f"or class, or an (init, apply) pair of functions; got {type(model).__name__}"
    )


def make_task(dataset, model: Any = "gcn", *, kind: str | None = None, eval_batch_size: int = 1024,
              **model_kwargs: Any) -> Task:
    """Bind ``model`` to ``dataset``.

    ``model`` is a registry name (see :mod:`hgcnet_jax.models`), your own flax module
    (an instance, or a class that ``make_task`` instantiates with ``model_kwargs``
    and, when it has that field, the dataset's ``num_classes``), or a plain
    ``(init, apply)`` pair of functions (:class:`~hgcnet_jax.models.functional.FunctionalModel`).
    Registry models: ``num_classes`` defaults to the dataset's; the transformer's
    ``vocab_size`` and ``max_len`` default to ``dataset.meta["vocab_size"]`` (or
    ``x.max() + 1``) and the sequence length; graph models prepare their input once
    (self-loops, normalisation, a sparse view of mostly-zero features). Your own
    module on a node dataset receives the dataset's ``jraph.GraphsTuple`` as is.

    Args:
        dataset: a :class:`hgcnet_jax.data.Dataset`, or arrays ``(x, y)`` /
            ``(x, y, splits)`` (:meth:`~hgcnet_jax.data.Dataset.from_arrays`: the kind
            from the shape of ``x``, a seeded stratified split by default).
        model: registry name (``gcn``, ``gat``, ``mlp``, ``lenet5``, ``alexnet``,
            ``resnet18``, ``transformer``), a flax ``nn.Module`` instance or class, or
            ``(init, apply)``.
        kind: the dataset's kind when ``dataset`` is arrays (default: from the shape).
        eval_batch_size: chunk size of evaluation for non-node tasks.
        **model_kwargs: fields of the model (e.g. ``hidden=32``).

    Returns:
        A :class:`Task`.

    Raises:
        KeyError: unknown model name.
        TypeError: a model that is none of the accepted forms, or keywords for an instance.
        ValueError: the model does not accept this kind of dataset, or the dataset
            has no training examples.
    """
    dataset = _as_dataset(dataset, kind)
    kind = dataset.kind
    splits_np = {k: np.asarray(dataset.splits[k], np.int32) for k in ("train", "val", "test")}
    if splits_np["train"].size == 0:
        raise ValueError(f"make_task: dataset {dataset.name!r} has an empty 'train' split")
    name, module, prepare, kwargs = _resolve_model(model, dataset, model_kwargs)
    try:
        hash(module)
    except TypeError:
        raise TypeError(
            f"make_task: the keywords of model {name!r} must be hashable values (numbers, strings, "
            f"tuples), got {kwargs!r}"
        ) from None
    if kind == "node":
        if dataset.graph is None:
            raise ValueError(f"make_task: node dataset {dataset.name!r} has no graph")
        inputs = prepare(dataset.graph) if prepare is not None else jax.tree.map(jnp.asarray, dataset.graph)
    else:
        inputs = jnp.asarray(dataset.x)
    y = np.asarray(dataset.y, np.int32)
    data = {"inputs": inputs, "y": jnp.asarray(np.maximum(y, 0))}
    splits = {k: jnp.asarray(v) for k, v in splits_np.items()}
    task = Task(
        dataset=dataset,
        model_name=name,
        module=module,
        data=data,
        splits=splits,
        eval_batch_size=int(eval_batch_size),
        model_kwargs=kwargs,
    )
    state = jax.eval_shape(lambda: task._init_variables(jax.random.key(0))[1])
    return dataclasses.replace(task, stateful=bool(jax.tree.leaves(state)))
