"""Classifier evaluation: accuracy, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


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

    def flat_metrics(self, prefix: str) -> dict[str, float]:
        """Metrics as flat names for a tracker, e.g. ``validation_accuracy``, ``validation_f1_-1``."""
        metrics = {f"{prefix}_accuracy": self.accuracy}
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
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred), key=_label_sort_key)
    labels = list(labels)
    if not y_true:
        raise ValueError("nothing to evaluate: no labelled rows")
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    correct = sum(t == p for t, p in zip(y_true, y_pred))
    return Evaluation(
        accuracy=correct / len(y_true),
        labels=labels,
        per_class={
            lab: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for lab, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        confusion=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        count=len(y_true),
    )


def _label_sort_key(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def evaluate_fasttext_file(predictor, path: Path) -> Evaluation:
    """Evaluate a :class:`~sagestack.serving.FastTextPredictor` on a labelled fastText file."""
    from sagestack.data.fasttext_format import read_fasttext

    y_true, texts = read_fasttext(path)
    labels = sorted(predictor.labels, key=_label_sort_key)
    return evaluate_labels(y_true, predictor.predict_labels_tokenized(texts), labels=labels)


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
