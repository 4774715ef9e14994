"""The SageMaker Clarify processing container, done by ``sagestack bias`` and sagestack's explain engine: the
job's ``analysis_config.json`` (as the SDK's ``SageMakerClarifyProcessor`` writes it) becomes ``sagestack bias``
options, the same command a user runs on the same file, in a process of its own; its ``analysis.json`` (keeping
only the requested methods, as Clarify does) and ``report.html`` land in the job's output with the config beside
them.

Post-training bias and SHAP ask the config's model (``predictor.model_name``), as Clarify does, through a shadow
endpoint of it (:mod:`sagestack.aws.clarify_model`): its predicted labels become ``sagestack bias
--predicted-label``'s column; Kernel SHAP explains its scores over the feature columns against the config's
baseline and writes ``explanations.kernel_shap`` and ``explanations_shap/out.csv``.

Supported here: ``dataset_type: text/csv``; ``pre_training_bias``, ``post_training_bias`` and ``shap``. The whole
config is checked against the dataset before the model is asked anything, and a key this container does not read
(:data:`CONFIG_KEYS`, :data:`METHOD_KEYS`, :data:`PREDICTOR_KEYS`) fails the job naming it.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from contextlib import nullcontext
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sagestack.aws.backends import Backends
from sagestack.aws.jobs import Job, JobFailed

if TYPE_CHECKING:
    from sagestack.aws.clarify_model import ShadowModel

SUPPORTED_METHODS = {"pre_training_bias", "post_training_bias", "shap", "report"}
BIAS_SECTIONS = {"pre_training_bias": "pre_training_bias_metrics", "post_training_bias": "post_training_bias_metrics"}
METHOD_NAMES = {"DCA": "DCAcc"}  # the SDK's name of a metric -> the name Clarify's analysis.json gives it
PREDICTED = "__clarify_predicted_label__"  # the column of the shadow endpoint's predicted labels


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


# What this container reads of an analysis config; anything else fails the job, naming it (ignoring a key the
# user set would give results that are silently not what was asked).
CONFIG_KEYS = {"version", "dataset_type", "headers", "label", "label_values_or_threshold", "facet", "group_variable",
               "methods", "predictor", "probability_threshold", "excluded_columns", "joinsource_name_or_index"}
METHOD_KEYS = {"pre_training_bias": {"methods"}, "post_training_bias": {"methods"}, "report": {"name", "title"},
               "shap": {"baseline", "num_samples", "agg_method", "use_logit", "save_local_shap_values", "seed",
                        "num_clusters"}}
# instance_type, initial_instance_count and accelerator_type size a real endpoint: a shadow endpoint is one process.
PREDICTOR_KEYS = {"model_name", "instance_type", "initial_instance_count", "accelerator_type", "content_type",
                  "accept_type", "content_template", "label", "probability", "label_headers"}
MAX_SHAP_CELLS = 20_000_000  # num_samples x baseline rows x features: Kernel SHAP's synthetic data, held at once


def _column(config: dict, value: object, headers: list[str], what: str = "column") -> str:
    """The header a config's column (a name or a zero-based index) names.

    Raises:
        JobFailed: an index outside the headers, or a name that is none of them.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(headers):
            raise JobFailed(f"ClientError: the {what} index {value} is outside the {len(headers)} headers")
        return headers[value]
    if str(value) not in headers:
        raise JobFailed(f"ClientError: the {what} {value!r} is not a column of the dataset "
                        f"(headers: {', '.join(headers)})")
    return str(value)


def _unknown(keys: object, known: set[str], where: str) -> None:
    unknown = sorted(set(keys) - known) if isinstance(keys, dict) else []
    if unknown:
        raise JobFailed(f"ClientError: the analysis config's {where} {', '.join(unknown)} "
                        f"{'is' if len(unknown) == 1 else 'are'} not supported by sagestack serve-aws "
                        f"(supported: {', '.join(sorted(known))})")


