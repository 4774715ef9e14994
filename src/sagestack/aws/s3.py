"""S3's REST API (path-style addressing) over :class:`~sagestack.aws.s3store.S3Store`: what the SageMaker SDK,
boto3, awswrangler and ``aws s3`` call — buckets, objects (ranged reads), listings v1 and v2, batch delete,
copy, multipart uploads."""

from __future__ import annotations

import base64
import email.utils
import time
import xml.etree.ElementTree as ElementTree
from urllib.parse import quote, unquote

from sagestack.aws.backends import Backends
from sagestack.aws.protocol import AwsError, Request, Response, decode_aws_chunked, tag, xml_response
from sagestack.aws.s3store import S3Object

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
# Object bodies larger than this are streamed from their file rather than read into memory.
STREAM_ABOVE = 1024 * 1024
# A sub-resource of the query string -> the operation name's stem (GetBucketTagging, PutObjectAcl, ...).
SUBRESOURCES = {
    "acl": "Acl", "tagging": "Tagging", "policy": "Policy", "versioning": "Versioning", "cors": "Cors",
    "lifecycle": "LifecycleConfiguration", "encryption": "Encryption", "website": "Website", "logging": "Logging",
    "notification": "NotificationConfiguration", "ownershipControls": "OwnershipControls",
    "publicAccessBlock": "PublicAccessBlock", "accelerate": "AccelerateConfiguration",
    "requestPayment": "RequestPayment", "replication": "Replication", "object-lock": "ObjectLockConfiguration",
    "retention": "Retention", "legal-hold": "LegalHold", "attributes": "Attributes", "restore": "Restore",
}


def split_path(request: Request) -> tuple[str, str]:
    """The bucket and key of a path-style request (``""`` for what is absent)."""
    bucket, _, key = request.raw_path.lstrip("/").partition("/")
    return unquote(bucket), unquote(key)


def operation_name(request: Request) -> str:
    """The S3 operation a request calls, named as in botocore (``PutObject``, ``ListObjectsV2`` …)."""
    bucket, key = split_path(request)
    params = request.params()
    method = request.method
    sub = next((name for name in params if name in SUBRESOURCES), None)
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if sub:
        verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, method)
        return f"{verb}{'Object' if key else 'Bucket'}{SUBRESOURCES[sub]}"
    if not key:
        if method == "GET":
            if "location" in params:
                return "GetBucketLocation"
            if "uploads" in params:
                return "ListMultipartUploads"
            if "versions" in params:
                return "ListObjectVersions"
            return "ListObjectsV2" if params.get("list-type") == "2" else "ListObjects"
        if method == "POST" and "delete" in params:
            return "DeleteObjects"
        return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, f"{method} bucket")
    copy = request.headers.get("x-amz-copy-source")
    if method == "PUT":
        if "uploadId" in params:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        return "SelectObjectContent" if "select" in params else "POST object"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in params else "DeleteObject"
    if method == "GET":
        return "ListParts" if "uploadId" in params else "GetObject"
    return "HeadObject" if method == "HEAD" else f"{method} object"


# -- helpers ---------------------------------------------------------------------------------------------------

def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def _payload(request: Request) -> bytes:
    """The object bytes a PUT carries (an ``aws-chunked`` body decoded)."""
    encoding = request.headers.get("Content-Encoding") or ""
    if "aws-chunked" in encoding or (request.headers.get("X-Amz-Content-SHA256") or "").startswith("STREAMING-"):
        return decode_aws_chunked(request.body)
    return request.body


def _metadata(request: Request) -> dict[str, str]:
    return {name.lower()[len("x-amz-meta-"):]: value for name, value in request.headers.items()
            if name.lower().startswith("x-amz-meta-")}


def _content_type(request: Request) -> str | None:
    return request.headers.get("Content-Type")


def _object_headers(record: S3Object) -> dict[str, str]:
    return {"ETag": f'"{record.etag}"', "Last-Modified": email.utils.formatdate(record.modified, usegmt=True),
            "Content-Type": record.content_type, "Accept-Ranges": "bytes",
            **{f"x-amz-meta-{name}": value for name, value in record.metadata.items()}}


def _xml_body(request: Request) -> ElementTree.Element:
    try:
        root = ElementTree.fromstring(request.body)
    except ElementTree.ParseError:
        raise AwsError("MalformedXML", "the XML you provided was not well-formed or did not validate") from None
    for element in root.iter():  # drop the namespace: S3 clients send it, or not
        element.tag = element.tag.rpartition("}")[2]
    return root


def _int_param(params: dict[str, str], name: str, default: int, low: int = 0, high: int = 1000) -> int:
    try:
        value = int(params.get(name, default))
    except ValueError:
        raise AwsError("InvalidArgument", f"{name} must be an integer") from None
    if value < low:
        raise AwsError("InvalidArgument", f"{name} must be at least {low}")
    return min(value, high)


def _ok(status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, headers or {})


# -- buckets ---------------------------------------------------------------------------------------------------

