"""Course 1's four labs in one notebook (tests/aws/notebooks/course1_session.ipynb: the session and data, Athena,
a Clarify pre-training bias job, an Autopilot job with 3 candidates deployed and invoked, a BlazingText training
job deployed and invoked), run cell by cell with nbclient through the installed kernel "Python (sagestack AWS)",
from a runner whose own environment holds nothing of AWS. This is where those labs run end to end in the suite:
the tests read the notebook's outputs, then a client script reads back what the jobs left, as a SageMaker user
would (clients/course1_followup.py), and probes and deletes the two endpoints."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import time

import pandas as pd
import pytest
from serve_aws_fixtures import CLIENTS, REPO, SAGESTACK, aws, client_bin  # noqa: F401

from sagestack.aws.identity import DEFAULT_ACCOUNT, ROLE_NAME

NOTEBOOK = REPO / "tests" / "aws" / "notebooks" / "course1_session.ipynb"
LABELS = {"-1", "0", "1"}


class Ran:
    """The executed notebook: ``text(snippet)`` is the output of the one code cell whose source holds ``snippet``."""

    def __init__(self, cells: list[dict]):
        self.cells = cells

    def text(self, snippet: str) -> str:
        (cell,) = [cell for cell in self.cells if snippet in cell["source"]]
        return cell["text"]


def write_autopilot_csv(sample_csv, path):
    """The course's Autopilot input at ``path``: sentiment and review_body of 100 reviews per sentiment of the
    sample (a tiny AutoML job for a test's time)."""
    with open(sample_csv, newline="", encoding="utf-8") as source, open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["sentiment", "review_body"])
        rows = list(csv.DictReader(source))
        for sentiment in ("-1", "0", "1"):
            writer.writerows([[row["sentiment"], row["review_body"]] for row in rows if row["sentiment"] == sentiment][:100])
    return path