def _metric_names(method: str, asked: object) -> None:
    """Refuse a bias method's metric names that ``sagestack bias`` does not compute ("all" or a list of names)."""
    from sagestack.bias import REGISTRY

    stage = method.removesuffix("_bias")
    known = {name for name, metric in REGISTRY.items() if metric.stage == stage}
    known |= {"FT"} if stage == "post_training" else set()
    if asked in (None, "all"):
        return
    names = asked.split(",") if isinstance(asked, str) else asked
    if not isinstance(names, list):
        raise JobFailed(f"ClientError: {method}'s methods must be \"all\" or a list of metric names")
    unknown = [str(name) for name in names if METHOD_NAMES.get(str(name).strip(), str(name).strip()) not in known]
    if unknown:
        raise JobFailed(f"ClientError: {method} has no metric {', '.join(unknown)} (known: "
                        f"{', '.join(sorted(known | set(METHOD_NAMES)))})")


def _check_shap(shap: dict) -> None:
    """Refuse SHAP options Clarify would refuse or sagestack does not do."""
    from sagestack.explain.tabular import AGGREGATIONS

    if shap.get("baseline") is None:
        raise JobFailed("ClientError: SHAPConfig needs a baseline: sagestack does not compute one "
                        + ("with num_clusters (k-means) " if "num_clusters" in shap else "")
                        + "from the dataset; give a list of rows, or the S3 URI of a CSV file")
    if shap.get("agg_method", "mean_abs") not in AGGREGATIONS:
        raise JobFailed(f"ClientError: SHAP agg_method {shap.get('agg_method')!r} is not one of "
                        f"{', '.join(AGGREGATIONS)}")
    for key, least, kind in (("num_samples", 1, "positive"), ("seed", 0, "non-negative")):
        value = shap.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise JobFailed(f"ClientError: SHAP {key} must be a {kind} integer (got {value!r})")


def check_config(config: dict) -> None:
    """Refuse what this container does not do: a dataset that is not CSV, an analysis method, a key or a metric
    it does not know, SHAP options Clarify would refuse.

    Raises:
        JobFailed: with the reason.
    """
    if config.get("dataset_type", "text/csv") != "text/csv":
        raise JobFailed(f"ClientError: dataset_type {config.get('dataset_type')!r} is not supported here; use text/csv")
    unsupported = sorted(set(config.get("methods") or {}) - SUPPORTED_METHODS)
    if unsupported:
        raise JobFailed(f"ClientError: Clarify methods {', '.join(unsupported)} are not supported by sagestack "
                        "serve-aws yet (supported: pre_training_bias, post_training_bias, shap)")
    _unknown(config, CONFIG_KEYS, "key")
    methods = config.get("methods") or {}
    for method, options in methods.items():
        _unknown(options or {}, METHOD_KEYS[method], f"methods.{method} key")
        if method in BIAS_SECTIONS:
            _metric_names(method, (options or {}).get("methods"))
    if "shap" in methods:
        _check_shap(methods["shap"] or {})
    if "post_training_bias" in methods or "shap" in methods:
        _unknown(config.get("predictor") or {}, PREDICTOR_KEYS, "predictor key")


def check_shap_size(config: dict, baseline_rows: int, features: int) -> None:
    """Refuse a Kernel SHAP whose synthetic data (``num_samples`` x baseline rows x features values, held at
    once; shap's default number of samples is 2 x features + 2048) would not fit, before any work.

    Raises:
        JobFailed: naming the product and the cap.
    """
    samples = (config["methods"]["shap"] or {}).get("num_samples") or 2 * features + 2048
    cells = samples * baseline_rows * features
    if cells > MAX_SHAP_CELLS:
        raise JobFailed(f"ClientError: SHAP num_samples {samples} x {baseline_rows} baseline rows x {features} "
                        f"features is {cells:,} values, over sagestack's {MAX_SHAP_CELLS:,}; lower num_samples or "
                        "use fewer baseline rows")


