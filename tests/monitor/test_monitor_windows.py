"""Monitoring runs on real reviews: healthy windows stay quiet, shifted ones raise the matching
violation, bias drift is judged by intervals, bad input gets one clear line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sagestack.errors import DataError
from sagestack.monitor import check_window, load_baseline, make_baseline
from sagestack.monitor.drift import TESTS, chi_square_p_value, choose_test, compare, jensen_shannon, wasserstein_normed
from sagestack.monitor.run import PREDICTED

from traffic import WINDOW, window, world  # noqa: F401 (world is a fixture)


def names(result: dict) -> set[str]:
    return {c["name"] for c in result["checks"] if c["drift"]} | {
        f"bias.{b['facet_value']}.{b['metric']}" for b in result["bias"] if b["status"] == "drift"}


def test_windows_like_the_training_data_stay_quiet(world):
    alarmed = [seed for seed in range(20) if check_window(window(world["test"], seed), world["baseline"], seed=seed)["violations"]]
    assert len(alarmed) <= 1, alarmed
    checked = check_window(window(world["test"], 0), world["baseline"])
    assert {c["name"] for c in checked["checks"]} == {"text.words_per_review", "text.out_of_vocabulary", "predictions",
                                                      "labels", "columns.product_category"}
    assert any(b["status"] == "ok" for b in checked["bias"])  # bias drift really was judged


def test_only_positive_reviews_is_prediction_and_label_drift(world):
    positive = world["test"][world["test"]["sentiment"] == "1"]
    assert {"predictions", "labels"} <= names(check_window(window(positive, 1), world["baseline"]))


def test_a_shifted_category_mix_is_category_drift(world):
    dresses = world["test"][world["test"]["product_category"] == "Dresses"]
    result = check_window(window(dresses, 2), world["baseline"])
    assert "columns.product_category" in names(result)
    assert result["bias"][0]["status"] == "insufficient data"  # one facet value: nothing to compare


def test_much_longer_texts_are_text_drift(world):
    longer = window(world["test"], 3)
    longer["review_body"] = (longer["review_body"] + " ") * 3
    assert "text.words_per_review" in names(check_window(longer, world["baseline"]))


def test_errors_concentrated_on_one_category_are_bias_drift_with_an_interval(world):
    wrong = window(world["test"], 4)
    dresses = wrong["product_category"] == "Dresses"
    wrong.loc[dresses, PREDICTED] = wrong.loc[dresses, "sentiment"].map({"1": "-1", "0": "1", "-1": "1"})
    result = check_window(wrong, world["baseline"])
    drift = [b for b in result["bias"] if b["status"] == "drift" and b["facet_value"] == "Dresses"]
    assert {b["metric"] for b in drift} >= {"AD"}
    ad = next(b for b in drift if b["metric"] == "AD")
    assert ad["interval"][0] > ad["band"][1]  # the whole interval above the baseline's band
    assert any(v.startswith("bias AD of Dresses: 95% interval [") for v in result["violations"])


def test_a_moderate_fall_of_one_categorys_accuracy_is_bias_drift(world):
    """Half of the Dresses predictions made wrong: their accuracy falls from ~0.63 to ~0.35."""
    moderate = window(world["test"], 7)
    dresses = moderate.index[moderate["product_category"] == "Dresses"]
    flipped = np.random.default_rng(7).choice(dresses, len(dresses) // 2, replace=False)
    moderate.loc[flipped, PREDICTED] = moderate.loc[flipped, "sentiment"].map({"1": "-1", "0": "1", "-1": "1"})
    assert any(name.startswith("bias.Dresses.") for name in names(check_window(moderate, world["baseline"])))


def test_a_small_window_says_so_instead_of_alarming(world):
    result = check_window(window(world["test"], 5, size=20), world["baseline"])
    assert result["violations"] == []
    assert {c["status"] for c in result["checks"]} == {"insufficient data"}


def test_bad_input_is_one_clear_line(world, tmp_path):
    baseline = world["baseline"]
    other_kind = window(world["test"], 6).assign(**{PREDICTED: "positive"})
    with pytest.raises(DataError, match=r"labels \['positive'\] that the baseline's model does not have"):
        check_window(other_kind, baseline)
    with pytest.raises(DataError, match="the window has no records"):
        check_window(world["test"].iloc[:0], baseline)
    with pytest.raises(DataError, match="holds no baseline"):
        load_baseline(tmp_path)
    with pytest.raises(DataError, match="the baseline data has no column product_category"):
        make_baseline(world["test"].drop(columns=["product_category"]), world["predictor"])


# ---- the tests themselves, on hand-computed values ---------------------------------------------------
def test_drift_functions_match_hand_values():
    # 2 x 2 homogeneity: [[30, 10], [10, 30]] -> chi2 = 20, 1 dof, p = 7.74e-6
    assert chi_square_p_value({"a": 30, "b": 10}, {"a": 10, "b": 30}) == pytest.approx(7.744e-6, rel=1e-3)
    assert chi_square_p_value({"a": 5, "b": 5}, {"a": 5, "b": 5}) == pytest.approx(1.0)
    # JS distance of (1, 0) and (0, 1) is sqrt(ln 2)
    assert jensen_shannon({"x": 1}, {"y": 1}) == pytest.approx(np.sqrt(np.log(2)))
    assert jensen_shannon({"x": 2, "y": 2}, {"x": 1, "y": 1}) == pytest.approx(0.0)
    # shifting every value by one baseline standard deviation moves W1 / std by exactly 1
    reference = np.array([0.0, 2.0, 4.0, 6.0])
    assert wasserstein_normed(reference, reference + reference.std()) == pytest.approx(1.0)
    assert wasserstein_normed(np.array([3.0, 3.0]), np.array([3.0])) == 0.0
    assert choose_test("integer", 500) == "ks" and choose_test("integer", 5000) == "wasserstein"
    assert choose_test("categorical", 1000) == "chisquare" and choose_test("categorical", 1001) == "jensenshannon"
    assert set(TESTS) == {"ks", "wasserstein", "chisquare", "jensenshannon"}


def test_a_distance_must_also_beat_chance_at_the_windows_size():
    rng = np.random.default_rng(0)
    reference = {f"c{i}": 100 for i in range(20)}
    draws = rng.multinomial(40, [0.05] * 20)
    small = {f"c{i}": int(n) for i, n in enumerate(draws)}
    verdict = compare("jensenshannon", reference, small)
    assert verdict.value > 0.1  # Evidently's fixed bar alone would call this drift
    assert not verdict.drift and verdict.threshold > verdict.value
    moved = compare("jensenshannon", reference, {"c0": 200, "c1": 200})
    assert moved.drift and moved.status == "drift"
    assert compare("ks", [1.0] * 50, [1.0] * 10).status == "insufficient data"


def test_distance_tests_keep_their_false_alarm_budget_on_real_columns(shared_data):
    """Baselines over 1,000 rows use distances (Evidently's rule); healthy windows drawn from the same
    population — the 7,110 reviews — must stay under the window's budget, the baseline's own
    sampling noise included (the null is two-sample)."""
    from sagestack.monitor.baseline import frequencies, word_counts

    population = pd.read_csv(shared_data / "reviews_balanced.csv", dtype=str, keep_default_na=False)
    words = word_counts(population["review_body"])
    rng = np.random.default_rng(0)
    alarms = {"jensenshannon": 0, "wasserstein": 0}
    trials = 40
    for trial in range(trials):
        base = rng.choice(len(population), 1500, replace=False)
        current = rng.choice(len(population), 200, replace=False)
        categories = compare("jensenshannon", frequencies(population["product_category"].iloc[base]),
                             frequencies(population["product_category"].iloc[current]), tests_in_window=5, seed=trial)
        lengths = compare("wasserstein", list(words[base]), list(words[current]), tests_in_window=5, seed=trial)
        alarms["jensenshannon"] += categories.drift
        alarms["wasserstein"] += lengths.drift
    assert alarms["jensenshannon"] <= 1 and alarms["wasserstein"] <= 1, alarms  # budget 0.002 a test: ~0.08 expected
    dresses = population.index[population["product_category"] == "Dresses"][:200]
    assert compare("jensenshannon", frequencies(population["product_category"].iloc[:1500]),
                   frequencies(population["product_category"].iloc[dresses]), tests_in_window=5).drift
    assert compare("wasserstein", list(words[:1500]), list(words[:200] * 3), tests_in_window=5).drift


def test_a_numeric_column_is_watched_by_its_distribution(world):
    """A numeric column (here the review's length in characters, as a shop's own numeric field would be)."""
    with_length = lambda frame: frame.assign(chars=frame["review_body"].str.len().astype(str))  # noqa: E731
    validation = pd.read_csv(world["out"] / "prepared" / "validation.csv", dtype=str, keep_default_na=False)
    baseline = make_baseline(with_length(validation), world["predictor"], numeric_columns=("chars",))
    assert baseline.statistics["columns"]["chars"]["type"] == "numeric"
    healthy = check_window(with_length(window(world["test"], 8)), baseline)
    check = next(c for c in healthy["checks"] if c["name"] == "columns.chars")
    assert check["test"] == "ks" and not check["drift"]
    shifted = with_length(window(world["test"], 9)).assign(chars=lambda f: (f["chars"].astype(int) * 2).astype(str))
    assert "columns.chars" in names(check_window(shifted, baseline))
    with pytest.raises(DataError, match="column 'product_category' has no numbers"):
        make_baseline(validation, world["predictor"], columns=(), numeric_columns=("product_category",))
    with pytest.raises(DataError, match="given as categorical and as numeric"):
        make_baseline(validation, world["predictor"], numeric_columns=("product_category",))
