"""The BlazingText-equivalent text classifier and word2vec, built on fastText.

The names below load on first use (PEP 562), so reading :mod:`sagestack.text.params` (the CLI's
help shows the presets' defaults) does not import pandas, matplotlib and fastText.
"""

from importlib import import_module

_SOURCES = {
    "Evaluation": "sagestack.models.evaluation",
    "evaluate_labels": "sagestack.models.evaluation",
    "plot_confusion_matrix": "sagestack.models.evaluation",
    "evaluate_fasttext_file": "sagestack.models.fasttext",
    "SAGESTACK_DEFAULTS": "sagestack.text.params",
    "BlazingTextParams": "sagestack.text.params",
    "make_params": "sagestack.text.params",
    "TrainResult": "sagestack.text.training",
    "train_fasttext": "sagestack.text.training",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module 'sagestack.text' has no attribute {name!r}")
    return getattr(import_module(_SOURCES[name]), name)
