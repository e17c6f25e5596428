"""hgcnet_jax: intervene on training, measure what happens inside, fit a causal hypergraph.

The flow of the main job, one module per step::

    data.load ─► train.make_task ─► train.sweep ─► mediators.measure ─► causal.fit ─► study / report
                                         └──► prune (Granger-causal and magnitude pruning)

The names below are the public API; everything else is reachable through the
subpackages (``hgcnet_jax.curvature.spectral_density`` …).
"""

from hgcnet_jax import causal, compile_cache, curvature, data, mediators, models, prune, train
from hgcnet_jax.causal import (
    Criticism,
    Hypergraph,
    MediatorNotIdentifiedWarning,
    ate,
    criticize,
    fit,
    interventional_mean,
    mediation,
)
from hgcnet_jax.curvature import hessian_trace, hvp, lanczos, spectral_density, top_eigenvalues
from hgcnet_jax.data import Dataset, load
from hgcnet_jax.mediators import measure
from hgcnet_jax.train import Budget, Intervention, SweepResult, Task, grid, make_task, sweep
from hgcnet_jax._version import __version__

__all__ = [
    # subpackages
    "data",
    "models",
    "train",
    "curvature",
    "mediators",
    "causal",
    "prune",
    "compile_cache",
    # data
    "Dataset",
    "load",
    # training
    "Task",
    "make_task",
    "Intervention",
    "grid",
    "Budget",
    "sweep",
    "SweepResult",
    # curvature
    "hvp",
    "lanczos",
    "top_eigenvalues",
    "spectral_density",
    "hessian_trace",
    # mediators
    "measure",
    # causal
    "Hypergraph",
    "fit",
    "interventional_mean",
    "ate",
    "mediation",
    "criticize",
    "Criticism",
    "MediatorNotIdentifiedWarning",
]
