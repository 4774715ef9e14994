"""Feature engineering (BERT inputs, splits, text statistics) and the Feast feature store.

Names are imported on first use (PEP 562), so importing one submodule (e.g. the BERT
training code on a GPU machine with only torch and transformers) does not pull in the rest.
"""

from __future__ import annotations

from sagestack.lazy import lazy_exports

_EXPORTS = {
    "FEATURE_COLUMNS": "sagestack.features.engineering",
    "LABEL_IDS": "sagestack.features.engineering",
    "engineer_features": "sagestack.features.engineering",
    "load_feature_tokenizer": "sagestack.features.engineering",
    "load_tokenizer": "sagestack.features.engineering",
    "tokenize": "sagestack.features.engineering",
    "OnlineReader": "sagestack.features.store",
    "get_online": "sagestack.features.store",
    "ingest": "sagestack.features.store",
    "open_store": "sagestack.features.store",
    "put_record": "sagestack.features.store",
    "read_features": "sagestack.features.store",
    "training_set": "sagestack.features.store",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
