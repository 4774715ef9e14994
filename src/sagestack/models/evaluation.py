"""Classifier evaluation for every model kind: accuracy, macro F1, per-class precision/recall/F1,
confusion matrix, and the Markdown report the pipeline writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sagestack.errors import ConfigError

# Metrics a pipeline may pick its champion by (``--select-metric``).
SELECT_METRICS = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class Evaluation:
    """Evaluation of predicted against true labels.

    ``per_class[label]`` holds ``precision``, ``recall``, ``f1`` and ``support``;
    ``confusion[i][j]`` counts rows with true ``labels[i]`` predicted as ``labels[j]``.
    """

    accuracy: float
    labels: list[str]
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    count: int

    def to_dict(self) -> dict:
        """A JSON-serialisable form."""
        return {
            "accuracy": self.accuracy,
            "count": self.count,
            "labels": self.labels,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Evaluation":
        """Rebuild an evaluation from :meth:`to_dict` output."""
        return cls(
            accuracy=data["accuracy"],
            labels=list(data["labels"]),
            per_class=data["per_class"],
            confusion=data["confusion_matrix"],
            count=data["count"],
        )

    @property
    def macro_f1(self) -> float:
        """The unweighted mean of the per-class F1 scores."""
        return sum(m["f1"] for m in self.per_class.values()) / max(len(self.per_class), 1)

    def metric(self, name: str) -> float:
        """A headline metric by name: ``accuracy`` or ``macro_f1`` (what a champion is chosen by)."""
        if name not in SELECT_METRICS:
            raise ConfigError(f"unknown metric {name!r}; use one of {', '.join(SELECT_METRICS)}")
        return self.accuracy if name == "accuracy" else self.macro_f1

    def flat_metrics(self, prefix: str) -> dict[str, float]:
        """Metrics as flat names for a tracker, e.g. ``validation_accuracy``, ``validation_f1_-1``."""
        metrics = {f"{prefix}_accuracy": self.accuracy, f"{prefix}_macro_f1": self.macro_f1}
        for label, values in self.per_class.items():
            for name in ("precision", "recall", "f1"):
                metrics[f"{prefix}_{name}_{label}"] = values[name]
        return metrics


def evaluate_labels(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None) -> Evaluation:
    """Compare predicted with true labels.

    Args:
        y_true: true labels.
        y_pred: predicted labels, same length.
        labels: label order for the report (default: sorted union of both).

    Returns:
        The evaluation. Precision of a label never predicted is 0.

    Raises:
        ValueError: lengths differ, no rows, or none of ``labels`` is a true label.
    """
    # Counted here rather than with scikit-learn's precision_recall_fscore_support and confusion_matrix
    # (importing sklearn.metrics costs a pipeline step ~2 s): the same formulas on the same integer
    # counts, so the same floats (tests/unit/test_evaluation_counts.py compares them).
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred), key=_label_sort_key)
    labels = list(labels)
    if not len(y_true):
        raise ValueError("nothing to evaluate: no labelled rows")
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    true_counts, pred_counts, correct = [0] * len(labels), [0] * len(labels), 0
    for t, p in zip(y_true, y_pred):
        correct += t == p
        i, j = index.get(t), index.get(p)
        if i is not None:
            true_counts[i] += 1
        if j is not None:
            pred_counts[j] += 1
        if i is not None and j is not None:
            confusion[i][j] += 1
    if not any(true_counts):
        raise ValueError(f"none of the labels {labels} is a true label")
    per_class = {}
    for i, label in enumerate(labels):
        tp, true, pred = confusion[i][i], true_counts[i], pred_counts[i]
        per_class[label] = {"precision": tp / pred if pred else 0.0, "recall": tp / true if true else 0.0,
                            "f1": 2 * tp / (true + pred) if true + pred else 0.0, "support": true}
    return Evaluation(accuracy=correct / len(y_true), labels=labels, per_class=per_class, confusion=confusion,
                      count=len(y_true))


def _label_sort_key(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def label_order(labels: Sequence[str]) -> list[str]:
    """Labels in report order: numerically where they are numbers (``-1, 0, 1``), else by name."""
    return sorted(labels, key=_label_sort_key)


def evaluate_predictor(predictor, texts: Sequence[str], y_true: Sequence[object]) -> Evaluation:
    """Evaluate any model kind's predictor on raw texts with their true labels.

    Args:
        predictor: a :class:`~sagestack.models.TextClassifier` (``labels``, ``predict_labels``).
        texts: the texts, as users wrote them.
        y_true: the true labels (compared as strings, e.g. ``-1``, ``0``, ``1``).

    Returns:
        The evaluation, labels ordered numerically where they are numbers.
    """
    return evaluate_labels([str(y) for y in y_true], predictor.predict_labels(list(texts)), labels=label_order(predictor.labels))


def evaluation_markdown(evaluation: Evaluation, *, title: str, validation_accuracy: float | None = None) -> str:
    """A Markdown report of an evaluation: accuracy, per-class table, confusion matrix."""
    lines = [
        f"# {title}",
        "",
        f"Test accuracy: **{evaluation.accuracy:.4f}**, macro F1 **{evaluation.macro_f1:.4f}** on {evaluation.count} reviews"
        + (f" (validation accuracy {validation_accuracy:.4f})" if validation_accuracy is not None else ""),
        "",
        "| label | precision | recall | f1 | support |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
            for label, m in evaluation.per_class.items()
        ),
        "",
        "Confusion matrix (rows: true, columns: predicted, order " + ", ".join(evaluation.labels) + "):",
        "",
        *("    " + " ".join(f"{v:5d}" for v in row) for row in evaluation.confusion),
    ]
    return "\n".join(lines) + "\n"


def plot_confusion_matrix(evaluation: Evaluation, path: Path, title: str = "Confusion matrix") -> Path:
    """Draw the confusion matrix as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = evaluation.labels
    fig, ax = plt.subplots(figsize=(4.5, 4))
    image = ax.imshow(evaluation.confusion, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title} (accuracy {evaluation.accuracy:.3f})")
    peak = max(max(row) for row in evaluation.confusion) or 1
    for i, row in enumerate(evaluation.confusion):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
