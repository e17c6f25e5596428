"""Causal hypergraph engine: NumPyro structural causal models over a causal hypergraph.

From a table of runs (one row per run: batch size, mediators, generalisation and
covariates) :func:`fit` builds a NumPyro model from a :class:`Hypergraph` spec and
infers its posterior (NUTS or SVI). Queries wrap that one model in effect handlers
(``do``, ``condition``, ``substitute``, ``seed``, ``trace``).

The modules, each importing only those above it: ``hypergraph`` (the spec), ``data``
(:func:`prepare`: checks and standardises a table), ``model`` (:func:`make_model`),
``convergence`` (:func:`diagnostics`), ``fit`` (:class:`Fit`, the result, rebuilt from
a saved posterior by :meth:`Fit.from_idata`), ``inference`` (:func:`fit`,
:func:`fit_many`), then the queries (``effects``, ``compare``, ``refute``,
``recommend``, ``frequentist``), the criticism of a fit (``criticize``: arm checks,
local Markov independences, the falsification test, posterior predictive checks,
leave-one-batch-size-out; :func:`holdout_check`), the candidate graphs ranked by LOO
among those that pass (``search``), the NIE's sensitivity to mediator–outcome
confounding (``sensitivity``), and ``synthetic`` (ground truths, inside the paper's
graph and outside it). This ``__all__`` is
the public API; the plumbing between them (``Scaling``, ``Layout``,
``pointwise_log_likelihood`` …) is reached through its module.

>>> import jax
>>> from hgcnet_jax import causal
>>> scm = causal.SyntheticSCM()                       # known ground truth
>>> data = scm.sample(200, key=jax.random.key(0))
>>> fit = causal.fit(causal.Hypergraph.paper(direct=True), data, key=jax.random.key(1))  # doctest: +SKIP
>>> causal.ate(fit, "B", 16, 512, "G")                # E[G | do(B=16)] − E[G | do(B=512)]  # doctest: +SKIP
>>> causal.mediation(fit, "B", 16, 512, "G").table()  # NDE, NIE, path-specific  # doctest: +SKIP
>>> causal.loo_compare(fit, causal.fit(fit.graph.pairwise(), data, key=jax.random.key(2)))  # doctest: +SKIP
"""

from .compare import LooComparison, loo_compare
from .convergence import ConvergenceWarning, Diagnostics, diagnostics
from .criticize import Criticism, Falsification, HoldoutCheck, criticize, holdout_check
from .data import DataError, prepare
from .draw import draw
from .effects import Effect, Mediation, abduct, ate, conditional_ate, interventional_mean, mediation, simulate
from .fit import Fit, FitConfig
from .frequentist import PermutationResult, permutation_test
from .hypergraph import NOISE_SCALES, ROLES, TRANSFORMS, Edge, Hyperedge, Hypergraph, HypergraphError, Variable
from .identify import MediatorNotIdentifiedWarning, identification
from .inference import fit, fit_many
from .model import make_model
from .recommend import Recommendation, recommend, recommend_from_arms
from .refute import REFUTERS, refute
from .search import GraphSearch, candidate_graphs, search_graphs
from .sensitivity import Sensitivity, nie_sensitivity
from .synthetic import BudgetSCM, SyntheticSCM, TrueEffects

__all__ = [
    # spec
    "Hypergraph",
    "Variable",
    "Edge",
    "Hyperedge",
    "HypergraphError",
    "NOISE_SCALES",
    "ROLES",
    "TRANSFORMS",
    "draw",
    # model and inference
    "fit",
    "fit_many",
    "Fit",
    "FitConfig",
    "make_model",
    "prepare",
    "DataError",
    "ConvergenceWarning",
    "MediatorNotIdentifiedWarning",
    "identification",
    "Diagnostics",
    "diagnostics",
    # queries
    "Effect",
    "Mediation",
    "interventional_mean",
    "ate",
    "mediation",
    "conditional_ate",
    "abduct",
    "simulate",
    "LooComparison",
    "loo_compare",
    "REFUTERS",
    "refute",
    "Recommendation",
    "recommend",
    "recommend_from_arms",
    "Criticism",
    "Falsification",
    "criticize",
    "HoldoutCheck",
    "holdout_check",
    "GraphSearch",
    "candidate_graphs",
    "search_graphs",
    "Sensitivity",
    "nie_sensitivity",
    "PermutationResult",
    "permutation_test",
    # ground truth
    "SyntheticSCM",
    "BudgetSCM",
    "TrueEffects",
]
