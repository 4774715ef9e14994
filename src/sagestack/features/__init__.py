"""Feature engineering (BERT inputs, splits, text statistics) and the Feast feature store.

Names are imported on first use (PEP 562), so importing one submodule (e.g. the BERT
training code on a GPU machine with only torch and transformers) does not pull in the rest.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FEATURE_COLUMNS": "sagestack.features.engineering",
    "LABEL_IDS": "sagestack.features.engineering",
    "engineer_features": "sagestack.features.engineering",
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


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
