"""AutoML jobs that cannot run, as a SageMaker user meets them: a target attribute that is not a column, an
input object that is not there and a problem type the data contradicts (the job fails with the reason), what
sagestack's AutoML cannot do (a regression job: a 400 at once), requests SageMaker refuses (a 400 at once) and
a job that does not exist. Prints one JSON line."""

import json
import sys
import time

import boto3
import sagemaker
from botocore.exceptions import ClientError

sess = sagemaker.Session()
bucket = sess.default_bucket()
role = sagemaker.get_execution_role()
data = sess.upload_data(path=sys.argv[1], bucket=bucket, key_prefix="autopilot/refusals")
stamp = int(time.time())
results = {}


def run(case, target, inputs, **options):
    automl = sagemaker.automl.automl.AutoML(role=role, target_attribute_name=target, max_candidates=1,
                                           sagemaker_session=sess, output_path=f"s3://{bucket}/autopilot/refusals",
                                           **options)
    name = f"{case}-{stamp}"
    try:
        automl.fit(inputs, job_name=name, wait=False, logs=False)
    except ClientError as error:
        results[case] = {"code": error.response["Error"]["Code"], "message": error.response["Error"]["Message"],
                         "status": error.response["ResponseMetadata"]["HTTPStatusCode"]}
        return
    described = automl.describe_auto_ml_job(job_name=name)
    while described["AutoMLJobStatus"] == "InProgress":
        time.sleep(0.3)
        described = automl.describe_auto_ml_job(job_name=name)
    results[case] = {"status": described["AutoMLJobStatus"], "secondary": described["AutoMLJobSecondaryStatus"],
                     "failure": described.get("FailureReason"), "artifacts": "AutoMLJobArtifacts" in described,
                     "candidates": automl.list_candidates(job_name=name)}


run("no-target", "stars", data)
run("no-input", "sentiment", f"s3://{bucket}/autopilot/never-uploaded/train.csv")
run("regression", "sentiment", data, problem_type="Regression", job_objective={"MetricName": "MSE"})
run("binary", "sentiment", data, problem_type="BinaryClassification", job_objective={"MetricName": "F1"})
client = boto3.client("sagemaker")
channel = {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": data}}, "TargetAttributeName": "sentiment"}
for case, name, output in (("long-name", "n" * 33, f"s3://{bucket}/autopilot/refusals"),
                           ("no-bucket", f"no-bucket-{stamp}", "s3://no-such-bucket-here/out")):
    try:
        client.create_auto_ml_job(AutoMLJobName=name, InputDataConfig=[channel], RoleArn=role,
                                  OutputDataConfig={"S3OutputPath": output})
        results[case] = {"created": True}
    except ClientError as error:
        results[case] = {"code": error.response["Error"]["Code"], "message": error.response["Error"]["Message"]}
try:
    client.describe_auto_ml_job(AutoMLJobName=f"never-{stamp}")
except client.exceptions.ResourceNotFound as error:  # the SDK's own exception class for the code
    results["unknown"] = {"code": error.response["Error"]["Code"], "message": error.response["Error"]["Message"]}
print(json.dumps(results))
