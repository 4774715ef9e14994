"""Run, compile and submit pipelines: the KFP glue behind ``sagestack pipeline ...``.

Locally the pipeline runs with KFP's own local runner (``SubprocessRunner(use_venv=False)``,
caching on, under ``$SAGESTACK_HOME/pipelines``); every line it prints goes to a log file and
is read back into a per-step summary (status, duration, artifacts), recorded as the run's history
through :mod:`sagestack.pipeline_runs` (which reads it back, without KFP).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sagestack.pipelines import DEFAULT_PIPELINE
from sagestack.errors import SagestackError
from sagestack.pipeline_runs import pipelines_folder, runs_folder, write_summary

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_CACHE_HIT = re.compile(r"Task ([\w-]+) cache hit \(key=(\w+)\)")
_EXCEPTION = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception|Failed)): (.+)$")


class PipelineFailed(SagestackError):
    """A pipeline step failed; the message names the step and its error."""


class _LineRecorder(io.TextIOBase):
    """A stdout stand-in that keeps (monotonic time, line) pairs and copies them to a log file."""

    def __init__(self, log, on_line: Callable[[str], None] | None) -> None:
        self.lines: list[tuple[float, str]] = []
        self._log, self._on_line, self._partial = log, on_line, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._log.write(text)
        self._partial += text
        *complete, self._partial = self._partial.split("\n")
        for line in complete:
            clean = _ANSI.sub("", line)
            self.lines.append((time.monotonic(), clean))
            if self._on_line:
                self._on_line(clean)
        return len(text)

    def flush(self) -> None:
        self._log.flush()


@contextlib.contextmanager
def _recording(log_path: Path, on_line) -> Iterator[_LineRecorder]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with open(log_path, "w", encoding="utf-8") as log:
        recorder = _LineRecorder(log, on_line)
        # Cache hits are logged outside KFP's per-task logger context: catch them at the root.
        handler = logging.StreamHandler(recorder)
        handler.setFormatter(logging.Formatter("%(message)s"))
        saved_stdout, saved_level = sys.stdout, root.level
        sys.stdout = recorder
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # KFP warns that a custom image runs in-process
                yield recorder
        finally:
            sys.stdout = saved_stdout
            root.removeHandler(handler)
            root.setLevel(saved_level)


def pipeline_task_components(pipeline) -> dict:
    """Every executing task of a compiled pipeline (branches included), in definition order,
    with its component spec (inputs and outputs)."""
    spec = pipeline.pipeline_spec
    found: dict = {}

    def walk(dag) -> None:
        for name, task in dag.tasks.items():
            component = spec.components[task.component_ref.name]
            if component.WhichOneof("implementation") == "dag":
                walk(component.dag)
            else:
                found[name] = component

    walk(spec.root.dag)
    return found


def pipeline_tasks(pipeline) -> list[str]:
    """Names of every executing task of a compiled pipeline, in definition order (branches included)."""
    return list(pipeline_task_components(pipeline))


def pipeline_branches(pipeline) -> dict[str, str]:
    """Each task of a trainer's branch (train and evaluate, or the stand-in of a trainer left out)
    with that trainer: the tasks of a condition in which one task takes a constant ``trainer``."""
    spec = pipeline.pipeline_spec
    found: dict[str, str] = {}

    def walk(dag) -> None:
        trainer, executing = None, []
        for name, task in dag.tasks.items():
            component = spec.components[task.component_ref.name]
            if component.WhichOneof("implementation") == "dag":
                walk(component.dag)
                continue
            executing.append(name)
            given = task.inputs.parameters.get("trainer")
            if given is not None and given.runtime_value.constant.WhichOneof("kind") == "string_value":
                trainer = given.runtime_value.constant.string_value
        if trainer:
            found.update(dict.fromkeys(executing, trainer))

    walk(spec.root.dag)
    return found


def _trainers(pipeline, arguments: dict, steps: list[dict], branches: dict[str, str]) -> list[str]:
    """The trainers of a run that trained, in registration order: chosen (``trainer_<name>``, given
    or the pipeline's default) and with a step of their branch that ran (a run that failed before
    training trained none)."""
    from sagestack.models.kinds import trainer_names

    defaults = {name: spec.default for name, spec in pipeline.component_spec.inputs.items()}
    ran = {step["trainer"] for step in steps if step.get("trainer") and step["status"] != "SKIPPED"}
    order = {name: i for i, name in enumerate(trainer_names())}
    return sorted((name for name in set(branches.values())
                   if name in ran and arguments.get(f"trainer_{name}", defaults.get(f"trainer_{name}"))),
                  key=lambda name: (order.get(name, len(order)), name))


def _cached_outputs(cache: Path, key_prefix: str) -> tuple[dict, dict]:
    """(artifacts, parameters) a cache hit replayed, read from KFP's cache entry for that key."""
    entries = sorted(cache.glob(f"{key_prefix}*.json"))
    if not entries:
        return {}, {}
    outputs = json.loads(entries[0].read_text())
    artifacts = {name: value["uri"] for name, value in outputs.items() if isinstance(value, dict) and "uri" in value}
    parameters = {name: value for name, value in outputs.items() if not (isinstance(value, dict) and "uri" in value)}
    return artifacts, parameters


