"""Data layer: load, validate, clean, balance, split and write review data; find datasets."""

from sagestack.data.fasttext_format import read_fasttext, to_fasttext_lines, write_fasttext
from sagestack.data.prepare import PreparedData, prepare_dataset
from sagestack.data.resolver import DEFAULT_DATASET, ResolvedData, resolve_dataset
from sagestack.data.reviews import LoadedReviews, clean_text, load_reviews, rating_to_sentiment
from sagestack.data.split import Splits, balance_by_label, stratified_split
from sagestack.data.tokenize import course_tokenize, word_tokenize

__all__ = [
    "DEFAULT_DATASET",
    "LoadedReviews",
    "PreparedData",
    "ResolvedData",
    "Splits",
    "balance_by_label",
    "clean_text",
    "course_tokenize",
    "load_reviews",
    "prepare_dataset",
    "rating_to_sentiment",
    "read_fasttext",
    "resolve_dataset",
    "stratified_split",
    "to_fasttext_lines",
    "word_tokenize",
    "write_fasttext",
]
