"""Tuning for real: ``sagestack tune bert`` (a tiny BERT on the 600-review sample) and
``sagestack tune fasttext``, with Optuna's study on SQLite, MLflow child runs and the registry.

BERT trials run with one intra-op thread (``OMP_NUM_THREADS=1``): on a shared 2-core machine two
spinning OpenMP threads per step made a 30-step trial take ~50 s instead of ~4 s.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from mlflow.tracking import MlflowClient

from sagestack.registry.models import get_version
from sagestack.tuning import TrialOutcome, TrialReporter, TuningSpec, TuningTarget, bert_target, run_study, search_space
from sagestack.tuning.study import PruningCallback, trial_row

ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def runs_of(settings, parent_name: str):
    """The parent run of that name and its child runs (by run name)."""
    client = MlflowClient(settings.mlflow_uri)
    experiment = client.get_experiment_by_name("sagestack")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    [parent] = [r for r in runs if r.info.run_name == parent_name]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len({r.info.run_name for r in children}) == len(children)  # each trial logged once
    return parent, {r.info.run_name: r for r in children}


def test_tune_bert_runs_trials_logs_children_and_registers_the_best(cli, sample_csv, settings, tmp_path):
    out = tmp_path / "tune"
    proc = cli("tune", "bert", "--tiny", "--data", str(sample_csv), "--max-trials", "3", "--learning-rate", "1e-4:3e-3",
               "--train-batch-size", "16,32", "--max-steps", "30", "--max-seq-length", "48", "--validation-interval", "10",
               "--early-stopping", "auto", "--min-trials-required", "1", "--start-step", "1", "--out", str(out), "--json",
               env=ONE_THREAD, check=True)
    summary = proc.json
    assert summary == json.loads((out / "summary.json").read_text())
    assert (out / "study.db").is_file()
    trials = summary["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert {t["state"] for t in trials} <= {"complete", "pruned"} and trials[0]["state"] == "complete"
    for trial in trials:
        assert set(trial["params"]) == {"learning_rate", "train_batch_size"}
        assert 1e-4 <= trial["params"]["learning_rate"] <= 3e-3 and trial["params"]["train_batch_size"] in (16, 32)
        assert 0 <= trial["value"] <= 1
        # 30 steps, evaluated every 10: three reports unless the median rule stopped the trial.
        assert len(trial["intermediate"]) == 3 if trial["state"] == "complete" else len(trial["intermediate"]) < 3
    best = summary["best"]
    complete = [t for t in trials if t["state"] == "complete"]
    assert best["value"] == max(t["value"] for t in complete)
    assert best["params"] == trials[best["trial"]]["params"]
    assert (out / "trials" / str(best["trial"]) / "model").is_dir()

    parent, children = runs_of(settings, "tune-bert")
    assert summary["parent_run_id"] == parent.info.run_id
    assert parent.data.params["space.learning_rate"] == "1e-4:3e-3" and parent.data.params["tuning.strategy"] == "random"
    assert parent.data.metrics["best_validation_accuracy"] == pytest.approx(best["value"])
    for trial in trials:
        child = children[f"trial-{trial['number']}"]
        assert child.data.tags["tuning.state"] == trial["state"]
        assert child.info.status == {"complete": "FINISHED", "pruned": "KILLED"}[trial["state"]]
        assert float(child.data.params["learning_rate"]) == pytest.approx(trial["params"]["learning_rate"])
        assert child.data.params["max_steps"] == "30"
        assert child.data.metrics["validation_accuracy"] == pytest.approx(trial["value"])
        # A trial's seconds are its own duration: the child run spans them, inside the job's time.
        assert child.data.metrics["seconds"] == pytest.approx(trial["seconds"])
        assert (child.info.end_time - child.info.start_time) / 1000 == pytest.approx(trial["seconds"], abs=0.02)
    assert 0 < sum(t["seconds"] for t in trials) <= summary["seconds"]

    registered = summary["registered"]
    assert registered["kind"] == "bert"
    version = get_version(settings, "reviews-sentiment", registered["registered"]["version"])
    assert version.kind == "bert" and version.status == "PendingManualApproval" and "challenger" in version.aliases
    assert version.tags["tuning.trial"] == str(best["trial"])
    best_run = children[f"best: trial {best['trial']}"]
    assert best_run.info.run_id == version.run_id  # the registered model's run is a child of the tuning job
    # As `train bert` does, the best run carries the Debugger's recorded scalars as metrics.
    assert any(key.startswith("debugger/gradients/") for key in best_run.data.metrics)


def perfect_study_steps(reporter):
    """A trial that reached accuracy 1.0 at each of 6 evaluations: every real trial is below it."""
    for step in range(1, 7):
        reporter.report(1.0, step)
    return TrialOutcome(value=1.0)


def test_the_pruning_callback_stops_the_bert_loop_after_the_evaluation(sample_csv, tmp_path, one_torch_thread):
    import optuna

    from sagestack.bert.data import csv_splits, encode
    from sagestack.bert.model import build_model
    from sagestack.bert.params import BertParams
    from sagestack.bert.training import train

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1))
    study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={s: 1.0 for s in range(1, 7)}))
    reporter = TrialReporter(study.ask(), tmp_path, prune=True)
    model, tokenizer, _ = build_model(tiny=True, seed=0)
    splits = {name: encode(frame, tokenizer, 48) for name, frame in csv_splits(sample_csv, seed=42).items()}
    params = BertParams(max_seq_length=48, train_batch_size=16, max_steps=30, validation_interval=5, learning_rate=1e-3)
    result = train(model, splits["train"], splits["validation"], params, callbacks=[PruningCallback(reporter)], device="cpu")
    assert reporter.pruned and list(reporter.reported) == [1]
    assert result.stopped and result.steps == 5 and result.stop_reason == reporter.stop_reason


def test_a_bert_trial_below_the_median_is_stopped_at_its_first_evaluation(sample_csv, tmp_path, one_torch_thread):
    """A study whose first trial reached accuracy 1.0 at every evaluation: the real BERT trial that
    follows is below that median at its first evaluation, so the median rule stops it there."""
    target = bert_target(data=sample_csv, tiny=True)
    entries = [("learning_rate", "1e-3:2e-3"), ("train_batch_size", "16"), ("max_steps", "30"),
               ("max_seq_length", "48"), ("validation_interval", "5")]
    spec = TuningSpec(search_space(target, entries, seed=0), max_trials=1, early_stopping="auto",
                      min_trials_required=1, start_step=1)
    out = tmp_path / "job"
    run_study(TuningTarget("bert", target.hyperparameters, lambda params, reporter: perfect_study_steps(reporter)),
              spec, out)
    study = run_study(target, replace(spec, max_trials=2), out, resume=True)
    real = trial_row(study.trials[1])
    assert real["state"] == "pruned", real
    assert list(real["intermediate"]) == ["1"] and real["value"] < 1.0
    summary = out / "trials" / "1" / "summary.json"
    # The loop stopped right after the evaluation; the job still saved the kept weights.
    saved = json.loads(summary.read_text())
    assert saved["training"]["steps"] == 5 and saved["stop_reason"].startswith("early stopping (median rule)")
    assert (out / "trials" / "1" / "model").is_dir()


def test_tune_fasttext_through_the_same_study_and_resume(cli, sample_split, settings, tmp_path):
    out = tmp_path / "tune"
    args = ["tune", "fasttext", "--train", str(sample_split / "train.txt"), "--validation",
            str(sample_split / "validation.txt"), "--learning-rate", "0.05:1.0", "--epochs", "5:30",
            "--word-ngrams", "1,2,3", "--threads", "1", "--out", str(out), "--json"]
    summary = cli(*args, "--max-trials", "3", check=True).json
    assert [t["state"] for t in summary["trials"]] == ["complete"] * 3
    assert all(set(t["params"]) == {"learning_rate", "epochs", "word_ngrams"} for t in summary["trials"])
    best = summary["best"]
    assert best["value"] == max(t["value"] for t in summary["trials"])
    assert summary["registered"]["kind"] == "fasttext"
    version = summary["registered"]["registered"]["version"]
    assert get_version(settings, "reviews-sentiment", version).kind == "fasttext"

    resumed = cli(*args, "--max-trials", "4", "--resume", check=True).json
    assert [t["number"] for t in resumed["trials"]] == [0, 1, 2, 3]
    assert resumed["trials"][:3] == summary["trials"]  # the earlier trials are kept as they were
    assert resumed["parent_run_id"] == summary["parent_run_id"]
    _, children = runs_of(settings, "tune-fasttext")
    assert {f"trial-{n}" for n in range(4)} <= set(children)
    assert len([name for name in children if name.startswith("best:")]) == (1 if resumed["best"] == best else 2)


def test_tune_errors_are_one_line_before_anything_runs(cli, sample_csv, tmp_path):
    out = tmp_path / "tune"
    for args, message in (
        (["--learning-rate", "5e-5:1e-5"], "learning_rate=5e-5:1e-5: the low end must be below the high end"),
        (["--learning-rate", "1e-5:5e-5", "--train-batch-size", "0,16"], "--train-batch-size must be 1 or more"),
        (["--learning-rate", "1e-5:5e-5", "--warmup-ration", "0.1"], "unknown bert hyperparameter 'warmup_ration'"),
        (["--learning-rate", "1e-5:5e-5", "--strategy", "grid"], "unknown strategy 'grid'"),
    ):
        proc = cli("tune", "bert", "--tiny", "--data", str(sample_csv), "--out", str(out), *args)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists()


def test_emit_katib_writes_the_experiment_without_training(cli, tmp_path):
    import yaml

    from sagestack.tuning.katib import validate_experiment

    path = tmp_path / "katib" / "experiment.yaml"
    proc = cli("tune", "bert", "--learning-rate", "1e-5:5e-5", "--train-batch-size", "64,128", "--max-trials", "6",
               "--parallel", "2", "--early-stopping", "auto", "--emit-katib", str(path), "--out", str(tmp_path / "tune"),
               "--json", check=True)
    assert proc.json["katib"] == str(path)
    manifest = yaml.safe_load(path.read_text())
    assert validate_experiment(manifest) == []
    assert manifest["spec"]["maxTrialCount"] == 6 and manifest["spec"]["earlyStopping"]["algorithmName"] == "medianstop"
    assert not (tmp_path / "tune").exists()  # nothing trained without --run


def test_emit_katib_refuses_a_local_data_path_and_takes_a_uri(cli, tmp_path):
    path = tmp_path / "experiment.yaml"
    refused = cli("tune", "fasttext", "--train", "prepared/train.txt", "--validation", "prepared/validation.txt",
                  "--epochs", "5:30", "--emit-katib", str(path))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr and not path.exists()
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "error: --train prepared/train.txt is not something a Katib trial pod can read; pass s3://BUCKET/KEY")
    done = cli("tune", "fasttext", "--train", "s3://reviews/train.txt", "--validation", "pvc://data/validation.txt",
               "--epochs", "5:30", "--emit-katib", str(path), "--json", check=True)
    assert done.json["katib"] == str(path) and "s3://reviews/train.txt" in path.read_text()


def test_a_bert_trial_whose_loss_became_non_finite_fails_and_cannot_be_the_best(sample_csv, tmp_path, one_torch_thread):
    """Its weights are never registered by `train bert`; tuning must not pick them as the best trial either."""
    target = bert_target(data=sample_csv, tiny=True)
    entries = [("learning_rate", "1e6,2e6"), ("gradient_clipping", "0"), ("train_batch_size", "16"), ("max_steps", "4"),
               ("max_seq_length", "32")]
    study = run_study(target, TuningSpec(search_space(target, entries, seed=0), max_trials=1), tmp_path / "job")
    [row] = [trial_row(t) for t in study.trials]
    assert row["state"] == "failed", row
    assert "training loss became non-finite" in row["error"], row
