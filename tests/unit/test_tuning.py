"""Tuning without training a model: search spaces, samplers and pruners, real Optuna studies of a
cheap synthetic trainable (pruning, failures, best selection, resume), and the Katib manifest
checked against Katib's vendored schema."""

from __future__ import annotations

import inspect
import json
import re
import time

import numpy as np
import optuna
import pytest
import yaml

from sagestack.errors import ConfigError
from sagestack.tuning import TrialOutcome, TuningSpec, TuningTarget, build_space, parse_cli_args, parse_params, run_study
from sagestack.tuning import katib
from sagestack.bert.params import bert_hyperparameters
from sagestack.text.params import fasttext_hyperparameters
from sagestack.tuning.space import Hyperparameters, parse_spec
from sagestack.tuning.study import make_pruner, make_sampler, search_space, trial_row, tune

BERT = bert_hyperparameters()


def bert_space(*entries: tuple[str, str]):
    return build_space(list(entries), BERT)


# --- search spaces -----------------------------------------------------------------------------


def test_ranges_lists_and_fixed_values_parse_to_the_hyperparameters_types():
    space = bert_space(("learning_rate", "1e-5:5e-5"), ("train_batch_size", "64,128"), ("epochs", "1:3"),
                       ("warmup_ratio", "0:0.2"), ("weight_decay", "0.001:0.1"), ("max_steps", "30"),
                       ("freeze_bert_layer", "true,false"), ("gradient_clipping", "0.5:4:linear"))
    dims = {d.name: d for d in space.dimensions}
    assert (dims["learning_rate"].type, dims["learning_rate"].low, dims["learning_rate"].high) == ("float", 1e-5, 5e-5)
    assert dims["learning_rate"].log  # learning rates always log (both ends > 0), though 5e-5/1e-5 < 10
    assert (dims["train_batch_size"].type, dims["train_batch_size"].choices) == ("categorical", (64, 128))
    assert (dims["epochs"].type, dims["epochs"].low, dims["epochs"].high, dims["epochs"].log) == ("int", 1, 3, False)
    assert not dims["warmup_ratio"].log  # reaches 0: linear
    assert dims["weight_decay"].log  # 0.1 / 0.001 >= 10: log, like SageMaker's Auto scaling
    assert not dims["gradient_clipping"].log  # 0.5:4 is < 10x anyway; explicit linear is kept
    assert dims["freeze_bert_layer"].choices == (True, False)
    assert space.fixed == {"max_steps": 30}
    assert space.specs() == {"max_steps": "30", "learning_rate": "1e-5:5e-5", "train_batch_size": "64,128",
                             "epochs": "1:3", "warmup_ratio": "0:0.2", "weight_decay": "0.001:0.1",
                             "freeze_bert_layer": "true,false", "gradient_clipping": "0.5:4:linear"}
    assert parse_spec("train_batch_size", "16:256", int).log  # a wide int range is log too
    assert not parse_spec("epochs", "5:30", int).log


