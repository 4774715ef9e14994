"""Fit the candidates with AutoGluon, rank them, and export the best as an ``autogluon`` model.

The library core of the AutoML job (``sagestack automl``) and of the pipeline's ``train-automl``
branch: no MLflow, no reports, only frames in and a fitted predictor, a leaderboard and a
model directory out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from sagestack.automl.candidates import Candidate, autogluon_hyperparameters, candidate_named, select_candidates
from sagestack.automl.spec import (DEFAULT_TIME_LIMIT, METRICS, MIN_TIME_LIMIT, TIME_CUT,  # noqa: F401 (re-exported)
                                   AutoMLSpec)
from sagestack.data.atomic import atomic_dir
from sagestack.errors import ConfigError, DataError

# Seconds of the command's 90-s margin a refit of the best candidate may take beyond the fit budget.
REFIT_ALLOWANCE = 30.0
# The exceptions AutoGluon records for a model it stopped, or would not start, for want of time.
_TIME_EXCEPTIONS = ("TimeLimitExceeded", "InsufficientTime")


@dataclass
class FitResult:
    """A finished AutoGluon fit.

    ``frames`` holds the model frames (inputs, embeddings, target) of the splits built so far
    (``train``, ``validation``, ``test``) and ``predictions`` each candidate's predictions on
    them, so no split is embedded or predicted twice.
    """

    tabular: object  # autogluon.tabular.TabularPredictor
    candidates: list[Candidate]
    fitted: list[str]
    fit_seconds: float
    embedding_seconds: float = 0.0
    leaderboard: list[dict] = field(default_factory=list)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    # {split: {candidate: labels}}, and {"<split>:<refit model>": labels} for the refit best.
    predictions: dict[str, object] = field(default_factory=dict)
    refit_name: str | None = None  # the best candidate refit on all training rows (refit_full), if any
    refit_seconds: float = 0.0
    refit_skipped: str | None = None  # why the best was not refit (no time left), if it was not
    # {candidate: why} for each candidate asked for that AutoGluon did not fit (:func:`unfitted_candidates`).
    not_fitted: dict[str, str] = field(default_factory=dict)

    @property
    def time_limit_cut(self) -> bool:
        """Whether the time limit left a candidate unfitted."""
        return TIME_CUT in self.not_fitted.values()

    @property
    def export_name(self) -> str:
        """The AutoGluon model that is exported: the refit best when there is one, else the best."""
        return self.refit_name or self.best["name"]

    def predicted_by_export(self, split: str, spec: "AutoMLSpec") -> pd.Series:
        """The exported model's predicted labels on a split already built."""
        if self.refit_name is None:
            return self.predicted(split, spec)[self.best["name"]]
        key = f"{split}:{self.refit_name}"
        if key not in self.predictions:
            inputs = self.frames[split].drop(columns=[spec.target])
            self.predictions[key] = self.tabular.predict(inputs, model=self.refit_name, as_pandas=True)
        return self.predictions[key]

    def frame(self, split: str, rows: pd.DataFrame | None, spec: "AutoMLSpec") -> pd.DataFrame:
        """The model frame of ``split``, built from ``rows`` the first time it is asked for."""
        if split not in self.frames:
            self.frames[split] = model_frame(rows, spec)
        return self.frames[split]

    def predicted(self, split: str, spec: "AutoMLSpec") -> dict[str, pd.Series]:
        """Every fitted candidate's predicted labels on a split already built: ``{candidate: labels}``."""
        if split not in self.predictions:
            inputs = self.frames[split].drop(columns=[spec.target])
            self.predictions[split] = self.tabular.predict_multi(inputs, models=self.fitted, as_pandas=True)
        return self.predictions[split]

    @property
    def best(self) -> dict:
        """The top leaderboard row."""
        return self.leaderboard[0]


