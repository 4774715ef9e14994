"""``sagestack bias`` and ``sagestack explain``: Clarify-style bias metrics and SHAP explanations."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sagestack.cli.common import JsonOpt, OverwriteOpt, check_out, emit, progress, settings, split_list


def bias(
    data: Path = typer.Option(..., "--data", help="CSV with the label, facet(s) and optionally predictions."),
    label: str = typer.Option("sentiment", "--label", help="Observed label column."),
    positive: Optional[list[str]] = typer.Option(None, "--positive", help="Positive label value(s) (repeat or comma-separate; default 1)."),
    positive_threshold: Optional[float] = typer.Option(None, help="Positive means label > this (instead of --positive)."),
    facet: list[str] = typer.Option(..., "--facet", help="COLUMN | COLUMN=V1,V2 | COLUMN>NUMBER | COLUMN&COLUMN (repeat for several facets: a facet's values are comma-separated)."),
    predicted_label: Optional[str] = typer.Option(None, help="Column of predicted labels (post-training metrics)."),
    model: Optional[str] = typer.Option(None, "--model", help="Predict with NAME@ALIAS / NAME/VERSION / a model path instead."),
    text_column: str = typer.Option("review_body", help="Text column the --model reads."),
    group: Optional[str] = typer.Option(None, "--group", help="Group column for CDDL / CDDPL."),
    ft_features: Optional[list[str]] = typer.Option(None, "--ft-features", help="Numeric feature column(s) for the flip test (repeat or comma-separate)."),
    ci_samples: int = typer.Option(0, help="Bootstrap resamples for 95% confidence intervals (0: none)."),
    seed: int = typer.Option(42, help="Seeds the bootstrap resamples of --ci-samples."),
    fail_on: Optional[list[str]] = typer.Option(None, "--fail-on", help="Fail if a rule holds, e.g. 'CI>0.9', 'abs(DPL)>0.1' (repeat or comma-separate)."),
    engine: str = typer.Option("pandas", help="Counting engine: pandas or spark."),
    out: Path = typer.Option(..., "--out", help="Output directory: analysis.json and report.html."),
    overwrite: bool = OverwriteOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Clarify-style pre- and post-training bias metrics with an HTML report."""
    from sagestack.bias import BiasConfig, LabelSpec
    from sagestack.bias.job import parse_facet, run_bias_on_csv
    from sagestack.data import resolve_dataset
    from sagestack.errors import ConfigError

    if predicted_label and model:
        raise ConfigError("pass either --predicted-label or --model, not both")
    data = resolve_dataset(data, settings=settings()).path  # a file, or a name from `sagestack data list`
    check_out(out, "bias", overwrite, data, model)
    spec = LabelSpec(threshold=positive_threshold) if positive_threshold is not None else LabelSpec(values=tuple(split_list(positive) or ["1"]))
    config = BiasConfig(
        label=label, positive=spec, facets=[parse_facet(f) for f in facet], predicted=predicted_label, group=group,
        ci_samples=ci_samples, seed=seed, ft_features=split_list(ft_features),
    )
    predictor = None
    if model:
        from sagestack.registry import load_predictor

        predictor, _ = load_predictor(settings(), model)
    result = run_bias_on_csv(data, config, out, engine=engine, predictor=predictor, text_column=text_column, fail_on=split_list(fail_on) or None,
                             overwrite=overwrite)
    emit(result, json_output, [f"wrote {result['analysis']}", f"wrote {result['report']}"])


def explain(
    model: str = typer.Option(..., "--model", help="NAME@ALIAS, NAME/VERSION or a model path."),
    data: Path = typer.Option(..., "--data", help="CSV with the texts to explain."),
    text_column: str = typer.Option("review_body", help="Text column."),
    samples: int = typer.Option(20, help="How many rows to explain (from the top of the file)."),
    max_evals: int = typer.Option(200, help="Model evaluations per review."),
    top: int = typer.Option(20, help="Words per class in the global importance."),
    out: Path = typer.Option(..., "--out", help="Output directory: analysis.json and report.html."),
    overwrite: bool = OverwriteOpt,
    json_output: bool = JsonOpt,
) -> None:
    """SHAP explanations of the text classifier: global word importance and per-review attributions."""
    from sagestack.data import resolve_dataset
    from sagestack.data.reviews import read_csv_checked
    from sagestack.errors import ConfigError
    from sagestack.explain import explain_texts, write_explanations
    from sagestack.registry import load_predictor

    if samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {samples}")
    data = resolve_dataset(data, settings=settings()).path
    check_out(out, "explain", overwrite, data, model)
    frame = read_csv_checked(data)
    if text_column not in frame.columns:
        raise ConfigError(f"text column '{text_column}' is not in {data}; columns are: {', '.join(frame.columns)}")
    predictor, _ = load_predictor(settings(), model)
    say = progress(json_output)
    if say:
        say(f"explaining {min(samples, len(frame))} reviews with SHAP ({max_evals} evaluations each)")
    explanations = explain_texts(predictor, frame[text_column].head(samples).tolist(), max_evals=max_evals, top=top)
    paths = write_explanations(explanations, out, title=f"Explanations: {model}", overwrite=overwrite)
    top_words = {label: list(v["global_top_shap_text"])[:5] for label, v in explanations["kernel_shap"].items()}
    result = {"analysis": str(paths["analysis"]), "report": str(paths["report"]), "top_words": top_words}
    emit(result, json_output, [f"class {k}: {', '.join(v)}" for k, v in top_words.items()] + [f"wrote {paths['report']}"])
