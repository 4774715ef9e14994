"""The Debugger report: one self-contained HTML page with the rules' findings and the recorded series.

Findings first (rule, step, detail), then the loss (train and validation), then per collection
one chart per recorded reduction. Charts are matplotlib (Agg) PNGs inlined (sagestack.report); a
collection with many tensors shows the 12 largest by norm plus a band with the range of all of
them, so the page stays small. A dashed line marks each step at which a rule fired.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from sagestack.data.atomic import atomic_file
from sagestack.debugger.recording import Recording
from sagestack.report import figure_img, page, pyplot

MAX_LINES = 12
COLLECTION_ORDER = ("losses", "gradients", "weights", "biases", "outputs", "optimizer", "metrics", "labels", "predictions")
FIRED_COLOR = "#c44e52"
STYLE = (f"td,th{{text-align:left}}td.num{{text-align:right}}.fired{{color:{FIRED_COLOR}}}.ok{{color:#2a9d3a}}"
         ".note{color:#555;font-size:12px}")
DPI = 80


def _finite(series: pd.Series) -> pd.Series:
    return series.where(np.isfinite(series.to_numpy(dtype=float)))


def _mark_findings(ax, findings) -> None:
    """A dashed vertical line, labelled with the rule, at each finding's step."""
    for i, finding in enumerate(findings):
        ax.axvline(finding.step, color=FIRED_COLOR, linestyle="--", linewidth=1,
                   label="rule fired" if i == 0 else None)
        ax.text(finding.step, 0.98, f" {finding.rule}", transform=ax.get_xaxis_transform(), rotation=90,
                va="top", ha="right", fontsize=7, color=FIRED_COLOR)


def _log_scale(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and bool((finite > 0).all()) and finite.max() / finite.min() > 100


def _short(name: str, width: int = 48) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _loss_chart(recording: Recording, findings) -> str | None:
    """An ``<img>``: train and validation loss over the steps, the findings marked."""
    plt = pyplot()
    train = recording.series("losses", "loss", "value", mode="train")
    valid = recording.series("losses", "loss", "value", mode="eval")
    if train.empty and valid.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 3))
    if not train.empty:
        ax.plot(train.index, _finite(train), marker=".", markersize=3, linewidth=1, color="#4a7ab5", label="train")
    if not valid.empty:
        ax.plot(valid.index, _finite(valid), marker="o", markersize=4, linewidth=1.5, color="#2a9d3a", label="validation")
    bad = pd.concat([train, valid])
    bad = bad[~np.isfinite(bad.to_numpy(dtype=float))]
    if len(bad):
        ax.set_title(f"Loss ({len(bad)} non-finite value(s) not drawn)", fontsize=10)
    else:
        ax.set_title("Loss", fontsize=10)
    _mark_findings(ax, findings)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return figure_img(fig, "loss", dpi=DPI)


def _reduction_frame(recording: Recording, collection: str, reduction: str) -> pd.DataFrame:
    """Steps × tensors (a ``(eval)`` suffix on eval-mode tensors) for one collection and reduction."""
    rows = recording.select(collection, reduction)
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(line=np.where(rows["mode"] == "train", rows["tensor"], rows["tensor"] + " (" + rows["mode"] + ")"))
    return rows.groupby(["step", "line"], sort=True)["value"].last().unstack("line").sort_index()


def _largest(recording: Recording, collection: str, wide: pd.DataFrame) -> tuple[list[str], str]:
    """The :data:`MAX_LINES` tensors to draw: the largest by mean ``l2`` when recorded, else by mean |value|."""
    if wide.shape[1] <= MAX_LINES:
        return list(wide.columns), ""
    norms = _reduction_frame(recording, collection, "l2")
    basis = "l2" if not norms.empty else "mean |value|"
    source = norms if not norms.empty else wide
    score = source.abs().where(np.isfinite(source.to_numpy(dtype=float))).mean().reindex(wide.columns).fillna(-1)
    return list(score.sort_values(ascending=False).index[:MAX_LINES]), basis


