"""The model a Clarify job asks about (``ModelConfig.model_name``, a model made by ``CreateModel``), as Clarify
reaches it: a shadow endpoint of that model started for the job (a sagestack endpoint, as ``CreateEndpoint``
starts one, named ``sm-clarify-…``: :mod:`sagestack.aws.shadows`) and deleted after, and every request made through the adapter of the model's
image, in the analysis config's ``content_type`` and ``accept_type``, exactly as ``InvokeEndpoint`` would relay it.
Jobs of the same model running at once share its shadow endpoint (:class:`sagestack.aws.shadows.Shadows`).

From the model's answers come the predicted labels of post-training bias (``ModelPredictedLabelConfig``: label and
probability as an index into a CSV answer or a path into a JSON Lines one, ``probability_threshold``,
``label_headers``) and the scores SHAP explains. Kernel SHAP runs in a process of its own
(``python -m sagestack.aws.clarify_model SPEC OUT``), with sagestack's explain engine, calling the same endpoint.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from sagestack.aws.jobs import JobFailed
from sagestack.aws.protocol import AwsError

CONTENT_TYPES = ("text/csv", "application/jsonlines")
RECORDS_PER_REQUEST = 1000  # Clarify sends mini-batches; the adapters chunk further to the endpoint's limit
SHADOW_READY_SECONDS = 240
PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class ShadowModel:
    """A running shadow endpoint: where it answers, the adapter of its image and how Clarify talks to it."""

    model_name: str
    url: str
    image: str
    environment: dict
    content_type: str
    accept_type: str
    content_template: str | None

    def answers(self, rows: list[list], check: Callable[[], None] | None = None) -> list:
        """The model's answer to each feature row: a CSV answer's fields (a list) or a JSON Lines answer's value;
        ``check`` is called before each request (it raises to stop, e.g. past the job's MaxRuntimeInSeconds).

        Raises:
            JobFailed: no adapter serves its image, the model refused the request, or answered another number of
                records; or ``check``'s.
        """
        invoke = serving_adapter(self.image, self.model_name)
        records: list = []
        for first in range(0, len(rows), RECORDS_PER_REQUEST):
            if check is not None:
                check()
            batch = rows[first:first + RECORDS_PER_REQUEST]
            body = serialize(batch, self.content_type, self.content_template)
            try:
                answer, answer_type = invoke(self.url, body, self.content_type, self.accept_type, self.environment)
            except AwsError as error:
                raise JobFailed(f"ClientError: the model {self.model_name} refused Clarify's {self.content_type} "
                                f"request: {error.message}") from None
            parsed = parse_records(answer, self.accept_type, self.model_name)
            if len(parsed) != len(batch):
                raise JobFailed(f"ClientError: the model {self.model_name} answered {len(parsed)} records for "
                                f"{len(batch)} ({answer_type})")
            records += parsed
        return records


def serialize(rows: list[list], content_type: str, template: str | None) -> bytes:
    """Feature rows as Clarify sends them: CSV lines, or one JSON Lines record a row with ``$features`` of the
    ``content_template`` (default ``$features``) replaced by the row as a JSON list."""
    if content_type == "text/csv":
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        return text.getvalue().encode("utf-8")
    template = template or "$features"
    return "".join(template.replace("$features", json.dumps(row)) + "\n" for row in rows).encode("utf-8")


def parse_records(body: bytes, accept: str, model_name: str) -> list:
    """A model's answer as records: CSV lines as lists of fields (a field written as a JSON list is read as one),
    JSON Lines as values.

    Raises:
        JobFailed: an answer that is not UTF-8 CSV or JSON Lines.
    """
    try:
        text = body.decode("utf-8")
        if accept == "text/csv":
            return [[_field(field) for field in row] for row in csv.reader(io.StringIO(text)) if row]
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise JobFailed(f"ClientError: the model {model_name}'s answer is not {accept} ({exc}): "
                        f"{body[:200]!r}") from None


def _field(text: str) -> object:
    if text.startswith("[") and text.endswith("]"):
        with suppress(ValueError):
            return json.loads(text)
    return text


def locate(record: object, location: object, what: str) -> object:
    """The value at ``location`` in a model's answer: an index into a CSV record's fields, a path (``key``,
    ``a.b``, ``key[0]``, with an optional leading ``$.``) into a JSON Lines record, or the record itself for None.

    Raises:
        JobFailed: the location is not in the answer; the reason shows the answer.
    """
    if location is None:
        return record[0] if isinstance(record, list) and len(record) == 1 else record
    value = record
    try:
        if isinstance(location, int) and not isinstance(location, bool):
            return value[location]
        for key, index in PATH_PART.findall(str(location).removeprefix("$.").removeprefix("$")):
            value = value[int(index)] if index else value[key]
        return value
    except (IndexError, KeyError, TypeError):
        raise JobFailed(f"ClientError: ModelPredictedLabelConfig's {what} {location!r} does not match the model's "
                        f"output {json.dumps(record)[:200]}") from None


def _number(value: object, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise JobFailed(f"ClientError: the model's {what} {json.dumps(value)[:100]} is not a number") from None


def predicted_labels(records: list, predictor: dict, threshold: float | None, *, classes: bool = True) -> list[str]:
    """The predicted label of each answer, as Clarify reads it with ``ModelPredictedLabelConfig``: the value at
    ``label`` (with a list of labels, the one whose ``probability`` is highest); else from ``probability``, a list
    of scores its highest's label header (or index). A probability (a single score from ``probability``, or a
    ``label`` value that is a number between 0 and 1 with a fraction, such as ``label='probability'``) is
    thresholded: above ``probability_threshold`` (0.5) is 1, or ``label_headers[1]`` when given (else 0 or
    ``label_headers[0]``). With an explicit ``probability_threshold`` every number between 0 and 1 is read so;
    when the dataset's label is a threshold, not values (``classes`` False), only then.

    Raises:
        JobFailed: a label or probability location that does not match the model's output.
    """
    label, probability, headers = predictor.get("label"), predictor.get("probability"), predictor.get("label_headers")
    cut = 0.5 if threshold is None else float(threshold)
    found = []
    for record in records:
        value = locate(record, label, "label") if label is not None or probability is None else None
        scores = locate(record, probability, "probability") if probability is not None else None
        if isinstance(value, list):
            if not isinstance(scores, list) or len(scores) != len(value):
                raise JobFailed("ClientError: the model's label is a list; set ModelPredictedLabelConfig's "
                                "probability to the list of its scores")
            numbers = [_number(score, "probability") for score in scores]
            value = value[numbers.index(max(numbers))]
        elif value is None and isinstance(scores, list):
            numbers = [_number(score, "probability") for score in scores]
            best = numbers.index(max(numbers))
            value = headers[best] if headers and len(headers) == len(numbers) else best
        elif value is None:
            value = _thresholded(_number(scores, "probability"), cut, headers)
        elif isinstance(value, dict):
            raise JobFailed(f"ClientError: the model's output {json.dumps(value)[:200]} is no label; set "
                            "ModelPredictedLabelConfig's label to where the label is")
        elif (score := _probability(value, explicit=threshold is not None, classes=classes)) is not None:
            value = _thresholded(score, cut, headers)
        found.append(str(value))
    return found


def _probability(value: object, *, explicit: bool, classes: bool) -> float | None:
    """``value`` as a probability to threshold, or None when it reads as a label: a number between 0 and 1,
    with a fraction unless the threshold was given explicitly; never for a regression's label unless explicit."""
    if isinstance(value, bool) or not (explicit or classes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not 0 <= number <= 1:
        return None
    if explicit:
        return number
    fractional = isinstance(value, float) or (isinstance(value, str) and any(c in value for c in ".eE"))
    return number if fractional else None


def _thresholded(score: float, cut: float, headers: object) -> object:
    positive = score > cut
    return headers[int(positive)] if isinstance(headers, list) and len(headers) == 2 else int(positive)


def scores(records: list, location: object) -> list[list[float]]:
    """The scores SHAP explains in each answer: the value at ``location`` (the SDK's ``model_scores``), one
    score or a list of them, the same count for every record.

    Raises:
        JobFailed: a location that does not match, or values that are not numbers.
    """
    found = []
    for record in records:
        value = locate(record, location, "label")
        values = value if isinstance(value, list) else [value]
        found.append([_number(v, "score") for v in values])
    if len({len(row) for row in found}) > 1:
        raise JobFailed("ClientError: the model's answers hold different numbers of scores; set model_scores")
    return found


def serving_adapter(image: str, model: str) -> Callable:
    """How an endpoint of ``image`` answers an invocation (:data:`sagestack.aws.runtime.SERVING`).

    Raises:
        JobFailed: no adapter serves that image (a ClientError naming it and the images sagestack serves).
    """
    from sagestack.aws.containers import image_repository
    from sagestack.aws.runtime import SERVING

    invoke = SERVING.get(image_repository(image))
    if invoke is None:
        raise JobFailed(f"ClientError: model {model}'s image {image} cannot serve here (sagestack runs no "
                        f"containers); known images: {', '.join(SERVING)}")
    return invoke


@contextmanager
def shadow_endpoint(backends, job, config: dict, log: Callable[[str], None]) -> Iterator[ShadowModel]:
    """A shadow endpoint of the analysis config's ``predictor.model_name``, InService, for the job: started for
    it and deleted after, as Clarify does; jobs of the same model running at once share one (its answers do not
    depend on who asks; each job still speaks its own content and accept types), deleted when the last ends.
    The wait for it counts against the job's MaxRuntimeInSeconds.

    Raises:
        JobFailed: no predictor or model_name, a model that does not exist or whose image sagestack cannot serve,
            content or accept types Clarify does not speak, or an endpoint that did not start.
    """
    predictor = config.get("predictor") or {}
    name = predictor.get("model_name")
    if not name:
        raise JobFailed("ClientError: the analysis config's predictor names no model_name (ModelConfig)")
    try:
        model, created = backends.endpoints.get("model", name)
    except AwsError as error:
        raise JobFailed(f"ClientError: {error.message} (ModelConfig's model_name: create it with CreateModel "
                        "first)") from None
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    image = container.get("Image", "")
    serving_adapter(image, name)
    content = predictor.get("content_type") or config.get("dataset_type") or "text/csv"
    accept = predictor.get("accept_type") or content
    for kind, value in (("content_type", content), ("accept_type", accept)):
        if value not in CONTENT_TYPES:
            raise JobFailed(f"ClientError: predictor {kind} {value!r} is not one Clarify speaks "
                            f"({', '.join(CONTENT_TYPES)})")
    count = predictor.get("initial_instance_count")
    if isinstance(count, int) and count > 1:
        log(f"sagestack serve-aws: warning: ModelConfig's instance_count {count} is read as 1 (a shadow endpoint "
            "is one sagestack endpoint process)")
    key = (name, created)
    shadow, starts = backends.shadows.join(key, job.name)
    try:
        if starts:
            log(f"sagestack serve-aws: starting the shadow endpoint {shadow.name} of model {name}")
            try:
                _start(backends, job, shadow, image, container)
            finally:
                shadow.ready.set()
        else:
            log(f"sagestack serve-aws: sharing the shadow endpoint {shadow.name} of model {name} with a running job")
            while not shadow.ready.wait(0.5) and not backends.jobs.closed:
                backends.jobs.check_runtime(job)
            if shadow.failure:
                raise JobFailed(shadow.failure)
            if shadow.url is None:  # its starter gave up for a reason of its own (its runtime): this job waits on
                _wait_in_service(backends, job, shadow)
        yield ShadowModel(name, shadow.url, image, container.get("Environment") or {}, content, accept,
                          predictor.get("content_template"))
    finally:
        last = backends.shadows.leave(key, shadow)
        if last:
            with suppress(AwsError):
                backends.endpoints.delete_endpoint(shadow.name)
            log(f"sagestack serve-aws: deleted the shadow endpoint {shadow.name}")
        else:
            log(f"sagestack serve-aws: done with the shadow endpoint {shadow.name} (another job still uses it)")


def _start(backends, job, shadow, image: str, container: dict) -> None:
    """Start the ``shadow`` endpoint serving the model ``container`` describes; sets its URL once InService.

    Raises:
        JobFailed: the model data cannot be read, the endpoint failed or did not start in time (the endpoint's
            own failures, kept on ``shadow`` for the jobs sharing it), or the job ran past its MaxRuntimeInSeconds
            meanwhile (its own).
    """
    from sagestack.aws.containers import split_s3_uri

    try:
        archive = backends.s3.open(*split_s3_uri(container.get("ModelDataUrl") or ""))[1]
    except (AwsError, JobFailed) as exc:
        raise _failed(shadow, f"ClientError: cannot read the model data {container.get('ModelDataUrl')!r} "
                              f"({getattr(exc, 'message', exc)})") from None
    serving = {"variant": "AllTraffic", "image": image, "weight": 1.0, "environment": container.get("Environment") or {}}
    try:
        backends.endpoints.create_endpoint(shadow.name, shadow.name, serving, archive)
    except AwsError as error:  # serve-aws is stopping
        raise _failed(shadow, f"ClientError: cannot start the shadow endpoint {shadow.name}: {error.message}") from None
    _wait_in_service(backends, job, shadow)


def _wait_in_service(backends, job, shadow) -> None:
    """Wait for the ``shadow`` endpoint (started when it was joined first) to be InService; sets its URL.

    Raises:
        JobFailed: the endpoint failed, is gone or was not InService :data:`SHADOW_READY_SECONDS` after it
            started (kept on ``shadow``), or the job ran past its MaxRuntimeInSeconds, or serve-aws is stopping
            (the job's own: another job sharing the endpoint may still wait for it).
    """
    from sagestack.aws.jobs import STOPPED_WHILE_RUNNING

    deadline = shadow.created + SHADOW_READY_SECONDS
    while True:
        if backends.jobs.closed:  # the endpoint's start is cancelled too: it would stay Creating
            raise JobFailed(STOPPED_WHILE_RUNNING)
        backends.jobs.check_runtime(job)
        try:
            record = backends.endpoints.endpoint(shadow.name)
        except AwsError as error:
            raise _failed(shadow, f"ClientError: the shadow endpoint {shadow.name} is gone: {error.message}") from None
        if record["status"] == "InService":
            shadow.url = record["url"]
            return
        if record["status"] == "Failed":
            raise _failed(shadow, f"ClientError: the shadow endpoint {shadow.name} failed: {record['failure']}")
        if time.monotonic() > deadline:
            raise _failed(shadow, f"ClientError: the shadow endpoint {shadow.name} was not InService after "
                                  f"{SHADOW_READY_SECONDS} s")
        time.sleep(0.3)


def _failed(shadow, reason: str) -> JobFailed:
    """The endpoint's own failure ``reason``, kept on ``shadow``: every job sharing it fails with it."""
    shadow.failure = reason
    return JobFailed(reason)


# -- Kernel SHAP, in a process of its own ---------------------------------------------------------------------

def shap_spec(model: ShadowModel, config: dict, headers: list[str], rows: list[list], baseline: list[list]) -> dict:
    """What the SHAP process needs (a JSON document): the endpoint and how to talk to it, the rows, the baseline
    and the SHAP config (checked by :func:`sagestack.aws.clarify.check_config`)."""
    from sagestack.explain.tabular import DEFAULT_SEED

    shap = config["methods"]["shap"] or {}
    return {"model_name": model.model_name, "url": model.url, "image": model.image, "environment": model.environment,
            "content_type": model.content_type, "accept_type": model.accept_type,
            "content_template": model.content_template, "scores": (config.get("predictor") or {}).get("label"),
            "features": headers, "rows": rows, "baseline": baseline, "num_samples": shap.get("num_samples"),
            "agg_method": shap.get("agg_method", "mean_abs"), "use_logit": bool(shap.get("use_logit", False)),
            "save_local_shap_values": bool(shap.get("save_local_shap_values", True)),
            "seed": shap.get("seed", DEFAULT_SEED)}


def run_shap(spec: dict, out: Path) -> dict:
    """Kernel SHAP of the endpoint's scores over the spec's rows with sagestack's explain engine: ``analysis.json``
    (``explanations.kernel_shap``) and ``report.html`` in ``out``, and every row's values as
    ``explanations_shap/out.csv`` when ``save_local_shap_values``; the files written.

    Raises:
        JobFailed: no adapter serves the model's image, or the model's answers do not give the scores.
    """
    import numpy as np
    import pandas as pd

    from sagestack.explain import explain_function, write_explanations

    model = ShadowModel(spec["model_name"], spec["url"], spec["image"], spec["environment"], spec["content_type"],
                        spec["accept_type"], spec["content_template"])
    serving_adapter(model.image, model.model_name)  # before any work

    def predict(rows) -> np.ndarray:
        return np.asarray(scores(model.answers([list(row) for row in np.asarray(rows, dtype=object).tolist()]),
                                 spec["scores"]))

    features = pd.DataFrame(spec["rows"], columns=spec["features"], dtype=object)
    baseline = pd.DataFrame(spec["baseline"], columns=spec["features"], dtype=object)
    explanations = explain_function(predict, features, baseline, num_samples=spec["num_samples"],
                                    agg_method=spec["agg_method"], use_logit=spec["use_logit"], seed=spec["seed"])
    values = explanations.pop("values")
    write_explanations(explanations, out, "Explainability report (Kernel SHAP)", overwrite=True)
    files = ["analysis.json", "report.html"]
    if spec["save_local_shap_values"]:
        outputs = list(explanations["kernel_shap"])
        columns = [feature if len(outputs) == 1 else f"{output}_{feature}" for output in outputs
                   for feature in spec["features"]]
        (out / "explanations_shap").mkdir(exist_ok=True)
        with open(out / "explanations_shap" / "out.csv", "w", encoding="utf-8", newline="") as target:
            writer = csv.writer(target)
            writer.writerow(columns)
            for row in values:  # [feature][output] -> the columns' order, output by output
                writer.writerow([row[f][k] for k in range(len(outputs)) for f in range(len(spec["features"]))])
        files.append("explanations_shap/out.csv")
    return {"files": files}


def main(argv: list[str]) -> int:
    """``python -m sagestack.aws.clarify_model SPEC OUT``: run :func:`run_shap`, print its result as JSON; a
    failure is one ``error:`` line on stderr and exit status 2."""
    spec, out = argv
    try:
        result = run_shap(json.loads(Path(spec).read_text(encoding="utf-8")), Path(out))
    except JobFailed as failure:
        print(f"error: {str(failure).removeprefix('ClientError: ')}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
