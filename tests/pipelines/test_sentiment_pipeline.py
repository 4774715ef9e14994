"""The real pipeline on KFP's local runner, on a small real sample of reviews_balanced.csv."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sagestack.pipelines.runner import PipelineFailed, compile_pipeline, pipeline_tasks, run_local
from sagestack.pipelines.sentiment import sentiment_pipeline
from sagestack import __version__
from sagestack.config import Settings, load_settings
from sagestack.pipeline_runs import SUMMARY_FILE, list_runs
from sagestack.registry import lineage, list_models, resolve_ref

UPSTREAM = ["ingest-data", "pretraining-bias", "feature-store", "prepare-data"]
# Task names as KFP numbers repeated components: the fastText branch is defined first.
FASTTEXT = ["train-fasttext", "evaluate-model"]
BASELINE = ["train-baseline", "evaluate-model-2"]
AUTOML = ["train-automl", "evaluate-model-3"]
BERT = ["train-bert", "evaluate-model-4"]
DOWNSTREAM = ["select-champion", "posttraining-bias", "explain-model"]
STANDINS = {"fasttext": "skip-trainer", "baseline": "skip-trainer-2", "automl": "skip-trainer-3",
            "bert": "skip-trainer-4"}
MODEL = "reviews-sentiment"


def statuses(summary):
    return {step["name"]: step["status"] for step in summary["steps"]}


def step(summary, name):
    return {s["name"]: s for s in summary["steps"]}[name]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("pipeline-home")


@pytest.fixture(scope="module")
def settings_of(home):
    return load_settings(cwd=home, environ={}, home=home)


@pytest.fixture(scope="module")
def run(settings_of, sample_csv):
    """Run the pipeline on the sample in the module's home (steps already run come from the cache)."""

    def go(**arguments):
        return run_local({"data_path": str(sample_csv), "min_accuracy": 0.0, "auto_approve": True, **arguments},
                         settings=settings_of)

    return go


@pytest.fixture(scope="module")
def first_run(run):
    return run()


def test_training_data_comes_back_from_the_feature_store(first_run, settings_of):
    from sagestack.features import read_features

    prepared = Path(step(first_run, "prepare-data")["artifacts"]["prepared"])
    train_ids = set(pd.read_csv(prepared / "train.csv")["review_id"])
    # The run's own reviews: a later test of this module may ingest reviews of its own into the same store.
    ingested = json.loads(Path(step(first_run, "feature-store")["artifacts"]["features"]).read_text())["review_ids"]
    table = read_features(settings_of)
    table = table[table["review_id"].isin(ingested)]
    assert train_ids == set(table.loc[table["split_type"] == "train", "review_id"])
    assert json.loads((prepared / "manifest.json").read_text())["source"] == "feast:sentiment_training_v1"


def test_both_trainers_run_as_branches_and_the_best_becomes_champion(first_run, settings_of):
    assert statuses(first_run) == {
        **dict.fromkeys(UPSTREAM + FASTTEXT + BASELINE + DOWNSTREAM + ["register-model"], "SUCCESS"),
        **dict.fromkeys([STANDINS["fasttext"], STANDINS["baseline"], "record-rejection"], "SKIPPED"),
        # AutoML is asked for by name (--trainers): by default its stand-in runs instead.
        **dict.fromkeys(AUTOML + BERT, "SKIPPED"), STANDINS["automl"]: "SUCCESS", STANDINS["bert"]: "SUCCESS",
    }
    assert (Path(step(first_run, "train-fasttext")["artifacts"]["model"]) / "model.bin").is_file()
    assert (Path(step(first_run, "train-baseline")["artifacts"]["model"]) / "model.pkl").is_file()
    selection = first_run["selection"]
    scores = {name: c["test_accuracy"] for name, c in selection["candidates"].items()}
    assert set(scores) == {"fasttext", "baseline"} and all(s > 0.45 for s in scores.values())
    # Each candidate's score is its own evaluation of the same test split.
    for name, evaluate in (("fasttext", "evaluate-model"), ("baseline", "evaluate-model-2")):
        evaluation = json.loads(Path(step(first_run, evaluate)["artifacts"]["evaluation"]).read_text())
        assert evaluation["kind"] == name and evaluation["accuracy"] == scores[name]
        assert evaluation["count"] == sum(first_run_counts(first_run)["test"].values())
    assert selection["champion"] == max(scores, key=scores.get)
    # By the version this run registered, not @champion: later tests move the alias (order-independent).
    info = resolve_ref(settings_of, first_run["registered"])
    assert first_run["registered"] == f"{MODEL}/1"
    assert info.kind == selection["champion"] and info.metrics["test_accuracy"] == scores[selection["champion"]]
    report = Path(step(first_run, "evaluate-model-2")["artifacts"]["report"]).read_text()
    assert report.startswith("# baseline: evaluation on the held-out test split")


