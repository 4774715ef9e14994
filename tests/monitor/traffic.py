"""What the monitoring tests share: a model, its baseline, and traffic to draw windows from (a plain module, not a
conftest.py: a second conftest module would shadow tests/conftest.py for `from conftest import ...`)."""

from __future__ import annotations

import pandas as pd
import pytest

from sagestack.data import prepare_dataset
from sagestack.models.kinds import load_model
from sagestack.monitor import load_baseline, make_baseline
from sagestack.monitor.run import PREDICTED
from sagestack.text.params import make_params
from sagestack.text.training import train_fasttext

WINDOW = 600


def window(frame: pd.DataFrame, seed: int, size: int = WINDOW) -> pd.DataFrame:
    """A window of traffic: ``size`` rows drawn with replacement."""
    return frame.sample(size, replace=True, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="session")
def world(shared_data, tmp_path_factory):
    """fastText trained on 80 % of the 7,110 reviews, a baseline on the 10 % validation split, and
    the 10 % test split with the model's predictions: the traffic the windows are drawn from."""
    out = tmp_path_factory.mktemp("monitor")
    prepared = prepare_dataset(shared_data / "reviews_balanced.csv", out / "prepared", validation_fraction=0.1,
                               test_fraction=0.1, seed=0)
    train_fasttext(prepared.files["train"]["fasttext"], out / "model", make_params())
    predictor = load_model(out / "model")
    read = lambda split: pd.read_csv(prepared.files[split]["csv"], dtype=str, keep_default_na=False)  # noqa: E731
    baseline = make_baseline(read("validation"), predictor)
    baseline.write(out / "baseline")
    test = read("test")
    test[PREDICTED] = [str(p.label) for p in predictor.predict(test["review_body"].tolist())]
    return {"baseline": load_baseline(out / "baseline"), "test": test, "predictor": predictor, "out": out}


