"""The ``sagestack`` command line: thin adapters over the library.

Every command accepts ``--json`` (one JSON document on stdout) and ``--help``. User errors
print one ``error: ...`` line on stderr and exit with status 2; progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from sagestack import __version__
from sagestack.errors import SagestackError

app = typer.Typer(
    help="sagestack: the SageMaker data-science workflow on open-source parts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Prepare and locate review datasets.", no_args_is_help=True)
train_app = typer.Typer(help="Train models.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: list, show, approve, promote.", no_args_is_help=True)
features_app = typer.Typer(help="The Feast feature store: ingest, online reads, training sets, HTTP server.",
                            no_args_is_help=True)
pipeline_app = typer.Typer(help="The Kubeflow pipeline: run locally, compile, submit to a cluster.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(features_app, name="features")
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")

USER_ERROR_EXIT = 2
_state: dict[str, object] = {}

JsonOpt = typer.Option(False, "--json", help="Print a machine-readable JSON result on stdout.")


def _settings():
    from sagestack.config import load_settings

    return load_settings(home=_state.get("home"), tracking_uri=_state.get("tracking_uri"))


def _progress(json_output: bool):
    """A progress printer on stderr (silent with --json, so stdout stays one JSON document)."""
    if json_output:
        return None
    return lambda message: typer.echo(f"... {message}", err=True)


def _emit(result: dict, json_output: bool, lines: list[str]) -> None:
    if json_output:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        for line in lines:
            typer.echo(line)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"sagestack {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    home: Optional[Path] = typer.Option(None, "--home", help="State directory (default: $SAGESTACK_HOME or ./.sagestack)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: SQLite under the home)."),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version."),
) -> None:
    """sagestack: the SageMaker data-science workflow on open-source parts."""
    _state.update(home=home, tracking_uri=tracking_uri)


@data_app.command("prepare")
def data_prepare(
    input: Optional[Path] = typer.Option(None, "--input", help="Review CSV (course or raw layout); default: the resolved dataset."),
    out: Path = typer.Option(..., "--out", help="Output directory (written atomically)."),
    balance: bool = typer.Option(False, "--balance", help="Down-sample every label to the rarest one."),
    validation_fraction: float = typer.Option(0.05, help="Share of rows for validation."),
    test_fraction: float = typer.Option(0.05, help="Share of rows for test."),
    seed: int = typer.Option(42, help="Random seed for balancing and splitting."),
    labels: str = typer.Option("-1,0,1", help="Allowed sentiment labels, comma-separated."),
    json_output: bool = JsonOpt,
) -> None:
    """Validate, tokenize and split a review CSV into CSV and fastText files."""
    from sagestack.data import prepare_dataset, resolve_dataset
    from sagestack.errors import ConfigError

    try:
        label_set = [int(x) for x in labels.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--labels must be comma-separated integers, got {labels!r}") from None
    say = _progress(json_output)
    resolved = resolve_dataset(input, settings=_settings())
    if say:
        say(f"preparing {resolved.path}")
    result = prepare_dataset(
        resolved.path, out, labels=label_set, balance=balance,
        validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed,
    )
    _emit(result.to_dict(), json_output, [f"{name}: {sum(c.values())} rows {c}" for name, c in result.counts.items()] + [f"written to {out}"])


@data_app.command("resolve")
def data_resolve(
    name: str = typer.Option("reviews_balanced.csv", help="Dataset file name to look for."),
    json_output: bool = JsonOpt,
) -> None:
    """Show where a dataset is found (path → SAGESTACK_DATA → ../shared/data → download)."""
    from sagestack.data import resolve_dataset

    resolved = resolve_dataset(settings=_settings(), name=name)
    _emit({"path": str(resolved.path), "source": resolved.source}, json_output, [f"{resolved.path} ({resolved.source})"])


@train_app.command("fasttext")
def train_fasttext_cmd(
    train: Path = typer.Option(..., "--train", help="Training file in fastText format."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Labelled validation file."),
    out: Path = typer.Option(..., "--out", help="Model output directory (written atomically)."),
    preset: str = typer.Option("sagestack", help="Defaults to start from: 'sagestack' or 'blazingtext'."),
    mode: Optional[str] = typer.Option(None, help="supervised, skipgram or cbow."),
    epochs: Optional[int] = typer.Option(None),
    learning_rate: Optional[float] = typer.Option(None),
    min_count: Optional[int] = typer.Option(None),
    vector_dim: Optional[int] = typer.Option(None),
    word_ngrams: Optional[int] = typer.Option(None),
    buckets: Optional[int] = typer.Option(None),
    early_stopping: Optional[bool] = typer.Option(None, "--early-stopping/--no-early-stopping"),
    patience: Optional[int] = typer.Option(None),
    min_epochs: Optional[int] = typer.Option(None),
    window_size: Optional[int] = typer.Option(None, help="word2vec modes."),
    negative_samples: Optional[int] = typer.Option(None, help="word2vec modes."),
    subwords: Optional[bool] = typer.Option(None, "--subwords/--no-subwords", help="word2vec modes."),
    threads: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    quantize: bool = typer.Option(False, "--quantize", help="Store a quantized .ftz model."),
    autotune_seconds: Optional[int] = typer.Option(None, help="Search hyperparameters on --validation for N seconds."),
    register: bool = typer.Option(True, "--register/--no-register", help="Log the run to MLflow and register the model (word2vec runs are logged, not registered)."),
    model_name: str = typer.Option("reviews-sentiment-fasttext", help="Registered model name."),
    approve: bool = typer.Option(False, "--approve", help="Register as Approved and make it @champion."),
    json_output: bool = JsonOpt,
) -> None:
    """Train the BlazingText-equivalent fastText model (supervised or word2vec)."""
    from sagestack.text import make_params, train_fasttext

    params = make_params(
        preset, mode=mode, epochs=epochs, learning_rate=learning_rate, min_count=min_count, vector_dim=vector_dim,
        word_ngrams=word_ngrams, buckets=buckets, early_stopping=early_stopping, patience=patience,
        min_epochs=min_epochs, window_size=window_size, negative_samples=negative_samples, subwords=subwords,
        threads=threads, seed=seed, quantize=quantize or None,
    )
    result = train_fasttext(
        train, out, params, validation_file=validation, autotune_seconds=autotune_seconds,
        progress=_progress(json_output),
    )
    summary = result.to_dict()
    if register:
        from sagestack.data.atomic import sha256_file
        from sagestack.registry import DatasetRef, log_fasttext_run

        logged = log_fasttext_run(
            result, settings=_settings(), model_name=model_name,
            dataset=DatasetRef(str(train.resolve()), sha256_file(train)),
            approval="Approved" if approve else "PendingManualApproval",
            aliases=("champion",) if approve else ("challenger",),
        )
        summary.update(logged)
    lines = [f"model: {result.model_path} ({result.model_size_mb:.1f} MB, trained in {result.train_seconds:.2f} s)"]
    if result.validation is not None:
        lines.append(f"validation_accuracy: {result.validation.accuracy:.4f}")
    if register and summary.get("registered"):
        lines.append(f"registered: {model_name} version {summary['registered']['version']}")
    _emit(summary, json_output, lines)


@models_app.command("list")
def models_list(json_output: bool = JsonOpt) -> None:
    """List registered models, their versions, approval statuses and aliases."""
    from sagestack.registry import list_models

    models = list_models(_settings())
    lines = [
        f"{m['name']}: " + ", ".join(f"v{v['version']} {v['approval_status']}" for v in m["versions"])
        + (f"  aliases {m['aliases']}" if m["aliases"] else "")
        for m in models
    ] or ["no registered models"]
    _emit({"models": models}, json_output, lines)


@models_app.command("show")
def models_show(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME/VERSION."),
    json_output: bool = JsonOpt,
) -> None:
    """Show one model version: status, aliases, metrics and lineage tags."""
    from sagestack.registry import resolve_ref

    info = resolve_ref(_settings(), ref).to_dict()
    lines = [f"{info['name']} version {info['version']} ({info['approval_status']}) aliases={info['aliases']}"]
    lines += [f"  {k} = {v}" for k, v in sorted(info["metrics"].items()) if k.endswith("accuracy")]
    lines += [f"  tag {k} = {v}" for k, v in sorted(info["tags"].items())]
    _emit(info, json_output, lines)


@models_app.command("approve")
def models_approve(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME/VERSION."),
    reject: bool = typer.Option(False, "--reject", help="Reject instead of approving."),
    pending: bool = typer.Option(False, "--pending", help="Reset to PendingManualApproval."),
    json_output: bool = JsonOpt,
) -> None:
    """Set a version's approval status (Approved, or Rejected with --reject)."""
    from sagestack.registry import set_approval

    status = "Rejected" if reject else "PendingManualApproval" if pending else "Approved"
    info = set_approval(_settings(), ref, status).to_dict()
    _emit(info, json_output, [f"{info['name']} version {info['version']} is now {info['approval_status']}"])


