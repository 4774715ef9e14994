"""BlazingText hyperparameters, by BlazingText's own names, mapped to fastText's arguments."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sagestack.errors import ConfigError

Mode = Literal["supervised", "skipgram", "cbow"]
Preset = Literal["sagestack", "blazingtext"]


class BlazingTextParams(BaseModel):
    """Hyperparameters with SageMaker BlazingText's names; the field defaults are BlazingText's.

    Supervised (text classification) mode uses ``epochs, learning_rate, min_count, vector_dim,
    word_ngrams, buckets`` and the early-stopping trio ``early_stopping, patience, min_epochs``.
    The word2vec modes (``skipgram``, ``cbow``) also use ``window_size, negative_samples,
    sampling_threshold`` and, with ``subwords``, ``min_char``/``max_char``.

    ``threads``, ``seed`` and ``quantize`` are sagestack's additions: fastText threads
    (default: all cores), the random seed, and whether to store a quantized ``.ftz`` model.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Mode = "supervised"
    epochs: int = Field(5, ge=1, le=1000)
    learning_rate: float = Field(0.05, gt=0, le=10)
    min_count: int = Field(5, ge=1)
    vector_dim: int = Field(100, ge=1, le=10_000)
    word_ngrams: int = Field(2, ge=1, le=10)
    early_stopping: bool = False
    patience: int = Field(4, ge=1)
    min_epochs: int = Field(5, ge=1)
    buckets: int = Field(2_000_000, ge=0)
    window_size: int = Field(5, ge=1)
    negative_samples: int = Field(5, ge=1)
    sampling_threshold: float = Field(1e-4, ge=0)
    subwords: bool = False
    min_char: int = Field(3, ge=1)
    max_char: int = Field(6, ge=1)
    threads: int | None = Field(None, ge=1)
    seed: int = 0
    quantize: bool = False

    @model_validator(mode="after")
    def _check(self) -> "BlazingTextParams":
        if self.min_char > self.max_char:
            raise ValueError(f"min_char ({self.min_char}) must not exceed max_char ({self.max_char})")
        return self

    def fasttext_kwargs(self) -> dict:
        """The arguments for ``fasttext.train_supervised`` / ``train_unsupervised``."""
        kwargs = {
            "epoch": self.epochs,
            "lr": self.learning_rate,
            "minCount": self.min_count,
            "dim": self.vector_dim,
            "bucket": self.buckets,
            "thread": self.threads or os.cpu_count() or 1,
        }
        if self.mode == "supervised":
            # fastText's unsupervised trainer takes no seed argument.
            kwargs.update(seed=self.seed, wordNgrams=self.word_ngrams)
            # BlazingText's classifier uses word n-grams, not character n-grams.
            kwargs.update(minn=0, maxn=0)
        else:
            kwargs.update(
                model=self.mode,
                ws=self.window_size,
                neg=self.negative_samples,
                t=self.sampling_threshold,
                minn=self.min_char if self.subwords else 0,
                maxn=self.max_char if self.subwords else 0,
            )
        return kwargs


# sagestack's own defaults: tuned on the course's BlazingText split (see bench/fasttext_accuracy.py).
# Unigrams need no hash buckets, so the model stays small (~2 MB) and trains in about a second.
SAGESTACK_DEFAULTS = {
    "epochs": 10,
    "learning_rate": 0.1,
    "min_count": 1,
    "vector_dim": 50,
    "word_ngrams": 1,
    "buckets": 100_000,
}


def make_params(preset: Preset = "sagestack", **overrides: object) -> BlazingTextParams:
    """Build parameters from a preset plus explicit overrides (``None`` overrides are ignored).

    Args:
        preset: ``"blazingtext"`` for SageMaker BlazingText's defaults, ``"sagestack"`` for ours.
        **overrides: BlazingText-named hyperparameters.

    Raises:
        ConfigError: an unknown name, an unknown preset or an out-of-range value.
    """
    if preset not in ("sagestack", "blazingtext"):
        raise ConfigError(f"unknown preset {preset!r}; use 'sagestack' or 'blazingtext'")
    values: dict[str, object] = dict(SAGESTACK_DEFAULTS) if preset == "sagestack" else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return BlazingTextParams(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "parameters"
        raise ConfigError(f"invalid hyperparameter '{name}': {err['msg']}") from None


class FastTextTrainParams(BaseModel):
    """fastText's parameters as a pipeline branch, ``sagestack train`` and ``tune`` take them
    (BlazingText's names, sagestack's defaults; the rest keep the preset's; the seed comes with the run)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(SAGESTACK_DEFAULTS["epochs"], ge=1, le=1000, description="fastText epochs.")
    learning_rate: float = Field(SAGESTACK_DEFAULTS["learning_rate"], gt=0, le=10, description="fastText learning rate.")
    min_count: int = Field(SAGESTACK_DEFAULTS["min_count"], ge=1, description="fastText min_count.")
    vector_dim: int = Field(SAGESTACK_DEFAULTS["vector_dim"], ge=1, le=10_000, description="fastText vector_dim.")
    word_ngrams: int = Field(SAGESTACK_DEFAULTS["word_ngrams"], ge=1, le=10, description="fastText word_ngrams.")

    @model_validator(mode="before")
    @classmethod
    def _checked_as_train_fasttext_checks(cls, values: dict) -> dict:
        make_params(**values)  # a value out of range raises ConfigError in `train fasttext`'s words
        return values

    @classmethod
    def search_space(cls, preset: Preset = "sagestack"):
        """What ``tune fasttext`` searches: every supervised BlazingText hyperparameter (not only
        this model's five), checked from ``preset``'s defaults."""
        return fasttext_hyperparameters(preset)


def fasttext_hyperparameters(preset: str = "sagestack"):
    """What ``tune fasttext`` searches: BlazingText's supervised hyperparameters (``mode`` is fixed:
    tuning needs a classifier), checked by :func:`make_params` from ``preset`` (a
    :class:`~sagestack.tuning.space.Hyperparameters`)."""
    from sagestack.tuning.space import Hyperparameters, field_types

    found, choices = field_types(BlazingTextParams)
    found.pop("mode")

    def check(values: dict) -> object:
        return make_params(preset, **values)

    return Hyperparameters("fasttext", found, check, choices)
