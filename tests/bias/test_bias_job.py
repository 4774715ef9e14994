"""Bias on the course's Clarify lab data, through the library, both engines and the CLI."""

import ast
import json
from math import log, sqrt
from pathlib import Path

import pandas as pd
import pytest

from sagestack.bias import BiasConfig, FacetSpec, LabelSpec, analyze
from sagestack.bias.job import BiasGateFailed, parse_facet, run_bias_job
from sagestack.bias.rules import parse_rule, violations
from sagestack.errors import ConfigError

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
    # The key of a facet's results: the spec, canonical (no spaces, the threshold as the value labels write it).
    assert parse_facet("product_category=Dresses, Knits").label == "product_category=Dresses,Knits"
    assert parse_facet("age > 40.0").label == "age>40"
    assert parse_facet("a&b").label == "a&b" and parse_facet("cat").label == "cat"


def test_sensitive_values_threshold_and_missing_facet_values():
    frame = pd.DataFrame({"cat": ["x", "x", "y", None, "z", "z", "x"], "age": [20, 50, 60, 30, 45, 41, None],
                          "y": [1, 0, 1, 1, 0, 0, 1]})
    doc = analyze(frame, BiasConfig(label="y", positive=LabelSpec(values=(1,)),
                                    facets=[FacetSpec("cat", ("x", "y")), FacetSpec("age", threshold=40), FacetSpec("cat")]))
    facets = doc["pre_training_bias_metrics"]["facets"]
    assert list(facets) == ["cat=x,y", "age>40", "cat"]
    assert [e["value_or_threshold"] for e in facets["cat=x,y"]] == ["x,y"]
    assert [e["value_or_threshold"] for e in facets["cat"]] == ["x", "y", "z", "(missing)"]
    ci = lambda entry: next(m["value"] for m in entry["metrics"] if m["name"] == "CI")  # noqa: E731
    assert ci(facets["age>40"][0]) == pytest.approx((3 - 4) / 7)  # d = age > 40: four rows
    # a missing age is not "<= 40"
    assert doc["sagestack"]["missing_facet_values"] == {"cat=x,y": 1, "age>40": 1, "cat": 1}
    assert doc["sagestack"]["label_distribution"]["age>40"]["(missing)"] == {"negative": 0, "positive": 1}


# cat x, x, y | z, z, z, z: facet cat=x,y puts x and y together in d (3 rows) against z (4 rows).
TWO_SPECS = pd.DataFrame({"cat": list("xxyzzzz"), "y": [1, 0, 1, 0, 0, 1, 0], "p": [1, 1, 0, 0, 0, 1, 1]})


def _values(entry):
    return {m["name"]: m["value"] for m in entry["metrics"]}


