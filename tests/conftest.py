"""Shared test set-up.

XLA_FLAGS is set before JAX is imported, so that sharding code runs on
8 CPU devices in every test.

One persistent XLA compilation cache serves the whole session: both xdist workers and every
subprocess the CLI, notebook and README tests start inherit ``JAX_COMPILATION_CACHE_DIR``.
The tiny study runs in several tests and notebooks, and every causal refit (refuters,
candidates, bootstrap tables of one shape) builds a fresh closure that JAX's in-memory cache
cannot recognise, so without it the suite compiles the same programs over and over (it
halves the tiny study's CPU time). A loaded executable computes exactly what a fresh compile
does; the folder is a new temporary one per session unless the caller set the variable.
"""

import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
_OWN_XLA_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:     # xdist workers inherit the controller's
    _OWN_XLA_CACHE = tempfile.mkdtemp(prefix="hgcnet-tests-xla-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_XLA_CACHE
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


#: The longest test files, started first (longest first) so that no xdist worker idles at the
#: end. ``--dist loadfile`` (pyproject's addopts) keeps each file on one worker, so a module
#: fixture is computed once (the default ``load`` split a file's tests over both workers, and
#: each computed it: the tiny study's 215 s twice). The five files that share
#: tests/causal/conftest.py's session fixtures still compute those once per worker that runs
#: one of them (xdist's ``loadgroup`` would join them, but it does not group under pytest 9.2).
_FIRST = ("tests/study/test_study.py", "tests/study/test_notebooks.py", "tests/causal/test_causal_effects.py",
          "tests/causal/test_causal_model.py", "tests/causal/test_causal_slow.py", "tests/causal/test_causal_fit.py",
          "tests/causal/test_criticize.py", "tests/causal/test_criticize_slow.py", "tests/train/test_checkpoint.py",
          "tests/study/test_folder.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The longest files first (a stable sort: each file's own order is kept)."""
    rank = {name: i for i, name in enumerate(_FIRST)}

    def file_of(item) -> str:
        return Path(str(item.fspath)).resolve().relative_to(REPO).as_posix()

    items.sort(key=lambda item: rank.get(file_of(item), len(rank)))


def pytest_unconfigure(config):
    if _OWN_XLA_CACHE is not None and not hasattr(config, "workerinput"):
        shutil.rmtree(_OWN_XLA_CACHE, ignore_errors=True)


def _data_dir() -> Path | None:
    env = os.environ.get("HGCNET_DATA_DIR")
    if env:
        return Path(env)
    guess = REPO.parent / "shared" / "data"
    return guess if guess.is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real datasets (``HGCNET_DATA_DIR``); skips when absent."""
    d = _data_dir()
    if d is None or not d.is_dir():
        pytest.skip("real datasets not available: set HGCNET_DATA_DIR to shared/data")
    return d


@pytest.fixture(scope="session")
def cora(data_dir):
    from hgcnet_jax.data import load

    return load("cora", root=data_dir)


@pytest.fixture(scope="session")
def tiny_graph():
    """A small seeded CSBM graph: fast, needs no files."""
    from hgcnet_jax.data import load

    return load("csbm", num_nodes=120, num_classes=3, num_features=16, seed=0)


@pytest.fixture(scope="session")
def digits():
    from hgcnet_jax.data import load

    return load("digits")
