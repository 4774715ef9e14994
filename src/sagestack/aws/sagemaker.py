"""SageMaker's control-plane API (json protocol, ``X-Amz-Target: SageMaker.<Operation>``) for the jobs served
here: processing jobs (Clarify through ``sagestack bias``), training jobs (BlazingText through
``sagestack train fasttext``) and AutoML jobs (Autopilot through ``sagestack automl``), and the models and
endpoints that serve their results."""

from __future__ import annotations

import re
import sys

from sagestack.aws.backends import Backends
from sagestack.aws.jobs import Job
from sagestack.aws.protocol import AwsError, Request, Response, json_response, member, members
from sagestack.aws.shadows import SHADOW_PREFIX

# SageMaker's pattern for job, model, endpoint config and endpoint names.
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
PROCESSING, TRAINING = "processing", "training"
# Echoed back by DescribeProcessingJob as they were given.
PROCESSING_FIELDS = ("ProcessingInputs", "ProcessingOutputConfig", "ProcessingResources", "StoppingCondition",
                     "AppSpecification", "Environment", "NetworkConfig", "RoleArn", "ExperimentConfig")
TRAINING_FIELDS = ("AlgorithmSpecification", "RoleArn", "InputDataConfig", "OutputDataConfig", "ResourceConfig",
                   "StoppingCondition", "HyperParameters", "VpcConfig", "EnableNetworkIsolation",
                   "CheckpointConfig", "DebugHookConfig", "ExperimentConfig")


def _require(body: dict, *names: str) -> None:
    missing = [name for name in names if not body.get(name)]
    if missing:
        raise AwsError("ValidationException", f"missing required field(s): {', '.join(missing)}")


def _name(body: dict, field: str) -> str:
    name = body.get(field)
    if not isinstance(name, str) or not JOB_NAME.match(name):
        raise AwsError("ValidationException", f"{field} {name!r} must match {JOB_NAME.pattern}")
    return name


def _arn(backends: Backends, resource: str, name: str) -> str:
    """The ARN of SageMaker resource ``name`` of type ``resource`` (``processing-job``, ``model``, ``endpoint`` …)."""
    identity = backends.identity
    return f"arn:aws:sagemaker:{identity.region}:{identity.account}:{resource}/{name.lower()}"


def create_processing_job(backends: Backends, request: Request) -> Response:
    """CreateProcessingJob: recorded InProgress at once; the work runs in the background."""
    from sagestack.aws.processing import run_processing_job

    body = request.json()
    name = _name(body, "ProcessingJobName")
    _require(body, "AppSpecification", "ProcessingResources", "RoleArn")
    member(member(body, "AppSpecification", dict), "ImageUri", str, required=True, where="AppSpecification.")
    member(body, "ProcessingResources", dict)
    for item in members(body, "ProcessingInputs"):
        source = member(item, "S3Input", dict, where="ProcessingInputs[].")
        if source is not None:
            for field in ("S3Uri", "LocalPath"):
                member(source, field, str, required=True, where="ProcessingInputs[].S3Input.")
    outputs = member(body, "ProcessingOutputConfig", dict) or {}
    for item in members(outputs, "Outputs", where="ProcessingOutputConfig."):
        target = member(item, "S3Output", dict, where="ProcessingOutputConfig.Outputs[].")
        if target is not None:
            for field in ("S3Uri", "LocalPath"):
                member(target, field, str, required=True, where="ProcessingOutputConfig.Outputs[].S3Output.")
    _stopping_condition(body)
    backends.jobs.submit(PROCESSING, name, body, lambda job: run_processing_job(backends, job))
    return json_response({"ProcessingJobArn": _arn(backends, "processing-job", name)})


def _stopping_condition(body: dict) -> None:
    member(member(body, "StoppingCondition", dict) or {}, "MaxRuntimeInSeconds", int, where="StoppingCondition.")


def _times(job: Job, started: str, ended: str) -> dict:
    times = {"CreationTime": job.created, "LastModifiedTime": job.modified, started: job.started, ended: job.ended}
    return {key: value for key, value in times.items() if value is not None}


