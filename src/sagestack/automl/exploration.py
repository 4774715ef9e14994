"""Data exploration for an AutoML job: Autopilot's "data exploration notebook" as a report.

:func:`explore` profiles the data a job is about to train on: row counts, duplicate rows, missing
values, an inferred type per column, the target distribution and, for each column, how much a
simple model trained on that column alone beats always guessing the most common class
("prediction power"). What it finds becomes warnings a person should read before trusting a
leaderboard: class imbalance, target leakage, test texts that also occur in train, duplicates,
sparse, constant and identifier-like columns. :func:`write_exploration` writes the report as
``exploration.json`` and a self-contained ``exploration.html``.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from sagestack.data.atomic import atomic_file
from sagestack.errors import DataError
from sagestack.report import page

COLUMN_TYPES = ("text", "categorical", "numeric", "identifier", "constant")
# A column is text when its values are mostly several words long and rarely repeat; a
# categorical column can have multi-word values too, but only a few distinct ones.
TEXT_MIN_MEAN_WORDS = 3.0
TEXT_MIN_UNIQUE_RATIO = 0.5
IDENTIFIER_MIN_UNIQUE_RATIO = 0.95
IMBALANCE_RATIO = 0.5
MISSING_WARN_SHARE = 0.2
LEAKAGE_MIN_POWER = 0.95
HOLDOUT_FRACTION = 0.2
MAX_EXAMPLES = 5
# Stands in for a missing value where a category is needed (the per-value majority model, equality).
_MISSING_KEY = "\0missing"

PREDICTION_POWER_HELP = (
    "Prediction power: a simple model is trained on that column alone on a seeded, stratified 80% of the "
    "training rows and scored on the other 20%. Text columns use TF-IDF of words and word pairs with logistic "
    "regression; categorical, identifier and constant columns predict the most common class of each value "
    "(a value not seen in the 80% gets the overall most common class); numeric columns use a decision tree of "
    "depth 3 with missing values set to the median. Prediction power = max(0, (accuracy - majority accuracy) / "
    "(1 - majority accuracy)), where majority accuracy is what always guessing the most common class scores: "
    "0 means the column alone is no better than that guess, 1 means it predicts the target perfectly."
)
TYPE_HELP = (
    "Types: text = mostly multi-word values (mean of 3 words or more) that rarely repeat; numeric = every value "
    "is a number; identifier = nearly every value is distinct (95% or more) and not text, like an ID; "
    "categorical = a limited set of repeating values; constant = at most one distinct value. "
    "Empty and whitespace-only cells count as missing."
)


def explore(
    train: pd.DataFrame,
    test: pd.DataFrame | None,
    *,
    target: str,
    text_column: str | None,
    columns: Sequence[str] = (),
    seed: int = 42,
) -> dict:
    """Profile the train (and test) split of an AutoML job and flag problems in the data.

    Only the target, the text column and ``columns`` are examined. Values may be strings (a CSV
    read as text) or numbers; NaN, None and empty or whitespace-only strings count as missing.
    Class labels are reported as strings (``1.0`` and ``"1"`` are both ``"1"``).

    The report (every value JSON-serialisable; shares are fractions in [0, 1], rounded to 4
    places)::

        {
          "target": {"name": str,
                     "missing": {"count": int, "share": float},
                     "distribution": {"train": {label: {"count": int, "share": float}},
                                      "test": {label: {"count": int, "share": float}}}},
          "text_column": str | None,
          "rows": {"train": int, "test": int},
          "duplicate_rows": {"count": int, "share": float},
          "columns": {name: {"type": "text" | "categorical" | "numeric" | "identifier" | "constant",
                             "unique": int,
                             "missing": {"count": int, "share": float},
                             "prediction": {"accuracy": float, "majority_accuracy": float,
                                            "prediction_power": float} | None}},
          "holdout": {"seed": int, "fit_rows": int, "holdout_rows": int, "stratified": bool} | None,
          "near_duplicates": {"count": int, "share": float,
                              "examples": [{"test": str, "train": str}]} | None,
          "warnings": [{"kind": str, "message": str, ...}],
        }

    ``columns`` is in examined order (the text column first). Shares in the target distribution
    are over rows that have a label; duplicate and missing shares are over all train rows.
    ``duplicate_rows`` counts train rows that repeat an earlier row over the examined columns and
    the target. ``prediction`` (see :data:`PREDICTION_POWER_HELP`) and ``holdout`` are ``None``
    when train has fewer than 5 labelled rows or a single class. ``near_duplicates`` counts test
    rows whose normalised text (lower case, only letters and digits, single spaces) also occurs
    in train; it is ``None`` without a text column or a test split. Warning kinds (with their
    extra keys): ``target_leakage`` (column, reasons), ``near_duplicates`` (count, share),
    ``class_imbalance`` (rarest, most_common, ratio), ``duplicate_rows`` (count, share),
    ``missing_values`` (column, share), ``constant_column`` (column), ``identifier_column``
    (column, unique_ratio).

    Args:
        train: the training split.
        test: the test split, or ``None``.
        target: the label column.
        text_column: the free-text column, or ``None``.
        columns: further feature columns to examine.
        seed: random seed of the holdout split and the per-column models.

    Returns:
        The report described above.

    Raises:
        DataError: train is empty, lacks the target or an examined column, has no labels at
            all, or its text column is empty in every row.
    """
    used = list(dict.fromkeys([c for c in (text_column, *columns) if c is not None]))
    if target not in train.columns:
        raise DataError(f"target column '{target}' is not in the training data; its columns are {list(train.columns)}")
    if target in used:
        raise DataError(f"target column '{target}' is also listed as a feature column; remove it from the columns")
    absent = [c for c in used if c not in train.columns]
    if absent:
        raise DataError(f"column(s) {absent} are not in the training data; its columns are {list(train.columns)}")
    if train.empty:
        raise DataError("the training data has no rows; pass a split with data")
    values = {c: _as_text(train[c]) for c in used}
    labels = _as_text(train[target])
    if text_column is not None and values[text_column].isna().all():
        raise DataError(f"text column '{text_column}' is empty in every training row; pass the column that holds the text")
    if labels.isna().all():
        raise DataError(f"target column '{target}' is empty in every training row; it needs a label per row")

    n_train, n_test = len(train), 0 if test is None else len(test)
    test_labels = _as_text(test[target]) if test is not None and target in test.columns else None
    holdout = _holdout(labels, seed)
    report_columns = {}
    for name, column in values.items():
        report_columns[name] = {
            "type": _infer_type(column),
            "unique": int(column.nunique()),
            "missing": _count(int(column.isna().sum()), n_train),
            "prediction": None,
        }
        if holdout is not None:
            report_columns[name]["prediction"] = _prediction_power(report_columns[name]["type"], column, labels,
                                                                   holdout, seed)
    duplicates = int(pd.DataFrame({**values, target: labels}).duplicated().sum())
    near_duplicates = None
    if text_column is not None and test is not None and text_column in test.columns:
        near_duplicates = _near_duplicates(values[text_column], _as_text(test[text_column]))

    report = {
        "target": {
            "name": target,
            "missing": _count(int(labels.isna().sum()), n_train),
            "distribution": {"train": _distribution(labels), "test": _distribution(test_labels)},
        },
        "text_column": text_column,
        "rows": {"train": n_train, "test": n_test},
        "duplicate_rows": _count(duplicates, n_train),
        "columns": report_columns,
        "holdout": None if holdout is None else {
            "seed": seed, "fit_rows": len(holdout[0]), "holdout_rows": len(holdout[1]), "stratified": holdout[2],
        },
        "near_duplicates": near_duplicates,
    }
    report["warnings"] = _warnings(report, values, labels)
    return report


def _as_text(column: pd.Series) -> pd.Series:
    """The column as strings, ``None`` where missing; whole floats lose their ``.0`` (``1.0`` -> ``"1"``)."""

    def convert(value):
        if isinstance(value, str):
            return value if value.strip() else None
        if pd.isna(value):
            return None
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return str(int(value))  # an int column with a NaN in it is read as floats
        return str(value)

    return column.map(convert).astype(object).reset_index(drop=True)


def _count(count: int, total: int) -> dict:
    return {"count": count, "share": round(count / total, 4) if total else 0.0}


def _percent(share: float) -> str:
    """A share as a percentage for people; a tiny non-zero share is not shown as 0.0%."""
    return "<0.1%" if 0 < share < 0.0005 else f"{share:.1%}"


def _label_order(label: str) -> tuple:
    """Numbers in numeric order ("-1" < "0" < "10"), then other labels alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _distribution(labels: pd.Series | None) -> dict:
    if labels is None:
        return {}
    counts = labels.dropna().value_counts()
    total = int(counts.sum())
    return {label: _count(int(counts[label]), total) for label in sorted(counts.index, key=_label_order)}


