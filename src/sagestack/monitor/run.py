"""A monitoring run: one window of traffic against a baseline → checks and violations.

Data drift of the texts (words per review, out-of-vocabulary fraction) and of the watched
categorical columns, prediction drift (the predicted label mix), label drift when ground truth
is joined, and bias drift: the post-training bias metrics of the window, each with a bootstrap
interval, against the baseline's values. A bias metric is a violation only when its whole 95 %
interval lies outside the baseline's value ± the tolerance, so a small window's noise never
alarms (SageMaker's bias-drift monitor compares point estimates).
"""

from __future__ import annotations

import warnings

import pandas as pd

from sagestack.errors import DataError
from sagestack.monitor.baseline import Baseline, frequencies, numbers, oov_fractions, word_counts
from sagestack.monitor.drift import MIN_SAMPLES, choose_test, compare

PREDICTED = "predicted_label"
# A facet value's bias metrics are judged only on at least this many of its rows: recall- and
# precision-type metrics of a few dozen rows rest on a handful of positives, and their bootstrap
# intervals are too narrow to trust.
BIAS_MIN_SAMPLES = 100


def check_window(window: pd.DataFrame, baseline: Baseline, *, truth: str | None = None, seed: int = 0) -> dict:
    """Compare one window of traffic with the baseline.

    All checks of a window share one false-alarm budget (see :mod:`sagestack.monitor.drift`).
    Text and prediction checks use every row; label and column checks the rows that have the
    column (ground truth joined to part of the window); bias drift the rows with a true label.

    Args:
        window: one row per prediction: the text (the baseline's text column), ``predicted_label``,
            optionally ``model_kind`` (captured rows have it), and, when joined from ground truth,
            the true label and the facet/watched columns.
        baseline: from :func:`~sagestack.monitor.baseline.make_baseline`.
        truth: the true-label column, when the window has ground truth (default: the baseline's
            label column if present).
        seed: seeds the null resamples and the bootstrap.

    Returns:
        ``{"rows", "checks": [{"name", "test", "value", "threshold", "status", "samples"}],
        "bias": [{"facet_value", "metric", "baseline", "interval", "band", "status", "samples"}],
        "violations": [one line each]}``.

    Raises:
        DataError: an empty window, a window without the text or prediction column, predictions
            of another model kind than the baseline's, or in labels the baseline's model does not have.
    """
    stats = baseline.statistics
    text_column = stats["text"]["column"]
    if window.empty:
        raise DataError("the window has no records; widen --since/--until or check --capture")
    for column in (text_column, PREDICTED):
        if column not in window.columns:
            raise DataError(f"the window has no column '{column}'; columns are: {', '.join(window.columns)}")
    kind = stats["model"].get("kind")
    if kind and "model_kind" in window.columns:
        kinds = sorted(set(window["model_kind"].dropna().astype(str)) - {kind})
        if kinds:
            raise DataError(f"the window's predictions come from a {', '.join(kinds)} model but the baseline was made "
                            f"with a {kind} model; make a baseline for the served model (sagestack monitor baseline)")
    unknown = sorted(set(window[PREDICTED].astype(str)) - set(baseline.labels))
    if unknown:
        raise DataError(f"the window's predictions use labels {unknown} that the baseline's model does not have "
                        f"({', '.join(baseline.labels)}): the baseline is from another model; make one for this model")
    truth = truth or (stats["labels"]["column"] if stats["labels"]["column"] in window.columns else None)

    texts = window[text_column].astype(str)
    planned = [
        ("text.words_per_review", stats["text"]["word_counts"]["sample"], word_counts(texts), "number"),
        ("text.out_of_vocabulary", stats["text"]["oov_fraction"]["sample"],
         oov_fractions(texts, baseline.vocabulary), "number"),
        ("predictions", stats["predictions"]["frequencies"], frequencies(window[PREDICTED]), "categorical"),
    ]
    if truth:
        planned.append(("labels", stats["labels"]["frequencies"], frequencies(window[truth]), "categorical"))
    for column, column_stats in stats["columns"].items():
        if column not in window.columns:
            continue
        if column_stats["type"] == "numeric":
            planned.append((f"columns.{column}", column_stats["sample"], numbers(window[column]), "number"))
        else:
            planned.append((f"columns.{column}", column_stats["frequencies"], frequencies(window[column]), "categorical"))

    chosen = []
    for name, reference, current, kind in planned:
        size = sum(reference.values()) if isinstance(reference, dict) else len(reference)
        chosen.append((name, reference, current, choose_test(kind, int(size))))
    min_samples = int(baseline.constraints.get("min_samples", MIN_SAMPLES))
    checks = []
    for name, reference, current, test in chosen:
        verdict = compare(test, reference, current if isinstance(current, dict) else list(current),
                          tests_in_window=len(chosen), min_samples=min_samples, seed=seed)
        checks.append({"name": name, **verdict.to_dict()})

    judged = window[window[truth].notna() & (window[truth].astype(str) != "")] if truth else window.iloc[:0]
    bias = _bias_drift(judged, baseline, truth, seed) if truth and not judged.empty else []
    violations = [f"{c['name']}: {c['test']} {c['value']:.4g} beyond {c['threshold']:.4g}" for c in checks if c["drift"]]
    violations += [f"bias {b['metric']} of {b['facet_value']}: 95% interval [{b['interval'][0]:.3f}, "
                   f"{b['interval'][1]:.3f}] outside the baseline's band [{b['band'][0]:.3f}, {b['band'][1]:.3f}]"
                   for b in bias if b["status"] == "drift"]
    return {"rows": int(len(window)), "checks": checks, "bias": bias, "violations": violations}


