"""Requests and responses as the AWS protocols shape them, and AWS-shaped errors.

Three wire protocols cover the services served here (botocore's service models name them): ``rest-xml``
(S3: the operation is the method, path and sub-resource), ``query`` (STS, IAM: an ``Action`` form field,
XML answers) and ``json`` (SageMaker, Glue, Athena: an ``X-Amz-Target`` header, JSON answers). An error
is rendered the way the caller's protocol carries errors, so botocore raises the ``ClientError`` an AWS
user knows (``e.response["Error"]["Code"]``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import BinaryIO
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape

# The signing name of a service -> its wire protocol and, for the query protocol, its XML namespace.
PROTOCOLS = {
    "s3": ("rest-xml", None),
    "sts": ("query", "https://sts.amazonaws.com/doc/2011-06-15/"),
    "iam": ("query", "https://iam.amazonaws.com/doc/2010-05-08/"),
    # SageMaker's runtime (InvokeEndpoint) signs as "sagemaker" too; it is rest-json, whose errors are json's.
    "sagemaker": ("json", None),
    "glue": ("json", None),
    "athena": ("json", None),
    "logs": ("json", None),
    # CloudWatch signs as "monitoring"; botocore now speaks Smithy RPC v2 CBOR to it.
    "monitoring": ("rpc-v2-cbor", None),
}
OPERATIONS_HINT = "`sagestack serve-aws --operations` lists the supported operations"


class AwsError(Exception):
    """An error answered the AWS way: an HTTP status, AWS's error code and a one-line message."""

    def __init__(self, code: str, message: str, status: int = 400, **fields: str) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.fields = code, message, status, fields


