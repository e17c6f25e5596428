"""Where files are found, and downloads from a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest

from hgcnet_jax.data import ChecksumError, DatasetNotFoundError, _fetch, cache_dir, load
from hgcnet_jax.data._checksums import KNOWN_FILES

CORA = [f"ind.cora.{e}" for e in ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")]
LABELS = "t10k-labels-idx1-ubyte.gz"


def _files_under(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_known_checksums_match_the_reference_files(data_dir):
    for name, kf in KNOWN_FILES.items():
        if kf.sha256 is None:
            assert name.startswith("ind.pubmed.")
            continue
        assert _sha(data_dir / kf.subdir / name) == kf.sha256, name


def test_cache_dir_follows_xdg_and_home(isolated, monkeypatch, tmp_path):
    assert cache_dir() == isolated
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "hgcnet_jax"


def test_search_order_root_env_system_cache(isolated, tmp_path, monkeypatch, data_dir):
    src = data_dir / "fashion-mnist" / LABELS
    places = {k: tmp_path / k for k in ("root", "env", "system")}
    for p in places.values():
        p.mkdir()
        (p / LABELS).symlink_to(src)
    isolated.joinpath("fashion-mnist").mkdir(parents=True)
    (isolated / "fashion-mnist" / LABELS).symlink_to(src)
    monkeypatch.setenv("HGCNET_DATA_DIR", str(places["env"]))
    monkeypatch.setattr(_fetch, "SYSTEM_DIRS", {"fashion-mnist": (str(places["system"]),)})

    def where(**kw):
        return _fetch.fetch([LABELS], dataset="t", how_to_obtain="", download=False, **kw)[LABELS]

    assert where(root=places["root"]) == places["root"] / LABELS
    assert where() == places["env"] / LABELS
    monkeypatch.delenv("HGCNET_DATA_DIR")
    assert where() == places["system"] / LABELS
    monkeypatch.setattr(_fetch, "SYSTEM_DIRS", {})
    assert where() == isolated / "fashion-mnist" / LABELS
    # a data-folder layout under root is found too
    assert where(root=data_dir) == data_dir / "fashion-mnist" / LABELS


def test_missing_files_list_every_place_and_how_to_obtain(isolated, tmp_path):
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(DatasetNotFoundError) as e:
        load("cora", root=tmp_path / "nowhere", download=False)
    msg = str(e.value)
    assert "ind.cora.x" in msg
    assert str(tmp_path / "nowhere" / "planetoid" / "ind.cora.x") in msg
    assert "HGCNET_DATA_DIR: (not set)" in msg
    assert str(isolated / "planetoid" / "ind.cora.x") in msg
    assert "download=False" in msg
    assert "github.com/kimiyoung/planetoid" in msg


def test_a_root_or_data_dir_that_is_not_a_folder_is_an_error(isolated, tmp_path, monkeypatch):
    # a typo must not silently fall through to a download
    with pytest.raises(NotADirectoryError, match=r"root='.*typo' is not a folder"):
        load("cora", root=tmp_path / "typo")
    monkeypatch.setenv("HGCNET_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(NotADirectoryError, match=r"HGCNET_DATA_DIR=.*is not a folder"):
        load("cora")


def test_amazon_has_no_canonical_url(isolated):
    with pytest.raises(DatasetNotFoundError, match=r"no canonical download URL.*HGCNET_DATA_URL"):
        load("amazon_reviews")


def test_download_from_local_server(isolated, serve, data_dir):
    with serve(data_dir) as (url, requests):
        ds = load("cora", base_url=url)
    assert ds.graph.senders.size == 10556
    assert sorted(requests) == sorted(f"/planetoid/{f}" for f in CORA)
    cached = _files_under(isolated)
    assert [p.name for p in cached] == sorted(CORA)
    for p in cached:
        assert _sha(p) == KNOWN_FILES[p.name].sha256
    # the next load is served from the cache, without the server
    again = load("cora", download=False)
    np.testing.assert_array_equal(again.x, ds.x)
    assert all(str(isolated) in v for v in again.meta["source_files"].values())


def test_download_mirror_from_environment(isolated, serve, data_dir, monkeypatch):
    with serve(data_dir) as (url, requests):
        monkeypatch.setenv("HGCNET_DATA_URL", url + "/")
        paths = _fetch.fetch([LABELS], dataset="fashion_mnist", how_to_obtain="")
    assert requests == [f"/fashion-mnist/{LABELS}"]
    assert paths[LABELS] == isolated / "fashion-mnist" / LABELS
    assert _sha(paths[LABELS]) == KNOWN_FILES[LABELS].sha256


def test_corrupt_download_leaves_nothing(isolated, serve_corrupt, data_dir):
    with serve_corrupt(data_dir) as (url, requests):
        with pytest.raises(ChecksumError, match=r"ind\.cora\.\S+ from http://127\.0\.0\.1.*nothing was kept"):
            load("cora", base_url=url)
    assert len(requests) == 1
    assert _files_under(isolated) == []  # not even a temporary file


def test_interrupted_download_leaves_nothing(isolated, serve_truncated, data_dir):
    with serve_truncated(data_dir) as (url, _):
        with pytest.raises(DatasetNotFoundError, match=r"interrupted after \d+ of \d+ bytes"):
            load("cora", base_url=url)
    assert _files_under(isolated) == []


def test_unreachable_server(isolated):
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        DatasetNotFoundError, match=rf"could not download http://127\.0\.0\.1:{port}/planetoid/ind\.cora"
    ):
        load("cora", base_url=f"http://127.0.0.1:{port}")
    assert _files_under(isolated) == []


def test_http_error_is_reported(isolated, serve, tmp_path):
    (tmp_path / "empty").mkdir()
    with serve(tmp_path / "empty") as (url, _), pytest.raises(DatasetNotFoundError, match="404"):
        load("cora", base_url=url)
    assert _files_under(isolated) == []


def test_unverifiable_download_is_refused(isolated, serve, tmp_path, fake_planetoid):
    fake_planetoid(tmp_path / "mirror" / "planetoid", "pubmed")
    with serve(tmp_path / "mirror") as (url, requests):
        with pytest.raises(DatasetNotFoundError, match=r"no SHA-256 is known for ind\.pubmed\.\S+.*checksums="):
            load("pubmed", base_url=url)
        assert requests == []
        # with the digests supplied by the user the same files download and load
        sums = {p.name: _sha(p) for p in (tmp_path / "mirror" / "planetoid").iterdir()}
        ds = load("pubmed", base_url=url, checksums=sums)
    assert ds.x.shape == (12, 4)
    assert len(_files_under(isolated)) == 8


def test_bad_arguments_are_named(isolated):
    with pytest.raises(ValueError, match="base_url"):
        load("cora", base_url="ftp://example.org")
    with pytest.raises(ValueError, match=r"checksums\['ind.cora.x'\]"):
        load("cora", checksums={"ind.cora.x": "abc"})
    with pytest.raises(TypeError, match="download"):
        load("cora", download="yes")


def test_user_checksum_overrides_and_guards_local_files(isolated, data_dir):
    wrong = "0" * 64
    with pytest.raises(ChecksumError, match=r"ind\.cora\.y.*expected 0{64}"):
        load("cora", root=data_dir, checksums={"ind.cora.y": wrong})
