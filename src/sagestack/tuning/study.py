"""Hyperparameter tuning with Optuna: SageMaker's ``HyperparameterTuner`` on one machine.

A tuning job runs trials of one *trainable* — a function ``(params, reporter) -> TrialOutcome``
that trains a model with the given hyperparameters into ``reporter.out_dir`` and returns its
objective value — drawing each trial's hyperparameters from a :class:`SearchSpace` with a
random or TPE sampler. The same code tunes every trainable kind of the registry
(:func:`kind_target`: the kind's trainer on a prepared folder, its parameters model's space);
BERT and fastText keep targets of their own (:func:`bert_target`, :func:`fasttext_target`):
BERT reports evaluations for early stopping, fastText tunes on fastText-format files.

Early stopping ``auto`` is Optuna's median rule (SageMaker's ``Auto`` early stopping is
median-rule based, as is Katib's ``medianstop``): a trainable that evaluates during training
reports each evaluation through the reporter, and once at least ``min_trials_required`` trials
have completed, a trial whose best value so far is worse than the median of the completed
trials at the same evaluation is stopped and marked *pruned*. fastText reports no
intermediate values (it cannot evaluate mid-training), so its trials are never pruned.

The study lives in ``OUT/study.db`` (Optuna's RDB storage on SQLite) so ``resume`` continues
it; each trial writes ``OUT/trials/<number>/``; ``OUT/summary.json`` sums the job up.
MLflow gets a parent run ``tune-<kind>`` with one child run per trial, and the best trial's
model is registered as a version of ``reviews-sentiment`` (as a child run too).
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from sagestack.debugger.events import TrainingCallback, TrainingState
from sagestack.errors import ConfigError, DataError
from sagestack.tuning.space import Hyperparameters, SearchSpace, build_space

STUDY_FILE, SUMMARY_FILE, TRIALS_DIR, ERROR_FILE = "study.db", "summary.json", "trials", "error.txt"
# Objective metrics a trainable can return, with the direction SageMaker/Katib would give them.
OBJECTIVES = {"validation_accuracy": "maximize"}
STRATEGIES = ("random", "tpe")
EARLY_STOPPING = ("auto", "off")
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


@dataclass(frozen=True)
class TuningSpec:
    """How to search (SageMaker's ``HyperparameterTuner`` arguments, Katib's Experiment spec).

    Attributes:
        space: the searched and fixed hyperparameters.
        objective: the metric to optimise (its direction comes from :data:`OBJECTIVES`).
        max_trials: trials in all (also across ``resume``), failed and pruned ones included.
        parallel: trials at once (Optuna threads; see the CLI's caveat on CPUs).
        strategy: ``random`` (Optuna's ``RandomSampler``) or ``tpe`` (``TPESampler``).
        early_stopping: ``auto`` (the median rule, Optuna's ``MedianPruner``) or ``off``.
        min_trials_required: completed trials before the median rule may stop a trial.
        start_step: the first evaluation (counted from 1) at which a trial may be stopped.
        max_failed_trials: stop the job once this many trials have failed.
        seed: seeds the sampler (and, unless searched or set, the training seed).
    """

    space: SearchSpace
    objective: str = "validation_accuracy"
    max_trials: int = 4
    parallel: int = 1
    strategy: str = "random"
    early_stopping: str = "off"
    min_trials_required: int = 3
    start_step: int = 2
    max_failed_trials: int = 3
    seed: int = 42

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; use {', '.join(OBJECTIVES)}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}; use {' or '.join(STRATEGIES)}")
        if self.early_stopping not in EARLY_STOPPING:
            raise ConfigError(f"unknown early stopping {self.early_stopping!r}; use {' or '.join(EARLY_STOPPING)}")
        for name in ("max_trials", "parallel", "min_trials_required", "start_step", "max_failed_trials"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be 1 or more, got {getattr(self, name)}")

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        """``maximize`` or ``minimize``, from the objective."""
        return OBJECTIVES[self.objective]  # type: ignore[return-value]

    def to_dict(self) -> dict:
        """JSON form (the space as ranges and fixed values)."""
        return {"kind": self.space.kind, "objective": self.objective, "direction": self.direction,
                "max_trials": self.max_trials, "parallel": self.parallel, "strategy": self.strategy,
                "early_stopping": self.early_stopping, "min_trials_required": self.min_trials_required,
                "start_step": self.start_step, "max_failed_trials": self.max_failed_trials, "seed": self.seed,
                "space": self.space.to_dict()}


class TrialReporter:
    """What a trainable sees of its trial: its number and folder, a way to report evaluations,
    and whether the median rule wants it stopped.

    Args:
        trial: the Optuna trial.
        out_dir: the trial's output folder (``OUT/trials/<number>``).
        prune: whether early stopping is on (off: reports are recorded, nothing is stopped).
    """

    def __init__(self, trial, out_dir: Path, *, prune: bool) -> None:
        self.trial = trial
        self.number = trial.number
        self.out_dir = Path(out_dir)
        self.prune = prune
        self.reported: dict[int, float] = {}
        self.pruned = False
        self.stop_reason = ""

    def report(self, value: float, step: int) -> None:
        """Record the objective at evaluation ``step`` (1, 2, ...) of this trial."""
        self.trial.report(float(value), step)
        self.reported[step] = float(value)

    def should_stop(self) -> bool:
        """Whether the median rule stops this trial now (once true, stays true)."""
        if self.prune and not self.pruned and self.reported and self.trial.should_prune():
            step = max(self.reported)
            self.pruned = True
            self.stop_reason = (f"early stopping (median rule): value {self.reported[step]:.4f} at evaluation {step} "
                                f"is below the median of the completed trials")
        return self.pruned

    @property
    def last_value(self) -> float | None:
        """The last value reported, if any."""
        return self.reported[max(self.reported)] if self.reported else None


@dataclass
class TrialOutcome:
    """What a trainable returns.

    Attributes:
        value: the objective value (for a pruned trial: its last reported value, or ``None``).
        model_dir: the trained model's folder (``None`` when no model was written).
        metrics: more figures to log on the trial's MLflow run.
        test_evaluation: the held-out :class:`~sagestack.models.Evaluation` as a dict, if any.
        artifacts: folders to log with the model if this trial is the best ``{name: path}``.
    """

    value: float | None
    model_dir: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    test_evaluation: dict | None = None
    artifacts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON form (kept with the trial in the study)."""
        return dict(self.__dict__)


Trainable = Callable[[dict, TrialReporter], TrialOutcome]


@dataclass(frozen=True)
class TuningTarget:
    """A model kind made tunable.

    Attributes:
        kind: the trainer's name (``bert``, ``fasttext``, ``automl``, ...; the study is ``tune-<kind>``).
        hyperparameters: the kind's hyperparameters and their check.
        trainable: trains one trial.
        check: refuses a job that cannot train (missing data, ...) before any trial runs.
        dataset: the training file, recorded for lineage when the best model is registered.
        command: the ``sagestack train <kind> ...`` words a Katib trial runs (data options
            included; hyperparameters are added from the space).
        early_stopping: whether the trainable reports intermediate values (median rule possible).
        data_options: the data options of ``command`` and the URI schemes a Katib trial may take for
            each (``None``: :data:`sagestack.tuning.katib.DATA_OPTIONS`).
    """

    kind: str
    hyperparameters: Hyperparameters
    trainable: Trainable
    check: Callable[[Path], None] = lambda out_dir: None
    dataset: Path | None = None
    command: tuple[str, ...] = ()
    early_stopping: bool = True
    data_options: Mapping[str, tuple[str, ...]] | None = None


def search_space(target: TuningTarget, entries: list[tuple[str, str]], seed: int) -> SearchSpace:
    """The space of ``(name, spec)`` entries for ``target``, the training seed fixed to ``seed``
    unless an entry names ``seed``.

    Raises:
        ConfigError: see :func:`~sagestack.tuning.space.build_space`.
    """
    if not any(name.strip().lstrip("-").replace("-", "_") == "seed" for name, _ in entries):
        entries = [*entries, ("seed", str(seed))]
    return build_space(entries, target.hyperparameters)


def make_sampler(strategy: str, seed: int):
    """Optuna's ``RandomSampler(seed)`` for ``random``, ``TPESampler(seed)`` for ``tpe``."""
    import optuna

    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise ConfigError(f"unknown strategy {strategy!r}; use {' or '.join(STRATEGIES)}")


def make_pruner(spec: TuningSpec):
    """``MedianPruner`` for early stopping ``auto`` (Katib ``medianstop``'s two settings), else none.

    Steps are evaluations counted from 1, so ``n_warmup_steps=start_step`` lets the rule act
    from evaluation ``start_step`` on.
    """
    import optuna

    if spec.early_stopping == "off":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=spec.min_trials_required, n_warmup_steps=spec.start_step)


def _open_study(target: TuningTarget, spec: TuningSpec, out_dir: Path, resume: bool):
    """Create (or, with ``resume``, load and check) the study in ``out_dir/study.db``."""
    import optuna

    db = out_dir / STUDY_FILE
    if resume and not db.is_file():
        raise ConfigError(f"--resume: no study in {out_dir} (no {STUDY_FILE}); run once without --resume")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; pass a new folder for the study")
    if not resume and out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir} is not empty; pass a new --out, or --resume to continue its study")
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}")
    name = f"tune-{target.kind}"
    attrs = {"kind": target.kind, "objective": spec.objective, "space": spec.space.specs()}
    if not resume:
        study = optuna.create_study(storage=storage, study_name=name, direction=spec.direction,
                                    sampler=make_sampler(spec.strategy, spec.seed), pruner=make_pruner(spec))
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        return study
    try:
        previous = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ConfigError(f"--resume: {db} holds no {name} study; pass the --out of a `tune {target.kind}` run") from None
    for key, value in attrs.items():
        if previous.user_attrs.get(key) != value:
            raise ConfigError(f"--resume: the {key} differs from the study's ({previous.user_attrs.get(key)}); "
                              f"resume with the same {key}, or pass a new --out")
    study_id = storage.get_study_id_from_name(name)
    for trial in previous.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # A trial still "running" in the file belongs to a run that was killed: it failed.
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "error", "interrupted (the tuning job stopped during this trial)")
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    # A fresh seed per resume: the same seed would draw the first trials' hyperparameters again.
    sampler = make_sampler(spec.strategy, spec.seed + len(previous.trials))
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=make_pruner(spec))


