"""SageMaker Autopilot, done by ``sagestack automl``: an AutoML job's CSV (one channel, its
``TargetAttributeName``) is fitted by the same command a user runs, in a process of its own; its exploration
report and candidates become Autopilot's two notebooks, each candidate's model a ``model.tar.gz``, and a
candidate's ``InferenceContainers`` one container that a sagestack endpoint serves as Autopilot's inference
containers answer (``text/csv`` records in; ``predicted_label``, ``probability``, ``probabilities``, ``labels``
out as CSV, JSON or JSON Lines).

The job's secondary statuses follow the command's progress lines: ``AnalyzingData`` while the data is read and
explored, ``FeatureEngineering`` while the candidates' features are built, ``ModelTuning`` while AutoGluon fits
them (and the best is refit and explained), then ``MaxAutoMLJobRuntimeReached`` when ``sagestack automl`` says
its time limit cut a candidate, else ``MaxCandidatesReached`` or ``Completed`` (sagestack has fewer candidates than
asked for); a candidate missing for another reason is a warning in the job's log (:func:`final_status`).

sagestack's AutoML reads one text column: of the input columns it takes ``review_body``, else the one with the
longest values, and ignores the others (the job's log says which).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import threading
import time
from pathlib import Path
from typing import BinaryIO

from sagestack.aws.backends import Backends
from sagestack.aws.jobs import Job, JobFailed
from sagestack.aws.protocol import AwsError

# The repository of Autopilot's inference image: a model with it is served by :func:`invoke`.
INFERENCE_IMAGE = "sagemaker-sklearn-automl"
IMAGE_TAG = "2.5-1-cpu-py3"
IMAGE_ACCOUNT = "683313688378"  # the registry Autopilot's images come from (us-east-1's)
# AutoMLJobObjective.MetricName -> `sagestack automl --metric`.
METRICS = {"Accuracy": "accuracy", "F1": "f1", "F1macro": "macro_f1"}
PROBLEM_TYPES = ("BinaryClassification", "MulticlassClassification")
# The objectives each problem type has (of METRICS), its default first, as Autopilot resolves them.
OBJECTIVES = {"BinaryClassification": ("F1", "Accuracy"), "MulticlassClassification": ("Accuracy", "F1macro")}
INFERENCE_KEYS = ("predicted_label", "probability", "probabilities", "labels")
ACCEPTS = ("text/csv", "application/json", "application/jsonlines")
# The record layout and the labels' order a candidate's container answers with: written into its model.tar.gz
# (LAYOUT_FILE, read when an endpoint is created); the container's Environment may override each.
INPUT_COLUMNS, TEXT_COLUMN, LABELS = "SAGESTACK_INPUT_COLUMNS", "SAGESTACK_TEXT_COLUMN", "SAGESTACK_LABELS"
LAYOUT_FILE = "sagestack-autopilot.json"
EXPLORATION_NOTEBOOK = "SageMakerAutopilotDataExplorationNotebook.ipynb"
CANDIDATE_NOTEBOOK = "SageMakerAutopilotCandidateDefinitionNotebook.ipynb"
# A progress line of `sagestack automl` -> the secondary status it starts.
STAGES = (("... exploring", "AnalyzingData"), ("... fitting up to", "FeatureEngineering"),
          ("... features built", "ModelTuning"))
SAMPLE_ROWS = 200  # rows read to tell the text column from the others


def inference_image(region: str) -> str:
    """The image URI of a candidate's inference container."""
    return f"{IMAGE_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{INFERENCE_IMAGE}:{IMAGE_TAG}"


def job_prefix(job: Job) -> str:
    """``S3OutputPath/JOB``: where the job's artifacts go, as Autopilot lays them out."""
    return f"{job.request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job.name}"


def _processing_id(job: Job) -> str:
    """The id of the job's candidate-generation step (``pr-1-…``), part of the notebooks' S3 keys."""
    return "pr-1-" + hashlib.sha1(job.name.encode()).hexdigest()[:40]


