"""An AutoGluon model of sagestack's: TF-IDF word and character n-grams + logistic regression.

Autopilot's text candidates were TF-IDF features into a linear learner. AutoGluon's own
``LinearModel`` sees only AutoGluon's count n-grams (pruned to a few thousand); this one reads
the raw review text (AutoGluon passes it on as ``<column>_raw_text`` when the feature generator
is built with ``enable_raw_text_features=True``), plus any numeric columns (e.g. sentence
embeddings) and categories, so it competes on the leaderboard like any other AutoGluon family.

AutoGluon pickles the fitted model object, so loading a model that holds one needs
``sagestack`` importable (it always is where sagestack serves).
"""

from __future__ import annotations

import math

import pandas as pd
from autogluon.common.features.types import (
    R_CATEGORY,
    R_FLOAT,
    R_INT,
    R_OBJECT,
    S_TEXT,
    S_TEXT_AS_CATEGORY,
    S_TEXT_NGRAM,
    S_TEXT_SPECIAL,
)
from autogluon.core.models import AbstractModel

from sagestack.models.baseline import BaselineParams

_DEFAULTS = BaselineParams()


def _scaled(values, factor: float):
    """``values * factor`` (a module-level function: the fitted pipeline is pickled)."""
    return values * factor


class TfidfLinearModel(AbstractModel):
    """TF-IDF (word + character n-grams) of each text column, scaled numeric columns and one-hot
    categories, into a multinomial logistic regression (scikit-learn)."""

    ag_key = "SAGESTACK_TFIDF_LR"
    ag_name = "TfidfLinear"
    ag_priority = 40
    seed_name = "random_state"
    _supported_problem_types = ["binary", "multiclass"]
    # Raw text and numbers and categories; AutoGluon's derived text features are left to the trees.
    _default_auxiliary_params_extra = dict(
        valid_raw_types=[R_OBJECT, R_FLOAT, R_INT, R_CATEGORY],
        ignored_type_group_special=[S_TEXT_NGRAM, S_TEXT_SPECIAL, S_TEXT_AS_CATEGORY],
    )

    def _set_default_params(self) -> None:
        defaults = {
            "word_ngrams": _DEFAULTS.word_ngrams,
            "char_ngrams_min": _DEFAULTS.char_ngrams_min,
            "char_ngrams_max": _DEFAULTS.char_ngrams_max,
            "min_df": _DEFAULTS.min_df,
            "max_features": _DEFAULTS.max_features,
            "C": _DEFAULTS.c,
            "max_iter": _DEFAULTS.max_iter,
        }
        for name, value in defaults.items():
            self._set_default_param_value(name, value)

    def _build(self, X: pd.DataFrame):
        """The unfitted scikit-learn pipeline for the columns AutoGluon hands this model."""
        from sklearn.compose import ColumnTransformer
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, Pipeline
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

        p = self._get_model_params()
        texts = self._feature_metadata.get_features(required_special_types=[S_TEXT])
        numbers = self._feature_metadata.get_features(valid_raw_types=[R_INT, R_FLOAT])
        categories = self._feature_metadata.get_features(valid_raw_types=[R_CATEGORY])
        parts = []
        for column in texts:
            words = TfidfVectorizer(ngram_range=(1, p["word_ngrams"]), min_df=p["min_df"],
                                    max_features=p["max_features"], sublinear_tf=True)
            chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(p["char_ngrams_min"], p["char_ngrams_max"]),
                                    min_df=p["min_df"], max_features=p["max_features"], sublinear_tf=True)
            parts.append((f"text_{column}", FeatureUnion([("words", words), ("chars", chars)]), column))
        if numbers:
            # Standardise, then shrink the block so its total weight is about one TF-IDF row's
            # (unit norm): 384 embedding dimensions would otherwise drown the n-grams.
            shrink = 1.0 / math.sqrt(len(numbers))
            parts.append(("numbers", Pipeline([
                ("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler()),
                ("shrink", FunctionTransformer(_scaled, kw_args={"factor": shrink})),
            ]), numbers))
        if categories:
            parts.append(("categories", OneHotEncoder(handle_unknown="ignore"), categories))
        classifier = LogisticRegression(C=p["C"], max_iter=p["max_iter"], random_state=p.get("random_state", 0))
        return Pipeline([("features", ColumnTransformer(parts, sparse_threshold=1.0)), ("classifier", classifier)])

    def _preprocess(self, X: pd.DataFrame, **kwargs) -> pd.DataFrame:
        X = super()._preprocess(X, **kwargs)
        text = self._feature_metadata.get_features(required_special_types=[S_TEXT])
        if text:
            X = X.copy()
            X[text] = X[text].fillna("").astype(str)
        return X

    def _more_tags(self) -> dict:
        # Nothing learnt from the validation rows (no early stopping): refit_full may train this
        # model on train + validation. Without the tag AutoGluon "refits" by reusing the model.
        return {"can_refit_full": True}

    def _fit(self, X: pd.DataFrame, y: pd.Series, **kwargs) -> None:
        X = self.preprocess(X, is_train=True)
        self.model = self._build(X).fit(X, y)