def run_study(target: TuningTarget, spec: TuningSpec, out_dir: Path | str, *, resume: bool = False,
              progress: Callable[[str], None] | None = None):
    """Run (or continue) the tuning job's trials.

    Args:
        target: the model kind's trainable.
        spec: the space and how to search it.
        out_dir: the job's folder (``study.db``, ``trials/<n>/``).
        resume: continue the study in ``out_dir`` up to ``spec.max_trials`` trials in all.
        progress: ``progress(message)`` after each trial, or ``None``.

    Returns:
        The Optuna study.

    Raises:
        ConfigError / DataError: a used ``out_dir`` without ``resume``, a study that differs,
            data that is not there — before any trial runs.
    """
    import optuna

    out_dir = Path(out_dir)
    if spec.early_stopping == "auto" and not target.early_stopping:
        raise ConfigError(f"{target.kind} reports no intermediate values, so early stopping cannot apply; "
                          f"use --early-stopping off")
    target.check(out_dir)
    # sagestack reports each trial itself (a failed one's traceback goes to OUT/trials/<n>/error.txt).
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _open_study(target, spec, out_dir, resume)
    remaining = spec.max_trials - len(study.trials)

    def objective(trial) -> float:
        reporter = TrialReporter(trial, out_dir / TRIALS_DIR / str(trial.number), prune=spec.early_stopping == "auto")
        trial.set_user_attr("out_dir", str(reporter.out_dir))
        params = spec.space.sample(trial)
        try:
            outcome = target.trainable(params, reporter)
            if outcome.value is None and not reporter.pruned:
                raise DataError(f"trial {trial.number} produced no {spec.objective}")
        except Exception as exc:
            # One line in the summary and MLflow, the traceback beside the trial's outputs.
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            reporter.out_dir.mkdir(parents=True, exist_ok=True)
            (reporter.out_dir / ERROR_FILE).write_text(traceback.format_exc(), encoding="utf-8")
            raise
        trial.set_user_attr("outcome", outcome.to_dict())
        if reporter.pruned:
            raise optuna.TrialPruned(reporter.stop_reason)
        return outcome.value

    def after_trial(study, trial) -> None:
        if progress:
            row = trial_row(trial)
            shown = ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items())
            value = "" if row["value"] is None else f" {spec.objective} {row['value']:.4f}"
            progress(f"trial {trial.number} {row['state']}{value} ({shown}) in {row['seconds']:.1f} s"
                     + (f": {trial.user_attrs['error']}" if "error" in trial.user_attrs else ""))
        failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        if len(failed) >= spec.max_failed_trials:
            study.stop()

    if remaining > 0:
        study.optimize(objective, n_trials=remaining, n_jobs=spec.parallel, catch=(Exception,), callbacks=[after_trial])
    return study


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trial_row(trial) -> dict:
    """One trial for the summary: ``number, params, value, state, seconds`` (+ ``out_dir``,
    ``intermediate`` values by evaluation, ``error``). A pruned trial's value is its last report."""
    state = STATES.get(trial.state.name, trial.state.name.lower())
    value = trial.value
    if state == "pruned" and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    row = {"number": trial.number, "params": dict(trial.params), "value": value, "state": state,
           "seconds": round(trial.duration.total_seconds(), 2) if trial.duration else 0.0,
           "out_dir": trial.user_attrs.get("out_dir"),
           "intermediate": {str(k): v for k, v in sorted(trial.intermediate_values.items())}}
    if "error" in trial.user_attrs:
        row["error"] = trial.user_attrs["error"]
    return row


