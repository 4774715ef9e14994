"""Options of the CLI that no other test passed, run as a user runs them (the console script's entry point, in
this process): ``data prepare --labels``, ``bias --positive-threshold --predicted-label --group``, ``train fasttext
--autotune-seconds --quantize``, bad input to ``tune fasttext``, and ``models approve`` with both flags."""

from __future__ import annotations

import json
import re

import pytest


def one_line_error(result) -> str:
    """The one ``error: ...`` line of a refused command (its progress lines, ``... ``, aside)."""
    code, out, err = result
    said = [line for line in err.strip().splitlines() if not line.startswith("... ")]
    assert code == 2 and out == "" and "Traceback" not in err and len(said) == 1, (code, err)
    return said[0]


def test_data_prepare_with_a_label_set_of_its_own(sagestack_main):
    rows = [f"{stars},review number {i} is {'good' if stars == 5 else 'bad'},Dresses"
            for i, stars in enumerate([1, 5] * 20)]
    (sagestack_main.work / "stars.csv").write_text("sentiment,review_body,product_category\n" + "\n".join(rows) + "\n")
    args = ("data", "prepare", "--data", "stars.csv", "--validation-fraction", "0.25", "--test-fraction", "0.25")
    code, out, err = sagestack_main(*args, "--out", "prepared", "--labels", "1,5", "--json")
    assert code == 0, err
    assert json.loads(out)["counts"] == {"train": {"1": 10, "5": 10}, "validation": {"1": 5, "5": 5},
                                         "test": {"1": 5, "5": 5}}
    labels = {line.split(" ", 1)[0] for line in (sagestack_main.work / "prepared" / "train.txt").read_text().splitlines()}
    assert labels == {"__label__1", "__label__5"}
    assert one_line_error(sagestack_main(*args, "--out", "default")).endswith(
        "has values outside [-1, 0, 1] ('5') in 20 row(s) (data row 2, 4, 6, 8, 10, ...); fix those rows or pass "
        "the label set with --labels")
    assert one_line_error(sagestack_main(*args, "--out", "narrow", "--labels", "1")).startswith(
        "error: stars.csv: column 'sentiment' has values outside [1] ('5')")
    assert one_line_error(sagestack_main(*args, "--out", "words", "--labels", "neg,pos")) == (
        "error: --labels must be integers, got neg, pos")
    code, out, err = sagestack_main(*args, "--out", "repeated", "--labels", "1", "--labels", "5", "--json")
    assert code == 0 and json.loads(out)["counts"]["train"] == {"1": 10, "5": 10}  # repeats as well as commas
    assert not any((sagestack_main.work / name).exists() for name in ("default", "narrow", "words"))


def test_bias_with_a_threshold_label_predictions_and_a_group(sagestack_main):
    """Eight reviews whose metrics are computed by hand (positive: stars > 3; facet: Dresses; groups: age):
    labels q(Tops) = 3/4, q(Dresses) = 2/4, so DPL = 0.25; rejected/accepted shares of Dresses per group give
    CDDL = (4 * (1/1 - 1/3) + 4 * (1/2 - 1/2)) / 8 = 1/3. Predicted: q' = 3/4 vs 1/4, DPPL = 0.5, and
    CDDPL = (4 * (1/1 - 1/3) + 4 * (2/3 - 0/1)) / 8 = 2/3."""
    rows = ["5,5,Dresses,young", "2,2,Dresses,young", "4,1,Dresses,old", "1,1,Dresses,old",
            "5,5,Tops,young", "4,4,Tops,young", "4,4,Tops,old", "1,2,Tops,old"]
    (sagestack_main.work / "stars.csv").write_text("stars,predicted,product_category,age\n" + "\n".join(rows) + "\n")
    code, out, err = sagestack_main("bias", "--data", "stars.csv", "--label", "stars", "--positive-threshold", "3",
                                    "--facet", "product_category=Dresses", "--predicted-label", "predicted",
                                    "--group", "age", "--out", "bias", "--json")
    assert code == 0, err
    analysis = json.loads((sagestack_main.work / "bias" / "analysis.json").read_text())
    metrics = {}
    for stage in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        assert analysis[stage]["label_value_or_threshold"] == 3.0
        [facet] = analysis[stage]["facets"]["product_category=Dresses"]
        metrics.update({m["name"]: m["value"] for m in facet["metrics"]})
    assert metrics["DPL"] == pytest.approx(0.25) and metrics["CDDL"] == pytest.approx(1 / 3)
    assert metrics["DPPL"] == pytest.approx(0.5) and metrics["CDDPL"] == pytest.approx(2 / 3)
    assert one_line_error(sagestack_main("bias", "--data", "stars.csv", "--label", "stars", "--facet",
                                         "product_category", "--group", "region", "--out", "nogroup")).startswith("error: ")
    assert not (sagestack_main.work / "nogroup").exists()


