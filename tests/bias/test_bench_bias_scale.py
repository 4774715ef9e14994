"""bench/bias_scale.py must time sagestack on the same plain-string frame that smclarify reads."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bias_scale.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bias_scale_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sagestack_is_timed_on_the_plain_string_frame_smclarify_reads(bench, tmp_path, shared_data):
    frame = bench.synthesize(2_000, source_csv=shared_data / "reviews_balanced.csv")
    # A pre-built Categorical would skip the factorising that smclarify's object column pays for.
    assert not any(isinstance(dtype, pd.CategoricalDtype) for dtype in frame.dtypes)
    assert frame["product_category"].dtype == object and frame["division"].dtype == object
    # smclarify reads its CSV back into the same columns, dtypes and values.
    read_back = pd.read_csv(bench.write_smclarify_input(frame, tmp_path))
    pd.testing.assert_frame_equal(read_back, frame[list(read_back.columns)])
    seconds, document = bench.time_sagestack(frame)
    facet = document["pre_training_bias_metrics"]["facets"]["product_category"]
    assert seconds > 0 and len(facet) == frame["product_category"].nunique()