def _with_reports(artifacts: dict) -> dict:
    """A train step's artifacts with each file of its ``reports`` folder listed by name (e.g.
    ``debugger_report``): one train component serves every kind, and each kind names its reports."""
    reports = artifacts.get("reports")
    if reports and Path(reports).is_dir():
        artifacts = {**artifacts, **{p.name: str(p) for p in sorted(Path(reports).iterdir())}}
    return artifacts


def _steps_from_log(lines: list[tuple[float, str]], tasks: list[str], run_dir: Path, cache: Path,
                    branches: dict[str, str]) -> list[dict]:
    started: dict[str, float] = {}
    steps: dict[str, dict] = {}
    order: list[str] = []  # steps in the order they ran (or hit the cache)
    for stamp, line in lines:
        if match := _EXECUTING.search(line):
            started[match.group(1)] = stamp
            order.append(match.group(1))
        elif match := _FINISHED.search(line):
            name = match.group(1)
            steps[name] = {"status": match.group(2), "seconds": round(stamp - started.get(name, stamp), 2)}
        elif match := _CACHE_HIT.search(line):
            steps[match.group(1)] = {"status": "CACHED", "seconds": 0.0, "key": match.group(2)}
            order.append(match.group(1))
    out = []
    for name in order + [t for t in tasks if t not in order]:
        step = {"name": name, **steps.get(name, {"status": "SKIPPED", "seconds": 0.0})}
        if name in branches:
            step["trainer"] = branches[name]
        task_dir = run_dir / name
        if step["status"] == "CACHED":
            # A cached step's outputs stay where the run that produced them wrote them.
            artifacts, parameters = _cached_outputs(cache, step.pop("key"))
            step["artifacts"] = _with_reports(artifacts)
            if parameters:
                step["outputs"] = parameters
        elif task_dir.is_dir():
            step["artifacts"] = _with_reports({p.name: str(p) for p in sorted(task_dir.iterdir())
                                               if p.name != "executor_output.json"})
            output_file = task_dir / "executor_output.json"
            if output_file.is_file():
                values = json.loads(output_file.read_text()).get("parameterValues", {})
                if values:
                    step["outputs"] = values
        out.append(step)
    return out


def _failure_message(lines: list[tuple[float, str]]) -> str:
    """The failing step and the last exception line printed inside it."""
    current, failed, error = None, None, None
    for _, line in lines:
        if match := _EXECUTING.search(line):
            current, error = match.group(1), None
        elif match := _FINISHED.search(line):
            if match.group(2) != "SUCCESS":
                failed = match.group(1)
                break
        elif current and (match := _EXCEPTION.match(line)):
            error = f"{match.group(1)}: {match.group(2)}"
    if failed is None:
        return "the pipeline failed before any step ran"
    return f"step '{failed}' failed: {error or 'see the log'}"


def _support_oneof_artifacts() -> None:
    """Let KFP's local runner resolve ``dsl.OneOf`` over artifacts, as KFP backends do.

    kfp 2.17's local orchestrator resolves ``dsl.OneOf`` over parameters but raises "Expected 1
    artifact in ArtifactSelectorSpec" for artifacts. The sentiment pipeline's trainer branches
    hand their model to the champion selection through ``dsl.OneOf``; this gives artifacts the
    same rule the local runner already applies to parameters: exactly one branch produced it.
    """
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

    def dag_output_artifacts(cls, dag_outputs_spec, io_store) -> dict:
        outputs = {}
        for key, spec in dag_outputs_spec.artifacts.items():
            found = []
            for selector in spec.artifact_selectors:
                try:
                    found.append(io_store.get_task_output(selector.producer_subtask, selector.output_artifact_key))
                except (KeyError, ValueError):  # that branch did not run
                    continue
            if len(found) != 1:
                raise ValueError(f"dsl.OneOf output {key!r}: {len(found)} branches produced it, expected exactly one")
            outputs[key] = found[0]
        return outputs

    OrchestratorUtils.get_dag_output_artifacts = classmethod(dag_output_artifacts)