def check_frame(frame: pd.DataFrame, spec: AutoMLSpec, role: str) -> None:
    """One-line errors for data an AutoML job cannot use.

    Raises:
        DataError: a missing column, a text column with no text, or a single class (train).
    """
    missing = [c for c in (spec.target, *spec.inputs) if c not in frame.columns]
    if missing:
        raise DataError(f"the {role} data has no column(s) {', '.join(missing)}; columns are {', '.join(map(str, frame.columns))}")
    text = frame[spec.text_column].fillna("").astype(str).str.strip()
    if not (text != "").any():
        raise DataError(f"text column {spec.text_column!r} is empty in every {role} row; pass the column that holds the text")
    labels = frame[spec.target].replace("", pd.NA).dropna()
    if len(labels) < len(frame):
        raise DataError(f"{len(frame) - len(labels)} {role} row(s) have no {spec.target!r}; fill or drop them")
    if role == "training" and labels.nunique() < 2:
        raise DataError(f"target {spec.target!r} has a single class ({labels.iloc[0]!r}); AutoML needs at least two")


def model_frame(frame: pd.DataFrame, spec: AutoMLSpec, deadline: float | None = None) -> pd.DataFrame:
    """The columns a candidate is fitted on (target last), labels as strings, embeddings added
    (before ``deadline``: see :func:`sagestack.models.embeddings.embed_texts`)."""
    from sagestack.models.autogluon import input_frame

    out = input_frame(frame, spec.text_column, spec.columns, spec.embeddings, deadline)
    out[spec.target] = frame[spec.target].astype(str).to_numpy()
    return out


def feature_generator():
    """AutoGluon's feature pipeline plus the raw text (for the TF-IDF linear candidate)."""
    from autogluon.features.generators import AutoMLPipelineFeatureGenerator

    return AutoMLPipelineFeatureGenerator(enable_raw_text_features=True, verbosity=0)


def fit_candidates(train: pd.DataFrame, tuning: pd.DataFrame, spec: AutoMLSpec, path: Path,
                   progress: Callable[[str], None] | None = None) -> FitResult:
    """Fit the spec's candidates on ``train``, scoring them on ``tuning`` (AutoGluon's validation data).

    Args:
        train: rows to fit on (target and input columns).
        tuning: rows to validate on (early stopping, the leaderboard's validation score).
        spec: the job.
        path: AutoGluon's folder for this fit (must not exist yet).
        progress: prints a line once the features are built and the candidates' fit starts.

    Raises:
        ConfigError: the time limit ran out before any candidate finished.
    """
    from autogluon.tabular import TabularPredictor

    spec.check()
    candidates = select_candidates(spec.max_candidates)
    from sagestack.models.embeddings import EmbeddingDeadline

    start = time.perf_counter()
    # The embeddings count against --time-limit: they stop once too little is left for fitting.
    deadline = time.monotonic() + spec.time_limit - MIN_TIME_LIMIT
    try:
        train_frame, tuning_frame = model_frame(train, spec, deadline), model_frame(tuning, spec, deadline)
    except EmbeddingDeadline as stopped:
        raise ConfigError(f"--time-limit {spec.time_limit:g} s is used up by the sentence embeddings (stopped after "
                          f"{time.perf_counter() - start:.0f} s, {stopped.done} of {stopped.total} reviews of a split "
                          "embedded); raise --time-limit") from None
    embedding_seconds = time.perf_counter() - start if spec.embeddings else 0.0
    remaining = spec.time_limit - embedding_seconds
    if remaining < MIN_TIME_LIMIT:
        raise ConfigError(f"--time-limit {spec.time_limit:g} s is used up by the sentence embeddings "
                          f"({embedding_seconds:.0f} s); raise --time-limit")
    problem = "binary" if train_frame[spec.target].nunique() == 2 else "multiclass"
    if spec.metric == "f1" and problem != "binary":
        raise ConfigError(f"--metric f1 scores two classes; the target {spec.target!r} has "
                          f"{train_frame[spec.target].nunique()}: use accuracy or macro_f1")
    if progress:
        progress(f"features built ({time.perf_counter() - start:.1f} s); fitting the candidates")
    _quiet_autogluon()
    tabular = TabularPredictor(label=spec.target, problem_type=problem, eval_metric=METRICS[spec.metric],
                               path=str(path), verbosity=0)
    try:
        tabular.fit(
            train_frame, tuning_data=tuning_frame, hyperparameters=autogluon_hyperparameters(candidates),
            time_limit=remaining, feature_generator=feature_generator(), fit_weighted_ensemble=False,
            num_bag_folds=0, num_stack_levels=0, calibrate=False, raise_on_no_models_fitted=True,
        )
    except RuntimeError as exc:
        if "No models were trained" not in str(exc):
            raise
        raise ConfigError(f"no candidate finished within --time-limit {spec.time_limit:g} s; raise --time-limit") from None
    fitted = list(tabular.model_names())
    seconds = time.perf_counter() - start
    failures = tabular.model_failures()
    not_fitted = unfitted_candidates([c.name for c in candidates], fitted,
                                     {} if failures.empty else {row["model"]: row for row in failures.to_dict("records")},
                                     used=seconds - embedding_seconds, budget=remaining)
    return FitResult(tabular, candidates, fitted, seconds, embedding_seconds, not_fitted=not_fitted,
                     frames={"train": train_frame, "validation": tuning_frame})


