"""Every Clarify metric against values computed by hand from its formula on an 11-row frame.

Facet d (5 rows) and a (6 rows); (observed, predicted) labels and the group of each row:
  d: (1,1,g1) (1,0,g1) (0,0,g2) (0,1,g2) (0,1,g2)   -> TP 1, FN 1, TN 1, FP 2
  a: (1,1,g1) (1,1,g1) (1,0,g2) (1,1,g2) (0,0,g1) (0,1,g2) -> TP 3, FN 1, TN 1, FP 1
"""

from math import log, sqrt

import numpy as np
import pandas as pd
import pytest

from sagestack.bias import BiasConfig, FacetSpec, LabelSpec, analyze, flip_test
from sagestack.bias.metrics import REGISTRY
from sagestack.bias.table import build_table_pandas

ROWS = [
    ("d", 1, 1, "g1"), ("d", 1, 0, "g1"), ("d", 0, 0, "g2"), ("d", 0, 1, "g2"), ("d", 0, 1, "g2"),
    ("a", 1, 1, "g1"), ("a", 1, 1, "g1"), ("a", 1, 0, "g2"), ("a", 1, 1, "g2"), ("a", 0, 0, "g1"), ("a", 0, 1, "g2"),
]
FRAME = pd.DataFrame(ROWS, columns=["facet", "label", "pred", "group"])

HAND = {
    "CI": (6 - 5) / 11,
    "DPL": 4 / 6 - 2 / 5,
    "KL": 1 / 3 * log((1 / 3) / (3 / 5)) + 2 / 3 * log((2 / 3) / (2 / 5)),
    "JS": 0.5 * (1 / 3 * log(5 / 7) + 2 / 3 * log(5 / 4) + 3 / 5 * log(9 / 7) + 2 / 5 * log(3 / 4)),
    "LP": sqrt(2) * 4 / 15,
    "TVD": 4 / 15,
    "KS": 4 / 15,
    "CDDL": (5 * (0 / 1 - 2 / 4) + 6 * (3 / 4 - 0 / 2)) / 11,
    "DPPL": 4 / 6 - 3 / 5,
    "DI": (3 / 5) / (4 / 6),
    "DCAcc": 4 / 4 - 2 / 3,
    "DCR": 3 / 2 - 2 / 2,
    "SD": 1 / (1 + 2) - 1 / (1 + 1),
    "RD": 3 / (3 + 1) - 1 / (1 + 1),
    "DAR": 3 / (3 + 1) - 1 / (1 + 2),
    "DRR": 1 / (1 + 1) - 1 / (1 + 1),
    "AD": (3 + 1) / 6 - (1 + 1) / 5,
    "TE": 1 / 2 - 1 / 1,
    "CDDPL": (5 * (1 / 2 - 1 / 3) + 6 * (1 / 2 - 2 / 4)) / 11,
    # benefits b = pred - label + 1: [1,0,1,2,2, 1,1,0,1,1,2]; mean 12/11, sum of squares 18
    "GE": (18 / (12 / 11) ** 2 - 11) / (2 * 11),
}


@pytest.fixture(scope="module")
def table():
    return build_table_pandas(FRAME, facet="facet", label="label", positive=LabelSpec(values=(1,)), predicted="pred", group="group")


def test_every_registered_metric_has_a_hand_value():
    assert set(REGISTRY) == set(HAND)


@pytest.mark.parametrize("name", sorted(HAND))
def test_metric_matches_hand_computation(table, name):
    d = table.counts[table.facet_values.index("d")]
    a = table.counts.sum(axis=0) - d
    assert float(REGISTRY[name].fn(d, a)) == pytest.approx(HAND[name], abs=1e-12)