def _reduction_chart(recording: Recording, collection: str, reduction: str, findings) -> tuple[str, str] | None:
    """An ``<img>`` of one collection's reduction per tensor over the steps, and a note on what was left out."""
    plt = pyplot()
    wide = _reduction_frame(recording, collection, reduction)
    if wide.empty:
        return None
    values = wide.to_numpy(dtype=float)
    shown, basis = _largest(recording, collection, wide)
    fig, ax = plt.subplots(figsize=(7, 3))
    finite = wide.where(np.isfinite(values))
    note = ""
    if basis:
        ax.fill_between(finite.index, finite.min(axis=1), finite.max(axis=1), color="#bbbbbb", alpha=0.4,
                        label=f"range of all {wide.shape[1]}")
        ax.plot(finite.index, finite.median(axis=1), color="#333333", linestyle=":", linewidth=1, label="median of all")
        note = f"{len(shown)} of {wide.shape[1]} tensors drawn (largest by {basis}); the band spans all of them."
    for name in shown:
        ax.plot(finite.index, finite[name], marker=".", markersize=3, linewidth=1, label=_short(name, 40))
    if _log_scale(values):
        ax.set_yscale("log")
    recorded = recording.select(collection, reduction)["value"].to_numpy(dtype=float)
    nonfinite = int((~np.isfinite(recorded)).sum())
    title = f"{collection}: {reduction}"
    if nonfinite:
        title += f" ({nonfinite} non-finite value(s) not drawn)"
    ax.set_title(title, fontsize=10)
    _mark_findings(ax, findings)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return figure_img(fig, f"{collection} {reduction}", dpi=DPI), note


def _collections(recording: Recording) -> list[str]:
    present = list(dict.fromkeys(recording.frame["collection"]))
    return [c for c in COLLECTION_ORDER if c in present] + [c for c in present if c not in COLLECTION_ORDER]


def render_debugger_html(recording: Recording, findings: list, title: str = "Debugger report",
                         notes: list[str] | tuple = ()) -> str:
    """The report page as a string.

    Args:
        recording: the recording the rules judged.
        findings: the :class:`~sagestack.debugger.rules.Finding`s (any order; shown by step).
        title: the page's title.
        notes: lines shown under the findings (e.g. why the run's model is not registered).

    Returns:
        One self-contained HTML document (charts inlined as base64 PNGs, all text escaped).
    """
    esc = html.escape
    findings = sorted(findings, key=lambda f: f.step)
    frame = recording.frame
    parts = []
    if len(frame):
        parts.append(f"<p>{len(frame):,} recorded scalars, steps {int(frame['step'].min())}–{int(frame['step'].max())}, "
                     f"{frame['step'].nunique():,} recorded steps.</p>")
    else:
        parts.append("<p>The recording is empty.</p>")
    parts.append("<h2>Findings</h2>")
    if findings:
        rows = "".join(f"<tr><td class='fired'>{esc(f.rule)}</td><td class='num'>{int(f.step)}</td><td>{esc(f.detail)}</td></tr>"
                       for f in findings)
        parts.append(f"<table><tr><th>rule</th><th>step</th><th>detail</th></tr>{rows}</table>")
    else:
        parts.append("<p class='ok'>No rule fired.</p>")
    parts.extend(f"<p class='fired'><strong>{esc(note)}</strong></p>" for note in notes)
    if not len(frame):
        return page(title, parts, style=STYLE)
    collections = _collections(recording)
    summary = []
    for collection in collections:
        rows = frame[frame["collection"] == collection]
        summary.append(f"<tr><td>{esc(collection)}</td><td class='num'>{rows['tensor'].nunique()}</td>"
                       f"<td>{esc(', '.join(dict.fromkeys(rows['reduction'])))}</td>"
                       f"<td>{esc(', '.join(dict.fromkeys(rows['mode'])))}</td></tr>")
    parts.append("<h2>What was recorded</h2><table><tr><th>collection</th><th>tensors</th><th>reductions</th>"
                 f"<th>modes</th></tr>{''.join(summary)}</table>")
    loss = _loss_chart(recording, findings)
    if loss:
        parts.append(f"<h2>Loss</h2>{loss}")
    for collection in collections:
        if collection == "losses":
            continue
        rows = frame[frame["collection"] == collection]
        charts = []
        for reduction in dict.fromkeys(rows["reduction"]):
            chart = _reduction_chart(recording, collection, reduction, findings)
            if chart:
                img, note = chart
                charts.append(img + (f"<p class='note'>{esc(note)}</p>" if note else ""))
        if charts:
            parts.append(f"<h2>{esc(collection)}</h2>" + "".join(charts))
    return page(title, parts, style=STYLE)


def write_debugger_report(recording: Recording, findings: list, path: Path, title: str = "Debugger report",
                          notes: list[str] | tuple = ()) -> Path:
    """Write the report page (:func:`render_debugger_html`) to ``path`` atomically (a temporary
    sibling renamed into place).

    Returns:
        ``path``.
    """
    path = Path(path)
    text = render_debugger_html(recording, findings, title, notes)
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path

