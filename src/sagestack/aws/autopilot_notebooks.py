"""Autopilot's two notebooks, written from sagestack's AutoML outputs: the data exploration notebook (from the
exploration report) and the candidate definition notebook (the leaderboard, each candidate's definition and its
``retrain.py``), as nbformat 4 documents. :mod:`sagestack.aws.autopilot` uploads them where Autopilot puts them.
"""

from __future__ import annotations

from pathlib import Path


def _markdown(cell_id: str, *lines: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": [line + "\n" for line in lines]}


def _code(cell_id: str, source: str, outputs: list | None = None) -> dict:
    return {"cell_type": "code", "id": cell_id, "metadata": {}, "execution_count": None,
            "source": source.splitlines(keepends=True), "outputs": outputs or []}


def _notebook(cells: list[dict]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def exploration_notebook(report: dict, html: str) -> dict:
    """Autopilot's data exploration notebook, from sagestack's exploration report: the rows, the target's
    distribution, each column's type and prediction power, the warnings, and the report itself."""
    target = report["target"]
    lines = ["| column | type | unique | missing | prediction power |", "|---|---|---|---|---|"]
    for name, column in report["columns"].items():
        power = (column.get("prediction") or {}).get("prediction_power")
        lines.append(f"| {name} | {column.get('type')} | {column.get('unique', '')} | "
                     f"{column.get('missing', {}).get('share', '')} | {'' if power is None else power} |")
    distribution = ["| label | train | test |", "|---|---|---|"]
    for label, share in target["distribution"]["train"].items():
        test = target["distribution"].get("test", {}).get(label, {})
        distribution.append(f"| {label} | {share['count']} ({share['share']:.1%}) | {test.get('count', '')} |")
    warnings = [f"- {warning['message']}" for warning in report.get("warnings", [])] or ["- none"]
    return _notebook([
        _markdown("title", "# Amazon SageMaker Autopilot Data Exploration",
                  "", "Written by sagestack serve-aws from `sagestack automl`'s exploration report "
                  f"({report['rows']['train']} training rows, {report['rows']['test']} test rows)."),
        _markdown("target", f"## Target: `{target['name']}`", "", *distribution),
        _markdown("columns", "## Columns", "", *lines),
        _markdown("warnings", "## Warnings", "", *warnings),
        _code("report", "# the full report, as exploration.html shows it",
              [{"output_type": "display_data", "metadata": {}, "data": {"text/html": html}}]),
    ])


def candidate_notebook(out: Path, summary: dict, result: dict) -> dict:
    """Autopilot's candidate definition notebook, from sagestack's candidates: the leaderboard, then each
    candidate's definition and the ``retrain.py`` that rebuilds it (written by one cell, run by the next)."""
    metric = summary["spec"]["metric"]
    table = [f"| rank | candidate | model family | validation {metric} | test accuracy |", "|---|---|---|---|---|"]
    for row in summary["leaderboard"]:
        table.append(f"| {row['rank']} | {row['name']} | {row['model_family']} | {row[f'validation_{metric}']} | "
                     f"{row['test_accuracy']} |")
    cells = [_markdown("title", "# Amazon SageMaker Autopilot Candidate Definition Notebook", "",
                       f"Written by sagestack serve-aws from `sagestack automl`: {len(result['candidates'])} "
                       f"candidates on the text column `{result['text_column']}`, ranked by validation {metric}.",
                       "", *table)]
    for index, candidate in enumerate(result["candidates"]):
        folder = out / "candidates" / candidate["candidate"]
        definition = (folder / "definition.yaml").read_text(encoding="utf-8")
        script = (folder / "retrain.py").read_text(encoding="utf-8")
        cells += [_markdown(f"candidate-{index}", f"## {candidate['name']}: {candidate['family']}", "",
                            "```yaml", definition.rstrip("\n"), "```"),
                  _code(f"write-{index}", f"%%writefile {candidate['candidate']}_retrain.py\n{script}"),
                  _code(f"run-{index}", f"!python {candidate['candidate']}_retrain.py --help")]
    return _notebook(cells)