def best_trial(study):
    """The best completed trial, or ``None`` when no trial completed."""
    import optuna

    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    return study.best_trial


def log_study(study, target: TuningTarget, spec: TuningSpec, *, settings, register: bool = True,
              approve: bool = False, model_name: str | None = None) -> dict:
    """Log the study to MLflow: a parent run ``tune-<kind>``, a child run per trial not yet logged
    (params, the objective and its intermediate values, state ``complete``/``pruned``/``failed``
    as tag ``tuning.state`` and run status FINISHED/KILLED/FAILED), and — with ``register`` — the
    best trial's model registered as a version of ``model_name``, logged as a child run.

    A resumed study keeps its parent run (its id is kept in the study) and adds the new trials.

    Returns:
        ``{"parent_run_id", "registered": what log_model_run returns for the best (or None)}``.
    """
    from sagestack import __version__
    from sagestack.registry import DEFAULT_MODEL_NAME, Runs, git_commit

    runs = Runs(settings)
    experiment_id = runs.experiment_id()
    parent_id = study.user_attrs.get("mlflow_parent_run_id")
    if parent_id and not runs.exists(parent_id):
        parent_id = None  # another tracking store than the study's first run: start a new parent
    tags = {"sagestack.version": __version__, "git.commit": git_commit(), "tuning.kind": target.kind}
    if not parent_id:
        parent_id = runs.create(experiment_id, run_name=f"tune-{target.kind}", tags=tags)
        params = {f"tuning.{k}": v for k, v in spec.to_dict().items() if k != "space"}
        params.update({f"space.{name}": text for name, text in spec.space.specs().items()})
        runs.log(parent_id, params=params)
        study.set_user_attr("mlflow_parent_run_id", parent_id)
    logged = {run_tags.get("tuning.trial") for run_tags in runs.children_tags(experiment_id, parent_id, "tuning.state")}
    now = int(time.time() * 1000)
    for trial in study.get_trials(deepcopy=False):
        if str(trial.number) in logged or trial.state.name in ("RUNNING", "WAITING"):
            continue
        row = trial_row(trial)
        outcome = trial.user_attrs.get("outcome") or {}
        start = int(trial.datetime_start.timestamp() * 1000) if trial.datetime_start else now
        end = int(trial.datetime_complete.timestamp() * 1000) if trial.datetime_complete else now
        child_id = runs.create(experiment_id, start_time=start, run_name=f"trial-{trial.number}", parent_run_id=parent_id,
                               tags={**tags, "tuning.trial": str(trial.number), "tuning.state": row["state"],
                                     "tuning.out_dir": str(row["out_dir"]),
                                     **({"tuning.error": row["error"][:5000]} if "error" in row else {})})
        metrics = [(f"intermediate_{spec.objective}", v, end, int(step)) for step, v in row["intermediate"].items()]
        values = {spec.objective: row["value"], "seconds": row["seconds"], **outcome.get("metrics", {})}
        metrics += [(k, float(v), end, 0) for k, v in values.items() if isinstance(v, (int, float))]
        runs.log(child_id, metrics=metrics, params={**spec.space.fixed, **trial.params},
                 tags={"tuning.objective": spec.objective})
        status = {"complete": "FINISHED", "pruned": "KILLED"}.get(row["state"], "FAILED")
        runs.end(child_id, status=status, end_time=end)

    best = best_trial(study)
    counts = {state: sum(trial_row(t)["state"] == state for t in study.trials) for state in ("complete", "pruned", "failed")}
    metrics = [(f"trials_{state}", n, now, 0) for state, n in counts.items()]
    if best is not None:
        metrics.append((f"best_{spec.objective}", float(best.value), now, 0))
        runs.log(parent_id, tags={"tuning.best_trial": str(best.number)})
    runs.log(parent_id, metrics=metrics)
    runs.end(parent_id, status="FINISHED")

    registered = None
    model_name = model_name or DEFAULT_MODEL_NAME
    if register and best is not None:
        previous = study.user_attrs.get("registered")
        if previous and previous.get("trial") == best.number and previous.get("model_name") == model_name:
            registered = previous["logged"]
        else:
            registered = _register_best(best, target, spec, parent_id, settings=settings, approve=approve,
                                        model_name=model_name)
            study.set_user_attr("registered", {"trial": best.number, "model_name": model_name, "logged": registered})
    return {"parent_run_id": parent_id, "registered": registered}


