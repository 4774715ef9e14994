"""The candidates an AutoML job tries: model family + hyperparameters, in a fixed order.

``--max-candidates N`` takes the first N of :data:`CANDIDATES` and hands AutoGluon exactly
those as its ``hyperparameters`` (one configuration per family, no bagging, no stacking, no
weighted ensemble): every leaderboard row is one candidate that ``retrain.py`` can rebuild.
The feature pipeline is the same for all of them (AutoGluon's, plus the raw text for the
TF-IDF linear model and, with ``--embeddings``, sentence embeddings); it is written into each
candidate's definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sagestack.errors import ConfigError

# The custom family's key in a candidate definition; resolved to the class when fitting.
TFIDF_LINEAR_KEY = "sagestack.automl.text_linear:TfidfLinearModel"


@dataclass(frozen=True)
class Candidate:
    """One candidate pipeline.

    Attributes:
        name: the model's name on the leaderboard (AutoGluon's ``ag_args.name``).
        key: AutoGluon's ``hyperparameters`` key of the family (``GBM``, ``CAT``, ...) or
            :data:`TFIDF_LINEAR_KEY` for sagestack's own TF-IDF linear model.
        family: the model family, in words.
        hyperparameters: the family's hyperparameters (empty: AutoGluon's defaults for it).
        requirements: distributions the fitted model needs at inference, besides AutoGluon's
            (the ``autogluon`` kind's requirements).
    """

    name: str
    key: str
    family: str
    hyperparameters: dict = field(default_factory=dict)
    requirements: tuple[str, ...] = ()

    def autogluon_key(self):
        """The ``hyperparameters`` key AutoGluon takes: the family's string or the model class."""
        if self.key == TFIDF_LINEAR_KEY:
            from sagestack.automl.text_linear import TfidfLinearModel

            return TfidfLinearModel
        return self.key

    def autogluon_config(self, priority: int = 0) -> dict:
        """This candidate's configuration as AutoGluon takes it: named, so the leaderboard says
        which, and with a priority, so AutoGluon fits the candidates in their listed order."""
        return {**self.hyperparameters, "ag_args": {"name": self.name, "priority": priority}}

    def definition(self) -> dict:
        """A JSON/YAML-friendly description (what ``definition.yaml`` holds, with the features)."""
        return {"name": self.name, "model_family": self.family, "autogluon_key": self.key,
                "hyperparameters": dict(self.hyperparameters), "requirements": list(self.requirements)}


# The order is the order of ``--max-candidates``: the strongest on review text first, measured
# on the 7,110 reviews (bench/automl.py), then the rest of AutoGluon's tabular families.
CANDIDATES: tuple[Candidate, ...] = (
    Candidate("TfidfLinear", TFIDF_LINEAR_KEY, "linear (TF-IDF word + char n-grams, logistic regression)"),
    Candidate("LightGBM", "GBM", "gradient-boosted trees (LightGBM)", requirements=("lightgbm",)),
    Candidate("CatBoost", "CAT", "gradient-boosted trees (CatBoost)", requirements=("catboost",)),
    Candidate("XGBoost", "XGB", "gradient-boosted trees (XGBoost)", requirements=("xgboost-cpu",)),
    Candidate("NeuralNetTorch", "NN_TORCH", "multilayer perceptron (PyTorch)", requirements=("torch",)),
    Candidate("RandomForest", "RF", "random forest (scikit-learn)", {"n_estimators": 300}),
    Candidate("ExtraTrees", "XT", "extremely randomized trees (scikit-learn)", {"n_estimators": 300}),
)
DEFAULT_MAX_CANDIDATES = 3


def select_candidates(max_candidates: int) -> list[Candidate]:
    """The first ``max_candidates`` of :data:`CANDIDATES`.

    Raises:
        ConfigError: fewer than one, or more than there are.
    """
    if not 1 <= max_candidates <= len(CANDIDATES):
        raise ConfigError(f"--max-candidates must be between 1 and {len(CANDIDATES)}, got {max_candidates}")
    return list(CANDIDATES[:max_candidates])


def autogluon_hyperparameters(candidates: list[Candidate]) -> dict:
    """AutoGluon's ``hyperparameters`` argument for exactly these candidates."""
    # Higher priority fits first: a short time limit then cuts the last candidates, not the first.
    return {c.autogluon_key(): [c.autogluon_config(priority=len(candidates) - i)] for i, c in enumerate(candidates)}


def candidate_named(name: str) -> Candidate:
    """The candidate whose leaderboard name is ``name``.

    Raises:
        ConfigError: no candidate has that name.
    """
    for candidate in CANDIDATES:
        if candidate.name == name:
            return candidate
    raise ConfigError(f"no AutoML candidate named {name!r}; known: {', '.join(c.name for c in CANDIDATES)}")