def describe_processing_job(backends: Backends, request: Request) -> Response:
    """DescribeProcessingJob: the request as given, the status, FailureReason when it failed, the times."""
    name = _name(request.json(), "ProcessingJobName")
    job = backends.jobs.get(PROCESSING, name)
    document = {"ProcessingJobName": name, "ProcessingJobArn": _arn(backends, "processing-job", name),
                **{key: job.request[key] for key in PROCESSING_FIELDS if key in job.request},
                "ProcessingJobStatus": job.status, **_times(job, "ProcessingStartTime", "ProcessingEndTime")}
    if job.failure:
        document["FailureReason"] = job.failure
    return json_response(document)


def list_processing_jobs(backends: Backends, request: Request) -> Response:
    """ListProcessingJobs (newest first; NameContains and StatusEquals filters)."""
    body = request.json()
    contains, status = member(body, "NameContains", str), member(body, "StatusEquals", str)
    limit = member(body, "MaxResults", int) or 100
    summaries = []
    for name in backends.jobs.names(PROCESSING):
        job = backends.jobs.get(PROCESSING, name)
        if (contains and contains not in name) or (status and status != job.status):
            continue
        summary = {"ProcessingJobName": name, "ProcessingJobArn": _arn(backends, "processing-job", name),
                   "ProcessingJobStatus": job.status, **_times(job, "ProcessingStartTime", "ProcessingEndTime")}
        if job.failure:
            summary["FailureReason"] = job.failure
        summaries.append(summary)
    return json_response({"ProcessingJobSummaries": summaries[:limit]})


def create_training_job(backends: Backends, request: Request) -> Response:
    """CreateTrainingJob: recorded InProgress (secondary status Starting) at once; the work runs in the background."""
    from sagestack.aws.training import run_training_job

    body = request.json()
    name = _name(body, "TrainingJobName")
    _require(body, "AlgorithmSpecification", "RoleArn", "OutputDataConfig", "ResourceConfig", "StoppingCondition")
    if not member(member(body, "AlgorithmSpecification", dict), "TrainingImage", str):
        raise AwsError("ValidationException", "AlgorithmSpecification.TrainingImage is required (sagestack runs no "
                       "algorithm by name)")
    member(member(body, "OutputDataConfig", dict), "S3OutputPath", str, required=True, where="OutputDataConfig.")
    member(body, "ResourceConfig", dict)
    member(body, "HyperParameters", dict)
    for channel in members(body, "InputDataConfig"):
        member(channel, "ChannelName", str, required=True, where="InputDataConfig[].")
        source = member(member(channel, "DataSource", dict, where="InputDataConfig[].") or {}, "S3DataSource", dict,
                        where="InputDataConfig[].DataSource.")
        if source is not None:
            member(source, "S3Uri", str, required=True, where="InputDataConfig[].DataSource.S3DataSource.")
    _stopping_condition(body)
    backends.jobs.submit(TRAINING, name, body, lambda job: run_training_job(backends, job))
    return json_response({"TrainingJobArn": _arn(backends, "training-job", name)})


def _algorithm(specification: dict) -> dict:
    """The algorithm specification as described: with the built-in image's metric definitions, as SageMaker
    adds them (``training_job_analytics`` reads their names)."""
    from sagestack.aws.training import metric_definitions

    return {**specification, "MetricDefinitions": specification.get("MetricDefinitions")
            or metric_definitions(specification.get("TrainingImage", ""))}