def _candidates(steps: list[dict]) -> dict | None:
    """The champion selection (candidates, scores, winner) from the select step's artifact."""
    for step in steps:
        path = step.get("artifacts", {}).get("candidates")
        if path and Path(path).is_file():
            return json.loads(Path(path).read_text(encoding="utf-8"))
    return None


def run_local(
    arguments: dict,
    *,
    settings,
    pipeline: str = DEFAULT_PIPELINE,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run a pipeline with KFP's local runner, summarise every step and write ``summary.json``.

    Args:
        arguments: pipeline parameters (see ``sagestack.pipelines.sentiment.sentiment_pipeline``).
        settings: the sagestack settings; runs, cache and logs go under ``home/pipelines``.
        pipeline: the pipeline's name in :data:`sagestack.pipelines.PIPELINES`.
        progress: called with a short message as steps start or hit the cache.

    Returns:
        ``{"pipeline", "run", "status", "started_at", "seconds", "log", "arguments", "steps": [...],
        "trainers", "selection", "registered", "rejection"}``; ``steps`` lists every task's status
        (SUCCESS, CACHED, SKIPPED), seconds, artifact paths, output parameters and, for a branch's
        task, its ``trainer``; ``trainers`` the trainers that trained; ``selection`` the
        candidates' scores and the champion. The same document is written to the run's folder
        as ``summary.json`` (also for a failed run, with ``status`` FAILED and the ``error``).

    Raises:
        PipelineFailed: a step failed; the message names it and its error (no model is
            registered, since registration is the last step).
    """
    from kfp import local

    from sagestack.config import settings_parameter
    from sagestack.pipelines import get_pipeline
    from sagestack.data import resolve_dataset
    from sagestack.data.atomic import sha256_file

    pipeline_func = get_pipeline(pipeline)
    base = pipelines_folder(settings)
    root, cache = runs_folder(settings), base / "cache"
    root.mkdir(parents=True, exist_ok=True)
    _support_oneof_artifacts()
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        enable_caching=True,
        cache_root=str(cache),
        raise_on_error=True,
    )
    # The steps get these settings and nothing else (no sagestack.toml or SAGESTACK_* of their own),
    # and the dataset as resolved here, with its content hash, which also makes the step cache
    # follow the data's content, so an edited file re-runs.
    arguments = {**arguments, "settings": settings_parameter(settings)}
    if "data_path" in pipeline_func.component_spec.inputs:  # a pipeline that reads the dataset
        try:
            resolved = resolve_dataset(arguments.get("data_path") or None, settings=settings)
            arguments["data_path"] = str(resolved.path.resolve())
            arguments.setdefault("data_sha256", sha256_file(resolved.path))
        except SagestackError:
            pass  # the ingest step reports the missing data with its own message
    if arguments.get("include_reviewed"):
        from sagestack.review.training import pipeline_fingerprint

        # The step cache follows the reviewed labels too: a loop completed since the last run re-runs ingest.
        arguments.setdefault("reviewed_sha256", pipeline_fingerprint(settings))
    before = set(root.iterdir())
    log_path = base / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10**6}.log"

    def on_line(line: str) -> None:
        if progress and (match := _EXECUTING.search(line)):
            progress(f"running step {match.group(1)}")
        elif progress and (match := _CACHE_HIT.search(line)):
            progress(f"step {match.group(1)}: cached")

    started = datetime.now(timezone.utc)
    started_at = started.strftime("%Y-%m-%dT%H:%M:%S%z")
    start = time.monotonic()
    failure = None
    with _recording(log_path, on_line) as recorder:
        try:
            pipeline_func(**arguments)
        except RuntimeError:  # KFP's raise_on_error: a step failed
            failure = _failure_message(recorder.lines)
        except Exception as exc:  # anything else the runner raises still ends in a FAILED summary
            failure = f"failed in KFP's local runner: {type(exc).__name__}: {exc}"
    new_runs = sorted(set(root.iterdir()) - before)
    if new_runs:
        run_dir = new_runs[-1]
    else:
        # Every step came from the cache and KFP made no run folder: make one, named as KFP names
        # its runs, so this run has its summary.json too.
        run_dir = root / f"{pipeline_func.name}-{started.strftime('%Y-%m-%d-%H-%M-%S-%f')}"
        run_dir.mkdir()
    branches = pipeline_branches(pipeline_func)
    steps = _steps_from_log(recorder.lines, pipeline_tasks(pipeline_func), run_dir, cache, branches)
    outputs = {s["name"]: s.get("outputs", {}).get("Output") for s in steps if s["status"] not in ("SKIPPED", "FAILED")}
    summary = {
        "pipeline": pipeline_func.name,
        "run": run_dir.name,
        "status": "FAILED" if failure else "SUCCESS",
        "started_at": started_at,
        "seconds": round(time.monotonic() - start, 2),
        "log": str(log_path),
        "arguments": arguments,
        "steps": steps,
        "trainers": _trainers(pipeline_func, arguments, steps, branches),
        "selection": _candidates(steps),
        "registered": outputs.get("register-model"),
        "rejection": outputs.get("record-rejection"),
    }
    if failure:
        summary["error"] = failure
    write_summary(run_dir, summary)
    if failure:
        raise PipelineFailed(f"pipeline {pipeline_func.name} {failure}; log: {log_path}")
    return summary


def compile_pipeline(path: Path, pipeline: str = DEFAULT_PIPELINE) -> Path:
    """Compile a pipeline to KFP IR YAML at ``path`` (written atomically)."""
    from kfp import compiler

    from sagestack.pipelines import get_pipeline
    from sagestack.data.atomic import atomic_file

    with atomic_file(Path(path)) as tmp:
        staged = tmp.with_suffix(".yaml")  # the KFP compiler insists on a .yaml name
        try:
            compiler.Compiler().compile(get_pipeline(pipeline), str(staged))
            staged.replace(tmp)
        finally:
            staged.unlink(missing_ok=True)
    return Path(path)


@contextlib.contextmanager
def _kfp_client(host: str, what: str) -> Iterator:
    """A ``kfp.Client`` for ``host``; whatever KFP raises inside the block becomes one line.

    Raises:
        SagestackError: the host is not an http(s) URL, or the call failed (``could not <what> …``).
    """
    if not re.match(r"^https?://[^/\s]+", host or ""):
        raise SagestackError(f"--kfp-url must be the http(s) URL of a Kubeflow Pipelines API, got {host!r}")
    import kfp

    try:
        yield kfp.Client(host=host)
    except Exception as exc:  # kfp raises many transport-level types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SagestackError(f"could not {what} ({first}); check --kfp-url and that the KFP API is reachable") from None


def schedule(host: str, arguments: dict, cron: str, *, pipeline: str, experiment: str = "sagestack",
             job_name: str | None = None) -> dict:
    """Create a KFP recurring run of a pipeline on ``cron`` (KFP's six-field cron: seconds first).

    Raises:
        SagestackError: the host is not an http(s) URL or the endpoint cannot be reached.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(Path(tmp) / "pipeline.yaml", pipeline)
        with _kfp_client(host, f"schedule on {host}") as client:
            experiment_id = client.create_experiment(experiment).experiment_id
            job = client.create_recurring_run(
                experiment_id=experiment_id, job_name=job_name or f"sagestack-{pipeline}", cron_expression=f"0 {cron}",
                params=arguments, pipeline_package_path=str(package), max_concurrency=1, no_catchup=True,
                enable_caching=False,
            )
    return {"host": host, "recurring_run_id": job.recurring_run_id, "cron": cron, "experiment": experiment}


def submit(host: str, arguments: dict, *, pipeline: str = DEFAULT_PIPELINE, experiment: str = "sagestack",
           run_name: str | None = None) -> dict:
    """Submit a pipeline to a Kubeflow Pipelines endpoint with ``kfp.Client``.

    Raises:
        SagestackError: the host is not an http(s) URL or the endpoint cannot be reached.
    """
    from sagestack.pipelines import get_pipeline

    pipeline_func = get_pipeline(pipeline)
    with _kfp_client(host, f"submit to {host}") as client:
        run = client.create_run_from_pipeline_func(
            pipeline_func, arguments=arguments, experiment_name=experiment, run_name=run_name
        )
    return {"host": host, "run_id": run.run_id, "experiment": experiment}
