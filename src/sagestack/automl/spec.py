"""What an AutoML job fits (:class:`AutoMLSpec`) and its limits: plain data, no pandas or
AutoGluon, so the command line can show the defaults and check the options without loading them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sagestack.automl.candidates import DEFAULT_MAX_CANDIDATES, select_candidates
from sagestack.errors import ConfigError

# sagestack's metric names -> AutoGluon's. f1 scores two classes only: the F1 of the second (positive) label in
# AutoGluon's order (Autopilot's default objective for a binary target).
METRICS = {"accuracy": "accuracy", "macro_f1": "f1_macro", "f1": "f1"}
DEFAULT_TIME_LIMIT = 240.0
# Below this, not even the fastest candidate finishes on a few thousand reviews.
MIN_TIME_LIMIT = 5.0
# Why a candidate was not fitted when --time-limit cut it (the result's ``not_fitted``).
TIME_CUT = "time limit"


@dataclass(frozen=True)
class AutoMLSpec:
    """What an AutoML job fits.

    Attributes:
        target: the label column.
        text_column: the review text column.
        columns: other input columns (default: none — the endpoint sends text only).
        metric: ``accuracy``, ``macro_f1`` or (two classes only) ``f1``; ranks the leaderboard (on the
            validation part).
        max_candidates: how many of :data:`~sagestack.automl.candidates.CANDIDATES` to try.
        time_limit: seconds for fitting, embeddings of the training data included.
        embeddings: add MiniLM sentence-embedding columns.
        seed: seeds the splits.
        refit: refit the chosen candidate on the fit and validation parts together before it is
            exported (AutoGluon's ``refit_full``, with the settings the validation part chose,
            e.g. boosting rounds); the candidates are ranked before, on validation they never saw.
    """

    target: str = "sentiment"
    text_column: str = "review_body"
    columns: tuple[str, ...] = ()
    metric: str = "accuracy"
    max_candidates: int = DEFAULT_MAX_CANDIDATES
    time_limit: float = DEFAULT_TIME_LIMIT
    embeddings: bool = False
    seed: int = 42
    refit: bool = True

    def check(self) -> None:
        """Raise :class:`ConfigError` for an unknown metric, a bad candidate count or time limit."""
        if self.metric not in METRICS:
            raise ConfigError(f"--metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        select_candidates(self.max_candidates)
        if not math.isfinite(self.time_limit) or self.time_limit < MIN_TIME_LIMIT:
            raise ConfigError(f"--time-limit must be at least {MIN_TIME_LIMIT:.0f} s, got {self.time_limit:g}")
        if self.target == self.text_column or self.target in self.columns:
            raise ConfigError(f"the target {self.target!r} cannot also be an input column")
        if self.text_column in self.columns or len(set(self.columns)) < len(self.columns):
            raise ConfigError(f"--columns repeats a column or names the text column {self.text_column!r}; list each "
                              "other column once")

    @property
    def inputs(self) -> list[str]:
        """The input columns as the data has them: the text first."""
        return [self.text_column, *self.columns]

    def to_dict(self) -> dict:
        """A JSON-serialisable form."""
        return {**asdict(self), "columns": list(self.columns)}


# The pipeline's AutoML branch: a shorter budget than `sagestack automl` (240 s).
BRANCH_TIME_LIMIT = 120.0


class AutoMLTrainParams(BaseModel):
    """AutoML's parameters as a pipeline branch, ``sagestack train`` and ``tune`` take them (the
    branch ranks its candidates by the run's selection metric and seeds with the run's seed)."""

    model_config = ConfigDict(extra="forbid")

    time_limit: float = Field(BRANCH_TIME_LIMIT, description="AutoML fit budget in seconds.")
    max_candidates: int = Field(DEFAULT_MAX_CANDIDATES, description="AutoML candidates to try.")
    embeddings: bool = Field(False, description="AutoML: add MiniLM sentence embeddings.")

    @model_validator(mode="before")
    @classmethod
    def _checked_as_automl_checks(cls, values: dict) -> dict:
        AutoMLSpec(**{k: v for k, v in values.items() if v is not None}).check()  # `sagestack automl`'s words
        return values