@pytest.mark.parametrize("entries, message", [
    ([("learning_rate", "5e-5:1e-5")], "low end must be below the high end"),
    ([("learning_rate", "1e-5:1e-5")], "low end must be below the high end"),
    ([("learnin_rate", "1e-5:5e-5")], "unknown bert hyperparameter 'learnin_rate'"),
    ([("train_batch_size", "0,16")], "search space train_batch_size=0,16: --train-batch-size must be 1 or more, got 0"),
    ([("train_batch_size", "16:32.5")], "'32.5' is not an integer"),
    ([("learning_rate", "0:1e-3:log")], "a log scale needs a range above 0"),
    ([("learning_rate", "-1e-3:1e-3")], "--learning-rate must be above 0"),
    ([("freeze_bert_layer", "true:false")], "a range a:b needs a numeric hyperparameter"),
    ([("learning_rate", "1e-5:5e-5:ln")], "write a range as low:high"),
    ([("train_batch_size", "16,16")], "a value is listed twice"),
    ([("train_batch_size", "16,")], "a list needs two or more values"),
    ([("learning_rate", "1e-5:5e-5"), ("max_seq_length", "600")], "search space fixed values: --max-seq-length must be 512 or less"),
    ([("learning_rate", "1e-5:5e-5"), ("learning-rate", "1e-4")], "learning_rate given twice"),
    ([("max_steps", "30")], "nothing to search"),
    ([("learning_rate", "nan:1")], "is not a number"),
])
def test_bad_spaces_fail_with_one_line_before_any_trial(entries, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_space(entries, BERT)
    assert "\n" not in str(info.value)


def test_fasttext_space_uses_blazingtext_names_and_checks():
    hyper = fasttext_hyperparameters()
    assert "mode" not in hyper.types and hyper.types["threads"] is int and hyper.types["learning_rate"] is float
    space = build_space([("learning_rate", "0.01:1.0"), ("epochs", "5:30"), ("word_ngrams", "1,2,3")], hyper)
    assert [d.type for d in space.dimensions] == ["float", "int", "categorical"]
    assert space.dimensions[0].log and not space.dimensions[1].log
    with pytest.raises(ConfigError, match="invalid hyperparameter 'word_ngrams'"):
        build_space([("word_ngrams", "0:3")], hyper)


def test_command_line_words_and_param_options_become_pairs():
    assert parse_cli_args(["--max-steps", "30", "--warmup-ratio=0:0.2", "--learning-rate", "-1e-3"]) == [
        ("max-steps", "30"), ("warmup-ratio", "0:0.2"), ("learning-rate", "-1e-3")]
    assert parse_params(["warmup_ratio=0:0.2", "seed=1,2"]) == [("warmup_ratio", "0:0.2"), ("seed", "1,2")]
    with pytest.raises(ConfigError, match="--max-steps needs a value"):
        parse_cli_args(["--max-steps"])
    with pytest.raises(ConfigError, match="--max-steps needs a value"):
        parse_cli_args(["--max-steps", "--epochs", "2"])
    with pytest.raises(ConfigError, match="unexpected argument 'stray'"):
        parse_cli_args(["stray"])
    with pytest.raises(ConfigError, match="write --param name=spec"):
        parse_params(["warmup_ratio"])


def test_the_training_seed_follows_the_tuning_seed_unless_given():
    target = TuningTarget("bert", BERT, trainable=lambda params, reporter: TrialOutcome(0.0))
    assert search_space(target, [("learning_rate", "1e-5:5e-5")], seed=7).fixed == {"seed": 7}
    assert search_space(target, [("learning_rate", "1e-5:5e-5"), ("seed", "1,2")], seed=7).fixed == {}


# --- samplers, pruners, the spec ----------------------------------------------------------------


def test_strategy_and_early_stopping_choose_optunas_sampler_and_pruner():
    assert isinstance(make_sampler("random", 1), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler("tpe", 1), optuna.samplers.TPESampler)
    space = bert_space(("learning_rate", "1e-5:5e-5"))
    pruner = make_pruner(TuningSpec(space, early_stopping="auto", min_trials_required=4, start_step=3))
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (4, 3)
    assert isinstance(make_pruner(TuningSpec(space, early_stopping="off")), optuna.pruners.NopPruner)
    for bad, message in (({"strategy": "grid"}, "unknown strategy 'grid'"), ({"early_stopping": "on"}, "unknown early stopping"),
                         ({"objective": "test_accuracy"}, "unknown objective"), ({"max_trials": 0}, "--max-trials must be 1"),
                         ({"parallel": 0}, "--parallel must be 1")):
        with pytest.raises(ConfigError, match=message):
            TuningSpec(space, **bad)


# --- real studies of a synthetic trainable ------------------------------------------------------

TOY = Hyperparameters("toy", {"quality": float, "fail": bool, "steps": int}, check=lambda values: values)


def toy_trainable(calls: list):
    """Learning curves: at evaluation s the value is quality * s / 5; ``fail`` raises."""

    def train(params: dict, reporter) -> TrialOutcome:
        calls.append(dict(params))
        if params["fail"]:
            raise RuntimeError("diverged")
        value = None
        for step in range(1, params["steps"] + 1):
            value = params["quality"] * step / 5
            reporter.report(value, step)
            if reporter.should_stop():
                break
        reporter.out_dir.mkdir(parents=True)
        return TrialOutcome(value=value, metrics={"curve_end": value})

    return train


def toy_spec(max_trials: int, **kw) -> TuningSpec:
    space = build_space([("quality", "0.1:1.0:linear"), ("fail", "true,false"), ("steps", "5")], TOY)
    return TuningSpec(space, max_trials=max_trials, **{"early_stopping": "auto", "min_trials_required": 2,
                                                       "start_step": 1, "max_failed_trials": 100, **kw})


def test_a_study_prunes_below_median_trials_records_failures_and_picks_the_best(tmp_path):
    calls: list = []
    target = TuningTarget("toy", TOY, toy_trainable(calls), early_stopping=True)
    study = run_study(target, toy_spec(16, seed=3), tmp_path / "job")
    rows = [trial_row(t) for t in study.trials]
    states = {r["state"] for r in rows}
    assert len(rows) == 16 and states == {"complete", "pruned", "failed"}
    complete = [r for r in rows if r["state"] == "complete"]
    for row in rows:
        if row["state"] == "failed":
            assert row["params"]["fail"] is True and row["value"] is None and "RuntimeError: diverged" in row["error"]
        elif row["state"] == "pruned":
            # Stopped before its last evaluation, its value the last one it reported, and worse
            # (at that evaluation) than the median of the trials completed before it.
            assert len(row["intermediate"]) < 5 and row["value"] == row["intermediate"][max(row["intermediate"])]
            step = max(row["intermediate"], key=int)
            earlier = [c["intermediate"][step] for c in complete if c["number"] < row["number"]]
            assert len(earlier) >= 2 and row["value"] < np.percentile(earlier, 50)
        else:
            assert len(row["intermediate"]) == 5 and row["value"] == pytest.approx(row["params"]["quality"])
    best = max(complete, key=lambda r: r["value"])
    assert study.best_trial.number == best["number"]
    # The trainable saw the fixed values too; every trial had its own folder.
    assert all(c["steps"] == 5 for c in calls)
    assert {p.name for p in (tmp_path / "job" / "trials").iterdir()} >= {str(r["number"]) for r in complete}


def test_the_same_seed_draws_the_same_trials_and_off_prunes_nothing(tmp_path):
    target = TuningTarget("toy", TOY, toy_trainable([]), early_stopping=True)
    runs = [run_study(target, toy_spec(6, early_stopping="off", seed=11), tmp_path / str(i)) for i in range(2)]
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]
    assert {trial_row(t)["state"] for t in runs[0].trials} <= {"complete", "failed"}
    tpe = run_study(target, toy_spec(6, strategy="tpe", seed=11), tmp_path / "tpe")
    assert len(tpe.trials) == 6