@models_app.command("promote")
def models_promote(
    ref: str = typer.Argument(..., help="NAME/VERSION (or NAME@ALIAS) to promote."),
    alias: str = typer.Option("champion", help="Alias to point at it (champion needs Approved)."),
    json_output: bool = JsonOpt,
) -> None:
    """Point an alias (champion/challenger) at a model version."""
    from sagestack.registry import promote

    info = promote(_settings(), ref, alias).to_dict()
    _emit(info, json_output, [f"{info['name']}@{alias} -> version {info['version']}"])


def _pipeline_arguments(**values) -> dict:
    """Pipeline parameters from CLI options (unset ones keep the pipeline's defaults)."""
    return {k: v for k, v in values.items() if v is not None}


@pipeline_app.command("run")
def pipeline_run(
    data: Optional[Path] = typer.Option(None, "--data", help="Review CSV; default: the resolved reviews_balanced.csv."),
    min_accuracy: Optional[float] = typer.Option(None, help="Register only if test accuracy >= this (default 0.55)."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Register as Approved and @champion."),
    model_name: Optional[str] = typer.Option(None, help="Registered model name."),
    epochs: Optional[int] = typer.Option(None),
    learning_rate: Optional[float] = typer.Option(None),
    min_count: Optional[int] = typer.Option(None),
    vector_dim: Optional[int] = typer.Option(None),
    word_ngrams: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    facet: Optional[str] = typer.Option(None, "--facet", help="Bias facet (default product_category; see `sagestack bias`)."),
    bias_fail_on: Optional[str] = typer.Option(None, help="';'-separated bias rules that fail the run, e.g. 'CI>0.95'."),
    json_output: bool = JsonOpt,
) -> None:
    """Run the whole pipeline on this machine with KFP's local runner (cached steps are reused)."""
    from pipelines.runner import run_local

    settings = _settings()
    arguments = _pipeline_arguments(
        data_path=str(data.resolve()) if data else None, min_accuracy=min_accuracy, auto_approve=auto_approve or None,
        model_name=model_name, epochs=epochs, learning_rate=learning_rate, min_count=min_count,
        vector_dim=vector_dim, word_ngrams=word_ngrams, seed=seed, tracking_uri=settings.tracking_uri,
        facet=facet, bias_fail_on=bias_fail_on,
    )
    summary = run_local(arguments, home=settings.home, progress=_progress(json_output))
    lines = [f"pipeline {summary['pipeline']} run {summary['run']}: {summary['status']} in {summary['seconds']:.1f} s"]
    for step in summary["steps"]:
        lines.append(f"  {step['name']:18} {step['status']:8} {step['seconds']:6.2f} s")
        lines += [f"      {name}: {path}" for name, path in step.get("artifacts", {}).items()]
    lines.append(f"registered: {summary['registered']}" if summary["registered"] else f"not registered: {summary['rejection']}")
    lines.append(f"log: {summary['log']}")
    _emit(summary, json_output, lines)


@pipeline_app.command("compile")
def pipeline_compile(
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the KFP IR YAML."),
    json_output: bool = JsonOpt,
) -> None:
    """Compile the pipeline to the KFP IR YAML a Kubeflow Pipelines cluster accepts."""
    from pipelines.runner import compile_pipeline

    path = compile_pipeline(output)
    _emit({"path": str(path)}, json_output, [f"wrote {path}"])


@pipeline_app.command("submit")
def pipeline_submit(
    host: str = typer.Option(..., "--host", help="Kubeflow Pipelines API URL, e.g. http://ml-pipeline-ui.kubeflow:80."),
    data: str = typer.Option(..., "--data", help="Dataset path or URL as the cluster's pods see it."),
    tracking_uri: str = typer.Option(..., "--tracking-uri", help="MLflow server URL reachable from the cluster."),
    min_accuracy: Optional[float] = typer.Option(None),
    auto_approve: bool = typer.Option(False, "--auto-approve"),
    experiment: str = typer.Option("sagestack", help="KFP experiment name."),
    json_output: bool = JsonOpt,
) -> None:
    """Submit the pipeline to a Kubeflow Pipelines cluster (kfp.Client)."""
    from pipelines.runner import submit

    arguments = _pipeline_arguments(
        data_path=data, tracking_uri=tracking_uri, min_accuracy=min_accuracy, auto_approve=auto_approve or None
    )
    result = submit(host, arguments, experiment=experiment)
    _emit(result, json_output, [f"submitted run {result['run_id']} to {host}"])


@app.command("bias")
def bias_cmd(
    data: Path = typer.Option(..., "--data", help="CSV with the label, facet(s) and optionally predictions."),
    label: str = typer.Option("sentiment", "--label", help="Observed label column."),
    positive: Optional[list[str]] = typer.Option(None, "--positive", help="Positive label value (repeatable); default 1."),
    positive_threshold: Optional[float] = typer.Option(None, help="Positive means label > this (instead of --positive)."),
    facet: list[str] = typer.Option(..., "--facet", help="COLUMN | COLUMN=V1,V2 | COLUMN>NUMBER | COLUMN&COLUMN (repeatable)."),
    predicted_label: Optional[str] = typer.Option(None, help="Column of predicted labels (post-training metrics)."),
    model: Optional[str] = typer.Option(None, "--model", help="Predict with NAME@ALIAS / NAME/VERSION / a model path instead."),
    text_column: str = typer.Option("review_body", help="Text column the --model reads."),
    group: Optional[str] = typer.Option(None, "--group", help="Group column for CDDL / CDDPL."),
    ft_features: Optional[list[str]] = typer.Option(None, "--ft-features", help="Numeric feature column for the flip test (repeatable)."),
    ci_samples: int = typer.Option(0, help="Bootstrap resamples for 95% confidence intervals (0: none)."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    fail_on: Optional[list[str]] = typer.Option(None, "--fail-on", help="Fail if a rule holds, e.g. 'CI>0.9', 'abs(DPL)>0.1'."),
    engine: str = typer.Option("pandas", help="Counting engine: pandas or spark."),
    out: Path = typer.Option(..., "--out", help="Output directory: analysis.json and report.html."),
    json_output: bool = JsonOpt,
) -> None:
    """Clarify-style pre- and post-training bias metrics with an HTML report."""
    from sagestack.bias import BiasConfig, LabelSpec
    from sagestack.bias.job import parse_facet, run_bias_on_csv
    from sagestack.errors import ConfigError

    if predicted_label and model:
        raise ConfigError("pass either --predicted-label or --model, not both")
    spec = LabelSpec(threshold=positive_threshold) if positive_threshold is not None else LabelSpec(values=tuple(positive or ["1"]))
    config = BiasConfig(
        label=label, positive=spec, facets=[parse_facet(f) for f in facet], predicted=predicted_label, group=group,
        ci_samples=ci_samples, seed=seed, ft_features=list(ft_features or []),
    )
    predictor = None
    if model:
        from sagestack.registry import load_predictor

        predictor, _ = load_predictor(_settings(), model)
    result = run_bias_on_csv(data, config, out, engine=engine, predictor=predictor, text_column=text_column, fail_on=fail_on)
    _emit(result, json_output, [f"wrote {result['analysis']}", f"wrote {result['report']}"])


@app.command("explain")
def explain_cmd(
    model: str = typer.Option(..., "--model", help="NAME@ALIAS, NAME/VERSION or a model path."),
    data: Path = typer.Option(..., "--data", help="CSV with the texts to explain."),
    text_column: str = typer.Option("review_body", help="Text column."),
    samples: int = typer.Option(20, help="How many rows to explain (from the top of the file)."),
    max_evals: int = typer.Option(200, help="Model evaluations per review."),
    top: int = typer.Option(20, help="Words per class in the global importance."),
    out: Path = typer.Option(..., "--out", help="Output directory: analysis.json and report.html."),
    json_output: bool = JsonOpt,
) -> None:
    """SHAP explanations of the text classifier: global word importance and per-review attributions."""
    from sagestack.data.reviews import read_csv_checked
    from sagestack.errors import ConfigError
    from sagestack.explain import explain_texts, write_explanations
    from sagestack.registry import load_predictor

    if samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {samples}")
    frame = read_csv_checked(data)
    if text_column not in frame.columns:
        raise ConfigError(f"text column '{text_column}' is not in {data}; columns are: {', '.join(frame.columns)}")
    predictor, _ = load_predictor(_settings(), model)
    say = _progress(json_output)
    if say:
        say(f"explaining {min(samples, len(frame))} reviews with SHAP ({max_evals} evaluations each)")
    explanations = explain_texts(predictor, frame[text_column].head(samples).tolist(), max_evals=max_evals, top=top)
    paths = write_explanations(explanations, out, title=f"Explanations: {model}")
    top_words = {label: list(v["global_top_shap_text"])[:5] for label, v in explanations["kernel_shap"].items()}
    result = {"analysis": str(paths["analysis"]), "report": str(paths["report"]), "top_words": top_words}
    _emit(result, json_output, [f"class {k}: {', '.join(v)}" for k, v in top_words.items()] + [f"wrote {paths['report']}"])


@features_app.command("ingest")
def features_ingest(
    data: Optional[Path] = typer.Option(None, "--data", help="Review CSV; default: the resolved reviews_balanced.csv."),
    max_seq_length: int = typer.Option(128, help="Tokens per review (padding/truncation)."),
    tokenizer: Optional[Path] = typer.Option(None, help="Local Hugging Face tokenizer directory (default: the bundled BERT one)."),
    json_output: bool = JsonOpt,
) -> None:
    """Engineer features, write the offline table, `feast apply` and materialize online."""
    from sagestack.data import load_reviews, resolve_dataset
    from sagestack.features import ingest

    settings = _settings()
    resolved = resolve_dataset(data, settings=settings)
    say = _progress(json_output)
    if say:
        say(f"engineering features for {resolved.path}")
    progress = (lambda done, total: say(f"tokenized {done:,}/{total:,} reviews")) if say else None
    result = ingest(settings, load_reviews(resolved.path).frame, max_seq_length=max_seq_length, tokenizer_dir=tokenizer,
                    progress=progress)
    result.pop("review_ids")
    _emit(result, json_output, [f"{result['rows']} reviews in the store ({result['new_rows']} new), splits {result['splits']}",
                                f"offline table: {result['path']}"])


@features_app.command("get")
def features_get(
    review_id: list[int] = typer.Option(..., "--review-id", help="Review id (repeatable)."),
    json_output: bool = JsonOpt,
) -> None:
    """Online features of reviews (sentiment_serving_v1); unknown ids are reported as not found."""
    from sagestack.features import get_online

    rows = get_online(_settings(), review_id)
    lines = [
        f"{r['review_id']}: " + (f"{r['product_category']} | {r['review_body'][:60]}" if r["found"] else "not found")
        for r in rows
    ]
    _emit({"features": rows}, json_output, lines)


@features_app.command("training-set")
def features_training_set(
    split: str = typer.Option("train", "--split", help="train, validation or test."),
    out: Path = typer.Option(..., "--out", help="Output file (.parquet or .csv), written atomically."),
    json_output: bool = JsonOpt,
) -> None:
    """A point-in-time correct training set read back through Feast (sentiment_training_v1)."""
    from sagestack.data.atomic import atomic_file
    from sagestack.features import training_set

    frame = training_set(_settings(), split)
    with atomic_file(out) as tmp:
        if out.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    _emit({"rows": len(frame), "path": str(out), "columns": list(frame.columns)}, json_output,
          [f"wrote {len(frame)} {split} rows to {out}"])


@features_app.command("serve")
def features_serve(
    port: int = typer.Option(6566, "--port"),
    host: str = typer.Option("127.0.0.1", "--host"),
) -> None:
    """Feast's HTTP feature server on this home's store (POST /get-online-features)."""
    import os

    from sagestack.features.store import feast_command, feast_env

    settings = _settings()
    command = feast_command(settings, "serve", "--host", host, "--port", str(port))
    os.execve(command[0], command, feast_env(settings))


@app.command("lineage")
def lineage_cmd(
    ref: str = typer.Argument(..., help="NAME@ALIAS or NAME/VERSION."),
    json_output: bool = JsonOpt,
) -> None:
    """Print the chain dataset → pipeline steps → model version → endpoint, read from MLflow."""
    from sagestack.registry import lineage

    chain = lineage(_settings(), ref)
    model = chain["model"]
    lines = [
        f"dataset   {chain['dataset']['path']} (sha256 {chain['dataset']['sha256']})",
        f"pipeline  run {chain['pipeline']['run']} (sagestack {chain['pipeline']['sagestack_version']}, "
        f"commit {chain['pipeline']['git_commit']})",
        *(f"  step {s['order']}  {s['step']:15} {s['artifact']:9} {s['uri']}" for s in chain["steps"]),
        f"training  MLflow run {chain['training_run']}",
        f"model     {model['name']} version {model['version']} ({model['approval_status']}, aliases {model['aliases']}, "
        f"test_accuracy {model['test_accuracy']})",
        f"endpoint  {chain['endpoint'] or 'not served yet'}",
    ]
    _emit(chain, json_output, lines)


@app.command("serve")
def serve(
    model: str = typer.Option("reviews-sentiment-fasttext@champion", "--model", help="NAME@ALIAS, NAME/VERSION or a model path."),
    port: int = typer.Option(3000, "--port", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
) -> None:
    """Serve a registered model over HTTP with BentoML (POST /predict, /healthz, /readyz, /metrics, /docs)."""
    import os

    from sagestack.registry import load_predictor, record_endpoint
    from serving.launch import serve_command, serve_env

    settings = _settings()
    _, info = load_predictor(settings, model)  # a wrong reference fails here, with one line
    if info is not None:
        record_endpoint(settings, model, f"http://{host}:{port}")
    typer.echo(f"... serving {model} on http://{host}:{port} (docs at /docs)", err=True)
    command = serve_command(host, port)
    os.execve(command[0], command, serve_env(settings, model))


DEMO_REVIEW = "I love this dress: the fabric is soft and it fits perfectly."


@app.command("demo")
def demo(
    data: Optional[Path] = typer.Option(None, "--data", help="Review CSV; default: the resolved reviews_balanced.csv."),
    json_output: bool = JsonOpt,
) -> None:
    """The main job: run the pipeline (auto-approved), serve @champion, send one real prediction."""
    import httpx

    from pipelines.runner import run_local
    from serving.launch import running_server

    settings = _settings()
    say = _progress(json_output)
    arguments = {"auto_approve": True, "tracking_uri": settings.tracking_uri}
    if data:
        arguments["data_path"] = str(data.resolve())
    summary = run_local({k: v for k, v in arguments.items() if v is not None}, home=settings.home, progress=say)
    if not summary["registered"]:
        raise SagestackError(f"the pipeline registered no model ({summary['rejection']}); nothing to serve")
    ref = summary["registered"].split("/")[0] + "@champion"
    if say:
        say(f"starting the endpoint for {ref}")
    from sagestack.registry import record_endpoint

    with running_server(settings, ref) as url:
        record_endpoint(settings, ref, url)
        answer = httpx.post(f"{url}/predict", json={"reviews": [DEMO_REVIEW]}, timeout=30)
        if answer.status_code != 200:
            raise SagestackError(f"the endpoint answered {answer.status_code}: {answer.text[:200]}")
        response = answer.json()
    result = {"pipeline": summary, "endpoint": url, "request": DEMO_REVIEW, "response": response}
    prediction = response["predictions"][0]
    _emit(result, json_output, [
        *(f"  {st['name']:18} {st['status']:8} {st['seconds']:6.2f} s" for st in summary["steps"]),
        f"registered: {summary['registered']} (Approved, @champion); lineage: sagestack lineage {ref}",
        f"served at {url}: POST /predict {DEMO_REVIEW!r}",
        f"  -> label {prediction['label']} {prediction['probabilities']} (model version {response['model']['version']})",
    ])


def main() -> None:
    """Entry point of the ``sagestack`` console script."""
    import os

    # MLflow logs store migrations at INFO on stderr; the CLI shows its own progress instead.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    try:
        app(prog_name="sagestack")
    except SagestackError as exc:
        if "--json" in sys.argv:
            typer.echo(json.dumps({"ok": False, "error": str(exc)}))
        typer.echo(f"error: {exc}", err=True)
        sys.exit(USER_ERROR_EXIT)


if __name__ == "__main__":
    main()
