import importlib

import pytest

import hgcnet_jax

SUBPACKAGES = ["data", "models", "train", "curvature", "mediators", "causal", "prune", "report"]


def test_top_level_all_resolves():
    missing = [n for n in hgcnet_jax.__all__ if not hasattr(hgcnet_jax, n)]
    assert missing == []
    assert len(set(hgcnet_jax.__all__)) == len(hgcnet_jax.__all__)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_all_resolves(name):
    module = importlib.import_module(f"hgcnet_jax.{name}")
    assert module.__all__, f"hgcnet_jax.{name} has an empty __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []


def test_top_level_names_are_the_subpackage_objects():
    assert hgcnet_jax.sweep is hgcnet_jax.train.sweep
    assert hgcnet_jax.load is hgcnet_jax.data.load
    assert hgcnet_jax.fit is hgcnet_jax.causal.fit


def test_version_is_the_installed_distributions():
    from importlib import metadata

    assert hgcnet_jax.__version__ == metadata.version("hgcnet_jax")