def check_objective(metric: str, problem: str) -> None:
    """Refuse an objective the problem type has not (F1 is binary, F1macro multiclass), naming the default.

    Raises:
        JobFailed: such an objective (a ClientError).
    """
    if metric not in OBJECTIVES[problem]:
        raise JobFailed(f"ClientError: AutoMLJobObjective.MetricName {metric} is not an objective of {problem}; use "
                        f"{' or '.join(OBJECTIVES[problem])} (the default: {OBJECTIVES[problem][0]})")


def _problem_type(data: Path, target: str, stated: str | None) -> str:
    """The problem type of ``data``'s target: BinaryClassification for two classes, else Multiclass.

    Raises:
        JobFailed: fewer than two classes, or a stated ``ProblemType`` the classes contradict.
    """
    classes: set[str] = set()
    with open(data, newline="", encoding="utf-8-sig") as source:
        rows = csv.DictReader(source)
        for row in rows:
            value = (row.get(target) or "").strip()
            if value:
                classes.add(value)
    shown = ", ".join(sorted(classes)[:10]) + (", ..." if len(classes) > 10 else "")
    if len(classes) < 2:
        raise JobFailed(f"ClientError: the target attribute {target!r} has {len(classes)} class(es) ({shown or 'none'}) "
                        "in the input data; a classification needs at least two")
    problem = PROBLEM_TYPES[len(classes) > 2]
    if stated and stated != problem:
        raise JobFailed(f"ClientError: ProblemType {stated} was given but the target attribute {target!r} has "
                        f"{len(classes)} classes ({shown}): that is {problem}")
    return problem


def _gunzip(files: list[Path], work: Path) -> list[Path]:
    """The channel's files, gunzipped into ``work`` (its ``CompressionType`` is Gzip), in the same order.

    Raises:
        JobFailed: a file that is not gzip.
    """
    plain = []
    folder = work / "gunzipped"
    folder.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(sorted(files)):
        target = folder / f"{index:06d}.csv"
        try:
            with gzip.open(path, "rb") as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        except (OSError, EOFError) as exc:
            raise JobFailed(f"ClientError: {path.name} is not gzip, as the channel's CompressionType Gzip says "
                            f"({exc})") from None
        plain.append(target)
    return plain


