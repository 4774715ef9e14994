"""The course's week-4 BlazingText cells (small hyperparameters for a test's time): the image by name, an Estimator,
its hyperparameters, TrainingInput channels, fit(wait=False), latest_training_job, wait(), and the model artifact
read back from S3. Prints one JSON line."""

import contextlib
import io
import json
import sys
import tarfile

import boto3
import sagemaker

sess = sagemaker.Session()
bucket = sess.default_bucket()
role = sagemaker.get_execution_role()
region = sess.boto_region_name
train_s3_uri = sess.upload_data(sys.argv[1], bucket=bucket, key_prefix="blazingtext/train")
validation_s3_uri = sess.upload_data(sys.argv[2], bucket=bucket, key_prefix="blazingtext/validation")
image_uri = sagemaker.image_uris.retrieve(region=region, framework="blazingtext")
estimator = sagemaker.estimator.Estimator(image_uri=image_uri, role=role, instance_count=1,
                                          instance_type="ml.m5.large", volume_size=30, max_run=7200,
                                          sagemaker_session=sess)
estimator.set_hyperparameters(mode="supervised", epochs=2, learning_rate=0.05, min_count=2, vector_dim=10,
                              word_ngrams=2, buckets=1000, early_stopping=False, evaluation="ignored")
train_data = sagemaker.inputs.TrainingInput(train_s3_uri, distribution="FullyReplicated", content_type="text/plain",
                                            s3_data_type="S3Prefix")
validation_data = sagemaker.inputs.TrainingInput(validation_s3_uri, distribution="FullyReplicated",
                                                 content_type="text/plain", s3_data_type="S3Prefix")
estimator.fit(inputs={"train": train_data, "validation": validation_data}, wait=False)
training_job_name = estimator.latest_training_job.name
client = boto3.client("sagemaker")
first = client.describe_training_job(TrainingJobName=training_job_name)
estimator.latest_training_job.wait(logs=False)
described = client.describe_training_job(TrainingJobName=training_job_name)
analytics = estimator.training_job_analytics.dataframe()  # CloudWatch metrics, as the course reads them
printed = io.StringIO()
with contextlib.redirect_stdout(printed):  # the job's log, read back as the SDK reads CloudWatch Logs
    sess.logs_for_job(training_job_name, wait=False)
artifact = described.get("ModelArtifacts", {}).get("S3ModelArtifacts", "")
members = []
if artifact:
    bucket_name, key = artifact[5:].split("/", 1)
    body = boto3.client("s3").get_object(Bucket=bucket_name, Key=key)["Body"].read()
    members = tarfile.open(fileobj=io.BytesIO(body)).getnames()
print(json.dumps({"job": training_job_name, "first_status": first["TrainingJobStatus"], "status": described["TrainingJobStatus"],
                  "failure": described.get("FailureReason"), "artifact": artifact, "members": members,
                  "estimator_model_data": estimator.model_data, "image": image_uri,
                  "secondary": [t["Status"] for t in described["SecondaryStatusTransitions"]],
                  "metrics": {m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList", [])},
                  "analytics": analytics.to_dict("records"), "log": printed.getvalue().splitlines()}))
