"""SageMaker's runtime API (rest-json: ``POST /endpoints/NAME/invocations``, signed as ``sagemaker``):
``InvokeEndpoint`` relayed to the endpoint's sagestack server through the adapter of the model's image, which
speaks that image's request and response shapes."""

from __future__ import annotations

import re
from typing import BinaryIO, Callable

from sagestack.aws.autopilot import INFERENCE_IMAGE, archive_environment, invoke as autopilot_invoke
from sagestack.aws.backends import Backends
from sagestack.aws.blazingtext import invoke as blazingtext_invoke
from sagestack.aws.protocol import AwsError, Request, Response

INVOCATIONS = re.compile(r"^/endpoints/([^/]+)/invocations$")
# An image's repository name -> how its endpoint answers an invocation: (url, body, content type, accept, the
# model container's environment) -> (body, content type).
SERVING: dict[str, Callable[[str, bytes, str, str, dict], tuple[bytes, str]]] = {
    "blazingtext": blazingtext_invoke, INFERENCE_IMAGE: autopilot_invoke}
# An image's repository name -> the container environment its model archive implies (opened; read from its start).
ARCHIVE_ENVIRONMENT: dict[str, Callable[[BinaryIO], dict]] = {INFERENCE_IMAGE: archive_environment}


def serving_environment(image: str, archive: BinaryIO | None, environment: dict) -> dict:
    """The environment an endpoint's adapter gets: what the model archive implies for its image, overridden by
    the model container's own ``Environment``."""
    from sagestack.aws.containers import image_repository

    reader = ARCHIVE_ENVIRONMENT.get(image_repository(image))
    return {**(reader(archive) if reader and archive is not None else {}), **environment}


def operation_name(request: Request) -> str | None:
    """``InvokeEndpoint`` for a runtime request's path, else None."""
    return "InvokeEndpoint" if request.method == "POST" and INVOCATIONS.match(request.path) else None


def invoke_endpoint(backends: Backends, request: Request) -> Response:
    """InvokeEndpoint: the endpoint must be InService; the model's image adapter answers.

    The model's error is a 424 ``ModelError``, as SageMaker relays one.
    """
    from sagestack.aws.containers import image_repository

    name = INVOCATIONS.match(request.path).group(1)
    try:
        endpoint = backends.endpoints.endpoint(name)
    except AwsError:
        raise AwsError("ValidationException", f"Endpoint {name} of account {backends.identity.account} not found.") from None
    if endpoint["status"] != "InService":
        raise AwsError("ValidationException", f"Endpoint {name} is {endpoint['status']}, not InService")
    serving = endpoint["serving"]
    body, content_type = SERVING[image_repository(serving["image"])](
        endpoint["url"], request.body, request.headers.get("Content-Type") or "application/json",
        request.headers.get("Accept") or "", serving.get("environment") or {})
    return Response(200, {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": serving["variant"]}, body)
