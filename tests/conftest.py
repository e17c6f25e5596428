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

#: The suite compiles hundreds of small programs, and on a 2-core CPU compiling them is most of
#: its time. LLVM's backend optimisations make them run faster but compile slower (measured:
#: tests/curvature/test_lanczos.py 55.6 s → 45.6 s without them). No test times anything, and
#: every test asserts what holds under any rounding, so the tests check the same properties
#: either way; set HGCNET_TEST_XLA_OPT=1 to test with XLA's default optimisation instead.
_FAST_COMPILE = ("" if os.environ.get("HGCNET_TEST_XLA_OPT") == "1"
                 else " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8" + _FAST_COMPILE
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


#: The test files that share tests/causal/conftest.py's session fixtures (NUTS fits of 50
#: synthetic tables). They run on one xdist worker, so those fits are computed once per
#: session instead of once per worker that happens to get one of these files.
_SHARED_CAUSAL = ("tests/causal/test_causal_effects.py", "tests/causal/test_causal_model.py",
                  "tests/causal/test_causal_slow.py", "tests/causal/test_causal_fit.py",
                  "tests/causal/test_criticize.py")
#: The longest work units, started first (longest first) so that no worker idles at the end;
#: each file's own order is kept. A work unit is a file (a module fixture, such as the tiny
#: study, is computed once) or the _SHARED_CAUSAL group.
_FIRST = (*_SHARED_CAUSAL, "tests/study/test_notebooks.py", "tests/study/test_study.py",
          "tests/causal/test_criticize_slow.py", "tests/experiments/test_prune_granger_fair.py", "tests/train/test_sweep.py",
          "tests/mediators/test_measure.py", "tests/train/test_distributed.py", "tests/mediators/test_probe.py", "tests/experiments/test_bs_ate.py",
          "tests/curvature/test_lanczos.py", "tests/curvature/test_operators.py", "tests/experiments/test_bs_regularisation.py",
          "tests/prune/test_structured_procedure.py", "tests/curvature/test_density.py", "tests/train/test_checkpoint.py",
          "tests/prune/test_lasso_precision.py", "tests/prune/test_lasso_batch.py", "tests/mediators/test_trajectory.py",
          "tests/prune/test_lasso.py", "tests/models/test_models.py")


def _unit_of(nodeid: str) -> str:
    name = nodeid.split("::", 1)[0]
    return "shared-causal-fixtures" if name in _SHARED_CAUSAL else name


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The longest work units first (a stable sort: each file's own order is kept)."""
    rank = {name: i for i, name in enumerate(_FIRST)}

    def file_of(item) -> str:
        return Path(str(item.fspath)).resolve().relative_to(REPO).as_posix()

    items.sort(key=lambda item: rank.get(file_of(item), len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's file-scope scheduling, with _SHARED_CAUSAL as one unit and the collection's order kept.

    ``--dist loadfile`` alone re-sorts its units by test count (``--loadscope-reorder`` is on
    by default), which ignored _FIRST, and it cannot join files.
    """
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit_of(nodeid)

    config.option.loadscopereorder = False
    return Scheduling(config, log)


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
