"""SHAP explanations for tabular models: TreeExplainer for tree ensembles, else a sampled KernelExplainer."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
    values = np.asarray(raw)
    if values.ndim == 2:  # one output: (rows, features) -> (rows, features, 1)
        values = values[:, :, None]
    elif values.shape[0] != len(features):  # older shap: (outputs, rows, features)
        values = np.moveaxis(values, 0, -1)
    outputs = [str(c) for c in getattr(model, "classes_", range(values.shape[2]))][: values.shape[2]]
    kernel_shap = {
        out: {
            "expected_value": float(expected[min(k, len(expected) - 1)]),
            "global_shap_values": {
                col: float(v) for col, v in sorted(zip(features.columns, np.abs(values[:, :, k]).mean(axis=0)), key=lambda kv: -kv[1])
            },
        }
        for k, out in enumerate(outputs)
    }
    local = [
        {"row": int(i), "shap_values": {out: dict(zip(features.columns, map(float, values[i, :, k]))) for k, out in enumerate(outputs)}}
        for i in range(min(len(features), 20))
    ]
    return {"explainer": kind, "kernel_shap": kernel_shap, "local": local}
