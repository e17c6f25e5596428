"""Shared synthetic tables and fits for the causal tests.

Compiling the NUTS program dominates the cost of a fit (each fitted table after the
first costs well under a second), so the tests share two compiled programs: every
synthetic table is fitted once with the direct-edge hypergraph and once with its
pairwise twin, via :func:`hgcnet_jax.causal.fit_many`.
"""

import warnings

import jax
import pytest

from hgcnet_jax import causal

#: The truth: non-linear in log2(B), {N, S} → C interaction, direct B → G path.
SCM = causal.SyntheticSCM()
#: The same without the interaction (an additive truth).
ADDITIVE = causal.SyntheticSCM(interaction=0.0)
A, B = 16, 512
NUM_INTERACTION_TABLES = 20
NUM_ADDITIVE_TABLES = 10
#: A second block of interaction tables (seeds 120-139), fitted separately so that the
#: first block's fits do not depend on it (fit_many splits its key per table).
NUM_REPLICATION_TABLES = 20
ROWS = 200
NUTS = dict(num_warmup=400, num_samples=400, num_chains=2)


@pytest.fixture(scope="session")
def synthetic_tables():
    """20 tables (with their true noise) from SCM, then 10 from ADDITIVE; 200 runs each."""
    inter = [SCM.sample(ROWS, key=jax.random.key(100 + i), return_noise=True) for i in range(NUM_INTERACTION_TABLES)]
    add = [ADDITIVE.sample(ROWS, key=jax.random.key(200 + i), return_noise=True) for i in range(NUM_ADDITIVE_TABLES)]
    return inter + add


def _fit_all(graph, tables, seed):
    with warnings.catch_warnings():
        # 2 × 400 draws now and then gives r_hat slightly above 1.01 on one parameter.
        warnings.simplefilter("ignore", causal.ConvergenceWarning)
        return causal.fit_many(graph, [t for t, _ in tables], key=jax.random.key(seed), **NUTS)


@pytest.fixture(scope="session")
def replication_tables():
    """20 more tables (with their true noise) from SCM, seeds 120-139; 200 runs each."""
    return [SCM.sample(ROWS, key=jax.random.key(120 + i), return_noise=True) for i in range(NUM_REPLICATION_TABLES)]


@pytest.fixture(scope="session")
def replication_fits(replication_tables):
    return _fit_all(causal.Hypergraph.paper(direct=True), replication_tables, 2)


@pytest.fixture(scope="session")
def direct_fits(synthetic_tables):
    return _fit_all(causal.Hypergraph.paper(direct=True), synthetic_tables, 0)


@pytest.fixture(scope="session")
def pairwise_fits(synthetic_tables):
    return _fit_all(causal.Hypergraph.paper(direct=True, pairwise=True), synthetic_tables, 1)


@pytest.fixture(scope="session")
def direct_fit(direct_fits):
    """The NUTS fit of the first interaction table."""
    return direct_fits[0]


@pytest.fixture(scope="session")
def nodirect_fit(synthetic_tables):
    """SVI fit of the graph *without* a direct B → G edge (for do-cut tests)."""
    table, _ = synthetic_tables[0]
    return causal.fit(causal.Hypergraph.paper(direct=False), table, key=jax.random.key(5), method="svi", svi_steps=1500, num_samples=400)
