"""SageMaker processing jobs: the job's S3 inputs are copied into its folder (where the container would see
them under ``/opt/ml/processing/…``), the image's work runs (:mod:`sagestack.aws.containers`), and the files under
each output's local path are uploaded to its S3 URI."""

from __future__ import annotations

from sagestack.aws.backends import Backends
from sagestack.aws.containers import container_paths, download_prefix, upload_folder
from sagestack.aws.images import image_work
from sagestack.aws.jobs import Job


def run_processing_job(backends: Backends, job: Job) -> dict:
    """Run a processing job: inputs in, the image's work, outputs out. Returns what the work reports.

    Raises:
        JobFailed: an image sagestack cannot run, a missing input, or the work's own failure.
    """
    request = job.request
    work = image_work(request["AppSpecification"]["ImageUri"], "processing")
    count = request.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceCount", 1)
    if isinstance(count, int) and count > 1:
        backends.jobs.log(job, f"warning: InstanceCount {count} asked for; sagestack runs the job once, on this machine")
    local = container_paths(job)
    for item in request.get("ProcessingInputs", []):
        source = item.get("S3Input")
        if source:
            download_prefix(backends, source["S3Uri"], local(source["LocalPath"]))
    result = work(backends, job, local)
    for item in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
        target = item.get("S3Output")
        if target and local(target["LocalPath"]).is_dir():
            upload_folder(backends, local(target["LocalPath"]), target["S3Uri"])
    return result
