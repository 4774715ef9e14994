"""The course's week-2 Clarify cells, unchanged: data to S3, DataConfig + BiasConfig, a pre-training bias job
started with wait=False, then ProcessingJob.from_processing_name(...).wait(), and the job's analysis.json read
back from S3. Prints one JSON line."""

import contextlib
import io
import json
import sys

import boto3
import sagemaker
from sagemaker import clarify

sess = sagemaker.Session()
bucket = sess.default_bucket()
role = sagemaker.get_execution_role()
data_s3_uri = sess.upload_data(sys.argv[1], bucket=bucket, key_prefix="bias/prepared")
bias_report_output_path = f"s3://{bucket}/bias/generated_bias_report"
data_config = clarify.DataConfig(s3_data_input_path=data_s3_uri, s3_output_path=bias_report_output_path,
                                 label="sentiment", headers=["sentiment", "review_body", "product_category"],
                                 dataset_type="text/csv")
bias_config = clarify.BiasConfig(label_values_or_threshold=[1], facet_name="product_category")
clarify_processor = clarify.SageMakerClarifyProcessor(role=role, instance_count=1, instance_type="ml.c5.2xlarge",
                                                      sagemaker_session=sess)
clarify_processor.run_pre_training_bias(data_config=data_config, data_bias_config=bias_config,
                                        methods=["CI", "DPL", "KL", "JS", "LP", "TVD", "KS"], wait=False, logs=False)
run_pre_training_bias_processing_job_name = clarify_processor.latest_job.job_name
describe = sess.describe_processing_job(run_pre_training_bias_processing_job_name)
started_status = describe["ProcessingJobStatus"]
running_processor = sagemaker.processing.ProcessingJob.from_processing_name(
    processing_job_name=run_pre_training_bias_processing_job_name, sagemaker_session=sess)
running_processor.wait(logs=False)
describe = sess.describe_processing_job(run_pre_training_bias_processing_job_name)
printed = io.StringIO()
with contextlib.redirect_stdout(printed):  # the job's log, read back as the SDK reads CloudWatch Logs
    sess.logs_for_processing_job(run_pre_training_bias_processing_job_name, wait=False)
s3 = boto3.client("s3")
listing = s3.list_objects_v2(Bucket=bucket, Prefix="bias/generated_bias_report/")
analysis = None
if describe["ProcessingJobStatus"] == "Completed":
    analysis = json.loads(s3.get_object(Bucket=bucket, Key="bias/generated_bias_report/analysis.json")["Body"].read())
print(json.dumps({"started_status": started_status, "status": describe["ProcessingJobStatus"],
                  "failure": describe.get("FailureReason"), "image": describe["AppSpecification"]["ImageUri"],
                  "keys": sorted(item["Key"] for item in listing.get("Contents", [])), "analysis": analysis,
                  "log": printed.getvalue().splitlines()}))
