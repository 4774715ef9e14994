"""A Clarify-style bias analysis: facets → contingency tables → metrics → ``analysis.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from sagestack.bias.metrics import POST_TRAINING, PRE_TRAINING, Metric
from sagestack.bias.table import (
    INTERSECTION_SEPARATOR,
    MISSING,
    ContingencyTable,
    LabelSpec,
    build_table_pandas,
    require_columns,
)
from sagestack.errors import ConfigError, DataError

FT_DESCRIPTION = "Flip Test (FT)"


@dataclass(frozen=True)
class FacetSpec:
    """A facet: a column, optionally its sensitive values or (numeric) a threshold.

    Without values or threshold every facet value is analysed one-vs-rest, as Clarify does.
    ``name`` may join two columns with ``&`` for their intersection (``product_category&division``).
    """

    name: str
    sensitive_values: tuple[str, ...] | None = None
    threshold: float | None = None

    @property
    def columns(self) -> list[str]:
        """The data columns this facet is made of."""
        return self.name.split("&")

    @property
    def label(self) -> str:
        """The key of this facet's results: the spec in ``--facet`` syntax, canonical.

        ``cat``, ``cat=x,y``, ``age>40``, ``a&b``. Keyed by the spec, not the column, so two
        facets on one column (``cat=x,y`` and ``cat``) both keep their results.
        """
        if self.sensitive_values is not None:
            return f"{self.name}={','.join(self.sensitive_values)}"
        if self.threshold is not None:
            text = f"{self.threshold:g}"  # as the facet values write it: ">40"
            # ...unless that rounds: age>40.0000001 and age>40 are two facets.
            return f"{self.name}>{text if float(text) == self.threshold else repr(self.threshold)}"
        return self.name


@dataclass
class BiasConfig:
    """What to analyse. ``predicted`` enables post-training metrics, ``group`` CDDL/CDDPL."""

    label: str
    positive: LabelSpec
    facets: list[FacetSpec]
    predicted: str | None = None
    group: str | None = None
    ci_samples: int = 0
    seed: int = 42  # the seed every sagestack command defaults to
    ft_features: list[str] = field(default_factory=list)


def _facet_column(frame: pd.DataFrame, facet: FacetSpec) -> pd.Series:
    for column in facet.columns:
        require_columns(frame.columns, facet=column)
    if len(facet.columns) == 1:
        return frame[facet.columns[0]]
    parts = [frame[c].astype("string").fillna(MISSING) for c in facet.columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + INTERSECTION_SEPARATOR + part
    return joined


def check_inputs(table: ContingencyTable, config: BiasConfig, facet: FacetSpec) -> None:
    """Reject analyses that cannot mean anything, with one clear line.

    Raises:
        DataError: the positive label never occurs, or the facet has a single value.
    """
    if table.counts[:, :, 1, :].sum() == 0:
        raise DataError(
            f"positive label value(s) {config.positive.describe()} never occur in column '{config.label}'; "
            "check --positive (or --positive-threshold)"
        )
    present = [v for v, c in zip(table.facet_values, table.counts.sum(axis=(1, 2, 3))) if c > 0]
    if len(present) < 2:
        raise DataError(
            f"facet '{facet.name}' has a single value ({present[0] if present else 'none'}); "
            "bias compares facet values, so it needs at least two"
        )
    if facet.sensitive_values is not None:
        unknown = [v for v in facet.sensitive_values if v not in table.facet_values]
        if len(unknown) == len(facet.sensitive_values):
            raise DataError(
                f"facet '{facet.name}' has none of the sensitive values {list(facet.sensitive_values)}; "
                f"its values are: {', '.join(table.facet_values[:20])}"
            )


def _entries(table: ContingencyTable, facet: FacetSpec) -> tuple[list[str], np.ndarray]:
    """(value_or_threshold per entry, counts shaped (entries, groups, 2, 2)) for facet d."""
    if facet.sensitive_values is not None:
        name = ",".join(facet.sensitive_values)
        merged = table.merge_facet_values(facet.sensitive_values, name)
        return [name], merged.counts[:1]
    if facet.threshold is not None:
        return [table.facet_values[0]], table.counts[:1]
    return list(table.facet_values), table.counts


def _metric_values(metric: Metric, d: np.ndarray, total: np.ndarray) -> np.ndarray:
    return metric.fn(d, total - d)


def bootstrap_tables(counts: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Resample the whole table (multinomially, same total) ``samples`` times: (samples, *counts.shape).

    Resampling rows with replacement is the same as drawing cell counts from a multinomial
    with the observed cell shares, so 10 M rows cost no more than 10 thousand.
    """
    rng = np.random.default_rng(seed)
    flat = counts.reshape(-1).astype(np.float64)
    total = int(flat.sum())
    draws = rng.multinomial(total, flat / total, size=samples)
    return draws.reshape((samples, *counts.shape))


