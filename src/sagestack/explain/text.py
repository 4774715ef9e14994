"""SHAP explanations for the text classifier: word-level, SHAP's text masker over predict_proba."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

import numpy as np

from sagestack.errors import DataError

TOKEN_PATTERN = r"\W+"  # split on non-word runs, as SHAP's regex text masker does
WORD = re.compile(r"\w+")


def explain_texts(predictor, texts: Sequence[str], *, max_evals: int = 200, top: int = 20) -> dict:
    """Explain predictions of a model kind's predictor on ``texts``.

    Args:
        predictor: the model (anything with ``labels`` and ``predict_proba(list[str])``).
        texts: the reviews to explain.
        max_evals: model evaluations per review (SHAP's partition explainer budget).
        top: how many words to keep per class in the global importance.

    Returns:
        ``{"kernel_shap": {label: {"expected_value", "global_top_shap_text"}}, "local": [...]}``;
        global importance is mean |SHAP| per (lower-cased) word over the reviews, per class,
        and each local entry has the text, predicted label, tokens and per-class SHAP values;
        ``skipped_short_texts`` counts texts of fewer than two words, which SHAP cannot explain.

    Raises:
        DataError: no text has two words or more.
    """
    from sagestack.explain.shap_import import import_shap

    shap = import_shap()

    # SHAP's text masker cannot perturb a text of fewer than two words (it raises on them):
    # those are left out and counted.
    given = [str(t) for t in texts]
    texts = [t for t in given if len(WORD.findall(t)) >= 2]
    if not texts:
        raise DataError("no text with at least two words to explain; SHAP's text masker needs two or more")
    explainer = shap.Explainer(
        lambda batch: predictor.predict_proba([str(t) for t in batch]),
        shap.maskers.Text(TOKEN_PATTERN),
        output_names=list(predictor.labels),
    )
    values = explainer(texts, max_evals=max_evals, batch_size=max_evals, silent=True)
    labels = list(predictor.labels)
    totals = [defaultdict(float) for _ in labels]
    counts = [defaultdict(int) for _ in labels]
    local = []
    for i, text in enumerate(texts):
        tokens = [str(t) for t in values.data[i]]
        shap_values = np.asarray(values.values[i])  # (tokens, classes)
        for j, token in enumerate(tokens):
            word = token.strip().lower()
            if not word:
                continue
            for k in range(len(labels)):
                totals[k][word] += abs(float(shap_values[j, k]))
                counts[k][word] += 1
        proba = predictor.predict_proba([text])[0]
        local.append({
            "text": text,
            "predicted_label": labels[int(np.argmax(proba))],
            "probabilities": {lab: float(p) for lab, p in zip(labels, proba)},
            "tokens": tokens,
            "shap_values": {lab: [float(v) for v in shap_values[:, k]] for k, lab in enumerate(labels)},
            "expected_value": {lab: float(values.base_values[i][k]) for k, lab in enumerate(labels)},
        })
    kernel_shap = {}
    for k, label in enumerate(labels):
        # Mean |SHAP| over the reviews (a word absent from a review contributes 0 there).
        importance = {w: totals[k][w] / len(texts) for w in totals[k]}
        ranked = sorted(importance.items(), key=lambda kv: -kv[1])[:top]
        kernel_shap[label] = {
            "expected_value": float(np.mean([v[k] for v in values.base_values])),
            "global_top_shap_text": dict(ranked),
        }
    return {"kernel_shap": kernel_shap, "local": local, "skipped_short_texts": len(given) - len(texts)}