def _infer_type(column: pd.Series) -> str:
    """One of :data:`COLUMN_TYPES` for a column of strings (``None`` = missing); see :data:`TYPE_HELP`."""
    present = column.dropna()
    unique = present.nunique()
    if unique <= 1:
        return "constant"
    unique_ratio = unique / len(present)
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().all():
        # Distinct whole numbers look like row ids; distinct measurements (prices, scores) are numeric.
        whole = bool((numbers == np.round(numbers)).all())
        return "identifier" if whole and unique_ratio >= IDENTIFIER_MIN_UNIQUE_RATIO else "numeric"
    if present.str.split().str.len().mean() >= TEXT_MIN_MEAN_WORDS and unique_ratio >= TEXT_MIN_UNIQUE_RATIO:
        return "text"
    return "identifier" if unique_ratio >= IDENTIFIER_MIN_UNIQUE_RATIO else "categorical"


def _majority(labels: pd.Series) -> str:
    """The most common label; ties go to the first in :func:`_label_order`, so the result is seed-free."""
    counts = labels.value_counts()
    return min(counts[counts == counts.max()].index, key=_label_order)


def _holdout(labels: pd.Series, seed: int) -> tuple[pd.Index, pd.Index, bool] | None:
    """Row positions of the 80% fit part and the 20% holdout of the labelled rows, and if stratified."""
    from sklearn.model_selection import train_test_split

    labelled = labels.dropna()
    if len(labelled) < 5 or labelled.nunique() < 2:
        return None
    try:
        fit, held = train_test_split(labelled.index, test_size=HOLDOUT_FRACTION, stratify=labelled, random_state=seed)
        return fit, held, True
    except ValueError:  # a class with a single row, or fewer holdout rows than classes
        fit, held = train_test_split(labelled.index, test_size=HOLDOUT_FRACTION, random_state=seed)
        return fit, held, False