def bias_options(config: dict, headers: list[str]) -> list[str]:
    """The ``sagestack bias`` options an ``analysis_config.json`` asks for (label, positive values or threshold,
    facets, group).

    Raises:
        JobFailed: a config this mapping does not support, with the reason.
    """
    check_config(config)
    if "label" not in config or not config.get("facet"):
        raise JobFailed("ClientError: the analysis config names no label or no facet")
    options = ["--label", _column(config, config["label"], headers, "label")]
    positive = config.get("label_values_or_threshold")
    if isinstance(positive, list):
        options += ["--positive", ",".join(str(value) for value in positive)]
    elif positive is not None:
        options += ["--positive-threshold", str(positive)]
    for facet in config["facet"]:
        name = _column(config, facet.get("name_or_index"), headers, "facet")
        value = facet.get("value_or_threshold")
        if isinstance(value, list):
            options += ["--facet", f"{name}={','.join(str(v) for v in value)}"]
        elif value is not None:
            options += ["--facet", f"{name}>{value}"]
        else:
            options += ["--facet", name]
    if config.get("group_variable") is not None:
        options += ["--group", _column(config, config["group_variable"], headers, "group_variable")]
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


def _keep_methods(document: dict, section: str, methods: object) -> dict:
    """``document``'s ``section`` (``pre_training_bias_metrics`` or ``post_training_bias_metrics``) with only the
    requested metrics (``"all"``: every one)."""
    if methods == "all" or not isinstance(methods, list):
        return document[section]
    wanted = {METHOD_NAMES.get(str(method), str(method)) for method in methods}
    for entries in document[section].get("facets", {}).values():
        for entry in entries:
            entry["metrics"] = [metric for metric in entry["metrics"] if metric["name"] in wanted]
    return document[section]


def _rows(data: Path) -> list[list[str]]:
    """The dataset's records, without its header row."""
    with open(data, newline="", encoding="utf-8") as source:
        return list(csv.reader(source))[1:]


def _features(config: dict, data: Path, headers: list[str]) -> tuple[list[str], list[list[str]]]:
    """The feature columns sent to the model, as Clarify reads a CSV dataset: every column but the label, the
    ``excluded_columns`` and the ``joinsource_name_or_index`` (an identifier only); and each record's values.

    Raises:
        JobFailed: a column the config names that is not in the headers, a record with another number of fields
            than the header, or no record at all.
    """
    left_out = {_column(config, config["label"], headers, "label")} if config.get("label") is not None else set()
    excluded = config.get("excluded_columns") or []
    if not isinstance(excluded, list):
        raise JobFailed("ClientError: excluded_columns must be a list of column names or indices")
    left_out |= {_column(config, column, headers, "excluded column") for column in excluded}
    if config.get("joinsource_name_or_index") is not None:
        left_out.add(_column(config, config["joinsource_name_or_index"], headers, "joinsource_name_or_index"))
    positions = [position for position, name in enumerate(headers) if name not in left_out]
    if not positions:
        raise JobFailed("ClientError: no feature column is left for the model (every column is the label, "
                        "excluded or the join source)")
    rows = []
    for number, row in enumerate(_rows(data), start=2):
        if len(row) != len(headers):
            raise JobFailed(f"ClientError: line {number} of the dataset has {len(row)} fields, not {len(headers)}")
        rows.append([row[p] for p in positions])
    if not rows:
        raise JobFailed("ClientError: the dataset has no records")
    return [headers[p] for p in positions], rows


def _with_predictions(data: Path, headers: list[str], labels: list[str], work: Path) -> Path:
    """The dataset with the model's predicted labels as one more column, :data:`PREDICTED`."""
    target = work / "dataset_with_predictions.csv"
    with open(target, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*headers, PREDICTED])
        writer.writerows([*row, label] for row, label in zip(_rows(data), labels))
    return target


def _label_key(value: object) -> str:
    """A label as compared between the dataset and the model: numbers by value (``1`` is ``1.0``)."""
    text = str(value).strip()
    try:
        return repr(float(text))
    except ValueError:
        return text


def _check_predicted(labels: list[str], data: Path, label: str) -> None:
    """Refuse predicted labels none of which is a value of the dataset's label column: every post-training
    metric would compare nothing (all zero) instead of the model's predictions.

    Raises:
        JobFailed: naming a few of each.
    """
    with open(data, newline="", encoding="utf-8") as source:
        values = sorted({row[label] for row in csv.DictReader(source)})
    if labels and not {_label_key(v) for v in values} & {_label_key(v) for v in labels}:
        seen = sorted(set(labels))
        raise JobFailed(f"ClientError: none of the model's predicted labels ({', '.join(seen[:5])}"
                        f"{', ...' if len(seen) > 5 else ''}) is a value of the label column {label} "
                        f"({', '.join(values[:5])}{', ...' if len(values) > 5 else ''}); set "
                        "ModelPredictedLabelConfig's label, probability, probability_threshold or label_headers")


