"""Signature Version 4 verification: the request must be signed with the home's key pair.

The canonical request is rebuilt from the request as received, the way botocore builds it before sending
(method, path — percent-encoded once more and dot-segments removed, except for S3 —, the sorted query,
the signed headers, the payload's SHA-256), and its signature recomputed with the secret key. A request
signed with another access key gets ``InvalidClientTokenId`` (S3: ``InvalidAccessKeyId``), one whose
signature differs ``SignatureDoesNotMatch`` — both 403, as AWS answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, unquote

from sagestack.aws.identity import Identity
from sagestack.aws.protocol import AwsError, Request

ALGORITHM = "AWS4-HMAC-SHA256"
# How far a request's X-Amz-Date may be from the server's clock (AWS allows 15 minutes).
MAX_SKEW = dt.timedelta(minutes=15)
# Payload hashes that leave the body unsigned (botocore sends the second for an aws-chunked body whose checksum
# comes in a trailer). The signed-chunk modes (STREAMING-AWS4-HMAC-SHA256-PAYLOAD…) are refused: no SDK or CLI
# of the client environment sends them, and their chunk signatures are not verified here.
UNSIGNED_PAYLOADS = ("UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")


@dataclass(frozen=True)
class Scope:
    """A signature's credential scope: whose key, which day, region and service."""

    access_key: str
    date: str
    region: str
    service: str


def parse_authorization(header: str | None) -> tuple[Scope, list[str], str]:
    """The scope, signed header names and signature of a SigV4 ``Authorization`` header.

    Raises:
        AwsError: no header (``MissingAuthenticationToken``), another scheme or a malformed one
            (``IncompleteSignature``).
    """
    if not header:
        raise AwsError("MissingAuthenticationToken", "the request is not signed; sign it with the credentials "
                       "`sagestack serve-aws --env` prints", 403)
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AwsError("IncompleteSignature", f"only {ALGORITHM} (Signature Version 4) signatures are accepted", 403)
    parts = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    try:
        access_key, date, region, service, terminator = parts["Credential"].split("/")
        signed = parts["SignedHeaders"].split(";")
        signature = parts["Signature"]
    except (KeyError, ValueError):
        raise AwsError("IncompleteSignature", "the Authorization header lacks Credential, SignedHeaders or Signature",
                       403) from None
    if terminator != "aws4_request":
        raise AwsError("IncompleteSignature", "the credential scope does not end with aws4_request", 403)
    return Scope(access_key, date, region, service), signed, signature


def _normalize_path(path: str) -> str:
    """``path`` without ``.``/``..`` segments, as botocore normalizes it before signing (S3 excepted)."""
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    normalized = "/" + "/".join(segments)
    return normalized + "/" if path.endswith("/") and normalized != "/" else normalized


def canonical_query(query: str) -> str:
    """The query string in canonical form: each key and value percent-encoded once, sorted."""
    pairs = []
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def canonical_request(request: Request, service: str, signed_headers: list[str], payload_hash: str) -> str:
    """The SigV4 canonical request of ``request`` as its sender built it."""
    path = request.raw_path or "/"
    if service != "s3":
        path = quote(_normalize_path(path), safe="/~")
    headers = "".join(
        f"{name}:{','.join(' '.join(value.split()) for value in request.headers.get_all(name) or [])}\n"
        for name in signed_headers)
    return "\n".join([request.method, path, canonical_query(request.query), headers, ";".join(signed_headers),
                      payload_hash])


