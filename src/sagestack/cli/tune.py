"""``sagestack tune``: hyperparameter tuning (SageMaker's ``HyperparameterTuner``) with Optuna, or as a Katib Experiment.

BERT and fastText have commands of their own (early stopping, presets, fastText-format files); every
other trainable kind in the registry gets ``sagestack tune <kind>`` generated from its parameters
model when the command tree is built (so a kind registered at run time has one too)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from sagestack.cli.common import JsonOpt, check_out_file, emit, human, kind_group, progress, settings
from sagestack.registry import DEFAULT_MODEL_NAME

HELP = (
    "Tune hyperparameters with Optuna (random or TPE search, median-rule early stopping), or emit the same search "
    "as a Katib Experiment. Give hyperparameters as --name SPEC (any of the kind's, e.g. --max-steps 30) or "
    "--param name=SPEC. SPEC is a fixed value, a range low:high (log scale for learning rates and for ranges "
    "spanning 10x or more above 0; force it with low:high:log or low:high:linear) or a list x,y,z. "
    "--parallel N runs N trials as threads of this process: on a CPU each trial already uses every core "
    "(torch and fastText threads), so N > 1 only oversubscribes them; keep 1 unless trials wait on something "
    "else (a GPU with room for several)."
)


app = typer.Typer(help=HELP, short_help="Tune hyperparameters with Optuna, or emit a Katib Experiment.", no_args_is_help=True,
                  cls=kind_group(lambda kind: tune_kind_command(kind), "tune"))
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}

ParamOpt = typer.Option(None, "--param", help="A hyperparameter as name=SPEC (repeat): value, range low:high[:log|:linear] or list x,y.")
MaxTrialsOpt = typer.Option(4, help="Trials in all (failed and pruned ones count; --resume continues up to this).")
ParallelOpt = typer.Option(1, help="Trials at once, as threads (on a CPU keep 1; see `sagestack tune --help`).")
ObjectiveOpt = typer.Option("validation_accuracy", help="The metric to maximise.")
StrategyOpt = typer.Option("random", help="random (RandomSampler) or tpe (TPESampler).")
MaxFailedOpt = typer.Option(3, help="Stop the job once this many trials have failed.")
SeedOpt = typer.Option(42, help="Seeds the sampler and, unless searched or set with --param, the training.")
ResumeOpt = typer.Option(False, "--resume", help="Continue the study in --out (OUT/study.db).")
KatibOpt = typer.Option(None, "--emit-katib", help="Write the search as a Katib Experiment YAML to FILE and stop (add --run "
                        "to tune here too). Its trials read data from s3://BUCKET/KEY, http(s)://URL or pvc://CLAIM/PATH "
                        "(a PersistentVolumeClaim, mounted read-only), never from a local path.")
RunOpt = typer.Option(False, "--run", help="With --emit-katib: also run the trials here.")
OverwriteKatibOpt = typer.Option(False, "--overwrite", help="Replace the --emit-katib file if it exists.")
RegisterOpt = typer.Option(True, "--register/--no-register", help="Log the trials to MLflow and register the best model.")
ModelNameOpt = typer.Option(DEFAULT_MODEL_NAME, help="Registered model name (one per task, whatever the kind).")
ApproveOpt = typer.Option(False, "--approve", help="Register the best as Approved and make it @champion.")


def _tune(target, entries, out: Path, *, emit_katib: Optional[Path], run: bool, register: bool, model_name: str,
          approve: bool, resume: bool, json_output: bool, overwrite: bool, **search) -> None:
    from sagestack.tuning import TuningSpec, search_space, tune
    from sagestack.tuning.katib import experiment, write_experiment

    if emit_katib:
        check_out_file(emit_katib, overwrite, "--emit-katib")

    spec = TuningSpec(search_space(target, entries, search["seed"]), **search)
    if emit_katib:
        path = write_experiment(experiment(target, spec), emit_katib)
        if not run:
            return emit({"katib": str(path), "spec": spec.to_dict()}, json_output, [f"katib: {path} (kubectl apply -f {path})"])
    summary = tune(target, spec, out, settings=settings() if register else None, register=register, approve=approve,
                   model_name=model_name, resume=resume, progress=progress(json_output))
    best, registered = summary["best"], summary["registered"]
    lines = [f"trials: {sum(t['state'] == s for t in summary['trials'])} {s}" for s in ("complete", "pruned", "failed")]
    lines.append(f"best: trial {best['trial']} {spec.objective} {best['value']:.4f} ({human(best['params'])})" if best else "best: none")
    if registered and registered.get("registered"):
        lines.append(f"registered: {model_name} version {registered['registered']['version']} (kind {registered['kind']})")
    emit(summary, json_output, [*lines, f"summary: {Path(out) / 'summary.json'}"])
    if best is None:
        typer.echo(f"error: no trial completed; see {Path(out) / 'trials'}", err=True)
        raise typer.Exit(1)


@app.command("bert", context_settings=EXTRA)
def bert(
    ctx: typer.Context,
    learning_rate: Optional[str] = typer.Option(None, help="SPEC, e.g. 1e-5:5e-5 (log scale)."),
    train_batch_size: Optional[str] = typer.Option(None, help="SPEC, e.g. 64,128."),
    param: Optional[list[str]] = ParamOpt,
    data: Optional[str] = typer.Option(None, "--data", help="A reviews CSV (default: the feature store); with "
                                       "--emit-katib a URI: s3://…, http(s)://… or pvc://CLAIM/PATH."),
    model_dir: Optional[str] = typer.Option(None, "--model-dir", help="A local Hugging Face checkpoint (with --emit-katib: "
                                            "pvc://CLAIM/PATH)."),
    tiny: bool = typer.Option(False, "--tiny", help="A small randomly initialised BERT (fast tests)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    profile: bool = typer.Option(False, "--profile/--no-profile", help="Run the Profiler in every trial."),
    max_trials: int = MaxTrialsOpt, parallel: int = ParallelOpt, objective: str = ObjectiveOpt,
    strategy: str = StrategyOpt,
    early_stopping: str = typer.Option("off", help="auto (median rule, as SageMaker's Auto and Katib's medianstop) or off."),
    min_trials_required: int = typer.Option(3, help="Early stopping: completed trials before a trial may be stopped."),
    start_step: int = typer.Option(2, help="Early stopping: the first evaluation (from 1) at which a trial may be stopped."),
    max_failed_trials: int = MaxFailedOpt, seed: int = SeedOpt,
    out: Path = typer.Option(Path("tune-bert"), "--out", help="Job folder: study.db, trials/<n>/, summary.json."),
    resume: bool = ResumeOpt, emit_katib: Optional[Path] = KatibOpt, run: bool = RunOpt, overwrite: bool = OverwriteKatibOpt,
    register: bool = RegisterOpt, model_name: str = ModelNameOpt, approve: bool = ApproveOpt, json_output: bool = JsonOpt,
) -> None:
    """Tune BERT fine-tuning; any BertParams field is --name SPEC (e.g. --max-steps 30 --warmup-ratio 0:0.2)."""
    from sagestack.tuning import bert_target, parse_cli_args, parse_params

    entries = [(k, v) for k, v in (("learning_rate", learning_rate), ("train_batch_size", train_batch_size)) if v is not None]
    if data and "://" not in data and (run or not emit_katib):  # a file, or a name from `sagestack data list`
        from sagestack.data import resolve_dataset

        data = str(resolve_dataset(data, settings=settings()).path)
    target = bert_target(data=data, tiny=tiny, model_dir=model_dir, device=device, profile=profile,
                         settings=settings() if data is None else None, progress=progress(json_output))
    _tune(target, entries + parse_params(param) + parse_cli_args(ctx.args), out, emit_katib=emit_katib, run=run, overwrite=overwrite,
          register=register, model_name=model_name, approve=approve, resume=resume, json_output=json_output,
          objective=objective, max_trials=max_trials, parallel=parallel, strategy=strategy, early_stopping=early_stopping,
          min_trials_required=min_trials_required, start_step=start_step, max_failed_trials=max_failed_trials, seed=seed)


@app.command("fasttext", context_settings=EXTRA)
def fasttext(
    ctx: typer.Context,
    train: str = typer.Option(..., "--train", help="Training file in fastText format (with --emit-katib a URI: s3://…, "
                              "http(s)://… or pvc://CLAIM/PATH)."),
    validation: str = typer.Option(..., "--validation", help="Labelled validation file (the objective is scored here; "
                                   "a URI with --emit-katib)."),
    preset: str = typer.Option("sagestack", help="Defaults to start from: 'sagestack' or 'blazingtext'."),
    learning_rate: Optional[str] = typer.Option(None, help="SPEC, e.g. 0.01:1.0."),
    epochs: Optional[str] = typer.Option(None, help="SPEC, e.g. 5:30."),
    word_ngrams: Optional[str] = typer.Option(None, help="SPEC, e.g. 1,2,3."),
    param: Optional[list[str]] = ParamOpt,
    max_trials: int = MaxTrialsOpt, parallel: int = ParallelOpt, objective: str = ObjectiveOpt,
    strategy: str = StrategyOpt, max_failed_trials: int = MaxFailedOpt, seed: int = SeedOpt,
    out: Path = typer.Option(Path("tune-fasttext"), "--out", help="Job folder: study.db, trials/<n>/, summary.json."),
    resume: bool = ResumeOpt, emit_katib: Optional[Path] = KatibOpt, run: bool = RunOpt, overwrite: bool = OverwriteKatibOpt,
    register: bool = RegisterOpt, model_name: str = ModelNameOpt, approve: bool = ApproveOpt, json_output: bool = JsonOpt,
) -> None:
    """Tune the BlazingText-equivalent fastText classifier; any BlazingText hyperparameter is --name SPEC
    (no early stopping: fastText reports no intermediate values)."""
    from sagestack.tuning import fasttext_target, parse_cli_args, parse_params

    given = (("learning_rate", learning_rate), ("epochs", epochs), ("word_ngrams", word_ngrams))
    entries = [(k, v) for k, v in given if v is not None] + parse_params(param) + parse_cli_args(ctx.args)
    _tune(fasttext_target(train, validation, preset=preset), entries, out, emit_katib=emit_katib, run=run, overwrite=overwrite,
          register=register, model_name=model_name, approve=approve, resume=resume, json_output=json_output,
          objective=objective, max_trials=max_trials, parallel=parallel, strategy=strategy, early_stopping="off",
          max_failed_trials=max_failed_trials, seed=seed)


def tune_kind_command(kind) -> typer.Typer:
    """``sagestack tune <kind>`` for a kind without a command of its own: ``--data`` (a prepared
    folder), each of the kind's parameters as ``--name SPEC``, the search and registration options."""
    from sagestack.cli.train import generated_command

    def option(name: str, annotation, default) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)

    common = [
        option("data", str, typer.Option(..., "--data", help="A prepared data folder (`sagestack data prepare`); with "
                                         "--emit-katib a folder on a volume: pvc://CLAIM/PATH.")),
        option("param", Optional[list[str]], ParamOpt),
        option("max_trials", int, MaxTrialsOpt), option("parallel", int, ParallelOpt),
        option("objective", str, ObjectiveOpt), option("strategy", str, StrategyOpt),
        option("max_failed_trials", int, MaxFailedOpt), option("seed", int, SeedOpt),
        option("out", Path, typer.Option(Path(f"tune-{kind.trainer_name}"), "--out",
                                         help="Job folder: study.db, trials/<n>/, summary.json.")),
        option("resume", bool, ResumeOpt), option("emit_katib", Optional[Path], KatibOpt), option("run", bool, RunOpt),
        option("overwrite", bool, OverwriteKatibOpt), option("register", bool, RegisterOpt),
        option("model_name", str, ModelNameOpt), option("approve", bool, ApproveOpt), option("json_output", bool, JsonOpt),
    ]
    taken = {p.name for p in common}
    # A parameter named like one of the command's own options (e.g. seed) is given with --param.
    fields = [name for name in kind.param_fields() if name not in taken]
    params = [option(name, Optional[str], typer.Option(None, "--" + name.replace("_", "-"), help=(
        (field.description or name.replace("_", " ")).rstrip(".") + ": SPEC (a value, a range low:high or a list x,y)."
    ))) for name, field in kind.param_fields().items() if name in fields]
    signature = inspect.Signature([common[0], *params, *common[1:]])

    def body(*, data: str, param: Optional[list[str]], out: Path, emit_katib: Optional[Path], run: bool, overwrite: bool,
             register: bool, model_name: str, approve: bool, resume: bool, json_output: bool, **values) -> None:
        from sagestack.tuning import kind_target, parse_params

        entries = [(name, values.pop(name)) for name in fields if values.get(name) is not None]
        for name in fields:
            values.pop(name, None)
        _tune(kind_target(kind, data, progress=progress(json_output)), entries + parse_params(param), out,
              emit_katib=emit_katib, run=run, overwrite=overwrite, register=register, model_name=model_name,
              approve=approve, resume=resume, json_output=json_output, early_stopping="off", **values)

    doc = (f"Tune the {kind.name} kind on a prepared data folder: {kind.description}; any of its parameters is "
           f"--name SPEC (no early stopping: it reports no intermediate values).")
    single = typer.Typer()
    single.command(kind.trainer_name)(generated_command(kind.trainer_name, doc, signature, body))
    return single
