"""The report: figures as PNG+SVG, one self-contained HTML page, escaped text, visible warnings."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from hgcnet_jax.report import FIGURES, build, html, plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _imgs(page: str) -> dict[str, bytes]:
    out = {}
    for name, data in re.findall(r'<img class="plot" data-name="([^"]+)"[^>]*src="data:image/png;base64,([^"]+)"', page):
        out[name] = base64.b64decode(data)
    return out


def test_build_writes_every_figure_and_a_self_contained_page(built_report):
    tmp_path, summary, runs = built_report
    path = tmp_path / "report.html"
    for name in FIGURES:
        png = (tmp_path / "plots" / f"{name}.png").read_bytes()
        svg = (tmp_path / "plots" / f"{name}.svg").read_text()
        assert png.startswith(PNG_MAGIC), name
        assert "<svg" in svg, name
    page = path.read_text()
    imgs = _imgs(page)
    assert set(imgs) == set(FIGURES)
    for name, data in imgs.items():
        assert data == (tmp_path / "plots" / f"{name}.png").read_bytes()
    # self-contained: no external scripts, style sheets or images
    assert not re.search(r'<(script|link)\b', page)
    assert not re.search(r'src="(?!data:)', page)
    # no temporary files left behind by the atomic writes
    assert not list(tmp_path.rglob("*.tmp"))


def _saved(folder):
    return {n: {"png": folder / "plots" / f"{n}.png", "svg": folder / "plots" / f"{n}.svg"} for n in FIGURES}


def test_page_shows_the_numbers_of_the_summary(built_report):
    folder, summary, runs = built_report
    page = html.render(summary, _saved(folder))
    assert "B = 16</b>" in page                      # recommended batch size
    assert "0.998" in page                           # P(beats current)
    assert "0.0301" in page and "[0.0231, 0.0372]" in page   # ATE and interval
    assert "0.0123" in page                          # permutation p-value
    assert "through N" in page and "through S" in page
    assert "-120.50" in page and "-124.00" in page   # elpd of both graphs
    assert "FAILED" in page and "passed" in page     # refutation verdicts
    # text from the summary is escaped
    assert "&lt;test&gt;" in page and "<test>" not in page
    assert 'id="warnings"' not in page and 'id="diagnostics-warning"' not in page


def test_poor_diagnostics_give_a_visible_warning(built_report, summary_factory):
    folder = built_report[0]
    s = summary_factory(diagnostics_ok=False)
    page = html.render(s, _saved(folder))
    assert 'id="diagnostics-warning"' in page and 'id="warnings"' in page
    assert "R-hat 1.31" in page and "POOR" in page


def test_interventional_plot_draws_one_band_per_model_and_every_run(summary, runs):
    fig = build.figures(summary, runs)["interventional"]
    assert "hypergraph" not in build.figures(summary, runs)     # no graph given: no drawing
    ax = fig.axes[0]
    assert len(ax.collections) == 1 + len(summary["interventional"]["curves"])   # scatter + bands
    offsets = ax.collections[0].get_offsets()
    assert len(offsets) == len(runs)
    np.testing.assert_allclose(np.sort(offsets[:, 1]), np.sort(runs["test_acc"].to_numpy()))
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("E[G")]
    np.testing.assert_allclose(lines[0].get_ydata(), summary["interventional"]["curves"]["hypergraph"]["mean"])


def test_hypergraph_drawing_labels_edges_with_their_effects(summary):
    from hgcnet_jax.causal import Hypergraph

    fig = plots.hypergraph(Hypergraph.paper(direct=True), summary["hypergraph_edges"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "{N, S}: +0.25" in texts and "-0.90" in texts and "+0.40" in texts and "-0.50" in texts
    assert "+0.70" not in texts          # main effects carried by the hyperedge are not drawn as edges
    assert all(n in texts for n in "BNSCG")


def test_save_is_atomic_and_overwrites(tmp_path):
    fig = plots.effects({"total": (0.1, 0.0, 0.2)})
    a = plots.save(fig, tmp_path, "ate")
    b = plots.save(fig, tmp_path, "ate")
    assert a == b and a["png"].read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ate.png", "ate.svg"]


@pytest.mark.parametrize("missing", ["recommendation", "ate"])
def test_render_requires_the_core_sections(summary, missing):
    del summary[missing]
    with pytest.raises(KeyError):
        html.render(summary, {})


def test_best_equal_to_current_says_keep_it(built_report, summary_factory):
    """When the recommendation is the user's own batch size, the page and the figure say
    to keep it instead of 'P(beats B=...) = 0.000'."""
    folder = built_report[0]
    s = summary_factory()
    s["recommendation"] = dict(s["recommendation"], best_batch_size=128, current_batch_size=128, prob_beats_current=0.0,
                               best_time_per_epoch_s=0.25, time_ratio_vs_current=1.0)
    page = html.render(s, _saved(folder))
    headline = re.search(r'<p class="headline" id="recommendation">(.*?)</p>', page).group(1)
    assert "keep it" in headline and "0.000" not in headline and "beats" not in headline
    fig = plots.recommendation([16, 32, 64, 128], [0.7] * 4, [0.6] * 4, [0.8] * 4, [0.5, 0.4, 0.3, 0.25],
                               best=128, current=128, prob_beats_current=0.0)
    assert "keep it" in fig.axes[0].get_title()


def test_compile_time_is_on_its_own_line(built_report, summary_factory):
    from hgcnet_jax.report import text

    s = summary_factory()
    s["recommendation"] = dict(s["recommendation"], compile_time_note=text.compile_note({"16": 3.25, "128": 1.5}))
    page = html.render(s, _saved(built_report[0]))
    line = re.search(r'<p class="sub" id="compile-time">(.*?)</p>', page).group(1)
    assert "B = 16: 3.2 s" in line and "B = 128: 1.5 s" in line and "not in the time per epoch" in line