def _bias(backends: Backends, job: Job, config: dict, data: Path, headers: list[str], options: list[str],
          rows: list[list[str]], work: Path, model: ShadowModel | None) -> tuple[dict, str]:
    """``sagestack bias OPTIONS`` on the dataset (with the model's predicted labels of the feature ``rows`` when
    post-training bias is asked): the requested sections of its analysis.json (and sagestack's extras), and its
    report.html."""
    from sagestack.aws.clarify_model import predicted_labels

    methods = config.get("methods") or {}
    if "post_training_bias" in methods:
        backends.jobs.log(job, f"sagestack serve-aws: {len(rows)} records to the shadow endpoint "
                               f"({model.content_type} -> {model.accept_type})")
        classes = isinstance(config.get("label_values_or_threshold"), list)
        answers = model.answers(rows, check=lambda: backends.jobs.check_runtime(job))
        labels = predicted_labels(answers, config.get("predictor") or {},
                                  config.get("probability_threshold"), classes=classes)
        if classes:
            _check_predicted(labels, data, _column(config, config["label"], headers, "label"))
        data = _with_predictions(data, headers, labels, work)
        options = [*options, "--predicted-label", PREDICTED]
    out = work / "bias"
    backends.jobs.run_sagestack(job, ["bias", "--data", str(data), *options, "--out", str(out)], work=work)
    document = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
    sections = {section: _keep_methods(document, section, (methods[method] or {}).get("methods", "all"))
                for method, section in BIAS_SECTIONS.items() if method in methods}
    if "sagestack" in document:  # sagestack's extras (intervals' reasons, label distributions, group metrics)
        sections["sagestack"] = document["sagestack"]
    return sections, (out / "report.html").read_text(encoding="utf-8")


def _baseline(backends: Backends, config: dict, width: int) -> list[list]:
    """SHAPConfig's baseline rows (given in the config, or a CSV object at an S3 URI), each of ``width`` features.

    Raises:
        JobFailed: no baseline, an unreadable one, or rows of another width.
    """
    from sagestack.aws.containers import split_s3_uri
    from sagestack.aws.protocol import AwsError

    baseline = config["methods"]["shap"].get("baseline")
    if isinstance(baseline, str):
        try:
            _, body = backends.s3.open(*split_s3_uri(baseline))
            with body:
                baseline = list(csv.reader(body.read().decode("utf-8").splitlines()))
        except (AwsError, JobFailed, UnicodeDecodeError) as exc:
            raise JobFailed(f"ClientError: cannot read the SHAP baseline {baseline} "
                            f"({getattr(exc, 'message', exc)})") from None
    if not isinstance(baseline, list) or not baseline:
        raise JobFailed("ClientError: SHAPConfig needs a baseline: a list of rows, or the S3 URI of a CSV file")
    rows = [row if isinstance(row, list) else [row] for row in baseline]
    if any(len(row) != width for row in rows):
        raise JobFailed(f"ClientError: each SHAP baseline row must hold the {width} feature values (no label, no "
                        "excluded column)")
    return rows


def _shap(backends: Backends, job: Job, config: dict, features: list[str], rows: list[list[str]],
          baseline: list[list], work: Path, model: ShadowModel) -> tuple[dict, str, Path]:
    """Kernel SHAP of the model's scores, in a process of its own: the ``explanations`` section, the report's
    HTML and the folder holding ``explanations_shap/``."""
    import os

    from sagestack.aws.clarify_model import serving_adapter, shap_spec

    serving_adapter(model.image, model.model_name)  # a ClientError before the process starts
    spec = work / "shap_spec.json"
    spec.write_text(json.dumps(shap_spec(model, config, features, rows, baseline)), encoding="utf-8")
    out = work / "shap"
    backends.jobs.log(job, f"sagestack serve-aws: Kernel SHAP of {len(rows)} records over {len(features)} features")
    backends.jobs.run_checked(job, [sys.executable, "-m", "sagestack.aws.clarify_model", str(spec), str(out)],
                              "serve-aws Kernel SHAP", env=dict(os.environ), cwd=work, stdout=work / "shap.json")
    document = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
    return document["explanations"], (out / "report.html").read_text(encoding="utf-8"), out