def list_buckets(backends: Backends, request: Request) -> Response:
    """ListBuckets."""
    owner = f"<Owner>{tag('ID', backends.identity.account)}{tag('DisplayName', 'sagestack')}</Owner>"
    buckets = "".join(f"<Bucket>{tag('Name', name)}{tag('CreationDate', _iso(created))}</Bucket>"
                      for name, created in backends.s3.buckets())
    return xml_response(f'<ListAllMyBucketsResult xmlns="{NAMESPACE}">{owner}<Buckets>{buckets}</Buckets>'
                        "</ListAllMyBucketsResult>")


def create_bucket(backends: Backends, request: Request) -> Response:
    """CreateBucket: the location constraint, when given, is the region; us-east-1 re-creates silently, as S3."""
    bucket, _ = split_path(request)
    region = "us-east-1"
    if request.body.strip():
        constraint = _xml_body(request).find("LocationConstraint")
        region = (constraint.text or "").strip() if constraint is not None and constraint.text else region
    if not backends.s3.create_bucket(bucket, region) and region != "us-east-1":
        raise AwsError("BucketAlreadyOwnedByYou", "your previous request to create the named bucket succeeded "
                       "and you already own it", 409, BucketName=bucket)
    return _ok(headers={"Location": f"/{bucket}"})


def head_bucket(backends: Backends, request: Request) -> Response:
    """HeadBucket."""
    region, _ = backends.s3.bucket(split_path(request)[0])
    return _ok(headers={"x-amz-bucket-region": region})


def delete_bucket(backends: Backends, request: Request) -> Response:
    """DeleteBucket (an empty one)."""
    backends.s3.delete_bucket(split_path(request)[0])
    return _ok(204)


def get_bucket_location(backends: Backends, request: Request) -> Response:
    """GetBucketLocation (empty for us-east-1, as S3 answers)."""
    region, _ = backends.s3.bucket(split_path(request)[0])
    value = "" if region == "us-east-1" else region
    return xml_response(f'<LocationConstraint xmlns="{NAMESPACE}">{value}</LocationConstraint>')


# -- objects ---------------------------------------------------------------------------------------------------

def put_object(backends: Backends, request: Request) -> Response:
    """PutObject."""
    bucket, key = split_path(request)
    record = backends.s3.put(bucket, key, _payload(request), _content_type(request), _metadata(request))
    return _ok(headers={"ETag": f'"{record.etag}"'})


def _range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range: bytes=…`` header asks of a ``size``-byte object (None: all)."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            start, end = max(size - int(last), 0), size - 1
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        raise AwsError("InvalidRange", "the requested range is not satisfiable", 416)
    return start, end


def get_object(backends: Backends, request: Request) -> Response:
    """GetObject, whole or one byte range (206); a large body is streamed from its file."""
    bucket, key = split_path(request)
    record, body = backends.s3.open(bucket, key)  # open: a PutObject replacing it meanwhile unlinks, not changes, it
    headers = _object_headers(record)
    try:
        wanted = _range(request.headers.get("Range") or "", record.size)
    except AwsError:
        body.close()
        raise
    start, end = wanted or (0, record.size - 1)
    status = 200 if wanted is None else 206
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{record.size}"
    body.seek(start)
    if end - start + 1 <= STREAM_ABOVE:
        with body:
            return Response(status, headers, body.read(end - start + 1))
    return Response(status, headers, stream=body, length=end - start + 1)


def head_object(backends: Backends, request: Request) -> Response:
    """HeadObject."""
    record = backends.s3.get(*split_path(request))
    return Response(200, {**_object_headers(record), "Content-Length": str(record.size)})


def delete_object(backends: Backends, request: Request) -> Response:
    """DeleteObject."""
    backends.s3.delete(*split_path(request))
    return _ok(204)


def delete_objects(backends: Backends, request: Request) -> Response:
    """DeleteObjects: up to 1000 keys in one request."""
    bucket, _ = split_path(request)
    root = _xml_body(request)
    quiet = (root.findtext("Quiet") or "").strip().lower() == "true"
    keys = [element.findtext("Key") or "" for element in root.findall("Object")]
    if len(keys) > 1000:
        raise AwsError("MalformedXML", "a DeleteObjects request may name at most 1000 keys")
    for key in keys:
        backends.s3.delete(bucket, key)
    deleted = "" if quiet else "".join(f"<Deleted>{tag('Key', key)}</Deleted>" for key in keys)
    return xml_response(f'<DeleteResult xmlns="{NAMESPACE}">{deleted}</DeleteResult>')


def copy_object(backends: Backends, request: Request) -> Response:
    """CopyObject (``x-amz-copy-source: bucket/key``; metadata copied unless the directive says REPLACE)."""
    source_bucket, _, source_key = unquote(request.headers["x-amz-copy-source"].lstrip("/")).partition("/")
    source_key = source_key.partition("?versionId=")[0]
    bucket, key = split_path(request)
    replace = (request.headers.get("x-amz-metadata-directive") or "COPY").upper() == "REPLACE"
    record = backends.s3.copy(source_bucket, source_key, bucket, key, _content_type(request) if replace else None,
                              _metadata(request) if replace else None)
    return xml_response(f"<CopyObjectResult>{tag('LastModified', _iso(record.modified))}"
                        f"{tag('ETag', chr(34) + record.etag + chr(34))}</CopyObjectResult>")


