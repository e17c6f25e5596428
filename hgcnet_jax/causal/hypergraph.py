"""Causal hypergraphs: variables with roles and transforms, edges and hyperedges.

A :class:`Hypergraph` is a pure specification. It says which variables exist,
which column of a runs table each one reads, how its raw values are transformed
before modelling, and which parents act on each child:

* an :class:`Edge` ``p → c`` contributes an *additive* term ``f(p)`` to the
  structural equation of ``c`` (linear, or a flexible radial-basis expansion);
* a :class:`Hyperedge` ``{p1, …, pk} → c`` contributes one *joint* term
  ``g(p1, …, pk)`` (all products of its members, or a small neural network),
  which is what distinguishes a hypergraph from its pairwise twin.

The model built from a spec lives in :mod:`hgcnet_jax.causal.model`; the spec itself
never touches data, so every check here runs before any inference starts.

Example::

    >>> from hgcnet_jax.causal import Hypergraph
    >>> g = Hypergraph.paper()          # B → N → S → C → G, {N, S} → C
    >>> g.parents("C")
    ('N', 'S')
    >>> g.pairwise().hyperedges
    ()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np

__all__ = [
    "NOISE_SCALES",
    "ROLES",
    "TRANSFORMS",
    "Variable",
    "Edge",
    "Hyperedge",
    "Hypergraph",
    "HypergraphError",
]

Role = Literal["treatment", "mediator", "outcome", "covariate"]
ROLES: tuple[str, ...] = ("treatment", "mediator", "outcome", "covariate")

#: Forward transforms (raw → model scale) and their inverses (model → raw).
TRANSFORMS: dict[str, tuple] = {
    "identity": (lambda x: x, lambda y: y),
    "log": (np.log, np.exp),
    "log2": (np.log2, lambda y: np.power(2.0, y)),
    "log10": (np.log10, lambda y: np.power(10.0, y)),
    "logit": (lambda x: np.log(x) - np.log1p(-x), lambda y: np.exp(-np.logaddexp(0.0, -np.asarray(y)))),  # overflow-free
}
# Domain of each transform, checked on the data (name → predicate, description).
_DOMAINS: dict[str, tuple] = {
    "identity": (lambda x: np.ones_like(x, dtype=bool), "any finite value"),
    "log": (lambda x: x > 0, "values > 0"),
    "log2": (lambda x: x > 0, "values > 0"),
    "log10": (lambda x: x > 0, "values > 0"),
    "logit": (lambda x: (x > 0) & (x < 1), "values in (0, 1)"),
}

#: How each structural equation's noise scale is modelled (:attr:`Hypergraph.noise_scale`).
NOISE_SCALES: tuple[str, ...] = ("constant", "parents")

#: log |d transform(x) / dx| per transform, on each transform's domain: the delta method's factor
#: (standard errors to the model scale) and the log-Jacobian (model-scale densities to raw units).
_LOG_SLOPES: dict[str, object] = {
    "identity": lambda x: np.zeros_like(x),
    "log": lambda x: -np.log(x),
    "log2": lambda x: -np.log(x * np.log(2.0)),
    "log10": lambda x: -np.log(x * np.log(10.0)),
    "logit": lambda x: -np.log(x) - np.log1p(-x),
}

EdgeForm = Literal["linear", "rbf"]
HyperedgeForm = Literal["interaction", "mlp"]


class HypergraphError(ValueError):
    """An invalid hypergraph specification (unknown variable, cycle, self-parent …)."""


@dataclasses.dataclass(frozen=True)
class Variable:
    """One node of the hypergraph.

    Attributes:
        name: The node's name; also the name of its NumPyro sample site.
        role: ``"treatment"``, ``"mediator"``, ``"outcome"`` or ``"covariate"``.
            Covariates are exogenous inputs (conditioned on, never modelled).
        column: The column of the runs table holding its raw values
            (defaults to ``name``).
        transform: Applied to raw values before standardisation: one of
            :data:`TRANSFORMS` (``"log2"`` suits batch sizes). Interventions such
            as ``do(B=16)`` are given in raw units and transformed internally.
        categorical: Only for covariates: the column holds group labels (dataset,
            model …); each level gets its own offset in every child's equation.
        cut_column: Only for mediators: a boolean column that is true on rows where
            an experiment *set* this variable. On those rows the variable's own
            structural equation is cut (its likelihood is dropped) while its value
            still feeds its children, so interventional and observational runs
            are fitted together.
        error_column: Only for mediators and outcomes: a column of non-negative
            standard errors of the measured values (e.g. ``noise_b_simple_se`` from
            :func:`hgcnet_jax.mediators.measure`). The observed value then enters its
            own equation as ``f(parents) + σ(parents) ε + e`` with ``e ~ N(0, se²)``
            (the error carried to the model scale by the delta method), so runs whose
            value was measured less precisely weigh less in that equation.
            Interventional queries simulate the structural equation without ``e``.
    """

    name: str
    role: Role = "mediator"
    column: str | None = None
    transform: str = "identity"
    categorical: bool = False
    cut_column: str | None = None
    error_column: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise HypergraphError(
                f"Variable.name must be a Python identifier (it names a sample site), got {self.name!r}"
            )
        if self.role not in ROLES:
            raise HypergraphError(f"Variable.role of {self.name!r} must be one of {ROLES}, got {self.role!r}")
        if self.column is None:
            object.__setattr__(self, "column", self.name)
        if not isinstance(self.column, str) or not self.column:
            raise HypergraphError(f"Variable.column of {self.name!r} must be a non-empty string, got {self.column!r}")
        if self.transform not in TRANSFORMS:
            raise HypergraphError(
                f"Variable.transform of {self.name!r} must be one of {sorted(TRANSFORMS)}, got {self.transform!r}"
            )
        if self.categorical and self.role != "covariate":
            raise HypergraphError(
                f"Variable.categorical is only allowed for covariates; {self.name!r} has role {self.role!r}"
            )
        if self.categorical and self.transform != "identity":
            raise HypergraphError(f"Variable.transform of categorical {self.name!r} must be 'identity'")
        if self.cut_column is not None and self.role != "mediator":
            raise HypergraphError(
                f"Variable.cut_column is only allowed for mediators; {self.name!r} has role {self.role!r}"
            )
        if self.error_column is not None and self.role not in ("mediator", "outcome"):
            raise HypergraphError(
                f"Variable.error_column is only allowed for mediators and outcomes; {self.name!r} has role {self.role!r}"
            )

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Raw values → model scale (before standardisation)."""
        return TRANSFORMS[self.transform][0](np.asarray(x, dtype=np.float64))

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Model scale (after un-standardisation) → raw values."""
        return TRANSFORMS[self.transform][1](np.asarray(y, dtype=np.float64))

    def log_forward_slope(self, x: np.ndarray) -> np.ndarray:
        """``log |d forward / dx|`` at raw values ``x`` (inside the transform's domain): carries a
        standard error to the model scale, and a model-scale density to raw units."""
        return _LOG_SLOPES[self.transform](np.asarray(x, dtype=np.float64))

    def in_domain(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of raw values inside the transform's domain."""
        return _DOMAINS[self.transform][0](np.asarray(x, dtype=np.float64))

    @property
    def domain_text(self) -> str:
        return _DOMAINS[self.transform][1]


@dataclasses.dataclass(frozen=True)
class Edge:
    """A directed edge ``parent → child`` adding ``f(parent)`` to the child's equation.

    Attributes:
        parent: Name of the parent variable.
        child: Name of the child variable.
        form: ``"linear"`` (``β·x``) or ``"rbf"`` (``β·x + Σ_k w_k exp(−(x − c_k)² / 2h²)``
            with ``num_basis`` fixed centres over ±2 standard deviations and a
            shrinkage prior on ``w``: the flexible, "deep" edge).
        num_basis: Number of radial basis functions for ``form="rbf"``.
    """

    parent: str
    child: str
    form: EdgeForm = "linear"
    num_basis: int = 5

    def __post_init__(self) -> None:
        if self.form not in ("linear", "rbf"):
            raise HypergraphError(f"Edge.form must be 'linear' or 'rbf', got {self.form!r}")
        if not isinstance(self.num_basis, int) or self.num_basis < 2:
            raise HypergraphError(f"Edge.num_basis must be an int >= 2, got {self.num_basis!r}")
        if self.parent == self.child:
            raise HypergraphError(f"Edge {self.parent!r} → {self.child!r}: a variable cannot be its own parent")

    @property
    def label(self) -> str:
        return f"{self.parent}->{self.child}"


@dataclasses.dataclass(frozen=True)
class Hyperedge:
    """A hyperedge ``{p1, …, pk} → child``: the parents act on the child jointly.

    Attributes:
        parents: Two or more parent names (order is kept for site names).
        child: Name of the child variable.
        form: ``"interaction"`` adds ``Σ_{S ⊆ parents, |S| ≥ 2} γ_S Π_{p∈S} x_p``
            (every product of two or more members; the members' own main
            effects are added as linear terms unless an ordinary edge already
            carries them). ``"mlp"`` adds ``w₂ᵀ tanh(W₁ x_H + b₁)``, a
            one-hidden-layer network of width ``hidden`` with Normal priors.
        hidden: Hidden width for ``form="mlp"``.
    """

    parents: tuple[str, ...]
    child: str
    form: HyperedgeForm = "interaction"
    hidden: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.parents, str) or not isinstance(self.parents, Iterable):
            raise HypergraphError(f"Hyperedge.parents must be a tuple of names, got {self.parents!r}")
        object.__setattr__(self, "parents", tuple(self.parents))
        if len(self.parents) < 2:
            raise HypergraphError(
                f"Hyperedge.parents needs at least two members (use an Edge for one), got {self.parents!r}"
            )
        if len(set(self.parents)) != len(self.parents):
            raise HypergraphError(f"Hyperedge.parents has duplicates: {self.parents!r}")
        if self.child in self.parents:
            raise HypergraphError(
                f"Hyperedge {set(self.parents)} → {self.child!r}: a variable cannot be its own parent"
            )
        if self.form not in ("interaction", "mlp"):
            raise HypergraphError(f"Hyperedge.form must be 'interaction' or 'mlp', got {self.form!r}")
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise HypergraphError(f"Hyperedge.hidden must be a positive int, got {self.hidden!r}")

    @property
    def label(self) -> str:
        return "{" + ",".join(self.parents) + "}->" + self.child