def _register_best(best, target: TuningTarget, spec: TuningSpec, parent_id: str, *, settings, approve: bool,
                   model_name: str) -> dict:
    """Log the best trial's model as a child run of the tuning job and register it."""
    from sagestack.data.atomic import sha256_file
    from sagestack.models.evaluation import Evaluation
    from sagestack.registry import DatasetRef, log_model_run, registration_status

    outcome = best.user_attrs["outcome"]
    approval, aliases = registration_status(approve)
    dataset = (DatasetRef(str(target.dataset.resolve()), sha256_file(target.dataset))
               if target.dataset is not None and target.dataset.is_file() else None)
    test = Evaluation.from_dict(outcome["test_evaluation"]) if outcome.get("test_evaluation") else None
    logged = log_model_run(
        outcome["model_dir"], settings=settings, dataset=dataset, test_evaluation=test, model_name=model_name,
        approval=approval, aliases=aliases,
        extra_tags={"tuning.parent_run_id": parent_id, "tuning.trial": str(best.number), "tuning.objective": spec.objective,
                    **{f"tuning.param.{k}": str(v) for k, v in best.params.items()}},
        extra_artifacts={name: Path(path) for name, path in outcome.get("artifacts", {}).items() if Path(path).exists()},
        parent_run_id=parent_id, run_name=f"best: trial {best.number}",
    )
    recording = outcome.get("artifacts", {}).get("debugger")
    if target.kind == "bert" and recording and (Path(recording) / "tensors.jsonl").is_file():
        from sagestack.debugger.mlflow import log_recording
        from sagestack.debugger.recording import Recording

        log_recording(settings, logged["run_id"], Recording.load(recording))  # as `train bert` does
    return logged


