"""The end-to-end batch-size study behind ``hgcnet study``, as a package:

- :mod:`~hgcnet_jax.study.pipeline`: :func:`run` — the phases in order, resumable;
- :mod:`~hgcnet_jax.study.plan`: what a study will do and whether it can (:func:`validate`);
- :mod:`~hgcnet_jax.study.folder`: the output folder, its files and atomic writes;
- :mod:`~hgcnet_jax.study.keys`: every PRNG key of a study, derived once;
- :mod:`~hgcnet_jax.study.summary`: the report's numbers (the words: :mod:`hgcnet_jax.report.text`);
- :mod:`~hgcnet_jax.study.progress`: the log and the progress bars (display only).


Pipeline (each arrow is a call into the module that owns the step):

.. code-block:: text

    data.load ─► train.make_task ─► train.sweep ─► mediators.measure ─► causal.fit (hypergraph, pairwise)
      ─► causal effects (E[G | do(B)], ATE, mediation, LOO, refutations, permutation test, recommendation)
      ─► report (plots/*.png|svg, report.html)

Everything lands in one output folder, one file per finished phase (the list:
:mod:`hgcnet_jax.study.folder`).

Every check that can fail on the config alone runs before any training
(:func:`validate`): the dataset and model, the batch sizes against the training
split, the mediator columns, and the number of runs against what the causal fit
and each refuter need (:func:`minimum_runs`). A study that fails later (every run
diverged, too few usable runs, an error in a phase) keeps every finished file,
records the failure in ``phases.json``, writes a ``report.html`` that says which
phase failed and why and what is already there, and raises
:class:`StudyPhaseError`.

Re-running with the same config resumes: every finished phase is loaded, not
recomputed, and the log says so ("sweep: resumed from …"); after a failure in the
effects the causal fits are rebuilt from their posteriors instead of refitted. A
folder that holds a study of a *different* config is refused (the error lists the
changed fields) unless ``overwrite=True``, which deletes the previous study's files
first. Recomputing a phase deletes the files of the phases after it, so the folder
never mixes results of two computations.

Progress bars and the log never change a number or the memory use: the mediators
are measured in the same groups of runs with and without them.

Example::

    >>> from hgcnet_jax import study
    >>> from hgcnet_jax.config import StudyConfig
    >>> result = study.run(StudyConfig(), out="my-study")        # doctest: +SKIP
    >>> result.summary["recommendation"]["best_batch_size"]      # doctest: +SKIP
"""

from hgcnet_jax.study import folder, keys, pipeline, plan, progress, summary
from hgcnet_jax.study.folder import ARTIFACTS, StudyFolderError, StudyPhaseError, default_out
from hgcnet_jax.study.keys import StudyKeys
from hgcnet_jax.study.pipeline import StudyResult, load, load_result, run
from hgcnet_jax.study.plan import GRAPHS, fit_table, minimum_runs, validate
from hgcnet_jax.study.summary import diagnostics, per_batch_size, summarise, time_per_epoch

__all__ = ["run", "validate", "minimum_runs", "StudyResult", "StudyFolderError", "StudyPhaseError", "ARTIFACTS",
           "default_out", "load_result", "load", "fit_table", "diagnostics", "summarise", "time_per_epoch",
           "per_batch_size", "GRAPHS", "StudyKeys", "folder", "keys", "pipeline", "plan", "progress", "summary"]