def test_two_facets_on_one_column_are_both_kept_and_merged_values_form_one_group(tmp_path):
    config = BiasConfig(label="y", positive=LabelSpec(values=(1,)), facets=[parse_facet("cat=x,y"), parse_facet("cat")],
                        predicted="p")
    doc = analyze(TWO_SPECS, config)
    pre, post = (doc[f"{s}_training_bias_metrics"]["facets"] for s in ("pre", "post"))
    assert list(pre) == list(post) == ["cat=x,y", "cat"]
    assert list(doc["sagestack"]["label_distribution"]) == list(doc["sagestack"]["group_metrics"]) == ["cat=x,y", "cat"]

    # d = {x, y}: 3 rows, 2 positive labels, 2 positive predictions; a = z: 4 rows, 1 positive label, 2 predictions.
    [merged] = pre["cat=x,y"]
    assert merged["value_or_threshold"] == "x,y"
    q_d, q_a = 2 / 3, 1 / 4
    assert {k: _values(merged)[k] for k in ("CI", "DPL", "KL", "LP", "TVD", "KS")} == pytest.approx({
        "CI": (4 - 3) / 7,
        "DPL": q_a - q_d,
        "KL": q_a * log(q_a / q_d) + (1 - q_a) * log((1 - q_a) / (1 - q_d)),
        "LP": sqrt(2) * abs(q_a - q_d),
        "TVD": abs(q_a - q_d),
        "KS": abs(q_a - q_d),
    })
    [merged_post] = post["cat=x,y"]
    assert _values(merged_post)["DPPL"] == pytest.approx(2 / 4 - 2 / 3)
    assert _values(merged_post)["DI"] == pytest.approx((2 / 3) / (2 / 4))

    # The one-vs-rest facet on the same column is still there: d = x (2 rows, 1 positive) against 5 rows (2 positive).
    assert [e["value_or_threshold"] for e in pre["cat"]] == ["x", "y", "z"]
    assert _values(pre["cat"][0])["CI"] == pytest.approx((5 - 2) / 7)
    assert _values(pre["cat"][0])["DPL"] == pytest.approx(2 / 5 - 1 / 2)

    # --fail-on sees both facets, and says which one broke the rule.
    assert violations([parse_rule("DPL<-0.4", {"DPL"})], doc) == [
        "DPL<-0.4: DPL = -0.4167 for cat=x,y",
        "DPL<-0.4: DPL = -0.6667 for cat = y",
    ]
    with pytest.raises(BiasGateFailed, match=r"^bias check failed: DPL<-0.4: DPL = -0.4167 for cat=x,y \(and 1 more\)"):
        run_bias_job(TWO_SPECS, config, tmp_path / "out", fail_on=["DPL<-0.4"])
    written = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert list(written["pre_training_bias_metrics"]["facets"]) == ["cat=x,y", "cat"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Facet cat=x,y</h2>" in html and "<h2>Facet cat</h2>" in html
    assert html.count("<h3>cat=x,y</h3>") == 2 and html.count("<h3>cat</h3>") == 2  # pre- and post-training


def test_the_same_facet_twice_is_analysed_once_and_different_facets_never_share_a_key():
    config = BiasConfig(label="y", positive=LabelSpec(values=(1,)), facets=[parse_facet("cat"), parse_facet(" cat ")])
    assert list(analyze(TWO_SPECS, config)["pre_training_bias_metrics"]["facets"]) == ["cat"]
    assert parse_facet("age>40.0000001").label == "age>40.0000001"  # not rounded onto age>40
    clash = BiasConfig(label="y", positive=LabelSpec(values=(1,)), facets=[FacetSpec("cat", ("x", "y")), FacetSpec("cat", ("x,y",))])
    with pytest.raises(ConfigError, match="^two different facets would both be reported as 'cat=x,y': "):
        analyze(TWO_SPECS, clash)


def _imports(path: Path) -> set[str]:
    """Every sagestack.bias module that ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sagestack.bias."):
            found.add(node.module.rsplit(".", 1)[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.rsplit(".", 1)[1] for a in node.names if a.name.startswith("sagestack.bias.")}
    return found


def test_bias_modules_have_no_import_cycle():
    import sagestack.bias

    package = Path(sagestack.bias.__file__).parent
    graph = {p.stem: _imports(p) for p in package.glob("*.py") if p.stem != "__init__"}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert [m for m in sorted(graph) if reaches(m, m, set())] == []
    from sagestack.bias import analysis, table

    assert analysis.INTERSECTION_SEPARATOR is table.INTERSECTION_SEPARATOR == "|"


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
    assert "Disparate Impact (DI)" in html and "<svg" in html
    assert "aria-label='DI'" in html and "ideal 1" in html  # a chart per metric, its ideal value drawn

    gate = cli("bias", "--data", str(lab), "--facet", "product_category", "--fail-on", "CI>0.8",
               "--out", str(tmp_path / "gated"))
    assert gate.returncode == 2
    assert gate.stderr.strip().splitlines()[-1].startswith(
        "error: bias check failed: CI>0.8: CI = 0.8889 for product_category = Blouses (and 17 more); see ")
    assert (tmp_path / "gated" / "report.html").is_file()  # the report that explains the failure is kept
