"""The BlazingText-equivalent text classifier and word2vec, built on fastText."""

from sagestack.models.evaluation import Evaluation, evaluate_labels, plot_confusion_matrix
from sagestack.models.fasttext import evaluate_fasttext_file
from sagestack.text.params import SAGESTACK_DEFAULTS, BlazingTextParams, make_params
from sagestack.text.training import TrainResult, train_fasttext

__all__ = [
    "SAGESTACK_DEFAULTS",
    "BlazingTextParams",
    "Evaluation",
    "TrainResult",
    "evaluate_fasttext_file",
    "evaluate_labels",
    "make_params",
    "plot_confusion_matrix",
    "train_fasttext",
]
