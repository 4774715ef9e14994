"""The installed `sagestack` command, run as a user would: exit codes, one-line errors, --json.

The commands that do the work (data prepare, train, pipeline run, demo) run as processes of their own;
the quick reads and refusals that follow them run through the same entry point in this process
(``here``), which saves a process start (seconds: Python, typer and the command's imports) each. A
pipeline run that gets as far as the runner stays a process of its own (KFP's local runner keeps state in
the process that runs it).
"""

import json
import subprocess

import pytest

HEADER = "sentiment,review_body,product_category\n"
# What every trainer's result.json holds (train fasttext, train baseline).
RESULT_KEYS = ("out_dir", "model_path", "kind", "params", "train_seconds", "model_bytes", "model_size_mb",
               "validation_accuracy", "validation")


@pytest.fixture
def here(sagestack_main):
    """``sagestack ARGS`` through the console script's entry point in this process, in the home that ``cli``
    uses; returns what ``cli`` returns (a CompletedProcess with ``.json``)."""

    def run(*args: str, check: bool = False):
        code, out, err = sagestack_main(*args)
        proc = subprocess.CompletedProcess(["sagestack", *args], code, out, err)
        proc.json = json.loads(out) if "--json" in args and code == 0 and out.strip() else None
        if check and code != 0:
            raise AssertionError(f"sagestack {' '.join(args)} failed ({code}):\n{err}")
        return proc

    return run


