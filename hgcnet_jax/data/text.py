"""Text datasets and the tokeniser that turns documents into fixed-length id sequences.

Tokenisation (:meth:`Tokenizer.tokenize`): lower-case; HTML tags such as
``<br />`` become spaces; HTML entities are unescaped; tokens are runs of
letters and digits, with inner apostrophes kept (``don't``). The vocabulary is
built on the training split only: words seen at least ``min_count`` times, most
frequent first (ties in alphabetical order), capped so that the id space has
``max_vocab`` entries. Ids ``0`` = padding and ``1`` = unknown word are reserved;
words get ``2, 3, ...``. Every document keeps its first ``max_len`` tokens and is
padded with ``0`` at the end.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Int

from hgcnet_jax.data._fetch import fetch
from hgcnet_jax.data.base import Dataset, _check_seed, carve_validation
from hgcnet_jax.data.errors import CorruptFileError, DatasetNotFoundError

__all__ = [
    "NEWSGROUPS_MED_AGAINST",
    "PAD_ID",
    "UNK_ID",
    "Tokenizer",
    "load_amazon_reviews",
    "load_newsgroups",
    "load_newsgroups_med",
]

PAD_ID = 0
UNK_ID = 1
_RESERVED = 2

_TAG = re.compile(r"<[^>]*>")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """A word-level tokeniser with a fixed vocabulary and sequence length.

    Attributes:
        vocab: The words, in id order: ``vocab[i]`` has id ``i + 2``.
        max_len: Length of every encoded sequence.

    Build one with :meth:`fit` on training texts; :meth:`encode` is then a pure
    function of the text.
    """

    vocab: tuple[str, ...]
    max_len: int
    _index: Mapping[str, int] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.vocab, tuple) or not all(isinstance(w, str) and w for w in self.vocab):
            raise TypeError("Tokenizer.vocab must be a tuple of non-empty strings")
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError("Tokenizer.vocab must not repeat a word")
        if isinstance(self.max_len, bool) or not isinstance(self.max_len, int) or self.max_len < 1:
            raise ValueError(f"Tokenizer.max_len must be a positive int, got {self.max_len!r}")
        object.__setattr__(self, "_index", {w: i + _RESERVED for i, w in enumerate(self.vocab)})

    @staticmethod
    def tokenize(text: str) -> list[str]:
        """Split one document into lower-case word tokens (HTML tags removed)."""
        text = text.lower()
        if "<" in text:
            text = _TAG.sub(" ", text)
        if "&" in text:
            text = html.unescape(text)
        return _WORD.findall(text)

    @classmethod
    def fit(cls, texts: Iterable[str], *, max_len: int = 256, max_vocab: int = 20_000, min_count: int = 2) -> Tokenizer:
        """Build the vocabulary from ``texts`` (pass the training split only).

        Args:
            texts: Training documents.
            max_len: Length of every encoded sequence.
            max_vocab: Size of the id space including the two reserved ids, so
                ids lie in ``[0, max_vocab)``; at least 3.
            min_count: Minimum number of occurrences for a word to get an id.

        Returns:
            A :class:`Tokenizer`.

        Raises:
            ValueError: If an argument is out of range.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of documents, not one string")
        return cls._fit_tokens(
            (cls.tokenize(t) for t in texts), max_len=max_len, max_vocab=max_vocab, min_count=min_count
        )

    @classmethod
    def _fit_tokens(cls, docs: Iterable[list[str]], *, max_len: int, max_vocab: int, min_count: int) -> Tokenizer:
        if isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < _RESERVED + 1:
            raise ValueError(f"max_vocab must be an int >= {_RESERVED + 1} (pad, unknown, one word), got {max_vocab!r}")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive int, got {min_count!r}")
        counts: collections.Counter[str] = collections.Counter()
        for toks in docs:
            counts.update(toks)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(vocab=tuple(words[: max_vocab - _RESERVED]), max_len=max_len)

    @property
    def vocab_size(self) -> int:
        """Number of ids, reserved ones included: ids lie in ``[0, vocab_size)``."""
        return len(self.vocab) + _RESERVED

    def encode(self, texts: Sequence[str]) -> Int[np.ndarray, "n max_len"]:
        """Encode documents as ``(n, max_len)`` int32 ids (truncated at the end, padded with 0)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of documents, not one string")
        return self._encode_tokens([self.tokenize(t) for t in texts])

    def _encode_tokens(self, docs: Sequence[list[str]]) -> np.ndarray:
        out = np.zeros((len(docs), self.max_len), dtype=np.int32)
        index, L = self._index, self.max_len
        for i, toks in enumerate(docs):
            ids = [index.get(w, UNK_ID) for w in toks[:L]]
            out[i, : len(ids)] = ids
        return out

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Words of one encoded sequence (padding dropped, unknown words as ``"<unk>"``)."""
        words = []
        for i in np.asarray(ids).tolist():
            if i == PAD_ID:
                continue
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside [0, {self.vocab_size})")
            words.append("<unk>" if i == UNK_ID else self.vocab[i - _RESERVED])
        return words