def _signing_key(secret: str, scope: Scope) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (scope.date, scope.region, scope.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def verify_headers(request: Request, identity: Identity, now: dt.datetime | None = None) -> Scope:
    """What of ``request``'s signature can be checked before its body is read: the key, the date and the
    scope — and the whole signature when the headers declare the payload's hash (S3's
    ``X-Amz-Content-SHA256``). The server checks this before it reads (or asks for) a body.

    Raises:
        AwsError: as :func:`verify`.
    """
    scope, signed_headers, signature = parse_authorization(request.headers.get("Authorization"))
    stamp = _check_scope(request, identity, scope, signed_headers, now)
    declared = request.headers.get("X-Amz-Content-SHA256")
    if declared:
        _check_signature(request, identity, scope, signed_headers, signature, stamp, declared)
    return scope


def verify(request: Request, identity: Identity, now: dt.datetime | None = None) -> Scope:
    """Check ``request``'s SigV4 signature against ``identity``'s key pair.

    Returns:
        The signature's scope (its service and region route the request).

    Raises:
        AwsError: unsigned, signed with another key, a wrong signature, a stale date, a scope of another day
            than the date, ``host`` not signed, or a body whose SHA-256 is not the one signed — each a 403 (400
            for the body) with AWS's error code.
    """
    scope, signed_headers, signature = parse_authorization(request.headers.get("Authorization"))
    stamp = _check_scope(request, identity, scope, signed_headers, now)
    declared = request.headers.get("X-Amz-Content-SHA256")
    actual = hashlib.sha256(request.body).hexdigest()
    if declared and declared not in UNSIGNED_PAYLOADS and declared != actual:
        raise AwsError("XAmzContentSHA256Mismatch", "the provided x-amz-content-sha256 header does not match "
                       "the body", 400)
    _check_signature(request, identity, scope, signed_headers, signature, stamp, declared or actual)
    return scope


def _check_scope(request: Request, identity: Identity, scope: Scope, signed_headers: list[str],
                 now: dt.datetime | None) -> str:
    """Check the key, the date (and its skew), that the scope is of the date's day and that ``host`` is
    signed; the X-Amz-Date stamp."""
    s3 = scope.service == "s3"
    if not hmac.compare_digest(scope.access_key, identity.access_key_id):
        raise AwsError("InvalidAccessKeyId" if s3 else "InvalidClientTokenId",
                       "the security token included in the request is invalid: sign with the credentials "
                       "`sagestack serve-aws --env` prints", 403)
    stamp = request.headers.get("X-Amz-Date") or ""
    try:
        signed_at = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise AwsError("IncompleteSignature", "the request has no valid X-Amz-Date header", 403) from None
    now = now or dt.datetime.now(dt.timezone.utc)
    if abs(now - signed_at) > MAX_SKEW:
        raise AwsError("RequestTimeTooSkewed", "the difference between the request time and the server's time "
                       "is more than 15 minutes", 403)
    if scope.date != stamp[:8]:
        raise AwsError("SignatureDoesNotMatch", f"the credential scope's date {scope.date} is not the day of "
                       f"X-Amz-Date {stamp}", 403)
    if "host" not in signed_headers:
        raise AwsError("SignatureDoesNotMatch", "the host header must be among the SignedHeaders", 403)
    declared = request.headers.get("X-Amz-Content-SHA256")
    if declared and declared.startswith("STREAMING-") and declared not in UNSIGNED_PAYLOADS:
        raise AwsError("NotImplemented", f"x-amz-content-sha256 {declared} (signed chunks) is not supported by "
                       "sagestack serve-aws; send the body's SHA-256, UNSIGNED-PAYLOAD or "
                       "STREAMING-UNSIGNED-PAYLOAD-TRAILER", 400)
    return stamp


def _check_signature(request: Request, identity: Identity, scope: Scope, signed_headers: list[str], signature: str,
                     stamp: str, payload_hash: str) -> None:
    text = canonical_request(request, scope.service, signed_headers, payload_hash)
    string_to_sign = "\n".join([ALGORITHM, stamp, f"{scope.date}/{scope.region}/{scope.service}/aws4_request",
                                hashlib.sha256(text.encode()).hexdigest()])
    expected = hmac.new(_signing_key(identity.secret_access_key, scope), string_to_sign.encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise AwsError("SignatureDoesNotMatch", "the request signature we calculated does not match the signature "
                       "you provided: check the secret key (`sagestack serve-aws --env`)", 403)
