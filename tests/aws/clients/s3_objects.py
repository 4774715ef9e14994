"""boto3's S3 calls the labs make, and the edges the SDKs reach: odd keys, listings with a delimiter and pages,
byte ranges, copies, batch deletes and a multipart upload. Prints one JSON line of what came back."""

import json
import os
import sys
import tempfile

import boto3

s3 = boto3.client("s3")
bucket = sys.argv[1]
s3.create_bucket(Bucket=bucket)
keys = ["data/a.csv", "data/b c+d.csv", "data/nested/e.csv", "top.txt", "ünïcode/ключ.txt"]
for key in keys:
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode(), Metadata={"source": "test"}, ContentType="text/csv")
got = s3.get_object(Bucket=bucket, Key="data/b c+d.csv")
folded = s3.list_objects_v2(Bucket=bucket, Prefix="data/", Delimiter="/")
pages = [[item["Key"] for item in page.get("Contents", [])]
         for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})]
ranged = s3.get_object(Bucket=bucket, Key="top.txt", Range="bytes=1-3")["Body"].read().decode()
s3.copy_object(Bucket=bucket, Key="copy.txt", CopySource={"Bucket": bucket, "Key": "top.txt"})
copied = s3.get_object(Bucket=bucket, Key="copy.txt")["Body"].read().decode()
deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "copy.txt"}, {"Key": "top.txt"}]})
s3.delete_object(Bucket=bucket, Key="never-there")
big = os.urandom(9 * 1024 * 1024)  # over the SDK's 8 MB threshold: a multipart upload of two parts
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "big.bin")
    with open(path, "wb") as out:
        out.write(big)
    s3.upload_file(path, bucket, "big.bin")
    s3.download_file(bucket, "big.bin", path + ".back")
    with open(path + ".back", "rb") as back:
        roundtrip = back.read() == big
print(json.dumps({
    "body": got["Body"].read().decode(), "metadata": got["Metadata"], "content_type": got["ContentType"],
    "etag": got["ETag"], "prefixes": [p["Prefix"] for p in folded.get("CommonPrefixes", [])],
    "folded_keys": [item["Key"] for item in folded.get("Contents", [])], "pages": pages, "ranged": ranged,
    "copied": copied, "deleted": sorted(d["Key"] for d in deleted["Deleted"]), "multipart_roundtrip": roundtrip,
    "multipart_etag": s3.head_object(Bucket=bucket, Key="big.bin")["ETag"],
    "left": sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]),
}))
