"""The console's forms → job commands (``console/forms.py``): every refusal a form alone can tell is one
ConfigError line (the console shows it as a 400 page), and a good form becomes the command a user would type."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from starlette.datastructures import FormData

from sagestack.console import forms
from sagestack.data.catalog import DataCatalog
from sagestack.errors import ConfigError


@pytest.fixture
def catalog(settings, tmp_path) -> DataCatalog:
    """A data directory holding one small reviews CSV, ``reviews.csv``."""
    catalog = DataCatalog(tmp_path / "data", settings)
    pd.DataFrame({"sentiment": [1, 0, -1, 1], "review_body": ["good", "ok", "bad", "nice"],
                  "product_category": ["Dresses", "Tops", "Dresses", "Tops"]}).to_csv(catalog.folder / "reviews.csv",
                                                                                      index=False)
    return catalog


@pytest.fixture
def baseline(tmp_path):
    """A monitoring root with one baseline (its statistics.json is all the form checks)."""
    root = tmp_path / "monitoring"
    (root / "baseline").mkdir(parents=True)
    (root / "baseline" / "statistics.json").write_text("{}")
    return root


BIAS = {"data": "reviews.csv", "label": "sentiment", "positive": "1", "facet": "product_category"}
AUTOML = {"data": "reviews.csv", "target": "sentiment", "text_column": "review_body"}
PIPELINE = {"trainers": "fasttext"}
MONITOR = {"baseline": "baseline"}
REFUSED = [
    ("bias", {**BIAS, "label": ""}, "pick a label column and a facet column"),
    ("bias", {**BIAS, "facet": " "}, "pick a label column and a facet column"),
    ("bias", {**BIAS, "positive": ""}, "pick at least one positive value of the label column 'sentiment'"),
    ("bias", {**BIAS, "facet_values": ["Dresses,Tops"]},
     "a facet value with a comma cannot be passed to the bias job; rename it in the data"),
    ("automl", {**AUTOML, "time_limit": "soon"}, "the time budget (seconds) must be a number, got 'soon'"),
    ("automl", {**AUTOML, "time_limit": "1"}, "the time budget (seconds) must be between 5 and 86400, got 1"),
    ("automl", {**AUTOML, "max_candidates": "2.5"}, "max candidates must be an integer, got '2.5'"),
    ("automl", {**AUTOML, "max_candidates": "0"}, "max candidates must be between 1 and "),
    ("automl", {**AUTOML, "target": "stars"}, "target 'stars' is not a column of reviews.csv; columns are: "
                                              "sentiment, review_body, product_category"),
    ("automl", {**AUTOML, "text_column": ""}, "text column '' is not a column of reviews.csv"),
    ("automl", {**AUTOML, "text_column": "sentiment"}, "the target and the text column must be different columns"),
    ("pipeline", {}, "pick at least one trainer of: "),
    ("pipeline", {"trainers": "roberta"}, "pick at least one trainer of: "),
    ("pipeline", {**PIPELINE, "select_metric": "auc"}, "the selection metric must be accuracy or macro_f1"),
    ("pipeline", {**PIPELINE, "min_accuracy": "1.5"}, "the minimum accuracy must be between 0 and 1, got 1.5"),
    ("pipeline", {**PIPELINE, "epochs": "five"}, "fastText epochs must be an integer, got 'five'"),
    ("pipeline", {**PIPELINE, "automl_time_limit": "2"}, "the AutoML time budget must be between 5 and 86400, got 2"),
    ("pipeline", {**PIPELINE, "bert_max_steps": "-1"}, "BERT max steps must be between 0 and 10000000, got -1"),
    ("monitor", {"baseline": ""}, "'' is not a baseline under "),
    ("monitor", {"baseline": "elsewhere"}, "'elsewhere' is not a baseline under "),
    ("monitor", {"baseline": "../monitoring/baseline/.."}, "'../monitoring/baseline/..' is not a baseline under "),
    ("monitor", {"baseline": "a\x00b"}, "'a\x00b' is not a baseline under "),
    ("monitor", {**MONITOR, "last": "2h"}, "the window must be one of 1h, 6h, 24h, 7d"),
]


def submit(page: str, fields: dict, catalog: DataCatalog, monitoring) -> tuple[str, list[str]]:
    """What the console does with a submitted form of ``page``: (job title, sagestack arguments)."""
    form = FormData([(name, value) for name, values in fields.items()
                     for value in (values if isinstance(values, list) else [values])])
    if page == "pipeline":
        return forms.pipeline_job(form, catalog)
    if page == "monitor":
        return forms.monitor_job(form, catalog, monitoring, monitoring.parent / "out")
    return getattr(forms, f"{page}_job")(form, catalog, catalog.folder.parent / "out")


@pytest.mark.parametrize("page, fields, message", REFUSED, ids=[f"{p}-{m[:40]}" for p, _, m in REFUSED])
def test_a_form_that_cannot_make_a_job_is_one_config_error(page, fields, message, catalog, baseline):
    with pytest.raises(ConfigError, match="^" + re.escape(message)) as refused:
        submit(page, fields, catalog, baseline)
    assert "\n" not in str(refused.value)


def test_good_forms_become_the_commands_a_user_would_type(catalog, baseline):
    data = str(catalog.folder / "reviews.csv")
    _, argv = submit("bias", {**BIAS, "positive": ["1", "0"], "group": "product_category"}, catalog, baseline)
    assert argv[:7] == ["bias", "--data", data, "--label", "sentiment", "--facet", "product_category"]
    assert argv[9:] == ["--positive", "1", "--positive", "0", "--group", "product_category"]
    _, argv = submit("automl", {**AUTOML, "time_limit": "30", "max_candidates": "2"}, catalog, baseline)
    assert argv[argv.index("--time-limit"):argv.index("--out")] == ["--time-limit", "30", "--max-candidates", "2"]
    title, argv = submit("pipeline", {"trainers": ["fasttext", "baseline"], "data": "reviews.csv", "epochs": "5",
                                      "min_accuracy": "0.5", "bert_model": "tiny", "auto_approve": "on"},
                         catalog, baseline)
    assert title == "pipeline run: fasttext, baseline"
    assert argv == ["pipeline", "run", "--trainers", "fasttext,baseline", "--data", data, "--select-metric", "accuracy",
                    "--min-accuracy", "0.5", "--epochs", "5", "--bert-model", "tiny", "--auto-approve"]
    _, argv = submit("monitor", {**MONITOR, "last": "24h", "ground_truth": "reviews.csv"}, catalog, baseline)
    assert argv == ["monitor", "run", "--baseline", str((baseline / "baseline").resolve()), "--last", "24h",
                    "--out", str(baseline.parent / "out"), "--ground-truth", data]
