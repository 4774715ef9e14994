"""SageMaker training jobs: channels copied in from S3 (``/opt/ml/input/data/CHANNEL``), the image's work
(:mod:`sagestack.aws.containers`), and the model folder (``/opt/ml/model``) packed as
``S3OutputPath/JOB/output/model.tar.gz``, with SageMaker's secondary statuses on the way (Downloading,
Training, Uploading, Completed)."""

from __future__ import annotations

from sagestack.aws.backends import Backends
from sagestack.aws.containers import container_paths, download_prefix, upload_model
from sagestack.aws.images import image_work
from sagestack.aws.jobs import Job, JobFailed

MODEL_ARCHIVE = "output/model.tar.gz"


def metric_definitions(image: str) -> list[dict]:
    """The metrics a built-in image reports (none for an image sagestack does not know)."""
    from sagestack.aws.blazingtext import METRIC_DEFINITIONS
    from sagestack.aws.containers import image_repository

    return {"blazingtext": METRIC_DEFINITIONS}.get(image_repository(image), [])


def model_artifact(job: Job) -> str:
    """Where the job's ``model.tar.gz`` goes (SageMaker's ``ModelArtifacts.S3ModelArtifacts``)."""
    output = job.request.get("OutputDataConfig", {}).get("S3OutputPath", "").rstrip("/")
    return f"{output}/{job.name}/{MODEL_ARCHIVE}"


def run_training_job(backends: Backends, job: Job) -> dict:
    """Run a training job: channels in, the image's work, the model out. Returns what the work reports.

    Raises:
        JobFailed: an image sagestack cannot run, a missing channel, the work's failure, no output bucket.
    """
    request = job.request
    work = image_work(request["AlgorithmSpecification"]["TrainingImage"], "training")
    count = request.get("ResourceConfig", {}).get("InstanceCount", 1)
    if isinstance(count, int) and count > 1:
        backends.jobs.log(job, f"warning: InstanceCount {count} asked for; sagestack trains once, on this machine")
    local = container_paths(job)
    for channel in request.get("InputDataConfig", []):
        source = channel.get("DataSource", {}).get("S3DataSource")
        if not source:
            raise JobFailed(f"ClientError: channel {channel.get('ChannelName')} has no S3 data source")
        download_prefix(backends, source["S3Uri"], local(f"/opt/ml/input/data/{channel['ChannelName']}"))
    backends.jobs.update(job, secondary="Training")
    result = work(backends, job, local)
    backends.jobs.update(job, secondary="Uploading")
    upload_model(backends, local("/opt/ml/model"), model_artifact(job), job.folder / "model.tar.gz")
    return {**result, "model": model_artifact(job)}
