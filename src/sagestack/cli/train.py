"""``sagestack train``: train one model of a kind and register it.

fastText, the baseline and BERT have commands of their own (presets, autotuning, Debugger rules...);
every other trainable kind in the registry gets ``sagestack train <kind>`` generated from its
parameters model when the command tree is built (so a kind registered at run time has one too)."""

from __future__ import annotations

from pathlib import Path
import inspect
from typing import Optional

import typer

from sagestack.cli.common import JsonOpt, OverwriteOpt, check_out, emit, human, kind_group, progress, settings, split_list
from sagestack.bert.params import BertParams
from sagestack.models.baseline_params import BaselineParams
from sagestack.registry import DEFAULT_MODEL_NAME
from sagestack.text.params import SAGESTACK_DEFAULTS, BlazingTextParams


app = typer.Typer(help="Train models.", no_args_is_help=True, cls=kind_group(lambda kind: train_kind_command(kind), "train"))

RegisterOpt = typer.Option(True, "--register/--no-register", help="Log the run to MLflow and register the model.")
ModelNameOpt = typer.Option(DEFAULT_MODEL_NAME, help="Registered model name (one per task, whatever the kind).")
ApproveOpt = typer.Option(False, "--approve", help="Register as Approved and make it @champion.")


def _ft(name: str, what: str) -> str:
    """Help for a fastText hyperparameter: what it does and its default under each --preset."""
    blazingtext = BlazingTextParams.model_fields[name].default
    ours = SAGESTACK_DEFAULTS.get(name, blazingtext)
    if ours == blazingtext:
        return f"{what} (default {ours})"
    return f"{what} (default {ours}; {blazingtext} with --preset blazingtext)"


def _default(params, name: str, what: str) -> str:
    """Help naming the default that ``params`` (a hyperparameter class) declares for ``name``."""
    value = getattr(params(), name)
    shown = ("yes" if value else "no") if isinstance(value, bool) else value
    return f"{what} (default {shown})"


def _register(summary: dict, lines: list[str], model_dir: Path, train_data: Path, model_name: str, approve: bool) -> None:
    from sagestack.workflows.training import register_trained_model

    logged = register_trained_model(model_dir, settings=settings(), train_data=train_data, approve=approve,
                                    model_name=model_name)
    summary.update(logged)
    if logged.get("registered"):
        lines.append(f"registered: {model_name} version {logged['registered']['version']} (kind {logged['kind']})")