def _text_dataset(
    name: str,
    texts: Sequence[str],
    y: np.ndarray,
    n_train: int,
    num_classes: int,
    *,
    seed: int,
    val_fraction: float,
    max_len: int,
    max_vocab: int,
    min_count: int,
    meta: dict[str, Any],
) -> Dataset:
    train, val = carve_validation(y, np.arange(n_train), val_fraction, seed=seed)
    docs = [Tokenizer.tokenize(t) for t in texts]  # tokenised once, for fitting and encoding
    tok = Tokenizer._fit_tokens((docs[i] for i in train), max_len=max_len, max_vocab=max_vocab, min_count=min_count)
    x = tok._encode_tokens(docs)
    splits = {"train": train, "val": val, "test": np.arange(n_train, len(texts), dtype=np.int32)}
    meta = {
        **meta,
        "seed": seed,
        "val_fraction": float(val_fraction),
        "vocab_size": tok.vocab_size,
        "max_len": max_len,
        "tokenizer": tok,
    }
    return Dataset(name=name, kind="text", x=x, y=y, num_classes=num_classes, splits=splits, meta=meta)


_AMAZON_HOW = (
    "The Amazon Fine Foods CSVs (columns product,review,score) are converted from small_fine_foods of the R "
    "package modeldata (MIT; Debian r-cran-modeldata): put train.csv and test.csv in "
    "<folder>/text/amazon-fine-foods/ and pass root=<folder> or set HGCNET_DATA_DIR=<folder>, or set "
    "HGCNET_DATA_URL to a mirror of such a folder."
)
AMAZON_CLASSES = ("other", "great")


def _read_reviews(path: Path) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise CorruptFileError(f"{path}: not a readable CSV ({e})") from None
    if list(df.columns) != ["product", "review", "score"]:
        raise CorruptFileError(f"{path}: expected the columns product,review,score, got {list(df.columns)}")
    bad = ~df["score"].isin(AMAZON_CLASSES)
    if bad.any():
        raise CorruptFileError(
            f"{path}: score must be 'great' or 'other', row {int(np.flatnonzero(bad)[0]) + 2} has "
            f"{df['score'][bad].iloc[0]!r}"
        )
    y = (df["score"].to_numpy() == "great").astype(np.int32)
    return df["review"].tolist(), y


