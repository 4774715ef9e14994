"""SageMaker processing jobs: the job's S3 inputs are copied into its folder (where the container would see
them under ``/opt/ml/processing/…``), the image's work runs — sagestack runs no containers, so each known image
maps to sagestack's own implementation — and the files under each output's local path are uploaded to its S3 URI.

An image sagestack cannot run fails the job with ``FailureReason: image … cannot run here; known images: …``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from sagestack.aws.backends import Backends
from sagestack.aws.jobs import Job, JobFailed
from sagestack.aws.protocol import AwsError


def _clarify(backends: Backends, job: Job, local: Callable[[str], Path]) -> dict:
    from sagestack.aws.clarify import run_clarify_job

    return run_clarify_job(backends, job, local)


# An image's repository name (the part after the registry, before the tag) -> what runs it and its title.
IMAGES: dict[str, tuple[str, Callable[[Backends, Job, Callable[[str], Path]], dict]]] = {
    "sagemaker-clarify-processing": ("SageMaker Clarify (sagestack bias)", _clarify),
}


def image_repository(uri: str) -> str:
    """``ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG`` (or ``@sha256:…``) -> ``REPOSITORY``."""
    path = uri.split("/", 1)[1] if "/" in uri else uri
    return re.split(r"[:@]", path, maxsplit=1)[0]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/prefix`` -> (bucket, key prefix).

    Raises:
        JobFailed: not an s3:// URI.
    """
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise JobFailed(f"ClientError: {uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def download_prefix(backends: Backends, uri: str, folder: Path) -> list[Path]:
    """Copy every object under ``uri`` into ``folder`` (key paths relative to the prefix; an exact key keeps its
    file name), as SageMaker's ``S3Prefix`` input does.

    Raises:
        JobFailed: the bucket is missing or nothing is under the prefix.
    """
    bucket, prefix = split_s3_uri(uri)
    written, after = [], ""
    try:
        while True:
            page = backends.s3.list(bucket, prefix, "", after, 1000)
            for record in page.objects:
                relative = record.key[len(prefix):].lstrip("/") or Path(record.key).name
                target = (folder / relative).resolve()
                if folder.resolve() not in target.parents:
                    raise JobFailed(f"ClientError: the key {record.key!r} would land outside the input folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(record.path.read_bytes())
                written.append(target)
            if not page.truncated:
                break
            after = page.last or ""
    except AwsError as error:
        raise JobFailed(f"ClientError: cannot read input {uri}: {error.message}") from None
    if not written:
        raise JobFailed(f"ClientError: no object at input {uri}; upload the data there first")
    return written


def upload_folder(backends: Backends, folder: Path, uri: str) -> int:
    """Upload every file under ``folder`` to ``uri`` (keys relative to it); how many.

    Raises:
        JobFailed: the output bucket does not exist.
    """
    bucket, prefix = split_s3_uri(uri)
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = "/".join(part for part in (prefix.rstrip("/"), path.relative_to(folder).as_posix()) if part)
        try:
            backends.s3.put(bucket, key, path.read_bytes())
        except AwsError as error:
            raise JobFailed(f"ClientError: cannot write output {uri}: {error.message}") from None
        count += 1
    return count


def run_processing_job(backends: Backends, job: Job) -> dict:
    """Run a processing job: inputs in, the image's work, outputs out. Returns what the work reports.

    Raises:
        JobFailed: an image sagestack cannot run, a missing input, or the work's own failure.
    """
    request = job.request
    image = request["AppSpecification"]["ImageUri"]
    known = IMAGES.get(image_repository(image))
    if known is None:
        names = ", ".join(f"{name} ({title})" for name, (title, _) in IMAGES.items())
        raise JobFailed(f"ClientError: image {image} cannot run here (sagestack runs no containers); known images: "
                        f"{names}")
    count = request.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceCount", 1)
    if isinstance(count, int) and count > 1:
        backends.jobs.log(job, f"warning: InstanceCount {count} asked for; sagestack runs the job once, on this machine")
    root = job.folder / "container"

    def local(path: str) -> Path:
        target = (root / path.lstrip("/")).resolve()
        if target != root.resolve() and root.resolve() not in target.parents:
            raise JobFailed(f"ClientError: the local path {path!r} leaves the container's file system")
        return target

    for item in request.get("ProcessingInputs", []):
        source = item.get("S3Input")
        if source:
            download_prefix(backends, source["S3Uri"], local(source["LocalPath"]))
    result = known[1](backends, job, local)
    for item in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
        target = item.get("S3Output")
        if target and local(target["LocalPath"]).is_dir():
            upload_folder(backends, local(target["LocalPath"]), target["S3Uri"])
    return result