@app.command("fasttext")
def fasttext(
    train: Path = typer.Option(..., "--train", help="Training file in fastText format."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Labelled validation file."),
    out: Path = typer.Option(..., "--out", help="Model output folder, written whole; a previous fasttext model there is replaced."),
    overwrite: bool = OverwriteOpt,
    preset: str = typer.Option("sagestack", help="Defaults to start from: 'sagestack' or 'blazingtext'."),
    mode: Optional[str] = typer.Option(None, help="supervised (a classifier), skipgram or cbow (word2vec) (default supervised)"),
    epochs: Optional[int] = typer.Option(None, help=_ft("epochs", "Passes over the training data.")),
    learning_rate: Optional[float] = typer.Option(None, help=_ft("learning_rate", "Learning rate.")),
    min_count: Optional[int] = typer.Option(None, help=_ft("min_count", "Ignore words seen fewer times.")),
    vector_dim: Optional[int] = typer.Option(None, help=_ft("vector_dim", "Word vector size.")),
    word_ngrams: Optional[int] = typer.Option(None, help=_ft("word_ngrams", "Word n-grams 1..N (supervised).")),
    buckets: Optional[int] = typer.Option(None, help=_ft("buckets", "Hash buckets for the n-grams.")),
    early_stopping: Optional[bool] = typer.Option(None, "--early-stopping/--no-early-stopping",
                                                  help="Stop when validation accuracy stops improving (needs --validation) (default off)"),
    patience: Optional[int] = typer.Option(None, help=_ft("patience", "Early stopping: epochs without improvement.")),
    min_epochs: Optional[int] = typer.Option(None, help=_ft("min_epochs", "Early stopping: epochs before it may stop.")),
    window_size: Optional[int] = typer.Option(None, help=_ft("window_size", "word2vec: context window.")),
    negative_samples: Optional[int] = typer.Option(None, help=_ft("negative_samples", "word2vec: negative samples.")),
    subwords: Optional[bool] = typer.Option(None, "--subwords/--no-subwords", help="word2vec: learn character n-gram vectors too (default off)"),
    threads: Optional[int] = typer.Option(None, help="fastText threads (default every core)"),
    seed: Optional[int] = typer.Option(None, help=_ft("seed", "Random seed.")),
    quantize: bool = typer.Option(False, "--quantize", help="Store a quantized .ftz model."),
    autotune_seconds: Optional[int] = typer.Option(None, help="Search hyperparameters on --validation for N seconds."),
    register: bool = RegisterOpt,
    model_name: str = ModelNameOpt,
    approve: bool = ApproveOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Train the BlazingText-equivalent fastText model (supervised or word2vec; word vectors are logged, not registered)."""
    from sagestack.text import make_params, train_fasttext

    check_out(out, "train fasttext", overwrite, train, validation)

    params = make_params(
        preset, mode=mode, epochs=epochs, learning_rate=learning_rate, min_count=min_count, vector_dim=vector_dim,
        word_ngrams=word_ngrams, buckets=buckets, early_stopping=early_stopping, patience=patience,
        min_epochs=min_epochs, window_size=window_size, negative_samples=negative_samples, subwords=subwords,
        threads=threads, seed=seed, quantize=quantize or None,
    )
    result = train_fasttext(train, out, params, validation_file=validation, autotune_seconds=autotune_seconds,
                            progress=progress(json_output), overwrite=overwrite)
    summary = result.to_dict()
    lines = [f"model: {result.model_path} ({result.model_size_mb:.1f} MB, trained in {result.train_seconds:.2f} s)"]
    if result.validation is not None:
        lines.append(f"validation_accuracy: {result.validation.accuracy:.4f}")
    if register:
        _register(summary, lines, out, train, model_name, approve)
    emit(summary, json_output, lines)


@app.command("baseline")
def baseline(
    train: Optional[Path] = typer.Option(None, "--train", help="Training reviews: a CSV with sentiment and review_body (e.g. train.csv of `data prepare`)."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Labelled validation CSV."),
    data: Optional[Path] = typer.Option(None, "--data", help="Instead of --train/--validation: a prepared data folder (`sagestack data prepare`), its train.csv and validation.csv (how `tune baseline` trials and Katib call it)."),
    out: Path = typer.Option(..., "--out", help="Model output folder, written whole; a previous baseline model there is replaced."),
    overwrite: bool = OverwriteOpt,
    word_ngrams: Optional[int] = typer.Option(None, help="Word n-grams 1..N."),
    c: Optional[float] = typer.Option(None, "--c", help="Inverse regularization strength."),
    min_df: Optional[int] = typer.Option(None, help=_default(BaselineParams, "min_df", "Ignore n-grams seen in fewer reviews.")),
    seed: Optional[int] = typer.Option(None, help=_default(BaselineParams, "seed", "Seeds the logistic regression.")),
    register: bool = RegisterOpt,
    model_name: str = ModelNameOpt,
    approve: bool = ApproveOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Train the TF-IDF (word + character n-grams) + logistic-regression baseline."""
    from sagestack.models.baseline import make_baseline_params, train_baseline

    train, validation = _train_files(train, validation, data)
    check_out(out, "train baseline", overwrite, train, validation)

    params = make_baseline_params(word_ngrams=word_ngrams, c=c, min_df=min_df, seed=seed)
    say = progress(json_output)
    if say:
        say(f"training the TF-IDF + logistic-regression baseline on {train}")
    card, evaluation = train_baseline(train, out, params, validation_csv=validation, overwrite=overwrite)
    import json

    from sagestack.models.baseline import RESULT_FILE

    summary = {**json.loads((out / RESULT_FILE).read_text(encoding="utf-8")), "metrics": card.metrics}
    summary.setdefault("validation_accuracy", None)
    lines = [f"model: {out} ({card.metrics['model_size_mb']:.1f} MB, trained in {card.metrics['train_seconds']:.2f} s)"]
    if evaluation is not None:
        lines.append(f"validation_accuracy: {evaluation.accuracy:.4f}")
    if register:
        _register(summary, lines, out, train, model_name, approve)
    emit(summary, json_output, lines)


def _train_files(train: Optional[Path], validation: Optional[Path], data: Optional[Path]) -> tuple[Path, Optional[Path]]:
    """The training and validation CSVs of ``--train``/``--validation`` or of a prepared ``--data`` folder."""
    from sagestack.errors import ConfigError, DataError

    if data is None:
        if train is None:
            raise ConfigError("pass --train CSV (and --validation CSV), or --data with a prepared data folder")
        return train, validation
    if train is not None or validation is not None:
        raise ConfigError("pass either --data or --train/--validation, not both")
    for split in ("train", "validation"):  # validation too: a tuning trial reports its accuracy there
        if not (data / f"{split}.csv").is_file():
            raise DataError(f"--data {data} is not a prepared data folder (no {split}.csv); "
                            "run `sagestack data prepare` and pass its --out")
    return data / "train.csv", data / "validation.csv"


@app.command("bert")
def bert(
    data: Optional[Path] = typer.Option(None, "--data", help="A reviews CSV, tokenized on the fly (default: the feature store)."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="A local Hugging Face checkpoint (default: the shipped MiniLM BERT)."),
    tiny: bool = typer.Option(False, "--tiny", help="A small randomly initialised BERT (fast tests)."),
    out: Path = typer.Option(..., "--out", help="Output folder: checkpoints, debugger/, profiler/, model/, summary.json."),
    max_seq_length: Optional[int] = typer.Option(None, help=_default(BertParams, "max_seq_length", "Tokens per review.")),
    epochs: Optional[int] = typer.Option(None, help=_default(BertParams, "epochs", "Passes over the training data.")),
    learning_rate: Optional[float] = typer.Option(None, help=_default(BertParams, "learning_rate", "Peak AdamW learning rate.")),
    train_batch_size: Optional[int] = typer.Option(None, help=_default(BertParams, "train_batch_size", "Rows per training batch.")),
    validation_batch_size: Optional[int] = typer.Option(None, help=_default(BertParams, "validation_batch_size", "Rows per evaluation batch.")),
    train_steps_per_epoch: Optional[int] = typer.Option(None, help="Batches per epoch (0: all)."),
    validation_steps_per_epoch: Optional[int] = typer.Option(None, help="Batches per evaluation (0: all)."),
    run_validation: Optional[bool] = typer.Option(None, "--run-validation/--no-run-validation",
                                                  help=_default(BertParams, "run_validation", "Evaluate on the validation data.")),
    seed: Optional[int] = typer.Option(None, help=_default(BertParams, "seed", "Seeds shuffling, new layers and dropout.")),
    freeze_bert_layer: Optional[bool] = typer.Option(None, "--freeze-bert-layer/--no-freeze-bert-layer",
                                                     help=_default(BertParams, "freeze_bert_layer", "Train the classifier head only.")),
    warmup_ratio: Optional[float] = typer.Option(None, help=_default(BertParams, "warmup_ratio", "Share of steps with a rising learning rate.")),
    weight_decay: Optional[float] = typer.Option(None, help=_default(BertParams, "weight_decay", "AdamW weight decay.")),
    gradient_clipping: Optional[float] = typer.Option(None, help="Max global gradient L2 norm (0: no clipping)."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many steps (0: no limit)."),
    validation_interval: Optional[int] = typer.Option(None, help="Also evaluate every N steps (0: epoch ends only)."),
    early_stopping_patience: Optional[int] = typer.Option(None, help="Stop after N evaluations without improvement (0: never)."),
    pooling: Optional[str] = typer.Option(None, help="What the head reads: mean (of the token states) or cls."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    rule: Optional[list[str]] = typer.Option(None, "--rule", help="A Debugger rule, e.g. 'LossNotDecreasing:num_steps=20' (repeat; default: the default rules; see `sagestack debug rules`)."),
    no_rules: bool = typer.Option(False, "--no-rules", help="Record only; evaluate no rule."),
    stop_on_finding: bool = typer.Option(False, "--stop-on-finding", help="A rule that fires stops training at that step."),
    debug_interval: int = typer.Option(100, help="Debugger save interval in steps (the loss is checked for NaN/inf at every step)."),
    profile: bool = typer.Option(True, "--profile/--no-profile", help="Run the Profiler."),
    profile_start_step: int = typer.Option(5, help="Profiler: the first step it records."),
    profile_num_steps: int = typer.Option(10, help="Profiler: how many steps it records."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out."),
    register: bool = RegisterOpt,
    model_name: str = ModelNameOpt,
    approve: bool = ApproveOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Fine-tune a BERT classifier, watched by the Debugger's rules and the Profiler."""
    from sagestack.bert.job import BertJobSpec, register_bert_job, train_bert
    from sagestack.bert.params import BertParams

    params = BertParams().updated(
        max_seq_length=max_seq_length, epochs=epochs, learning_rate=learning_rate, train_batch_size=train_batch_size,
        validation_batch_size=validation_batch_size, train_steps_per_epoch=train_steps_per_epoch,
        validation_steps_per_epoch=validation_steps_per_epoch, run_validation=run_validation, seed=seed,
        freeze_bert_layer=freeze_bert_layer, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
        gradient_clipping=gradient_clipping, max_steps=max_steps, validation_interval=validation_interval,
        early_stopping_patience=early_stopping_patience, pooling=pooling,
    )
    if data is not None:  # a file, or a name from `sagestack data list`
        from sagestack.data import resolve_dataset

        data = resolve_dataset(data, settings=settings()).path
    spec = BertJobSpec(params=params, data=data, model_dir=model_dir, tiny=tiny, device=device,
                       rules=() if no_rules else (tuple(rule) if rule else None), stop_on_finding=stop_on_finding,
                       debug_interval=debug_interval, profile=profile, profile_start_step=profile_start_step,
                       profile_num_steps=profile_num_steps, resume=resume)
    job = train_bert(spec, out, settings=settings() if data is None or register else None, progress=progress(json_output))
    summary = job.summary
    lines = [f"model: {summary['model_dir']} ({summary['training']['steps']} steps on {summary['device']}, "
             f"{summary['training']['samples_per_second']} samples/s)",
             f"validation_accuracy: {human(summary['validation_accuracy'])}",
             f"test_accuracy: {human(summary['test_accuracy'])}",
             *(f"debugger: {f['rule']} fired at step {f['step']}: {f['detail']}" for f in summary["findings"]),
             f"stopped: {summary['stop_reason']}" if summary["stopped"] else "stopped: no",
             f"reports: {summary['debugger_report']}" + (f", {summary['profiler_report']}" if summary["profiler_report"] else "")]
    if register:
        logged = register_bert_job(job, settings=settings(), approve=approve, model_name=model_name, data=data)
        summary.update(logged)
        lines.append(f"registered: {model_name} version {logged['registered']['version']} (kind bert)"
                     if logged["registered"] else f"not registered: {logged['not_registered']}")
    emit(summary, json_output, lines)


def kind_options(kind, *, pipeline: bool = False) -> list[inspect.Parameter]:
    """Command-line options for a kind's parameters (from its parameters model: type, help, default).

    Args:
        pipeline: name them as ``pipeline run`` does, ``--<param_prefix><field>``, each ``None``
            by default (the pipeline's default applies); else ``--<field>`` with the field's default.
    """
    options = []
    for name, field in kind.param_fields().items():
        full = f"{kind.param_prefix}{name}" if pipeline else name
        flag = "--" + full.replace("_", "-")
        shown = ("yes" if field.default else "no") if field.annotation is bool else field.default
        shown = repr(shown) if shown == "" else f"{shown:g}" if isinstance(shown, float) else shown
        help_text = (field.description or name.replace("_", " ")).rstrip(".") + f" (default {shown})."
        if field.annotation is bool:
            option = typer.Option(None if pipeline else field.default, f"{flag}/--no-{flag[2:]}", help=help_text)
        else:
            option = typer.Option(None if pipeline else field.default, flag, help=help_text)
        annotation = Optional[field.annotation] if pipeline else field.annotation
        options.append(inspect.Parameter(full, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation))
    return options


def split_kind_options(values: dict, *, pipeline: bool = True) -> dict[str, dict]:
    """Options of :func:`kind_options` (pipeline names) back to ``{trainer: {field: value}}``."""
    from sagestack.models.kinds import trainer_kinds

    found: dict[str, dict] = {}
    for kind in trainer_kinds():
        for name in kind.param_fields():
            full = f"{kind.param_prefix}{name}" if pipeline else name
            if full in values:
                found.setdefault(kind.trainer_name, {})[name] = values[full]
    return found


class generated_command:
    """A command function whose signature is given (typer reads ``__signature__`` and ``__annotations__``)."""

    def __init__(self, name: str, doc: str, signature: inspect.Signature, body) -> None:
        self.__name__, self.__doc__, self.__signature__, self._body = name, doc, signature, body
        self.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}

    def __call__(self, **options):
        return self._body(**options)


def train_kind_command(kind) -> typer.Typer:
    """``sagestack train <kind>`` for a kind without a command of its own: ``--data`` (a prepared
    folder), ``--out``, the kind's parameters, ``--seed`` and registration."""
    common = [
        inspect.Parameter("data", inspect.Parameter.KEYWORD_ONLY, annotation=Path, default=typer.Option(
            ..., "--data", help="A prepared data folder: train.csv, validation.csv, train.txt, ... (`sagestack data prepare`).")),
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Path, default=typer.Option(
            ..., "--out", help=f"Model output folder, written whole; a previous {kind.name} model there is replaced.")),
        inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=OverwriteOpt),
    ]
    tail = [
        inspect.Parameter("seed", inspect.Parameter.KEYWORD_ONLY, annotation=int,
                          default=typer.Option(42, "--seed", help="Seeds the trainer (default 42).")),
        inspect.Parameter("register", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=RegisterOpt),
        inspect.Parameter("model_name", inspect.Parameter.KEYWORD_ONLY, annotation=str, default=ModelNameOpt),
        inspect.Parameter("approve", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=ApproveOpt),
        inspect.Parameter("json_output", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=JsonOpt),
    ]

    def body(*, data: Path, out: Path, overwrite: bool, seed: int, register: bool, model_name: str, approve: bool,
             json_output: bool, **values) -> None:
        from sagestack.models.kinds import TrainContext

        check_out(out, f"train {kind.trainer_name}", overwrite, data)
        params = kind.make_params(values)
        result = kind.trainer(data, out, params, TrainContext(seed=seed, progress=progress(json_output)))
        summary = {**result, "model_dir": str(out), "params": params.model_dump()}
        lines = [f"model: {out} ({kind.name})"]
        if result.get("validation_accuracy") is not None:
            lines.append(f"validation_accuracy: {result['validation_accuracy']:.4f}")
        if register:
            _register(summary, lines, out, data / "train.csv", model_name, approve)
        emit(summary, json_output, lines)

    signature = inspect.Signature([*common, *kind_options(kind), *tail])
    doc = f"Train the {kind.name} kind on a prepared data folder: {kind.description}."
    single = typer.Typer()
    single.command(kind.trainer_name)(generated_command(kind.trainer_name, doc, signature, body))
    return single
