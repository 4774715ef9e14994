"""The same tuning job as a Katib ``Experiment`` (``kubeflow.org/v1beta1``), for a cluster.

Each Katib trial is a ``batch/v1`` Job running ``sagestack train <kind>`` (any trainable kind of
the registry) on sagestack's image with the trial's hyperparameters substituted (``${trialParameters.learningRate}``); Katib's
``StdOut`` metrics collector reads the objective from the trial's output lines
``validation_accuracy=<value>`` or ``validation_accuracy: <value>``. Early stopping ``auto``
becomes Katib's ``medianstop`` with the same two settings; random/TPE search becomes Katib's
``random``/``tpe`` (hyperopt) suggestion. Trials run with ``--no-register``: register the
best trial's hyperparameters with ``sagestack train`` once Katib reports them.

A trial pod cannot read this machine's files, so data (``--data``, ``--train``, ``--validation``,
and ``--model-dir`` for BERT) is given as a URI the pod can reach: ``s3://BUCKET/KEY`` or
``http(s)://URL`` (an init container copies the file into the trial's ``/work/data`` before it
trains; S3 takes the usual ``AWS_*`` variables, add them to the trial template) or
``pvc://CLAIM/PATH`` (a file or folder on a PersistentVolumeClaim, mounted read-only at
``/data/CLAIM``); a prepared data folder (``--data`` of a kind without a tuning target of its own)
can only come from a volume. A plain local path is refused with a line that says so. BERT without
``--data`` reads the feature store. The trial's resources come from the kind's registry entry (its
size, and one GPU when it trains on one).

Manifests are checked against Katib's published API schema, vendored in ``schemas/``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from sagestack.errors import ConfigError

API_VERSION, KIND = "kubeflow.org/v1beta1", "Experiment"
IMAGE = "ghcr.io/sagestack/sagestack"
SCHEMA_FILE = Path(__file__).with_name("schemas") / "katib-v1beta1-experiment.json"
CONTAINER = "training-container"
WORK = "/work"
# Data options of `sagestack train <kind>` whose values must be reachable from the trial pod, and
# the URI schemes each may take (a folder such as --model-dir can only come from a volume).
DATA_OPTIONS = {"--data": ("s3", "http", "https", "pvc"), "--train": ("s3", "http", "https", "pvc"),
                "--validation": ("s3", "http", "https", "pvc"), "--model-dir": ("pvc",)}
PVC_ROOT = "/data"
FETCH_CONTAINER = "fetch-data"
# Katib's StdOut collector: "name=value" (its default) or "name: value" (what `sagestack train` prints).
METRICS_FORMAT = r"([\w|-]+)\s*[:=]\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
ALGORITHMS = {"random": "random", "tpe": "tpe"}  # sagestack strategy -> Katib suggestion (hyperopt)
# Katib's enumerations (pkg/apis/controller/experiments/v1beta1 and common/v1beta1).
PARAMETER_TYPES = ("double", "int", "discrete", "categorical")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
OBJECTIVE_TYPES = ("maximize", "minimize")
COLLECTOR_KINDS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None")

# How the hand-written `sagestack train bert|fasttext` take each hyperparameter: "value" (--name VALUE),
# "switch" (--name/--no-name) or "flag" (--name only when true). A name not here has no option there.
# Every other kind's command is generated from its parameters model (see train_options).
TRAIN_OPTIONS: dict[str, dict[str, str]] = {
    "bert": {**dict.fromkeys(("max_seq_length", "epochs", "learning_rate", "train_batch_size", "validation_batch_size",
                              "train_steps_per_epoch", "validation_steps_per_epoch", "seed", "warmup_ratio",
                              "weight_decay", "gradient_clipping", "max_steps", "validation_interval",
                              "early_stopping_patience", "pooling"), "value"),
             "run_validation": "switch", "freeze_bert_layer": "switch"},
    "fasttext": {**dict.fromkeys(("mode", "epochs", "learning_rate", "min_count", "vector_dim", "word_ngrams", "buckets",
                                  "patience", "min_epochs", "window_size", "negative_samples", "threads", "seed"), "value"),
                 "early_stopping": "switch", "subwords": "switch", "quantize": "flag"},
}
# Per-trial pod resources by the kind's size; a kind that trains on a GPU asks for one more.
# Threads follow the CPU request, not the node's cores.
RESOURCES = {
    "train": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    "heavy": {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}},
}
GPU = "nvidia.com/gpu"


def camel(name: str) -> str:
    """``learning_rate`` -> ``learningRate`` (Katib's trial parameter names)."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float) else str(value)


def train_options(kind) -> dict[str, str]:
    """How ``sagestack train <kind>`` takes each hyperparameter: :data:`TRAIN_OPTIONS` for the
    hand-written commands, else from the kind's parameters model (a bool is a switch) plus ``--seed``."""
    if kind.trainer_name in TRAIN_OPTIONS:
        return TRAIN_OPTIONS[kind.trainer_name]
    options = {name: "switch" if field.annotation is bool else "value" for name, field in kind.param_fields().items()}
    return {**options, "seed": options.get("seed", "value")}


def resources(kind) -> dict:
    """A trial pod's resources: by the kind's size, with one GPU when it trains on one."""
    asked = {part: dict(values) for part, values in RESOURCES[kind.size].items()}
    if kind.gpu:
        for values in asked.values():
            values[GPU] = "1"
    return asked


def _option(kind: str, options: dict[str, str], name: str, value: Any, searched: bool) -> list[str]:
    style = options.get(name)
    flag = "--" + name.replace("_", "-")
    if style is None:
        raise ConfigError(f"`sagestack train {kind}` has no {flag} option, so a Katib trial cannot set {name}; "
                          f"leave it at its default to emit a Katib Experiment")
    if style != "value" and searched:
        raise ConfigError(f"a Katib trial cannot search the switch {flag}; fix it to true or false")
    if style == "switch":
        return [flag if value else "--no-" + flag[2:]]
    if style == "flag":
        return [flag] if value else []
    return [flag, value if searched else _value(value)]


def _claim_volume(claim: str) -> str:
    return "data-" + re.sub(r"[^a-z0-9-]", "-", claim.lower())[:57]


def pod_data(command: list[str], data_options: dict | None = None) -> tuple[list[str], list[dict], list[dict], list[str]]:
    """Rewrite the data options of a trial command for the pod.

    Args:
        command: the trial's command.
        data_options: its data options and the URI schemes each may take (default :data:`DATA_OPTIONS`).

    Returns:
        ``(command, volumes, mounts, fetches)``: the command with pod paths, the PVC volumes and
        their read-only mounts, and ``[uri, pod path, ...]`` for the init container to download.

    Raises:
        ConfigError: a data option is a local path (or a URI of a scheme the option cannot take).
    """
    from urllib.parse import urlparse

    out, volumes, mounts, fetches = list(command), [], [], []
    for i, word in enumerate(command[:-1]):
        schemes = (DATA_OPTIONS if data_options is None else data_options).get(word)
        if schemes is None:
            continue
        value = command[i + 1]
        uri = urlparse(value)
        how = ("pass pvc://CLAIM/PATH (a folder on a PersistentVolumeClaim)" if schemes == ("pvc",) else
               "pass s3://BUCKET/KEY or http(s)://URL (copied into the trial before it trains) or pvc://CLAIM/PATH "
               "(a file on a PersistentVolumeClaim)")
        if uri.scheme not in schemes or not uri.netloc or (uri.scheme in ("s3", "pvc") and uri.path in ("", "/")):
            raise ConfigError(f"{word} {value} is not something a Katib trial pod can read; {how}")
        if uri.scheme == "pvc":
            name, mount = _claim_volume(uri.netloc), f"{PVC_ROOT}/{uri.netloc}"
            if all(v["name"] != name for v in volumes):
                volumes.append({"name": name, "persistentVolumeClaim": {"claimName": uri.netloc, "readOnly": True}})
                mounts.append({"name": name, "mountPath": mount, "readOnly": True})
            out[i + 1] = mount + uri.path
        else:
            target = f"{WORK}/data/{word.lstrip('-')}/{Path(uri.path).name or 'data'}"
            fetches += [value, target]
            out[i + 1] = target
    return out, volumes, mounts, fetches


def fetch_all(pairs: list[str]) -> None:
    """Copy each ``uri`` to its ``path`` (``[uri, path, uri, path, ...]``): what a trial's init
    container runs. ``s3://`` goes through pyarrow's S3 filesystem (``AWS_*`` variables, an
    ``AWS_ENDPOINT_URL`` for S3-compatible stores), ``http(s)://`` through urllib.

    Raises:
        SagestackError: a download fails (the trial then fails before training).
    """
    import shutil
    import urllib.request

    from sagestack.data.atomic import atomic_file
    from sagestack.errors import DataError

    for uri, path in zip(pairs[::2], pairs[1::2]):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_file(target) as tmp:
                if uri.startswith(("http://", "https://")):
                    with urllib.request.urlopen(uri, timeout=300) as response, open(tmp, "wb") as out:
                        shutil.copyfileobj(response, out, 1 << 20)
                else:
                    from pyarrow import fs

                    filesystem, key = fs.FileSystem.from_uri(uri)
                    with filesystem.open_input_stream(key) as source, open(tmp, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
        except OSError as exc:  # urllib's errors and pyarrow's are OSErrors
            raise DataError(f"could not fetch {uri} ({str(exc).splitlines()[0][:300]})") from None
        print(f"fetched {uri} -> {target} ({target.stat().st_size} bytes)", flush=True)


def parameter(dimension) -> dict:
    """A Katib ``ParameterSpec`` for one searched hyperparameter (log ranges as ``logUniform``)."""
    if dimension.type == "categorical":
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in dimension.choices)
        return {"name": dimension.name, "parameterType": "discrete" if numeric else "categorical",
                "feasibleSpace": {"list": [_value(v) for v in dimension.choices]}}
    space = {"min": _value(dimension.low), "max": _value(dimension.high),
             "distribution": "logUniform" if dimension.log else "uniform"}
    return {"name": dimension.name, "parameterType": "double" if dimension.type == "float" else "int",
            "feasibleSpace": space}


def experiment(target, spec, *, name: str | None = None, image: str | None = None) -> dict:
    """The Katib ``Experiment`` of a tuning job.

    Args:
        target: the model kind (its ``command`` is the trial's base command).
        spec: the space and how to search it.
        name: ``metadata.name`` (default ``sagestack-tune-<kind>``).
        image: the trial image (default ``ghcr.io/sagestack/sagestack:<sagestack version>``).

    Returns:
        The manifest as a dict (validated against Katib's schema).

    Raises:
        ConfigError: a hyperparameter the trial command cannot take (see :func:`train_options`), or
            data given as a local path (see the module docstring for the URIs a trial reads).
    """
    from sagestack import __version__
    from sagestack.models.kinds import kind_for_trainer

    kind = target.kind
    entry = kind_for_trainer(kind)
    options = train_options(entry)
    asked = resources(entry)
    threads = asked["requests"]["cpu"]
    fixed = dict(spec.space.fixed)
    if "threads" in options:  # the trainer's threads follow the pod's CPU request
        fixed.setdefault("threads", int(threads))
    base, data_volumes, data_mounts, fetches = pod_data(list(target.command), target.data_options)
    command = [*base, "--out", f"{WORK}/out", "--no-register"]
    for key, value in fixed.items():
        command += _option(kind, options, key, value, searched=False)
    for dimension in spec.space.dimensions:
        command += _option(kind, options, dimension.name, f"${{trialParameters.{camel(dimension.name)}}}", searched=True)
    security = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    work_mounts = [{"name": "work", "mountPath": WORK}, {"name": "tmp", "mountPath": "/tmp"}]
    container = {
        "name": CONTAINER, "image": image or f"{IMAGE}:{__version__}", "command": command,
        "env": [{"name": "SAGESTACK_HOME", "value": f"{WORK}/home"}, {"name": "HOME", "value": WORK},
                {"name": "HF_HOME", "value": f"{WORK}/huggingface"}, {"name": "MPLCONFIGDIR", "value": f"{WORK}/matplotlib"},
                {"name": "OMP_NUM_THREADS", "value": threads}, {"name": "PYTHONUNBUFFERED", "value": "1"}],
        "resources": asked,
        "securityContext": security,
        "volumeMounts": [*work_mounts, *data_mounts],
    }
    pod: dict = {"restartPolicy": "Never", "containers": [container],
                 "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
                 "volumes": [{"name": "work", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}, *data_volumes]}
    if fetches:
        pod["initContainers"] = [{
            "name": FETCH_CONTAINER, "image": container["image"],
            "command": ["python", "-c", "import sys; from sagestack.tuning.katib import fetch_all; fetch_all(sys.argv[1:])",
                        *fetches],
            "env": [{"name": "HOME", "value": WORK}], "securityContext": security, "volumeMounts": work_mounts,
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        }]
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}, "spec": pod}},
    }
    experiment_spec: dict = {
        "objective": {"type": spec.direction, "objectiveMetricName": spec.objective},
        "algorithm": {"algorithmName": ALGORITHMS[spec.strategy],
                      "algorithmSettings": [{"name": "random_state", "value": str(spec.seed)}]},
        "parallelTrialCount": spec.parallel, "maxTrialCount": spec.max_trials,
        "maxFailedTrialCount": spec.max_failed_trials,
        "metricsCollectorSpec": {"collector": {"kind": "StdOut"},
                                 "source": {"filter": {"metricsFormat": [METRICS_FORMAT]}}},
        "parameters": [parameter(d) for d in spec.space.dimensions],
        "trialTemplate": {
            "primaryContainerName": CONTAINER,
            "trialParameters": [{"name": camel(d.name), "reference": d.name,
                                 "description": f"{kind} hyperparameter {d.name}"} for d in spec.space.dimensions],
            "trialSpec": job,
        },
    }
    if spec.early_stopping == "auto":
        experiment_spec["earlyStopping"] = {"algorithmName": "medianstop", "algorithmSettings": [
            {"name": "min_trials_required", "value": str(spec.min_trials_required)},
            {"name": "start_step", "value": str(spec.start_step)}]}
    manifest = {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": name or f"sagestack-tune-{kind}",
                             "labels": {"app.kubernetes.io/part-of": "sagestack", "sagestack.kind": kind}},
                "spec": experiment_spec}
    errors = validate_experiment(manifest)
    if errors:  # a bug in this module, not a user error
        raise AssertionError("emitted Katib Experiment is invalid: " + "; ".join(errors))
    return manifest


