"""A monitoring baseline: the statistics of the training data and of the model's predictions on
it, and the constraints a window of traffic is held to (SageMaker Model Monitor's
``statistics.json`` and ``constraints.json``, in sagestack's own layout).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sagestack.errors import DataError

STATISTICS_FILE, CONSTRAINTS_FILE = "statistics.json", "constraints.json"
BASELINE_VERSION = 1
# The values of a numeric distribution a baseline keeps (a uniform sample beyond that).
SAMPLE_SIZE = 5000
VOCABULARY_SIZE = 20000
# Post-training bias metrics watched for drift, and how far a window may move from the baseline.
BIAS_METRICS = ("AD", "DCAcc", "DPPL", "RD")
BIAS_TOLERANCE = 0.1
BIAS_BOOTSTRAP = 300
_TOKEN = re.compile(r"[a-z0-9']+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens of a review (letters, digits, apostrophes)."""
    return _TOKEN.findall(str(text).lower())


def word_counts(texts: pd.Series) -> np.ndarray:
    """Words per review."""
    return np.array([len(tokens(t)) for t in texts], dtype=float)


def oov_fractions(texts: pd.Series, vocabulary: set[str]) -> np.ndarray:
    """Per review, the fraction of its words missing from ``vocabulary`` (0 for an empty review)."""
    out = []
    for text in texts:
        words = tokens(text)
        out.append(sum(w not in vocabulary for w in words) / len(words) if words else 0.0)
    return np.array(out, dtype=float)


def _sample(values: np.ndarray, seed: int) -> list[float]:
    if len(values) > SAMPLE_SIZE:
        values = np.random.default_rng(seed).choice(values, SAMPLE_SIZE, replace=False)
    return [float(v) for v in values]


def frequencies(values: pd.Series) -> dict[str, int]:
    """How often each value occurs, missing values (NaN, empty strings) left out."""
    present = values.dropna().astype(str)
    return {str(k): int(v) for k, v in present[present != ""].value_counts().sort_index().items()}


@dataclass
class Baseline:
    """A baseline as :func:`make_baseline` builds it and :func:`load_baseline` reads it."""

    statistics: dict
    constraints: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """The model's labels, as strings."""
        return [str(label) for label in self.statistics["model"]["labels"]]

    @property
    def vocabulary(self) -> set[str]:
        """The words of the baseline's texts (the most frequent VOCABULARY_SIZE)."""
        return set(self.statistics["text"]["vocabulary"])

    def write(self, out_dir: Path, *, overwrite: bool = False) -> dict[str, Path]:
        """Write ``statistics.json`` and ``constraints.json`` into ``out_dir`` atomically.

        ``overwrite`` replaces a folder sagestack did not write (``--overwrite``).
        """
        from sagestack.data.atomic import atomic_dir

        out_dir = Path(out_dir)
        with atomic_dir(out_dir, command="monitor baseline", overwrite=overwrite) as tmp:
            (tmp / STATISTICS_FILE).write_text(json.dumps(self.statistics, indent=1), encoding="utf-8")
            (tmp / CONSTRAINTS_FILE).write_text(json.dumps(self.constraints, indent=2), encoding="utf-8")
        return {"statistics": out_dir / STATISTICS_FILE, "constraints": out_dir / CONSTRAINTS_FILE}