def test_resume_continues_to_max_trials_with_new_draws_and_refuses_another_space(tmp_path):
    target = TuningTarget("toy", TOY, toy_trainable([]), early_stopping=True)
    out = tmp_path / "job"
    first = [t.params for t in run_study(target, toy_spec(3), out).trials]
    with pytest.raises(ConfigError, match="is not empty; pass a new --out, or --resume"):
        run_study(target, toy_spec(3), out)
    resumed = run_study(target, toy_spec(5), out, resume=True)
    assert len(resumed.trials) == 5
    params = [tuple(sorted(t.params.items())) for t in resumed.trials]
    assert len(set(params)) == 5 and [t.params for t in resumed.trials[:3]] == first
    assert len(run_study(target, toy_spec(5), out, resume=True).trials) == 5  # already done: nothing runs
    other = TuningSpec(build_space([("quality", "0.2:1.0"), ("fail", "true,false"), ("steps", "5")], TOY), max_trials=6)
    with pytest.raises(ConfigError, match="--resume: the space differs"):
        run_study(target, other, out, resume=True)
    with pytest.raises(ConfigError, match="--resume: no study in"):
        run_study(target, toy_spec(3), tmp_path / "nothing", resume=True)


def test_max_failed_trials_stops_the_job_and_a_job_with_no_success_has_no_best(tmp_path):
    always_fail = build_space([("quality", "0.1:1.0"), ("fail", "true"), ("steps", "2")], TOY)
    target = TuningTarget("toy", TOY, toy_trainable([]), early_stopping=True)
    before = time.perf_counter()
    summary = tune(target, TuningSpec(always_fail, max_trials=10, max_failed_trials=2), tmp_path / "job", register=False)
    elapsed = time.perf_counter() - before
    assert [t["state"] for t in summary["trials"]] == ["failed", "failed"]
    assert summary["best"] is None and summary["registered"] is None
    saved = json.loads((tmp_path / "job" / "summary.json").read_text())
    assert saved["trials"][0]["error"] == "RuntimeError: diverged"
    # The job's seconds (rounded to 0.01) cover its trials and lie within the call's wall time.
    assert sum(t["seconds"] for t in saved["trials"]) <= saved["seconds"] + 0.02 and saved["seconds"] <= elapsed + 0.01


