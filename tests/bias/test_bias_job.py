"""Bias on the course's Clarify lab data, through the library, both engines and the CLI."""

import json

import pandas as pd
import pytest

from sagestack.bias import BiasConfig, FacetSpec, LabelSpec, analyze
from sagestack.bias.job import parse_facet

LAB = dict(label="sentiment", positive=LabelSpec(values=(1,)), facets=[FacetSpec("product_category")])


@pytest.fixture(scope="module")
def lab(shared_data):
    return pd.read_csv(shared_data / "reviews_clarify_lab.csv")


def test_clarify_lab_numbers_match_sagemaker(lab):
    """SageMaker printed CI = 0.888889 for every category and 0 for every other pre-training metric."""
    doc = analyze(lab, BiasConfig(**LAB))
    entries = doc["pre_training_bias_metrics"]["facets"]["product_category"]
    assert len(entries) == lab["product_category"].nunique() == 18
    for entry in entries:
        values = {m["name"]: m["value"] for m in entry["metrics"] if m["name"] != "CDDL"}
        assert values.pop("CI") == pytest.approx(0.888889, abs=1e-6)
        assert values == pytest.approx(dict.fromkeys(values, 0.0), abs=1e-12)


def test_spark_engine_gives_the_same_analysis(lab, tmp_path):
    from sagestack.bias.spark_engine import local_spark_session

    frame = lab.assign(pred=lab["sentiment"].sample(frac=1, random_state=3).to_numpy(),
                       division=lab["product_category"].str.len() % 3)
    config = BiasConfig(label="sentiment", positive=LabelSpec(values=(1,)),
                        facets=[FacetSpec("product_category"), FacetSpec("product_category&division")],
                        predicted="pred", group="division")
    spark = local_spark_session()
    path = tmp_path / "lab.csv"
    frame.to_csv(path, index=False)
    spark_frame = spark.read.csv(str(path), header=True, inferSchema=True, multiLine=True, escape='"')
    from_spark = analyze(spark_frame, config, engine="spark")
    from_pandas = analyze(frame, config)
    for stage in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        for facet in ("product_category", "product_category&division"):
            expected = {e["value_or_threshold"]: e for e in from_pandas[stage]["facets"][facet]}
            got = {e["value_or_threshold"]: e for e in from_spark[stage]["facets"][facet]}
            assert set(got) == set(expected)
            for value, entry in got.items():
                mine = {m["name"]: m["value"] for m in entry["metrics"]}
                theirs = {m["name"]: m["value"] for m in expected[value]["metrics"] if m["name"] != "FT"}
                assert {k: mine[k] for k in theirs} == pytest.approx(theirs, nan_ok=True)


def test_facet_syntax():
    assert parse_facet("product_category") == FacetSpec("product_category")
    assert parse_facet("product_category=Dresses, Knits") == FacetSpec("product_category", ("Dresses", "Knits"))
    assert parse_facet("age>40") == FacetSpec("age", threshold=40.0)
    assert parse_facet("a&b").columns == ["a", "b"]


def test_sensitive_values_threshold_and_missing_facet_values():
    frame = pd.DataFrame({"cat": ["x", "x", "y", None, "z", "z", "x"], "age": [20, 50, 60, 30, 45, 41, None],
                          "y": [1, 0, 1, 1, 0, 0, 1]})
    doc = analyze(frame, BiasConfig(label="y", positive=LabelSpec(values=(1,)),
                                    facets=[FacetSpec("cat", ("x", "y")), FacetSpec("age", threshold=40), FacetSpec("cat")]))
    facets = doc["pre_training_bias_metrics"]["facets"]
    assert [e["value_or_threshold"] for e in facets["cat"]] == ["x", "y", "z", "(missing)"]
    ci = lambda entry: next(m["value"] for m in entry["metrics"] if m["name"] == "CI")  # noqa: E731
    assert ci(facets["age"][0]) == pytest.approx((3 - 4) / 7)  # d = age > 40: four rows
    assert doc["sagestack"]["missing_facet_values"] == {"cat": 1, "age": 1}  # a missing age is not "<= 40"
    assert doc["sagestack"]["label_distribution"]["age"]["(missing)"] == {"negative": 0, "positive": 1}


