"""Image datasets: Fashion-MNIST (IDX gzip files) and scikit-learn's bundled digits."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from jaxtyping import UInt8

from hgcnet_jax.data._fetch import fetch
from hgcnet_jax.data.base import Dataset, _check_fractions, _check_seed, carve_validation, stratified_split
from hgcnet_jax.data.errors import CorruptFileError

__all__ = ["FASHION_MNIST_CLASSES", "load_digits", "load_fashion_mnist", "read_idx"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

_HOW = (
    "Fashion-MNIST (MIT licence) is at https://github.com/zalandoresearch/fashion-mnist: put the four "
    "*-ubyte.gz files in <folder>/fashion-mnist/ and pass root=<folder> or set HGCNET_DATA_DIR=<folder>, or "
    "install Debian's dataset-fashion-mnist package; with internet access they are downloaded into the cache."
)


def read_idx(path: str | os.PathLike) -> UInt8[np.ndarray, ...]:
    """Decode a gzip-compressed IDX file of unsigned bytes (the MNIST format).

    The header is two zero bytes, a type code (``0x08`` = uint8), the number of
    dimensions ``k``, then ``k`` big-endian uint32 sizes; the data follows.

    Args:
        path: A ``*-idx?-ubyte.gz`` file.

    Returns:
        A uint8 array of the stored shape (a read-only view of the decompressed bytes).

    Raises:
        CorruptFileError: Naming the file, if it is not gzip, truncated or not uint8 IDX.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptFileError(f"{path}: not a readable gzip file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise CorruptFileError(f"{path}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise CorruptFileError(f"{path}: IDX type code {data[2]:#04x} is not uint8 (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptFileError(f"{path}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if len(data) != header + int(np.prod(shape)):
        raise CorruptFileError(
            f"{path}: holds {len(data) - header} data bytes, the header promises {int(np.prod(shape))} "
            f"(shape {shape}): truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(
    *,
    root: str | os.PathLike | None = None,
    split: str = "standard",
    seed: int = 0,
    val_fraction: float = 0.0,
    download: bool = True,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70 000 28x28 greyscale images, 10 classes.

    Args:
        root: A data folder searched first (see ``docs/data.md``).
        split: ``"standard"``: the official 60 000 train / 10 000 test images.
        seed: Seed of the validation carve-out.
        val_fraction: Fraction of each training class moved into ``val`` (default 0).
        download: Allow downloading missing files into the cache.
        base_url: Mirror with the data-folder layout (default ``HGCNET_DATA_URL``).
        checksums: Extra or overriding SHA-256 digests by file name.

    Returns:
        A ``kind="image"`` :class:`Dataset`: ``x`` is ``(70000, 28, 28, 1)`` float32
        in [0, 1] (pixel / 255), train images first, then test.

    Raises:
        ValueError: Unknown ``split`` or bad ``val_fraction`` / ``seed``.
        DatasetNotFoundError, ChecksumError, CorruptFileError: see :mod:`hgcnet_jax.data.errors`.
    """
    if split != "standard":
        raise ValueError(f"fashion_mnist: split must be 'standard', got {split!r}")
    seed = _check_seed(seed)
    paths = fetch(
        _FASHION_FILES,
        dataset="fashion_mnist",
        how_to_obtain=_HOW,
        root=root,
        download=download,
        base_url=base_url,
        checksums=checksums,
    )
    arrays = {}
    for name, path in paths.items():
        a = read_idx(path)
        want_ndim = 3 if "images" in name else 1
        if a.ndim != want_ndim or (want_ndim == 3 and a.shape[1:] != (28, 28)):
            raise CorruptFileError(f"{path}: unexpected IDX shape {a.shape} for {name}")
        arrays[name] = a
    xtr, ytr = arrays["train-images-idx3-ubyte.gz"], arrays["train-labels-idx1-ubyte.gz"]
    xte, yte = arrays["t10k-images-idx3-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"]
    if xtr.shape[0] != ytr.shape[0] or xte.shape[0] != yte.shape[0]:
        raise CorruptFileError(f"{paths['train-images-idx3-ubyte.gz'].parent}: image and label counts disagree")
    y = np.concatenate([ytr, yte]).astype(np.int32)
    if y.max() >= 10:
        raise CorruptFileError(f"{paths['train-labels-idx1-ubyte.gz'].parent}: labels outside 0..9")
    n_train = xtr.shape[0]
    x = np.empty((n_train + xte.shape[0], 28, 28, 1), dtype=np.float32)
    np.multiply(xtr[..., None], np.float32(1 / 255), out=x[:n_train])
    np.multiply(xte[..., None], np.float32(1 / 255), out=x[n_train:])
    train, val = carve_validation(y, np.arange(n_train), val_fraction, seed=seed)
    splits = {"train": train, "val": val, "test": np.arange(n_train, y.size, dtype=np.int32)}
    meta = {
        "source_files": {k: str(v) for k, v in paths.items()},
        "split": split,
        "seed": seed,
        "val_fraction": float(val_fraction),
        "class_names": FASHION_MNIST_CLASSES,
        "licence": "MIT (Zalando SE)",
    }
    return Dataset(name="fashion_mnist", kind="image", x=x, y=y, num_classes=10, splits=splits, meta=meta)


def load_digits(
    *,
    split: str = "random",
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    flatten: bool = False,
) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes; no files needed).

    A copy of the test set of the UCI "Optical Recognition of Handwritten Digits"
    data; it ships inside scikit-learn, so it is the fastest real image set for tests.

    Args:
        split: ``"random"``: a seeded class-stratified split by ``fractions``.
        seed: Seed of the split.
        fractions: ``(train, val, test)`` fractions (default 60/20/20).
        flatten: Return ``kind="tabular"`` ``(1797, 64)`` rows instead of
            ``kind="image"`` ``(1797, 8, 8, 1)``.

    Returns:
        A :class:`Dataset` with pixel values scaled from 0..16 to [0, 1].

    Raises:
        ValueError: Unknown ``split`` or bad ``fractions`` / ``seed``.
    """
    if split != "random":
        raise ValueError(f"digits: split must be 'random', got {split!r}")
    seed = _check_seed(seed)
    f = _check_fractions(fractions)
    if not isinstance(flatten, bool):
        raise TypeError(f"flatten must be True or False, got {flatten!r}")
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[..., None]
    y = np.asarray(bunch.target, dtype=np.int32)
    splits = stratified_split(y, f, seed=seed)
    x = images.reshape(images.shape[0], -1) if flatten else images
    meta = {
        "split": split,
        "seed": seed,
        "fractions": f,
        "class_names": tuple(str(c) for c in range(10)),
        "licence": "CC BY 4.0 (UCI ML repository), bundled with scikit-learn (BSD-3-Clause)",
    }
    kind = "tabular" if flatten else "image"
    return Dataset(name="digits", kind=kind, x=np.ascontiguousarray(x), y=y, num_classes=10, splits=splits, meta=meta)
