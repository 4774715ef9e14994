"""Hyperparameter tuning (SageMaker's ``HyperparameterTuner``): Optuna in process, or a Katib
``Experiment`` for a cluster, over the same search space.

``space`` parses search spaces, ``study`` runs and logs tuning jobs for any trainable kind of the
registry (BERT and fastText with targets of their own), ``katib`` writes the same job as a Katib manifest.
"""

from sagestack.tuning.space import Dimension, SearchSpace, build_space, parse_cli_args, parse_params
from sagestack.tuning.study import (
    TrialOutcome,
    TrialReporter,
    TuningSpec,
    TuningTarget,
    bert_target,
    fasttext_target,
    kind_target,
    run_study,
    search_space,
    tune,
)

__all__ = [
    "Dimension",
    "SearchSpace",
    "TrialOutcome",
    "TrialReporter",
    "TuningSpec",
    "TuningTarget",
    "bert_target",
    "build_space",
    "fasttext_target",
    "kind_target",
    "parse_cli_args",
    "parse_params",
    "run_study",
    "search_space",
    "tune",
]