def first_run_counts(summary):
    return json.loads((Path(step(summary, "prepare-data")["artifacts"]["prepared"]) / "manifest.json").read_text())["counts"]


def test_summary_json_is_written_and_listed(first_run, settings_of):
    run_dir = Path(step(first_run, "ingest-data")["artifacts"]["reviews"]).parents[1]
    saved = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert saved["run"] == first_run["run"] and saved["status"] == "SUCCESS"
    # The steps got explicit settings: this home's store and the resolved data file.
    assert Settings.from_env(json.loads(Path(saved["arguments"]["settings"]).read_text())) == \
        settings_of.replace(home=settings_of.home.resolve(), tracking_uri=settings_of.mlflow_uri)
    assert Path(saved["arguments"]["data_path"]).is_absolute() and saved["arguments"]["data_sha256"]
    assert saved["selection"]["champion"] == first_run["selection"]["champion"]
    assert {s["name"] for s in saved["steps"]} == {s["name"] for s in first_run["steps"]}
    assert all("seconds" in s and "status" in s for s in saved["steps"])
    listed = {r["run"]: r for r in list_runs(settings_of)}
    assert listed[first_run["run"]]["registered"] == f"{MODEL}/1"
    assert listed[first_run["run"]]["champion"] == first_run["selection"]["champion"]


def test_registered_version_carries_the_lineage_and_every_candidates_score(first_run, settings_of, sample_csv):
    info = resolve_ref(settings_of, first_run["registered"])
    assert info.status == "Approved" and info.tags["pipeline.run"] == first_run["run"]
    chain = lineage(settings_of, first_run["registered"])
    assert chain["dataset"]["path"] == str(sample_csv.resolve())
    assert [(s["step"], s["artifact"]) for s in chain["steps"]] == [
        ("ingest-data", "reviews"), ("pretraining-bias", "report"), ("feature-store", "features"),
        ("prepare-data", "prepared"), ("select-champion", "champion"), ("select-champion", "evaluation"),
        ("posttraining-bias", "report"), ("explain-model", "report")]
    assert all(first_run["run"] in s["uri"] for s in chain["steps"])
    selection = first_run["selection"]
    assert chain["champion"] == {"trainer": selection["champion"], "metric": "accuracy"}
    assert {name: c["test_accuracy"] for name, c in chain["candidates"].items()} == {
        name: c["test_accuracy"] for name, c in selection["candidates"].items()}
    assert chain["model"]["kind"] == selection["champion"]
    from mlflow.tracking import MlflowClient

    logged = {a.path for a in MlflowClient(settings_of.mlflow_uri).list_artifacts(info.run_id, "bias")}
    assert logged == {"bias/pretraining", "bias/posttraining"}


def test_identical_rerun_hits_the_cache_and_a_changed_parameter_reruns_only_its_branch(first_run, run, settings_of):
    again = run()
    assert set(statuses(again).values()) <= {"CACHED", "SKIPPED"}
    assert again["run"] != first_run["run"] and again["run"] in {r["run"] for r in list_runs(settings_of)}
    assert again["seconds"] < first_run["seconds"]
    assert again["registered"] == f"{MODEL}/1"  # replayed, no duplicate version
    first_model = step(first_run, "train-fasttext")["artifacts"]["model"]
    assert step(again, "train-fasttext")["artifacts"]["model"] == first_model

    changed = run(epochs=3)
    assert [statuses(changed)[s] for s in UPSTREAM + BASELINE] == ["CACHED"] * 6
    assert [statuses(changed)[s] for s in FASTTEXT + ["select-champion"]] == ["SUCCESS"] * 3
    # A later default run replays the first run's model, not the newer 3-epoch one.
    assert step(run(), "train-fasttext")["artifacts"]["model"] == first_model