@pytest.fixture(scope="module")
def course1(aws, client_bin, shared_data, sample_csv, blazingtext_split, tmp_path_factory):
    """The notebook run once through the kernel (``.kernel``, ``.notebook``), then the follow-up script's readings
    (``.clarify``, ``.autopilot``, ``.blazingtext``)."""
    folder = tmp_path_factory.mktemp("course1")
    # What the course's cells read from the working directory (the lab downloads them with `aws s3 cp`).
    shutil.copy(shared_data / "reviews_clarify_lab.csv", folder / "womens_clothing_ecommerce_reviews_transformed.csv")
    write_autopilot_csv(sample_csv, folder / "womens_clothing_ecommerce_reviews_balanced_for_autopilot.csv")
    (folder / "data").mkdir()
    for source, name, lines in ((blazingtext_split[0], "train.txt", 600), (blazingtext_split[1], "validation.txt", 100)):
        (folder / "data" / name).write_text("".join(source.read_text().splitlines(keepends=True)[:lines]))
    prefix = folder / "jupyter"
    installed = subprocess.run([str(SAGESTACK), "compat", "kernel", "install", "--python", str(client_bin / "python"),
                                "--port", str(aws.port), "--prefix", str(prefix), "--home", str(aws.home), "--json"],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    kernel = json.loads(installed.stdout)
    # Nothing of AWS in the notebook runner's own environment: the kernel brings it all.
    environment = {k: v for k, v in aws.env.items() if not k.startswith(("AWS_", "PROTOCOL_BUFFERS", "PYTHONPATH"))}
    environment["JUPYTER_PATH"] = str(prefix / "share" / "jupyter")
    ran = subprocess.run([str(client_bin / "python"), str(CLIENTS / "run_notebook.py"), str(NOTEBOOK), kernel["name"],
                          str(folder)], capture_output=True, text=True, env=environment, timeout=600)
    assert ran.returncode == 0, ran.stderr
    notebook = Ran(json.loads(ran.stdout.strip().splitlines()[-1])["cells"])
    for cell in notebook.cells:  # shown with the output of a failing test: where the notebook's time went
        print(f"{cell['seconds'] or 0:6.1f} s  {cell['source'].splitlines()[0][:80]}")
    assert [cell["errors"] for cell in notebook.cells] == [[]] * len(notebook.cells)

    def printed(snippet: str, pattern: str) -> str:
        return re.search(pattern, notebook.text(snippet), re.MULTILINE).group(1)

    names = [printed("run_unbalanced_bias_processing_job_name = ", r"^(\S+)$"),
             printed("automl.fit(", r"^(\S+)$"),
             printed("autopilot_model = automl.deploy(", r"Endpoint name:\s+(\S+)"),
             printed("estimator.fit(", r"Training Job Name:\s+(\S+)"),
             printed("text_classifier = estimator.deploy(", r"Endpoint name:\s+(\S+)")]
    started = time.monotonic()
    followup = aws.run("course1_followup.py", *names)
    print(f"{time.monotonic() - started:6.1f} s  clients/course1_followup.py")
    return type("Course1", (), {"kernel": kernel, "notebook": notebook, **followup})


def test_a_notebook_runs_unchanged_through_the_installed_kernel(course1):
    assert course1.kernel["display_name"] == "Python (sagestack AWS)"
    text = course1.notebook.text
    assert f"S3 Bucket: sagemaker-us-east-1-{DEFAULT_ACCOUNT}" in text("sess = sagemaker.Session()")
    assert f"Role: arn:aws:iam::{DEFAULT_ACCOUNT}:role/{ROLE_NAME}" in text("sess = sagemaker.Session()")
    assert text("df.to_csv('./reviews.csv'").strip() == f"s3://sagemaker-us-east-1-{DEFAULT_ACCOUNT}/data/reviews.csv"
    assert "data/reviews.csv" in text("list_objects_v2(Bucket=bucket, Prefix='data/')")
    # Week 1's Glue and Athena cells (awswrangler): the query ran on the three rows uploaded above.
    assert "Database name: dsoaws" in text("wr.catalog.create_database")
    assert "['sentiment', 'review_body', 'product_category']" in text("wr.catalog.create_csv_table")
    assert "product_category,count_sentiment\nDresses,2\nTops,1\n" in text("wr.athena.read_sql_query")


def test_clarify_pre_training_bias_job_matches_sagestack_bias(course1, shared_data, tmp_path):
    text = course1.notebook.text
    assert text("run_unbalanced_bias_processing_job_name = ").splitlines()[1] == "InProgress"  # wait=False
    # The SDK's wait() prints "." while DescribeProcessingJob says InProgress, "!" once it is done.
    assert re.fullmatch(r"\.*!Completed", text("running_processor.wait(logs=False)").strip())
    printed = text("analysis = json.loads(").splitlines()
    requested = {"CI", "DPL", "KL", "JS", "LP", "TVD", "KS"}
    assert len(printed) == 18 and all(set(re.findall(r"'(\w+)': ", line)) == requested for line in printed), printed
    seen = course1.clarify
    assert seen["status"] == "Completed", seen["failure"]
    assert "sagemaker-clarify-processing" in seen["image"]
    assert any("sagestack bias --data" in line for line in seen["log"]) and "completed" in seen["log"][-1]
    prefix = "bias/generated_bias_report/"
    assert {prefix + name for name in ("analysis.json", "report.html", "report.ipynb", "analysis_config.json")} <= set(
        seen["keys"])
    lab = shared_data / "reviews_clarify_lab.csv"
    direct = subprocess.run([str(SAGESTACK), "bias", "--data", str(lab), "--label", "sentiment", "--positive", "1",
                             "--facet", "product_category", "--out", str(tmp_path / "direct"), "--json",
                             "--home", str(tmp_path / "home")], capture_output=True, text=True, check=True)
    expected = json.loads((tmp_path / "direct" / "analysis.json").read_text())
    got = seen["analysis"]["pre_training_bias_metrics"]["facets"]["product_category"]
    want = expected["pre_training_bias_metrics"]["facets"]["product_category"]
    assert len(got) == len(want) == 18 and direct.returncode == 0
    for mine, theirs in zip(got, want):
        assert mine["value_or_threshold"] == theirs["value_or_threshold"]
        assert mine["metrics"] == [m for m in theirs["metrics"] if m["name"] in requested]


def _time_cut(autopilot: dict) -> bool:
    """Whether the AutoML job's log says its time limit cut a candidate."""
    return any(line.startswith("sagestack serve-aws: MaxAutoMLJobRuntimeReached: the time limit cut candidate ")
               for line in autopilot["log"])


def test_the_automl_job_goes_through_autopilots_statuses(course1):
    polled = course1.notebook.text("while job_status not in ('Failed', 'Completed', 'Stopped')").splitlines()
    assert polled[-1] == "Completed"
    first = polled[0].split()
    assert first[0] == "InProgress" and first[1] in ("Starting", "AnalyzingData")
    seen = [line.split()[1] for line in polled[:-1]]
    autopilot = course1.autopilot
    # All 3 candidates fit in the 15-s budget on a quiet machine; on a loaded one `sagestack automl` may say its
    # time limit cut one (the job's log says which), and only then is the job MaxAutoMLJobRuntimeReached.
    cut = _time_cut(autopilot)
    assert len(autopilot["candidates"]) == 3 or cut, autopilot["log"]
    final = "MaxAutoMLJobRuntimeReached" if cut else "MaxCandidatesReached"
    assert autopilot["describe"]["AutoMLJobStatus"] == "Completed"
    assert autopilot["describe"]["AutoMLJobSecondaryStatus"] == final
    stages = ["Starting", "AnalyzingData", "FeatureEngineering", "ModelTuning", final]
    assert [stage for stage in stages if stage in seen] == seen  # in order, none repeated
    assert seen[-1] == final and "ModelTuning" in seen
    described = autopilot["describe"]
    assert described["ProblemType"] == "MulticlassClassification"
    assert described["AutoMLJobObjective"] == {"MetricName": "Accuracy"}
    assert described["AutoMLJobConfig"]["CompletionCriteria"]["MaxCandidates"] == 3
    assert described["AutoMLJobArn"].endswith(f":{DEFAULT_ACCOUNT}:automl-job/{autopilot['job']}")
    # The job's log, read back from CloudWatch Logs' group for AutoML jobs: the command and its progress.
    assert any(" -m sagestack automl --data " in line and "--max-candidates 3 --time-limit 15 " in line
               for line in autopilot["log"])
    assert any(line.startswith("... features built") for line in autopilot["log"]) and "completed" in autopilot["log"][-1]


def test_the_autopilot_notebooks_are_in_s3_where_autopilot_writes_them(course1):
    autopilot = course1.autopilot
    artifacts = autopilot["describe"]["AutoMLJobArtifacts"]
    prefix = f"s3://sagemaker-us-east-1-{DEFAULT_ACCOUNT}/autopilot/output/{autopilot['job']}/sagemaker-automl-candidates/"
    assert artifacts["DataExplorationNotebookLocation"] == (
        f"{prefix}{autopilot['job_id']}/notebooks/SageMakerAutopilotDataExplorationNotebook.ipynb")
    assert artifacts["CandidateDefinitionNotebookLocation"].endswith(
        "/notebooks/SageMakerAutopilotCandidateDefinitionNotebook.ipynb")
    assert course1.notebook.text("generated_resources = ").splitlines() == [
        artifacts["DataExplorationNotebookLocation"], artifacts["CandidateDefinitionNotebookLocation"]]
    assert autopilot["job_id"].startswith("pr-1-")
    exploration = autopilot["notebooks"]["DataExplorationNotebookLocation"]
    definition = autopilot["notebooks"]["CandidateDefinitionNotebookLocation"]
    for notebook in (exploration, definition):
        assert notebook["nbformat"] == 4 and all(cell["cell_type"] in ("markdown", "code") for cell in notebook["cells"])
    text = "".join("".join(cell["source"]) for cell in exploration["cells"])
    assert "240 training rows" in text and "review_body" in text and "| -1 | 80 (33.3%)" in text
    assert "text/html" in exploration["cells"][-1]["outputs"][0]["data"]
    text = "".join("".join(cell["source"]) for cell in definition["cells"])
    for candidate in autopilot["candidates"]:
        assert candidate["CandidateName"] in text
    assert text.count("%%writefile") == len(autopilot["candidates"]) and "def main():" in text


def test_the_autopilot_candidates_are_listed_by_the_objective(course1):
    autopilot = course1.autopilot
    candidates = autopilot["candidates"]
    assert len(candidates) == 3 or (1 <= len(candidates) < 3 and _time_cut(autopilot)), autopilot["log"]
    values = [c["FinalAutoMLJobObjectiveMetric"]["Value"] for c in candidates]
    assert values == sorted(values, reverse=True) and all(0 < value <= 1 for value in values)
    assert {c["FinalAutoMLJobObjectiveMetric"]["MetricName"] for c in candidates} == {"Accuracy"}
    assert course1.notebook.text("candidates = automl.list_candidates(").splitlines() == [
        f"{index}  {c['CandidateName']}  {c['FinalAutoMLJobObjectiveMetric']['Value']}" for index, c in enumerate(candidates)]
    best = autopilot["best"]
    assert best["CandidateName"] == candidates[0]["CandidateName"]
    assert best["CandidateName"].startswith(autopilot["job"] + "-001-")
    assert course1.notebook.text("best_candidate = automl.describe_auto_ml_job(").splitlines() == [
        f"Candidate name: {best['CandidateName']}", "Metric name: Accuracy",
        f"Metric value: {best['FinalAutoMLJobObjectiveMetric']['Value']}"]
    assert autopilot["steps"] == [best["CandidateName"]]
    for name, candidate in autopilot["models"].items():  # each candidate's own model, deployable
        assert name.endswith("-" + candidate.lower())
    assert len(set(autopilot["models"].values())) == len(candidates)
    for candidate in candidates:
        (container,) = candidate["InferenceContainers"]
        assert "sagemaker-sklearn-automl" in container["Image"] and candidate["CandidateStatus"] == "Completed"
        assert container["ModelDataUrl"].endswith(f"/tuning/{candidate['CandidateName']}/output/model.tar.gz")
        assert container["Environment"]["SAGEMAKER_INFERENCE_SUPPORTED"] == "predicted_label,probability,probabilities,labels"


def test_the_best_candidate_deployed_answers_as_autopilot(course1):
    autopilot = course1.autopilot
    (container,) = autopilot["containers"]
    assert container["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label,probability"
    assert container["ModelDataUrl"] == autopilot["best"]["InferenceContainers"][0]["ModelDataUrl"]
    assert re.match(r"^-+!$", course1.notebook.text("autopilot_model = automl.deploy(").splitlines()[0])
    predictions = re.findall(r"^Predicted label: (\S+), Probability: (\S+) for review: ",
                             course1.notebook.text("sm_runtime.invoke_endpoint("), re.MULTILINE)
    assert len(predictions) == 3
    for label, probability in predictions:
        assert label in LABELS and 1 / 3 <= float(probability) <= 1
    assert [set(p) for p in autopilot["as_json"]["predictions"]] == [{"predicted_label", "probability"}] * 2
    assert autopilot["as_lines"] == autopilot["as_json"]["predictions"]
    (row,) = autopilot["predicted"]
    assert row[0] in LABELS and len(row) == 2
    refused = autopilot["refused"]
    assert refused["code"] == "ModelError" and refused["status"] == 424 and "text/csv" in refused["message"]


def test_blazingtext_training_job_trains_fasttext_and_writes_the_model(course1):
    text = course1.notebook.text
    seen = course1.blazingtext
    assert text("estimator.fit(").splitlines()[-1] == "InProgress"  # wait=False
    # wait() prints each secondary status as it changes (the transitions are checked below), then the cell's status.
    assert "Completed" in text("estimator.latest_training_job.wait(logs=False)").splitlines()
    assert seen["status"] == "Completed", seen["failure"]
    image = text("image_uri = sagemaker.image_uris.retrieve(").strip()
    assert "blazingtext" in image and seen["image"] == image and seen["artifact"] == seen["estimator_model_data"]
    assert seen["artifact"].startswith("s3://sagemaker-us-east-1-") and seen["artifact"].endswith("/output/model.tar.gz")
    assert "model.bin" in seen["members"]
    assert seen["secondary"] == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert 0 <= seen["metrics"].get("validation:accuracy", -1) <= 1, seen
    analytics = pd.read_csv(io.StringIO(text("df_metrics = estimator.training_job_analytics.dataframe()")))
    assert analytics.to_dict("records") == [{"timestamp": 0.0, "metric_name": "validation:accuracy",
                                             "value": seen["metrics"]["validation:accuracy"]}]
    assert any(line.endswith(f"#validation_accuracy: {seen['metrics']['validation:accuracy']:.4f}") for line in seen["log"])


def test_blazingtext_model_deployed_invoked_and_deleted(course1):
    # The SDK's deploy() prints "-" while DescribeEndpoint says Creating, "!" once it says InService.
    assert re.match(r"^-+!$", course1.notebook.text("text_classifier = estimator.deploy(").splitlines()[0])
    predictions = json.loads(course1.notebook.text("predictions = text_classifier.predict("))
    assert len(predictions) == 2
    for prediction in predictions:
        assert len(prediction["label"]) == len(prediction["prob"]) == 2
        assert all(label in ("__label__1", "__label__0", "__label__-1") for label in prediction["label"])
        assert prediction["prob"] == sorted(prediction["prob"], reverse=True)
    seen = course1.blazingtext
    assert len(seen["again"]) == 1 and len(seen["again"][0]["label"]) == 1  # config and model deleted, still served
    assert seen["bad_body"]["code"] == "ModelError" and seen["bad_body"]["status"] == 424
    assert seen["after_delete"]["code"] == "ValidationException" and "Could not find endpoint" in seen["after_delete"]["message"]
    assert seen["invoke_after_delete"]["code"] == "ValidationException"