@dataclass
class Request:
    """One HTTP request as the server received it.

    Attributes:
        method: the HTTP method, upper case.
        raw_path: the path as sent (percent-encoded), without the query.
        query: the query string as sent (percent-encoded).
        headers: the headers (case-insensitive look-ups).
        body: the body as received (S3 decodes an ``aws-chunked`` one: :func:`decode_aws_chunked`).
        service, region: the signature's scope, once verified.
    """

    method: str
    raw_path: str
    query: str
    headers: Message
    body: bytes = b""
    service: str = ""
    region: str = ""
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex.upper()[:16])

    @property
    def path(self) -> str:
        """The path, percent-decoded."""
        return unquote(self.raw_path)

    def params(self) -> dict[str, str]:
        """The query string's parameters (last value wins); a key without ``=`` maps to ``""``."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    def form(self) -> dict[str, str]:
        """The query protocol's parameters: the query string's, then the url-encoded form body's."""
        values = self.params()
        if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            values.update(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        return values

    def cbor(self) -> dict:
        """The Smithy RPC v2 CBOR protocol's input document (``{}`` for an empty body).

        Raises:
            AwsError: the body is not a CBOR map (``SerializationException``).
        """
        from sagestack.aws import cbor

        if not self.body:
            return {}
        try:
            document = cbor.decode(self.body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise AwsError("SerializationException", "the request body is not a CBOR map")
        return document

    def json(self) -> dict:
        """The json protocol's input document (``{}`` for an empty body).

        Raises:
            AwsError: the body is not a JSON object (``SerializationException``, as AWS answers).
        """
        if not self.body.strip():
            return {}
        try:
            document = json.loads(self.body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
            document = None
        if not isinstance(document, dict):
            raise AwsError("SerializationException", "the request body is not a JSON object")
        return document


@dataclass
class Response:
    """One HTTP response: status, headers and body (a HEAD answer's body is never sent).

    A large body is a ``stream`` instead: an open binary file positioned at its start, and ``length`` bytes
    of it to send; the server closes it.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: BinaryIO | None = None
    length: int = 0


_KINDS = {dict: "a structure", list: "a list", str: "a string", int: "an integer"}


def member(document: dict, name: str, kind: type, *, required: bool = False, where: str = "",
           code: str = "ValidationException") -> object:
    """``document[name]`` when it is of ``kind`` (``dict``, ``list``, ``str`` or ``int``); None when absent
    and not ``required``. ``where`` names the enclosing member in messages (``AppSpecification.``).

    Raises:
        AwsError: absent though required, or of another type (``code``, 400: an AWS-shaped refusal, never
            a 500 from a handler tripping over it).
    """
    value = document.get(name)
    if value is None:
        if required:
            raise AwsError(code, f"{where}{name} is required")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise AwsError(code, f"{where}{name} must be {_KINDS[kind]}, not {type(value).__name__}")
    return value


def members(document: dict, name: str, *, required: bool = False, where: str = "",
            code: str = "ValidationException") -> list[dict]:
    """``document[name]`` as a list of structures (``[]`` when absent and not ``required``).

    Raises:
        AwsError: as :func:`member`, or an item that is not a structure.
    """
    items = member(document, name, list, required=required, where=where, code=code) or []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise AwsError(code, f"{where}{name}[{index}] must be a structure, not {type(item).__name__}")
    return items


def protocol_of(service: str, request: Request) -> str:
    """The wire protocol ``request`` speaks: the service's, else guessed from the request's shape."""
    # A service may speak several (botocore picks json for CloudWatch where it can, CBOR elsewhere): the
    # request's own marks decide first.
    if (request.headers.get("smithy-protocol") or "") == "rpc-v2-cbor":
        return "rpc-v2-cbor"
    if request.headers.get("X-Amz-Target"):
        return "json"
    if service in PROTOCOLS:
        return PROTOCOLS[service][0]
    if "Action" in request.form():
        return "query"
    return "rest-xml"


def xml_response(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """An XML document (``body`` without the declaration) as a response."""
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + body
    return Response(status, {"Content-Type": "application/xml", **(headers or {})}, text.encode())


def tag(name: str, value: object) -> str:
    """``<name>value</name>``, the value escaped (``None`` gives nothing; a bool gives true/false)."""
    if value is None:
        return ""
    text = ("true" if value else "false") if isinstance(value, bool) else escape(str(value))
    return f"<{name}>{text}</{name}>"


def query_response(service: str, action: str, result: str, request: Request) -> Response:
    """A query-protocol answer: ``<ActionResponse><ActionResult>result</…><ResponseMetadata>…``."""
    namespace = PROTOCOLS.get(service, (None, ""))[1]
    return xml_response(
        f'<{action}Response xmlns="{namespace}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata>{tag('RequestId', request.request_id)}</ResponseMetadata></{action}Response>")


def _json_value(value: object) -> object:
    if isinstance(value, datetime):  # the json protocols' timestamps are seconds since the epoch
        return value.timestamp()
    return str(value)


def json_response(document: dict, status: int = 200) -> Response:
    """A json-protocol answer."""
    return Response(status, {"Content-Type": "application/x-amz-json-1.1"},
                    json.dumps(document, default=_json_value).encode())


def read_document(request: Request) -> dict:
    """The input document of an operation served in both the json and the CBOR protocol, as the request sent it."""
    return request.cbor() if protocol_of(request.service, request) == "rpc-v2-cbor" else request.json()


def document_response(request: Request, document: dict) -> Response:
    """``document`` answered in the protocol the request came in (json or CBOR)."""
    if protocol_of(request.service, request) == "rpc-v2-cbor":
        return cbor_response(document)
    return json_response(document)


def cbor_response(document: dict, status: int = 200) -> Response:
    """A Smithy RPC v2 CBOR answer."""
    from sagestack.aws import cbor

    return Response(status, {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
                    cbor.encode(document))


def error_response(error: AwsError, service: str, request: Request) -> Response:
    """``error`` rendered the way ``service``'s protocol carries errors."""
    protocol = protocol_of(service, request)
    headers = {"x-amzn-RequestId": request.request_id, "x-amz-request-id": request.request_id}
    if protocol == "rpc-v2-cbor":
        response = cbor_response({"__type": error.code, "message": error.message}, error.status)
        response.headers.update(headers)
        return response
    if protocol == "json":
        return Response(error.status, {**headers, "Content-Type": "application/x-amz-json-1.1",
                                       "x-amzn-ErrorType": error.code},
                        json.dumps({"__type": error.code, "message": error.message}).encode())
    if protocol == "query":
        namespace = PROTOCOLS.get(service, (None, ""))[1] or ""
        kind = "Sender" if error.status < 500 else "Receiver"
        body = (f'<ErrorResponse xmlns="{namespace}"><Error>{tag("Type", kind)}{tag("Code", error.code)}'
                f'{tag("Message", error.message)}</Error>{tag("RequestId", request.request_id)}</ErrorResponse>')
        return xml_response(body, error.status, headers)
    extra = "".join(tag(name, value) for name, value in error.fields.items())
    body = f"<Error>{tag('Code', error.code)}{tag('Message', error.message)}{extra}{tag('RequestId', request.request_id)}</Error>"
    return xml_response(body, error.status, headers)


def not_implemented(service: str, operation: str) -> AwsError:
    """The answer to an operation the server does not implement: a 400 that names it and the fix."""
    return AwsError("NotImplemented", f"sagestack serve-aws does not implement {service}:{operation}; {OPERATIONS_HINT}")


def decode_aws_chunked(body: bytes) -> bytes:
    """The payload of an ``aws-chunked`` body (``SIZE[;chunk-signature=…]\\r\\nDATA\\r\\n`` … ``0`` + trailers).

    Raises:
        AwsError: the framing is broken (``IncompleteBody``).
    """
    out, position = bytearray(), 0
    while True:
        end = body.find(b"\r\n", position)
        if end < 0:
            raise AwsError("IncompleteBody", "the aws-chunked body ends inside a chunk header")
        try:
            size = int(body[position:end].split(b";")[0], 16)
        except ValueError:
            raise AwsError("IncompleteBody", "the aws-chunked body has a malformed chunk header") from None
        if size == 0:
            return bytes(out)
        start = end + 2
        if start + size > len(body):
            raise AwsError("IncompleteBody", "the aws-chunked body is shorter than its chunks say")
        out += body[start:start + size]
        position = start + size + 2