def describe_training_job(backends: Backends, request: Request) -> Response:
    """DescribeTrainingJob: the request as given, status and secondary status with its transitions, the model
    artifact and final metrics once Completed, FailureReason when it failed."""
    from sagestack.aws.training import model_artifact

    name = _name(request.json(), "TrainingJobName")
    job = backends.jobs.get(TRAINING, name)
    document = {"TrainingJobName": name, "TrainingJobArn": _arn(backends, "training-job", name),
                **{key: job.request[key] for key in TRAINING_FIELDS if key in job.request},
                "AlgorithmSpecification": _algorithm(job.request.get("AlgorithmSpecification", {})),
                # SageMaker always answers these; the SDK's Estimator.attach reads them.
                "OutputDataConfig": {"KmsKeyId": "", **job.request.get("OutputDataConfig", {})},
                "EnableNetworkIsolation": job.request.get("EnableNetworkIsolation", False),
                "TrainingJobStatus": job.status, "SecondaryStatus": job.secondary or "Starting",
                "SecondaryStatusTransitions": job.transitions, "ModelArtifacts": {"S3ModelArtifacts": ""},
                **_times(job, "TrainingStartTime", "TrainingEndTime")}
    if job.status == "Completed":
        document["ModelArtifacts"] = {"S3ModelArtifacts": model_artifact(job)}
        document["FinalMetricDataList"] = [{"MetricName": metric, "Value": value, "Timestamp": job.ended}
                                         for metric, value in job.result.get("metrics", {}).items()]
        document["TrainingTimeInSeconds"] = document["BillableTimeInSeconds"] = int((job.ended or 0) - (job.started or 0))
    if job.failure:
        document["FailureReason"] = job.failure
    return json_response(document)


# -- models, endpoint configurations, endpoints -----------------------------------------------------------------

def create_model(backends: Backends, request: Request) -> Response:
    """CreateModel: a record of the image and model data (``PrimaryContainer`` or the first of ``Containers``)."""
    body = request.json()
    name = _name(body, "ModelName")
    container = member(body, "PrimaryContainer", dict) or (members(body, "Containers") or [None])[0]
    if not container or not member(container, "Image", str):
        raise AwsError("ValidationException", "a model needs PrimaryContainer.Image (and ModelDataUrl)")
    member(container, "ModelDataUrl", str, where="PrimaryContainer.")
    backends.endpoints.put("model", name, body)
    return json_response({"ModelArn": _arn(backends, "model", name)})


def describe_model(backends: Backends, request: Request) -> Response:
    """DescribeModel."""
    name = _name(request.json(), "ModelName")
    document, created = backends.endpoints.get("model", name)
    return json_response({**document, "ModelArn": _arn(backends, "model", name),
                          "CreationTime": created})


def delete_model(backends: Backends, request: Request) -> Response:
    """DeleteModel."""
    backends.endpoints.delete("model", _name(request.json(), "ModelName"))
    return json_response({})


def create_endpoint_config(backends: Backends, request: Request) -> Response:
    """CreateEndpointConfig: a record of the production variants (their models must exist)."""
    body = request.json()
    name = _name(body, "EndpointConfigName")
    variants = members(body, "ProductionVariants")
    if not variants:
        raise AwsError("ValidationException", "an endpoint configuration needs ProductionVariants")
    for variant in variants:
        backends.endpoints.get("model", member(variant, "ModelName", str, required=True, where="ProductionVariants[]."))
        member(variant, "VariantName", str, where="ProductionVariants[].")
    backends.endpoints.put("endpoint-config", name, body)
    return json_response({"EndpointConfigArn": _arn(backends, "endpoint-config", name)})


def describe_endpoint_config(backends: Backends, request: Request) -> Response:
    """DescribeEndpointConfig."""
    name = _name(request.json(), "EndpointConfigName")
    document, created = backends.endpoints.get("endpoint-config", name)
    return json_response({**document, "EndpointConfigArn": _arn(backends, "endpoint-config", name), "CreationTime": created})


def delete_endpoint_config(backends: Backends, request: Request) -> Response:
    """DeleteEndpointConfig."""
    backends.endpoints.delete("endpoint-config", _name(request.json(), "EndpointConfigName"))
    return json_response({})