# The fastText-only run is tests/integration/test_cli.py::test_pipeline_run_trainers_runs_and_lineage
# (`pipeline run --trainers fasttext`: its champion, candidates, registered kind and the steps it shows); this
# case was the same run through run_local, checking the mirror image of the statuses checked here.
@pytest.mark.parametrize("only", ["baseline"])
def test_trainers_parameter_selects_the_branches(first_run, run, settings_of, only):
    other = "baseline" if only == "fasttext" else "fasttext"
    summary = run(**{f"trainer_{other}": False}, explain_samples=2)
    done = statuses(summary)
    left_out = BASELINE if other == "baseline" else FASTTEXT
    assert all(done[s] == "SKIPPED" for s in left_out)
    # The stand-in ran, or came from KFP's cache (the reviewed-labels test runs --trainers baseline in this home).
    assert done[STANDINS[other]] in {"SUCCESS", "CACHED"} and done[STANDINS[only]] == "SKIPPED"
    assert set(summary["selection"]["candidates"]) == {only} and summary["selection"]["champion"] == only
    name, version = summary["registered"].split("/")
    assert resolve_ref(settings_of, f"{name}/{version}").kind == only


@pytest.fixture(scope="module")
def heavy_branches(first_run, run):
    """--trainers fasttext,baseline,automl,bert after the first run: both heavy branches in one run (select,
    bias, explain and register run once for the two)."""
    # Two SHAP samples: the champion's explanation is checked on the first run (an AutoGluon or BERT champion
    # pays a model call per perturbed review).
    return run(trainer_automl=True, automl_time_limit=20.0, automl_max_candidates=2, trainer_bert=True,
               bert_model="tiny", bert_max_steps=15, bert_max_seq_length=48, explain_samples=2)


def test_automl_branch_competes_with_the_others(heavy_branches, settings_of):
    """AutoGluon's best candidate is one more candidate; the winner is registered whatever its kind, with
    every candidate's score in its lineage."""
    summary = heavy_branches
    done = statuses(summary)
    assert [done[s] for s in AUTOML] == ["SUCCESS", "SUCCESS"]
    assert done[STANDINS["automl"]] == "SKIPPED"
    assert all(done[s] == "CACHED" for s in UPSTREAM + FASTTEXT + BASELINE)  # only the new branches and below ran
    selection = summary["selection"]
    assert set(selection["candidates"]) == {"fasttext", "baseline", "automl", "bert"}
    assert selection["candidates"]["automl"]["kind"] == "autogluon"
    scores = {name: c["score"] for name, c in selection["candidates"].items()}
    assert selection["champion"] == max(scores, key=scores.get)
    chain = lineage(settings_of, summary["registered"])
    assert {name: c["score"] for name, c in chain["candidates"].items()} == scores
    assert chain["model"]["kind"] == selection["candidates"][selection["champion"]]["kind"]
    model = step(summary, "train-automl")["artifacts"]["model"]
    card = json.loads((Path(model) / "sagestack-model.json").read_text())
    assert card["kind"] == "autogluon" and card["params"]["time_limit"] == 20.0


def test_bert_branch_trains_watched_and_competes(heavy_branches):
    """--trainers ...,bert with the tiny BERT: the branch trains (the local runner accepts the GPU
    request and runs it on the CPU), its model is evaluated and competes; its Debugger and Profiler
    reports are step artifacts."""
    summary = heavy_branches
    done = statuses(summary)
    assert [done[s] for s in BERT] == ["SUCCESS", "SUCCESS"] and done[STANDINS["bert"]] == "SKIPPED"
    assert set(summary["selection"]["candidates"]) >= {"fasttext", "baseline", "bert"}
    assert summary["selection"]["candidates"]["bert"]["kind"] == "bert"
    artifacts = step(summary, "train-bert")["artifacts"]
    card = json.loads((Path(artifacts["model"]) / "sagestack-model.json").read_text())
    assert card["kind"] == "bert" and card["metrics"]["steps"] == 15
    assert "Debugger" in Path(artifacts["debugger_report"]).read_text()
    assert "LowGPUUtilization" in Path(artifacts["profiler_report"]).read_text()


def test_accuracy_below_threshold_records_a_rejection(first_run, run, settings_of):
    before = list_models(settings_of)
    rejected = run(min_accuracy=0.999, auto_approve=False)
    assert statuses(rejected)["record-rejection"] == "SUCCESS"
    assert statuses(rejected)["register-model"] == "SKIPPED"
    assert rejected["registered"] is None and rejected["rejection"].endswith("< min_accuracy 0.999")
    assert list_models(settings_of) == before


def test_a_failing_step_fails_the_run_with_its_error_and_a_failed_summary(tmp_path):
    missing = tmp_path / "missing.csv"
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    with pytest.raises(PipelineFailed) as info:
        run_local({"data_path": str(missing)}, settings=settings)
    assert str(info.value).startswith(
        f"pipeline sagestack-sentiment step 'ingest-data' failed: DataError: data file not found: {missing}; "
        "pass an existing file or a dataset name from `sagestack data list` (reviews_balanced.csv, reviews_clarify_lab.csv); log: "
    )
    assert list_models(settings) == []
    [failed] = list_runs(settings)
    assert failed["status"] == "FAILED" and "ingest-data" in failed["error"] and failed["registered"] is None