def _prediction_power(kind: str, column: pd.Series, labels: pd.Series, holdout: tuple, seed: int) -> dict:
    """Holdout accuracy of a one-column model, the majority-class accuracy and the prediction power."""
    fit, held, _ = holdout
    y_fit, y_held = labels[fit], labels[held].to_numpy()
    majority = _majority(y_fit)
    predicted = _predict(kind, column[fit], y_fit, column[held], majority, seed)
    accuracy = float(np.mean(predicted == y_held))
    majority_accuracy = float(np.mean(y_held == majority))
    power = 0.0 if majority_accuracy >= 1 else max(0.0, (accuracy - majority_accuracy) / (1 - majority_accuracy))
    return {"accuracy": round(accuracy, 4), "majority_accuracy": round(majority_accuracy, 4),
            "prediction_power": round(power, 4)}


def _predict(kind: str, x_fit: pd.Series, y_fit: pd.Series, x_held: pd.Series, majority: str, seed: int) -> np.ndarray:
    if y_fit.nunique() < 2:
        return np.full(len(x_held), majority, dtype=object)
    if kind == "text":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        try:
            features = vectorizer.fit_transform(x_fit.fillna(""))
        except ValueError:  # no word occurs in two rows: the text alone cannot beat the majority guess
            return np.full(len(x_held), majority, dtype=object)
        # Newton-CG needs a handful of iterations on TF-IDF features where L-BFGS needs dozens: about 10x
        # faster here, with the same accuracy.
        model = LogisticRegression(solver="newton-cg", max_iter=1000).fit(features, y_fit)
        return model.predict(vectorizer.transform(x_held.fillna("")))
    if kind == "numeric":
        from sklearn.tree import DecisionTreeClassifier

        numbers = pd.to_numeric(x_fit, errors="coerce")
        median = numbers.median() if numbers.notna().any() else 0.0
        tree = DecisionTreeClassifier(max_depth=3, random_state=seed)
        tree.fit(numbers.fillna(median).to_frame(), y_fit)
        return tree.predict(pd.to_numeric(x_held, errors="coerce").fillna(median).to_frame())
    # Categorical, identifier, constant: the most common class of each value (ties as in _majority).
    pairs = pd.DataFrame({"value": x_fit.fillna(_MISSING_KEY).to_numpy(), "label": y_fit.to_numpy()})
    counts = pairs.value_counts().reset_index(name="n")
    counts["order"] = counts["label"].map(_label_order)
    counts = counts.sort_values(["n", "order"], ascending=[False, True], kind="mergesort")
    lookup = counts.drop_duplicates("value").set_index("value")["label"]
    return x_held.fillna(_MISSING_KEY).map(lookup).fillna(majority).to_numpy(dtype=object)