def create_endpoint(backends: Backends, request: Request) -> Response:
    """CreateEndpoint: Creating at once; a sagestack endpoint serving the first variant's model starts in the
    background (InService once it answers). A model whose image sagestack cannot serve makes the endpoint Failed."""
    from sagestack.aws.containers import image_repository, split_s3_uri
    from sagestack.aws.jobs import JobFailed
    from sagestack.aws.runtime import SERVING, serving_environment

    body = request.json()
    name = _name(body, "EndpointName")
    if name.startswith(SHADOW_PREFIX):  # a starting server deletes every endpoint of that name as a shadow it left
        raise AwsError("ValidationException", f"EndpointName {name!r}: the prefix {SHADOW_PREFIX!r} is reserved for "
                                              "the shadow endpoints of sagestack serve-aws's Clarify jobs; choose "
                                              "another name")
    config, _ = backends.endpoints.get("endpoint-config", _name(body, "EndpointConfigName"))
    variant = config["ProductionVariants"][0]
    model, _ = backends.endpoints.get("model", variant["ModelName"])
    container = model.get("PrimaryContainer") or model["Containers"][0]
    count = variant.get("InitialInstanceCount", 1)
    failure, archive = None, None
    if image_repository(container["Image"]) not in SERVING:
        failure = (f"ClientError: image {container['Image']} cannot serve here (sagestack runs no containers); "
                   f"known images: {', '.join(SERVING)}")
    else:
        try:
            archive = backends.s3.open(*split_s3_uri(container.get("ModelDataUrl") or ""))[1]
        except (AwsError, JobFailed) as exc:
            failure = f"ClientError: cannot read the model data {container.get('ModelDataUrl')!r} ({exc})"
    serving = {"variant": variant.get("VariantName", "AllTraffic"), "image": container["Image"],
               "weight": variant.get("InitialVariantWeight", 1.0),
               "environment": serving_environment(container["Image"], archive, container.get("Environment") or {})}
    backends.endpoints.create_endpoint(name, body["EndpointConfigName"], serving, archive, failure)
    if isinstance(count, int) and count > 1:
        sys.stderr.write(f"warning: endpoint {name} asked for {count} instances; sagestack serves one\n")
    return json_response({"EndpointArn": _arn(backends, "endpoint", name)})


def describe_endpoint(backends: Backends, request: Request) -> Response:
    """DescribeEndpoint: Creating → InService (or Failed with FailureReason)."""
    name = _name(request.json(), "EndpointName")
    endpoint = backends.endpoints.endpoint(name)
    serving = endpoint["serving"]
    variants = [{"VariantName": serving["variant"], "CurrentWeight": serving["weight"],
                 "DesiredWeight": serving["weight"], "CurrentInstanceCount": 1, "DesiredInstanceCount": 1}]
    document = {"EndpointName": name, "EndpointArn": _arn(backends, "endpoint", name),
                "EndpointConfigName": endpoint["config"], "EndpointStatus": endpoint["status"],
                "ProductionVariants": variants, "CreationTime": endpoint["created"],
                "LastModifiedTime": endpoint["modified"]}
    if endpoint["failure"]:
        document["FailureReason"] = endpoint["failure"]
    return json_response(document)


def delete_endpoint(backends: Backends, request: Request) -> Response:
    """DeleteEndpoint: the endpoint's server is stopped."""
    backends.endpoints.delete_endpoint(_name(request.json(), "EndpointName"))
    return json_response({})


def list_tags(backends: Backends, request: Request) -> Response:  # noqa: ARG001 - the handler signature
    """ListTags: tags given to Create* calls are accepted but not kept yet, so every resource has none."""
    if not request.json().get("ResourceArn"):
        raise AwsError("ValidationException", "ResourceArn is required")
    return json_response({"Tags": []})


# -- AutoML (Autopilot) ------------------------------------------------------------------------------------------

AUTOML = "automl"
AUTOML_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")  # AutoML job names are shorter
AUTOML_FIELDS = ("InputDataConfig", "OutputDataConfig", "RoleArn", "AutoMLJobConfig", "GenerateCandidateDefinitionsOnly")
# The job runner's first secondary status once the work starts, which Autopilot does not have.
AUTOML_SECONDARY = {"Downloading": "Starting"}


def _automl_name(body: dict) -> str:
    name = body.get("AutoMLJobName")
    if not isinstance(name, str) or not AUTOML_NAME.match(name) or len(name) > 32:
        raise AwsError("ValidationException", f"AutoMLJobName {name!r} must match {AUTOML_NAME.pattern} and have at "
                       "most 32 characters")
    return name