def tune(target: TuningTarget, spec: TuningSpec, out_dir: Path | str, *, settings=None, register: bool = True,
         approve: bool = False, model_name: str | None = None, resume: bool = False,
         progress: Callable[[str], None] | None = None) -> dict:
    """Run a tuning job: the trials, then MLflow and the registry; write ``OUT/summary.json``.

    Args:
        target: the model kind (:func:`bert_target`, :func:`fasttext_target`).
        spec: the space and how to search it.
        out_dir: the job's folder.
        settings: where MLflow is (needed with ``register``).
        register: log to MLflow and register the best model.
        approve: register as ``Approved`` and make it ``@champion`` (else pending, ``@challenger``).
        model_name: the registered model (default ``reviews-sentiment``).
        resume: continue the study in ``out_dir``.
        progress: one-line updates, or ``None``.

    Returns:
        The summary: ``{"best": {"trial", "params", "value"} | None, "trials": [{"number",
        "params", "value", "state", "seconds", ...}], "registered": {...} | None, "seconds", ...}``.

    Raises:
        ConfigError / DataError: bad options or data, ``register`` without ``settings`` (before any trial runs).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if register and settings is None:
        raise ConfigError("registering the best model needs settings (where MLflow is); pass settings or register=False")
    study = run_study(target, spec, out_dir, resume=resume, progress=progress)
    best = best_trial(study)
    summary = {
        "kind": target.kind, "objective": spec.objective, "direction": spec.direction,
        "best": {"trial": best.number, "params": dict(best.params), "value": best.value,
                 "out_dir": best.user_attrs.get("out_dir")} if best else None,
        "trials": [trial_row(t) for t in study.trials],
        "registered": None, "parent_run_id": None,
        "spec": spec.to_dict(), "study": str(out_dir / STUDY_FILE), "out_dir": str(out_dir),
    }
    if register:
        if progress:
            progress("logging the trials to MLflow" + (" and registering the best model" if best else ""))
        summary.update(log_study(study, target, spec, settings=settings, register=True, approve=approve,
                                 model_name=model_name))
    summary["seconds"] = round(time.perf_counter() - started, 2)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    if register and summary["parent_run_id"]:
        from sagestack.registry import Runs

        Runs(settings).log_artifact(summary["parent_run_id"], out_dir / SUMMARY_FILE)
    return summary


# --- BERT --------------------------------------------------------------------------------------


class PruningCallback(TrainingCallback):
    """Reports each evaluation's ``metric`` to the trial (step = evaluation number, from 1) and
    asks the loop to stop when the median rule says so."""

    def __init__(self, reporter: TrialReporter, metric: str = "validation_accuracy") -> None:
        self.reporter = reporter
        self.metric = metric
        self.evaluations = 0

    def on_evaluate(self, state: TrainingState, metrics: dict[str, float]) -> None:
        """Report, then stop training if the trial is pruned."""
        if self.metric not in metrics:
            return
        self.evaluations += 1
        self.reporter.report(metrics[self.metric], self.evaluations)
        if self.reporter.should_stop():
            state.request_stop(self.reporter.stop_reason)


def _train_bert(spec, reporter: TrialReporter, *, settings, progress):
    """``train_bert`` with a :class:`PruningCallback`: a pruned trial stops after the evaluation
    that pruned it, and its kept weights are saved like any trial's."""
    from sagestack.bert.job import train_bert

    return train_bert(spec, reporter.out_dir, settings=settings, progress=progress,
                      callbacks=[PruningCallback(reporter)])


