"""BERT training hyperparameters, under the course's names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sagestack.bert.model import POOLINGS
from sagestack.errors import ConfigError

COURSE_NAMES = (
    "max_seq_length", "epochs", "learning_rate", "train_batch_size", "validation_batch_size",
    "train_steps_per_epoch", "validation_steps_per_epoch", "run_validation", "seed", "freeze_bert_layer",
)


@dataclass(frozen=True)
class BertParams:
    """Hyperparameters of a fine-tuning run.

    The first ten are the course's (its RoBERTa-base run: ``max_seq_length`` 128, 3 epochs,
    learning rate 2e-5); the defaults here suit the 6-layer MiniLM BERT sagestack ships.

    Attributes:
        max_seq_length: tokens per review (padding and truncation).
        epochs: passes over the training data.
        learning_rate: peak AdamW learning rate (after warmup, then linear decay to 0).
        train_batch_size / validation_batch_size: rows per batch.
        train_steps_per_epoch: batches per epoch (0: the whole training set).
        validation_steps_per_epoch: batches per evaluation (0: the whole validation set).
        run_validation: evaluate on the validation data (each epoch, and every ``validation_interval`` steps).
        seed: seeds shuffling, initialisation of new layers and dropout.
        freeze_bert_layer: train the classifier head only.
        warmup_ratio: share of the training steps with a linearly rising learning rate.
        weight_decay: AdamW weight decay (not on biases and LayerNorm weights).
        gradient_clipping: clip the global gradient L2 norm to this (0: no clipping).
        max_steps: stop after this many steps in all (0: no limit).
        validation_interval: also evaluate every this many steps (0: at epoch ends only).
        early_stopping_patience: stop after this many evaluations without a better validation
            accuracy (0: never); the best weights are kept either way.
        num_workers: DataLoader worker processes (-1: 2 on a GPU, 0 on CPU).
        pooling: what the classifier head reads: ``"cls"``, the checkpoint's own head over the
            ``[CLS]`` token, or ``"mean"``, the mean of the token states (see ``sagestack.bert.model``).
    """

    max_seq_length: int = 128
    epochs: int = 3
    learning_rate: float = 5e-5
    train_batch_size: int = 32
    validation_batch_size: int = 64
    train_steps_per_epoch: int = 0
    validation_steps_per_epoch: int = 0
    run_validation: bool = True
    seed: int = 42
    freeze_bert_layer: bool = False
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    gradient_clipping: float = 1.0
    max_steps: int = 0
    validation_interval: int = 0
    early_stopping_patience: int = 0
    num_workers: int = -1
    pooling: str = "cls"

    def __post_init__(self) -> None:
        positive = ("max_seq_length", "epochs", "train_batch_size", "validation_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be 1 or more, got {getattr(self, name)}")
        for name in ("train_steps_per_epoch", "validation_steps_per_epoch", "max_steps", "validation_interval",
                     "early_stopping_patience", "weight_decay", "gradient_clipping"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ConfigError(f"--learning-rate must be above 0, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"--pooling must be {' or '.join(POOLINGS)}, got {self.pooling!r}")
        if self.max_seq_length > 512:
            raise ConfigError(f"--max-seq-length must be 512 or less (BERT's positions), got {self.max_seq_length}")

    def to_dict(self) -> dict:
        """All hyperparameters by name."""
        return asdict(self)

    def updated(self, **overrides) -> "BertParams":
        """A copy with the given (non-``None``) values changed.

        Raises:
            ConfigError: an unknown name or an invalid value.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown BERT hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_DEFAULTS = BertParams()


class BertTrainParams(BaseModel):
    """BERT's parameters as a pipeline branch, ``sagestack train`` and ``tune`` take them (the rest
    keep :class:`BertParams`' defaults; the seed comes with the run)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("", description="BERT branch: '' the shipped MiniLM BERT, 'tiny' a small random BERT, or a "
                                       "local checkpoint folder.")
    epochs: int = Field(_DEFAULTS.epochs, description="BERT branch epochs.")
    learning_rate: float = Field(_DEFAULTS.learning_rate, description="BERT branch learning rate.")
    train_batch_size: int = Field(_DEFAULTS.train_batch_size, description="BERT branch batch size.")
    max_steps: int = Field(_DEFAULTS.max_steps, description="BERT branch: stop after this many steps (0: no limit).")
    max_seq_length: int = Field(_DEFAULTS.max_seq_length, description="BERT branch tokens per review.")

    @model_validator(mode="before")
    @classmethod
    def _checked_as_train_bert_checks(cls, values: dict) -> dict:
        from pathlib import Path

        given = {k: v for k, v in values.items() if v is not None}
        BertParams().updated(**{k: v for k, v in given.items() if k != "model"})  # `train bert`'s words
        model = given.get("model")
        if model not in (None, "", "tiny") and not (Path(model) / "config.json").is_file():
            raise ConfigError(f"--model {model} holds no Hugging Face model (no config.json); pass a local "
                              "checkpoint folder, 'tiny', or nothing for the shipped MiniLM BERT")
        return values

    @classmethod
    def search_space(cls):
        """What ``tune bert`` searches: every :class:`BertParams` field (not only this model's),
        checked by ``BertParams().updated``."""
        return bert_hyperparameters()

    def job_params(self, seed: int) -> BertParams:
        """The full hyperparameters of a fine-tuning run with these values."""
        return BertParams().updated(seed=seed, **self.model_dump(exclude={"model"}))


def bert_hyperparameters():
    """What ``tune bert`` searches: every :class:`BertParams` field, checked by ``BertParams().updated``
    (a :class:`~sagestack.tuning.space.Hyperparameters`)."""
    import typing

    from sagestack.tuning.space import Hyperparameters

    hints = typing.get_type_hints(BertParams)
    return Hyperparameters("bert", {name: hints[name] for name in BertParams.__dataclass_fields__},
                           lambda values: BertParams().updated(**values))