def _normalise(text: str) -> str:
    """Lower case, letters and digits only, single spaces: "Great dress!!" -> "great dress"."""
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


def _near_duplicates(train_text: pd.Series, test_text: pd.Series) -> dict:
    seen: dict[str, str] = {}
    for text in train_text.dropna():
        seen.setdefault(_normalise(text), text)
    seen.pop("", None)  # text made only of punctuation matches nothing meaningful
    examples, count = [], 0
    for text in test_text.dropna():
        match = seen.get(_normalise(text))
        if match is not None:
            count += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append({"test": text, "train": match})
    return {**_count(count, len(test_text)), "examples": examples}


def _leakage_reasons(kind: str, column: pd.Series, labels: pd.Series, prediction: dict | None) -> list[str]:
    reasons = []
    if (column.fillna(_MISSING_KEY) == labels.fillna(_MISSING_KEY)).all():
        reasons.append("it equals the target")
    # Text and identifier values are (nearly) unique per row, so each trivially maps to one class.
    if kind not in ("text", "identifier"):
        both = column.notna() & labels.notna()
        pairs = pd.DataFrame({"value": column[both], "label": labels[both]})
        if (pairs["label"].nunique() >= 2 and pairs["value"].nunique() < len(pairs)
                and pairs.groupby("value")["label"].nunique().max() == 1):
            reasons.append("each of its values occurs with only one class")
    if prediction is not None and prediction["prediction_power"] >= LEAKAGE_MIN_POWER:
        reasons.append(f"it alone has prediction power {prediction['prediction_power']:.2f}")
    return reasons


