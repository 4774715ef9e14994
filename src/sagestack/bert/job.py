"""``sagestack train bert``: data, model, hooks, the loop, evaluation, MLflow and the registry.

The output folder is a working folder: ``checkpoints/`` (for ``--resume``), ``debugger/``
(the recording, findings and the Debugger report), ``profiler/`` (system and framework
metrics, the trace and the ProfilerReport), then — only once training succeeded — ``model/``
(written atomically) and ``summary.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from sagestack.bert.params import BertParams
from sagestack.errors import ConfigError

DEBUGGER_DIR, PROFILER_DIR, MODEL_DIR, CHECKPOINT_DIR = "debugger", "profiler", "model", "checkpoints"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class BertJobSpec:
    """A BERT training job.

    Attributes:
        params: hyperparameters.
        data: a reviews CSV to tokenize on the fly (split 90/5/5 with the seed); ``None`` reads
            the feature store.
        splits_dir: a folder with ``train.csv``, ``validation.csv`` and ``test.csv`` already split
            (the pipeline's prepared data, read back from the feature store), instead of ``data``.
        model_dir: a local Hugging Face checkpoint (``None``: the shipped MiniLM BERT).
        tiny: a small randomly initialised BERT instead (tests).
        device: ``auto``, ``cpu`` or ``cuda``.
        rules: Debugger rule specs (``"Name"`` or ``"Name:param=value,..."``); ``None``: the default rules.
        stop_on_finding: a finding stops training at its step.
        debug_interval: the Debugger's save interval (steps).
        profile: run the Profiler (system metrics, step phases, a trace window).
        profile_start_step / profile_num_steps: the trace window.
        resume: continue from the output folder's checkpoint.
    """

    params: BertParams = field(default_factory=BertParams)
    data: Path | None = None
    splits_dir: Path | None = None
    model_dir: Path | None = None
    tiny: bool = False
    device: str = "auto"
    rules: tuple[str, ...] | None = None
    stop_on_finding: bool = False
    debug_interval: int = 100
    profile: bool = True
    profile_start_step: int = 5
    profile_num_steps: int = 10
    resume: bool = False

    def check(self, out_dir: Path) -> None:
        """Refuse what cannot work before any training starts.

        Raises:
            ConfigError: ``--tiny`` with ``--model-dir``, a used ``--out`` without ``--resume``, a
                missing data file.
        """
        if self.tiny and self.model_dir:
            raise ConfigError("--tiny and --model-dir exclude each other; pass one")
        if self.data is not None and not Path(self.data).is_file():
            raise ConfigError(f"--data {self.data} is not a file; pass a reviews CSV")
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"--out {out_dir} is a file; pass a new folder for the run")
        if not self.resume and out_dir.exists() and any(out_dir.iterdir()):
            raise ConfigError(f"{out_dir} is not empty; pass a new --out, or --resume to continue its run")
        if self.debug_interval < 1:
            raise ConfigError(f"--debug-interval must be 1 or more, got {self.debug_interval}")
        if self.resume and not (out_dir / CHECKPOINT_DIR / "checkpoint.pt").is_file():
            raise ConfigError(f"--resume: {out_dir} holds no checkpoint; train without --resume first")
        from sagestack.bert.training import pick_device

        pick_device(self.device)  # an unknown device, or cuda without a GPU, before anything is written
        if self.profile:
            from sagestack.profiler import ProfilerConfig

            ProfilerConfig(start_step=self.profile_start_step, num_steps=self.profile_num_steps)


def make_rules(specs: tuple[str, ...] | None, stop: bool) -> list:
    """The Debugger rules of a job with their actions (``stop`` added when asked)."""
    from sagestack.debugger.hook import RuleAction
    from sagestack.debugger.rules import DEFAULT_RULES, parse_rule

    actions = ("log", "report", "stop") if stop else ("log", "report")
    return [RuleAction(parse_rule(text), actions) for text in (DEFAULT_RULES if specs is None else specs)]


def load_data(spec: BertJobSpec, tokenizer, settings=None) -> dict:
    """The train/validation/test splits, tokenized (from ``spec.data`` or the feature store)."""
    from sagestack.bert.data import csv_splits, encode, store_splits

    if spec.data is None and spec.splits_dir is None and settings is None:
        raise ConfigError("no data: pass a reviews CSV (--data), or settings whose home holds a feature store")
    length = spec.params.max_seq_length
    if spec.splits_dir is not None:
        import pandas as pd

        return {name: encode(pd.read_csv(Path(spec.splits_dir) / f"{name}.csv").sample(frac=1.0, random_state=spec.params.seed),
                             tokenizer, length) for name in ("train", "validation", "test")}
    if spec.data is not None:
        return {name: encode(frame, tokenizer, length) for name, frame in csv_splits(spec.data, spec.params.seed).items()}
    return store_splits(settings, tokenizer, length, spec.params.seed)


@dataclass
class BertJobResult:
    """A finished job: its summary (as ``summary.json``) and the test evaluation (for MLflow)."""

    summary: dict
    test_evaluation: object = None


def train_bert(spec: BertJobSpec, out_dir: Path | str, *, settings=None, progress=None,
               callbacks: tuple | list = ()) -> BertJobResult:
    """Fine-tune, watch and evaluate a BERT; write the output folder (no MLflow here).

    Returns:
        The summary (also ``summary.json``): params, the training result, the Debugger findings
        and whether a rule stopped training, validation/test evaluations and where things are;
        and the test :class:`~sagestack.models.Evaluation`.

    Args:
        callbacks: more training hooks, after the Debugger's and the Profiler's (e.g. a tuning
            trial's pruning callback).

    Raises:
        ConfigError / DataError: bad options or data (nothing is trained).
    """
    import torch

    from sagestack.bert.data import LABELS, tokenizer_fingerprint
    from sagestack.bert.model import build_model
    from sagestack.bert.training import train
    from sagestack.data.atomic import atomic_dir, atomic_file
    from sagestack.debugger.config import DebuggerConfig
    from sagestack.debugger.hook import DebuggerHook
    from sagestack.models.base import RESULT_FILE, ModelCard
    from sagestack.models.bert import BertPredictor
    from sagestack.models.evaluation import evaluate_predictor

    started, started_at = time.perf_counter(), time.time()
    out_dir = Path(out_dir)
    spec.check(out_dir)
    rules = make_rules(spec.rules, spec.stop_on_finding)
    model, tokenizer, source = build_model(spec.model_dir, tiny=spec.tiny, seed=spec.params.seed,
                                           freeze_bert_layer=spec.params.freeze_bert_layer,
                                           pooling=spec.params.pooling)
    splits = load_data(spec, tokenizer, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    hook = DebuggerHook(out_dir / DEBUGGER_DIR, DebuggerConfig(save_interval=spec.debug_interval), rules,
                        num_labels=len(LABELS))
    hooks = [hook]
    if spec.profile:
        from sagestack.profiler import Profiler, ProfilerConfig

        hooks.append(Profiler(out_dir / PROFILER_DIR, ProfilerConfig(start_step=spec.profile_start_step,
                                                                          num_steps=spec.profile_num_steps),
                                  created_at=started_at))
    if progress:
        progress(f"fine-tuning {source} on {len(splits['train'])} reviews")
    result = train(model, splits["train"], splits["validation"], spec.params, callbacks=[*hooks, *callbacks],
                   device=spec.device, checkpoint_dir=out_dir / CHECKPOINT_DIR, resume=spec.resume, progress=progress)
    refusal = not_registered_reason(hook.result.nonfinite_loss, hook.result.stopped)
    _write_debugger_report(out_dir / DEBUGGER_DIR, hook, refusal)

    model.to("cpu")
    predictor = BertPredictor(model, tokenizer, spec.params.max_seq_length)
    evaluations = {}
    for split in ("validation", "test"):
        if len(splits[split]):
            labels = [LABELS[i] for i in splits[split].labels]
            evaluations[split] = evaluate_predictor(predictor, splits[split].texts, labels)
    card = ModelCard(
        kind="bert", labels=list(predictor.labels),
        params={**spec.params.to_dict(), "base_model": source, "tokenizer_fingerprint":
                tokenizer_fingerprint(tokenizer, spec.params.max_seq_length),
                "data": str(spec.data or spec.splits_dir or "feature-store")},
        metrics={"train_seconds": result.train_seconds, "samples_per_second": result.samples_per_second,
                 "steps": result.steps, "debugger_findings": len(hook.result.findings),
                 "parameters": sum(p.numel() for p in model.parameters())},
        validation=evaluations["validation"].to_dict() if "validation" in evaluations else None,
    )
    with atomic_dir(out_dir / MODEL_DIR, command="train bert") as tmp:
        predictor.save(tmp)
        card.save(tmp)
    with atomic_file(out_dir / RESULT_FILE) as tmp:  # the same result file as every trainer's
        tmp.write_text(json.dumps(card.result(out_dir, out_dir / MODEL_DIR), indent=2), encoding="utf-8")
    summary = {
        "out_dir": str(out_dir), "model_dir": str(out_dir / MODEL_DIR), "kind": "bert", "base_model": source,
        "params": spec.params.to_dict(), "device": result.device, "bf16": result.bf16,
        "training": result.to_dict(), "findings": hook.result.to_dict()["findings"],
        "stopped": result.stopped, "stopped_by_rule": hook.result.stopped, "stop_reason": result.stop_reason,
        "nonfinite_loss": hook.result.nonfinite_loss,
        "validation_accuracy": evaluations["validation"].accuracy if "validation" in evaluations else None,
        "test_accuracy": evaluations["test"].accuracy if "test" in evaluations else None,
        "test_macro_f1": evaluations["test"].macro_f1 if "test" in evaluations else None,
        "debugger_report": str(out_dir / DEBUGGER_DIR / "report.html"),
        "profiler_report": str(out_dir / PROFILER_DIR / "profiler-report.html") if spec.profile else None,
        "torch_threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return BertJobResult(summary, evaluations.get("test"))


def _write_debugger_report(directory: Path, hook, refusal: str) -> None:
    from sagestack.debugger.report import write_debugger_report

    notes = [f"This run's model is not registered: {refusal}."] if refusal else []
    write_debugger_report(hook.recording(), hook.result.findings, directory / "report.html", notes=notes)


def log_bert_run(job: BertJobResult, *, settings, approve: bool = False, model_name: str | None = None,
                 parent_run_id: str | None = None, run_name: str = "bert", extra_tags: dict | None = None,
                 data: Path | None = None) -> dict:
    """Log a finished BERT job to MLflow (params, metrics, the Debugger's scalars and reports) and register it.

    ``parent_run_id`` makes it a child run (a tuning job's best trial); ``data`` (the CSV it was
    trained from; default: the feature store's table) is recorded for lineage (path and sha256).

    Returns:
        What :func:`sagestack.registry.log_model_run` returns.
    """
    from sagestack.debugger.mlflow import log_recording
    from sagestack.debugger.recording import Recording
    from sagestack.data.atomic import sha256_file
    from sagestack.registry import DEFAULT_MODEL_NAME, DatasetRef, log_model_run, registration_status

    summary = job.summary
    out_dir = Path(summary["out_dir"])
    approval, aliases = registration_status(approve)
    artifacts = {name: out_dir / name for name in (DEBUGGER_DIR, PROFILER_DIR) if (out_dir / name).is_dir()}
    tags = {"debugger.findings": ",".join(sorted({f["rule"] for f in summary["findings"]})) or "none",
            "debugger.stopped": str(summary["stopped_by_rule"]).lower(), **(extra_tags or {})}
    if data is None:
        from sagestack.features.store import FEATURES_FILE, feast_dir

        data = feast_dir(settings) / FEATURES_FILE
    dataset = DatasetRef(str(Path(data).resolve()), sha256_file(Path(data))) if Path(data).is_file() else None
    logged = log_model_run(summary["model_dir"], settings=settings, dataset=dataset, test_evaluation=job.test_evaluation,
                           model_name=model_name or DEFAULT_MODEL_NAME, approval=approval, aliases=aliases,
                           extra_tags=tags, extra_artifacts=artifacts, run_name=run_name, parent_run_id=parent_run_id)
    log_recording(settings, logged["run_id"], Recording.load(out_dir / DEBUGGER_DIR))
    return logged


NOT_REGISTERED_STOPPED = "a Debugger rule stopped training (see the findings); fix the run and retrain"
NOT_REGISTERED_DIVERGED = ("the weights are not fit to serve; lower --learning-rate or set --gradient-clipping, "
                           "and retrain")


def not_registered_reason(nonfinite_loss: dict | None, stopped_by_rule: bool) -> str:
    """Why a job's model must not be registered, in one line ("" when it may be).

    Args:
        nonfinite_loss: the Debugger's first non-finite training loss (``{"step", "value"}``) or
            None: a loss that became non-finite at any step bars the model, whether or not a rule
            stopped training.
        stopped_by_rule: a Debugger rule stopped training.
    """
    from sagestack.debugger.hook import HookResult

    divergence = HookResult(nonfinite_loss=nonfinite_loss).divergence
    if divergence:
        return f"{divergence}; {NOT_REGISTERED_DIVERGED}"
    return NOT_REGISTERED_STOPPED if stopped_by_rule else ""


def register_bert_job(job: BertJobResult, *, settings, approve: bool = False, model_name: str | None = None,
                      data: Path | None = None) -> dict:
    """Log and register a finished job, unless its training loss became non-finite or a Debugger
    rule stopped it: such a run is not a model to serve, so it is reported, not registered (and
    not logged to MLflow either).

    Returns:
        What :func:`log_bert_run` returns, or ``{"registered": None, "not_registered": <why>}``.
    """
    refusal = not_registered_reason(job.summary.get("nonfinite_loss"), job.summary["stopped_by_rule"])
    if refusal:
        return {"registered": None, "not_registered": refusal}
    return log_bert_run(job, settings=settings, approve=approve, model_name=model_name, data=data)


def train_prepared(prepared_dir: Path, model_dir: Path, params, context) -> dict:
    """The bert kind's trainer: fine-tune on the prepared splits, watched by the default Debugger
    rules and the Profiler; their reports go to ``context.reports_dir`` as ``debugger_report`` and
    ``profiler_report``.

    Raises:
        DataError: the loss diverged (a diverged model must not compete for @champion).

    Returns:
        ``{"kind", "validation_accuracy", "train_seconds", "samples_per_second", "steps", "device", "findings"}``.
    """
    import shutil
    import tempfile

    from sagestack.errors import DataError

    spec = BertJobSpec(params=params.job_params(context.seed), splits_dir=Path(prepared_dir), tiny=params.model == "tiny",
                       model_dir=Path(params.model) if params.model not in ("", "tiny") else None)
    with tempfile.TemporaryDirectory(prefix="sagestack-bert-") as work:
        summary = train_bert(spec, Path(work) / "run", progress=context.progress).summary
        if summary.get("nonfinite_loss"):
            raise DataError(f"the BERT branch diverged: {not_registered_reason(summary['nonfinite_loss'], False)}")
        shutil.copytree(Path(work) / "run" / MODEL_DIR, model_dir, dirs_exist_ok=True)
        if context.reports_dir is not None:
            Path(context.reports_dir).mkdir(parents=True, exist_ok=True)
            for name in ("debugger_report", "profiler_report"):
                shutil.copyfile(summary[name], Path(context.reports_dir) / name)
    return {"kind": summary["kind"], "validation_accuracy": summary["validation_accuracy"],
            "train_seconds": summary["training"]["train_seconds"],
            "samples_per_second": summary["training"]["samples_per_second"], "steps": summary["training"]["steps"],
            "device": summary["device"], "findings": [f["rule"] for f in summary["findings"]]}
