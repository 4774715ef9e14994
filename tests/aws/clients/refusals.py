"""What the server refuses, as the SDK surfaces it: wrong keys, an operation not implemented (in each protocol),
and bad input. Prints one JSON line: for each case, the error code, HTTP status and message botocore raised."""

import json
import os
import urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

endpoint = os.environ["AWS_ENDPOINT_URL"]
key, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
results = {}


def record(name, call):
    try:
        call()
        results[name] = {"code": None, "status": 200}
    except ClientError as error:
        results[name] = {"code": error.response["Error"]["Code"], "message": error.response["Error"].get("Message"),
                         "status": error.response["ResponseMetadata"]["HTTPStatusCode"]}


def raw(name, method, path, body=b"", service="s3", sign=True):
    """A hand-made request (signed with the right keys unless told not to): what no SDK would send."""
    request = AWSRequest(method=method, url=endpoint + path, data=body)
    if sign:
        SigV4Auth(Credentials(key, secret), service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(prepared.url, data=body or None, method=method, headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(http) as response:
            results[name] = {"status": response.status, "body": response.read().decode()}
    except urllib.error.HTTPError as error:
        results[name] = {"status": error.code, "body": error.read().decode()}


record("wrong_secret", boto3.client("s3", aws_access_key_id=key, aws_secret_access_key="x" * 40).list_buckets)
record("wrong_key_sts", boto3.client("sts", aws_access_key_id="ASIANOTTHEKEY0000000",
                                     aws_secret_access_key=secret).get_caller_identity)
record("wrong_key_s3", boto3.client("s3", aws_access_key_id="ASIANOTTHEKEY0000000",
                                    aws_secret_access_key=secret).list_buckets)
record("unknown_json", boto3.client("sagemaker").list_endpoints)
record("unknown_query", lambda: boto3.client("sts").assume_role(RoleArn="arn:aws:iam::000000000000:role/x",
                                                                  RoleSessionName="lab"))
record("unknown_s3", lambda: boto3.client("s3").put_bucket_tagging(
    Bucket="any-bucket", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}))
record("no_such_bucket", lambda: boto3.client("s3").get_object(Bucket="no-such-bucket", Key="k"))
record("bad_bucket_name", lambda: boto3.client("s3").create_bucket(Bucket="Bad_Name"))
record("no_such_role", lambda: boto3.client("iam").get_role(RoleName="someone-else"))
s3 = boto3.client("s3")
s3.create_bucket(Bucket="refusals")
s3.put_object(Bucket="refusals", Key="k", Body=b"abc")
record("no_such_key", lambda: s3.get_object(Bucket="refusals", Key="missing"))
record("bad_range", lambda: s3.get_object(Bucket="refusals", Key="k", Range="bytes=10-20"))
record("bad_part", lambda: s3.complete_multipart_upload(
    Bucket="refusals", Key="m", UploadId=s3.create_multipart_upload(Bucket="refusals", Key="m")["UploadId"],
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}]}))
raw("unsigned", "GET", "/", sign=False)
raw("malformed_xml", "POST", "/refusals?delete", body=b"<Delete><Object><Key>k</Key>")
raw("not_json", "POST", "/", body=b"[1, 2", service="sagemaker")
print(json.dumps(results))