def bert_target(*, data: Path | None = None, tiny: bool = False, model_dir: Path | None = None, device: str = "auto",
                profile: bool = False, settings=None, progress: Callable[[str], None] | None = None) -> TuningTarget:
    """BERT fine-tuning as a tuning target: each trial is a ``train_bert`` job in ``OUT/trials/<n>/``.

    Args:
        data: a reviews CSV (``None``: the feature store, through ``settings``).
        tiny / model_dir / device: as ``sagestack train bert``.
        profile: run the Profiler in every trial (off by default: it slows trials down).
        settings: for the feature store when ``data`` is ``None``.
        progress: the trials' own progress lines (prefixed ``trial <n>:``), or ``None``.
    """
    from sagestack.bert.job import BertJobSpec
    from sagestack.models.kinds import get_kind
    from sagestack.tuning.space import kind_hyperparameters

    template = BertJobSpec(data=Path(data) if data else None, tiny=tiny, model_dir=Path(model_dir) if model_dir else None,
                           device=device, profile=profile)

    def check(out_dir: Path) -> None:
        # Trial folders are numbered, so "pending" never exists: this checks the options and data only.
        template.check(out_dir / TRIALS_DIR / "pending")

    def trainable(params: dict, reporter: TrialReporter) -> TrialOutcome:
        from sagestack.bert.params import BertParams

        spec = replace(template, params=BertParams().updated(**params))
        say = (lambda message: progress(f"trial {reporter.number}: {message}")) if progress else None
        job = _train_bert(spec, reporter, settings=settings if data is None else None, progress=say)
        summary = job.summary
        if summary.get("nonfinite_loss"):  # such weights are never registered, so never the best trial either
            from sagestack.bert.job import not_registered_reason

            raise DataError(not_registered_reason(summary["nonfinite_loss"], False))
        if summary["validation_accuracy"] is None and not reporter.pruned:
            raise DataError("the trial has no validation accuracy: keep --run-validation and a validation split")
        return TrialOutcome(
            value=summary["validation_accuracy"] if summary["validation_accuracy"] is not None else reporter.last_value,
            model_dir=summary["model_dir"],
            metrics={k: v for k, v in {"test_accuracy": summary["test_accuracy"], "test_macro_f1": summary["test_macro_f1"],
                                       "steps": summary["training"]["steps"],
                                       "train_seconds": summary["training"]["train_seconds"]}.items() if v is not None},
            test_evaluation=job.test_evaluation.to_dict() if job.test_evaluation is not None else None,
            artifacts={name: str(reporter.out_dir / name) for name in ("debugger", "profiler")},
        )

    command = ["sagestack", "train", "bert"]  # data as given: a URI for a Katib trial stays one (no Path())
    if data:
        command += ["--data", str(data)]
    if tiny:
        command.append("--tiny")
    if model_dir:
        command += ["--model-dir", str(model_dir)]
    return TuningTarget("bert", kind_hyperparameters(get_kind("bert")), trainable, check=check, dataset=template.data,
                        command=tuple(command), early_stopping=True)


