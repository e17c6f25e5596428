"""Known files: where they live in a data folder, their canonical URL and SHA-256.

This table is data, kept in the package (never read from a data folder at run
time): a file whose digest is listed here is verified every time it is used.
``url`` is the canonical public address, or ``None`` where the file has no
canonical download (it can then come only from a local folder or a mirror set
with ``base_url=`` / ``HGCNET_DATA_URL``).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

__all__ = ["FASHION_MNIST_URL", "KNOWN_FILES", "PLANETOID_URL", "SYSTEM_DIRS", "KnownFile"]

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"


@dataclasses.dataclass(frozen=True)
class KnownFile:
    """One file of a dataset.

    Attributes:
        name: File name, e.g. ``"ind.cora.x"``.
        subdir: Its folder inside a data root / the cache / a mirror, e.g. ``"planetoid"``.
        sha256: Known SHA-256 hex digest, or ``None`` where it is not known.
        url: Canonical download URL, or ``None`` where there is none.
    """

    name: str
    subdir: str
    sha256: str | None
    url: str | None


_PLANETOID_SHA256 = {
    "ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
    "ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
    "ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
    "ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
    "ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
    "ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
    "ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
    "ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
    "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
}

_FASHION_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
}

PLANETOID_EXTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


def _build() -> dict[str, KnownFile]:
    files: dict[str, KnownFile] = {}
    for ds in ("cora", "citeseer", "pubmed"):
        for ext in PLANETOID_EXTS:
            name = f"ind.{ds}.{ext}"
            files[name] = KnownFile(name, "planetoid", _PLANETOID_SHA256.get(name), f"{PLANETOID_URL}/{name}")
    for name, digest in _FASHION_SHA256.items():
        files[name] = KnownFile(name, "fashion-mnist", digest, f"{FASHION_MNIST_URL}/{name}")
    # Converted from the R package modeldata (small_fine_foods); no canonical URL.
    files["train.csv"] = KnownFile(
        "train.csv",
        "text/amazon-fine-foods",
        "db1ef44112199043fdc5210be8101b75d3cbe1715f1bae87e45aa7fe77572162",
        None,
    )
    files["test.csv"] = KnownFile(
        "test.csv",
        "text/amazon-fine-foods",
        "ad543a26023583c315a277bbad7599f38871f518104f86672888823707ee6e2a",
        None,
    )
    # scikit-learn's own cache file (a zlib-compressed pickle); scikit-learn downloads and builds it
    # from its verified archive, so it has no URL of its own.
    files["20news-bydate_py3.pkz"] = KnownFile(
        "20news-bydate_py3.pkz",
        "scikit_learn_data",
        "2c8d92230d92d7b5c64ef0f740f266222d9ca71ba26542548f2686d98b76fc05",
        None,
    )
    return files


KNOWN_FILES: Mapping[str, KnownFile] = types.MappingProxyType(_build())

# Standard system folders, per data sub-folder (files directly inside).
SYSTEM_DIRS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {"fashion-mnist": ("/usr/share/datasets/fashion-mnist",)}
)