def assert_user_error(proc, message):
    """Exit 2, exactly one `error: ...` line on stderr (after any progress lines), no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == f"error: {message}"
    assert [line for line in lines if not line.startswith("... ")] == [lines[-1]]
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("content, message", [
    (None, "data file not found: {p}; pass an existing file or a dataset name from `sagestack data list` "
            "(reviews_balanced.csv, reviews_clarify_lab.csv)"),
    (b"", "{p} is empty; it needs a header row and at least one review"),
    (b"a,b\n1,2\n", "{p}: missing column(s) sentiment, review_body, product_category; expected the course layout "
                     "(sentiment, review_body, product_category) or the raw layout (Rating, Review Text, Class Name)"),
    (HEADER.encode() + b"1,caf\xe9,Dresses\n", "{p} is not valid UTF-8 (byte 0xe9 on line 2); re-save it as UTF-8"),
    (HEADER.encode() + b"7,ok,Dresses\n", "{p}: column 'sentiment' has values outside [-1, 0, 1] ('7') in 1 row(s) "
                                          "(data row 1); fix those rows or pass the label set with --labels"),
    (HEADER.encode() + b"1,,Dresses\n", "{p}: column 'review_body' is empty in 1 row(s) (data row 1); fill in or drop those rows"),
    (HEADER.encode() + b'1,"open quote,Dresses\n', "{p} is not a well-formed CSV (Error tokenizing data. C error: EOF "
                                                   "inside string starting at row 1); check its quoting"),
], ids=["missing", "empty", "columns", "non-utf8", "labels", "nan-text", "quoting"])
def test_data_prepare_bad_input(cli, tmp_path, content, message):
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_bytes(content)
    proc = cli("data", "prepare", "--input", str(path), "--out", str(tmp_path / "out"))
    assert_user_error(proc, message.format(p=path))
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_json_error_document(cli, tmp_path):
    proc = cli("data", "prepare", "--input", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"), "--json")
    assert proc.returncode == 2
    assert proc.json == {"ok": False, "error": f"data file not found: {tmp_path / 'none.csv'}; pass an existing file or a "
                                              "dataset name from `sagestack data list` (reviews_balanced.csv, reviews_clarify_lab.csv)"}


def test_prepare_then_train_then_registry_commands(cli, here, tmp_path, sample_csv, sagestack_main):
    prepared = cli("data", "prepare", "--data", str(sample_csv), "--out", str(tmp_path / "data"), "--json", check=True).json
    assert prepared["counts"]["train"] == {"-1": 180, "0": 180, "1": 180}

    trained = cli(
        "train", "fasttext", "--train", prepared["files"]["train"]["fasttext"],
        "--validation", prepared["files"]["validation"]["fasttext"], "--out", str(tmp_path / "model"),
        "--epochs", "10", "--learning-rate", "1.0", "--vector-dim", "20", "--word-ngrams", "1", "--min-count", "1",
        "--threads", "1", "--model-name", "cli-model", "--json", check=True,
    ).json
    # The reported accuracy is the saved model's own on the validation file, and the model learned:
    # on these balanced files chance is 1/3 (a model that answers one label for everything gets exactly
    # 1/3); measured here 16/30 on validation and 35/60 on validation + test.
    import fasttext

    model = fasttext.load_model(trained["model_path"])

    def correct(path):
        with open(path, encoding="utf-8") as lines:
            rows = [line.rstrip("\n").split(" ", 1) for line in lines if line.strip()]
        predicted, _ = model.predict([text for _, text in rows])
        return [top[0] == label for (label, _), top in zip(rows, predicted)]

    on_validation = correct(prepared["files"]["validation"]["fasttext"])
    assert len(on_validation) == 30
    assert trained["validation_accuracy"] == sum(on_validation) / len(on_validation) >= 0.4
    held_out = on_validation + correct(prepared["files"]["test"]["fasttext"])
    assert sum(held_out) / len(held_out) >= 0.5
    assert trained["params"]["vector_dim"] == 20 and trained["model_path"].endswith("model.bin")
    saved = __import__("json").loads((tmp_path / "model" / "result.json").read_text())
    assert set(RESULT_KEYS) <= set(saved) and saved["kind"] == "fasttext"
    assert trained["registered"]["approval_status"] == "PendingManualApproval"
    assert trained["registered"]["aliases"] == ["challenger"]

    listed = here("models", "list", "--json", check=True).json
    assert listed["models"][0]["versions"] == [{"version": "1", "kind": "fasttext", "approval_status": "PendingManualApproval"}]
    refused = here("models", "promote", "cli-model/1")
    assert_user_error(refused, "cli-model version 1 is PendingManualApproval; approve it first with "
                               "`sagestack models approve cli-model/1`")
    assert here("models", "approve", "cli-model/1", "--json", check=True).json["approval_status"] == "Approved"
    promoted = here("models", "promote", "cli-model/1", "--alias", "champion", "--json", check=True).json
    assert promoted["aliases"] == ["champion"]  # moved off @challenger
    shown = here("models", "show", "cli-model@champion", "--json", check=True).json
    assert shown["version"] == "1" and shown["metrics"]["validation_accuracy"] == trained["validation_accuracy"]
    assert_user_error(here("models", "show", "nope"), "no registered model named 'nope'; see `sagestack models list`")
    code, out, err = sagestack_main("models", "approve", "cli-model/1", "--pending")  # same home, in this process
    assert (code, out.strip(), err) == (0, "cli-model version 1 is now PendingManualApproval", "")


def test_train_baseline_registers_a_baseline_version(cli, tmp_path, sample_split):
    out = cli("train", "baseline", "--train", str(sample_split / "train.csv"), "--validation",
              str(sample_split / "validation.csv"), "--out", str(tmp_path / "baseline"), "--approve", "--json", check=True).json
    assert out["kind"] == "baseline" and out["registered"]["name"] == "reviews-sentiment"
    assert out["registered"]["kind"] == "baseline" and out["registered"]["aliases"] == ["champion"]
    assert out["registered"]["metrics"]["validation_accuracy"] == out["validation_accuracy"] > 0.4
    assert (tmp_path / "baseline" / "model.pkl").is_file()
    # Every trainer writes result.json with the same keys (train fasttext's), and --json prints them.
    result = __import__("json").loads((tmp_path / "baseline" / "result.json").read_text())
    assert set(RESULT_KEYS) <= set(result) and result["kind"] == "baseline"
    assert {k: out[k] for k in RESULT_KEYS} == {k: result[k] for k in RESULT_KEYS}
    assert_user_error(cli("train", "baseline", "--train", str(sample_split / "train.csv"), "--out", str(tmp_path / "b2"),
                          "--c", "0"), "invalid baseline hyperparameter 'c': Input should be greater than 0")
    assert not (tmp_path / "b2").exists()


def test_data_resolve_names_its_source(cli):
    out = cli("data", "resolve", "--name", "reviews_clarify_lab.csv", "--json", check=True).json
    assert out["source"] == "embedded"
    assert __import__("pandas").read_csv(out["path"]).shape[0] == 486


def test_word2vec_run_is_logged_not_registered(cli, tmp_path, blazingtext_split):
    out = cli("train", "fasttext", "--train", str(blazingtext_split[1]), "--out", str(tmp_path / "w2v"),
              "--mode", "cbow", "--epochs", "1", "--vector-dim", "8", "--json", check=True).json
    assert out["registered"] is None and out["run_id"] and out["vectors_path"].endswith("vectors.vec")
    assert cli("models", "list", "--json", check=True).json == {"models": []}


def test_train_bad_arguments(cli, tmp_path):
    missing = tmp_path / "train.txt"
    assert_user_error(cli("train", "fasttext", "--train", str(missing), "--out", str(tmp_path / "m")),
                      f"training file not found: {missing}; pass a fastText file (see `sagestack data prepare`)")
    missing.write_text("__label__1 good\n", encoding="utf-8")
    assert_user_error(cli("train", "fasttext", "--train", str(missing), "--out", str(tmp_path / "m"), "--epochs", "0"),
                      "invalid hyperparameter 'epochs': Input should be greater than or equal to 1")
    assert not (tmp_path / "m").exists()


def test_help_everywhere(cli):
    for args in ([], ["data"], ["data", "prepare"], ["train", "fasttext"], ["train", "baseline"], ["models"],
                 ["models", "promote"], ["pipeline", "run"], ["pipeline", "runs"], ["demo"], ["console"]):
        proc = cli(*args, "--help")
        assert proc.returncode == 0 and "Usage: sagestack" in proc.stdout, args


def test_demo_runs_the_pipeline_and_serves_one_prediction(cli, tmp_path, sagestack_main):
    """`sagestack demo` (the README's main job) on the real reviews_balanced.csv, in its own home."""
    result = cli("demo", "--json", check=True).json
    steps = {s["name"]: s["status"] for s in result["pipeline"]["steps"]}
    assert steps["register-model"] == "SUCCESS" and steps["record-rejection"] == "SKIPPED"
    assert steps["train-fasttext"] == steps["train-baseline"] == "SUCCESS"
    assert result["pipeline"]["registered"] == "reviews-sentiment/1"
    selection = result["pipeline"]["selection"]
    assert set(selection["candidates"]) == {"fasttext", "baseline"}
    assert all(c["test_accuracy"] >= 0.55 for c in selection["candidates"].values())
    assert result["response"]["model"]["version"] == "1"
    assert result["response"]["model"]["kind"] == selection["champion"]
    assert result["response"]["predictions"][0]["label"] == 1  # "I love this dress ..."
    code, out, err = sagestack_main("lineage", "reviews-sentiment/1", "--json")  # the demo's endpoint stopped with it
    assert code == 0 and json.loads(out)["endpoint"] is None, err
    assert json.loads(out)["last_endpoint"]["url"] == result["endpoint"]
    assert (tmp_path / "home" / "mlflow.db").is_file()
    other = cli("models", "list", "--json", env={"SAGESTACK_HOME": str(tmp_path / "other-home")}, check=True).json
    assert other == {"models": []}  # homes never see each other


def test_serve_rejects_an_unknown_model(cli):
    assert_user_error(cli("serve", "--model", "nope@champion"), "no registered model named 'nope'; see `sagestack models list`")


def test_pipeline_run_trainers_runs_and_lineage(cli, here, tmp_path, sample_csv):
    run = cli("pipeline", "run", "--data", str(sample_csv), "--min-accuracy", "0", "--auto-approve", "--json", check=True).json
    assert run["status"] == "SUCCESS" and run["registered"] == "reviews-sentiment/1"
    champion = run["selection"]["champion"]
    human = cli("pipeline", "run", "--data", str(sample_csv), "--min-accuracy", "0", "--auto-approve", check=True)
    assert "train-fasttext       CACHED" in human.stdout and "registered: reviews-sentiment/1" in human.stdout
    assert f"champion: {champion}" in human.stdout
    # People read the trainers that ran and the steps that did work, not the branches' plumbing.
    assert "trainers: fasttext, baseline" in human.stdout
    assert "skip-trainer" not in human.stdout and "train-automl" not in human.stdout

    chain = here("lineage", "reviews-sentiment/1", "--json", check=True).json
    assert chain["model"]["version"] == "1" and chain["dataset"]["path"] == str(sample_csv.resolve())
    assert chain["model"]["kind"] == champion and set(chain["candidates"]) == {"fasttext", "baseline"}
    text = here("lineage", "reviews-sentiment/1", check=True).stdout
    assert text.splitlines()[0].startswith(f"dataset   {sample_csv.resolve()}") and "endpoint  not served yet" in text
    assert "<- champion" in [line for line in text.splitlines() if line.startswith(f"candidate {champion}")][0]

    only = cli("pipeline", "run", "--data", str(sample_csv), "--min-accuracy", "0", "--auto-approve",
               "--trainers", "fasttext", "--json", check=True).json
    assert only["selection"]["champion"] == "fasttext" and set(only["selection"]["candidates"]) == {"fasttext"}
    assert here("models", "show", only["registered"], "--json", check=True).json["kind"] == "fasttext"
    runs = here("pipeline", "runs", "--json", check=True).json["runs"]
    assert len(runs) == 3 and runs[0]["run"] == only["run"] and runs[-1]["run"] == run["run"]  # newest first
    assert runs[0]["champion"] == "fasttext" and runs[-1]["registered"] == "reviews-sentiment/1"
    assert only["trainers"] == ["fasttext"] and runs[0]["trainers"] == ["fasttext"]
    assert runs[-1]["trainers"] == ["fasttext", "baseline"]
    assert {"skip-trainer-2", "evaluate-model-2", "train-automl"} <= {s["name"] for s in only["steps"]}  # all kept
    shown = {s["name"] for s in runs[0]["steps"]}
    assert "train-fasttext" in shown and "evaluate-model" in shown and "select-champion" in shown
    assert not shown & {"skip-trainer", "skip-trainer-2", "skip-trainer-4", "evaluate-model-2", "train-automl", "train-baseline"}
    listed = here("pipeline", "runs", check=True).stdout.splitlines()
    assert "trainers fasttext " in listed[0] and "trainers fasttext,baseline " in listed[-1]
    assert_user_error(here("pipeline", "run", "--trainers", "fasttext,roberta"),
                      "unknown trainer(s) roberta; choose from fasttext, baseline, automl, bert")
    assert_user_error(here("pipeline", "run", "--trainers", "bert", "--bert-model", str(tmp_path)),
                      f"--bert-model {tmp_path} holds no Hugging Face model (no config.json); pass a local "
                      "checkpoint folder, 'tiny', or nothing for the shipped MiniLM BERT")
    assert_user_error(here("pipeline", "run", "--trainers", "bert", "--bert-train-batch-size", "0"),
                      "--bert-train-batch-size must be 1 or more, got 0")
    assert_user_error(here("pipeline", "run", "--baseline-c", "0"),
                      "invalid baseline hyperparameter 'c': Input should be greater than 0")

    out = here("pipeline", "compile", "--out", str(tmp_path / "p.yaml"), "--json", check=True).json
    assert out == {"path": str(tmp_path / "p.yaml")} and "sagestack-sentiment" in (tmp_path / "p.yaml").read_text()


def test_pipeline_failure_and_submit_argument_errors(cli, tmp_path):
    failed = cli("pipeline", "run", "--data", str(tmp_path / "none.csv"))
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith(
        f"error: pipeline sagestack-sentiment step 'ingest-data' failed: DataError: data file not found: {tmp_path / 'none.csv'}")
    assert_user_error(
        cli("pipeline", "submit", "--kfp-url", "ml-pipeline:8888", "--data", "/d.csv", "--cluster-tracking-uri", "http://mlflow"),
        "--kfp-url must be the http(s) URL of a Kubeflow Pipelines API, got 'ml-pipeline:8888'")
    import socket

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The old spellings (--host, --tracking-uri) still parse, for one release.
    refused = cli("pipeline", "submit", "--host", f"http://127.0.0.1:{port}", "--data", "/d.csv", "--tracking-uri", "http://m")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(f"error: could not submit to http://127.0.0.1:{port} (")
    missing = cli("pipeline", "submit", "--data", "/d.csv", "--cluster-tracking-uri", "http://m")
    assert missing.returncode == 2 and "Missing option '--kfp-url'" in missing.stderr


def test_shift_traffic_refuses_in_one_line_and_writes_nothing(cli, tmp_path):
    """A split that sends traffic to a variant with no approved version, a bad split, a route file in a missing
    folder: one line each, and no manifest written (tests/deploy/test_shift_traffic.py shifts for real)."""
    route = tmp_path / "httproute.yaml"
    assert_user_error(cli("deploy", "shift-traffic", "--a", "0", "--b", "100", "--route-file", str(route)),
                      "variant B has no version to take 100 % of the traffic: reviews-sentiment@challenger does not "
                      f"exist (nothing is registered in sqlite:///{(tmp_path / 'home').resolve() / 'mlflow.db'}); "
                      "register and approve a version first (`sagestack pipeline run`)")
    assert_user_error(cli("deploy", "shift-traffic", "--a", "30", "--b", "80", "--route-file", str(route)),
                      "--a and --b must add up to 100, got 30 + 80 = 110")
    assert not route.exists()
    assert_user_error(cli("deploy", "shift-traffic", "--a", "50", "--b", "50", "--route-file",
                          str(tmp_path / "none" / "route.yaml")),
                      f"{tmp_path / 'none'} is not a folder; pass the HTTPRoute file of your k8s/ checkout")