def run_clarify_job(backends: Backends, job: Job, local: Callable[[str], Path]) -> dict:
    """Run a Clarify job: bias with ``sagestack bias``, SHAP with sagestack's explain engine, the model through a
    shadow endpoint of it when a method needs its predictions; returns the files it wrote. ``report.html`` is the
    bias report when a bias method ran, else the SHAP report. The whole config is checked against the dataset
    before the shadow endpoint starts.

    Raises:
        JobFailed: an unsupported config, an unreadable dataset, a model that cannot answer as the config says,
            or ``sagestack bias``'s own error.
    """
    from sagestack.aws.clarify_model import shadow_endpoint

    config_folder = _single_input(job.request, "analysis_config", local)
    try:
        config = json.loads((config_folder / "analysis_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise JobFailed(f"ClientError: cannot read analysis_config.json ({exc})") from None
    if not isinstance(config, dict):
        raise JobFailed("ClientError: analysis_config.json is not a JSON object")
    check_config(config)
    methods = config.get("methods") or {}
    work = job.folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    data, headers = _dataset(_single_input(job.request, "dataset", local), config.get("headers"), work)
    options = bias_options(config, headers) if set(BIAS_SECTIONS) & set(methods) else []
    needs_model = "post_training_bias" in methods or "shap" in methods
    if needs_model:
        features, rows = _features(config, data, headers)
    else:  # pre-training bias reads the file itself: no need to hold its records here
        features, rows = [], []
        with open(data, newline="", encoding="utf-8") as source:
            if next(islice(csv.reader(source), 1, None), None) is None:
                raise JobFailed("ClientError: the dataset has no records")
    baseline = None
    if "shap" in methods:
        baseline = _baseline(backends, config, len(features))
        check_shap_size(config, len(baseline), len(features))
    document, html, title, shap_out = {"version": "1.0"}, None, "Bias report", None
    with (shadow_endpoint(backends, job, config, lambda line: backends.jobs.log(job, line)) if needs_model
          else nullcontext()) as model:
        if options:
            sections, html = _bias(backends, job, config, data, headers, options, rows, work, model)
            document.update(sections)
        if "shap" in methods:
            document["explanations"], shap_html, shap_out = _shap(backends, job, config, features, rows, baseline,
                                                                  work, model)
            html, title = (html, title) if html else (shap_html, "Explainability report")
    output = _output(job.request, local)
    output.mkdir(parents=True, exist_ok=True)
    files = ["analysis.json", "report.html", "report.ipynb", "analysis_config.json"]
    (output / "analysis.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    (output / "report.html").write_text(html or "", encoding="utf-8")
    (output / "report.ipynb").write_text(json.dumps(report_notebook(html or "", title), indent=1), encoding="utf-8")
    (output / "analysis_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    if shap_out is not None and (shap_out / "explanations_shap").is_dir():
        shutil.copytree(shap_out / "explanations_shap", output / "explanations_shap", dirs_exist_ok=True)
        files.append("explanations_shap/out.csv")
    return {"files": files}


def report_notebook(html: str, title: str = "Bias report") -> dict:
    """The report as a notebook (nbformat 4), as Clarify writes ``report.ipynb`` beside ``report.html``: one cell
    whose output is the report, so Studio or Jupyter shows it when opened."""
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"language_info": {"name": "python"}},
            "cells": [{"cell_type": "markdown", "id": "title", "metadata": {},
                       "source": [f"# {title}\n", "Written by sagestack serve-aws."]},
                      {"cell_type": "code", "id": "report", "metadata": {}, "execution_count": 1,
                       "source": ["# the report as report.html shows it"],
                       "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"text/html": html}}]}]}