def _warnings(report: dict, values: dict[str, pd.Series], labels: pd.Series) -> list[dict]:
    warnings = []
    for name, column in report["columns"].items():
        reasons = _leakage_reasons(column["type"], values[name], labels, column["prediction"])
        if reasons:
            warnings.append({
                "kind": "target_leakage", "column": name, "reasons": reasons,
                "message": f"Column '{name}' may leak the target ({'; '.join(reasons)}), so models would score well "
                           "here and fail on new data; drop it unless it is truly known at prediction time.",
            })
    near = report["near_duplicates"]
    if near is not None and near["count"]:
        warnings.append({
            "kind": "near_duplicates", "count": near["count"], "share": near["share"],
            "message": f"{near['count']} of {report['rows']['test']} test row(s) ({_percent(near['share'])}) have a text that "
                       "also occurs in train once case and punctuation are ignored, so test scores overstate how well "
                       "a model does on unseen text.",
        })
    distribution = report["target"]["distribution"]["train"]
    if len(distribution) >= 2:
        counts = {label: entry["count"] for label, entry in distribution.items()}
        rarest, most_common = min(counts, key=counts.get), max(counts, key=counts.get)
        ratio = counts[rarest] / counts[most_common]
        if ratio < IMBALANCE_RATIO:
            warnings.append({
                "kind": "class_imbalance", "rarest": rarest, "most_common": most_common, "ratio": round(ratio, 4),
                "message": f"The rarest class '{rarest}' has {counts[rarest]} train rows against {counts[most_common]} "
                           f"for '{most_common}' (ratio {ratio:.2f}, below {IMBALANCE_RATIO}), so accuracy flatters "
                           "models that favour the common class; judge them by a balanced metric or balance the data.",
            })
    duplicates = report["duplicate_rows"]
    if duplicates["count"]:
        warnings.append({
            "kind": "duplicate_rows", "count": duplicates["count"], "share": duplicates["share"],
            "message": f"{duplicates['count']} train row(s) ({_percent(duplicates['share'])}) repeat an earlier row in the "
                       "examined columns and target, which over-weights them in training and lets them leak "
                       "between cross-validation folds.",
        })
    missing = {name: column["missing"] for name, column in report["columns"].items()}
    missing[report["target"]["name"]] = report["target"]["missing"]
    for name, entry in missing.items():
        if entry["share"] > MISSING_WARN_SHARE:
            warnings.append({
                "kind": "missing_values", "column": name, "share": entry["share"],
                "message": f"Column '{name}' is missing in {entry['count']} of {report['rows']['train']} train rows "
                           f"({_percent(entry['share'])}, over {MISSING_WARN_SHARE:.0%}), so models learn little from it "
                           "and how gaps are filled drives its effect.",
            })
    for name, column in report["columns"].items():
        if column["type"] == "constant":
            warnings.append({
                "kind": "constant_column", "column": name,
                "message": f"Column '{name}' has at most one distinct value, so it carries no information for "
                           "the model; drop it.",
            })
        elif column["type"] == "identifier":
            unique_ratio = round(column["unique"] / max(report["rows"]["train"] - column["missing"]["count"], 1), 4)
            warnings.append({
                "kind": "identifier_column", "column": name, "unique_ratio": unique_ratio,
                "message": f"Column '{name}' has a distinct value in {unique_ratio:.0%} of its rows, like an ID, so a "
                           "model can memorise it but not generalise from it; drop it unless its values mean something.",
            })
    return warnings


STYLE = ("td,th{text-align:right;vertical-align:top}td:first-child{text-align:left}td.text{text-align:left;max-width:480px}"
         ".warning{border-left:5px solid #c44e52;background:#fbeaea;padding:8px 12px;margin:6px 0}"
         ".warning b{color:#a33}.ok{border-left:5px solid #2a9d3a;background:#eaf6ec;padding:8px 12px}"
         ".bar{display:inline-block;width:120px;height:10px;background:#eee;margin-right:6px}.bar div{height:100%}"
         ".help{color:#444;font-size:13px}")


