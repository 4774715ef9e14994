"""The SageMaker Clarify processing container, done by ``sagestack bias``: the job's ``analysis_config.json``
(as the SDK's ``SageMakerClarifyProcessor`` writes it) becomes ``sagestack bias`` options, the same command a
user runs on the same file, in a process of its own; its ``analysis.json`` (keeping only the requested
methods, as Clarify does) and ``report.html`` land in the job's output with the config beside them.

Supported here: ``dataset_type: text/csv`` and ``pre_training_bias``; post-training bias and SHAP fail the job
with the reason (not yet: issue 28).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Callable

from sagestack.aws.backends import Backends
from sagestack.aws.jobs import Job, JobFailed

SUPPORTED_METHODS = {"pre_training_bias", "report"}


def _single_input(request: dict, name: str, local: Callable[[str], Path]) -> Path:
    for item in request.get("ProcessingInputs", []):
        if item.get("InputName") == name and item.get("S3Input"):
            return local(item["S3Input"]["LocalPath"])
    raise JobFailed(f"ClientError: the Clarify job has no input named {name!r}")


def _output(request: dict, local: Callable[[str], Path]) -> Path:
    outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
    if not outputs or not outputs[0].get("S3Output"):
        raise JobFailed("ClientError: the Clarify job has no S3 output")
    return local(outputs[0]["S3Output"]["LocalPath"])


def _column(config: dict, value: object, headers: list[str]) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(headers):
            raise JobFailed(f"ClientError: column index {value} is outside the {len(headers)} headers")
        return headers[value]
    return str(value)


def bias_options(config: dict, headers: list[str]) -> list[str]:
    """The ``sagestack bias`` options an ``analysis_config.json`` asks for (label, positive values or threshold,
    facets, group).

    Raises:
        JobFailed: a config this mapping does not support, with the reason.
    """
    if config.get("dataset_type", "text/csv") != "text/csv":
        raise JobFailed(f"ClientError: dataset_type {config.get('dataset_type')!r} is not supported here; use text/csv")
    unsupported = sorted(set(config.get("methods", {})) - SUPPORTED_METHODS)
    if unsupported:
        raise JobFailed(f"ClientError: Clarify methods {', '.join(unsupported)} are not supported by sagestack "
                        "serve-aws yet (supported: pre_training_bias)")
    if "label" not in config or not config.get("facet"):
        raise JobFailed("ClientError: the analysis config names no label or no facet")
    options = ["--label", _column(config, config["label"], headers)]
    positive = config.get("label_values_or_threshold")
    if isinstance(positive, list):
        options += ["--positive", ",".join(str(value) for value in positive)]
    elif positive is not None:
        options += ["--positive-threshold", str(positive)]
    for facet in config["facet"]:
        name = _column(config, facet.get("name_or_index"), headers)
        value = facet.get("value_or_threshold")
        if isinstance(value, list):
            options += ["--facet", f"{name}={','.join(str(v) for v in value)}"]
        elif value is not None:
            options += ["--facet", f"{name}>{value}"]
        else:
            options += ["--facet", name]
    if config.get("group_variable") is not None:
        options += ["--group", _column(config, config["group_variable"], headers)]
    return options


def _dataset(folder: Path, headers: list[str] | None, work: Path) -> tuple[Path, list[str]]:
    """The one CSV under ``folder``, with a header row (added from ``headers`` when the file has none)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if len(files) != 1:
        raise JobFailed(f"ClientError: the dataset input holds {len(files)} files; sagestack reads exactly one CSV")
    with open(files[0], newline="", encoding="utf-8") as source:
        first = next(csv.reader(source), [])
    if not headers or first == headers:
        return files[0], first
    if len(first) != len(headers):
        raise JobFailed(f"ClientError: the dataset has {len(first)} columns but the config names {len(headers)} headers")
    with_header = work / "dataset.csv"
    with open(with_header, "w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerow(headers)
        with open(files[0], encoding="utf-8") as source:
            shutil.copyfileobj(source, out, 1 << 20)
    return with_header, headers


def _keep_methods(document: dict, methods: object) -> dict:
    """``document`` with only the requested pre-training metrics (``"all"``: every one)."""
    if methods == "all" or not isinstance(methods, list):
        return document
    wanted = set(methods)
    for entries in document.get("pre_training_bias_metrics", {}).get("facets", {}).values():
        for entry in entries:
            entry["metrics"] = [metric for metric in entry["metrics"] if metric["name"] in wanted]
    return document


def run_clarify_job(backends: Backends, job: Job, local: Callable[[str], Path]) -> dict:
    """Run a Clarify pre-training bias job with ``sagestack bias``; returns the files it wrote.

    Raises:
        JobFailed: an unsupported config, an unreadable dataset, or ``sagestack bias``'s own error.
    """
    config_folder = _single_input(job.request, "analysis_config", local)
    try:
        config = json.loads((config_folder / "analysis_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise JobFailed(f"ClientError: cannot read analysis_config.json ({exc})") from None
    work = job.folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    data, headers = _dataset(_single_input(job.request, "dataset", local), config.get("headers"), work)
    out = work / "bias"
    backends.jobs.run_sagestack(job, ["bias", "--data", str(data), *bias_options(config, headers), "--out", str(out)],
                                work=work)
    output = _output(job.request, local)
    output.mkdir(parents=True, exist_ok=True)
    document = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
    methods = config.get("methods", {}).get("pre_training_bias", {}).get("methods", "all")
    (output / "analysis.json").write_text(json.dumps(_keep_methods(document, methods), indent=2), encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    (output / "report.html").write_text(html, encoding="utf-8")
    (output / "report.ipynb").write_text(json.dumps(report_notebook(html), indent=1), encoding="utf-8")
    (output / "analysis_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return {"files": ["analysis.json", "report.html", "report.ipynb", "analysis_config.json"]}


def report_notebook(html: str) -> dict:
    """The bias report as a notebook (nbformat 4), as Clarify writes ``report.ipynb`` beside ``report.html``:
    one cell whose output is the report, so Studio or Jupyter shows it when opened."""
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"language_info": {"name": "python"}},
            "cells": [{"cell_type": "markdown", "id": "title", "metadata": {},
                       "source": ["# Bias report\n", "Written by sagestack serve-aws (`sagestack bias`)."]},
                      {"cell_type": "code", "id": "report", "metadata": {}, "execution_count": 1,
                       "source": ["# the report as report.html shows it"],
                       "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"text/html": html}}]}]}
