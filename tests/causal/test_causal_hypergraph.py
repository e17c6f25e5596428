"""The hypergraph spec: structure, builders, validation errors and drawing."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from hgcnet_jax.causal import Edge, Hyperedge, Hypergraph, HypergraphError, Variable, draw


def _vars(*names, treatment="B", outcome="G"):
    return tuple(
        Variable(n, "treatment" if n == treatment else "outcome" if n == outcome else "mediator") for n in names
    )


def test_paper_graph_structure():
    g = Hypergraph.paper()
    assert g.topological_order() == ("B", "N", "S", "C", "G")
    assert g.parents("C") == ("N", "S")
    assert g.parents("G") == ("C",)
    assert g.treatment == "B" and g.outcomes == ("G",) and g.mediators == ("N", "S", "C")
    assert [h.label for h in g.hyperedges] == ["{N,S}->C"]
    assert g.variable("B").transform == "log2"
    assert g.descendants("B") == ("N", "S", "C", "G")
    assert not g.has_path("G", "B")


def test_pairwise_twin_has_same_parents_and_no_hyperedges():
    g = Hypergraph.paper(direct=True)
    tw = g.pairwise()
    assert tw.hyperedges == ()
    for v in g.names:
        assert set(tw.parents(v)) == set(g.parents(v))
    assert {e.label for e in tw.edges} == {e.label for e in g.edges} | {"N->C", "S->C"}
    assert Hypergraph.paper(direct=True, pairwise=True) == tw


def test_direct_variant_and_columns():
    g = Hypergraph.paper({"B": "batch_size", "G": "test_acc"}, direct=True, covariates=["dataset"])
    assert "B" in g.parents("G")
    assert g.variable("B").column == "batch_size" and g.variable("N").column == "N"
    assert g.variable("dataset").categorical
    assert all("dataset" in g.parents(v) for v in "BNSCG")
    assert "B" not in Hypergraph.paper().parents("G")


def test_with_edge_and_summary():
    g = Hypergraph.paper().with_edge("B", "S", form="rbf")
    assert g.parents("S") == ("N", "B")
    assert "B → S (rbf)" in g.summary() and "{N, S} ⇒ C" in g.summary()


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: Hypergraph(_vars("B", "G"), (Edge("B", "X"),)), "unknown child variable 'X'"),
        (lambda: Hypergraph(_vars("B", "G"), (Edge("Q", "G"),)), "unknown parent variable 'Q'"),
        (lambda: Hypergraph(_vars("B", "N", "G"), (), (Hyperedge(("N", "Z"), "G"),)), "unknown variable 'Z'"),
        (lambda: Edge("N", "N"), "its own parent"),
        (lambda: Hyperedge(("N", "S"), "S"), "its own parent"),
        (lambda: Hyperedge(("N",), "C"), "at least two members"),
        (
            lambda: Hypergraph(_vars("B", "N", "S", "G"), (Edge("B", "N"), Edge("N", "S"), Edge("S", "N"), Edge("S", "G"))),
            "directed cycle among .*'N', 'S'",
        ),
        (
            lambda: Hypergraph(_vars("B", "N", "C", "G"), (Edge("C", "N"),), (Hyperedge(("B", "N"), "C"),)),
            "directed cycle",
        ),
        (lambda: Hypergraph(_vars("B", "B", "G")), "duplicate names \\['B'\\]"),
        (lambda: Hypergraph(_vars("B", "G"), (Edge("B", "G"), Edge("B", "G"))), "duplicate edges"),
        (lambda: Hypergraph((Variable("B", "mediator"), Variable("G", "outcome"))), "exactly one treatment"),
        (lambda: Hypergraph((Variable("B", "treatment"), Variable("G", "mediator"))), "role 'outcome'"),
        (
            lambda: Hypergraph((*_vars("B", "G"), Variable("z", "covariate")), (Edge("B", "z"),)),
            "covariate 'z' has parents",
        ),
        (lambda: Variable("B", "boss"), "role of 'B'"),
        (lambda: Variable("B", transform="sqrt"), "transform of 'B'"),
        (lambda: Variable("not a name"), "identifier"),
        (lambda: Variable("N", "mediator", categorical=True), "only allowed for covariates"),
        (lambda: Variable("G", "outcome", cut_column="set_g"), "only allowed for mediators"),
        (lambda: Edge("B", "N", form="cubic"), "Edge.form"),
        (lambda: Hyperedge(("N", "S"), "C", form="gp"), "Hyperedge.form"),
        (lambda: Hypergraph(_vars("B", "G"), noise="cauchy"), "Hypergraph.noise"),
        (lambda: Hypergraph.paper({"Q": "q"}), "unknown keys \\['Q'\\]"),
        (lambda: Hypergraph.paper(cut_columns={"G": "g_set"}), "cut_columns keys"),
    ],
)
def test_bad_specs_raise_clear_errors(build, match):
    with pytest.raises(HypergraphError, match=match):
        build()


def test_hypergraph_error_is_a_value_error():
    assert issubclass(HypergraphError, ValueError)


@pytest.mark.parametrize("transform", ["identity", "log", "log2", "log10", "logit"])
def test_transforms_round_trip(transform):
    v = Variable("B", "treatment", transform=transform)
    x = np.array([0.01, 0.3, 0.7, 0.99])
    np.testing.assert_allclose(v.inverse(v.forward(x)), x, rtol=1e-12)
    assert v.in_domain(x).all()


def test_log2_forward():
    v = Variable("B", "treatment", transform="log2")
    np.testing.assert_allclose(v.forward([16, 512]), [4.0, 9.0])
    assert not v.in_domain(np.array([0.0]))[0]


def test_draw_marks_hyperedges_differently():
    matplotlib.use("Agg")
    g = Hypergraph.paper(direct=True, covariates=["dataset"])
    fig = draw(g)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    hulls = [p for p in ax.patches if isinstance(p, Polygon)]
    assert len(hulls) == len(g.hyperedges) == 1
    labels = [t.get_text() for t in ax.texts]
    assert {"B", "N", "S", "C", "G", "interaction"} <= set(labels)
    fig_pw = draw(g.pairwise())
    assert not [p for p in fig_pw.axes[0].patches if isinstance(p, Polygon)]
    import matplotlib.pyplot as plt

    plt.close("all")