def write_experiment(manifest: dict, path: Path | str) -> Path:
    """Write the manifest as YAML to ``path`` (folders created)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False, width=120), encoding="utf-8")
    return path


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """Katib's vendored API schema: ``{"components": {"schemas": {definition name: schema}}}``."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def validate_experiment(manifest: dict, *, strict: bool = True) -> list[str]:
    """Check a manifest against Katib's vendored schema and Katib's own rules.

    The schema check covers the Experiment (``v1beta1.Experiment``) and the trial Job's pod
    template (``io.k8s.api.core.v1.PodTemplateSpec``). Katib's generated schema leaves objects
    open and omits enumerations; ``strict`` closes every object that lists its properties (so a
    misspelt field is an error, not silently dropped), and the enumerations and references
    Katib's webhook checks are checked here too.

    Returns:
        One line per problem (empty: valid).
    """
    errors: list[str] = []
    _check(manifest, {"$ref": "#/components/schemas/v1beta1.Experiment"}, "", errors, strict)
    if manifest.get("apiVersion") != API_VERSION or manifest.get("kind") != KIND:
        errors.append(f"apiVersion/kind must be {API_VERSION} {KIND}")
    spec = manifest.get("spec") or {}
    if (spec.get("objective") or {}).get("type") not in OBJECTIVE_TYPES:
        errors.append(f"spec.objective.type must be one of {', '.join(OBJECTIVE_TYPES)}")
    if not (spec.get("objective") or {}).get("objectiveMetricName"):
        errors.append("spec.objective.objectiveMetricName is required")
    if (spec.get("metricsCollectorSpec", {}).get("collector") or {}).get("kind", "StdOut") not in COLLECTOR_KINDS:
        errors.append(f"spec.metricsCollectorSpec.collector.kind must be one of {', '.join(COLLECTOR_KINDS)}")
    names = set()
    for i, param in enumerate(spec.get("parameters") or []):
        where, space = f"spec.parameters[{i}]", param.get("feasibleSpace") or {}
        names.add(param.get("name"))
        if param.get("parameterType") not in PARAMETER_TYPES:
            errors.append(f"{where}.parameterType must be one of {', '.join(PARAMETER_TYPES)}")
        elif param["parameterType"] in ("double", "int") and not ("min" in space and "max" in space):
            errors.append(f"{where}.feasibleSpace needs min and max")
        elif param["parameterType"] in ("discrete", "categorical") and not space.get("list"):
            errors.append(f"{where}.feasibleSpace needs a list")
        if space.get("distribution", "uniform") not in DISTRIBUTIONS:
            errors.append(f"{where}.feasibleSpace.distribution must be one of {', '.join(DISTRIBUTIONS)}")
    template = spec.get("trialTemplate") or {}
    declared = set()
    for item in template.get("trialParameters") or []:
        declared.add(item.get("name"))
        if item.get("reference") not in names:
            errors.append(f"trial parameter {item.get('name')} references no parameter {item.get('reference')!r}")
    trial_spec = template.get("trialSpec") or {}
    for used in sorted(set(re.findall(r"\$\{trialParameters\.(\w+)\}", json.dumps(trial_spec))) - declared):
        errors.append(f"trialSpec uses ${{trialParameters.{used}}}, which trialParameters does not declare")
    if trial_spec.get("apiVersion") == "batch/v1" and trial_spec.get("kind") == "Job":
        pod = (trial_spec.get("spec") or {}).get("template")
        if pod is None:
            errors.append("trialSpec: a Job needs spec.template")
        else:
            _check(pod, {"$ref": "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec"},
                   "spec.trialTemplate.trialSpec.spec.template", errors, strict)
            containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
            if template.get("primaryContainerName", CONTAINER) not in containers:
                errors.append("trialTemplate.primaryContainerName names no container of the trial pod")
    return errors


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES.get(kind, object))