def _join_csvs(files: list[Path], work: Path) -> Path:
    """The channel's CSV files as one (each has the header; the later ones' headers are dropped).

    Raises:
        JobFailed: files whose headers differ.
    """
    files = sorted(files)
    if len(files) == 1:
        return files[0]
    joined = work / "input.csv"
    header = None
    with open(joined, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        for path in files:
            with open(path, newline="", encoding="utf-8-sig") as source:
                rows = csv.reader(source)
                first = next(rows, [])
                if header is None:
                    header = first
                    writer.writerow(header)
                elif first != header:
                    raise JobFailed(f"ClientError: {path.name} has another header than {files[0].name}; every file of "
                                    "the input must have the same columns")
                writer.writerows(rows)
    return joined


def _columns(data: Path, target: str) -> tuple[list[str], str]:
    """The input columns of ``data`` (all but the target, in order) and the one read as text.

    Raises:
        JobFailed: no target column, or no other column (Autopilot's ClientError, raised while analysing).
    """
    try:
        with open(data, newline="", encoding="utf-8-sig") as source:
            rows = csv.reader(source)
            header = next(rows, [])
            sample = [row for _, row in zip(range(SAMPLE_ROWS), rows)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise JobFailed(f"ClientError: cannot read the input as CSV ({exc})") from None
    if target not in header:
        raise JobFailed(f"ClientError: the target attribute {target!r} is not a column of the input data; its columns "
                        f"are {', '.join(header) or 'none'} (the first row of the CSV is read as its header)")
    inputs = [column for column in header if column != target]
    if not inputs:
        raise JobFailed(f"ClientError: the input data has no column besides the target {target!r}")
    if "review_body" in inputs:
        return inputs, "review_body"
    lengths = {column: sum(len(row[i]) for row in sample if i < len(row)) for i, column in enumerate(header)
               if column != target}
    return inputs, max(inputs, key=lambda column: lengths[column])


def _time_limit(criteria: dict, candidates: int, left: float | None) -> float:
    """``sagestack automl --time-limit`` for the job's completion criteria: its default, bounded by the
    per-training-job runtime times the candidates and by half the ``left`` seconds of the job's runtime (the
    other half is the command's start, the exploration, the refit, the explanation and the uploads)."""
    from sagestack.automl.spec import DEFAULT_TIME_LIMIT, MIN_TIME_LIMIT

    limit = DEFAULT_TIME_LIMIT
    if criteria.get("MaxRuntimePerTrainingJobInSeconds"):
        limit = min(limit, criteria["MaxRuntimePerTrainingJobInSeconds"] * candidates)
    if left is not None:
        limit = min(limit, left / 2)
    return max(float(limit), MIN_TIME_LIMIT)


def _runtime_limit(backends: Backends, job: Job, criteria: dict) -> tuple[float, JobFailed] | None:
    """The job's ``MaxAutoMLJobRuntimeInSeconds`` as a wall-clock limit on its command (seconds from the job's
    start, so that it ends that long after its creation), and what the job fails with past it: the command is
    stopped before a candidate is ready."""
    runtime = criteria.get("MaxAutoMLJobRuntimeInSeconds")
    if not runtime:
        return None
    started = backends.jobs.get(job.kind, job.name).started or job.created
    return max(job.created + runtime - started, 0.001), JobFailed(  # 0 or less would mean no limit
        f"MaxAutoMLJobRuntimeReached: the job ran for its MaxAutoMLJobRuntimeInSeconds ({runtime}) before sagestack's "
        "AutoML had a candidate ready and was stopped; allow it more time", secondary="MaxAutoMLJobRuntimeReached")


class _StageWatcher:
    """Moves the job's secondary status along as the command's progress lines reach its log."""

    def __init__(self, backends: Backends, job: Job) -> None:
        self.backends, self.job, self.stage = backends, job, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name=f"automl-{job.name}", daemon=True)

    def _watch(self) -> None:
        from sagestack.aws.jobs import LOG_FILE

        position = 0
        while not self.done.wait(0.3):
            try:
                with open(self.job.folder / LOG_FILE, encoding="utf-8", errors="replace") as log:
                    log.seek(position)
                    lines = log.readlines()
                    position = log.tell()
            except OSError:
                continue
            for line in lines:
                for index, (prefix, status) in enumerate(STAGES):
                    if line.startswith(prefix) and index > self.stage:
                        self.stage = index
                        self.backends.jobs.update(self.job, secondary=status)

    def __enter__(self) -> "_StageWatcher":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


def run_automl_job(backends: Backends, job: Job) -> dict:
    """Run an AutoML job with ``sagestack automl``; upload each candidate's model and the two notebooks.

    Returns:
        What DescribeAutoMLJob and ListCandidatesForAutoMLJob answer from: the final secondary status, the
        problem type, the objective, the input columns and the candidates (ranked).

    Raises:
        JobFailed: a missing input, a target that is not a column, or ``sagestack automl``'s own error.
    """
    from sagestack.automl.candidates import CANDIDATES
    from sagestack.aws.containers import container_paths, download_prefix, upload_model

    request = job.request
    backends.jobs.update(job, secondary="AnalyzingData")
    channel = request["InputDataConfig"][0]
    target = channel["TargetAttributeName"]
    local = container_paths(job)
    files = download_prefix(backends, channel["DataSource"]["S3DataSource"]["S3Uri"],
                            local("/opt/ml/input/data/training"))
    work = job.folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    if channel.get("CompressionType") == "Gzip":
        files = _gunzip(files, work)
    data = _join_csvs(files, work)
    inputs, text_column = _columns(data, target)
    problem = _problem_type(data, target, request.get("ProblemType"))
    objective = (request.get("AutoMLJobObjective") or {}).get("MetricName") or OBJECTIVES[problem][0]
    check_objective(objective, problem)
    if len(inputs) > 1:
        backends.jobs.log(job, f"warning: sagestack's AutoML reads one text column, {text_column}; ignored: "
                               f"{', '.join(c for c in inputs if c != text_column)}")
    criteria = (request.get("AutoMLJobConfig") or {}).get("CompletionCriteria") or {}
    asked = criteria.get("MaxCandidates") or len(CANDIDATES)
    count = min(asked, len(CANDIDATES))
    if asked > count:
        backends.jobs.log(job, f"warning: MaxCandidates {asked} asked for; sagestack's AutoML has {count} candidates")
    out = work / "automl"
    runtime = criteria.get("MaxAutoMLJobRuntimeInSeconds")
    left = job.created + runtime - time.time() if runtime else None
    arguments = ["automl", "--data", str(data), "--target", target, "--text-column", text_column,
                 "--max-candidates", str(count), "--time-limit", f"{_time_limit(criteria, count, left):g}",
                 "--metric", METRICS[objective], "--no-register", "--export-candidates", "--out", str(out)]
    with _StageWatcher(backends, job):
        summary = backends.jobs.run_sagestack(job, arguments, work=work, env={"SAGESTACK_PROGRESS": "1"},
                                              limit=_runtime_limit(backends, job, criteria))
    labels = json.loads((out / "model" / "sagestack-model.json").read_text(encoding="utf-8"))["labels"]
    candidates = []
    for row in summary["leaderboard"]:
        name = f"{job.name}-{row['rank']:03d}-{row['name'].lower()}"[:64]
        model = out / "candidates" / row["name"] / "model"
        layout = {"input_columns": inputs, "text_column": text_column,
                  "labels": json.loads((model / "sagestack-model.json").read_text(encoding="utf-8"))["labels"]}
        candidates.append({"name": name, "candidate": row["name"], "rank": row["rank"],
                           "value": row[f"validation_{METRICS[objective]}"], "family": row["model_family"],
                           "model": upload_model(backends, model, f"{job_prefix(job)}/tuning/{name}/output/model.tar.gz",
                                                 work / "model.tar.gz",
                                                 first={LAYOUT_FILE: json.dumps(layout, indent=1).encode()})})
    secondary, lines = final_status(summary, count, asked)
    for line in lines:
        backends.jobs.log(job, line)
    result = {"problem_type": problem, "objective": objective, "inputs": inputs,
              "text_column": text_column, "labels": labels, "candidates": candidates, "secondary": secondary}
    result["artifacts"] = _upload_notebooks(backends, job, out, summary, result)
    return result


def final_status(summary: dict, count: int, asked: int) -> tuple[str, list[str]]:
    """The job's last secondary status from ``sagestack automl``'s result (``summary``; ``count`` candidates
    asked of it, for the job's ``asked``), and the log lines that say why candidates are missing.

    ``MaxAutoMLJobRuntimeReached`` only when the command says its time limit cut a candidate; else
    ``MaxCandidatesReached`` (``Completed`` when sagestack has fewer candidates than asked for), a candidate
    that failed for another reason said in the log.
    """
    from sagestack.automl.spec import TIME_CUT

    not_fitted = summary.get("not_fitted") or {}
    lines = [f"sagestack serve-aws: MaxAutoMLJobRuntimeReached: the time limit cut candidate {name} (not fitted)"
             if reason == TIME_CUT else f"sagestack serve-aws: warning: candidate {name} was not fitted: {reason}"
             for name, reason in not_fitted.items()]
    if summary.get("time_limit_cut"):
        return "MaxAutoMLJobRuntimeReached", lines
    fitted = len(summary["leaderboard"])
    if fitted < count:
        lines.append(f"sagestack serve-aws: warning: {fitted} of the {count} candidates asked for were fitted, and "
                     "the time limit cut none")
    return ("MaxCandidatesReached" if count == asked else "Completed"), lines


def _upload_notebooks(backends: Backends, job: Job, out: Path, summary: dict, result: dict) -> dict:
    """Write the two notebooks, and sagestack's own reports beside them; AutoMLJobArtifacts."""
    from sagestack.aws.autopilot_notebooks import candidate_notebook, exploration_notebook
    from sagestack.aws.containers import split_s3_uri

    notebooks = f"{job_prefix(job)}/sagemaker-automl-candidates/{_processing_id(job)}/notebooks"
    exploration = json.loads((out / "exploration.json").read_text(encoding="utf-8"))
    documents = {f"{notebooks}/{EXPLORATION_NOTEBOOK}": exploration_notebook(
                     exploration, (out / "exploration.html").read_text(encoding="utf-8")),
                 f"{notebooks}/{CANDIDATE_NOTEBOOK}": candidate_notebook(out, summary, result)}
    try:
        for uri, notebook in documents.items():
            path = job.folder / "work" / Path(uri).name
            path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
            backends.s3.put_file(*split_s3_uri(uri), path, "application/x-ipynb+json")
        reports = [out / name for name in ("exploration.html", "exploration.json", "leaderboard.csv",
                                           "leaderboard.html")]
        reports += sorted(p for p in (out / "candidates").glob("*/*") if p.is_file())
        for path in reports:
            backends.s3.put_file(*split_s3_uri(f"{job_prefix(job)}/sagestack/{path.relative_to(out).as_posix()}"),
                                 path)
    except AwsError as error:
        raise JobFailed(f"ClientError: cannot write the job's artifacts under {job_prefix(job)}: "
                        f"{error.message}") from None
    return {"DataExplorationNotebookLocation": f"{notebooks}/{EXPLORATION_NOTEBOOK}",
            "CandidateDefinitionNotebookLocation": f"{notebooks}/{CANDIDATE_NOTEBOOK}"}


def candidate_documents(backends: Backends, job: Job) -> list[dict]:
    """The job's candidates as ListCandidatesForAutoMLJob answers them (ranked: the best first)."""
    region, result = backends.identity.region, job.result
    environment = {"SAGEMAKER_INFERENCE_SUPPORTED": ",".join(INFERENCE_KEYS),
                   "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
                   "SAGEMAKER_PROGRAM": "sagemaker_serve", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
    arn = f"arn:aws:sagemaker:{region}:{backends.identity.account}:training-job/"
    return [{"CandidateName": candidate["name"], "CandidateStatus": "Completed", "ObjectiveStatus": "Succeeded",
             "FinalAutoMLJobObjectiveMetric": {"Type": "Maximize", "MetricName": result["objective"],
                                               "Value": candidate["value"]},
             "CandidateSteps": [{"CandidateStepType": "AWS::SageMaker::TrainingJob",
                                 "CandidateStepArn": arn + candidate["name"].lower(),
                                 "CandidateStepName": candidate["name"]}],
             "InferenceContainers": [{"Image": inference_image(region), "ModelDataUrl": candidate["model"],
                                      "Environment": dict(environment)}],
             "CreationTime": job.started, "EndTime": job.ended, "LastModifiedTime": job.ended}
            for candidate in result["candidates"]]


# -- the inference container ---------------------------------------------------------------------------------

def archive_environment(archive: BinaryIO) -> dict:
    """The container environment a candidate's ``model.tar.gz`` implies (its :data:`LAYOUT_FILE`: the input
    columns, the text column, the labels in the model's order); empty for an archive without one. The archive is
    read from its start and left there.
    """
    if not archive.seekable():
        return {}
    try:
        with tarfile.open(fileobj=archive, mode="r:*") as packed:
            for member in packed:
                if member.name.lstrip("./") == LAYOUT_FILE and member.isfile():
                    layout = json.loads(packed.extractfile(member).read())
                    return {INPUT_COLUMNS: json.dumps(layout["input_columns"]), TEXT_COLUMN: layout["text_column"],
                            LABELS: json.dumps(layout["labels"])}
    except (OSError, tarfile.TarError, ValueError, KeyError, TypeError):
        pass  # not a layout sagestack wrote: the container falls back to its Environment
    finally:
        archive.seek(0)
    return {}


def _records(body: bytes, environment: dict) -> list[str]:
    """The texts of a ``text/csv`` body: one record a line, the text column's field of each (a model of one
    input column takes the whole line, so an unquoted comma stays in the text).

    Raises:
        AwsError: a body that is not UTF-8 CSV, a record with the wrong number of fields, or no record.
    """
    inputs = json.loads(environment.get(INPUT_COLUMNS) or "[]")
    position = inputs.index(environment[TEXT_COLUMN]) if environment.get(TEXT_COLUMN) in inputs else 0
    try:
        rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AwsError("ModelError", f"the body is not UTF-8 CSV ({exc})", 424) from None
    texts = []
    for number, row in enumerate(rows, start=1):
        if not any(field.strip() for field in row):
            continue
        if len(inputs) <= 1:
            texts.append(",".join(row))
        elif len(row) != len(inputs):
            raise AwsError("ModelError", f"record {number} has {len(row)} fields; the model reads {len(inputs)} "
                           f"({', '.join(inputs)}), without the target", 424)
        else:
            texts.append(row[position])
    if not texts:
        raise AwsError("ModelError", "the body holds no record", 424)
    return texts


def _accepted(accept: str, environment: dict) -> str:
    """The response type for an ``Accept`` header (none or ``*/*``: the container's default).

    Raises:
        AwsError: no type this container writes.
    """
    default = environment.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "text/csv"
    for wanted in (part.split(";")[0].strip() for part in (accept or "*/*").split(",")):
        if wanted in ("", "*/*"):
            return default
        if wanted in ACCEPTS:
            return wanted
    raise AwsError("ModelError", f"Accept {accept} is not supported; the inference container writes "
                   f"{', '.join(ACCEPTS)}", 424)


def _answer(probabilities: dict, known: list[str]) -> dict:
    """Every key Autopilot's container can write, for one record's ``/predict`` probabilities (keyed by the
    model's own label strings: ``/predict``'s ``label`` may be a number that no longer spells its label, and its
    probabilities come most probable first). ``known``: the model's labels in order (else the keys, sorted)."""
    labels = [str(label) for label in known] if sorted(map(str, known)) == sorted(probabilities) \
        else sorted(probabilities)
    scores = [float(probabilities[label]) for label in labels]
    winner = max(range(len(labels)), key=scores.__getitem__)  # the first of a tie, as the model's argmax
    return {"predicted_label": labels[winner], "probability": scores[1] if len(labels) == 2 else scores[winner],
            "probabilities": scores, "labels": labels}


def invoke(url: str, body: bytes, content_type: str, accept: str, environment: dict) -> tuple[bytes, str]:
    """An Autopilot candidate's answer, from the sagestack endpoint at ``url``: ``text/csv`` records in, for each
    the keys of ``SAGEMAKER_INFERENCE_OUTPUT`` (default ``predicted_label``) out, as ``Accept`` asks: CSV lines
    (lists written as ``"[0.1, 0.9]"``), ``{"predictions": [{key: value}, ...]}`` or one JSON object a line.
    ``labels`` and ``probabilities`` are in the model's label order; ``probability`` is the second (positive)
    label's for a binary model and the predicted label's otherwise, as Autopilot's containers write them.

    Raises:
        AwsError: a body or Accept type the container refuses (``ModelError``, 424, as SageMaker relays it).
    """
    from sagestack.aws.endpoints import predict

    if content_type.split(";")[0].strip() != "text/csv":
        raise AwsError("ModelError", f"the Autopilot inference container reads text/csv, not {content_type}", 424)
    answer_type = _accepted(accept, environment)
    keys = [key.strip() for key in (environment.get("SAGEMAKER_INFERENCE_OUTPUT") or "predicted_label").split(",")
            if key.strip()]
    unknown = [key for key in keys if key not in INFERENCE_KEYS]
    if unknown:
        raise AwsError("ModelError", f"SAGEMAKER_INFERENCE_OUTPUT names {', '.join(unknown)}; the keys are "
                       f"{', '.join(INFERENCE_KEYS)}", 424)
    known = json.loads(environment.get(LABELS) or "[]")
    answers = []
    for prediction in predict(url, _records(body, environment)):
        answers.append({key: value for key, value in _answer(prediction["probabilities"], known).items()
                        if key in keys})
    if answer_type == "application/json":
        return json.dumps({"predictions": answers}).encode(), answer_type
    if answer_type == "application/jsonlines":
        return "".join(json.dumps(answer) + "\n" for answer in answers).encode(), answer_type
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    for answer in answers:
        writer.writerow([str(value) if isinstance(value, list) else value for value in answer.values()])
    return text.getvalue().encode(), answer_type
