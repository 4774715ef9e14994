"""What a SageMaker container would see, for the jobs sagestack runs in its place: paths under ``/opt/ml``
mapped into the job's folder, S3 inputs copied in and outputs uploaded, image and S3 names taken apart. The
images sagestack knows, and what runs each, are :mod:`sagestack.aws.images`.
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
from pathlib import Path
from typing import Callable

from sagestack.aws.backends import Backends
from sagestack.aws.jobs import Job, JobFailed
from sagestack.aws.protocol import AwsError
from sagestack.aws.s3store import parse_s3_uri

def container_paths(job: Job) -> Callable[[str], Path]:
    """A function mapping a container path (``/opt/ml/…``) to its place in the job's folder.

    The function raises JobFailed for a path that would leave the job's folder.
    """
    root = (job.folder / "container").resolve()

    def local(path: str) -> Path:
        target = (root / path.lstrip("/")).resolve()
        if target != root and root not in target.parents:
            raise JobFailed(f"ClientError: the local path {path!r} leaves the container's file system")
        return target

    return local


def image_repository(uri: str) -> str:
    """``ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG`` (or ``@sha256:…``) -> ``REPOSITORY``."""
    path = uri.split("/", 1)[1] if "/" in uri else uri
    return re.split(r"[:@]", path, maxsplit=1)[0]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/prefix`` -> (bucket, key prefix).

    Raises:
        JobFailed: not an s3:// URI.
    """
    parsed = parse_s3_uri(uri)
    if parsed is None:
        raise JobFailed(f"ClientError: {uri!r} is not an s3:// URI")
    return parsed


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
                if record.key.endswith("/"):  # a folder marker (the console's "Create folder"): no file
                    continue
                relative = record.key[len(prefix):].lstrip("/") or Path(record.key).name
                target = (folder / relative).resolve()
                if folder.resolve() not in target.parents:
                    raise JobFailed(f"ClientError: the key {record.key!r} would land outside the input folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                _, body = backends.s3.open(bucket, record.key)
                with body, open(target, "wb") as out:
                    shutil.copyfileobj(body, out, 1 << 20)
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
            backends.s3.put_file(bucket, key, path)
        except AwsError as error:
            raise JobFailed(f"ClientError: cannot write output {uri}: {error.message}") from None
        count += 1
    return count


def upload_model(backends: Backends, folder: Path, uri: str, archive: Path,
                 first: dict[str, bytes] | None = None) -> str:
    """Pack the model folder ``folder`` as a ``model.tar.gz`` (at ``archive``, removed after) and upload it to
    ``uri``; the URI. ``first`` holds files (name -> content) written ahead of the folder's, so a reader finds them
    without unpacking the rest.

    Raises:
        JobFailed: the output bucket does not exist.
    """
    try:
        with tarfile.open(archive, "w:gz") as packed:
            for name, content in (first or {}).items():
                member = tarfile.TarInfo(name)
                member.size, member.mode = len(content), 0o644
                packed.addfile(member, io.BytesIO(content))
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                packed.add(path, arcname=path.relative_to(folder).as_posix())
        backends.s3.put_file(*split_s3_uri(uri), archive, "application/x-tar")
    except AwsError as error:
        raise JobFailed(f"ClientError: cannot write the model to {uri}: {error.message}") from None
    finally:
        archive.unlink(missing_ok=True)
    return uri
