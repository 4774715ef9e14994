"""A bias job end to end: read data, (predict), analyse, write the report, apply ``--fail-on``."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from sagestack.bias.analysis import BiasConfig, FacetSpec, analyze
from sagestack.bias.metrics import REGISTRY
from sagestack.bias.report import write_bias_report
from sagestack.bias.rules import parse_rule, violations
from sagestack.data.atomic import check_out_dir
from sagestack.errors import ConfigError, SagestackError

PREDICTED_COLUMN = "__predicted_label__"
_FACET = re.compile(r"^\s*([^=><]+?)\s*(?:=\s*(.+)|>\s*(-?\d+(?:\.\d+)?))?\s*$")


class BiasGateFailed(SagestackError):
    """A ``--fail-on`` rule was broken (the report is written; the step fails)."""


def parse_facet(text: str) -> FacetSpec:
    """``col`` (one-vs-rest), ``col=v1,v2`` (sensitive values), ``col>40`` (threshold), ``col1&col2`` (intersection).

    Raises:
        ConfigError: the text does not match any of these forms.
    """
    match = _FACET.match(text)
    if not match or not match.group(1):
        raise ConfigError(f"bad --facet {text!r}; use COLUMN, COLUMN=VALUE[,VALUE], COLUMN>NUMBER or COLUMN&COLUMN")
    name, values, threshold = match.groups()
    if values is not None:
        return FacetSpec(name, tuple(v.strip() for v in values.split(",") if v.strip()))
    if threshold is not None:
        return FacetSpec(name, threshold=float(threshold))
    return FacetSpec(name)


def add_model_predictions(frame: pd.DataFrame, predictor, text_column: str) -> pd.DataFrame:
    """A copy of ``frame`` with the model's predicted label of ``text_column`` in :data:`PREDICTED_COLUMN`."""
    if text_column not in frame.columns:
        raise ConfigError(f"text column '{text_column}' is not in the data; pass --text-column")
    labels = [str(p.label) for p in predictor.predict(frame[text_column].astype(str).tolist())]
    return frame.assign(**{PREDICTED_COLUMN: labels})


def run_bias_on_csv(
    data: Path,
    config: BiasConfig,
    out_dir: Path,
    *,
    engine: str = "pandas",
    predictor=None,
    text_column: str = "review_body",
    fail_on: list[str] | None = None,
    overwrite: bool = False,
) -> dict:
    """Read a CSV with the chosen engine, add a model's predictions if given, and run :func:`run_bias_job`.

    Raises:
        ConfigError: an unknown engine, a model with the Spark engine, or a malformed rule.
        DataError: the CSV is missing, empty, not UTF-8 or malformed.
    """
    from sagestack.data.reviews import read_csv_checked

    if engine not in ("pandas", "spark"):
        raise ConfigError(f"unknown --engine {engine!r}; use pandas or spark")
    check_out_dir(out_dir, command="bias", overwrite=overwrite, protect=[data])  # before the work, not after
    for rule in fail_on or []:
        parse_rule(rule, set(REGISTRY) | {"FT"})  # malformed rules fail before any work
    if engine == "spark":
        if predictor is not None:
            raise ConfigError("--model works with --engine pandas; add a predicted-label column for Spark")
        from sagestack.bias.spark_engine import local_spark_session, read_csv_spark

        frame = read_csv_spark(local_spark_session(), data)
    else:
        frame = read_csv_checked(data, as_text=False)
        if predictor is not None:
            frame = add_model_predictions(frame, predictor, text_column)
            config.predicted = PREDICTED_COLUMN
    return run_bias_job(frame, config, out_dir, engine=engine, fail_on=fail_on, title=f"Bias report: {Path(data).name}",
                        overwrite=overwrite)


def run_bias_job(
    frame,
    config: BiasConfig,
    out_dir: Path,
    *,
    engine: str = "pandas",
    fail_on: list[str] | None = None,
    title: str = "Bias report",
    overwrite: bool = False,
) -> dict:
    """Analyse, write ``analysis.json`` + ``report.html``, then check the ``fail_on`` rules.

    Returns:
        ``{"analysis", "report", "violations"}`` (paths as strings).

    Raises:
        ConfigError: a malformed rule (before anything is written).
        BiasGateFailed: a rule is broken; the report is still written so the cause can be read.
    """
    rules = [parse_rule(rule, set(REGISTRY) | {"FT"}) for rule in fail_on or []]
    document = analyze(frame, config, engine=engine)
    paths = write_bias_report(document, out_dir, title, overwrite=overwrite)
    broken = violations(rules, document)
    result = {"analysis": str(paths["analysis"]), "report": str(paths["report"]), "violations": broken}
    if broken:
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        raise BiasGateFailed(f"bias check failed: {broken[0]}{more}; see {paths['report']}")
    return result