def unfitted_candidates(asked: list[str], fitted: list[str], failures: dict, *, used: float,
                        budget: float) -> dict[str, str]:
    """Why each candidate of ``asked`` is not among the ``fitted``: :data:`TIME_CUT` when the time limit cut it,
    else the error it failed with.

    Args:
        failures: AutoGluon's record of the models that failed (its ``model_failures()`` rows by model:
            ``{name: {"exc_type", "exc_str", ...}}``).
        used: seconds the fit took; budget: the seconds it was given. AutoGluon skips a model without a record
            only for want of time (under ``min(1 %, 10 s)`` of the budget left), so a candidate missing with no
            record while time was left is reported as such, not blamed on the time limit.
    """
    reasons = {}
    for name in asked:
        if name in fitted:
            continue
        failure = failures.get(name)
        if failure is not None:
            reasons[name] = (TIME_CUT if failure.get("exc_type") in _TIME_EXCEPTIONS
                             else f"{failure.get('exc_type')}: {failure.get('exc_str')}")
        elif budget - used <= min(0.01 * budget, 10.0) + 1.0:  # 1 s of slack for the work after the last model
            reasons[name] = TIME_CUT
        else:
            reasons[name] = f"not fitted, with {budget - used:.0f} s of the time limit left and no error recorded"
    return reasons


def _quiet_autogluon() -> None:
    """AutoGluon logs through ``logging`` even at verbosity 0 (its warnings): keep them off the CLI's output."""
    logging.getLogger("autogluon").setLevel(logging.ERROR)


