"""What a sweep varies (:class:`Intervention`, :func:`grid`) and how long it trains (:class:`Budget`).

Learning-rate scaling relative to a base batch size :math:`B_0`:

* ``"fixed"``: :math:`\\eta = \\eta_0`;
* ``"linear"``: :math:`\\eta = \\eta_0 B / B_0` (Goyal et al. 2017);
* ``"sqrt"``: :math:`\\eta = \\eta_0 \\sqrt{B / B_0}` (Krizhevsky 2014; Hoffer et al. 2017).

Regularisers: ``l2`` adds :math:`\\lambda_2 \\theta` to the gradient (a penalty
:math:`\\tfrac{\\lambda_2}{2}\\lVert\\theta\\rVert^2`, which is what ``weight_decay`` means in
PyTorch's Adam and in Kipf & Welling's code); ``weight_decay`` is *decoupled*
(:math:`\\theta \\leftarrow \\theta - \\eta\\,\\lambda_{wd}\\,\\theta` after the optimiser step,
Loshchilov & Hutter 2019); ``l1`` adds :math:`\\lambda_1 \\operatorname{sign}\\theta`.
``reg_scope`` says which parameters they act on: ``"all"``, ``"weights"`` (every
leaf whose name is not ``bias``) or ``"first_layer"`` (the weights of the first
layer only, as in Kipf & Welling's GCN recipe).

Mediator interventions: ``noise_std`` adds isotropic Gaussian noise
:math:`\\sigma\\xi,\\ \\xi\\sim N(0, I)` to every step's gradient; ``sam_rho`` > 0 takes
sharpness-aware steps (Foret et al. 2021): the gradient is evaluated at
:math:`\\theta + \\rho\\, g / \\lVert g\\rVert`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Intervention", "grid", "Budget", "OPTIMIZERS", "LR_SCALINGS", "REG_SCOPES", "MONITORS"]

OPTIMIZERS = ("sgd", "momentum", "adam")
LR_SCALINGS = ("fixed", "linear", "sqrt")
REG_SCOPES = ("all", "weights", "first_layer")
#: Metrics early stopping can monitor, and whether higher is better.
MONITORS = ("val_acc", "val_loss")


def _check_nonneg(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"Intervention.{name} must be a finite number >= 0, got {v!r}")


@dataclasses.dataclass(frozen=True)
class Intervention:
    """One run's training configuration.

    Attributes:
        batch_size: examples (labelled nodes, for node tasks) per gradient step.
        lr: base learning rate :math:`\\eta_0` (before ``lr_scaling``).
        seed: run seed; the run's key is ``fold_in(sweep_key, seed)``, so runs with
            the same seed share their initial parameters and data order.
        optimizer: ``"sgd"``, ``"momentum"`` (heavy ball, PyTorch convention) or ``"adam"``.
        momentum: momentum coefficient; defaults to 0.9 for ``"momentum"``, 0 otherwise.
        weight_decay: decoupled weight decay.
        l2: coupled L2 coefficient (added to the gradient).
        l1: L1 coefficient (subgradient added to the gradient).
        lr_scaling: ``"fixed"``, ``"linear"`` or ``"sqrt"`` relative to ``base_batch_size``.
        base_batch_size: :math:`B_0`; defaults to ``batch_size`` (no scaling).
        reg_scope: parameters the regularisers act on (``"all"``, ``"weights"``, ``"first_layer"``).
        noise_std: standard deviation of Gaussian noise added to the gradient.
        sam_rho: sharpness-aware-minimisation radius (0 = plain gradient).
    """

    batch_size: int
    lr: float = 0.01
    seed: int = 0
    optimizer: str = "sgd"
    momentum: float | None = None
    weight_decay: float = 0.0
    l2: float = 0.0
    l1: float = 0.0
    lr_scaling: str = "fixed"
    base_batch_size: int | None = None
    reg_scope: str = "all"
    noise_std: float = 0.0
    sam_rho: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"Intervention.batch_size must be an int >= 1, got {self.batch_size!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"Intervention.lr must be a finite number > 0, got {self.lr!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not (0 <= self.seed < 2**31):
            raise ValueError(f"Intervention.seed must be an int in [0, 2**31), got {self.seed!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Intervention.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.momentum is None:
            object.__setattr__(self, "momentum", 0.9 if self.optimizer == "momentum" else 0.0)
        _check_nonneg("momentum", self.momentum)
        if self.momentum >= 1:
            raise ValueError(f"Intervention.momentum must be < 1, got {self.momentum!r}")
        if self.optimizer != "momentum" and self.momentum != 0:
            raise ValueError(
                f"Intervention.momentum is only used by optimizer='momentum' (got optimizer={self.optimizer!r}, "
                f"momentum={self.momentum!r}); use optimizer='momentum'"
            )
        for name in ("weight_decay", "l2", "l1", "noise_std", "sam_rho"):
            _check_nonneg(name, getattr(self, name))
        if self.lr_scaling not in LR_SCALINGS:
            raise ValueError(f"Intervention.lr_scaling must be one of {LR_SCALINGS}, got {self.lr_scaling!r}")
        if self.base_batch_size is None:
            object.__setattr__(self, "base_batch_size", self.batch_size)
        if isinstance(self.base_batch_size, bool) or not isinstance(self.base_batch_size, int) or self.base_batch_size < 1:
            raise ValueError(f"Intervention.base_batch_size must be an int >= 1, got {self.base_batch_size!r}")
        if self.reg_scope not in REG_SCOPES:
            raise ValueError(f"Intervention.reg_scope must be one of {REG_SCOPES}, got {self.reg_scope!r}")

    @property
    def effective_lr(self) -> float:
        """The learning rate after ``lr_scaling``."""
        ratio = self.batch_size / self.base_batch_size
        scale = {"fixed": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.lr_scaling]
        return float(self.lr) * scale

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def grid(**axes: Any) -> list[Intervention]:
    """The Cartesian product of the given axes, as a list of :class:`Intervention`.

    Each keyword is a field of :class:`Intervention`; a list/tuple/range is an axis,
    anything else a fixed value. The order is that of ``itertools.product`` over
    the keywords in the order given.

    Example:
        >>> runs = grid(batch_size=[16, 64], seed=range(3), lr=0.01, optimizer="adam")
        >>> len(runs)
        6

    Raises:
        TypeError: for a keyword that is not a field of :class:`Intervention`.
        ValueError: for an empty axis or an invalid value.
    """
    fields = {f.name for f in dataclasses.fields(Intervention)}
    unknown = sorted(set(axes) - fields)
    if unknown:
        raise TypeError(f"grid: unknown intervention field(s) {unknown}; fields are {sorted(fields)}")
    names, values = [], []
    for k, v in axes.items():
        vals = list(v) if isinstance(v, (list, tuple, range)) else [v]
        if not vals:
            raise ValueError(f"grid: axis {k!r} is empty")
        names.append(k)
        values.append(vals)
    return [Intervention(**dict(zip(names, combo))) for combo in itertools.product(*values)]


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long every run trains: exactly one of ``epochs``, ``steps`` or ``examples``, optionally with early stopping.

    An epoch is ``floor(n_train / batch_size)`` steps: each epoch is a fresh seeded
    permutation of the training examples and the last partial batch is dropped
    (so every step has exactly ``batch_size`` examples). With ``epochs`` the runs
    of different batch sizes see the same data (equal-epoch); with ``steps`` they
    take the same number of updates (equal-step); with ``examples`` they take
    ``floor(examples / batch_size)`` steps.

    Early stopping ("convergence" budget): with ``patience=P`` the budget above is the
    most a run may train; the ``monitor`` metric is evaluated at the metric cadence and a
    run stops once it has not improved on its best for ``P`` consecutive evaluations
    (``val_acc``: strictly higher; ``val_loss``: strictly lower). A stopped run's
    parameters and optimiser state stay frozen at the stop (its final parameters are those
    at the stop, not the best ones) while the other runs of its bucket go on; the runs
    table then records the steps each run took (see :func:`hgcnet_jax.train.sweep`).

    Attributes:
        epochs: number of epochs.
        steps: number of steps.
        examples: number of examples seen.
        eval_every: metric cadence in steps; ``None`` = once per epoch. The metrics
            of the final parameters are always recorded.
        patience: evaluations without improvement before a run stops; ``None``
            (default): no early stopping. Needs a validation split.
        monitor: the metric early stopping watches, ``"val_acc"`` (default) or ``"val_loss"``.
    """

    epochs: int | None = None
    steps: int | None = None
    examples: int | None = None
    eval_every: int | None = None
    patience: int | None = None
    monitor: str = "val_acc"

    def __post_init__(self) -> None:
        given = [n for n in ("epochs", "steps", "examples") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"Budget: give exactly one of epochs, steps or examples (got {given or 'none'})")
        for n in ("epochs", "steps", "examples", "eval_every", "patience"):
            v = getattr(self, n)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"Budget.{n} must be an int >= 1, got {v!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"Budget.monitor must be one of {MONITORS}, got {self.monitor!r}")
        if self.patience is None and self.monitor != "val_acc":
            raise ValueError(f"Budget.monitor={self.monitor!r} is only used with early stopping; set Budget.patience")

    def steps_per_epoch(self, batch_size: int, n_train: int) -> int:
        """``floor(n_train / batch_size)``; raises if the batch is larger than the training set."""
        if batch_size > n_train:
            raise ValueError(
                f"batch_size {batch_size} is larger than the training set ({n_train} examples); "
                "use a batch size <= the number of training examples"
            )
        return n_train // batch_size

    def total_steps(self, batch_size: int, n_train: int) -> int:
        """Number of steps a run with this batch size takes."""
        spe = self.steps_per_epoch(batch_size, n_train)
        if self.epochs is not None:
            return self.epochs * spe
        if self.steps is not None:
            return self.steps
        t = self.examples // batch_size
        if t < 1:
            raise ValueError(f"Budget.examples={self.examples} is less than one batch of {batch_size}")
        return t

    def cadence(self, batch_size: int, n_train: int) -> int:
        """Steps between metric recordings."""
        return self.eval_every if self.eval_every is not None else self.steps_per_epoch(batch_size, n_train)

    def as_dict(self) -> Mapping[str, Any]:
        """The fields as a dict; ``patience`` and ``monitor`` only with early stopping."""
        d = dataclasses.asdict(self)
        if self.patience is None:
            del d["patience"], d["monitor"]
        return d


def as_interventions(interventions: Intervention | Iterable[Intervention]) -> list[Intervention]:
    """Validate the ``interventions`` argument of :func:`sweep`."""
    if isinstance(interventions, Intervention):
        return [interventions]
    try:
        out = list(interventions)
    except TypeError:
        raise TypeError(
            f"sweep: interventions must be an Intervention or an iterable of them (e.g. grid(...)), "
            f"got {type(interventions).__name__}"
        ) from None
    if not out:
        raise ValueError("sweep: interventions is empty; pass at least one Intervention")
    for i, iv in enumerate(out):
        if not isinstance(iv, Intervention):
            raise TypeError(f"sweep: interventions[{i}] is a {type(iv).__name__}, not an Intervention")
    return out