def test_a_failed_bias_gate_stops_the_pipeline_before_training(tmp_path, sample_csv):
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    with pytest.raises(PipelineFailed) as info:
        run_local({"data_path": str(sample_csv), "bias_fail_on": "CI>0.5"}, settings=settings)
    message = str(info.value)
    assert message.startswith("pipeline sagestack-sentiment step 'pretraining-bias' failed: BiasGateFailed: "
                              "bias check failed: CI>0.5: CI = ")
    runs = tmp_path / "home" / "pipelines" / "runs"
    reports = list(runs.glob("*/pretraining-bias/report"))
    assert len(reports) == 1 and "Pre-training bias" in reports[0].read_text()
    assert not list(runs.glob("*/feature-store")) and not list(runs.glob("*/train-*"))


def test_compiled_yaml_pins_the_image_and_exposes_parameters(tmp_path):
    from sagestack.text.params import SAGESTACK_DEFAULTS

    path = compile_pipeline(tmp_path / "pipeline.yaml")
    spec, platform = yaml.safe_load_all(path.read_text())  # the pipeline, then its Kubernetes settings
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"data_path", "min_accuracy", "auto_approve", "epochs", "learning_rate", "settings", "trainer_fasttext",
            "trainer_baseline", "select_metric", "facet", "bias_fail_on", "explain_samples"} <= set(params)
    assert params["min_accuracy"]["defaultValue"] == 0.55
    assert params["model_name"]["defaultValue"] == MODEL
    assert params["epochs"]["defaultValue"] == SAGESTACK_DEFAULTS["epochs"]  # declared once, in sagestack.text
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    # The BERT step runs the GPU build of the same image (Dockerfile --target gpu).
    assert images == {f"ghcr.io/sagestack/sagestack:{__version__}", f"ghcr.io/sagestack/sagestack:{__version__}-gpu"}
    commands = json.dumps(spec["deploymentSpec"]["executors"])
    assert "pip install" not in commands  # the image brings everything; nothing installs at run time
    assert set(pipeline_tasks(sentiment_pipeline)) == set(
        UPSTREAM + FASTTEXT + BASELINE + AUTOML + BERT + DOWNSTREAM + list(STANDINS.values())
        + ["register-model", "record-rejection"])
    # Cluster mode: the BERT step asks for one GPU.
    [bert_task] = [t for t in _all_tasks(spec) if t[0] == "train-bert"]
    bert_executor = spec["deploymentSpec"]["executors"][bert_task[1]["componentRef"]["name"].replace("comp-", "exec-")]
    assert bert_executor["container"]["image"].endswith("-gpu")
    accelerator = bert_executor["container"]["resources"]["accelerator"]
    assert accelerator.get("resourceType", accelerator.get("type")) == "nvidia.com/gpu"
    assert str(accelerator.get("resourceCount", accelerator.get("count"))) == "1"
    # Every step asks for CPU and memory and is capped (STEP_RESOURCES); the heavy trainers most.
    for name, executor in spec["deploymentSpec"]["executors"].items():
        resources = executor["container"].get("resources", {})
        assert {"cpuRequest", "memoryRequest", "cpuLimit", "memoryLimit"} <= set(resources), name
    assert bert_executor["container"]["resources"]["memoryLimit"] == 16  # GB, as KFP writes it
    # On a cluster every step reads the deployment's ConfigMap, Secrets and home volume (k8s/), as a
    # non-root user: the settings a laptop's home gives the local runner.
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"])
    for name, config in executors.items():
        assert [c["configMapName"] for c in config["configMapAsEnv"]] == ["sagestack-config"], name
        assert {k["envVar"] for s in config["secretAsEnv"] for k in s["keyToEnv"]} == {
            "SAGESTACK_ONLINE_STORE", "SAGESTACK_FEAST_REGISTRY", "SAGESTACK_REVIEW_DB"}, name
        # Human review's Secret is optional: a cluster without human review runs the pipeline all the same.
        assert {s["secretName"]: s["optional"] for s in config["secretAsEnv"]} == {
            "sagestack-online-store": False, "sagestack-feast-registry": False, "sagestack-review-db": True}, name
        assert config["pvcMount"][0]["mountPath"] == "/var/lib/sagestack", name
        assert config["securityContext"]["runAsNonRoot"] is True, name


