"""Data layer: load, validate, clean, balance, split and write review data; find datasets.

Names are imported on first use (PEP 562), so importing one submodule (e.g. the BERT
training code on a GPU machine with only torch and transformers) does not pull in the rest.
"""

from __future__ import annotations

from sagestack.lazy import lazy_exports

_EXPORTS = {
    "read_fasttext": "sagestack.data.fasttext_format",
    "to_fasttext_lines": "sagestack.data.fasttext_format",
    "write_fasttext": "sagestack.data.fasttext_format",
    "PreparedData": "sagestack.data.prepare",
    "prepare_dataset": "sagestack.data.prepare",
    "DEFAULT_DATASET": "sagestack.data.resolver",
    "ResolvedData": "sagestack.data.resolver",
    "resolve_dataset": "sagestack.data.resolver",
    "LoadedReviews": "sagestack.data.reviews",
    "clean_text": "sagestack.data.reviews",
    "load_reviews": "sagestack.data.reviews",
    "rating_to_sentiment": "sagestack.data.reviews",
    "Splits": "sagestack.data.split",
    "balance_by_label": "sagestack.data.split",
    "stratified_split": "sagestack.data.split",
    "course_tokenize": "sagestack.data.tokenize",
    "word_tokenize": "sagestack.data.tokenize",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
