"""Writing the profiler report: ``profiler-rules.json`` and a self-contained ``profiler-report.html``.

The HTML follows SageMaker's ProfilerReport: a rules summary (rule, verdict, datapoints, detail,
recommendation), system utilization over time, step times with their phase breakdown and the
StepOutlier outliers marked, the phase shares, system statistics and the initialization time.
Charts are PNGs inlined (matplotlib, Agg; sagestack.report); without matplotlib (e.g. a bare GPU image)
the report keeps its tables and says the charts were left out.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from sagestack.data.atomic import atomic_file
from sagestack.profiler.recording import PHASES
from sagestack.profiler.rules import RuleResult
from sagestack.report import figure_img, page, pyplot

REPORT_FILE = "profiler-report.html"
RULES_FILE = "profiler-rules.json"
PHASE_COLORS = {"data": "#e69f00", "forward": "#4a7ab5", "backward": "#2a9d3a", "optimizer": "#8e5ea2", "other": "#bbbbbb"}
_BAR_LIMIT = 400  # steps drawn as stacked bars; more are drawn as stacked areas
STYLE = ("body{max-width:1200px}table{margin:.5em 0}td,th{text-align:right;vertical-align:top}"
         "td:first-child{text-align:left}table.rules td{text-align:left}tr.fired td{background:#fdecea}"
         "tr.na td{color:#777}tr.sum td{background:#f5f8fc}pre{font-size:11px;overflow-x:auto;"
         "background:#f7f7f7;padding:8px}dt{font-weight:600}small{color:#666}")


def _system_chart(plt, system) -> str | None:
    """An ``<img>``: CPU, memory and each GPU's utilization and memory over time (seconds since the first sample)."""
    if system is None or system.empty:
        return None
    from sagestack.profiler.system import gpu_indices

    seconds = system["wall_time"] - system["wall_time"].min()
    gpus = gpu_indices(system)
    rows = 2 if gpus else 1
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.6 * rows), sharex=True, squeeze=False)
    ax = axes[0][0]
    ax.plot(seconds, system["cpu_percent"], label="CPU (all cores)", color="#4a7ab5")
    ax.plot(seconds, system["memory_percent"], label="memory", color="#c44e52")
    if "io_wait_percent" in system and system["io_wait_percent"].notna().any():
        ax.plot(seconds, system["io_wait_percent"], label="I/O wait", color="#999999", linewidth=0.8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.set_title("System utilization", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    if gpus:
        ax = axes[1][0]
        for k, gpu in enumerate(gpus):
            color = f"C{k % 10}"
            ax.plot(seconds, system[f"gpu{gpu}_util"], label=f"gpu{gpu} utilization", color=color)
            ax.plot(seconds, system[f"gpu{gpu}_memory_percent"], label=f"gpu{gpu} memory", color=color, linestyle="--")
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
        ax.set_title("GPU utilization and memory", fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
    axes[-1][0].set_xlabel("seconds since the first sample")
    for row in axes:
        row[0].tick_params(labelsize=8)
    return figure_img(fig, "system utilization")


def _step_chart(plt, framework, outlier: RuleResult | None) -> str | None:
    """An ``<img>``: step time per step, stacked by phase (``other`` is the unannounced rest), outliers marked."""
    if framework is None or framework.empty:
        return None
    frame = framework.reset_index(drop=True)
    x = range(len(frame))
    layers = {p: frame[f"{p}_seconds"].fillna(0).to_numpy() for p in PHASES if f"{p}_seconds" in frame}
    other = (frame["step_seconds"].fillna(0) - sum(layers.values())).clip(lower=0).to_numpy()
    layers["other"] = other
    fig, ax = plt.subplots(figsize=(9, 3.2))
    if len(frame) <= _BAR_LIMIT:
        bottom = None
        for name, values in layers.items():
            ax.bar(x, values, bottom=bottom, width=1.0, color=PHASE_COLORS[name], label=name, linewidth=0)
            bottom = values if bottom is None else bottom + values
    else:
        ax.stackplot(list(x), *layers.values(), labels=list(layers), colors=[PHASE_COLORS[n] for n in layers])
    if outlier is not None and not outlier.not_applicable:
        for mode, stats in outlier.details.items():
            limit = stats.get("threshold_seconds")
            if limit is not None and math.isfinite(limit):
                ax.axhline(limit, color="#c44e52", linestyle="--", linewidth=0.8,
                           label=f"{mode}: mean + {outlier.parameters.get('stddev')}×std")
            steps = set(stats.get("outlier_steps", []))
            mask = frame["step"].isin(steps) & (frame["mode"].fillna("train") == mode)
            if mask.any():
                ax.scatter(frame.index[mask], frame.loc[mask, "step_seconds"], color="#c44e52", marker="x", zorder=3,
                           label=f"{mode} outliers ({int(mask.sum())})")
    ticks = list(x)[:: max(1, len(frame) // 10)]
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(int(frame.loc[i, "step"])) for i in ticks])
    ax.set_xlabel("step")
    ax.set_ylabel("seconds")
    ax.set_title("Step time by phase", fontsize=10)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    ax.tick_params(labelsize=8)
    return figure_img(fig, "step time by phase")


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _duration(seconds) -> str:
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "unknown"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def _stats_table(table: dict, digits: int = 2) -> str:
    columns = ("min", "p50", "p95", "p99", "max")
    head = "".join(f"<th>{c}</th>" for c in columns)
    rows = "".join(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_fmt(stats.get(c), digits)}</td>" for c in columns)
                   + "</tr>" for name, stats in table.items())
    return f"<table><tr><th>metric</th>{head}</tr>{rows}</table>"


def _rules_table(results: list[RuleResult]) -> str:
    esc = html.escape
    rows = []
    for result in results:
        css = "na" if result.not_applicable else ("fired" if result.triggered else ("sum" if result.summary else "ok"))
        params = ", ".join(f"{k}={v}" for k, v in result.parameters.items()) or "—"
        rows.append(
            f"<tr class='{css}'><td><b>{esc(result.name)}</b><br><small>{esc(params)}</small></td>"
            f"<td>{esc(result.status)}</td><td>{result.datapoints}</td><td>{esc(result.detail)}</td>"
            f"<td>{esc(result.recommendation)}</td></tr>"
        )
    return ("<table class='rules'><tr><th>rule (parameters)</th><th>verdict</th><th>datapoints</th><th>detail</th>"
            "<th>recommendation</th></tr>" + "".join(rows) + "</table>")


def render_profiler_html(results: list[RuleResult], system=None, framework=None, facts: dict | None = None,
                         title: str = "Profiler report") -> str:
    """The report as one self-contained HTML string (charts inlined; every text escaped).

    Args:
        results: the rules' results (:func:`sagestack.profiler.rules.evaluate_rules`).
        system: the system frame, for the utilization chart (optional).
        framework: the framework frame, for the step-time chart (optional).
        facts: the run's facts (``run.json``), for the run summary (optional).
        title: the page title.
    """
    from sagestack.profiler.rules import RULES

    esc = html.escape
    facts = facts or {}
    by_name = {r.name: r for r in results}
    plt = pyplot(optional=True)
    parts = []
    fired = [r.name for r in results if r.triggered and not r.not_applicable]
    framework_summary = by_name.get("OverallFrameworkMetrics")
    loop = framework_summary.details.get("loop_seconds") if framework_summary else None
    trace = facts.get("trace") or {}
    trace_text = trace.get("state", "off")
    if trace.get("path"):
        trace_text = f"<a href='{esc(trace['path'])}'>{esc(trace['path'])}</a> ({esc(str(trace_text))}; steps {esc(str(trace.get('steps')))})"
    else:
        trace_text = esc(str(trace_text))
    parts.append(
        "<h2>Run</h2><table>"
        f"<tr><td>device</td><td>{esc(str(facts.get('device', 'unknown')))}"
        f"{' (' + str(facts.get('gpu_count')) + ' GPU seen by NVML)' if facts.get('gpu_count') else ''}</td></tr>"
        f"<tr><td>CPU cores</td><td>{esc(str(facts.get('cpu_count', 'unknown')))}</td></tr>"
        f"<tr><td>DataLoader num_workers</td><td>{esc(str(facts.get('num_workers', 'not recorded')))}</td></tr>"
        f"<tr><td>steps recorded</td><td>{0 if framework is None else len(framework)}</td></tr>"
        f"<tr><td>initialization (start → first step)</td><td>{_duration(facts.get('init_seconds'))}</td></tr>"
        f"<tr><td>training loop (first step → last step end)</td><td>{_duration(loop)}</td></tr>"
        f"<tr><td>system samples</td><td>{0 if system is None else len(system)}</td></tr>"
        f"<tr><td>torch.profiler trace</td><td>{trace_text}</td></tr>"
        "</table>"
    )
    if facts.get("stop_reason"):
        parts.append(f"<p>Training stopped early: {esc(str(facts['stop_reason']))}</p>")
    if facts.get("profiling_errors"):
        parts.append("<p><b>Profiling problems</b> (training went on):</p><ul>"
                     + "".join(f"<li>{esc(e)}</li>" for e in facts["profiling_errors"]) + "</ul>")
    parts.append("<h2>Rules summary</h2>")
    parts.append(f"<p>{len(fired)} of {len(results)} rules triggered" + (f": {esc(', '.join(fired))}" if fired else "")
                 + ". Rules that judge GPUs are <i>not applicable</i> on a run without one; a rule with fewer "
                 "datapoints than its <code>patience</code> is not evaluated (SageMaker's defaults assume long jobs "
                 "sampled every 0.5 s).</p>")
    parts.append(_rules_table(results))
    if plt is None:
        parts.append("<p><i>Charts left out: matplotlib is not installed here.</i></p>")
    parts.append("<h2>System utilization over time</h2>")
    chart = _system_chart(plt, system) if plt is not None else None
    if chart:
        parts.append(chart)
    elif plt is not None:
        parts.append("<p>No system samples.</p>")
    usage = by_name.get("OverallSystemUsage")
    if usage and usage.details.get("table"):
        parts.append(_stats_table(usage.details["table"]))
    parts.append("<h2>Step time and phases</h2>")
    chart = _step_chart(plt, framework, by_name.get("StepOutlier")) if plt is not None else None
    if chart:
        parts.append(chart)
    if framework_summary and not framework_summary.not_applicable:
        details = framework_summary.details
        rows = "".join(
            f"<tr><td>{esc(phase)}</td><td>{_fmt(v['seconds'])}</td><td>{_fmt(100 * v['share'] if v['share'] is not None else None, 1)}%</td></tr>"
            for phase, v in details["phases"].items()
        )
        parts.append("<h3>Share of step time per phase</h3><table><tr><th>phase</th><th>seconds</th><th>share</th></tr>"
                     f"{rows}</table>")
        parts.append("<h3>Step time (seconds)</h3>" + _stats_table({"step": details["step_seconds"]}, 4))
        if details.get("gpu_memory_allocated_gib"):
            parts.append("<h3>GPU memory allocated by tensors (GiB, per step)</h3>"
                         + _stats_table({"allocated": details["gpu_memory_allocated_gib"]}, 3))
    else:
        parts.append("<p>No training steps recorded.</p>")
    parts.append("<h2>What the rules check</h2><dl>")
    for name, rule in RULES.items():
        parts.append(f"<dt>{esc(name)}</dt><dd>{esc(rule.description)}</dd>")
    parts.append("</dl>")
    return page(title, parts, style=STYLE)


def rules_document(results: list[RuleResult], facts: dict | None = None) -> dict:
    """The JSON document of ``profiler-rules.json``: each rule's result, the triggered names and the facts."""
    return {
        "rules": [r.to_dict() for r in results],
        "triggered": [r.name for r in results if r.triggered and not r.not_applicable],
        "facts": facts or {},
    }


def write_profiler_report(out_dir: Path | str, results: list[RuleResult], system=None, framework=None,
                          facts: dict | None = None, title: str = "Profiler report") -> dict[str, Path]:
    """Write ``profiler-report.html`` and ``profiler-rules.json`` into ``out_dir``, each atomically.

    Returns:
        ``{"report": path, "rules": path}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rules_path, report_path = out_dir / RULES_FILE, out_dir / REPORT_FILE
    with atomic_file(rules_path) as tmp:
        tmp.write_text(json.dumps(rules_document(results, facts), indent=2, default=str), encoding="utf-8")
    with atomic_file(report_path) as tmp:
        tmp.write_text(render_profiler_html(results, system, framework, facts, title), encoding="utf-8")
    return {"report": report_path, "rules": rules_path}


def report_from_folder(directory: Path | str, params: dict[str, dict] | None = None,
                       title: str = "Profiler report") -> tuple[list[RuleResult], dict[str, Path]]:
    """Re-evaluate the rules on a profiler output folder (e.g. with other parameters) and rewrite its report.

    Returns:
        The results and the written paths.

    Raises:
        ConfigError: an unknown rule or parameter in ``params``.
    """
    from sagestack.profiler.recording import load_profile
    from sagestack.profiler.rules import evaluate_rules

    recording = load_profile(directory)
    results = evaluate_rules(recording.system, recording.framework, recording.init_seconds, recording.facts, params)
    return results, write_profiler_report(directory, results, recording.system, recording.framework,
                                          recording.facts, title)