def create_auto_ml_job(backends: Backends, request: Request) -> Response:
    """CreateAutoMLJob: recorded InProgress (Starting) at once; ``sagestack automl`` runs in the background.

    What sagestack's AutoML cannot do is refused here (a 400 naming it): regression, objectives other than
    Accuracy, F1 and F1macro (or one the stated problem type has not), more than one channel, a manifest file as
    input, candidate definitions only; so are a malformed request and an output bucket that does not exist.
    """
    from sagestack.aws.autopilot import METRICS, PROBLEM_TYPES, check_objective, run_automl_job
    from sagestack.aws.containers import split_s3_uri
    from sagestack.aws.jobs import JobFailed

    body = request.json()
    name = _automl_name(body)
    _require(body, "InputDataConfig", "OutputDataConfig", "RoleArn")
    channels = members(body, "InputDataConfig")
    if len(channels) != 1:
        raise AwsError("ValidationException", f"sagestack's AutoML reads one input channel, not {len(channels)}")
    if not member(channels[0], "TargetAttributeName", str, required=True, where="InputDataConfig[]."):
        raise AwsError("ValidationException", "InputDataConfig[].TargetAttributeName must have at least 1 character")
    compression = member(channels[0], "CompressionType", str, where="InputDataConfig[].") or "None"
    if compression not in ("None", "Gzip"):
        raise AwsError("ValidationException", f"InputDataConfig[].CompressionType must be None or Gzip, not "
                       f"{compression}")
    source = member(member(channels[0], "DataSource", dict, required=True, where="InputDataConfig[]."),
                    "S3DataSource", dict, required=True, where="InputDataConfig[].DataSource.")
    data_type = member(source, "S3DataType", str, where="InputDataConfig[].DataSource.S3DataSource.") or "S3Prefix"
    if data_type != "S3Prefix":
        raise AwsError("ValidationException", f"S3DataType {data_type} is not supported by sagestack serve-aws; its "
                       "AutoML reads the CSV files under an S3Prefix")
    member(source, "S3Uri", str, required=True, where="InputDataConfig[].DataSource.S3DataSource.")
    output = member(member(body, "OutputDataConfig", dict), "S3OutputPath", str, required=True,
                    where="OutputDataConfig.")
    try:
        backends.s3.bucket(split_s3_uri(output)[0])
    except JobFailed:
        raise AwsError("ValidationException", f"OutputDataConfig.S3OutputPath {output!r} must be an s3:// URI "
                       "(s3://bucket/prefix)") from None
    except AwsError:
        raise AwsError("ValidationException", f"the output bucket of OutputDataConfig.S3OutputPath {output!r} does "
                       "not exist; create it first") from None
    criteria = member(member(body, "AutoMLJobConfig", dict) or {}, "CompletionCriteria", dict,
                      where="AutoMLJobConfig.") or {}
    for field in ("MaxCandidates", "MaxRuntimePerTrainingJobInSeconds", "MaxAutoMLJobRuntimeInSeconds"):
        value = member(criteria, field, int, where="AutoMLJobConfig.CompletionCriteria.")
        if value is not None and value < 1:
            raise AwsError("ValidationException", f"AutoMLJobConfig.CompletionCriteria.{field} must be at least 1")
    metric = member(member(body, "AutoMLJobObjective", dict) or {}, "MetricName", str, where="AutoMLJobObjective.")
    if metric is not None and metric not in METRICS:
        raise AwsError("ValidationException", f"AutoMLJobObjective.MetricName {metric} is not supported by sagestack's "
                       f"AutoML; use {', '.join(METRICS)}")
    problem = member(body, "ProblemType", str)
    if problem is not None and problem not in PROBLEM_TYPES:
        raise AwsError("ValidationException", f"ProblemType {problem} is not supported by sagestack's AutoML, which "
                       f"classifies; use {' or '.join(PROBLEM_TYPES)}")
    if problem is not None and metric is not None:
        try:
            check_objective(metric, problem)
        except JobFailed as refused:
            raise AwsError("ValidationException", str(refused).removeprefix("ClientError: ")) from None
    if body.get("GenerateCandidateDefinitionsOnly"):
        raise AwsError("ValidationException", "GenerateCandidateDefinitionsOnly is not supported by sagestack serve-aws: "
                       "its AutoML job fits the candidates it defines")
    backends.jobs.submit(AUTOML, name, body, lambda job: run_automl_job(backends, job))
    return json_response({"AutoMLJobArn": _arn(backends, "automl-job", name)})


