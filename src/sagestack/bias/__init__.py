"""Clarify-equivalent bias detection: contingency tables, registered metrics, reports."""

from sagestack.bias.analysis import BiasConfig, FacetSpec, analyze, bootstrap_tables, flip_test
from sagestack.bias.metrics import POST_TRAINING, PRE_TRAINING, REGISTRY, Metric
from sagestack.bias.table import ContingencyTable, LabelSpec, build_table_pandas

__all__ = [
    "POST_TRAINING",
    "PRE_TRAINING",
    "REGISTRY",
    "BiasConfig",
    "ContingencyTable",
    "FacetSpec",
    "LabelSpec",
    "Metric",
    "analyze",
    "bootstrap_tables",
    "build_table_pandas",
    "flip_test",
]
