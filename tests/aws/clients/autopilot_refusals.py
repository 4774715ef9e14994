"""AutoML jobs that cannot run, as a SageMaker user meets them: a target attribute that is not a column and an
input object that is not there (the job fails with the reason), and what sagestack's AutoML cannot do (a
regression job: a 400 at once). Prints one JSON line."""

import json
import sys
import time

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
print(json.dumps(results))