def _metric_entry(metric: Metric, value: float, interval: tuple[float, float] | None, config: BiasConfig) -> dict:
    entry = {"name": metric.name, "description": metric.description}
    if metric.needs_group and config.group is None:
        return {**entry, "value": None, "error": "undefined: needs a group variable (--group)"}
    if not np.isfinite(value):
        return {**entry, "value": None, "error": f"undefined: {metric.undefined}"}
    entry["value"] = float(value)
    if interval is not None:
        entry["confidence_interval"] = [float(interval[0]), float(interval[1])]
    return entry


def _stage(table: ContingencyTable, facet: FacetSpec, metrics: list[Metric], config: BiasConfig) -> list[dict]:
    names, d = _entries(table, facet)
    total = table.counts.sum(axis=0)
    values = {m.name: _metric_values(m, d, total) for m in metrics}
    intervals: dict[str, np.ndarray] = {}
    if config.ci_samples:
        boot = bootstrap_tables(table.counts, config.ci_samples, config.seed)
        if facet.sensitive_values is not None:
            chosen = np.isin(np.array(table.facet_values, dtype=object), list(facet.sensitive_values))
            boot_d = boot[:, chosen].sum(axis=1, keepdims=True)
        else:
            boot_d = boot[:, : len(names)]
        boot_total = boot.sum(axis=1)[:, None]
        for m in metrics:
            sample = m.fn(boot_d, boot_total - boot_d)
            with np.errstate(invalid="ignore"):
                sample = np.where(np.isfinite(sample), sample, np.nan)
                intervals[m.name] = np.nanpercentile(sample, [2.5, 97.5], axis=0).T
    out = []
    for i, name in enumerate(names):
        entries = [
            _metric_entry(m, values[m.name][i], intervals[m.name][i] if m.name in intervals else None, config)
            for m in metrics
        ]
        out.append({"value_or_threshold": name, "metrics": sorted(entries, key=lambda e: e["name"])})
    return out


def flip_test(frame: pd.DataFrame, d_mask: np.ndarray, predicted_positive: np.ndarray, features: Sequence[str]) -> float:
    """FT as the Clarify documentation defines it: (F+ - F-) / n_d.

    Each member of facet d is matched to its k nearest members of the rest (k = 5, or 1 when
    the rest has fewer than 10 rows; Euclidean distance on ``features``), whose majority model
    prediction is d's counterfactual. F+ counts d members predicted negative whose counterfactual
    is positive, F- the reverse.
    """
    from sklearn.neighbors import KNeighborsClassifier

    x = frame[list(features)].to_numpy(dtype=float)
    a_mask = ~d_mask
    k = 5 if a_mask.sum() > 9 else 1
    knn = KNeighborsClassifier(n_neighbors=k).fit(x[a_mask], predicted_positive[a_mask])
    counterfactual = knn.predict(x[d_mask])
    model = predicted_positive[d_mask]
    f_plus = int(((model == 0) & (counterfactual == 1)).sum())
    f_minus = int(((model == 1) & (counterfactual == 0)).sum())
    return (f_plus - f_minus) / max(int(d_mask.sum()), 1)


def _ft_entries(frame: pd.DataFrame, facet: FacetSpec, column: pd.Series, entries: list[dict], config: BiasConfig) -> None:
    """Add FT to each post-training entry (pandas engine only: it needs the rows and a kNN)."""
    reason = None
    if not config.ft_features:
        reason = "undefined: needs numeric feature columns for the nearest-neighbour counterfactuals (--ft-features)"
    else:
        bad = [c for c in config.ft_features if c not in frame.columns or not pd.api.types.is_numeric_dtype(frame[c])]
        if bad:
            reason = f"undefined: FT feature column '{bad[0]}' is missing or not numeric"
    predicted = config.positive.positive(frame[config.predicted]).astype(int) if reason is None else None
    for entry in entries:
        metric = {"name": "FT", "description": FT_DESCRIPTION}
        if reason is None:
            value = entry["value_or_threshold"]
            if facet.sensitive_values is not None:
                d_mask = column.astype(str).isin(facet.sensitive_values).to_numpy()
            else:
                d_mask = (column.astype("string").fillna(MISSING) == value).to_numpy()
            metric["value"] = flip_test(frame, d_mask, predicted, config.ft_features)
        else:
            metric.update(value=None, error=reason)
        entry["metrics"] = sorted(entry["metrics"] + [metric], key=lambda e: e["name"])


