"""Fashion-MNIST (IDX files) and scikit-learn's digits."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from hgcnet_jax.data import CorruptFileError, load, read_idx


@pytest.fixture(scope="module")
def fashion(data_dir):
    return load("fashion_mnist", root=data_dir)


def test_fashion_mnist_counts(fashion):
    assert fashion.kind == "image" and fashion.num_classes == 10
    assert fashion.x.shape == (70000, 28, 28, 1) and fashion.x.dtype == np.float32
    assert fashion.x.min() >= 0.0 and fashion.x.max() <= 1.0
    np.testing.assert_array_equal(fashion.train_idx, np.arange(60000))
    np.testing.assert_array_equal(fashion.test_idx, np.arange(60000, 70000))
    assert fashion.val_idx.size == 0
    assert np.bincount(fashion.y[fashion.train_idx]).tolist() == [6000] * 10
    assert np.bincount(fashion.y[fashion.test_idx]).tolist() == [1000] * 10
    assert fashion.num_features == 784
    assert fashion.meta["class_names"][9] == "Ankle boot"


def test_fashion_mnist_pixels(fashion, data_dir):
    train = fashion.x[fashion.train_idx]
    assert train.mean(dtype=np.float64) * 255 == pytest.approx(72.94, abs=0.005)
    # the scaling is exactly pixel / 255 of the uint8 file
    raw = read_idx(data_dir / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_allclose(fashion.x[60000:, :, :, 0] * 255, raw, atol=1e-4)


def test_fashion_mnist_validation_carve_out(data_dir):
    ds = load("fashion_mnist", root=data_dir, val_fraction=0.1, seed=3)
    assert (ds.train_idx.size, ds.val_idx.size, ds.test_idx.size) == (54000, 6000, 10000)
    assert np.bincount(ds.y[ds.val_idx]).tolist() == [600] * 10
    assert np.all(ds.val_idx < 60000)
    again = load("fashion_mnist", root=data_dir, val_fraction=0.1, seed=3)
    np.testing.assert_array_equal(ds.val_idx, again.val_idx)


def _idx_bytes(a: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def test_read_idx_round_trip(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, size=(3, 5, 7), dtype=np.uint8)
    f = tmp_path / "a-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(_idx_bytes(a)))
    np.testing.assert_array_equal(read_idx(f), a)


def test_read_idx_truncated_and_corrupt_files_are_named(tmp_path):
    a = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    short = tmp_path / "short-idx3-ubyte.gz"
    short.write_bytes(gzip.compress(_idx_bytes(a)[:-7]))  # valid gzip, too few pixels
    with pytest.raises(CorruptFileError, match=r"short-idx3-ubyte\.gz.*truncated"):
        read_idx(short)
    cut = tmp_path / "cut-idx3-ubyte.gz"
    cut.write_bytes(gzip.compress(_idx_bytes(a))[:-10])  # truncated gzip stream
    with pytest.raises(CorruptFileError, match=r"cut-idx3-ubyte\.gz"):
        read_idx(cut)
    plain = tmp_path / "plain-idx3-ubyte.gz"
    plain.write_bytes(_idx_bytes(a))  # not gzip at all
    with pytest.raises(CorruptFileError, match=r"plain-idx3-ubyte\.gz"):
        read_idx(plain)
    floats = tmp_path / "float-idx3-ubyte.gz"
    floats.write_bytes(gzip.compress(b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00" * 4))
    with pytest.raises(CorruptFileError, match="not uint8"):
        read_idx(floats)


def test_digits(digits):
    assert digits.name == "digits" and digits.kind == "image"
    assert digits.x.shape == (1797, 8, 8, 1)
    assert digits.x.min() == 0.0 and digits.x.max() == 1.0
    sizes = [len(digits.splits[k]) for k in ("train", "val", "test")]
    assert sum(sizes) == 1797
    counts = np.bincount(digits.y)
    np.testing.assert_array_equal(np.bincount(digits.y[digits.train_idx]), np.round(0.6 * counts).astype(int))


def test_digits_flat_and_seeded():
    flat = load("digits", flatten=True, seed=5)
    img = load("digits", seed=5)
    assert flat.kind == "tabular" and flat.x.shape == (1797, 64)
    np.testing.assert_array_equal(flat.x, img.x.reshape(1797, 64))
    np.testing.assert_array_equal(flat.train_idx, img.train_idx)
    assert not np.array_equal(load("digits", seed=6).train_idx, img.train_idx)
    with pytest.raises(TypeError, match="flatten"):
        load("digits", flatten=1)