def _listing(backends: Backends, request: Request, version: int) -> Response:
    bucket, _ = split_path(request)
    params = request.params()
    prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
    max_keys = _int_param(params, "max-keys", 1000)
    encode = params.get("encoding-type") == "url"

    def name(value: str) -> str:  # with encoding-type=url, clients decode keys with unquote_plus
        return quote(value, safe="/") if encode else value

    if version == 2:
        token = params.get("continuation-token")
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode() if token else params.get("start-after", "")
        except ValueError:
            raise AwsError("InvalidArgument", "the continuation token provided is incorrect") from None
    else:
        after = params.get("marker", "")
    page = backends.s3.list(bucket, prefix, delimiter, after, max_keys)
    contents = "".join(
        f"<Contents>{tag('Key', name(o.key))}{tag('LastModified', _iso(o.modified))}{tag('ETag', chr(34) + o.etag + chr(34))}"
        f"{tag('Size', o.size)}{tag('StorageClass', 'STANDARD')}</Contents>" for o in page.objects)
    prefixes = "".join(f"<CommonPrefixes>{tag('Prefix', name(p))}</CommonPrefixes>" for p in page.prefixes)
    common = (f"{tag('Name', bucket)}{tag('Prefix', name(prefix))}{tag('MaxKeys', max_keys)}"
              f"{tag('Delimiter', name(delimiter) or None)}{tag('IsTruncated', page.truncated)}"
              f"{tag('EncodingType', 'url' if encode else None)}")
    if version == 2:
        count = len(page.objects) + len(page.prefixes)
        following = base64.urlsafe_b64encode(page.last.encode()).decode() if page.truncated and page.last else None
        start_after = name(params["start-after"]) if "start-after" in params else None
        extra = (f"{tag('KeyCount', count)}{tag('ContinuationToken', params.get('continuation-token'))}"
                 f"{tag('NextContinuationToken', following)}{tag('StartAfter', start_after)}")
    else:
        extra = tag("Marker", name(after)) + (tag("NextMarker", name(page.last)) if page.truncated and delimiter else "")
    return xml_response(f'<ListBucketResult xmlns="{NAMESPACE}">{common}{extra}{contents}{prefixes}</ListBucketResult>')


def list_objects_v2(backends: Backends, request: Request) -> Response:
    """ListObjectsV2 (prefix, delimiter, max-keys, continuation token, start-after, encoding-type=url)."""
    return _listing(backends, request, 2)


def list_objects(backends: Backends, request: Request) -> Response:
    """ListObjects (v1: prefix, delimiter, max-keys, marker)."""
    return _listing(backends, request, 1)


# -- multipart uploads -----------------------------------------------------------------------------------------

def create_multipart_upload(backends: Backends, request: Request) -> Response:
    """CreateMultipartUpload."""
    bucket, key = split_path(request)
    upload_id = backends.s3.start_upload(bucket, key, _content_type(request), _metadata(request))
    return xml_response(f'<InitiateMultipartUploadResult xmlns="{NAMESPACE}">{tag("Bucket", bucket)}{tag("Key", key)}'
                        f"{tag('UploadId', upload_id)}</InitiateMultipartUploadResult>")


def upload_part(backends: Backends, request: Request) -> Response:
    """UploadPart."""
    bucket, key = split_path(request)
    params = request.params()
    number = _int_param(params, "partNumber", 0, 1, 10_000)
    etag = backends.s3.put_part(bucket, key, params["uploadId"], number, _payload(request))
    return _ok(headers={"ETag": f'"{etag}"'})


def complete_multipart_upload(backends: Backends, request: Request) -> Response:
    """CompleteMultipartUpload."""
    bucket, key = split_path(request)
    parts = []
    for element in _xml_body(request).findall("Part"):
        try:
            parts.append((int(element.findtext("PartNumber") or ""), element.findtext("ETag") or ""))
        except ValueError:
            raise AwsError("MalformedXML", "a Part has no integer PartNumber") from None
    record = backends.s3.complete_upload(bucket, key, request.params()["uploadId"], parts)
    return xml_response(f'<CompleteMultipartUploadResult xmlns="{NAMESPACE}">{tag("Location", f"/{bucket}/{key}")}'
                        f"{tag('Bucket', bucket)}{tag('Key', key)}{tag('ETag', chr(34) + record.etag + chr(34))}"
                        "</CompleteMultipartUploadResult>")


def abort_multipart_upload(backends: Backends, request: Request) -> Response:
    """AbortMultipartUpload."""
    bucket, key = split_path(request)
    backends.s3.abort_upload(bucket, key, request.params()["uploadId"])
    return _ok(204)