@dataclasses.dataclass(frozen=True)
class Hypergraph:
    """A validated causal hypergraph.

    Attributes:
        variables: The nodes (names must be unique).
        edges: Directed edges (additive effects).
        hyperedges: Joint effects of several parents on one child.
        noise: ``"gaussian"`` or ``"student"`` (Student-t with a learned degrees of
            freedom) additive noise for every structural equation.
        noise_scale: ``"constant"`` (one noise scale per equation) or ``"parents"``
            (heteroscedastic, a location-scale equation: the log of each equation's
            noise scale is linear in its parents, so e.g. the spread of the gradient
            noise may differ between batch sizes, as it does in real sweeps).
        name: A label used in reports and model comparison.

    Raises:
        HypergraphError: on unknown variables, duplicate names or edges, a variable
            that is its own parent, a covariate with parents, a directed cycle, or a
            graph without exactly one treatment and at least one outcome.
    """

    variables: tuple[Variable, ...]
    edges: tuple[Edge, ...] = ()
    hyperedges: tuple[Hyperedge, ...] = ()
    noise: Literal["gaussian", "student"] = "gaussian"
    noise_scale: Literal["constant", "parents"] = "constant"
    name: str = "hypergraph"

    def __post_init__(self) -> None:
        for field in ("variables", "edges", "hyperedges"):
            value = getattr(self, field)
            if isinstance(value, (str, Variable, Edge, Hyperedge)) or not isinstance(value, Iterable):
                raise HypergraphError(f"Hypergraph.{field} must be a sequence, got {type(value).__name__}")
            object.__setattr__(self, field, tuple(value))
        for v in self.variables:
            if not isinstance(v, Variable):
                raise HypergraphError(f"Hypergraph.variables must hold Variable objects, got {v!r}")
        for e in self.edges:
            if not isinstance(e, Edge):
                raise HypergraphError(f"Hypergraph.edges must hold Edge objects, got {e!r}")
        for h in self.hyperedges:
            if not isinstance(h, Hyperedge):
                raise HypergraphError(f"Hypergraph.hyperedges must hold Hyperedge objects, got {h!r}")
        if self.noise not in ("gaussian", "student"):
            raise HypergraphError(f"Hypergraph.noise must be 'gaussian' or 'student', got {self.noise!r}")
        if self.noise_scale not in NOISE_SCALES:
            raise HypergraphError(
                f"Hypergraph.noise_scale must be one of {NOISE_SCALES}, got {self.noise_scale!r}"
            )
        names = [v.name for v in self.variables]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise HypergraphError(f"Hypergraph.variables: duplicate names {dup}")
        known = set(names)
        for e in self.edges:
            for end, who in (("parent", e.parent), ("child", e.child)):
                if who not in known:
                    raise HypergraphError(f"Edge {e.label}: unknown {end} variable {who!r}; known: {sorted(known)}")
        for h in self.hyperedges:
            for who in (*h.parents, h.child):
                if who not in known:
                    raise HypergraphError(f"Hyperedge {h.label}: unknown variable {who!r}; known: {sorted(known)}")
        labels = [e.label for e in self.edges]
        dup = sorted({lab for lab in labels if labels.count(lab) > 1})
        if dup:
            raise HypergraphError(f"Hypergraph.edges: duplicate edges {dup}")
        hsets = [(frozenset(h.parents), h.child) for h in self.hyperedges]
        if len(set(hsets)) != len(hsets):
            raise HypergraphError("Hypergraph.hyperedges: the same hyperedge appears twice")
        roles = {v.name: v.role for v in self.variables}
        for child in known:
            if roles[child] == "covariate" and self.parents(child):
                raise HypergraphError(
                    f"covariate {child!r} has parents {list(self.parents(child))}: covariates are exogenous; "
                    "give it role 'mediator' if it should be modelled"
                )
        treatments = [v.name for v in self.variables if v.role == "treatment"]
        if len(treatments) != 1:
            raise HypergraphError(f"Hypergraph needs exactly one treatment variable, got {treatments}")
        if not any(v.role == "outcome" for v in self.variables):
            raise HypergraphError("Hypergraph needs at least one variable with role 'outcome'")
        self.topological_order()  # raises on cycles

    # ------------------------------------------------------------------ queries
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    def variable(self, name: str) -> Variable:
        """The :class:`Variable` called ``name`` (raises naming the known ones)."""
        for v in self.variables:
            if v.name == name:
                return v
        raise HypergraphError(f"unknown variable {name!r}; known: {list(self.names)}")

    @property
    def treatment(self) -> str:
        return next(v.name for v in self.variables if v.role == "treatment")

    @property
    def outcomes(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables if v.role == "outcome")

    @property
    def mediators(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables if v.role == "mediator")

    @property
    def covariates(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables if v.role == "covariate")

    @property
    def endogenous(self) -> tuple[str, ...]:
        """Modelled variables (everything but covariates), in topological order."""
        roles = {v.name: v.role for v in self.variables}
        return tuple(n for n in self.topological_order() if roles[n] != "covariate")

    def edges_into(self, child: str) -> tuple[Edge, ...]:
        return tuple(e for e in self.edges if e.child == child)

    def hyperedges_into(self, child: str) -> tuple[Hyperedge, ...]:
        return tuple(h for h in self.hyperedges if h.child == child)

    def parents(self, child: str) -> tuple[str, ...]:
        """All parents of ``child`` (through edges and hyperedges), first-seen order."""
        out: list[str] = []
        for e in self.edges_into(child):
            out.append(e.parent)
        for h in self.hyperedges_into(child):
            out.extend(h.parents)
        return tuple(dict.fromkeys(out))

    def children(self, parent: str) -> tuple[str, ...]:
        return tuple(n for n in self.names if parent in self.parents(n))

    def topological_order(self) -> tuple[str, ...]:
        """Variables ordered so that parents come first (Kahn's algorithm, stable).

        Raises:
            HypergraphError: naming the variables on a directed cycle.
        """
        parents = {n: set(self.parents(n)) for n in self.names}
        order: list[str] = []
        remaining = list(self.names)
        while remaining:
            ready = [n for n in remaining if parents[n] <= set(order)]
            if not ready:
                cycle = _find_cycle(parents, remaining)
                raise HypergraphError(
                    f"Hypergraph has a directed cycle among {sorted(cycle)}: {' → '.join([*cycle, cycle[0]])}; "
                    "a causal graph must be acyclic: remove or reverse one of these edges"
                )
            order.extend(ready)
            remaining = [n for n in remaining if n not in ready]
        return tuple(order)

    def descendants(self, name: str) -> tuple[str, ...]:
        """Variables reachable from ``name`` by directed (hyper)edges."""
        self.variable(name)
        seen: list[str] = []
        frontier = [name]
        while frontier:
            node = frontier.pop()
            for c in self.children(node):
                if c not in seen:
                    seen.append(c)
                    frontier.append(c)
        order = self.topological_order()
        return tuple(n for n in order if n in seen)

    def has_path(self, source: str, target: str) -> bool:
        return target in self.descendants(source)

    # --------------------------------------------------------------- builders
    def pairwise(self) -> Hypergraph:
        """The pairwise twin: every hyperedge replaced by linear edges from its members.

        The twin has the same parent sets (so the same conditional independences)
        but additive effects only; comparing the two (:func:`~hgcnet_jax.causal.loo_compare`)
        tests whether the joint effect is needed.
        """
        edges = list(self.edges)
        have = {e.label for e in edges}
        for h in self.hyperedges:
            for p in h.parents:
                e = Edge(p, h.child)
                if e.label not in have:
                    edges.append(e)
                    have.add(e.label)
        return dataclasses.replace(self, edges=tuple(edges), hyperedges=(), name=f"{self.name}-pairwise")

    def with_edge(self, parent: str, child: str, form: EdgeForm = "linear") -> Hypergraph:
        """A copy with the edge ``parent → child`` added (validated)."""
        return dataclasses.replace(self, edges=(*self.edges, Edge(parent, child, form=form)))

    def with_variable(self, variable: Variable, *, children: Iterable[str] = ()) -> Hypergraph:
        """A copy with ``variable`` added and linear edges from it into ``children``."""
        edges = tuple(Edge(variable.name, c) for c in children)
        return dataclasses.replace(self, variables=(*self.variables, variable), edges=(*self.edges, *edges))

    def with_forms(
        self,
        edge_form: EdgeForm | Mapping[str, EdgeForm] | None = None,
        hyperedge_form: HyperedgeForm | None = None,
        *,
        num_basis: int | None = None,
    ) -> Hypergraph:
        """A copy with the functional forms of its edges and hyperedges replaced.

        This is how a configuration chooses the flexible ("deep") equations: e.g.
        ``g.with_forms("rbf", "mlp")`` makes every edge a linear term plus radial basis
        functions and every hyperedge a small network; ``g.with_forms({"B->N": "rbf"})``
        changes only the edges named (by :attr:`Edge.label`), e.g. to let the batch
        size act through a threshold-like curve of ``log2 B``.

        Args:
            edge_form: ``"linear"`` or ``"rbf"`` for every edge, or ``{label: form}``.
            hyperedge_form: ``"interaction"`` or ``"mlp"`` for every hyperedge.
            num_basis: Radial basis functions of the rbf edges (default: each edge's own).

        Raises:
            HypergraphError: on an unknown edge label or form.
        """
        if isinstance(edge_form, Mapping):
            unknown = sorted(set(edge_form) - {e.label for e in self.edges})
            if unknown:
                raise HypergraphError(f"with_forms: unknown edge(s) {unknown}; edges: {[e.label for e in self.edges]}")
            forms = dict(edge_form)
        else:
            forms = {e.label: edge_form for e in self.edges} if edge_form is not None else {}
        edges = tuple(
            dataclasses.replace(e, form=forms.get(e.label, e.form), num_basis=num_basis or e.num_basis)
            for e in self.edges
        )
        hyperedges = tuple(
            h if hyperedge_form is None else dataclasses.replace(h, form=hyperedge_form) for h in self.hyperedges
        )
        return dataclasses.replace(self, edges=edges, hyperedges=hyperedges)

    def replace(self, **changes) -> Hypergraph:
        """``dataclasses.replace`` with validation."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def paper(
        cls,
        columns: Mapping[str, str] | None = None,
        *,
        direct: bool = False,
        pairwise: bool = False,
        covariates: Iterable[str | Variable] = (),
        batch_transform: str = "log2",
        edge_form: EdgeForm = "linear",
        hyperedge_form: HyperedgeForm = "interaction",
        noise: Literal["gaussian", "student"] = "gaussian",
        noise_scale: Literal["constant", "parents"] = "constant",
        cut_columns: Mapping[str, str] | None = None,
        transforms: Mapping[str, str] | None = None,
    ) -> Hypergraph:
        """The HGCNet graph ``B → N → S → C → G`` with the hyperedge ``{N, S} → C``.

        Sun, Harit & Liò (2025), *HGCNet* (arXiv 2506.17826). ``C`` has parents
        ``N`` and ``S`` through the hyperedge (plus additive main effects); ``S → C``
        is therefore carried by the hyperedge's main effects, not by a separate edge.

        Args:
            columns: Map from ``"B" "N" "S" "C" "G"`` to table columns, e.g.
                ``{"B": "batch_size", "N": "noise_b_simple", "S": "sharp_lambda_max",
                "C": "complexity_l2", "G": "test_acc"}``; missing keys default to the name.
            direct: Add a direct edge ``B → G`` (the "variant with a direct edge").
            pairwise: Return the pairwise twin (additive ``N → C`` and ``S → C``).
            covariates: Covariate columns (names, or :class:`Variable` objects for
                control over transforms / categorical levels). String names become
                categorical covariates when ``categorical`` cannot be decided here;
                pass a ``Variable`` for a continuous one. Each covariate gets an
                edge into every endogenous variable.
            batch_transform: Transform of ``B`` (``"log2"`` by default).
            edge_form: Form of every ordinary edge (``"linear"`` or ``"rbf"``).
            hyperedge_form: Form of the hyperedge (``"interaction"`` or ``"mlp"``).
            noise: Noise family of every structural equation.
            noise_scale: ``"constant"`` or ``"parents"`` (heteroscedastic equations, see
                :attr:`Hypergraph.noise_scale`).
            cut_columns: Map from mediator name to the boolean column that marks rows
                where an experiment set it (see :attr:`Variable.cut_column`).
            transforms: Map from ``"N" "S" "C" "G"`` to a :data:`TRANSFORMS` name, e.g.
                ``{"G": "logit"}``: a logit-normal equation keeps an accuracy in (0, 1)
                and lets it saturate, so ``E[G | do(B=b)]`` can never exceed 1.

        Returns:
            The validated :class:`Hypergraph`.
        """
        columns = dict(columns or {})
        unknown = set(columns) - set("BNSCG")
        if unknown:
            raise HypergraphError(f"Hypergraph.paper: columns has unknown keys {sorted(unknown)}; use B, N, S, C, G")
        cut_columns = dict(cut_columns or {})
        bad = set(cut_columns) - set("NSC")
        if bad:
            raise HypergraphError(f"Hypergraph.paper: cut_columns keys must be mediators N, S, C; got {sorted(bad)}")
        transforms = dict(transforms or {})
        bad = set(transforms) - set("NSCG")
        if bad:
            raise HypergraphError(f"Hypergraph.paper: transforms keys must be N, S, C, G (B: batch_transform); got {sorted(bad)}")
        tr = {k: transforms.get(k, "identity") for k in "NSCG"}
        variables = [
            Variable("B", "treatment", columns.get("B", "B"), transform=batch_transform),
            Variable("N", "mediator", columns.get("N", "N"), transform=tr["N"], cut_column=cut_columns.get("N")),
            Variable("S", "mediator", columns.get("S", "S"), transform=tr["S"], cut_column=cut_columns.get("S")),
            Variable("C", "mediator", columns.get("C", "C"), transform=tr["C"], cut_column=cut_columns.get("C")),
            Variable("G", "outcome", columns.get("G", "G"), transform=tr["G"]),
        ]
        edges = [Edge("B", "N", edge_form), Edge("N", "S", edge_form), Edge("C", "G", edge_form)]
        if direct:
            edges.append(Edge("B", "G", edge_form))
        hyperedges = [Hyperedge(("N", "S"), "C", form=hyperedge_form)]
        cov_vars = []
        for c in covariates:
            cov_vars.append(c if isinstance(c, Variable) else Variable(c, "covariate", categorical=True))
        for cv in cov_vars:
            if cv.role != "covariate":
                raise HypergraphError(f"Hypergraph.paper: covariate {cv.name!r} must have role 'covariate'")
            for child in "BNSCG":
                edges.append(Edge(cv.name, child))
        name = "hgcnet" + ("-direct" if direct else "")
        g = cls(tuple(variables) + tuple(cov_vars), tuple(edges), tuple(hyperedges), noise=noise,
                noise_scale=noise_scale, name=name)
        return g.pairwise() if pairwise else g

    def summary(self) -> str:
        """One line per edge and hyperedge, for logs and reports."""
        scale = ", scale depends on the parents" if self.noise_scale == "parents" else ""
        lines = [f"Hypergraph {self.name!r} ({self.noise} noise{scale})"]
        for v in self.variables:
            extra = f", transform={v.transform}" if v.transform != "identity" else ""
            extra += ", categorical" if v.categorical else ""
            extra += f", cut by {v.cut_column!r}" if v.cut_column else ""
            extra += f", standard errors in {v.error_column!r}" if v.error_column else ""
            lines.append(f"  {v.name} [{v.role}] ← column {v.column!r}{extra}")
        for e in self.edges:
            lines.append(f"  {e.parent} → {e.child} ({e.form})")
        for h in self.hyperedges:
            lines.append(f"  {{{', '.join(h.parents)}}} ⇒ {h.child} ({h.form})")
        return "\n".join(lines)


def _find_cycle(parents: dict[str, set[str]], remaining: list[str]) -> list[str]:
    """One directed cycle among ``remaining`` (every one of them has a parent among them), in edge order.

    Walks from parent to parent inside ``remaining`` until a variable repeats; the walk
    from that variable's first visit is a cycle (read backwards). Variables that only
    lie downstream of a cycle are not on it and are not named.
    """
    left = set(remaining)
    node, path, seen = remaining[0], [], {}
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(p for p in sorted(parents[node]) if p in left)
    cycle = path[seen[node]:][::-1]  # parent-to-child order
    first = cycle.index(min(cycle))
    return cycle[first:] + cycle[:first]