def describe_auto_ml_job(backends: Backends, request: Request) -> Response:
    """DescribeAutoMLJob: the request as given, status and Autopilot's secondary status, FailureReason when it
    failed; once Completed the notebooks' locations (AutoMLJobArtifacts), the best candidate and the resolved
    problem type and objective."""
    from sagestack.aws.autopilot import candidate_documents

    name = _automl_name(request.json())
    job = backends.jobs.get(AUTOML, name, "ResourceNotFound")
    secondary = AUTOML_SECONDARY.get(job.secondary or "Starting", job.secondary or "Starting")
    if job.status == "Completed":
        secondary = job.result["secondary"]
    document = {"AutoMLJobName": name, "AutoMLJobArn": _arn(backends, "automl-job", name),
                **{key: job.request[key] for key in AUTOML_FIELDS if key in job.request},
                "AutoMLJobStatus": job.status, "AutoMLJobSecondaryStatus": secondary,
                "CreationTime": job.created, "LastModifiedTime": job.modified}
    for key in ("AutoMLJobObjective", "ProblemType"):
        if key in job.request:
            document[key] = job.request[key]
    if job.ended is not None:
        document["EndTime"] = job.ended
    if job.failure:
        document["FailureReason"] = job.failure
    if job.status == "Completed":
        objective = {"MetricName": job.result["objective"]}
        document.update(AutoMLJobArtifacts=job.result["artifacts"], BestCandidate=candidate_documents(backends, job)[0],
                        ResolvedAttributes={"AutoMLJobObjective": objective, "ProblemType": job.result["problem_type"],
                                            "CompletionCriteria": (job.request.get("AutoMLJobConfig") or {}).get(
                                                "CompletionCriteria", {})})
        document.setdefault("AutoMLJobObjective", objective)
        document.setdefault("ProblemType", job.result["problem_type"])
    return json_response(document)


def list_candidates_for_auto_ml_job(backends: Backends, request: Request) -> Response:
    """ListCandidatesForAutoMLJob: the candidates of a completed job (none before), filtered by status and name,
    sorted by FinalObjectiveMetricValue (the default), CreationTime or Status, Descending unless asked."""
    from sagestack.aws.autopilot import candidate_documents

    body = request.json()
    job = backends.jobs.get(AUTOML, _automl_name(body), "ResourceNotFound")
    candidates = candidate_documents(backends, job) if job.status == "Completed" else []
    status, wanted = member(body, "StatusEquals", str), member(body, "CandidateNameEquals", str)
    candidates = [c for c in candidates if (not status or c["CandidateStatus"] == status)
                  and (not wanted or c["CandidateName"] == wanted)]
    sort_by = member(body, "SortBy", str) or "FinalObjectiveMetricValue"
    order = member(body, "SortOrder", str) or "Descending"
    keys = {"FinalObjectiveMetricValue": lambda c: c["FinalAutoMLJobObjectiveMetric"]["Value"],
            "CreationTime": lambda c: c["CreationTime"], "Status": lambda c: c["CandidateStatus"]}
    if sort_by not in keys or order not in ("Ascending", "Descending"):
        raise AwsError("ValidationException", f"SortBy must be one of {', '.join(keys)} and SortOrder Ascending or "
                       "Descending")
    candidates.sort(key=keys[sort_by], reverse=order == "Descending")  # stable: ties keep the ranking
    limit = member(body, "MaxResults", int)
    if limit is not None and not 1 <= limit <= 100:
        raise AwsError("ValidationException", f"MaxResults must be from 1 to 100, not {limit}")
    limit = limit or 100
    return json_response({"Candidates": candidates[:limit]})
