"""SHAP explanations for tabular models: TreeExplainer for tree ensembles, else a sampled KernelExplainer; and
Kernel SHAP of any black-box function over a baseline, as Clarify's explainability job computes it."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Clarify's aggregations of per-row SHAP values into one global value per feature (SHAPConfig's agg_method).
AGGREGATIONS = {"mean_abs": lambda v: np.abs(v).mean(axis=0), "median": lambda v: np.median(v, axis=0),
                "mean_sq": lambda v: np.square(v).mean(axis=0)}
LOCAL_ROWS = 20  # rows whose values the result lists one by one
DEFAULT_SEED = 0  # Kernel SHAP's sampling seed when the config gives none


def explain_tabular(model, features: pd.DataFrame, *, background: int = 50, seed: int = 0) -> dict:
    """Global and local SHAP values of a fitted tabular model.

    Tree ensembles (scikit-learn, LightGBM, XGBoost, CatBoost) use the exact TreeExplainer;
    anything else with ``predict_proba`` or ``predict`` uses KernelExplainer on a sample of
    ``background`` rows.

    Returns:
        ``{"explainer", "kernel_shap": {output: {"expected_value", "global_shap_values"}}, "local"}``
        with ``global_shap_values`` = mean |SHAP| per feature.
    """
    from sagestack.explain.shap_import import import_shap

    shap = import_shap()

    try:
        explainer = shap.TreeExplainer(model)
        kind = "tree"
        raw = explainer.shap_values(features)
        expected = np.atleast_1d(explainer.expected_value)
    except Exception:  # shap raises a bare Exception for model types it cannot walk
        predict = getattr(model, "predict_proba", None) or model.predict
        sample = shap.sample(features, min(background, len(features)), random_state=seed)
        explainer = shap.KernelExplainer(predict, sample)
        kind = "kernel"
        raw = explainer.shap_values(features, silent=True)
        expected = np.atleast_1d(explainer.expected_value)
    values = _rows_features_outputs(raw, len(features))
    outputs = [str(c) for c in getattr(model, "classes_", range(values.shape[2]))][: values.shape[2]]
    return {"explainer": kind, **_summarize(values, expected, list(features.columns), outputs, "mean_abs")}


def explain_function(predict, features: pd.DataFrame, baseline: pd.DataFrame, *, num_samples: int | None = None,
                     agg_method: str = "mean_abs", use_logit: bool = False, outputs: list[str] | None = None,
                     seed: int = DEFAULT_SEED) -> dict:
    """Kernel SHAP values of a black-box ``predict`` over the columns of ``features``, as Clarify computes them:
    the ``baseline`` rows stand in for a feature left out, ``num_samples`` coalitions per row (shap's default
    when None), one global value per feature aggregated by ``agg_method`` (mean_abs, median or mean_sq).
    Every feature keeps its value (no l1 feature selection: shap's default keeps only 10 features when there
    are more and the coalitions are sampled), and the sampling is seeded, so the same call gives the same values.

    Args:
        predict: rows (a 2-D object array, one column per feature) -> scores of shape (rows,) or (rows, outputs).
        outputs: the outputs' names (default ``label0``, ``label1``, ..., as Clarify names them).
        seed: the coalitions' random seed (Clarify's ``shap.seed``).

    Returns:
        ``{"kernel_shap": {output: {"expected_value", "global_shap_values"}}, "local": [...], "values": ...}``:
        ``local`` lists the first rows' values, ``values`` every row's as [row][feature][output].

    Raises:
        ValueError: an unknown ``agg_method``.
    """
    from sagestack.explain.shap_import import import_shap

    if agg_method not in AGGREGATIONS:
        raise ValueError(f"unknown agg_method {agg_method!r}; use {', '.join(AGGREGATIONS)}")
    shap = import_shap()
    explainer = shap.KernelExplainer(predict, baseline, link="logit" if use_logit else "identity")
    state = np.random.get_state()  # shap samples coalitions from numpy's global generator
    np.random.seed(seed)
    try:
        raw = explainer.shap_values(features, silent=True, l1_reg=False,
                                    **({"nsamples": num_samples} if num_samples else {}))
    finally:
        np.random.set_state(state)
    values = _rows_features_outputs(raw, len(features))
    names = outputs or [f"label{k}" for k in range(values.shape[2])]
    summary = _summarize(values, np.atleast_1d(explainer.expected_value), list(features.columns), names, agg_method)
    return {**summary, "values": values.tolist()}


def _rows_features_outputs(raw, rows: int) -> np.ndarray:
    """shap's values as one (rows, features, outputs) array, whatever the shap version's layout."""
    values = np.asarray(raw)
    if values.ndim == 2:  # one output: (rows, features) -> (rows, features, 1)
        return values[:, :, None]
    if values.shape[0] != rows:  # older shap: (outputs, rows, features)
        return np.moveaxis(values, 0, -1)
    return values


def _summarize(values: np.ndarray, expected: np.ndarray, columns: list, outputs: list[str], agg_method: str) -> dict:
    """Each output's expected value and global values (largest first), and the first rows' local values."""
    aggregate = AGGREGATIONS[agg_method]
    kernel_shap = {
        out: {
            "expected_value": float(expected[min(k, len(expected) - 1)]),
            "global_shap_values": {
                str(col): float(v) for col, v in sorted(zip(columns, aggregate(values[:, :, k])), key=lambda kv: -kv[1])
            },
        }
        for k, out in enumerate(outputs)
    }
    local = [
        {"row": int(i), "shap_values": {out: {str(c): float(v) for c, v in zip(columns, values[i, :, k])}
                                        for k, out in enumerate(outputs)}}
        for i in range(min(len(values), LOCAL_ROWS))
    ]
    return {"kernel_shap": kernel_shap, "local": local}
