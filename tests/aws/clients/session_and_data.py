"""The course's first cells, as a SageMaker user writes them: a session, its default bucket, the execution role,
data uploaded with the SDK — plus where the SDK's explicitly named STS endpoint really went. Prints one JSON line."""

import json
import sys

import boto3
import sagemaker
from sagemaker import get_execution_role

session = sagemaker.Session()
bucket = session.default_bucket()
role = get_execution_role()
uploaded = session.upload_data(sys.argv[1], bucket=bucket, key_prefix="data")
key = uploaded.split(f"s3://{bucket}/", 1)[1]
body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
sts = session.boto_session.client("sts", endpoint_url="https://sts.us-east-1.amazonaws.com")
print(json.dumps({"bucket": bucket, "role": role, "uploaded": uploaded, "body": body,
                  "sts_endpoint": sts.meta.endpoint_url, "region": session.boto_region_name}))