def write(tmp_path, frame):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def assert_user_error(proc, message):
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("frame, args, message", [
    (pd.DataFrame({"c": ["x", "y"], "sentiment": [1, 0]}), ["--facet", "nope"],
     "facet column 'nope' is not in the data; columns are: c, sentiment"),
    (pd.DataFrame({"c": ["x", "y"], "sentiment": [1, 0]}), ["--facet", "c", "--label", "stars"],
     "label column 'stars' is not in the data; columns are: c, sentiment"),
    (pd.DataFrame({"c": ["x", "y"], "sentiment": [0, -1]}), ["--facet", "c"],
     "positive label value(s) ['1'] never occur in column 'sentiment'; check --positive (or --positive-threshold)"),
    (pd.DataFrame({"c": ["x", "x"], "sentiment": [1, 0]}), ["--facet", "c"],
     "facet 'c' has a single value (x); bias compares facet values, so it needs at least two"),
    (pd.DataFrame({"c": ["x", "y"], "sentiment": [1, 0]}), ["--facet", "c", "--fail-on", "CI>>1"],
     "bad --fail-on rule 'CI>>1'; write it like 'CI>0.9' or 'abs(DPL)>0.1'"),
    (pd.DataFrame({"c": ["x", "y"], "sentiment": [1, 0]}), ["--facet", "c", "--fail-on", "XYZ>1"],
     "--fail-on rule 'XYZ>1' names unknown metric XYZ; known: AD, CDDL, CDDPL, CI, DAR, DCAcc, DCR, DI, DPL, DPPL, DRR, "
     "FT, GE, JS, KL, KS, LP, RD, SD, TE, TVD"),
], ids=["unknown-facet", "unknown-label", "positive-never-occurs", "single-facet-value", "bad-rule", "unknown-metric"])
def test_bad_input_is_one_line_and_writes_nothing(cli, tmp_path, frame, args, message):
    path = write(tmp_path, frame)
    proc = cli("bias", "--data", str(path), "--out", str(tmp_path / "out"), *args)
    assert_user_error(proc, message)
    assert not (tmp_path / "out").exists()


def test_cli_with_model_intervals_and_gate(cli, tmp_path, shared_data, blazingtext_split):
    from sagestack.text import make_params, train_fasttext

    model = train_fasttext(blazingtext_split[0], tmp_path / "model", make_params(threads=1))
    lab = shared_data / "reviews_clarify_lab.csv"
    out = cli("bias", "--data", str(lab), "--facet", "product_category", "--model", str(model.out_dir),
              "--ci-samples", "200", "--out", str(tmp_path / "report"), "--json", check=True).json
    analysis = json.loads(open(out["analysis"]).read())
    post = analysis["post_training_bias_metrics"]["facets"]["product_category"]
    assert len(post) == 18 and {m["name"] for m in post[0]["metrics"]} >= {"DPPL", "DI", "AD", "FT", "GE"}
    assert all("confidence_interval" in m for m in post[0]["metrics"] if m["value"] is not None)
    assert set(analysis["sagestack"]["group_metrics"]["product_category"]["by_value"]) == set(
        pd.read_csv(lab)["product_category"])
    html = open(out["report"]).read()
    assert "Disparate Impact (DI)" in html and "data:image/png;base64," in html

    gate = cli("bias", "--data", str(lab), "--facet", "product_category", "--fail-on", "CI>0.8",
               "--out", str(tmp_path / "gated"))
    assert gate.returncode == 2
    assert gate.stderr.strip().splitlines()[-1].startswith(
        "error: bias check failed: CI>0.8: CI = 0.8889 for product_category = Blouses (and 17 more); see ")
    assert (tmp_path / "gated" / "report.html").is_file()  # the report that explains the failure is kept
