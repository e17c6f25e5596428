"""One self-contained HTML page for a batch-size study.

:func:`render` turns a study summary (the dict written to ``summary.json`` by
:mod:`hgcnet_jax.study`) and the PNG files of its figures into a single HTML
document: the images are inlined as base64 ``data:`` URIs and the style sheet
is embedded, so the file can be mailed, archived or opened offline. Every piece
of text taken from the summary is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hgcnet_jax import _io

__all__ = ["render", "write", "FIGURES"]

#: The figures a report shows, in order: name → caption.
FIGURES: dict[str, str] = {
    "recommendation": "E[G | do(B)] against the measured time per epoch; the star marks the recommended batch size.",
    "interventional": "E[G | do(B = b)] for every batch size, hypergraph and pairwise models, with credible bands; "
    "grey points are the raw per-seed outcomes.",
    "ate": "Posterior of the average treatment effect of the smallest against the largest batch size.",
    "effects": "Total, direct and mediated effects of the ATE contrast (through N, through S).",
    "hypergraph": "The causal hypergraph B → N → S → C → G with the hyperedge {N, S} → C; labels are effect sizes.",
    "mediators": "Measured mediators against the batch size.",
    "loo": "Predictive comparison of the hypergraph and its pairwise twin (PSIS-LOO).",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1060px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f5f5f5}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
.warn{background:#fff3cd;border:2px solid #e0a800;padding:.6em 1em;border-radius:6px;margin:1em 0}
.warn h3{margin:.1em 0 .4em 0;color:#8a6100}
.ok{background:#e8f5e9;border:1px solid #66bb6a;padding:.5em 1em;border-radius:6px}
.headline{font-size:1.15em;background:#eef4fb;border-left:5px solid #1f77b4;padding:.6em 1em}
.pass{color:#2e7d32;font-weight:600}.fail{color:#c62828;font-weight:600}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
code{background:#f3f3f3;padding:0 .2em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, fmt: str = ".4f") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int,)):
        return str(x)
    try:
        return format(float(x), fmt)
    except (TypeError, ValueError):
        return _e(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, raw: bool = False) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _figure(name: str, png: Path | None, svg: Path | None) -> str:
    if png is None:
        return ""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    caption = FIGURES.get(name, name)
    svg_link = f' (<a href="plots/{_e(Path(svg).name)}">SVG</a>)' if svg is not None else ""
    return (
        f'<figure id="fig-{_e(name)}"><img class="plot" data-name="{_e(name)}" alt="{_e(caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{_e(caption)}{svg_link}</figcaption></figure>'
    )


def _criticism(crit: Mapping[str, Any], s: Mapping[str, Any]) -> str:
    """The first screen: does the causal model agree with the experiment's own arms?"""
    ok = bool(crit.get("trusted"))
    name = crit["answered_by"]
    out = [f'<div class="{"ok" if ok else "warn"}" id="criticism"><h3>'
           + ("Causal model checked against the experiment: passes" if ok else "&#9888; Causal model MISFIT")
           + f'</h3><p id="criticism-headline">{_e(crit["headline"])}</p>']
    arms = crit["arms"][name]
    out.append(f"<p>Arms of <b>{_e(name)}</b>: arm mean with its bootstrap interval against the model's "
               f"E[G | do(B = b)] with its credible interval ({_num(crit['prob'], '.0%')}).</p>")
    out.append(_table(
        ["B", "runs", "arm mean", "arm interval", "model E[G | do(B)]", "model interval", "verdict"],
        [[r["batch_size"], r["n_runs"], _num(r["arm_mean"]), f"[{_num(r['arm_lo'])}, {_num(r['arm_hi'])}]",
          _num(r["model_mean"]), f"[{_num(r['model_lo'])}, {_num(r['model_hi'])}]",
          '<span class="fail">MISS</span>' if r["miss"] else '<span class="pass">agrees</span>'] for r in arms],
        raw=True))
    out.append("<p>Candidate graphs, best PSIS-LOO first (ELPD of the variables all candidates model):</p>")
    out.append(_table(
        ["graph", "Δelpd", "SE", "criticism", "arm misses", "rejected independences", "falsification p", "ATE",
         "first reason"],
        [[("<b>" + _e(r["candidate"]) + "</b> (chosen)") if r["chosen"] else _e(r["candidate"]),
          _num(r["d_elpd"], ".2f"), _num(r["se"], ".2f"),
          '<span class="pass">passes</span>' if r["ok"] else '<span class="fail">fails</span>',
          r["arm_misses"], r["rejected_independences"], _num(r["falsification_p"], ".3f"),
          f"{_num(r['ate_mean'], '+.4f')} [{_num(r['ate_lo'], '+.4f')}, {_num(r['ate_hi'], '+.4f')}]",
          _e(r["reasons"][0] if r["reasons"] else "")] for r in crit["candidates"]],
        raw=True))
    if crit.get("not_identified"):
        out.append("<p>Mediators not identified (measurement error as large as their spread across batch sizes): "
                   + ", ".join(f"<code>{_e(x)}</code>" for x in crit["not_identified"]) + ".</p>")
    out.append("</div>")
    return "".join(out)


