"""Bias at scale: every pre-training metric for every value of a 20-value facet on 1M and 10M rows.

Rows are synthesized by resampling the real reviews_balanced.csv (its 18 product categories
plus two synthetic ones make the 20-value facet; a 3-value group column serves CDDL). sagestack counts a contingency table in
one pass and computes the metrics on it; the open-source `smclarify` library (SageMaker
Clarify's metric code) runs on the same 1M rows in its own virtualenv (it needs pandas < 3
and numpy < 2), created on first use under bench/.venvs/smclarify. Both get the same frame
with plain string (object) columns, as ``pd.read_csv`` gives them; sagestack's time includes
turning those strings into codes. Prints both times and the ratio, then the bootstrap
confidence intervals (1,000 resamples of the table) on 10M rows.
Run: .venv/bin/python bench/bias_scale.py [--skip-smclarify]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sagestack.bias import BiasConfig, FacetSpec, LabelSpec, analyze
from sagestack.config import load_settings
from sagestack.data import resolve_dataset

SMCLARIFY_VENV = Path(__file__).resolve().parent / ".venvs" / "smclarify"
SMCLARIFY_PINS = ["smclarify==0.5", "pandas==2.2.3", "numpy==1.26.4"]
METRICS = ["CI", "DPL", "KL", "JS", "LP", "TVD", "KS"]
SMCLARIFY_SCRIPT = """
import sys, time, json, pandas as pd
from smclarify.bias import report
df = pd.read_csv(sys.argv[1])
start = time.perf_counter()
result = report.bias_report(
    df, report.FacetColumn("product_category"),
    report.LabelColumn(name="sentiment", series=df["sentiment"], positive_label_values=[1]),
    stage_type=report.StageType.PRE_TRAINING, metrics=%r,
)
print(json.dumps({"seconds": time.perf_counter() - start, "facet_values": len(result),
                  "first": result[0]}))
""" % METRICS


def synthesize(rows: int, seed: int = 0, source_csv: Path | None = None) -> pd.DataFrame:
    """Resample the real reviews to ``rows`` rows: a string facet, an int label, a string group.

    The columns have the dtypes ``pd.read_csv`` gives smclarify (object strings, int64), so
    sagestack is timed on the same input: a pre-built Categorical would hand it the facet codes
    for free and flatter the ratio.
    """
    source_csv = source_csv or resolve_dataset(settings=load_settings()).path
    source = pd.read_csv(source_csv, usecols=["sentiment", "product_category"])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(source), size=rows)
    category = source["product_category"].to_numpy(dtype=object)[picks]
    # The data has 18 categories; move 10% of rows into two more to get the 20-value facet.
    extra = rng.random(rows)
    category = np.where(extra < 0.05, "Extra A", np.where(extra < 0.10, "Extra B", category))
    return pd.DataFrame({
        # dtype=object explicitly: pandas 3 would otherwise infer its own string dtype.
        "product_category": pd.Series(category, dtype=object),
        "sentiment": source["sentiment"].to_numpy(dtype=np.int64)[picks],
        "division": pd.Series(rng.integers(0, 3, size=rows).astype(str), dtype=object),
    })


def time_sagestack(frame: pd.DataFrame, **config) -> tuple[float, dict]:
    cfg = BiasConfig(label="sentiment", positive=LabelSpec(values=(1,)), facets=[FacetSpec("product_category")], **config)
    start = time.perf_counter()
    document = analyze(frame, cfg)
    return time.perf_counter() - start, document


def time_smclarify(frame: pd.DataFrame) -> dict:
    python = SMCLARIFY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {SMCLARIFY_VENV} ({' '.join(SMCLARIFY_PINS)}) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(SMCLARIFY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *SMCLARIFY_PINS], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_smclarify_input(frame, Path(tmp))
        out = subprocess.run([str(python), "-c", SMCLARIFY_SCRIPT, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_smclarify_input(frame: pd.DataFrame, directory: Path) -> Path:
    """The CSV smclarify reads (its own pandas, another process): it reads back as ``frame``'s columns."""
    path = directory / "rows.csv"
    frame[["product_category", "sentiment"]].to_csv(path, index=False)
    return path


def main() -> None:
    skip = "--skip-smclarify" in sys.argv
    one_million = synthesize(1_000_000)
    ours_1m, document = time_sagestack(one_million)
    values = len(document["pre_training_bias_metrics"]["facets"]["product_category"])
    print(f"1M rows, {values} facet values, pre-training metrics {METRICS} + CDDL (no group: null)")
    print(f"  sagestack (pandas, contingency table): {ours_1m:.3f} s")
    if not skip:
        theirs = time_smclarify(one_million)
        print(f"  smclarify 0.5 (SageMaker Clarify's metric code): {theirs['seconds']:.2f} s")
        print(f"  ratio: sagestack is {theirs['seconds'] / ours_1m:,.0f}x faster")
        ours_first = {m["name"]: m["value"] for m in next(
            e for e in document["pre_training_bias_metrics"]["facets"]["product_category"]
            if e["value_or_threshold"] == theirs["first"]["value_or_threshold"])["metrics"]}
        diff = max(abs(ours_first[m["name"]] - m["value"]) for m in theirs["first"]["metrics"])
        print(f"  largest difference from smclarify's values for {theirs['first']['value_or_threshold']}: {diff:.2e}")

    ten_million = synthesize(10_000_000, seed=1)
    seconds, _ = time_sagestack(ten_million)
    with_group, _ = time_sagestack(ten_million, group="division")
    print(f"10M rows: every pre-training metric for every facet value: {seconds:.3f} s "
          f"({with_group:.3f} s with a group column, CDDL defined)")
    boot, _ = time_sagestack(ten_million, ci_samples=1000, seed=0)
    print(f"10M rows with 1,000-resample bootstrap intervals for every metric: {boot:.3f} s")


if __name__ == "__main__":
    main()
