"""Feature engineering (BERT inputs, splits, text statistics) and the Feast feature store."""

from sagestack.features.engineering import FEATURE_COLUMNS, LABEL_IDS, engineer_features, load_tokenizer, tokenize
from sagestack.features.store import OnlineReader, get_online, ingest, open_store, put_record, read_features, training_set

__all__ = [
    "FEATURE_COLUMNS",
    "LABEL_IDS",
    "OnlineReader",
    "engineer_features",
    "get_online",
    "ingest",
    "load_tokenizer",
    "open_store",
    "put_record",
    "read_features",
    "tokenize",
    "training_set",
]
