"""The baseline kind's hyperparameters: pydantic only, so the command line shows their defaults
without loading scikit-learn, numpy or pandas."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sagestack.errors import ConfigError


class BaselineParams(BaseModel):
    """Hyperparameters of the TF-IDF + logistic-regression baseline (defaults declared once, here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    word_ngrams: int = Field(2, ge=1, le=5, description="word n-grams 1..N")
    char_ngrams_min: int = Field(2, ge=1, le=10, description="shortest character n-gram (within words)")
    char_ngrams_max: int = Field(5, ge=1, le=10, description="longest character n-gram (within words)")
    min_df: int = Field(2, ge=1, description="ignore n-grams seen in fewer reviews")
    max_features: int = Field(200_000, ge=100, description="vocabulary cap per vectorizer")
    c: float = Field(4.0, gt=0, description="inverse regularization strength of the logistic regression")
    max_iter: int = Field(2_000, ge=10)
    seed: int = 42

    @model_validator(mode="after")
    def _char_range(self) -> "BaselineParams":
        if self.char_ngrams_min > self.char_ngrams_max:
            raise ValueError(f"char_ngrams_min ({self.char_ngrams_min}) is above char_ngrams_max ({self.char_ngrams_max})")
        return self


def make_baseline_params(**values: object) -> BaselineParams:
    """:class:`BaselineParams` from the given values (``None`` keeps a default).

    Raises:
        ConfigError: a value out of range, naming the hyperparameter.
    """
    from pydantic import ValidationError

    try:
        return BaselineParams(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = f" '{err['loc'][0]}'" if err["loc"] else ""
        raise ConfigError(f"invalid baseline hyperparameter{where}: {err['msg']}") from None


class BaselineTrainParams(BaseModel):
    """The baseline's parameters as a pipeline branch, ``sagestack train`` and ``tune`` take them
    (the rest keep :class:`BaselineParams`' defaults; the seed comes with the run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    word_ngrams: int = Field(BaselineParams.model_fields["word_ngrams"].default, ge=1, le=5, description="Word n-grams 1..N.")
    c: float = Field(BaselineParams.model_fields["c"].default, gt=0, description="Inverse regularization strength.")

    @model_validator(mode="before")
    @classmethod
    def _checked_as_train_baseline_checks(cls, values: dict) -> dict:
        make_baseline_params(**values)  # a value out of range raises ConfigError in `train baseline`'s words
        return values
