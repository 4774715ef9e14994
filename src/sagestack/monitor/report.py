"""The monitoring run's HTML report: the verdicts, the bias intervals, and the traffic over time."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd


def _over_time(captured: pd.DataFrame) -> str:
    """A PNG (base64) of the predicted label mix and the words per review, hour by hour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


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
    document = f"""<!doctype html><html lang=en><meta charset=utf-8><title>Monitoring report</title>
<style>body{{font:14px system-ui,sans-serif;margin:1.5rem;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left}}tr.drift td{{background:#ffebe9}}
tr.insufficient-data td{{color:#777}}</style>
<h1>Monitoring report</h1>
<p>{result['window']['rows']} captured records, {e(result['window']['first'])} to {e(result['window']['last'])};
status <strong>{e(result['status'])}</strong>.</p>
<h2>Violations</h2><ul id=violations>{violations}</ul>
<h2>Over time</h2><img alt="predicted label share and words per review per hour" src="data:image/png;base64,{_over_time(captured)}">
<h2>Drift checks</h2><table><tr><th>check</th><th>test</th><th>value</th><th>bar</th><th>records</th><th>status</th></tr>{rows}</table>
<h2>Bias drift</h2><table><tr><th>facet value</th><th>metric</th><th>window 95% interval</th><th>baseline band</th><th>records</th><th>status</th></tr>{bias}</table>
{f'<h2>Files skipped</h2><ul>{skipped}</ul>' if skipped else ''}
</html>"""
    Path(path).write_text(document, encoding="utf-8")
    return Path(path)