def test_analysis_json_has_clarify_schema_and_values():
    doc = analyze(FRAME, BiasConfig(label="label", positive=LabelSpec(values=(1,)), facets=[FacetSpec("facet", ("d",))],
                                    predicted="pred", group="group"))
    pre = doc["pre_training_bias_metrics"]
    assert pre["label"] == "label" and pre["label_value_or_threshold"] == [1]
    [entry] = pre["facets"]["facet=d"]
    assert entry["value_or_threshold"] == "d"
    assert [m["name"] for m in entry["metrics"]] == sorted(m["name"] for m in entry["metrics"])
    assert {m["name"]: m["value"] for m in entry["metrics"]} == pytest.approx({k: HAND[k] for k in
                                                                              ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS", "CDDL")})
    [post] = doc["post_training_bias_metrics"]["facets"]["facet=d"]
    values = {m["name"]: m["value"] for m in post["metrics"]}
    assert values["DI"] == pytest.approx(0.9) and values["FT"] is None
    assert next(m for m in post["metrics"] if m["name"] == "FT")["error"].startswith("undefined: needs numeric feature")
    groups = doc["sagestack"]["group_metrics"]["facet=d"]["by_value"]
    assert groups["d"]["selection_rate"] == pytest.approx(3 / 5) and groups["a"]["accuracy"] == pytest.approx(4 / 6)


def test_undefined_values_are_null_with_a_reason():
    # No positive predictions outside d: DI divides by zero; no group: CDDL undefined.
    frame = pd.DataFrame({"f": ["d", "d", "a", "a"], "y": [1, 0, 1, 0], "p": [1, 0, 0, 0]})
    doc = analyze(frame, BiasConfig(label="y", positive=LabelSpec(values=(1,)), facets=[FacetSpec("f", ("d",))], predicted="p"))
    post = {m["name"]: m for m in doc["post_training_bias_metrics"]["facets"]["f=d"][0]["metrics"]}
    assert post["DI"]["value"] is None
    assert post["DI"]["error"] == "undefined: the rest has no positive predictions (q̂_a = 0, division by zero)"
    pre = {m["name"]: m for m in doc["pre_training_bias_metrics"]["facets"]["f=d"][0]["metrics"]}
    assert pre["CDDL"] == {"name": "CDDL", "description": "Conditional Demographic Disparity in Labels (CDDL)",
                           "value": None, "error": "undefined: needs a group variable (--group)"}
    assert pre["KL"]["value"] == pytest.approx(0.0)


def test_flip_test_counts_counterfactual_flips():
    # a: x = 0..5 with model predictions; each d row's nearest a row (k = 1, n_a <= 9) is its counterfactual.
    frame = pd.DataFrame({"x": [0, 1, 2, 3, 4, 5, 0.1, 2.1, 4.1, 1.1, 5.1]})
    d_mask = np.array([False] * 6 + [True] * 5)
    predicted = np.array([1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 0])
    # d rows: 2.1 predicted 0, neighbour 2 predicted 1 -> F+; 5.1 predicted 0, neighbour 5 -> 1 -> F+
    assert flip_test(frame, d_mask, predicted, ["x"]) == pytest.approx((2 - 0) / 5)


def test_one_vs_rest_and_bootstrap_interval_contains_the_estimate():
    frame = pd.DataFrame({"f": list("xxxyyyzzzz") * 30, "y": [1, 0, 0, 1, 1, 0, 1, 1, 1, 0] * 30})
    doc = analyze(frame, BiasConfig(label="y", positive=LabelSpec(values=(1,)), facets=[FacetSpec("f")], ci_samples=300, seed=1))
    entries = doc["pre_training_bias_metrics"]["facets"]["f"]
    assert [e["value_or_threshold"] for e in entries] == ["x", "y", "z"]
    ci = {e["value_or_threshold"]: next(m for m in e["metrics"] if m["name"] == "CI") for e in entries}
    assert ci["z"]["value"] == pytest.approx((180 - 120) / 300)
    low, high = ci["z"]["confidence_interval"]
    assert low < ci["z"]["value"] < high and high - low < 0.3
    again = analyze(frame, BiasConfig(label="y", positive=LabelSpec(values=(1,)), facets=[FacetSpec("f")], ci_samples=300, seed=1))
    assert again == doc  # seeded
