"""Jobs that cannot succeed fail as SageMaker jobs do, with the reason: an image sagestack cannot run, a Clarify
job whose dataset is not in S3, and a BlazingText training job given a CSV with a header where BlazingText expects
``__label__<label> <text>`` lines. Prints one JSON line: each job's final status and FailureReason."""

import json
import time

import boto3
import sagemaker

sess = sagemaker.Session()
bucket = sess.default_bucket()
role = sagemaker.get_execution_role()
client = boto3.client("sagemaker")
clarify_image = sagemaker.image_uris.retrieve("clarify", "us-east-1")
jobs = {
    "byoc": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-processing:latest",
    "missing-input": clarify_image,
}
for name, image in jobs.items():
    client.create_processing_job(
        ProcessingJobName=name, RoleArn=role, AppSpecification={"ImageUri": image},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}},
        ProcessingInputs=[{"InputName": "dataset", "S3Input": {
            "S3Uri": f"s3://{bucket}/nothing/here.csv", "LocalPath": "/opt/ml/processing/input/data",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "out", "S3Output": {
            "S3Uri": f"s3://{bucket}/out", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]})
csv_with_header = sess.upload_string_as_file_body("sentiment,review_body\n1,love it\n0,hate it\n", bucket,
                                                  "csv-train/train.csv")
client.create_training_job(
    TrainingJobName="csv-header", RoleArn=role,
    AlgorithmSpecification={"TrainingImage": sagemaker.image_uris.retrieve("blazingtext", "us-east-1"),
                            "TrainingInputMode": "File"},
    HyperParameters={"mode": "supervised"},
    InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/csv-train/", "S3DataDistributionType": "FullyReplicated"}}}],
    OutputDataConfig={"S3OutputPath": f"s3://{bucket}/csv-out"},
    ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30},
    StoppingCondition={"MaxRuntimeInSeconds": 600})
results = {}
deadline = time.monotonic() + 90
while len(results) < len(jobs) + 1 and time.monotonic() < deadline:
    for name in jobs:
        described = client.describe_processing_job(ProcessingJobName=name)
        if described["ProcessingJobStatus"] != "InProgress":
            results[name] = {"status": described["ProcessingJobStatus"], "failure": described.get("FailureReason")}
    described = client.describe_training_job(TrainingJobName="csv-header")
    if described["TrainingJobStatus"] != "InProgress":
        results["csv-header"] = {"status": described["TrainingJobStatus"], "failure": described.get("FailureReason")}
    time.sleep(0.2)
try:
    client.describe_processing_job(ProcessingJobName="never-created")
except client.exceptions.ClientError as error:
    results["unknown"] = {"code": error.response["Error"]["Code"], "message": error.response["Error"]["Message"]}
try:
    client.create_processing_job(ProcessingJobName="byoc", RoleArn=role, AppSpecification={"ImageUri": "x"},
                                 ProcessingResources={"ClusterConfig": {"InstanceCount": 1,
                                                      "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}})
except client.exceptions.ClientError as error:
    results["duplicate"] = {"code": error.response["Error"]["Code"]}
print(json.dumps(results))