def test_train_fasttext_autotunes_then_quantizes(sagestack_main, sample_split):
    code, out, err = sagestack_main("train", "fasttext", "--train", sample_split / "train.txt", "--validation",
                                    sample_split / "validation.txt", "--autotune-seconds", "3", "--quantize",
                                    "--threads", "1", "--out", "tuned", "--no-register", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["autotuned"] is True and result["model_path"].endswith("model.ftz")
    assert result["params"]["quantize"] is True and 0 < result["validation_accuracy"] <= 1
    assert (sagestack_main.work / "tuned" / "model.ftz").is_file()
    assert not (sagestack_main.work / "tuned" / "model.bin").exists()


def test_quantizing_a_model_too_small_for_it_is_one_line(sagestack_main):
    """fastText's own refusal was a traceback ("Matrix too small for quantization, must have at least 256 rows")."""
    (sagestack_main.work / "tiny.txt").write_text("__label__1 love it\n__label__-1 hate it\n" * 20)
    assert one_line_error(sagestack_main("train", "fasttext", "--train", "tiny.txt", "--quantize", "--threads", "1",
                                         "--out", "tiny", "--no-register")) == (
        "error: tiny.txt makes a model too small to quantize (4 words; fastText needs 256 word and n-gram rows): "
        "train on more text, with --word-ngrams 2 or more, or without --quantize")
    assert not (sagestack_main.work / "tiny").exists()


@pytest.mark.parametrize("args, message", [
    (["--train", "missing.txt"], "--train missing.txt is not a file; pass a fastText file (see `sagestack data prepare`)"),
    (["--validation", "missing.txt"], "--validation missing.txt is not a file; pass a fastText file"),
    (["--epochs", "5"], "nothing to search: give at least one fasttext hyperparameter a range (a:b) or a list (x,y), "
                      "e.g. --learning-rate 0.05:0.5"),
    (["--learning-rate", "1:0"], "hyperparameter learning_rate=1:0: the low end must be below the high end"),
    (["--epochs", "5:x"], "hyperparameter epochs: 'x' is not an integer"),
    (["--param", "mode=supervised,skipgram"], "unknown fasttext hyperparameter 'mode'; known: buckets, "),
    (["--param", "epochs"], "--param 'epochs': write --param name=spec"),
    (["--max-trials", "0"], "--max-trials must be 1 or more, got 0"),
    (["--parallel", "0"], "--parallel must be 1 or more, got 0"),
    (["--max-failed-trials", "0"], "--max-failed-trials must be 1 or more, got 0"),
    (["--strategy", "grid"], "unknown strategy 'grid'; use random or tpe"),
    (["--objective", "loss"], "unknown objective 'loss'; use validation_accuracy"),
    (["--preset", "aws"], "unknown preset 'aws'; use 'sagestack' or 'blazingtext'"),
    (["--resume"], "--resume: no study in tune (no study.db); run once without --resume"),
])
def test_tune_fasttext_bad_input_is_one_line_before_any_trial(sagestack_main, args, message):
    work = sagestack_main.work
    (work / "train.txt").write_text("__label__1 love it\n__label__-1 hate it\n" * 5)
    (work / "validation.txt").write_text("__label__1 love\n__label__-1 hate\n")
    files = {"--train": "train.txt", "--validation": "validation.txt"}
    for option, value in zip(args[::2], args[1::2]):
        files.pop(option, None)
    search = [] if {"--epochs", "--learning-rate", "--param"} & set(args) else ["--epochs", "2:4"]
    error = one_line_error(sagestack_main("tune", "fasttext", *[x for pair in files.items() for x in pair], *search,
                                          *args, "--out", "tune", "--no-register"))
    assert message in error
    assert not (work / "tune" / "trials").exists()


def test_models_approve_takes_one_of_reject_and_pending(sagestack_main):
    assert one_line_error(sagestack_main("models", "approve", "reviews-sentiment/1", "--reject", "--pending")) == (
        "error: pass --reject or --pending, not both")


def test_a_katib_trial_of_tune_baseline_runs_as_exported(sagestack_main, sample_split, tmp_path):
    """The trial command of `tune baseline --emit-katib` is one `sagestack train baseline` takes: run here with
    this machine's folders in place of the pod's, it trains and prints the metric Katib collects."""
    import yaml

    code, _, err = sagestack_main("tune", "baseline", "--data", "pvc://reviews/prepared", "--c", "0.5:2",
                                  "--emit-katib", tmp_path / "katib.yaml")
    assert code == 0, err
    manifest = yaml.safe_load((tmp_path / "katib.yaml").read_text())
    [container] = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["sagestack", "train", "baseline"] and "/data/reviews/prepared" in command
    local = {"/data/reviews/prepared": str(sample_split), "/work/out": str(tmp_path / "trial"),
             "${trialParameters.c}": "1.0"}
    code, out, err = sagestack_main(*(local.get(word, word) for word in command[1:]))
    assert code == 0, err
    assert re.search(r"^validation_accuracy: 0\.\d{4}$", out, re.MULTILINE), out
    assert (tmp_path / "trial" / "model.pkl").is_file()


@pytest.mark.parametrize("args, message", [
    (["--data", "{split}", "--train", "{split}/train.csv"], "pass either --data or --train/--validation, not both"),
    ([], "pass --train CSV (and --validation CSV), or --data with a prepared data folder"),
    (["--data", "{work}"], "--data {work} is not a prepared data folder (no train.csv); run `sagestack data prepare` "
                           "and pass its --out"),
    (["--data", "{half}"], "--data {half} is not a prepared data folder (no validation.csv); run `sagestack data "
                           "prepare` and pass its --out"),
])
def test_train_baseline_takes_train_files_or_a_prepared_folder(sagestack_main, sample_split, args, message):
    work, half = str(sagestack_main.work), sagestack_main.work / "half"
    half.mkdir()
    (half / "train.csv").write_bytes((sample_split / "train.csv").read_bytes())  # a folder without validation.csv
    code, out, err = sagestack_main("train", "baseline", *(a.format(split=sample_split, work=work, half=half)
                                                           for a in args), "--out", "model", "--no-register")
    assert (code, out, err.strip()) == (2, "", "error: " + message.format(work=work, half=half))
    assert not (sagestack_main.work / "model").exists()


def test_nothing_to_search_names_an_option_the_kind_takes(sagestack_main, sample_split):
    message = one_line_error(sagestack_main("tune", "baseline", "--data", sample_split, "--c", "1.0"))
    assert message == ("error: nothing to search: give at least one baseline hyperparameter a range (a:b) or a list "
                       "(x,y), e.g. --word-ngrams 1:4")
    code, out, err = sagestack_main("tune", "baseline", "--data", sample_split, "--word-ngrams", "1:4", "--help")
    assert code == 0 and "--word-ngrams" in out, err