# --- fastText ----------------------------------------------------------------------------------


def fasttext_target(train: Path, validation: Path, *, preset: str = "sagestack") -> TuningTarget:
    """The BlazingText-equivalent fastText classifier as a tuning target: each trial trains on
    ``train`` and is scored on ``validation`` (no intermediate values: no early stopping).

    Args:
        train / validation: fastText-format files.
        preset: the defaults the searched and fixed values start from (``sagestack``/``blazingtext``).
    """
    from sagestack.models.kinds import get_kind

    # The Katib trial command takes the files as given (a URI such as s3://… must not become a Path).
    command = ("sagestack", "train", "fasttext", "--train", str(train), "--validation", str(validation),
               "--preset", preset)
    train, validation = Path(train), Path(validation)
    hyperparameters = get_kind("fasttext").params.search_space(preset)

    def check(out_dir: Path) -> None:
        for role, path in (("--train", train), ("--validation", validation)):
            if not path.is_file():
                raise DataError(f"{role} {path} is not a file; pass a fastText file (see `sagestack data prepare`)")

    def trainable(params: dict, reporter: TrialReporter) -> TrialOutcome:
        from sagestack.text import make_params, train_fasttext

        result = train_fasttext(train, reporter.out_dir, make_params(preset, **params), validation_file=validation)
        return TrialOutcome(value=result.validation.accuracy, model_dir=str(reporter.out_dir),
                            metrics={"train_seconds": round(result.train_seconds, 3),
                                     "model_size_mb": round(result.model_size_mb, 3),
                                     "validation_macro_f1": result.validation.macro_f1})

    return TuningTarget("fasttext", hyperparameters, trainable, check=check, dataset=train, command=command,
                        early_stopping=False)


