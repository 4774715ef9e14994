"""The course's week-3 Autopilot cells (a small time budget for a test's time): the CSV to S3, AutoML(...).fit(
wait=False), describe_auto_ml_job polled through the secondary statuses, the two notebooks read back from S3,
list_candidates sorted by the objective, the best candidate, deploy() with inference_response_keys, and
boto3 invoke_endpoint with text/csv (then JSON and JSON Lines, and the predictor), the endpoint deleted.
Prints one JSON line."""

import io
import json
import sys
import tarfile
import time

import boto3
import sagemaker
from botocore.exceptions import ClientError

sess = sagemaker.Session()
bucket = sess.default_bucket()
role = sagemaker.get_execution_role()
region = sess.boto_region_name
sm = boto3.Session().client(service_name="sagemaker", region_name=region)
s3 = boto3.client("s3")
autopilot_train_s3_uri = sess.upload_data(path=sys.argv[1], bucket=bucket, key_prefix="autopilot/data")

max_candidates = 3
timestamp = int(time.time())
auto_ml_job_name = "automl-dm-{}".format(timestamp)
automl = sagemaker.automl.automl.AutoML(
    target_attribute_name="sentiment",
    base_job_name="automl-dm",
    output_path="s3://{}/autopilot/output".format(bucket),
    max_candidates=max_candidates,
    sagemaker_session=sess,
    role=role,
    max_runtime_per_training_job_in_seconds=5,
    total_job_runtime_in_seconds=7200,
)
automl.fit(autopilot_train_s3_uri, job_name=auto_ml_job_name, wait=False, logs=False)

job_description_response = automl.describe_auto_ml_job(job_name=auto_ml_job_name)
first = [job_description_response["AutoMLJobStatus"], job_description_response["AutoMLJobSecondaryStatus"]]
seen = [first[1]]
while job_description_response["AutoMLJobStatus"] == "InProgress":
    time.sleep(0.3)
    job_description_response = automl.describe_auto_ml_job(job_name=auto_ml_job_name)
    if job_description_response["AutoMLJobSecondaryStatus"] != seen[-1]:
        seen.append(job_description_response["AutoMLJobSecondaryStatus"])
job_status = job_description_response["AutoMLJobStatus"]
if job_status != "Completed":
    print(json.dumps({"status": job_status, "failure": job_description_response.get("FailureReason"), "seen": seen}))
    sys.exit(0)

generated_resources = job_description_response["AutoMLJobArtifacts"]
notebooks = {}
for key in ("DataExplorationNotebookLocation", "CandidateDefinitionNotebookLocation"):
    bucket_name, object_key = generated_resources[key][5:].split("/", 1)
    notebooks[key] = json.loads(s3.get_object(Bucket=bucket_name, Key=object_key)["Body"].read())
download_path = generated_resources["DataExplorationNotebookLocation"].rsplit(
    "/notebooks/SageMakerAutopilotDataExplorationNotebook.ipynb")[0]
job_id = download_path.rsplit("/", 1)[-1]

candidates = automl.list_candidates(job_name=auto_ml_job_name, sort_by="FinalObjectiveMetricValue")
for index, candidate in enumerate(candidates):
    print(str(index) + "  " + candidate["CandidateName"] + "  " + str(candidate["FinalAutoMLJobObjectiveMetric"]["Value"]))
models = {}  # each candidate's model.tar.gz: the sagestack candidate its card names
for candidate in candidates:
    bucket_name, object_key = candidate["InferenceContainers"][0]["ModelDataUrl"][5:].split("/", 1)
    archive = tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket_name, Key=object_key)["Body"].read()))
    models[candidate["CandidateName"]] = json.load(archive.extractfile("sagestack-model.json"))["params"]["candidate_name"]
log = [event["message"] for event in boto3.client("logs").get_log_events(
    logGroupName="/aws/sagemaker/AutoMLJobs", logStreamName=auto_ml_job_name + "/algo-1")["events"]]
best_candidate = automl.describe_auto_ml_job(job_name=auto_ml_job_name)["BestCandidate"]
best_candidate_identifier = best_candidate["CandidateName"]
steps = [step["CandidateStepName"] for step in best_candidate["CandidateSteps"]]

inference_response_keys = ["predicted_label", "probability"]
autopilot_model = automl.deploy(
    initial_instance_count=1,
    instance_type="ml.m5.large",
    candidate=best_candidate,
    inference_response_keys=inference_response_keys,
    predictor_cls=sagemaker.predictor.Predictor,
    serializer=sagemaker.serializers.CSVSerializer(),
    deserializer=sagemaker.deserializers.CSVDeserializer(),
)
sm_runtime = boto3.client("sagemaker-runtime")
review_list = ["This product is great!", "OK, but not great.", "This is not the right product."]
predictions = []
for review in review_list:
    response = sm_runtime.invoke_endpoint(EndpointName=autopilot_model.endpoint_name, ContentType="text/csv",
                                          Accept="text/csv", Body=review)
    predictions.append(response["Body"].read().decode("utf-8").strip().split(","))
two = '"I love it, truly"\nfell apart after one wash\n'
as_json = json.loads(sm_runtime.invoke_endpoint(EndpointName=autopilot_model.endpoint_name, ContentType="text/csv",
                                                Accept="application/json", Body=two)["Body"].read())
as_lines = sm_runtime.invoke_endpoint(EndpointName=autopilot_model.endpoint_name, ContentType="text/csv",
                                      Accept="application/jsonlines", Body=two)
lines = [json.loads(line) for line in as_lines["Body"].read().decode().splitlines()]
predicted = autopilot_model.predict("I love this dress")
model_name = sm.describe_endpoint_config(EndpointConfigName=autopilot_model.endpoint_name)["ProductionVariants"][0]["ModelName"]
model = sm.describe_model(ModelName=model_name)
try:
    sm_runtime.invoke_endpoint(EndpointName=autopilot_model.endpoint_name, ContentType="application/json", Body=b"{}")
    refused = {}
except ClientError as error:
    refused = {"code": error.response["Error"]["Code"], "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
               "message": error.response["Error"]["Message"]}
autopilot_model.delete_endpoint()
print(json.dumps({"job": auto_ml_job_name, "first": first, "seen": seen, "status": job_status,
                  "describe": {k: v for k, v in job_description_response.items() if k not in ("CreationTime", "EndTime",
                               "LastModifiedTime", "BestCandidate", "ResponseMetadata")},
                  "job_id": job_id, "notebooks": notebooks, "models": models, "log": log, "candidates": candidates, "best": best_candidate,
                  "steps": steps, "containers": model.get("Containers") or [model.get("PrimaryContainer")],
                  "predictions": predictions, "as_json": as_json, "as_lines": lines, "predicted": predicted,
                  "refused": refused}, default=str))
