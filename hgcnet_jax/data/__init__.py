"""Datasets: ``load(name, ...)`` returns a validated :class:`Dataset`.

>>> from hgcnet_jax import data
>>> data.available()                                   # doctest: +SKIP
('amazon_reviews', 'citeseer', 'cora', 'csbm', 'digits', 'fashion_mnist', 'newsgroups', 'newsgroups_med', 'pubmed')
>>> cora = data.load("cora", split="full", seed=0)     # doctest: +SKIP

Files are found in ``root=``, ``HGCNET_DATA_DIR``, the system folder, the user
cache, or downloaded (verified by SHA-256): see ``docs/data.md``.
"""

from __future__ import annotations

import difflib
import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any

from hgcnet_jax.data._fetch import cache_dir
from hgcnet_jax.data.base import Dataset, carve_validation, stratified_split
from hgcnet_jax.data.csbm import make_csbm
from hgcnet_jax.data.errors import (
    ChecksumError,
    CorruptFileError,
    DatasetNotFoundError,
    DownloadError,
    UnsafePickleError,
)
from hgcnet_jax.data.images import load_digits, load_fashion_mnist, read_idx
from hgcnet_jax.data.planetoid import load_planetoid
from hgcnet_jax.data.text import (
    PAD_ID,
    UNK_ID,
    Tokenizer,
    load_amazon_reviews,
    load_newsgroups,
    load_newsgroups_med,
)

__all__ = [
    "PAD_ID",
    "UNK_ID",
    "ChecksumError",
    "CorruptFileError",
    "Dataset",
    "DatasetNotFoundError",
    "DownloadError",
    "Tokenizer",
    "UnsafePickleError",
    "available",
    "cache_dir",
    "carve_validation",
    "load",
    "make_csbm",
    "read_idx",
    "stratified_split",
]


def _planetoid(name: str) -> Callable[..., Dataset]:
    def loader(**kwargs: Any) -> Dataset:
        return load_planetoid(name, **kwargs)

    loader.__signature__ = inspect.signature(
        load_planetoid
    ).replace(  # type: ignore[attr-defined]
        parameters=list(inspect.signature(load_planetoid).parameters.values())[1:]
    )
    loader.__doc__ = load_planetoid.__doc__
    return loader


_LOADERS: Mapping[str, Callable[..., Dataset]] = types.MappingProxyType(
    {
        "cora": _planetoid("cora"),
        "citeseer": _planetoid("citeseer"),
        "pubmed": _planetoid("pubmed"),
        "fashion_mnist": load_fashion_mnist,
        "digits": load_digits,
        "amazon_reviews": load_amazon_reviews,
        "newsgroups": load_newsgroups,
        "newsgroups_med": load_newsgroups_med,
        "csbm": make_csbm,
    }
)


def available() -> tuple[str, ...]:
    """The names :func:`load` accepts, sorted."""
    return tuple(sorted(_LOADERS))


def load(name: str, *, root: Any = None, split: str | None = None, seed: int = 0, **options: Any) -> Dataset:
    """Load a dataset by name.

    Args:
        name: One of :func:`available`: ``"cora"``, ``"citeseer"``, ``"pubmed"``
            (Planetoid graphs), ``"fashion_mnist"``, ``"digits"`` (images),
            ``"amazon_reviews"``, ``"newsgroups"``, ``"newsgroups_med"`` (text),
            ``"csbm"`` (synthetic graph).
        root: A data folder searched before ``HGCNET_DATA_DIR``, the system folder
            and the cache (file-based datasets only).
        split: The split's name; default: the dataset's standard split
            (``"public"`` for Planetoid, ``"standard"`` for Fashion-MNIST and text,
            ``"random"`` for digits and CSBM). Planetoid also has ``"full"``.
        seed: Seed of every random choice (seeded splits, CSBM draws, validation carve-outs).
        **options: Dataset-specific keyword arguments (see the loader named in the
            error message, e.g. ``normalize_features=`` for Planetoid, ``val_fraction=``
            for images / text, ``num_nodes=`` for CSBM, ``max_len=`` for text).

    Returns:
        A validated :class:`Dataset`.

    Raises:
        ValueError: Unknown ``name`` (the message lists the valid names) or a bad option.
        TypeError: An option the dataset does not take (the message lists those it does).
        DatasetNotFoundError, ChecksumError, CorruptFileError, UnsafePickleError:
            see :mod:`hgcnet_jax.data.errors`.
    """
    if not isinstance(name, str) or name not in _LOADERS:
        hint = ""
        if isinstance(name, str):
            close = difflib.get_close_matches(name.lower().replace("-", "_"), list(_LOADERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dataset {name!r}{hint}; valid names: {', '.join(available())}")
    loader = _LOADERS[name]
    params = inspect.signature(loader).parameters
    kwargs = dict(options)
    kwargs["seed"] = seed
    if split is not None:
        kwargs["split"] = split
    if root is not None:
        if "root" not in params:
            raise TypeError(f"{name} reads no files, so it takes no root= argument")
        kwargs["root"] = root
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = ", ".join(sorted(set(params) - {"root"}))
        raise TypeError(f"{name} does not take {', '.join(unknown)}; its options are: {valid}")
    return loader(**kwargs)