def rank(fit: FitResult, test: pd.DataFrame | None, spec: AutoMLSpec) -> list[dict]:
    """Score every fitted candidate on the validation (and test) rows; rank by the metric on validation.

    The test rows never choose: they are scored for the record. Sets ``fit.leaderboard`` and
    returns it: one dict per candidate with ``rank``, ``name``, ``model_family``,
    ``validation_accuracy``, ``validation_macro_f1``, ``test_accuracy`` and ``test_macro_f1``
    (``None`` without test rows), ``fit_seconds`` and ``predict_seconds_per_row`` (AutoGluon's
    own timing on the validation rows, features included; sentence embeddings not included); with
    ``--metric f1`` also ``validation_f1`` and ``test_f1`` (the positive label's F1,
    :func:`positive_f1`).
    """
    from sagestack.models.evaluation import evaluate_labels

    info = fit.tabular.info()["model_info"]
    splits = ["validation"] if test is None else ["validation", "test"]
    if test is not None:
        fit.frame("test", test, spec)
    rows = []
    for name in fit.fitted:
        scores: dict = {"test_accuracy": None, "test_macro_f1": None,
                        **({"test_f1": None} if spec.metric == "f1" else {})}
        for split in splits:
            truth = fit.frames[split][spec.target].tolist()
            predicted = fit.predicted(split, spec)[name].astype(str).tolist()
            evaluation = evaluate_labels(truth, predicted)
            scores[f"{split}_accuracy"] = round(evaluation.accuracy, 4)
            scores[f"{split}_macro_f1"] = round(evaluation.macro_f1, 4)
            if spec.metric == "f1":
                scores[f"{split}_f1"] = round(positive_f1(truth, predicted, fit.tabular.class_labels[1]), 4)
        per_row = (info[name].get("predict_time") or 0.0) / max(len(fit.frames["validation"]), 1)
        rows.append({"name": name, "model_family": candidate_named(name).family, **scores,
                     "fit_seconds": round(float(info[name]["fit_time"] or 0.0), 2),
                     "predict_seconds_per_row": round(float(per_row), 6)})
    key = f"validation_{spec.metric}"
    rows.sort(key=lambda row: -row[key])  # stable: ties keep the candidates' order
    fit.leaderboard = [{"rank": position, **row} for position, row in enumerate(rows, start=1)]
    return fit.leaderboard


def positive_f1(truth: list, predicted: list[str], positive) -> float:
    """The F1 of the ``positive`` label: ``2·TP / (2·TP + FP + FN)``, labels compared as strings (0 when the
    label is neither true nor predicted)."""
    positive = str(positive)
    pairs = [(str(t) == positive, str(p) == positive) for t, p in zip(truth, predicted)]
    true_positive = sum(t and p for t, p in pairs)
    wrong = sum(t != p for t, p in pairs)
    return 2 * true_positive / (2 * true_positive + wrong) if true_positive + wrong else 0.0