# --- any registered kind -----------------------------------------------------------------------


def kind_target(kind, data: Path | str, *, progress: Callable[[str], None] | None = None) -> TuningTarget:
    """A registered kind as a tuning target: each trial runs the kind's trainer on the prepared
    folder ``data`` into ``OUT/trials/<n>/`` and is scored by the validation accuracy it returns
    (no intermediate values: no early stopping). The space is the kind's parameters model's
    (:func:`~sagestack.tuning.space.kind_hyperparameters`); ``seed`` seeds the trainer.

    Args:
        kind: a trainable :class:`~sagestack.models.kinds.ModelKind`.
        data: a prepared data folder (``train.csv``, ``validation.csv``, ... of ``sagestack data
            prepare``); for a Katib trial, ``pvc://CLAIM/PATH`` (a folder on a volume).
        progress: the trials' own progress lines (prefixed ``trial <n>:``), or ``None``.
    """
    from sagestack.models.kinds import TrainContext
    from sagestack.tuning.space import kind_hyperparameters

    command = ("sagestack", "train", kind.trainer_name, "--data", str(data))  # a URI stays one (no Path())
    data = Path(data)
    own_seed = "seed" in kind.param_fields()

    def check(out_dir: Path) -> None:
        if not (data / "train.csv").is_file():
            raise DataError(f"--data {data} is not a prepared data folder (no train.csv); "
                            f"run `sagestack data prepare` and pass its --out")

    def trainable(params: dict, reporter: TrialReporter) -> TrialOutcome:
        values = dict(params)
        seed = values.get("seed", 42) if own_seed else values.pop("seed", 42)
        say = (lambda message: progress(f"trial {reporter.number}: {message}")) if progress else None
        result = kind.trainer(data, reporter.out_dir, kind.make_params(values), TrainContext(seed=seed, progress=say))
        if result.get("validation_accuracy") is None:
            raise DataError(f"the {kind.trainer_name} trial has no validation accuracy: pass a prepared folder "
                            f"with a validation split")
        return TrialOutcome(value=float(result["validation_accuracy"]), model_dir=str(reporter.out_dir),
                            metrics={k: float(v) for k, v in result.items() if k != "validation_accuracy"
                                     and isinstance(v, (int, float)) and not isinstance(v, bool)})

    return TuningTarget(kind.trainer_name, kind_hyperparameters(kind), trainable, check=check,
                        dataset=data / "train.csv", command=command, early_stopping=False,
                        data_options={"--data": ("pvc",)})
