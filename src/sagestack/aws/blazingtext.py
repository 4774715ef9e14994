"""The BlazingText training container, done by ``sagestack train fasttext --preset blazingtext``: the job's
hyperparameters become the command's options, its ``train`` (and ``validation``) channel the training files, and
the model folder it writes becomes the job's ``model.tar.gz``. Validation accuracy is reported as BlazingText's
``validation:accuracy`` metric."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from sagestack.aws.backends import Backends
from sagestack.aws.jobs import Job, JobFailed

# BlazingText hyperparameter -> the `sagestack train fasttext` option taking its value.
OPTIONS = {"mode": "--mode", "epochs": "--epochs", "learning_rate": "--learning-rate", "min_count": "--min-count",
           "vector_dim": "--vector-dim", "word_ngrams": "--word-ngrams", "patience": "--patience",
           "min_epochs": "--min-epochs", "buckets": "--buckets", "window_size": "--window-size",
           "negative_samples": "--negative-samples"}
# BlazingText hyperparameters that are switches.
SWITCHES = {"early_stopping": ("--early-stopping", "--no-early-stopping"), "subwords": ("--subwords", "--no-subwords")}
MODES = {"supervised": "supervised", "skipgram": "skipgram", "cbow": "cbow", "batch_skipgram": "skipgram"}
MODEL_DIR = "/opt/ml/model"
# The metrics the algorithm reports (DescribeTrainingJob's AlgorithmSpecification.MetricDefinitions; its log
# prints the same line).
METRIC_DEFINITIONS = [{"Name": "validation:accuracy", "Regex": "#validation_accuracy: (\\S+)"}]


def train_options(hyperparameters: dict[str, str], log: Callable[[str], None]) -> list[str]:
    """The ``sagestack train fasttext`` options for BlazingText's hyperparameters (unknown ones are logged and
    ignored, as they cannot change what fastText does here).

    Raises:
        JobFailed: no mode, an unknown mode, or a switch that is not true/false.
    """
    values = {key: str(value).strip().strip('"') for key, value in hyperparameters.items()}
    mode = values.get("mode")
    if mode not in MODES:
        raise JobFailed(f"ClientError: hyperparameter mode must be one of {', '.join(MODES)} (got {mode!r})")
    options = ["--mode", MODES[mode]]
    for key, value in values.items():
        if key == "mode":
            continue
        if key in OPTIONS:
            options += [OPTIONS[key], value]
        elif key in SWITCHES:
            if value.lower() not in ("true", "false"):
                raise JobFailed(f"ClientError: hyperparameter {key} must be true or false (got {value!r})")
            options.append(SWITCHES[key][0 if value.lower() == "true" else 1])
        else:
            log(f"warning: hyperparameter {key}={value} is not used by sagestack's fastText; ignored")
    return options


def _channel_file(folder: Path, channel: str, work: Path) -> Path:
    """The channel's data as one file (several files are joined, in name order)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        raise JobFailed(f"ClientError: the {channel} channel holds no file")
    if len(files) == 1:
        return files[0]
    joined = work / f"{channel}.txt"
    with open(joined, "wb") as out:
        for path in files:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
                ends_a_line = False
                if source.tell():
                    source.seek(-1, os.SEEK_END)
                    ends_a_line = source.read(1) == b"\n"
            if not ends_a_line:  # each file's last line ends before the next file's first
                out.write(b"\n")
    return joined


def run_blazingtext_job(backends: Backends, job: Job, local: Callable[[str], Path]) -> dict:
    """Train with ``sagestack train fasttext`` into the container's model folder; returns the final metrics.

    Raises:
        JobFailed: no train channel, bad hyperparameters, or the training's own error.
    """
    work = job.folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    channels = {item["ChannelName"]: local(f"/opt/ml/input/data/{item['ChannelName']}")
                for item in job.request.get("InputDataConfig", [])}
    if "train" not in channels:
        raise JobFailed("ClientError: a BlazingText job needs a channel named train")
    arguments = ["train", "fasttext", "--preset", "blazingtext", "--train",
                 str(_channel_file(channels["train"], "train", work))]
    if "validation" in channels:
        arguments += ["--validation", str(_channel_file(channels["validation"], "validation", work))]
    arguments += [*train_options(job.request.get("HyperParameters") or {}, lambda line: backends.jobs.log(job, line)),
                  "--out", str(local(MODEL_DIR)), "--no-register"]
    result = backends.jobs.run_sagestack(job, arguments, work=work)
    metrics = {}
    if result.get("validation_accuracy") is not None:
        metrics["validation:accuracy"] = result["validation_accuracy"]
        backends.jobs.log(job, f"#validation_accuracy: {result['validation_accuracy']:.4f}")
    return {"metrics": metrics}


def invoke(url: str, body: bytes, content_type: str, accept: str, environment: dict) -> tuple[bytes, str]:  # noqa: ARG001
    """A BlazingText endpoint's answer, from the sagestack endpoint at ``url``: ``{"instances": [...],
    "configuration": {"k": K}}`` in, ``[{"label": ["__label__1", ...], "prob": [0.9, ...]}, ...]`` out (the
    ``k`` most probable labels of each instance, as BlazingText answers; it answers JSON whatever ``accept``).

    Raises:
        AwsError: a body BlazingText would refuse (``ModelError``, 424, as SageMaker relays a model's error).
    """
    from sagestack.aws.endpoints import predict
    from sagestack.aws.protocol import AwsError

    if content_type.split(";")[0].strip() != "application/json":
        raise AwsError("ModelError", f"the BlazingText endpoint here reads application/json, not {content_type}", 424)
    try:
        document = json.loads(body)
        instances = [str(text) for text in document["instances"]]
        k = int((document.get("configuration") or {}).get("k", 1))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise AwsError("ModelError", 'the body must be {"instances": ["text", ...], "configuration": {"k": N}}',
                       424) from None
    answers = []
    for prediction in predict(url, instances):
        ranked = sorted(prediction["probabilities"].items(), key=lambda item: -item[1])[:max(k, 1)]
        answers.append({"label": [f"__label__{label}" for label, _ in ranked], "prob": [p for _, p in ranked]})
    return json.dumps(answers).encode(), "application/json"