def _bar(share: float, color: str = "#4a7ab5") -> str:
    width = max(0.0, min(share, 1.0)) * 100
    return f"<div class='bar'><div style='width:{width:.1f}%;background:{color}'></div></div>"


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def render_exploration_html(report: dict) -> str:
    """Render a report from :func:`explore` as one self-contained HTML page (no external files).

    Sections: summary, warnings, a table of columns (type, missing, unique, prediction power),
    the target distribution in train and test, and examples of test texts also found in train.

    Args:
        report: the report.

    Returns:
        The page; every value taken from the data is HTML-escaped.
    """
    esc = html.escape
    target = report["target"]
    rows = report["rows"]
    parts = [
        "<h2>Summary</h2><ul>",
        f"<li>Target <b>{esc(str(target['name']))}</b> with {len(target['distribution']['train'])} class(es) in train.</li>",
        f"<li>{rows['train']} train rows, {rows['test']} test rows.</li>",
        f"<li>{len(report['columns'])} column(s) examined"
        + (f", text column <b>{esc(str(report['text_column']))}</b>" if report["text_column"] else "") + ".</li>",
        f"<li>{report['duplicate_rows']['count']} duplicate train rows ({_percent(report['duplicate_rows']['share'])}).</li>",
        f"<li>{len(report['warnings'])} warning(s).</li></ul>",
        "<h2>Warnings</h2>",
    ]
    if report["warnings"]:
        parts.extend(f"<div class='warning'><b>{esc(w['kind'].replace('_', ' '))}</b>: {esc(w['message'])}</div>"
                     for w in report["warnings"])
    else:
        parts.append("<div class='ok'>No problems found.</div>")

    parts.append("<h2>Columns</h2><table><tr><th>column</th><th>type</th><th>missing</th><th>unique</th>"
                 "<th>holdout accuracy</th><th>majority accuracy</th><th>prediction power</th></tr>")
    for name, column in report["columns"].items():
        prediction = column["prediction"]
        if prediction is None:
            scores = "<td>n/a</td><td>n/a</td><td>n/a</td>"
        else:
            power = prediction["prediction_power"]
            scores = (f"<td>{prediction['accuracy']:.4f}</td><td>{prediction['majority_accuracy']:.4f}</td>"
                      f"<td>{_bar(power)}{power:.4f}</td>")
        missing = column["missing"]
        parts.append(f"<tr><td>{esc(str(name))}</td><td>{esc(column['type'])}</td>"
                     f"<td>{missing['count']} ({_percent(missing['share'])})</td><td>{column['unique']}</td>{scores}</tr>")
    target_missing = target["missing"]
    parts.append(f"<tr><td>{esc(str(target['name']))} (target)</td><td>target</td>"
                 f"<td>{target_missing['count']} ({_percent(target_missing['share'])})</td>"
                 f"<td>{len(target['distribution']['train'])}</td><td></td><td></td><td></td></tr></table>")
    holdout = report["holdout"]
    if holdout is None:
        parts.append("<p class='help'>Prediction power was not computed: train needs at least 5 labelled rows "
                     "and two classes.</p>")
    else:
        kind = "stratified" if holdout["stratified"] else "random (a class was too small to stratify)"
        parts.append(f"<p class='help'>Holdout: {holdout['fit_rows']} rows to fit, {holdout['holdout_rows']} to "
                     f"score, {kind}, seed {holdout['seed']}.</p>")
    parts.append(f"<p class='help'>{esc(PREDICTION_POWER_HELP)}</p><p class='help'>{esc(TYPE_HELP)}</p>")

    train_dist, test_dist = target["distribution"]["train"], target["distribution"]["test"]
    parts.append("<h2>Target distribution</h2><table><tr><th>class</th><th>train rows</th><th>train share</th>"
                 "<th>test rows</th><th>test share</th></tr>")
    for label in sorted({*train_dist, *test_dist}, key=_label_order):
        cells = []
        for distribution in (train_dist, test_dist):
            entry = distribution.get(label)
            cells.append("<td>0</td><td></td>" if entry is None else
                         f"<td>{entry['count']}</td><td>{_bar(entry['share'], '#2a9d3a')}{_percent(entry['share'])}</td>")
        parts.append(f"<tr><td>{esc(str(label))}</td>{''.join(cells)}</tr>")
    parts.append("</table>")

    near = report["near_duplicates"]
    parts.append("<h2>Test texts also in train</h2>")
    if near is None:
        parts.append("<p>Not checked: there is no text column or no test split.</p>")
    else:
        parts.append(f"<p>{near['count']} of {rows['test']} test rows ({_percent(near['share'])}) have a text that also "
                     "occurs in train, compared in lower case with only letters, digits and single spaces.</p>")
        if near["examples"]:
            parts.append("<table><tr><th>test text</th><th>train text</th></tr>")
            parts.extend(f"<tr><td class='text'>{esc(_short(e['test']))}</td><td class='text'>{esc(_short(e['train']))}"
                         "</td></tr>" for e in near["examples"])
            parts.append("</table>")
    return page("Data exploration", parts, style=STYLE)


def _to_builtin(value):
    """``json.dumps`` fallback for numpy scalars and arrays in a report assembled by hand."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def write_exploration(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write ``exploration.json`` (indent 2) and ``exploration.html`` into ``out_dir``, each atomically.

    Args:
        report: a report from :func:`explore`.
        out_dir: the folder; created if needed.

    Returns:
        ``{"html": path, "json": path}``.
    """
    out_dir = Path(out_dir)
    paths = {"html": out_dir / "exploration.html", "json": out_dir / "exploration.json"}
    contents = {"html": render_exploration_html(report),
                "json": json.dumps(report, indent=2, ensure_ascii=False, default=_to_builtin)}
    for key, path in paths.items():
        with atomic_file(path) as tmp:
            tmp.write_text(contents[key], encoding="utf-8")
    return paths
