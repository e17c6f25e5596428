"""Fixtures for the dataset tests: an isolated environment, a local HTTP server, a fake PubMed."""

from __future__ import annotations

import collections
import contextlib
import functools
import http.server
import pickle
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """No data folder, no mirror, and a fresh user cache under tmp_path; returns the cache root."""
    monkeypatch.delenv("HGCNET_DATA_DIR", raising=False)
    monkeypatch.delenv("HGCNET_DATA_URL", raising=False)
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return cache / "hgcnet_jax"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@contextlib.contextmanager
def _serve(handler: type, directory: Path) -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []

    class Counting(handler):  # type: ignore[misc, valid-type]
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Counting, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def serve() -> Callable:
    """``with serve(folder) as (url, requests):`` serves ``folder`` on 127.0.0.1 (a free port)."""

    def start(directory: Path):
        return _serve(_QuietHandler, directory)

    return start


@pytest.fixture
def serve_corrupt() -> Callable:
    """``with serve_corrupt(folder) as (url, requests):`` serves ``folder``'s files with one byte flipped."""

    def start(directory: Path):
        class Corrupting(_QuietHandler):
            def do_GET(self):
                path = Path(self.translate_path(self.path))
                if not path.is_file():
                    self.send_error(404)
                    return
                body = bytearray(path.read_bytes())
                body[len(body) // 2] ^= 0xFF
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(bytes(body))

        return _serve(Corrupting, directory)

    return start


@pytest.fixture
def serve_truncated() -> Callable:
    """``with serve_truncated(folder) as (url, requests):`` announces each file's full length, sends half."""

    def start(directory: Path):
        class Truncating(_QuietHandler):
            def do_GET(self):  # noqa: N802
                path = Path(self.translate_path(self.path))
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True

        return _serve(Truncating, directory)

    return start


def write_fake_planetoid(folder: Path, name: str = "pubmed", protocol: int = 2) -> dict:
    """Write a tiny, valid ``ind.<name>.*`` set (12 nodes, 4 features, 3 classes, one test-id gap).

    Nodes 0..5 are ``allx`` (0..1 also ``x``); test ids are 9, 6, 7, 10, 11 (8 is a gap:
    an isolated node with no features and no label). Returns the expected arrays.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    d, c = 4, 3
    allx = (rng.random((6, d)) < 0.5).astype(np.float32)
    ally = np.eye(c, dtype=np.int32)[[0, 1, 2, 0, 1, 2]]
    test_index = [9, 6, 7, 10, 11]
    tx = (rng.random((5, d)) < 0.5).astype(np.float32)
    ty = np.eye(c, dtype=np.int32)[[1, 1, 0, 2, 2]]
    graph = collections.defaultdict(list)
    edges = [(0, 1), (1, 2), (2, 2), (3, 4), (6, 9), (9, 6), (10, 11), (5, 7)]  # a self-loop and a duplicate
    for i, j in edges:
        graph[i].append(j)
    for i in range(12):
        graph[i]  # every node is a key, as in the real files
    objs = {
        "x": sp.csr_matrix(allx[:2]),
        "y": ally[:2],
        "allx": sp.csr_matrix(allx),
        "ally": ally,
        "tx": sp.csr_matrix(tx),
        "ty": ty,
        "graph": graph,
    }
    for ext, obj in objs.items():
        (folder / f"ind.{name}.{ext}").write_bytes(pickle.dumps(obj, protocol=protocol))
    (folder / f"ind.{name}.test.index").write_text("\n".join(map(str, test_index)) + "\n")
    x = np.zeros((12, d), np.float32)
    x[:6] = allx
    x[test_index] = tx
    y = np.full(12, -1, np.int32)
    y[:6] = ally.argmax(1)
    y[test_index] = ty.argmax(1)
    undirected = {(min(i, j), max(i, j)) for i, j in edges if i != j}
    return {"x": x, "y": y, "test_index": sorted(test_index), "undirected": undirected}


@pytest.fixture
def fake_planetoid() -> Callable[..., dict]:
    """The :func:`write_fake_planetoid` writer."""
    return write_fake_planetoid