def group_metrics(frame: pd.DataFrame, column: pd.Series, config: BiasConfig) -> dict:
    """fairlearn MetricFrame: accuracy, precision, recall and selection rate per facet value."""
    from fairlearn.metrics import MetricFrame, selection_rate
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    y_true = config.positive.positive(frame[config.label]).astype(int)
    y_pred = config.positive.positive(frame[config.predicted]).astype(int)
    mf = MetricFrame(
        metrics={
            "accuracy": accuracy_score,
            "precision": lambda t, p: precision_score(t, p, zero_division=0),
            "recall": lambda t, p: recall_score(t, p, zero_division=0),
            "selection_rate": selection_rate,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=column.astype("string").fillna(MISSING).to_numpy(),
    )
    return {
        "overall": {k: float(v) for k, v in mf.overall.items()},
        "by_value": {str(value): {k: float(v) for k, v in row.items()} for value, row in mf.by_group.iterrows()},
    }


def _distinct(facets: list[FacetSpec]) -> list[FacetSpec]:
    """The facets in order, each once; a repeated facet is the same analysis, so it is done once."""
    by_label: dict[str, FacetSpec] = {}
    for facet in facets:
        seen = by_label.setdefault(facet.label, facet)
        if seen != facet:  # only from code, e.g. sensitive values ("x,y",) versus ("x", "y")
            raise ConfigError(f"two different facets would both be reported as '{facet.label}': {seen} and {facet}")
    return list(by_label.values())


def validate_config(frame: pd.DataFrame, config: BiasConfig) -> None:
    """Check a bias job's inputs on a pandas frame without computing any metric: the checks
    :func:`analyze` makes first (columns present, the positive label occurs, each facet has two
    values), so a caller can refuse a job before launching it.

    Raises:
        DataError: the first problem :func:`analyze` would report, in the same words.
    """
    require_columns(frame.columns, label=config.label, predicted_label=config.predicted, group=config.group)
    for facet in _distinct(config.facets):
        table = build_table_pandas(
            frame, facet=_facet_column(frame, facet), label=config.label, positive=config.positive,
            predicted=config.predicted, group=config.group, facet_threshold=facet.threshold,
        )
        check_inputs(table, config, facet)


def analyze(frame, config: BiasConfig, *, engine: str = "pandas") -> dict:
    """Compute Clarify's pre-training (and, with predictions, post-training) metrics.

    Args:
        frame: a pandas DataFrame, or a Spark DataFrame with ``engine="spark"``.
        config: label, facets, optional predictions/group, confidence-interval samples.
        engine: ``"pandas"`` or ``"spark"`` (the counting pass only; the rest is identical).

    Returns:
        The ``analysis.json`` document in Clarify's schema, plus sagestack's extras: per-metric
        ``confidence_interval``, ``error`` reasons for undefined values, label distributions and
        (pandas) fairlearn group metrics under ``sagestack``.

    Results (``facets``, and the extras per facet) are keyed by :attr:`FacetSpec.label`, which is
    the column name for a plain one-vs-rest facet, as in Clarify.

    Raises:
        DataError: unknown columns, a positive label that never occurs, a single-valued facet.
        ConfigError: two different facets with the same label.
    """
    require_columns(frame.columns, label=config.label, predicted_label=config.predicted, group=config.group)
    label_info = {"label": config.label, "label_value_or_threshold": config.positive.describe()}
    pre = {**label_info, "facets": {}}
    post = {**label_info, "facets": {}}
    extras: dict = {"engine": engine, "label_distribution": {}, "missing_facet_values": {}, "group_metrics": {}}
    for facet in _distinct(config.facets):
        key = facet.label
        column = None
        if engine == "spark":
            from sagestack.bias.spark_engine import build_table_spark, spark_facet_column

            data, facet_col = spark_facet_column(frame, facet.columns)
            table = build_table_spark(
                data, facet=facet_col, label=config.label, positive=config.positive, predicted=config.predicted,
                group=config.group, facet_threshold=facet.threshold,
            )
        else:
            column = _facet_column(frame, facet)
            table = build_table_pandas(
                frame, facet=column, label=config.label, positive=config.positive, predicted=config.predicted,
                group=config.group, facet_threshold=facet.threshold,
            )
        check_inputs(table, config, facet)
        per_value = table.counts.sum(axis=(1, 3))  # (values, observed)
        extras["label_distribution"][key] = {
            v: {"negative": int(c[0]), "positive": int(c[1])} for v, c in zip(table.facet_values, per_value)
        }
        if MISSING in table.facet_values:
            extras["missing_facet_values"][key] = int(per_value[table.facet_values.index(MISSING)].sum())
        pre["facets"][key] = _stage(table, facet, PRE_TRAINING, config)
        if config.predicted:
            entries = _stage(table, facet, POST_TRAINING, config)
            if column is not None:
                _ft_entries(frame, facet, column, entries, config)
                extras["group_metrics"][key] = group_metrics(frame, column, config)
            post["facets"][key] = entries
    document = {"version": "1.0", "pre_training_bias_metrics": pre}
    if config.predicted:
        document["post_training_bias_metrics"] = post
    document["sagestack"] = extras
    return document