def _bias_drift(window: pd.DataFrame, baseline: Baseline, truth: str, seed: int) -> list[dict]:
    """Each watched bias metric of each facet value: the window's interval against the baseline's band."""
    from sagestack.bias import BiasConfig, LabelSpec, analyze
    from sagestack.bias.job import parse_facet

    spec = baseline.statistics.get("bias")
    if not spec or spec["facet"] not in window.columns:
        return []
    constraints = baseline.constraints.get("bias", {})
    tolerance = float(constraints.get("tolerance", 0.1))
    facet = spec["facet"]
    sizes = window[facet].astype(str).value_counts()

    def insufficient(reason: str) -> list[dict]:
        return [{"facet_value": None, "metric": None, "baseline": None, "band": None, "interval": None,
                 "tolerance": tolerance, "status": "insufficient data", "reason": reason, "samples": int(len(window))}]

    if len(sizes) < 2 or (sizes >= BIAS_MIN_SAMPLES).sum() < 1:
        return insufficient(f"bias drift needs two values of '{facet}' and one with {BIAS_MIN_SAMPLES} rows")
    config = BiasConfig(label=truth, positive=LabelSpec(values=tuple(spec["positive"])), facets=[parse_facet(facet)],
                        predicted=PREDICTED, ci_samples=int(constraints.get("bootstrap", 300)), seed=seed)
    try:
        with warnings.catch_warnings():  # facet values without a defined metric in a resample: NaN, reported below
            warnings.simplefilter("ignore", RuntimeWarning)
            document = analyze(window.assign(**{truth: window[truth].astype(str),
                                                PREDICTED: window[PREDICTED].astype(str)}), config)
    except DataError as exc:  # e.g. no positive label in the window: nothing to compare
        return insufficient(str(exc))
    out = []
    for entry in document["post_training_bias_metrics"]["facets"][facet]:
        value = str(entry["value_or_threshold"])
        reference = spec["values"].get(value, {})
        samples = int(sizes.get(value, 0))
        for metric in entry["metrics"]:
            base = reference.get(metric["name"]) or {}
            if base.get("value") is None:
                continue
            low, high = base.get("interval") or (base["value"], base["value"])
            band = [low - tolerance, high + tolerance]
            interval = metric.get("confidence_interval")
            row = {"facet_value": value, "metric": metric["name"], "baseline": base["value"], "band": band,
                   "value": metric.get("value"), "interval": interval, "tolerance": tolerance, "samples": samples}
            if samples < BIAS_MIN_SAMPLES or interval is None or metric.get("value") is None:
                row["status"] = "insufficient data"
            elif interval[1] < band[0] or interval[0] > band[1]:
                row["status"] = "drift"
            else:
                row["status"] = "ok"
            out.append(row)
    return out