def render(summary: Mapping[str, Any], figures: Mapping[str, Mapping[str, Path]]) -> str:
    """Build the report page.

    Args:
        summary: the study summary (keys ``title``, ``config_toml``, ``dataset``, ``recommendation``,
            ``ate``, ``effects``, ``interventional``, ``loo``, ``refutations``, ``diagnostics``,
            ``per_batch_size``, ``warnings``, ``timings``, ``files``; see :mod:`hgcnet_jax.study`).
        figures: figure name → ``{"png": path, "svg": path}``.

    Returns:
        The HTML document as a string.
    """
    s = summary
    fig = {name: _figure(name, f.get("png"), f.get("svg")) for name, f in figures.items()}
    parts: list[str] = []
    parts.append(f"<h1>{_e(s.get('title', 'Batch-size study'))}</h1>")
    parts.append(f'<p class="sub">{_e(s.get("subtitle", ""))}</p>')

    crit = s.get("criticism")
    if crit:
        parts.append(_criticism(crit, s))
    warnings = [w for w in s.get("warnings", []) if not crit or w != crit.get("headline")]
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        parts.append(f'<div class="warn" id="warnings"><h3>&#9888; Warnings</h3><ul>{items}</ul></div>')

    rec = s["recommendation"]
    parts.append("<h2>Recommendation</h2>")
    parts.append(
        f'<p class="headline" id="recommendation">Use batch size <b>B = {_e(rec["best_batch_size"])}</b>: '
        + (f"mean {_e(s.get('outcome', 'G'))} of its runs {_num(rec['best_mean'])} (bootstrap interval "
           if rec.get("source") == "arms" else
           f"E[G | do(B = {_e(rec['best_batch_size'])})] = {_num(rec['best_mean'])} (credible interval ")
        + f"{_num(rec['best_lo'])} – {_num(rec['best_hi'])}). "
        + (f"It is your current batch size: keep it. It costs {_num(rec['best_time_per_epoch_s'], '.3g')} s per epoch.</p>"
           if rec["best_batch_size"] == rec["current_batch_size"] else
           f"Probability that it beats your current B = {_e(rec['current_batch_size'])}: "
           f"<b>{_num(rec['prob_beats_current'], '.3f')}</b>. "
           f"It costs {_num(rec['best_time_per_epoch_s'], '.3g')} s per epoch "
           f"({_num(rec['time_ratio_vs_current'], '.2f')}× the current batch size).</p>")
    )
    if rec.get("label"):
        parts.append(f'<p class="sub" id="recommendation-source">Source: {_e(rec["label"])}.</p>')
    if rec.get("time_note"):
        parts.append(f'<p class="sub">Time: {_e(rec["time_note"])}.</p>')
    if rec.get("compile_time_note"):
        parts.append(f'<p class="sub" id="compile-time">{_e(rec["compile_time_note"])}.</p>')
    parts.append(fig.get("recommendation", ""))

    parts.append("<h2>Interventional outcome</h2>")
    iv = s["interventional"]
    rows = []
    for i, b in enumerate(iv["batch_sizes"]):
        row = [b]
        for label in iv["curves"]:
            c = iv["curves"][label]
            row += [f"{_num(c['mean'][i])} [{_num(c['lo'][i])}, {_num(c['hi'][i])}]"]
        row += [_num(iv["observed_mean"][i]), iv["n_runs"][i]]
        rows.append(row)
    parts.append(_table(["B"] + [f"E[G | do(B)] {k}" for k in iv["curves"]] + ["raw mean", "runs"], rows))
    parts.append(fig.get("interventional", ""))

    a = s["ate"]
    parts.append("<h2>Average treatment effect</h2>")
    if a.get("trusted") is False:
        parts.append(f'<p class="fail" id="ate-untrusted">The model-based ATE is that of \'{_e(a.get("graph"))}\', '
                     "which fails its criticism; the raw difference of the arm means (last rows) is the "
                     "design-based estimate.</p>")
    parts.append(
        _table(
            ["quantity", "value"],
            [
                ["contrast", f"E[G | do(B={a['b_small']})] − E[G | do(B={a['b_large']})]"],
                ["posterior mean", _num(a["mean"])],
                [f"{a['mass']:.0%} credible interval", f"[{_num(a['lo'])}, {_num(a['hi'])}]"],
                ["P(ATE > 0)", _num(a["prob_positive"], ".3f")],
                ["P(sign of the mean)", _num(a["prob_sign"], ".3f")],
                ["raw difference of per-seed means (bootstrap interval)",
                 _num(a["observed"]) + (f" [{_num(a['observed_lo'])}, {_num(a['observed_hi'])}]"
                                        if a.get("observed_lo") is not None else "")],
                ["permutation p-value over seeds (two-sided)", _num(a["p_value"], ".4g")],
            ],
        )
    )
    parts.append(fig.get("ate", ""))

    parts.append("<h2>Direct and mediated effects</h2>")
    ef = s["effects"]
    if ef.get("trusted") is False:
        parts.append(f'<p class="fail" id="effects-untrusted">Graph \'{_e(ef.get("graph"))}\' fails its criticism: '
                     "these effects are not findings.</p>")
    parts.append(
        _table(
            ["effect", "mean", "credible interval"],
            [[k, _num(v["mean"]), f"[{_num(v['lo'])}, {_num(v['hi'])}]"] for k, v in ef["rows"].items()],
        )
    )
    if ef.get("note"):
        parts.append(f"<p>{_e(ef['note'])}</p>")
    if ef.get("sensitivity"):
        parts.append(f'<p id="sensitivity">{_e(ef["sensitivity"]["note"])}</p>')
    parts.append(fig.get("effects", ""))
    parts.append(fig.get("hypergraph", ""))
    parts.append(fig.get("mediators", ""))

    parts.append("<h2>Hypergraph against pairwise graph</h2>")
    lo = s["loo"]
    parts.append(
        _table(
            ["model", "elpd_loo", "SE", "p_loo", "max Pareto k"],
            [[m, _num(r["elpd"], ".2f"), _num(r["se"], ".2f"), _num(r.get("p_loo"), ".2f"),
              _num(r.get("pareto_k_max"), ".2f")] for m, r in lo["models"].items()],
        )
    )
    parts.append(f"<p>{_e(lo['verdict'])}</p>")
    parts.append(fig.get("loo", ""))

    parts.append("<h2>Refutations</h2>")
    refs = s.get("refutations", [])
    if refs:
        parts.append(
            _table(
                ["test", "original", "new", "verdict", "what it checks"],
                [[_e(r["name"]), _num(r.get("original")), _num(r.get("new")),
                  f'<span class="{"pass" if r["passed"] else "fail"}">{"passed" if r["passed"] else "FAILED"}</span>',
                  _e(r.get("detail", ""))] for r in refs],
                raw=True,
            )
        )
    else:
        parts.append("<p>No refutation was run.</p>")

    parts.append("<h2>MCMC diagnostics</h2>")
    dg = s["diagnostics"]
    if dg["ok"]:
        parts.append('<p class="ok">All chains mixed: R-hat and effective sample sizes are within the thresholds.</p>')
    else:
        parts.append('<div class="warn" id="diagnostics-warning"><h3>&#9888; Poor MCMC diagnostics</h3>'
                     "<p>Treat the effects above with caution; rerun with more warm-up, samples or chains.</p></div>")
    parts.append(
        _table(
            ["model", "max R-hat", "min bulk ESS", "min tail ESS", "divergences", "verdict"],
            [[m, _num(r["max_rhat"], ".3f"), _num(r["min_ess_bulk"], ".0f"), _num(r["min_ess_tail"], ".0f"),
              r["divergences"], "ok" if r["ok"] else "POOR"] for m, r in dg["models"].items()],
        )
    )
    parts.append(f"<p>Thresholds: R-hat &lt; {_num(dg['rhat_max'], '.2f')}, ESS &gt; {_num(dg['ess_min'], '.0f')}, "
                 "no divergent transitions.</p>")

    parts.append("<h2>Runs per batch size</h2>")
    pb = s["per_batch_size"]
    cols = list(pb["columns"])
    parts.append(_table(["B"] + cols, [[r["batch_size"]] + [_num(r[c], ".4g") for c in cols] for r in pb["rows"]]))

    parts.append("<h2>Configuration and files</h2>")
    parts.append(f"<pre>{_e(s.get('config_toml', ''))}</pre>")
    t = s.get("timings", {})
    if t:
        parts.append(_table(["phase", "seconds", "source"],
                            [[k, _num(v["seconds"], ".1f"), v["source"]] for k, v in t.items()]))
    files = s.get("files", [])
    if files:
        parts.append("<ul>" + "".join(f"<li><code>{_e(f)}</code></li>" for f in files) + "</ul>")
    parts.append(f'<p class="sub">Generated by hgcnet_jax {_e(s.get("version", ""))} — '
                 f"config fingerprint <code>{_e(s.get('fingerprint', '')[:16])}</code>.</p>")

    body = "\n".join(p for p in parts if p)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(s.get('title', 'Batch-size study'))}</title><style>{_CSS}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def write(path: str | os.PathLike, summary: Mapping[str, Any], figures: Mapping[str, Mapping[str, Path]]) -> Path:
    """Render the report and write it atomically to ``path``."""
    return _io.write_text(path, render(summary, figures))
