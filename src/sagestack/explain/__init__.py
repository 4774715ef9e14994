"""Explainability (SHAP): word-level for the text classifier, TreeExplainer for tabular models."""

from sagestack.explain.report import write_explanations
from sagestack.explain.tabular import explain_function, explain_tabular
from sagestack.explain.text import explain_texts

__all__ = ["explain_function", "explain_tabular", "explain_texts", "write_explanations"]
