"""The AutoML job (``sagestack automl``): Autopilot's white-box job, end to end.

split → data exploration report → candidates fitted by AutoGluon within the time limit →
leaderboard → each candidate's definition and retrain.py → the best exported as an
``autogluon`` model → permutation importance and word-level SHAP → MLflow (a parent run, a
child run per candidate) → the best registered as a version of ``reviews-sentiment``.

Everything lands in the output folder at once (written to a temporary folder, then renamed):
a job that fails leaves nothing behind; registration is its last step, so a job that fails
before it registers nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from sagestack.automl.search import AutoMLSpec, FitResult, check_frame, export_best, fit_candidates, rank, refit_best
from sagestack.automl.spec import TIME_CUT
from sagestack.config import Settings
from sagestack.data.atomic import atomic_dir, check_out_dir, sha256_file
from sagestack.data.reviews import COURSE_COLUMNS, RAW_COLUMNS, SENTIMENT, load_reviews, read_csv_checked
from sagestack.errors import ConfigError, DataError
from sagestack.models.base import RESULT_FILE, ModelCard
from sagestack.registry import DEFAULT_MODEL_NAME, DatasetRef

# Each class needs rows in the fit part, the validation part and the test part.
MIN_ROWS_PER_CLASS = 10
TEST_FRACTION = 0.2  # Autopilot's lab: an 80/20 split
TUNING_FRACTION = 0.1  # of the training part: AutoGluon's validation data (ranks the candidates)
DEFAULT_EXPLAIN_SAMPLES = 5
# Bounds on the explanations, so the whole job stays within its time limit plus 90 s.
IMPORTANCE_ROWS, IMPORTANCE_SECONDS, SHAP_EVALS = 500, 20.0, 64


def read_table(path: Path, spec: AutoMLSpec) -> tuple[pd.DataFrame, list[str]]:
    """Read a CSV for AutoML: review files in the course or raw layout become the course layout
    (when the target is ``sentiment``); other CSVs are read as text, and the extra columns whose
    every value is a number become numbers.

    Returns:
        ``(frame, numeric columns)``.
    """
    frame = read_csv_checked(Path(path))
    columns = set(frame.columns)
    if spec.target == SENTIMENT and (set(COURSE_COLUMNS) <= columns or set(RAW_COLUMNS) <= columns):
        frame = load_reviews(path).frame
    numeric = []
    for column in spec.columns:
        if column in frame.columns:
            values = frame[column].replace("", None)
            converted = pd.to_numeric(values, errors="coerce")
            if converted.notna().sum() == values.notna().sum() and values.notna().any():
                frame[column], numeric = converted, [*numeric, column]
    return frame, numeric


def split_for_automl(frame: pd.DataFrame, test: pd.DataFrame | None, spec: AutoMLSpec):
    """``(fit part, validation part, test)``: the seeded stratified 80/20 split (unless ``test`` is
    given), then 10 % of the training part as AutoGluon's validation data.

    Raises:
        DataError: too few rows of a class for the split.
    """
    from sagestack.data.split import stratified_split

    counts = frame[spec.target].astype(str).value_counts()
    if counts.min() < MIN_ROWS_PER_CLASS:
        raise DataError(f"too few rows for the split: class {counts.idxmin()!r} has {counts.min()}; "
                        f"AutoML needs at least {MIN_ROWS_PER_CLASS} per class")
    labelled = frame.assign(**{spec.target: frame[spec.target].astype(str)})
    if test is None:
        parts = stratified_split(labelled, label=spec.target, validation_fraction=0, test_fraction=TEST_FRACTION,
                                 seed=spec.seed)
        labelled, test = parts.train, parts.test
    parts = stratified_split(labelled, label=spec.target, validation_fraction=TUNING_FRACTION, test_fraction=0,
                             seed=spec.seed + 1)
    return parts.train, parts.validation, test.assign(**{spec.target: test[spec.target].astype(str)}).reset_index(drop=True)


def explain_best(fit: FitResult, test: pd.DataFrame, spec: AutoMLSpec, out_dir: Path, *, samples: int) -> dict:
    """AutoGluon's permutation importance of the best model's input columns on the test rows, and
    word-level SHAP (sagestack.explain's text masker over its probabilities) of ``samples`` reviews.

    The embedding columns are permuted together, as one feature. A model that reads other
    columns besides the text gets no word-level SHAP (SHAP's text masker perturbs text alone).

    Returns:
        ``{"importance": {feature: {importance, stddev, p_value}}, "shap": paths or None, "shap_skipped": reason}``.
    """
    from sagestack.models.embeddings import EMBEDDING_PREFIX
    from sagestack.explain import explain_texts, write_explanations
    from sagestack.models.autogluon import AutoGluonPredictor

    best = fit.export_name  # the model that is registered (the refit best, when refit)
    frame = fit.frame("test", test, spec)
    embedding_columns = [c for c in frame.columns if c.startswith(EMBEDDING_PREFIX)]
    # AutoGluon drops input columns that carry no information (constant, empty): nothing to permute there.
    kept = set(fit.tabular.original_features)
    features: list = [c for c in spec.inputs if c in kept]
    features += [("sentence_embedding", embedding_columns)] if embedding_columns else []
    importance = fit.tabular.feature_importance(
        frame, model=best, features=features, subsample_size=min(IMPORTANCE_ROWS, len(frame)), num_shuffle_sets=3,
        time_limit=IMPORTANCE_SECONDS, silent=True,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    importance.to_csv(out_dir / "feature_importance.csv", index_label="feature")
    result: dict = {
        "importance": {str(name): {"importance": round(float(row["importance"]), 4), "stddev": round(float(row["stddev"]), 4),
                                   "p_value": round(float(row["p_value"]), 4)} for name, row in importance.iterrows()},
        "dropped_columns": [c for c in spec.inputs if c not in kept],
        "shap": None, "shap_skipped": None,
    }
    if spec.columns:
        result["shap_skipped"] = f"the model also reads {', '.join(spec.columns)}; SHAP's text masker perturbs text alone"
        return result
    predictor = AutoGluonPredictor(fit.tabular, text_column=spec.text_column, embeddings=spec.embeddings, model=best)
    texts = test[spec.text_column].astype(str).head(samples).tolist()
    explanations = explain_texts(predictor, texts, max_evals=SHAP_EVALS)
    paths = write_explanations(explanations, out_dir / "shap", f"AutoML best candidate {best}: word-level SHAP")
    result["shap"] = {name: str(path) for name, path in paths.items()}
    return result


def log_to_mlflow(
    settings: Settings, out_dir: Path, fit: FitResult, spec: AutoMLSpec, *, dataset: DatasetRef, test_evaluation,
    register: bool, approve: bool, model_name: str,
) -> dict:
    """A parent run for the job (exploration, leaderboard, definitions), a child run per candidate,
    and the best model logged and registered as a child run too — or, when ``register`` is false
    (a model that reads more than the text), kept as files of the parent run.

    Returns:
        ``{"parent_run_id", "run_id", "registered": ModelVersionInfo dict or None}``.
    """
    from sagestack.automl.candidates import candidate_named
    from sagestack import __version__
    from sagestack.registry import git_commit, log_model_run, registration_status, start_run

    tags = {"sagestack.version": __version__, "git.commit": git_commit(), "dataset.path": dataset.path,
            "dataset.sha256": dataset.sha256, "automl.best": fit.best["name"]}
    with start_run(settings, run_name="automl") as parent:
        parent.set_tags(tags)
        parent.log_params({f"automl.{k}": v for k, v in spec.to_dict().items()})
        # The registered model's test accuracy (the refit best's, when refit) and the candidate's as ranked.
        parent.log_metrics({"best_validation_accuracy": fit.best["validation_accuracy"],
                            "best_test_accuracy": test_evaluation.accuracy,
                            "best_test_accuracy_before_refit": fit.best["test_accuracy"],
                            "fit_seconds": fit.fit_seconds, "refit_seconds": fit.refit_seconds})
        for name in ("exploration.html", "exploration.json", "leaderboard.csv", "leaderboard.html"):
            parent.log_artifact(out_dir / name)
        parent.log_artifacts(out_dir / "candidates", "candidates")
        for row in fit.leaderboard:
            candidate = candidate_named(row["name"])
            with parent.child(row["name"]) as child:
                child.set_tags({**tags, "automl.candidate": row["name"], "automl.rank": str(row["rank"])})
                child.log_params({"model_family": candidate.family, "autogluon_key": candidate.key,
                                  **{f"hp.{k}": v for k, v in candidate.hyperparameters.items()}})
                child.log_metrics({k: float(v) for k, v in row.items()
                                   if k not in ("name", "model_family", "rank") and v is not None})
                child.log_artifacts(out_dir / "candidates" / row["name"], "candidate")
        parent_id = parent.run_id
        if not register:  # not servable from text: no pyfunc, the files only
            parent.log_artifacts(out_dir / "model", "model")
            return {"parent_run_id": parent_id, "run_id": parent_id, "registered": None}
    approval, aliases = registration_status(approve)
    logged = log_model_run(
        out_dir / "model", settings=settings, dataset=dataset, test_evaluation=test_evaluation,
        model_name=model_name, approval=approval, aliases=aliases,
        extra_tags={"automl.parent_run_id": parent_id, "automl.candidate": fit.best["name"],
                    "automl.exported_model": fit.export_name, "automl.refit": str(fit.refit_name is not None).lower(),
                    "automl.candidates": ",".join(row["name"] for row in fit.leaderboard)},
        extra_artifacts={"explain": out_dir / "explain", "exploration": out_dir / "exploration.html"},
        parent_run_id=parent_id, run_name=f"best: {fit.best['name']}",
    )
    return {"parent_run_id": parent_id, "run_id": logged["run_id"], "registered": logged["registered"]}


def run_automl(
    spec: AutoMLSpec,
    out_dir: Path | str,
    *,
    settings: Settings,
    data: Path | str | None = None,
    test_data: Path | str | None = None,
    register: bool = True,
    approve: bool = False,
    model_name: str = DEFAULT_MODEL_NAME,
    explain_samples: int = DEFAULT_EXPLAIN_SAMPLES,
    progress: Callable[[str], None] | None = None,
    overwrite: bool = False,
    export_candidates: bool = False,
) -> dict:
    """Run the AutoML job and write its outputs to ``out_dir`` (replaced atomically).

    Args:
        spec: target, columns, metric, candidates, time limit, embeddings.
        out_dir: the job's folder: exploration.html, leaderboard.csv/.html, candidates/<name>/
            (definition.yaml, retrain.py), model/ (the best, an ``autogluon`` model), explain/,
            data/ (the split), autogluon/ (every candidate), summary.json.
        settings: where the registry is.
        data: the CSV (default: the resolved review dataset).
        test_data: a test CSV; without it the seeded stratified 80/20 split makes one.
        register: log to MLflow and register the best model (a model that reads more columns
            than the endpoint sends, the text, is logged but not registered).
        approve: register as Approved + @champion (else PendingManualApproval + @challenger).
        model_name: the registered model.
        explain_samples: test reviews explained with SHAP.
        progress: prints progress lines.
        overwrite: replace ``out_dir`` even if sagestack did not write it (``--overwrite``).
        export_candidates: also write every candidate as an ``autogluon`` model in
            ``candidates/<name>/model/`` (the best one refit, as ``model/``), so any of them can be served.

    Returns:
        ``{"best": {...}, "leaderboard": [...], "not_fitted": {candidate: why}, "time_limit_cut": bool,
        "registered": {"name", "version"} | None, "seconds", ...}``.

    Raises:
        DataError: unusable data (missing target or text, a single class, too few rows, no text).
        ConfigError: an unknown metric, a bad candidate count, or a time limit too small for any candidate.
    """
    from sagestack.automl.candidates import candidate_named
    from sagestack.automl.exploration import explore, write_exploration
    from sagestack.automl.whitebox import DATA_FILES, candidate_definition, write_candidate, write_leaderboard
    from sagestack.data import resolve_dataset
    from sagestack.models.evaluation import evaluate_labels

    say = progress or (lambda message: None)
    started = time.perf_counter()
    spec.check()
    out_dir = Path(out_dir)
    check_out_dir(out_dir, command="automl", overwrite=overwrite, protect=[p for p in (data, test_data, settings.home) if p])
    source = resolve_dataset(data, settings=settings)
    frame, numeric = read_table(source.path, spec)
    check_frame(frame, spec, "training")
    test = None
    if test_data is not None:
        test, _ = read_table(Path(test_data), spec)
        check_frame(test, spec, "test")
    fit_part, tuning, test = split_for_automl(frame, test, spec)
    train = pd.concat([fit_part, tuning], ignore_index=True)
    with atomic_dir(Path(out_dir), command="automl", overwrite=overwrite) as tmp:
        for part, name in ((fit_part, "train"), (tuning, "tuning"), (test, "test")):
            (tmp / DATA_FILES[name]).parent.mkdir(exist_ok=True)
            part[[spec.target, *spec.inputs]].to_csv(tmp / DATA_FILES[name], index=False)
        say(f"exploring {len(train)} training and {len(test)} test rows")
        exploration = explore(train, test, target=spec.target, text_column=spec.text_column, columns=spec.columns,
                              seed=spec.seed)
        write_exploration(exploration, tmp)
        say(f"fitting up to {spec.max_candidates} candidates within {spec.time_limit:g} s"
            + (" (sentence embeddings included)" if spec.embeddings else ""))
        fit = fit_candidates(fit_part, tuning, spec, tmp / "autogluon", progress=say)
        for name, reason in fit.not_fitted.items():
            say(f"not fitted: {name} ({'cut by --time-limit' if reason == TIME_CUT else reason})")
        leaderboard = rank(fit, test, spec)
        write_leaderboard(tmp, leaderboard, metric=spec.metric)
        problem = fit.tabular.problem_type
        for row in leaderboard:
            write_candidate(tmp, candidate_definition(candidate_named(row["name"]), spec, problem_type=problem,
                                                      numeric_columns=numeric, leaderboard_row=row))
        best = fit.best
        say(f"best: {best['name']} (validation {spec.metric} {best[f'validation_{spec.metric}']:.4f}); explaining it")
        if spec.refit:
            say(f"refitting {best['name']} on the fit and validation parts together")
            if refit_best(fit, spec) is None:
                say(f"not refit: {fit.refit_skipped}")
        export_best(fit, spec, tmp / "model")
        if export_candidates:
            for row in leaderboard:
                export_best(fit, spec, tmp / "candidates" / row["name"] / "model", name=row["name"])
        explained = explain_best(fit, test, spec, tmp / "explain", samples=explain_samples)
        # The registered model's test figures: the refit best's (the leaderboard keeps each
        # candidate's before the refit, all trained on the same rows).
        test_evaluation = evaluate_labels(test[spec.target].tolist(),
                                          fit.predicted_by_export("test", spec).astype(str).tolist())
        summary = {
            "best": {"name": best["name"], "model_family": best["model_family"],
                     "validation_accuracy": best["validation_accuracy"],
                     "test_accuracy": round(test_evaluation.accuracy, 4),
                     "test_macro_f1": round(test_evaluation.macro_f1, 4),
                     "refit": fit.refit_name is not None, "refit_skipped": fit.refit_skipped,
                     "test_accuracy_before_refit": best["test_accuracy"]},
            "leaderboard": leaderboard,
            "spec": spec.to_dict(),
            "data": {"source": str(source.path), "origin": source.source, "train_rows": len(train),
                     "test_rows": len(test)},
            "fit_seconds": round(fit.fit_seconds, 2),
            # Candidates asked for but not fitted, and why; whether --time-limit cut any (the others failed).
            "not_fitted": fit.not_fitted,
            "time_limit_cut": fit.time_limit_cut,
            "refit_seconds": round(fit.refit_seconds, 2),
            "embedding_seconds": round(fit.embedding_seconds, 2),
            "warnings": [w["message"] for w in exploration["warnings"]],
            "importance": explained["importance"],
            "dropped_columns": explained["dropped_columns"],
            "shap_skipped": explained["shap_skipped"],
            "registered": None,
            "not_registered": None,
            "out_dir": str(Path(out_dir)),
        }
        if register and spec.columns:
            summary["not_registered"] = (
                f"the best model also reads {', '.join(spec.columns)}, which the endpoint does not send (it sends "
                "text only); it was logged to MLflow but not registered — run without --columns to register"
            )
        # Registration last: a job that fails before it registers nothing and leaves no folder.
        if register:
            say("logging to MLflow" + ("" if spec.columns else " and registering the best model"))
            dataset = DatasetRef(str(source.path.resolve()), sha256_file(source.path))
            logged = log_to_mlflow(settings, tmp, fit, spec, dataset=dataset, test_evaluation=test_evaluation,
                                   register=not spec.columns, approve=approve, model_name=model_name)
            summary["mlflow"] = {"parent_run_id": logged["parent_run_id"], "run_id": logged["run_id"]}
            if logged["registered"]:
                summary["registered"] = {"name": logged["registered"]["name"], "version": logged["registered"]["version"],
                                         "aliases": logged["registered"]["aliases"]}
        summary["seconds"] = round(time.perf_counter() - started, 2)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        size = sum(p.stat().st_size for p in (tmp / "model").rglob("*") if p.is_file())
        result = ModelCard.load(tmp / "model").result(Path(out_dir), Path(out_dir) / "model", model_bytes=size)
        (tmp / RESULT_FILE).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return summary
