"""Writing a bias analysis: ``analysis.json`` (Clarify's schema) and a readable ``report.html``."""

from __future__ import annotations

import html
import json
from pathlib import Path

from sagestack.bias.metrics import REGISTRY
from sagestack.data.atomic import atomic_dir
from sagestack.report import bar_chart, page

STAGES = {"pre_training_bias_metrics": "Pre-training bias (data only)", "post_training_bias_metrics": "Post-training bias (data + model predictions)"}
STYLE = ("td,th{text-align:right}td:first-child{text-align:left}.undef{color:#a33}"
         ".charts{display:flex;flex-wrap:wrap;gap:12px}dt{font-weight:600}")
FT_HELP = ("Flip Test: the share of facet d whose model prediction would flip if they were judged like their nearest "
           "neighbours in the rest ((F+ - F-)/n_d; ideal 0).")


def _metric_chart(name: str, entries: list[dict]) -> str | None:
    """An ``<svg>``: a horizontal bar per facet value, the ideal value as a line, the 95% interval as whiskers."""
    defined = [(e["value_or_threshold"], m) for e in entries for m in e["metrics"] if m["name"] == name and m["value"] is not None]
    if not defined:
        return None
    errors = None
    if all("confidence_interval" in m for _, m in defined):
        # A percentile interval need not contain the estimate (e.g. KL = 0 is the minimum): clip at 0.
        errors = ([max(m["value"] - m["confidence_interval"][0], 0) for _, m in defined],
                  [max(m["confidence_interval"][1] - m["value"], 0) for _, m in defined])
    metric = REGISTRY.get(name)
    return bar_chart(name, [str(v) for v, _ in defined], [(name, [m["value"] for _, m in defined], "#4a7ab5")],
                     errors=errors, reference=(metric.ideal, f"ideal {metric.ideal:g}") if metric is not None else None)


def _distribution_chart(distribution: dict) -> str:
    """An ``<svg>``: positive and other labels per facet value, stacked."""
    labels = list(distribution)
    return bar_chart("Label distribution per facet value", labels,
                     [("positive label", [distribution[v]["positive"] for v in labels], "#2a9d3a"),
                      ("other labels", [distribution[v]["negative"] for v in labels], "#c44e52")])


def _fmt(metric: dict) -> str:
    if metric["value"] is None:
        return f'<span class="undef" title="{html.escape(metric.get("error", ""))}">null</span>'
    text = f"{metric['value']:.4f}"
    if "confidence_interval" in metric:
        low, high = metric["confidence_interval"]
        text += f'<br><small>[{low:.3f}, {high:.3f}]</small>'
    return text


def render_html(document: dict, title: str = "Bias report") -> str:
    """The human report: metric tables and charts per facet, label distributions, explanations."""
    esc = html.escape
    parts = []
    pre = document["pre_training_bias_metrics"]
    parts.append(
        f"<p>Label <b>{esc(str(pre['label']))}</b>, positive value(s) or threshold "
        f"<b>{esc(str(pre['label_value_or_threshold']))}</b>. Facet value <i>d</i> is compared with all other rows "
        "(<i>a</i>); each row of a table is one facet value. Values in brackets are 95% bootstrap intervals.</p>"
    )
    extras = document.get("sagestack", {})
    for facet, missing in extras.get("missing_facet_values", {}).items():
        parts.append(f"<p><b>Note:</b> {missing} rows have no value for facet {esc(facet)}; they are reported as their "
                     "own facet value <code>(missing)</code>, not dropped.</p>")
    for facet, distribution in extras.get("label_distribution", {}).items():
        parts.append(f"<h2>Facet {esc(facet)}</h2>{_distribution_chart(distribution)}")
    for key, heading in STAGES.items():
        if key not in document:
            continue
        parts.append(f"<h2>{heading}</h2>")
        for facet, entries in document[key]["facets"].items():
            names = [m["name"] for m in entries[0]["metrics"]]
            header = "".join(f"<th>{esc(n)}</th>" for n in names)
            rows = "".join(
                f"<tr><td>{esc(str(e['value_or_threshold']))}</td>" + "".join(f"<td>{_fmt(m)}</td>" for m in e["metrics"]) + "</tr>"
                for e in entries
            )
            parts.append(f"<h3>{esc(facet)}</h3><table><tr><th>facet value</th>{header}</tr>{rows}</table><div class='charts'>")
            for name in names:
                chart = _metric_chart(name, entries)
                if chart:
                    parts.append(chart)
            parts.append("</div>")
            undefined = sorted({m["error"] for e in entries for m in e["metrics"] if m.get("error")})
            if undefined:
                parts.append("<p>Undefined (null) values:</p><ul>" + "".join(f"<li>{esc(u)}</li>" for u in undefined) + "</ul>")
    groups = extras.get("group_metrics", {})
    for facet, metrics in groups.items():
        cols = list(metrics["overall"])
        rows = "".join(
            f"<tr><td>{esc(v)}</td>" + "".join(f"<td>{m[c]:.3f}</td>" for c in cols) + "</tr>" for v, m in metrics["by_value"].items()
        )
        parts.append(f"<h3>Model quality per value of facet {esc(facet)} (fairlearn MetricFrame)</h3><table><tr><th>value</th>"
                     + "".join(f"<th>{esc(c)}</th>" for c in cols) + f"</tr>{rows}</table>")
    parts.append("<h2>What the metrics mean</h2><dl>")
    for metric in REGISTRY.values():
        low, high = metric.value_range
        parts.append(f"<dt>{esc(metric.description)} — ideal {metric.ideal:g}, range [{low:g}, {high:g}]</dt>"
                     f"<dd>{esc(metric.explanation)}</dd>")
    parts.append(f"<dt>Flip Test (FT) — ideal 0, range [-1, 1]</dt><dd>{esc(FT_HELP)}</dd></dl>")
    return page(title, parts, style=STYLE)


def metric_rows(document: dict) -> list[dict]:
    """An analysis document flattened for a table: one row per stage, facet and facet value.

    Returns:
        ``[{"stage": "pre-training" | "post-training", "facet", "value", "metrics": {name: value | None}}]``.
    """
    rows = []
    for stage in STAGES:
        for facet, entries in document.get(stage, {}).get("facets", {}).items():
            for entry in entries:
                rows.append({"stage": stage.split("_")[0] + "-training", "facet": facet,
                             "value": entry["value_or_threshold"],
                             "metrics": {m["name"]: m.get("value") for m in entry["metrics"]}})
    return rows


def write_bias_report(document: dict, out_dir: Path, title: str = "Bias report", *,
                      overwrite: bool = False) -> dict[str, Path]:
    """Write ``analysis.json`` and ``report.html`` into ``out_dir`` atomically; return their paths.

    ``overwrite`` replaces a folder sagestack did not write (``--overwrite``).
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, command="bias", overwrite=overwrite) as tmp:
        (tmp / "analysis.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
        (tmp / "report.html").write_text(render_html(document, title), encoding="utf-8")
    return {"analysis": out_dir / "analysis.json", "report": out_dir / "report.html"}
