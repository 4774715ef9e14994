"""Clarify's post-training bias and explainability through ``sagestack serve-aws``: the SDK 2.35's
``SageMakerClarifyProcessor`` against a real server, the model a real CreateModel'd model answering through a
shadow endpoint; and the pieces that read the model's answers, on their own."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from serve_aws_fixtures import aws, client_bin  # noqa: F401

from sagestack.bias import BiasConfig, LabelSpec
from sagestack.bias.job import parse_facet, run_bias_job, run_bias_on_csv
from sagestack.models import load_model

POST_METHODS = {"DPPL", "DI", "DCAcc", "DCR", "RD", "DAR", "DRR", "AD", "TE"}


@pytest.fixture(scope="module")
def clarify_jobs(aws, shared_data, blazingtext_split, tmp_path_factory):
    """The client script's four jobs (post-training bias, explainability, two that fail) and the model's files."""
    folder = tmp_path_factory.mktemp("clarify-api")
    train = folder / "train.txt"
    train.write_text("".join(blazingtext_split[0].read_text().splitlines(keepends=True)[:1500]))
    lab = shared_data / "reviews_clarify_lab.csv"
    sample = folder / "explain.csv"
    pd.read_csv(lab).sample(12, random_state=0).to_csv(sample, index=False)
    model = folder / "model"
    seen = aws.run("clarify_posttraining.py", str(train), str(lab), str(sample), str(model))
    return {**seen, "lab": lab, "sample": sample, "model": model, "folder": folder}


def test_post_training_bias_equals_sagestack_bias_on_the_same_model(clarify_jobs):
    post = clarify_jobs["post"]
    assert clarify_jobs["started_status"] == "InProgress"
    assert post["status"] == "Completed", post["failure"]
    assert {"analysis.json", "report.html", "report.ipynb", "analysis_config.json"} <= set(post["keys"])
    assert "pre_training_bias_metrics" not in post["analysis"]  # only the section asked for, as Clarify writes
    # The job started the model's shadow endpoint, or shared the explainability job's (whichever came first).
    assert any(f"{verb} the shadow endpoint sm-clarify-" in line
               for line in post["log"] for verb in ("starting", "sharing"))
    # What `sagestack bias --model MODEL` computes, in this process: the same model's predictions of review_body.
    direct = clarify_jobs["folder"] / "direct"
    config = BiasConfig(label="sentiment", positive=LabelSpec(values=("1",)), facets=[parse_facet("product_category")])
    run_bias_on_csv(clarify_jobs["lab"], config, direct, predictor=load_model(clarify_jobs["model"]),
                    text_column="review_body")
    want = json.loads((direct / "analysis.json").read_text())["post_training_bias_metrics"]
    got = post["analysis"]["post_training_bias_metrics"]
    assert got["label_value_or_threshold"] == want["label_value_or_threshold"]
    mine, theirs = got["facets"]["product_category"], want["facets"]["product_category"]
    assert len(mine) == len(theirs) > 1
    for entry, expected in zip(mine, theirs):
        assert entry["value_or_threshold"] == expected["value_or_threshold"]
        assert entry["metrics"] == [m for m in expected["metrics"] if m["name"] in POST_METHODS]
        assert {m["name"] for m in entry["metrics"]} == POST_METHODS
    # The model's predictions vary from one category to another: the metrics are not all zero or undefined.
    assert sum(bool(m["value"]) for entry in mine for m in entry["metrics"]) > len(mine)


def test_a_model_answering_one_probability_is_thresholded_by_probability_threshold(clarify_jobs):
    job = clarify_jobs["probability"]
    assert job["status"] == "Completed", job["failure"]
    # The same computation in this process: the winner's probability above 0.345 is the predicted label 1.
    frame = pd.read_csv(clarify_jobs["lab"])
    probabilities = load_model(clarify_jobs["model"]).predict_proba(frame["review_body"].astype(str).tolist())
    frame["predicted"] = (np.asarray(probabilities).max(axis=1) > 0.345).astype(int)
    assert 0 < frame["predicted"].mean() < 1
    config = BiasConfig(label="sentiment", positive=LabelSpec(values=("1",)),
                        facets=[parse_facet("product_category")], predicted="predicted")
    run_bias_job(frame, config, clarify_jobs["folder"] / "direct-probability")
    want = json.loads((clarify_jobs["folder"] / "direct-probability" / "analysis.json").read_text())
    mine = job["analysis"]["post_training_bias_metrics"]["facets"]["product_category"]
    theirs = want["post_training_bias_metrics"]["facets"]["product_category"]
    assert [e["value_or_threshold"] for e in mine] == [e["value_or_threshold"] for e in theirs]
    for entry, expected in zip(mine, theirs):
        assert {m["name"]: m["value"] for m in entry["metrics"]} == pytest.approx(
            {m["name"]: m["value"] for m in expected["metrics"] if m["name"] in {"DPPL", "DI"}}, nan_ok=True)
    assert any(m["value"] for entry in mine for m in entry["metrics"])


def test_explainability_is_kernel_shap_of_the_models_scores(clarify_jobs):
    explain = clarify_jobs["explain"]
    assert explain["status"] == "Completed", explain["failure"]
    assert {"analysis.json", "report.html", "explanations_shap/out.csv"} <= set(explain["keys"])
    kernel = explain["analysis"]["explanations"]["kernel_shap"]
    assert set(kernel) == {"label0", "label1", "label2"}  # the model's three class probabilities (model_scores=2)
    for output in kernel.values():
        # The model reads review_body only: product_category never changes its answer.
        assert output["global_shap_values"]["product_category"] == pytest.approx(0, abs=1e-9)
        assert output["global_shap_values"]["review_body"] > 0 and 0 <= output["expected_value"] <= 1
    rows = list(csv.DictReader(explain["out_csv"].splitlines()))
    assert len(rows) == 12 and list(rows[0]) == [f"label{k}_{f}" for k in range(3)
                                                 for f in ("review_body", "product_category")]
    mean_abs = np.mean([abs(float(row["label0_review_body"])) for row in rows])
    assert mean_abs == pytest.approx(kernel["label0"]["global_shap_values"]["review_body"], rel=1e-6)


def test_clarify_jobs_whose_model_cannot_answer_fail_with_the_reason(clarify_jobs):
    missing, mismatch = clarify_jobs["missing"], clarify_jobs["mismatch"]
    assert missing["status"] == "Failed" and 'Could not find model "no-such-model"' in missing["failure"]
    assert mismatch["status"] == "Failed"
    assert "ModelPredictedLabelConfig's label 7 does not match the model's output" in mismatch["failure"]



def test_the_shadow_endpoints_are_deleted_when_the_jobs_end(clarify_jobs):
    shadows = clarify_jobs["shadows_after"]
    assert shadows and set(shadows.values()) == {"ValidationException"}, shadows
    logs = [line for key in ("post", "explain", "mismatch", "probability") for line in clarify_jobs[key]["log"]]
    assert sum("deleted the shadow endpoint" in line for line in logs) == len(shadows)


# -- the pieces, on their own ---------------------------------------------------------------------------------

def test_predicted_labels_read_the_answer_as_clarify_does():
    from sagestack.aws.clarify_model import parse_records, predicted_labels, scores
    from sagestack.aws.jobs import JobFailed

    csv_answer = parse_records(b'1,0.9,"[0.05, 0.05, 0.9]"\n-1,0.6,"[0.6, 0.3, 0.1]"\n', "text/csv", "m")
    assert predicted_labels(csv_answer, {"label": 0, "probability": 1}, None) == ["1", "-1"]
    assert scores(csv_answer, 2) == [[0.05, 0.05, 0.9], [0.6, 0.3, 0.1]]
    lines = parse_records(b'{"score": 0.7}\n{"score": 0.2}\n', "application/jsonlines", "m")
    assert predicted_labels(lines, {"probability": "score"}, None) == ["1", "0"]
    assert predicted_labels(lines, {"probability": "score"}, 0.1) == ["1", "1"]
    assert predicted_labels(lines, {"probability": "score", "label_headers": ["no", "yes"]}, None) == ["yes", "no"]
    multi = parse_records(b'{"labels": ["a", "b"], "probabilities": [0.3, 0.7]}\n', "application/jsonlines", "m")
    assert predicted_labels(multi, {"label": "labels", "probability": "probabilities"}, None) == ["b"]
    assert predicted_labels(multi, {"probability": "$.probabilities"}, None) == ["1"]
    assert predicted_labels(multi, {"label": "labels[0]"}, None) == ["a"]
    with pytest.raises(JobFailed, match="probability 'p' does not match the model's output"):
        predicted_labels(lines, {"probability": "p"}, None)
    with pytest.raises(JobFailed, match="label 3 does not match"):
        predicted_labels(csv_answer, {"label": 3}, None)
    with pytest.raises(JobFailed, match="is not a number"):
        scores([["x"]], 0)
    with pytest.raises(JobFailed, match="is not text/csv"):
        parse_records(b"\xff", "text/csv", "m")


def test_a_probability_is_thresholded_into_a_label_as_the_sdk_documents():
    from sagestack.aws.clarify_model import parse_records, predicted_labels

    one = parse_records(b"0.87\n0.2\n0.4\n", "text/csv", "m")  # a model answering one probability
    assert predicted_labels(one, {}, 0.3) == ["1", "0", "1"]  # probability_threshold alone
    assert predicted_labels(one, {}, None) == ["1", "0", "0"]  # 0.5 by default
    assert predicted_labels(one, {"label_headers": ["no", "yes"]}, 0.3) == ["yes", "no", "yes"]
    lines = parse_records(b'{"probability": 0.3}\n{"probability": 0.9}\n', "application/jsonlines", "m")
    assert predicted_labels(lines, {"label": "probability"}, None) == ["0", "1"]  # the SDK's binary example
    labels = parse_records(b"1,0.9\n-1,0.6\n0,0.2\n", "text/csv", "m")
    assert predicted_labels(labels, {"label": 0}, None) == ["1", "-1", "0"]  # labels stay labels
    assert predicted_labels(labels, {"label": 0}, 0.5) == ["1", "-1", "0"]
    scores = parse_records(b"0.3\n0.7\n", "text/csv", "m")  # a regression's label threshold: scores stay
    assert predicted_labels(scores, {}, None, classes=False) == ["0.3", "0.7"]


def test_predicted_labels_that_are_no_label_value_fail_the_job(tmp_path):
    from sagestack.aws.clarify import _check_predicted
    from sagestack.aws.jobs import JobFailed

    data = tmp_path / "d.csv"
    data.write_text("sentiment,text\n-1,a\n1,b\n0,c\n")
    _check_predicted(["1.0", "7"], data, "sentiment")  # 1.0 is the label 1
    with pytest.raises(JobFailed, match=r"none of the model's predicted labels \(0.4, 0.7\) is a value of the "
                                        r"label column sentiment \(-1, 0, 1\)"):
        _check_predicted(["0.7", "0.4"], data, "sentiment")


def test_requests_are_serialized_as_clarify_sends_them():
    from sagestack.aws.clarify_model import serialize

    assert serialize([["a, b", "Dresses"], ["c", "Tops"]], "text/csv", None) == b'"a, b",Dresses\nc,Tops\n'
    assert serialize([["a", 1]], "application/jsonlines", '{"features":$features}') == b'{"features":["a", 1]}\n'


def test_kernel_shap_of_a_function_is_exact_on_an_additive_model():
    from sagestack.explain import explain_function

    def predict(rows):
        rows = np.asarray(rows, dtype=object)
        return np.array([[0.5 * ("good" in text) + (0.25 if category == "Dresses" else 0.0), 0.1]
                         for text, category in rows])

    features = pd.DataFrame([["good dress", "Dresses"], ["bad", "Tops"], ["good top", "Tops"]],
                            columns=["review_body", "product_category"])
    baseline = pd.DataFrame([["meh", "Tops"]], columns=["review_body", "product_category"])
    result = explain_function(predict, features, baseline, agg_method="mean_sq")
    assert set(result["kernel_shap"]) == {"label0", "label1"}
    assert result["kernel_shap"]["label0"]["expected_value"] == pytest.approx(0.0)
    assert np.allclose(np.asarray(result["values"])[:, :, 0], [[0.5, 0.25], [0, 0], [0.5, 0]])
    assert result["kernel_shap"]["label0"]["global_shap_values"] == pytest.approx(
        {"review_body": (0.25 + 0.25) / 3, "product_category": 0.0625 / 3})
    assert result["kernel_shap"]["label1"]["global_shap_values"] == pytest.approx(
        {"review_body": 0, "product_category": 0})
    with pytest.raises(ValueError, match="unknown agg_method"):
        explain_function(predict, features, baseline, agg_method="max")


def test_kernel_shap_keeps_every_feature_of_many_and_is_seeded():
    from sagestack.explain import explain_function

    columns = [f"f{i}" for i in range(14)]  # more than shap's default l1 selection keeps (10)
    rows = np.random.default_rng(0).integers(1, 5, size=(4, len(columns)))
    features = pd.DataFrame(rows.astype(str), columns=columns, dtype=object)
    baseline = pd.DataFrame([["0"] * len(columns)], columns=columns, dtype=object)

    def predict(values):  # additive: each feature's SHAP value is its own value
        return np.asarray(values, dtype=float).sum(axis=1)

    first = explain_function(predict, features, baseline, num_samples=200)  # far fewer than 2**14 coalitions
    values = np.asarray(first["values"])[:, :, 0]
    assert np.allclose(values, rows, atol=1e-6)
    again = explain_function(predict, features, baseline, num_samples=200)
    assert np.array_equal(values, np.asarray(again["values"])[:, :, 0])


class _FakeEndpoints:
    """Models and endpoints as :class:`sagestack.aws.endpoints.Endpoints` answers for them, servers left out."""

    def __init__(self, status="InService"):
        self.status, self.created, self.deleted = status, [], []

    def get(self, kind, name):
        from sagestack.aws.protocol import AwsError

        if name != "m":
            raise AwsError("ValidationException", f'Could not find model "{name}".')
        return {"PrimaryContainer": {"Image": "1.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1",
                                     "ModelDataUrl": "s3://b/model.tar.gz"}}, 1.0

    def create_endpoint(self, name, config, serving, archive, failure=None):
        self.created.append(name)

    def endpoint(self, name):
        return {"status": self.status, "url": f"http://127.0.0.1:1/{name}", "failure": "boom"}

    def delete_endpoint(self, name):
        self.deleted.append(name)


def _fake_backends(endpoints, closed=False, check_runtime=lambda job: None):
    from sagestack.aws.shadows import Shadows

    s3 = SimpleNamespace(open=lambda bucket, key: (None, None))
    return SimpleNamespace(endpoints=endpoints, s3=s3, shadows=Shadows(),
                           jobs=SimpleNamespace(closed=closed, check_runtime=check_runtime, log=lambda job, line: None))


CONFIG = {"predictor": {"model_name": "m", "content_type": "text/csv"}}


def test_jobs_of_one_model_share_its_shadow_endpoint_and_the_last_deletes_it():
    from types import SimpleNamespace

    from sagestack.aws.clarify_model import shadow_endpoint

    endpoints, lines = _FakeEndpoints(), []
    backends = _fake_backends(endpoints)
    with shadow_endpoint(backends, SimpleNamespace(name="first"), CONFIG, lines.append) as first:
        with shadow_endpoint(backends, SimpleNamespace(name="second"),
                             {"predictor": {**CONFIG["predictor"], "accept_type": "application/jsonlines"}},
                             lines.append) as second:
            assert first.url == second.url and len(endpoints.created) == 1
            assert (first.accept_type, second.accept_type) == ("text/csv", "application/jsonlines")
        assert endpoints.deleted == []
    assert endpoints.deleted == endpoints.created and endpoints.created[0].startswith("sm-clarify-first-")
    with shadow_endpoint(backends, SimpleNamespace(name="third"), CONFIG, lines.append):
        assert len(endpoints.created) == 2  # the earlier one is gone: a new one starts


def test_a_shadow_endpoint_that_fails_or_outlives_the_server_fails_the_job():
    from types import SimpleNamespace

    from sagestack.aws.clarify_model import shadow_endpoint
    from sagestack.aws.jobs import STOPPED_WHILE_RUNNING, JobFailed

    endpoints = _FakeEndpoints(status="Failed")
    with pytest.raises(JobFailed, match="failed: boom"):
        with shadow_endpoint(_fake_backends(endpoints), SimpleNamespace(name="j"), CONFIG, print):
            pass
    assert endpoints.deleted == endpoints.created != []
    with pytest.raises(JobFailed, match=STOPPED_WHILE_RUNNING):  # serve-aws stopping: no wait for a cancelled start
        with shadow_endpoint(_fake_backends(_FakeEndpoints(status="Creating"), closed=True), SimpleNamespace(name="j"),
                             CONFIG, print):
            pass
    for predictor, message in (({"model_name": "gone"}, 'Could not find model "gone"'),
                               ({}, "names no model_name"),
                               ({"model_name": "m", "accept_type": "application/json"}, "accept_type")):
        with pytest.raises(JobFailed, match=message):
            with shadow_endpoint(_fake_backends(_FakeEndpoints()), SimpleNamespace(name="j"),
                                 {"predictor": predictor}, print):
                pass


def test_a_job_sharing_a_shadow_endpoint_waits_on_when_its_starter_fails_for_a_reason_of_its_own():
    import threading

    from conftest import wait_until
    from sagestack.aws.clarify_model import shadow_endpoint
    from sagestack.aws.jobs import JobFailed

    endpoints, shared, seen = _FakeEndpoints(status="Creating"), threading.Event(), {}

    def check_runtime(job):  # the starting job runs past its own MaxRuntimeInSeconds once the other shares
        if job.name == "first" and shared.is_set():
            raise JobFailed("MaxRuntimeExceeded: the first job's own limit")

    backends = _fake_backends(endpoints, check_runtime=check_runtime)

    def first():
        with pytest.raises(JobFailed) as raised:
            with shadow_endpoint(backends, SimpleNamespace(name="first"), CONFIG, print):
                pass
        seen["first"] = str(raised.value)
        endpoints.status = "InService"  # the endpoint starts after all

    starter = threading.Thread(target=first)
    starter.start()
    wait_until(lambda: endpoints.created, 10, "the shadow endpoint was not started")
    with shadow_endpoint(backends, SimpleNamespace(name="second"), CONFIG,
                         lambda line: shared.set() if "sharing" in line else None) as model:
        assert model.url == f"http://127.0.0.1:1/{endpoints.created[0]}"
    starter.join()
    assert seen["first"].startswith("MaxRuntimeExceeded") and len(endpoints.created) == 1
    assert endpoints.deleted == endpoints.created  # by the second job, the last to leave


def test_a_shap_config_clarify_would_refuse_fails_the_job():
    from sagestack.aws.clarify import check_config
    from sagestack.aws.clarify_model import shap_spec
    from sagestack.aws.jobs import JobFailed

    for shap, message in (({"agg_method": "max"}, "agg_method 'max'"), ({"num_samples": 0}, "num_samples"),
                          ({"seed": "x"}, "seed must be")):
        with pytest.raises(JobFailed, match=message):
            check_config({"methods": {"shap": {"baseline": [["y"]], **shap}}})
    model = SimpleNamespace(model_name="m", url="u", image="i", environment={}, content_type="text/csv",
                            accept_type="text/csv", content_template=None)
    spec = shap_spec(model, {"methods": {"shap": {"num_samples": 5, "seed": 7}}, "predictor": {"label": 2}}, ["a"],
                     [["x"]], [["y"]])
    assert (spec["num_samples"], spec["agg_method"], spec["scores"], spec["save_local_shap_values"], spec["seed"]) == (
        5, "mean_abs", 2, True, 7)


def test_analysis_config_keys_and_metrics_sagestack_does_not_do_fail_the_job():
    from sagestack.aws.clarify import check_config, check_shap_size
    from sagestack.aws.jobs import JobFailed

    post = {"methods": {"post_training_bias": {"methods": ["DPPL", "DCA", "FT"]}}, "predictor": {"model_name": "m"}}
    check_config(post)  # the SDK's names (DCA) and the flip test are known
    shap = {"methods": {"shap": {"baseline": [["x"]], "seed": 3}}, "excluded_columns": ["c"],
            "joinsource_name_or_index": "id", "predictor": {"model_name": "m", "label_headers": ["a", "b"]}}
    check_config(shap)
    for config, message in (
            ({**shap, "methods": {"shap": {"baseline": [["x"]], "text_config": {"granularity": "token"}}}},
             "methods.shap key text_config is not supported"),
            ({**shap, "methods": {"shap": {"num_clusters": 2}}}, "with num_clusters"),
            ({**post, "predictor": {"model_name": "m", "endpoint_name": "e", "custom_attributes": "c"}},
             "predictor key custom_attributes, endpoint_name are not supported"),
            ({**post, "features": "$.x"}, "key features is not supported"),
            ({"methods": {"pre_training_bias": {"methods": ["CI", "XYZ"]}}}, "pre_training_bias has no metric XYZ"),
            ({"methods": {"post_training_bias": {"methods": ["CI"]}}}, "post_training_bias has no metric CI")):
        with pytest.raises(JobFailed, match=message):
            check_config(config)
    check_shap_size({"methods": {"shap": {"num_samples": 1000}}}, 10, 30)
    with pytest.raises(JobFailed, match=r"num_samples 100000000 x 1 baseline rows x 31 features is 3,100,000,000"):
        check_shap_size({"methods": {"shap": {"num_samples": 10 ** 8}}}, 1, 31)


def _clarify_job(tmp_path, config, dataset):
    """A Clarify job's record and its inputs' local folders, as the processing handler gives them."""
    for name, file, text in (("analysis_config", "analysis_config.json", json.dumps(config)),
                             ("dataset", "data.csv", dataset)):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / file).write_text(text)
    request = {"ProcessingInputs": [{"InputName": name, "S3Input": {"LocalPath": name}}
                                    for name in ("analysis_config", "dataset")],
               "ProcessingOutputConfig": {"Outputs": [{"S3Output": {"LocalPath": "out"}}]}}
    (tmp_path / "job").mkdir(exist_ok=True)
    job = SimpleNamespace(name="j", kind="processing", request=request, folder=tmp_path / "job")
    return job, lambda path: tmp_path / path


def test_the_whole_config_is_checked_before_the_shadow_endpoint_starts(tmp_path):
    from sagestack.aws.clarify import run_clarify_job
    from sagestack.aws.jobs import JobFailed

    headers = ["sentiment", "review_body", "product_category"]
    good = {"dataset_type": "text/csv", "headers": headers, "label": "sentiment", "label_values_or_threshold": [1],
            "facet": [{"name_or_index": "product_category"}],
            "methods": {"post_training_bias": {"methods": "all"},
                        "shap": {"baseline": [["x", "Tops"]], "num_samples": 10}},
            "predictor": {"model_name": "m", "content_type": "text/csv", "label": 0}}
    rows = "sentiment,review_body,product_category\n1,good,Tops\n"
    endpoints = _FakeEndpoints()
    for config, dataset, message in (
            ({**good, "label": "nosuch"}, rows, "the label 'nosuch' is not a column of the dataset"),
            ({**good, "facet": [{"name_or_index": "age"}]}, rows, "the facet 'age' is not a column"),
            ({**good, "group_variable": 9}, rows, "group_variable index 9 is outside the 3 headers"),
            (good, "sentiment,review_body,product_category\n", "the dataset has no records"),
            ({**good, "methods": {"shap": {"baseline": [["x"]]}}}, rows, "must hold the 2 feature values"),
            ({**good, "excluded_columns": ["product_category"], "methods": {"shap": {"baseline": [["x", "y"]]}}},
             rows, "must hold the 1 feature values"),
            ({**good, "methods": {"shap": {"baseline": [["x", "Tops"]] * 2000, "num_samples": 10 ** 4}}}, rows,
             "over sagestack's")):
        job, local = _clarify_job(tmp_path, config, dataset)
        with pytest.raises(JobFailed, match=message):
            run_clarify_job(_fake_backends(endpoints), job, local)
    assert endpoints.created == []
    pre = {**good, "methods": {"pre_training_bias": {"methods": "all"}}}
    job, local = _clarify_job(tmp_path, pre, "sentiment,review_body,product_category\n")
    with pytest.raises(JobFailed, match="the dataset has no records"):
        run_clarify_job(_fake_backends(endpoints), job, local)


def test_a_crash_of_the_shap_process_is_an_algorithm_error_with_its_last_line(tmp_path):
    import os
    import sys
    import time

    from sagestack.aws.clarify import _shap
    from sagestack.aws.clarify_model import ShadowModel
    from sagestack.aws.jobs import IN_PROGRESS, JobRunner

    runner = JobRunner(tmp_path / "jobs")
    # An image no adapter serves: the user's error, said before any work (not a crash of the process).
    model = ShadowModel("m", "http://127.0.0.1:9", "no-such-image:1", {}, "text/csv", "text/csv", None)

    def unknown_image(job):
        (job.folder / "work").mkdir()
        _shap(SimpleNamespace(jobs=runner), job, {"methods": {"shap": {"baseline": [["x"]], "num_samples": 2}}},
              ["a"], [["y"]], [["x"]], job.folder / "work", model)

    def crash(job):  # a spec that is not JSON: the process dies on a traceback (a bug of sagestack's)
        spec = job.folder / "shap_spec.json"
        spec.write_text("not JSON", encoding="utf-8")
        runner.run_checked(job, [sys.executable, "-m", "sagestack.aws.clarify_model", str(spec), str(job.folder / "o")],
                           "serve-aws Kernel SHAP", env=dict(os.environ), cwd=job.folder, stdout=job.folder / "shap.json")

    failures = {}
    for name, work in (("unknown", unknown_image), ("crash", crash)):
        runner.submit("processing", name, {}, work)
        while runner.get("processing", name).status == IN_PROGRESS:
            time.sleep(0.2)
        failures[name] = runner.get("processing", name).failure
    runner.close()
    assert failures["unknown"].startswith("ClientError: model m's image no-such-image:1 cannot serve here"), failures
    assert "known images: blazingtext, " in failures["unknown"]
    prefix = "AlgorithmError: sagestack serve-aws Kernel SHAP failed (exit status 1): "
    assert failures["crash"].startswith(prefix) and "JSONDecodeError" in failures["crash"][len(prefix):], failures


def test_a_model_without_a_serving_adapter_is_refused_before_its_shadow_endpoint_starts():
    from sagestack.aws.clarify_model import shadow_endpoint
    from sagestack.aws.jobs import JobFailed

    endpoints = _FakeEndpoints()
    endpoints.get = lambda kind, name: ({"PrimaryContainer": {"Image": "1.dkr.ecr.x/mine:2", "ModelDataUrl": "s3://b/m"}},
                                        1.0)
    with pytest.raises(JobFailed, match=r"^ClientError: model m's image 1.dkr.ecr.x/mine:2 cannot serve here .* "
                                        "known images: blazingtext"):
        with shadow_endpoint(_fake_backends(endpoints), SimpleNamespace(name="j"), CONFIG, print):
            pass
    assert endpoints.created == []


def test_a_starting_server_deletes_the_shadow_endpoints_a_killed_one_left(tmp_path):
    from sagestack.aws.endpoints import Endpoints
    from sagestack.aws.shadows import Shadows

    endpoints = Endpoints(tmp_path / "endpoints")
    for name in ("sm-clarify-job-1-abc", "users-endpoint"):  # records as a killed server left them
        endpoints.create_endpoint(name, name, {}, None, failure="the server was killed")
        (endpoints.root / name / "0").mkdir(parents=True)
    (endpoints.root / "sm-clarify-orphan-def").mkdir()  # a folder whose record was never written
    Shadows.open(endpoints)
    assert endpoints.names() == ["users-endpoint"] and endpoints.names("sm-clarify-") == []
    assert sorted(p.name for p in endpoints.root.iterdir() if p.is_dir()) == ["users-endpoint"]
    endpoints.close()


def test_the_jobs_max_runtime_covers_the_shadow_wait_and_the_model_calls(tmp_path):
    import time

    from sagestack.aws.clarify_model import ShadowModel, shadow_endpoint
    from sagestack.aws.jobs import IN_PROGRESS, JobFailed, JobRunner

    runner = JobRunner(tmp_path / "jobs")
    seen = {}

    def work(job):
        time.sleep(1.2)
        with pytest.raises(JobFailed, match="MaxRuntimeExceeded") as raised:
            runner.check_runtime(job)
        seen["reason"] = str(raised.value)

    runner.submit("processing", "slow", {"StoppingCondition": {"MaxRuntimeInSeconds": 1}}, work)
    while runner.get("processing", "slow").status == IN_PROGRESS:
        time.sleep(0.1)
    runner.close()
    assert "MaxRuntimeInSeconds (1)" in seen["reason"]

    def past_limit(job):
        raise JobFailed("MaxRuntimeExceeded: past it")

    endpoints = _FakeEndpoints(status="Creating")  # a shadow endpoint that never gets InService
    with pytest.raises(JobFailed, match="MaxRuntimeExceeded"):
        with shadow_endpoint(_fake_backends(endpoints, check_runtime=past_limit), SimpleNamespace(name="j"), CONFIG,
                             print):
            pass
    assert endpoints.deleted == endpoints.created != []
    model = ShadowModel("m", "http://127.0.0.1:9", "1.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1", {}, "text/csv",
                        "text/csv", None)
    with pytest.raises(JobFailed, match="past it"):  # checked before the first request is made
        model.answers([["x"]], check=lambda: past_limit(None))


def test_a_model_config_of_several_instances_is_served_by_one_with_a_warning():
    from sagestack.aws.clarify_model import shadow_endpoint

    lines = []
    with shadow_endpoint(_fake_backends(_FakeEndpoints()), SimpleNamespace(name="j"),
                         {"predictor": {**CONFIG["predictor"], "initial_instance_count": 3}}, lines.append):
        pass
    assert any("warning: ModelConfig's instance_count 3 is read as 1" in line for line in lines)