def load_amazon_reviews(
    *,
    root: str | os.PathLike | None = None,
    split: str = "standard",
    seed: int = 0,
    val_fraction: float = 0.0,
    max_len: int = 256,
    max_vocab: int = 20_000,
    min_count: int = 2,
    download: bool = True,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """5000 Amazon Fine Food reviews: is the review's product rated "great" (1) or "other" (0)?

    Args:
        root: A data folder searched first (see ``docs/data.md``).
        split: ``"standard"``: the files' 4000 train / 1000 test reviews.
        seed: Seed of the validation carve-out.
        val_fraction: Fraction of each training class moved into ``val`` (default 0).
        max_len, max_vocab, min_count: Tokeniser settings (see :class:`Tokenizer`).
        download: Allow downloading missing files into the cache (mirror only).
        base_url: Mirror with the data-folder layout (default ``HGCNET_DATA_URL``).
        checksums: Extra or overriding SHA-256 digests by file name.

    Returns:
        A ``kind="text"`` :class:`Dataset`; ``meta`` has ``vocab_size``, ``tokenizer``,
        ``class_names`` (``("other", "great")``) and ``products`` (the product id per row).

    Raises:
        ValueError: Bad ``split`` / settings. DatasetNotFoundError, ChecksumError,
            CorruptFileError: see :mod:`hgcnet_jax.data.errors`.
    """
    if split != "standard":
        raise ValueError(f"amazon_reviews: split must be 'standard', got {split!r}")
    seed = _check_seed(seed)
    paths = fetch(
        ("train.csv", "test.csv"),
        dataset="amazon_reviews",
        how_to_obtain=_AMAZON_HOW,
        root=root,
        download=download,
        base_url=base_url,
        checksums=checksums,
    )
    tr_text, tr_y = _read_reviews(paths["train.csv"])
    te_text, te_y = _read_reviews(paths["test.csv"])
    meta = {
        "source_files": {k: str(v) for k, v in paths.items()},
        "split": split,
        "class_names": AMAZON_CLASSES,
        "licence": "MIT (modeldata); reviews from the SNAP Amazon Fine Foods collection",
    }
    return _text_dataset(
        "amazon_reviews",
        tr_text + te_text,
        np.concatenate([tr_y, te_y]),
        len(tr_text),
        2,
        seed=seed,
        val_fraction=val_fraction,
        max_len=max_len,
        max_vocab=max_vocab,
        min_count=min_count,
        meta=meta,
    )


_NEWS_HOW = (
    "20 Newsgroups is read through scikit-learn: put scikit-learn's cache file 20news-bydate_py3.pkz in "
    "<folder>/scikit_learn_data/ and pass root=<folder> or set HGCNET_DATA_DIR=<folder>; with internet access "
    "and download=True, scikit-learn downloads and verifies the original archive itself."
)
_NEWS_FILE = "20news-bydate_py3.pkz"
_REMOVE = ("headers", "footers", "quotes")


def _newsgroups_raw(
    *,
    root: str | os.PathLike | None,
    remove: Sequence[str],
    download: bool,
    base_url: str | None,
    checksums: Mapping[str, str] | None,
) -> tuple[list[str], np.ndarray, int, tuple[str, ...], dict[str, Any]]:
    """(texts train+test, labels, n_train, target names, meta) from scikit-learn's verified cache file."""
    from sklearn.datasets import fetch_20newsgroups

    remove = tuple(remove)
    if any(r not in _REMOVE for r in remove):
        raise ValueError(f"remove must be a subset of {_REMOVE}, got {remove!r}")
    from hgcnet_jax.data._fetch import cache_dir

    sk_download = False
    try:
        # Found locally (verified by SHA-256) or downloaded from a mirror.
        path = fetch(
            (_NEWS_FILE,),
            dataset="newsgroups",
            how_to_obtain=_NEWS_HOW,
            root=root,
            download=download,
            base_url=base_url,
            checksums=checksums,
        )[_NEWS_FILE]
        data_home = path.parent
    except DatasetNotFoundError:
        from hgcnet_jax.data._fetch import ENV_DATA_URL

        if not download or base_url is not None or os.environ.get(ENV_DATA_URL):
            raise
        # No local copy and no mirror: scikit-learn's own download (it verifies the archive's SHA-256).
        data_home = cache_dir() / "scikit_learn_data"
        sk_download = True
    # One call for both subsets: the cache file is read once, and on scikit-learn's own download
    # path the data come straight from the verified archive, the fresh cache file is never unpickled.
    try:
        bunch = fetch_20newsgroups(
            data_home=str(data_home),
            subset="all",
            shuffle=False,
            remove=remove,
            download_if_missing=sk_download,
        )
    except OSError as e:
        raise CorruptFileError(f"{data_home / _NEWS_FILE}: scikit-learn could not load it ({e})") from None
    names = tuple(bunch.target_names)
    # "all" is train then test; the file names record which subset a post came from.
    is_train = np.array(["20news-bydate-train" in str(f) for f in bunch.filenames], dtype=bool)
    n_train = int(is_train.sum())
    if len(bunch.data) != len(bunch.target) or not (is_train[:n_train].all() and not is_train[n_train:].any()):
        raise CorruptFileError(f"{data_home / _NEWS_FILE}: unexpected layout (train posts must precede test posts)")
    texts = list(bunch.data)
    y = np.asarray(bunch.target, dtype=np.int32)
    meta = {
        "source_files": {_NEWS_FILE: str(data_home / _NEWS_FILE)},
        "remove": remove,
        "licence": "20 Newsgroups (Lang 1995), as distributed by scikit-learn",
    }
    return texts, y, n_train, names, meta


def load_newsgroups(
    *,
    root: str | os.PathLike | None = None,
    split: str = "standard",
    seed: int = 0,
    val_fraction: float = 0.0,
    remove: Sequence[str] = _REMOVE,
    max_len: int = 256,
    max_vocab: int = 20_000,
    min_count: int = 2,
    download: bool = True,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """20 Newsgroups, "bydate" version: 18 846 posts in 20 groups (11 314 train / 7 532 test).

    Read through ``sklearn.datasets.fetch_20newsgroups(data_home=..., download_if_missing=False)``
    after the cache file's SHA-256 has been verified (it is a pickle).

    Args:
        root: A data folder searched first (see ``docs/data.md``).
        split: ``"standard"``: the "bydate" train / test split.
        seed: Seed of the validation carve-out.
        val_fraction: Fraction of each training class moved into ``val`` (default 0).
        remove: Parts of each post to strip (scikit-learn's ``remove=``); by default
            headers, signature footers and quoted replies, since headers name the group.
        max_len, max_vocab, min_count: Tokeniser settings (see :class:`Tokenizer`).
        download: Allow a download when no local copy exists.
        base_url: Mirror with the data-folder layout (default ``HGCNET_DATA_URL``).
        checksums: Extra or overriding SHA-256 digests by file name.

    Returns:
        A ``kind="text"`` :class:`Dataset` with 20 classes; ``meta["class_names"]``
        are the group names.
    """
    if split != "standard":
        raise ValueError(f"newsgroups: split must be 'standard', got {split!r}")
    seed = _check_seed(seed)
    texts, y, n_train, names, meta = _newsgroups_raw(
        root=root, remove=remove, download=download, base_url=base_url, checksums=checksums
    )
    meta.update(split=split, class_names=names)
    return _text_dataset(
        "newsgroups",
        texts,
        y,
        n_train,
        len(names),
        seed=seed,
        val_fraction=val_fraction,
        max_len=max_len,
        max_vocab=max_vocab,
        min_count=min_count,
        meta=meta,
    )


NEWSGROUPS_MED_AGAINST = ("science", "rest")


def load_newsgroups_med(
    *,
    root: str | os.PathLike | None = None,
    split: str = "standard",
    seed: int = 0,
    val_fraction: float = 0.0,
    against: str = "science",
    remove: Sequence[str] = _REMOVE,
    max_len: int = 256,
    max_vocab: int = 20_000,
    min_count: int = 2,
    download: bool = True,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """The medical-text task: is a 20 Newsgroups post from ``sci.med`` (1) or not (0)?

    Args:
        against: The negatives: ``"science"`` (default): the other science groups
            ``sci.crypt``, ``sci.electronics``, ``sci.space`` (594 / 396 positives
            against 1779 / 1183 negatives in train / test), a topical task where
            vocabulary overlaps; ``"rest"``: all 19 other groups.
        The other arguments are those of :func:`load_newsgroups`; the vocabulary is
        built on this task's training posts only.

    Returns:
        A ``kind="text"`` :class:`Dataset` with 2 classes, ``class_names``
        ``("other", "sci.med")``; ``meta["groups"]`` names the group of every row.
    """
    if split != "standard":
        raise ValueError(f"newsgroups_med: split must be 'standard', got {split!r}")
    if against not in NEWSGROUPS_MED_AGAINST:
        raise ValueError(f"against must be one of {NEWSGROUPS_MED_AGAINST}, got {against!r}")
    seed = _check_seed(seed)
    texts, y20, n_train, names, meta = _newsgroups_raw(
        root=root, remove=remove, download=download, base_url=base_url, checksums=checksums
    )
    med = names.index("sci.med")
    if against == "science":
        keep_groups = [i for i, g in enumerate(names) if g.startswith("sci.")]
    else:
        keep_groups = list(range(len(names)))
    keep = np.flatnonzero(np.isin(y20, keep_groups))
    new_n_train = int((keep < n_train).sum())
    meta.update(
        split=split,
        against=against,
        class_names=("other", "sci.med"),
        groups=tuple(names[i] for i in y20[keep]),
    )
    return _text_dataset(
        "newsgroups_med",
        [texts[i] for i in keep],
        (y20[keep] == med).astype(np.int32),
        new_n_train,
        2,
        seed=seed,
        val_fraction=val_fraction,
        max_len=max_len,
        max_vocab=max_vocab,
        min_count=min_count,
        meta=meta,
    )