def test_early_stopping_is_refused_for_a_trainable_without_intermediate_values(tmp_path):
    target = TuningTarget("toy", TOY, toy_trainable([]), early_stopping=False)
    with pytest.raises(ConfigError, match="toy reports no intermediate values"):
        run_study(target, toy_spec(2), tmp_path / "job")
    assert not (tmp_path / "job").exists()


# --- Katib --------------------------------------------------------------------------------------


def bert_target_for_katib(**kw):
    from sagestack.tuning import bert_target

    return bert_target(**kw)


def bert_experiment(early_stopping="auto", strategy="random", extra=()):
    target = bert_target_for_katib(data=None)
    space = search_space(target, [("learning_rate", "1e-5:5e-5"), ("train_batch_size", "64,128"), ("epochs", "2"),
                                  ("run_validation", "true"), *extra], seed=5)
    spec = TuningSpec(space, max_trials=8, parallel=2, strategy=strategy, early_stopping=early_stopping)
    return katib.experiment(target, spec)


def test_katib_experiment_validates_against_the_vendored_schema_and_carries_the_search():
    manifest = bert_experiment()
    assert katib.validate_experiment(manifest) == []
    spec = manifest["spec"]
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v1beta1", "Experiment")
    assert spec["objective"] == {"type": "maximize", "objectiveMetricName": "validation_accuracy"}
    assert spec["algorithm"]["algorithmName"] == "random"
    assert (spec["parallelTrialCount"], spec["maxTrialCount"], spec["maxFailedTrialCount"]) == (2, 8, 3)
    assert spec["parameters"] == [
        {"name": "learning_rate", "parameterType": "double",
         "feasibleSpace": {"min": "1e-05", "max": "5e-05", "distribution": "logUniform"}},
        {"name": "train_batch_size", "parameterType": "discrete", "feasibleSpace": {"list": ["64", "128"]}}]
    assert spec["earlyStopping"] == {"algorithmName": "medianstop", "algorithmSettings": [
        {"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "2"}]}
    assert spec["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"
    template = spec["trialTemplate"]
    assert template["trialParameters"][0] == {"name": "learningRate", "reference": "learning_rate",
                                              "description": "bert hyperparameter learning_rate"}
    job = template["trialSpec"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    from sagestack import __version__

    assert container["image"] == f"ghcr.io/sagestack/sagestack:{__version__}"
    command = " ".join(container["command"])
    assert command.startswith("sagestack train bert --out /work/out --no-register")
    assert "--learning-rate ${trialParameters.learningRate}" in command
    assert "--train-batch-size ${trialParameters.trainBatchSize}" in command
    assert "--epochs 2" in command and "--seed 5" in command and "--run-validation" in command
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["securityContext"]["runAsNonRoot"] and not container["securityContext"]["allowPrivilegeEscalation"]
    assert pod["restartPolicy"] == "Never"
    # The metrics filter reads both "validation_accuracy=0.5" and `sagestack train`'s "validation_accuracy: 0.5".
    pattern = re.compile(spec["metricsCollectorSpec"]["source"]["filter"]["metricsFormat"][0])
    for line in ("validation_accuracy=0.4951", "validation_accuracy: 0.4951", "step 30: validation_accuracy=4.9e-1"):
        assert [m for m in pattern.findall(line) if m[0] == "validation_accuracy"][0][1] in ("0.4951", "4.9e-1")


def test_katib_off_tpe_and_fasttext_variants(tmp_path):
    assert "earlyStopping" not in bert_experiment(early_stopping="off")["spec"]
    assert bert_experiment(strategy="tpe")["spec"]["algorithm"]["algorithmName"] == "tpe"
    from sagestack.tuning import fasttext_target

    target = fasttext_target("s3://reviews/blazingtext/train.txt", "pvc://course-data/blazingtext/validation.txt",
                             preset="blazingtext")
    space = search_space(target, [("learning_rate", "0.01:1.0"), ("epochs", "5:30"), ("word_ngrams", "1,2,3"),
                                  ("early_stopping", "false")], seed=0)
    manifest = katib.experiment(target, TuningSpec(space, max_trials=3))
    assert katib.validate_experiment(manifest) == []
    params = {p["name"]: p for p in manifest["spec"]["parameters"]}
    assert params["epochs"] == {"name": "epochs", "parameterType": "int",
                                "feasibleSpace": {"min": "5", "max": "30", "distribution": "uniform"}}
    [container] = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    command = " ".join(container["command"])
    assert command.startswith("sagestack train fasttext --train /work/data/train/train.txt --validation "
                              "/data/course-data/blazingtext/validation.txt ")
    assert "--preset blazingtext" in command and "--no-early-stopping" in command and "--threads 2" in command
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    path = katib.write_experiment(manifest, tmp_path / "k" / "experiment.yaml")
    assert yaml.safe_load(path.read_text()) == manifest


def test_katib_trials_read_data_from_a_uri_or_a_volume_never_a_local_path(tmp_path):
    """s3:// and http(s):// files are copied in by an init container; pvc://CLAIM/PATH is mounted read-only;
    a path on this machine (`prepared/train.txt`) is refused with the way to pass it."""
    from sagestack.errors import ConfigError
    from sagestack.tuning import bert_target, fasttext_target

    def pod_of(target, entries=(("epochs", "5:30"),)):
        manifest = katib.experiment(target, TuningSpec(search_space(target, list(entries), seed=0), max_trials=2))
        assert katib.validate_experiment(manifest) == []
        return manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]

    pod = pod_of(fasttext_target("https://example.org/data/train.txt", "s3://bucket/prepared/validation.txt"))
    [fetch] = pod["initContainers"]
    assert fetch["command"][-4:] == ["https://example.org/data/train.txt", "/work/data/train/train.txt",
                                     "s3://bucket/prepared/validation.txt", "/work/data/validation/validation.txt"]
    assert fetch["volumeMounts"][0] == {"name": "work", "mountPath": "/work"} and fetch["image"] == pod["containers"][0]["image"]
    pod = pod_of(fasttext_target("pvc://course-data/train.txt", "pvc://course-data/validation.txt"))
    assert "initContainers" not in pod
    assert {"name": "data-course-data", "persistentVolumeClaim": {"claimName": "course-data", "readOnly": True}} in pod["volumes"]
    assert {"name": "data-course-data", "mountPath": "/data/course-data", "readOnly": True} in pod["containers"][0]["volumeMounts"]
    assert [v["name"] for v in pod["volumes"]].count("data-course-data") == 1
    bert = pod_of(bert_target(data="pvc://reviews/reviews.csv", model_dir="pvc://models/minilm"),
                  [("learning_rate", "1e-5:5e-5")])
    assert "--data /data/reviews/reviews.csv" in " ".join(bert["containers"][0]["command"])
    assert "--model-dir /data/models/minilm" in " ".join(bert["containers"][0]["command"])
    with pytest.raises(ConfigError, match="^--train prepared/train.txt is not something a Katib trial pod can read; "
                                          r"pass s3://BUCKET/KEY or http\(s\)://URL \(copied into the trial before it "
                                          r"trains\) or pvc://CLAIM/PATH \(a file on a PersistentVolumeClaim\)$"):
        pod_of(fasttext_target("prepared/train.txt", "s3://bucket/validation.txt"))
    with pytest.raises(ConfigError, match="^--model-dir s3://bucket/minilm is not something a Katib trial pod can read; "
                                          "pass pvc://CLAIM/PATH"):
        pod_of(bert_target(data="pvc://reviews/reviews.csv", model_dir="s3://bucket/minilm"), [("learning_rate", "1e-5:5e-5")])


def test_the_init_containers_fetch_copies_a_file_over_http(tmp_path):
    import http.server
    import threading
    from functools import partial

    root = tmp_path / "www"
    root.mkdir()
    (root / "train.txt").write_text("__label__1 good\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        katib.fetch_all([f"{url}/train.txt", str(tmp_path / "work" / "data" / "train.txt")])
        assert (tmp_path / "work" / "data" / "train.txt").read_text() == "__label__1 good\n"
        from sagestack.errors import DataError

        with pytest.raises(DataError, match=f"^could not fetch {url}/none.txt \\(HTTP Error 404"):
            katib.fetch_all([f"{url}/none.txt", str(tmp_path / "none.txt")])
        assert not (tmp_path / "none.txt").exists()
    finally:
        server.shutdown()


def test_katib_refuses_what_a_trial_command_cannot_say():
    with pytest.raises(ConfigError, match="has no --num-workers option"):
        bert_experiment(extra=[("num_workers", "2")])
    with pytest.raises(ConfigError, match="cannot search the switch --freeze-bert-layer"):
        bert_experiment(extra=[("freeze_bert_layer", "true,false")])


def test_the_validator_catches_misspelt_fields_wrong_types_and_dangling_parameters():
    manifest = bert_experiment()
    manifest["spec"]["parallelTrialCounts"] = 2
    manifest["spec"]["maxTrialCount"] = "8"
    manifest["spec"]["parameters"][0]["parameterType"] = "float"
    manifest["spec"]["parameters"][1]["feasibleSpace"]["distribution"] = "loguniform"
    manifest["spec"]["trialTemplate"]["trialParameters"].pop()
    container = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["resource"] = container.pop("resources")
    errors = "\n".join(katib.validate_experiment(manifest))
    assert "spec.parallelTrialCounts: unknown field" in errors
    assert "spec.maxTrialCount: expected integer, got str" in errors
    assert "spec.parameters[0].parameterType must be one of" in errors
    assert "spec.parameters[1].feasibleSpace.distribution must be one of" in errors
    assert "uses ${trialParameters.trainBatchSize}, which trialParameters does not declare" in errors
    assert "containers[0].resource: unknown field" in errors
    assert katib.validate_experiment(bert_experiment(), strict=True) == []


def test_vendored_schema_is_katibs_with_its_license():
    schema = katib.load_schema()
    assert schema["x-source"]["repository"] == "https://github.com/kubeflow/katib"
    assert {"v1beta1.Experiment", "v1beta1.ExperimentSpec", "io.k8s.api.core.v1.PodTemplateSpec"} <= set(
        schema["components"]["schemas"])
    assert "Apache License" in (katib.SCHEMA_FILE.parent / "LICENSE").read_text()


def test_katib_manifest_validates_with_jsonschema_too():
    import jsonschema  # in the lock: an independent validator agrees with sagestack's own
    manifest = bert_experiment()
    jsonschema.validate(manifest, {**katib.load_schema(), "$ref": "#/components/schemas/v1beta1.Experiment"})
    jsonschema.validate(manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"],
                        {**katib.load_schema(), "$ref": "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec"})


def test_trial_commands_use_options_sagestack_train_has():
    """Every option TRAIN_OPTIONS emits exists on `sagestack train <kind>`, in the right style."""
    from sagestack.cli import train

    for kind, command in (("bert", train.bert), ("fasttext", train.fasttext)):
        declared = {}
        for name, parameter in inspect.signature(command).parameters.items():
            decls = getattr(parameter.default, "param_decls", None) or ()
            declared[name] = "switch" if any("/" in d for d in decls) else "value"
        for name, style in katib.TRAIN_OPTIONS[kind].items():
            assert name in declared, f"sagestack train {kind} has no --{name}"
            assert declared[name] == ("switch" if style == "switch" else "value"), name
        missing = set(BERT.types if kind == "bert" else fasttext_hyperparameters().types) - set(katib.TRAIN_OPTIONS[kind])
        assert missing == ({"num_workers"} if kind == "bert" else {"sampling_threshold", "min_char", "max_char"})
