"""The images sagestack knows, in one table: an image's repository name -> the kind of job it runs, what it is
here and what runs it. sagestack runs no containers: an image it does not know fails the job with
``FailureReason: image … cannot run here; known images: …``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sagestack.aws.backends import Backends
from sagestack.aws.containers import image_repository
from sagestack.aws.jobs import Job, JobFailed

Work = Callable[[Backends, Job, Callable[[str], Path]], dict]


def _clarify(backends: Backends, job: Job, local: Callable[[str], Path]) -> dict:
    from sagestack.aws.clarify import run_clarify_job

    return run_clarify_job(backends, job, local)


def _blazingtext(backends: Backends, job: Job, local: Callable[[str], Path]) -> dict:
    from sagestack.aws.blazingtext import run_blazingtext_job

    return run_blazingtext_job(backends, job, local)


# An image's repository name (after the registry, before the tag) -> (job kind, what it is here, what runs it).
IMAGES: dict[str, tuple[str, str, Work]] = {
    "sagemaker-clarify-processing": ("processing", "SageMaker Clarify (sagestack bias)", _clarify),
    "blazingtext": ("training", "BlazingText (sagestack train fasttext)", _blazingtext),
}


def image_work(image: str, kind: str) -> Work:
    """What runs ``image`` for a job of ``kind``.

    Raises:
        JobFailed: sagestack does not know the image (for this kind of job); the reason names the known ones.
    """
    known = IMAGES.get(image_repository(image))
    if known is None or known[0] != kind:
        names = ", ".join(f"{name} ({title})" for name, (of, title, _) in IMAGES.items() if of == kind)
        raise JobFailed(f"ClientError: image {image} cannot run here (sagestack runs no containers); known images: "
                        f"{names}")
    return known[2]