def train_best(train: pd.DataFrame, tuning: pd.DataFrame, spec: AutoMLSpec, model_dir: Path):
    """Fit the candidates and export the best (by the metric on ``tuning``) to ``model_dir``:
    the pipeline's ``train-automl`` branch (its test split is the pipeline's evaluate step's).

    Returns:
        ``(card, validation Evaluation, leaderboard)``.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sagestack-automl-") as work:
        fit = fit_candidates(train, tuning, spec, Path(work) / "autogluon")
        leaderboard = rank(fit, None, spec)
        refit_best(fit, spec)
        card, validation = export_best(fit, spec, model_dir)
    return card, validation, leaderboard


def refit_best(fit: FitResult, spec: AutoMLSpec) -> str | None:
    """Refit the ranked fit's best candidate on the fit and validation rows together (when
    ``spec.refit``); sets and returns ``fit.refit_name``. Measured on the 7,110 reviews with
    embeddings, the extra 10 % of rows raised test accuracy from 0.6575 to 0.6653."""
    if not spec.refit:
        return None
    name = fit.best["name"]
    # A refit takes about as long as the candidate's own fit: it must fit in what is left of the
    # budget plus REFIT_ALLOWANCE of the 90 s the rest of the job has, or it is skipped (said so).
    needed = float(fit.best.get("fit_seconds") or 0.0)
    left = max(spec.time_limit - fit.fit_seconds, 0.0) + REFIT_ALLOWANCE
    if needed > left:
        fit.refit_skipped = (f"refitting {name} would take about {needed:.0f} s, more than the {left:.0f} s left "
                             f"of --time-limit (+{REFIT_ALLOWANCE:.0f} s); the candidate is registered as ranked")
        return None
    started = time.perf_counter()
    # AutoGluon's "best" must become this refit, the model kept when the predictor is cloned with it
    # alone: True would name the refit of AutoGluon's own best, which breaks ties in validation score by
    # predict time, so may be another candidate (not refit); the clone then deletes that best and
    # re-picks one by predict time, which a refit lacks (TypeError).
    fit.refit_name = fit.tabular.refit_full(model=name, set_best_to_refit_full=name)[name]
    fit.refit_seconds = time.perf_counter() - started
    return fit.refit_name


def export_best(fit: FitResult, spec: AutoMLSpec, model_dir: Path, *, name: str | None = None):
    """Write the best candidate of a ranked fit (or ``name``) as an ``autogluon`` model directory (atomically).

    The refit best (:func:`refit_best`) is exported when there is one; the card's validation
    figures are those of the candidate before its refit (the refit has seen the validation rows).

    Returns:
        ``(card, validation Evaluation)``.
    """
    from sagestack.models.embeddings import EMBEDDING_REQUIREMENTS
    from sagestack.models.autogluon import PREDICTOR_DIR, AutoGluonPredictor
    from sagestack.models.base import ModelCard
    from sagestack.models.evaluation import Evaluation, evaluate_labels

    name = name or fit.best["name"]
    candidate = candidate_named(name)
    exported = fit.refit_name if fit.refit_name and name == fit.best["name"] else name
    predictor = AutoGluonPredictor(fit.tabular, text_column=spec.text_column, columns=spec.columns,
                                   embeddings=spec.embeddings, model=exported)
    validation: Evaluation = evaluate_labels(fit.frames["validation"][spec.target].tolist(),
                                             fit.predicted("validation", spec)[name].astype(str).tolist())
    requirements = list(dict.fromkeys((*candidate.requirements, *(EMBEDDING_REQUIREMENTS if spec.embeddings else ()))))
    with atomic_dir(Path(model_dir), command="automl model") as tmp:
        predictor.save(tmp)
        size = sum(p.stat().st_size for p in (tmp / PREDICTOR_DIR).rglob("*") if p.is_file())
        card = ModelCard(
            kind=AutoGluonPredictor.kind,
            labels=predictor.labels,
            params={**spec.to_dict(), "candidate": exported, "candidate_name": name, "refit": exported != name,
                    "model_family": candidate.family, "hyperparameters": candidate.hyperparameters},
            metrics={"fit_seconds": round(fit.fit_seconds, 3), "embedding_seconds": round(fit.embedding_seconds, 3),
                     "refit_seconds": round(fit.refit_seconds, 3),
                     "candidates_fitted": float(len(fit.fitted)), "model_size_mb": round(size / 1e6, 3)},
            validation=validation.to_dict(),
            requirements=requirements,
        )
        card.save(tmp)
    return card, validation


def train_prepared(prepared_dir: Path, model_dir: Path, params, context) -> dict:
    """The autogluon kind's trainer (the pipeline's AutoML branch): AutoGluon fits the candidates on
    ``train.csv`` within ``time_limit`` seconds; the best by ``context.metric`` on ``validation.csv``
    is the model.

    Returns:
        ``{"kind", "validation_accuracy", "train_seconds", "model_size_mb", "candidate", "leaderboard"}``.
    """
    from sagestack.data.reviews import REVIEW_BODY, SENTIMENT

    split = Path(prepared_dir)
    spec = AutoMLSpec(target=SENTIMENT, text_column=REVIEW_BODY, metric=context.metric, seed=context.seed,
                      **params.model_dump())
    card, validation, leaderboard = train_best(pd.read_csv(split / "train.csv"), pd.read_csv(split / "validation.csv"),
                                               spec, Path(model_dir))
    return {"kind": card.kind, "validation_accuracy": validation.accuracy, "train_seconds": card.metrics["fit_seconds"],
            "model_size_mb": card.metrics["model_size_mb"], "candidate": card.params["candidate"],
            "leaderboard": [{k: row[k] for k in ("rank", "name", "validation_accuracy")} for row in leaderboard]}
