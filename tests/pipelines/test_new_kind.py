"""The seam of issue 26: a model kind sagestack has never seen, defined here and registered at run
time (``SAGESTACK_KIND_MODULES``) without editing any other file, is trained and registered by
``sagestack train``, is tuned by ``sagestack tune`` and exported as a Katib Experiment, is a branch of
the compiled pipeline, runs in ``pipeline run --trainers`` on KFP's local runner and is offered by the
console's pipeline form."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import yaml

KIND_MODULE = "sagestack_test_keyword_kind"
KIND_SOURCE = '''
"""A keyword kind: a review with more positive than negative words is 1, the reverse -1, else the
training set's majority class; one hyperparameter, how many keywords of each kind it learns."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from sagestack.models.base import ModelCard, TextClassifier
from sagestack.models.kinds import ModelKind


class KeywordParams(BaseModel):
    keywords: int = Field(20, ge=1, le=1000, description="Keywords learned per class.")


class KeywordPredictor(TextClassifier):
    kind = "keyword"

    def __init__(self, positive, negative, majority):
        self.labels = ["-1", "0", "1"]
        self.positive, self.negative, self.majority = set(positive), set(negative), majority

    def predict_proba(self, texts):
        rows = []
        for text in texts:
            words = set(str(text).lower().split())
            score = len(words & self.positive) - len(words & self.negative)
            label = "1" if score > 0 else "-1" if score < 0 else self.majority
            rows.append([0.8 if label == name else 0.1 for name in self.labels])
        return np.asarray(rows)

    @classmethod
    def load(cls, model_dir):
        data = json.loads((Path(model_dir) / "keywords.json").read_text())
        return cls(data["positive"], data["negative"], data["majority"])


def train(prepared_dir, model_dir, params, context):
    frame = pd.read_csv(Path(prepared_dir) / "train.csv")
    counts = {label: Counter(w for t in group["review_body"].astype(str) for w in set(t.lower().split()))
              for label, group in frame.groupby(frame["sentiment"].astype(str))}
    ranked = {label: [w for w, _ in (counts[label] - counts[other]).most_common(params.keywords)]
              for label, other in (("1", "-1"), ("-1", "1"))}
    majority = str(frame["sentiment"].astype(str).mode()[0])
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    (Path(model_dir) / "keywords.json").write_text(json.dumps(
        {"positive": ranked["1"], "negative": ranked["-1"], "majority": majority}))
    ModelCard(kind="keyword", labels=["-1", "0", "1"], params=params.model_dump()).save(Path(model_dir))
    validation = pd.read_csv(Path(prepared_dir) / "validation.csv")
    predicted = KeywordPredictor.load(model_dir).predict_labels(validation["review_body"].astype(str).tolist())
    accuracy = float(np.mean([p == str(t) for p, t in zip(predicted, validation["sentiment"])]))
    return {"kind": "keyword", "validation_accuracy": accuracy}


KIND = ModelKind(name="keyword", predictor=KeywordPredictor, heavy=False, description="keyword counts",
                 trainer=train, params=KeywordParams)
'''


@pytest.fixture
def keyword_kind(tmp_path, monkeypatch):
    """The kind's module on the path and named in SAGESTACK_KIND_MODULES, for this process and its children."""
    folder = tmp_path / "kinds"
    folder.mkdir()
    (folder / f"{KIND_MODULE}.py").write_text(textwrap.dedent(KIND_SOURCE))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    monkeypatch.setenv("SAGESTACK_KIND_MODULES", KIND_MODULE)
    yield
    from sagestack.models import kinds

    kinds.KINDS.pop("keyword", None)
    kinds._loaded_extras.discard(KIND_MODULE)
    sys.modules.pop(KIND_MODULE, None)


def test_a_kind_registered_at_run_time_trains_competes_and_is_offered(keyword_kind, sagestack_main, sample_split,
                                                                       sample_csv, tmp_path):
    code, out, err = sagestack_main("train", "--help")
    assert code == 0 and "keyword" in out, err

    model = tmp_path / "keyword-model"
    code, out, err = sagestack_main("train", "keyword", "--data", sample_split, "--out", model, "--keywords", "30",
                                    "--approve", "--json")
    assert code == 0, err
    trained = json.loads(out)
    assert trained["kind"] == "keyword" and trained["params"] == {"keywords": 30}
    assert trained["registered"]["version"] == "1" and trained["validation_accuracy"] > 0.3

    code, out, err = sagestack_main("tune", "keyword", "--data", sample_split, "--keywords", "5:40", "--max-trials", "2",
                                    "--out", tmp_path / "tune", "--json")
    assert code == 0, err
    tuned = json.loads(out)
    assert tuned["kind"] == "keyword" and [t["state"] for t in tuned["trials"]] == ["complete", "complete"]
    assert all(5 <= t["params"]["keywords"] <= 40 for t in tuned["trials"])
    assert tuned["registered"]["kind"] == "keyword" and tuned["registered"]["registered"]["version"] == "2"

    code, out, err = sagestack_main("tune", "keyword", "--data", "pvc://reviews/prepared", "--keywords", "5:40",
                                    "--emit-katib", tmp_path / "katib.yaml", "--json")
    assert code == 0, err
    from sagestack.tuning.katib import validate_experiment

    manifest = yaml.safe_load((tmp_path / "katib.yaml").read_text())
    assert validate_experiment(manifest) == [] and manifest["metadata"]["labels"]["sagestack.kind"] == "keyword"
    [container] = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    command = " ".join(container["command"])
    assert command.startswith("sagestack train keyword --data /data/reviews/prepared --out /work/out --no-register")
    assert "--keywords ${trialParameters.keywords}" in command and "--seed 42" in command
    assert "nvidia.com/gpu" not in container["resources"]["limits"]

    code, out, err = sagestack_main("pipeline", "compile", "--out", tmp_path / "p.yaml")
    assert code == 0, err
    spec = next(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))
    assert "comp-train-keyword" in spec["components"] and "trainer_keyword" in spec["root"]["inputDefinitions"]["parameters"]
    assert spec["root"]["inputDefinitions"]["parameters"]["keyword_keywords"]["defaultValue"] == 20
    assert {"keyword_model", "keyword_evaluation"} <= set(spec["components"]["comp-select-champion"]["inputDefinitions"]["artifacts"])

    code, out, err = sagestack_main("pipeline", "run", "--data", sample_csv, "--trainers", "keyword", "--keyword-keywords",
                                    "25", "--min-accuracy", "0", "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["selection"]["champion"] == "keyword" and set(run["selection"]["candidates"]) == {"keyword"}
    assert {s["name"]: s["status"] for s in run["steps"]}["train-keyword"] == "SUCCESS"

    from starlette.datastructures import FormData

    from sagestack.console.forms import pipeline_job
    from sagestack.config import load_settings
    from sagestack.data.catalog import DataCatalog
    from sagestack.workflows.params import TRAINERS  # what the Pipelines page lists

    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    title, argv = pipeline_job(FormData([("trainers", "keyword")]), DataCatalog(tmp_path / "data", settings))
    assert "keyword" in TRAINERS and argv[:4] == ["pipeline", "run", "--trainers", "keyword"]