def _all_tasks(spec: dict):
    """Every (name, task) of the compiled pipeline, nested condition groups included."""
    found = []

    def walk(dag: dict) -> None:
        for name, task in dag.get("tasks", {}).items():
            found.append((name, task))
    walk(spec["root"]["dag"])
    for component in spec["components"].values():
        walk(component.get("dag", {}))
    return found


def test_lineage_steps_and_trainers_match_the_compiled_pipeline():
    """The lineage list and the trainer list are declared once in the workflow; each must exist in the DAG."""
    from sagestack.workflows.sentiment import LINEAGE_STEPS, TRAINERS

    from sagestack.pipelines.runner import pipeline_task_components

    spec = sentiment_pipeline.pipeline_spec
    tasks = {name: set(c.output_definitions.artifacts) for name, c in pipeline_task_components(sentiment_pipeline).items()}
    for step, artifact in LINEAGE_STEPS.values():
        assert artifact in tasks[step], (step, artifact)
    assert set(LINEAGE_STEPS) <= set(spec.components["comp-register-model"].input_definitions.artifacts)
    params = set(spec.root.input_definitions.parameters)
    assert {p.removeprefix("trainer_") for p in params if p.startswith("trainer_")} == set(TRAINERS)
    select_inputs = set(spec.components["comp-select-champion"].input_definitions.artifacts)
    assert select_inputs == {f"{t}_{kind}" for t in TRAINERS for kind in ("model", "evaluation")}


def test_reviewed_labels_train_the_next_model_and_show_in_its_lineage(first_run, settings_of, sample_csv, home):
    """`pipeline run --include-reviewed`: two reviews relabelled by people and one they added reach the
    training splits (through label versions in the feature store) and the new version's lineage."""
    from conftest import run_sagestack
    from mlflow.tracking import MlflowClient
    from sagestack.features import read_features
    from sagestack.review import LoopInput, review_store

    train = pd.read_csv(Path(step(first_run, "prepare-data")["artifacts"]["prepared"]) / "train.csv")
    picked = train.head(2)
    relabel = {text: (int(s) + 2) % 3 - 1 for text, s in zip(picked["review_body"], picked["sentiment"])}
    added = "A review nobody had written before: lovely linen, odd buttons."
    store = review_store(settings_of)
    store.create_flow("reviews-sentiment")
    asked = {"name": MODEL, "version": "1", "kind": "fasttext"}
    loops = store.start_loops("reviews-sentiment", [LoopInput(review=t, model=asked) for t in [*relabel, added]])
    for loop, label in zip(loops, [*relabel.values(), 0]):
        store.answer(loop, "ann", str(label))

    args = ["pipeline", "run", "--data", str(sample_csv), "--trainers", "baseline", "--min-accuracy", "0",
            "--include-reviewed", "--json"]
    ran = run_sagestack(home, *args)
    assert ran.returncode == 0, ran.stderr[-3000:]
    summary = json.loads(ran.stdout)
    assert statuses(summary)["ingest-data"] == "SUCCESS"
    prepared = Path(step(summary, "prepare-data")["artifacts"]["prepared"])
    splits = pd.concat([pd.read_csv(prepared / f"{s}.csv") for s in ("train", "validation", "test")])
    by_text = dict(zip(splits["review_body"], splits["sentiment"]))
    assert {t: by_text[t] for t in relabel} == relabel and by_text[added] == 0
    table = read_features(settings_of)
    versions = table[table["review_id"].isin(picked["review_id"])].groupby("review_id")["sentiment"].apply(list)
    assert {table.loc[table["review_id"] == i, "review_body"].iloc[0]: labels for i, labels in versions.items()} == {
        text: [int(s), relabel[text]] for text, s in zip(picked["review_body"], picked["sentiment"])}  # old, then new

    chain = lineage(settings_of, summary["registered"])
    assert {k: chain["reviewed"][k] for k in ("loops", "relabelled", "added", "reviewers", "asked_by")} == {
        "loops": "3", "relabelled": "2", "added": "1", "reviewers": "ann", "asked_by": f"{MODEL}/1"}
    shown = run_sagestack(home, "lineage", summary["registered"])
    assert "reviewed  3 human-reviewed labels (2 relabelled, 0 confirmed, 1 added) by ann" in shown.stdout
    info = resolve_ref(settings_of, summary["registered"])
    [snapshot] = MlflowClient(settings_of.mlflow_uri).list_artifacts(info.run_id, "reviewed")
    assert snapshot.path == f"reviewed/{chain['reviewed']['sha256']}.csv"

    again = json.loads(run_sagestack(home, *args).stdout)  # the same reviewed labels: ingest comes from the cache
    assert statuses(again)["ingest-data"] == "CACHED"