def _check(value: Any, schema: dict, path: str, errors: list[str], strict: bool) -> None:
    """Validate against the subset of JSON Schema Katib's generated OpenAPI schema uses:
    ``$ref``, ``allOf``, ``oneOf``, ``type``, ``enum``, ``required``, ``properties``,
    ``additionalProperties`` and ``items`` (``format``, ``default`` and ``x-kubernetes-*`` are
    annotations)."""
    if "$ref" in schema:
        schema = load_schema()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    for sub in schema.get("allOf", ()):
        _check(value, sub, path, errors, strict)
    if "oneOf" in schema:
        matches = 0
        for sub in schema["oneOf"]:
            trial: list[str] = []
            _check(value, sub, path, trial, strict)
            matches += not trial
        if matches != 1:
            errors.append(f"{path or '.'}: matches {matches} of the allowed forms, not exactly one")
    kind = schema.get("type")
    if kind and not _is(value, kind):
        errors.append(f"{path or '.'}: expected {kind}, got {type(value).__name__}")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path or '.'}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{path or '.'}: missing required field {key}")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key in properties:
                _check(item, properties[key], where, errors, strict)
            elif isinstance(extra, dict):
                _check(item, extra, where, errors, strict)
            elif properties and extra is not True and (strict or extra is False):
                errors.append(f"{where}: unknown field")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]", errors, strict)
