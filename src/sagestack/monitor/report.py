"""The monitoring run's HTML report: the verdicts, the bias intervals, and the traffic over time."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from sagestack.report import figure_img, page, pyplot

TITLE = "Monitoring report"
STYLE = "tr.drift td{background:#ffebe9}tr.insufficient-data td{color:#777}"


def _over_time(captured: pd.DataFrame) -> str:
    """An ``<img>``: the predicted label mix and the words per review, hour by hour."""
    plt = pyplot()

    frame = captured.assign(hour=pd.to_datetime(captured["time"], utc=True).dt.floor("h"),
                            words=captured["review"].astype(str).str.split().str.len())
    mix = frame.groupby(["hour", "label"]).size().unstack(fill_value=0)
    mix = mix.div(mix.sum(axis=1), axis=0)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    mix.plot(ax=left, marker="o")
    left.set_title("predicted label share per hour")
    left.set_ylim(0, 1)
    frame.groupby("hour")["words"].median().plot(ax=right, marker="o", color="tab:gray")
    right.set_title("median words per review per hour")
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure_img(figure, "predicted label share and words per review per hour", tight=False)


def _number(value) -> str:
    return "" if value is None else f"{value:.4g}"


def _interval(pair) -> str:
    return "" if pair is None else f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def write_report(path: Path, result: dict, captured: pd.DataFrame) -> Path:
    """Write ``report.html`` for one monitoring run's ``result`` over its ``captured`` records."""
    e = html.escape
    rows = "".join(
        f"<tr class={c['status'].replace(' ', '-')}><td>{e(c['name'])}</td><td>{e(c['test'])}</td>"
        f"<td>{_number(c['value'])}</td><td>{_number(c['threshold'])}</td><td>{c['samples']}</td>"
        f"<td>{e(c['status'])}</td></tr>"
        for c in result["checks"])
    bias = "".join(
        f"<tr class={b['status'].replace(' ', '-')}><td>{e(str(b['facet_value']))}</td><td>{e(str(b['metric']))}</td>"
        f"<td>{_interval(b.get('interval'))}</td><td>{_interval(b.get('band'))}</td><td>{b['samples']}</td>"
        f"<td>{e(b['status'])}</td></tr>"
        for b in result["bias"])
    violations = "".join(f"<li>{e(v)}</li>" for v in result["violations"]) or "<li>none</li>"
    skipped = "".join(f"<li>{e(s)}</li>" for s in result.get("skipped_files", []))
    sections = [
        f"<p>{result['window']['rows']} captured records, {e(result['window']['first'])} to "
        f"{e(result['window']['last'])}; status <strong>{e(result['status'])}</strong>.</p>",
        f"<h2>Violations</h2><ul id=violations>{violations}</ul>",
        f"<h2>Over time</h2>{_over_time(captured)}",
        "<h2>Drift checks</h2><table><tr><th>check</th><th>test</th><th>value</th><th>bar</th><th>records</th>"
        f"<th>status</th></tr>{rows}</table>",
        "<h2>Bias drift</h2><table><tr><th>facet value</th><th>metric</th><th>window 95% interval</th>"
        f"<th>baseline band</th><th>records</th><th>status</th></tr>{bias}</table>",
        f"<h2>Files skipped</h2><ul>{skipped}</ul>" if skipped else "",
    ]
    document = page(TITLE, sections, style=STYLE)
    Path(path).write_text(document, encoding="utf-8")
    return Path(path)


def render_no_data(message: str) -> str:
    """The report of a run whose window held no records: the reason, nothing else."""
    return page(TITLE, f"<p>{html.escape(message)}</p>", style=STYLE)