def make_baseline(
    frame: pd.DataFrame,
    predictor,
    *,
    text_column: str = "review_body",
    label: str = "sentiment",
    positive: tuple[str, ...] = ("1",),
    facet: str | None = "product_category",
    columns: tuple[str, ...] = ("product_category",),
    numeric_columns: tuple[str, ...] = (),
    seed: int = 0,
) -> Baseline:
    """Statistics and constraints of a training set and of ``predictor``'s predictions on it.

    Args:
        frame: the training data: the text, the true label, the facet and other columns to watch.
        predictor: the model (any kind: ``predict(texts)``, ``labels``).
        text_column / label / positive / facet: what the text is, which column is the truth, which
            label value is "positive" for the bias metrics, and the facet they are computed by.
        columns: categorical columns to watch for drift (when a window carries them).
        numeric_columns: numeric columns to watch (their distribution: a sample and quantiles).
        seed: seeds the samples and the bootstrap.

    Raises:
        DataError: a named column is missing, or the frame is empty.
    """
    from sagestack.bias import BiasConfig, LabelSpec, analyze
    from sagestack.bias.job import parse_facet

    if both := sorted(set(columns) & set(numeric_columns)):
        raise DataError(f"column {', '.join(both)} is given as categorical and as numeric; watch it as one of them")
    needed = [text_column, label, *([facet] if facet else []), *columns, *numeric_columns]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise DataError(f"the baseline data has no column {', '.join(missing)}; columns are: {', '.join(frame.columns)}")
    if frame.empty:
        raise DataError("the baseline data has no rows")
    texts = frame[text_column].astype(str)
    predicted = [str(p.label) for p in predictor.predict(texts.tolist())]
    counts = word_counts(texts)
    # The vocabulary comes from one half, the out-of-vocabulary rate is measured on the other:
    # measured on the texts it was built from, it would be 0 and every window would look new.
    order = np.random.default_rng(seed).permutation(len(texts))
    half = len(order) // 2
    vocabulary_counts: dict[str, int] = {}
    for text in texts.iloc[order[:half]]:
        for word in tokens(text):
            vocabulary_counts[word] = vocabulary_counts.get(word, 0) + 1
    vocabulary = sorted(vocabulary_counts, key=lambda w: (-vocabulary_counts[w], w))[:VOCABULARY_SIZE]
    oov = oov_fractions(texts.iloc[order[half:]], set(vocabulary))
    statistics = {
        "version": BASELINE_VERSION,
        "rows": int(len(frame)),
        "model": {"kind": getattr(predictor, "kind", None), "labels": [str(x) for x in predictor.labels]},
        "text": {
            "column": text_column,
            "word_counts": {"quantiles": {str(q): float(np.quantile(counts, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
                            "mean": float(counts.mean()), "sample": _sample(counts, seed)},
            "oov_fraction": {"mean": float(oov.mean()), "sample": _sample(oov, seed)},
            "vocabulary": vocabulary,
        },
        "columns": {**{c: {"type": "categorical", "frequencies": frequencies(frame[c])} for c in columns},
                    **{c: _numeric(frame[c], c, seed) for c in numeric_columns}},
        "labels": {"column": label, "frequencies": frequencies(frame[label])},
        "predictions": {"frequencies": frequencies(pd.Series(predicted))},
    }
    if facet:
        config = BiasConfig(label=label, positive=LabelSpec(values=positive), facets=[parse_facet(facet)],
                            predicted="__predicted__", ci_samples=BIAS_BOOTSTRAP, seed=seed)
        with warnings.catch_warnings():  # a facet value with an undefined metric in a resample: NaN, reported as null
            warnings.simplefilter("ignore", RuntimeWarning)
            document = analyze(frame.assign(__predicted__=predicted), config)
        statistics["bias"] = {"label": label, "positive": list(positive), "facet": facet,
                              "values": _bias_values(document, facet)}
    constraints = {
        "min_samples": _min_samples(),
        "tests": "chosen per column by type and baseline size (sagestack.monitor.drift.choose_test)",
        "bias": {"metrics": list(BIAS_METRICS), "tolerance": BIAS_TOLERANCE, "bootstrap": BIAS_BOOTSTRAP},
    }
    return Baseline(statistics, constraints)


def numbers(values: pd.Series) -> np.ndarray:
    """A column's numbers, missing and unparsable values left out."""
    return pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)


def _numeric(values: pd.Series, name: str, seed: int) -> dict:
    found = numbers(values)
    if len(found) == 0:
        raise DataError(f"column '{name}' has no numbers; watch it with --column (categorical) instead")
    return {"type": "numeric", "sample": _sample(found, seed),
            "quantiles": {str(q): float(np.quantile(found, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}}


def _min_samples() -> int:
    from sagestack.monitor.drift import MIN_SAMPLES

    return MIN_SAMPLES


def _bias_values(document: dict, facet: str) -> dict[str, dict[str, dict]]:
    """``{facet value: {metric: {"value", "interval"}}}`` of the watched post-training metrics."""
    out = {}
    for entry in document["post_training_bias_metrics"]["facets"][facet]:
        out[str(entry["value_or_threshold"])] = {
            m["name"]: {"value": m.get("value"), "interval": m.get("confidence_interval")}
            for m in entry["metrics"] if m["name"] in BIAS_METRICS
        }
    return out


def load_baseline(folder: Path) -> Baseline:
    """Read a baseline written by :meth:`Baseline.write`.

    Raises:
        DataError: the folder has no baseline, or one this version cannot read.
    """
    folder = Path(folder)
    try:
        statistics = json.loads((folder / STATISTICS_FILE).read_text(encoding="utf-8"))
        constraints = json.loads((folder / CONSTRAINTS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{folder} holds no baseline ({STATISTICS_FILE}, {CONSTRAINTS_FILE}); "
                        "make one with `sagestack monitor baseline`") from None
    except ValueError as exc:
        raise DataError(f"{folder}: the baseline is not valid JSON ({exc}); make it again") from None
    if statistics.get("version") != BASELINE_VERSION:
        raise DataError(f"{folder}: baseline version {statistics.get('version')} is not {BASELINE_VERSION}; make it again")
    return Baseline(statistics, constraints)
