"""What a SageMaker user reads back after course 1's notebook (tests/aws/notebooks/course1_session.ipynb) ran:
the Clarify job's outputs and log; the AutoML job's description, notebooks, candidates' models and log, its
endpoint answering JSON and JSON Lines and refusing a body it cannot read, then deleted; the BlazingText job's
transitions, metrics, artifact and log, its endpoint still serving once its configuration and model are deleted,
refusing a bad body, then deleted. Arguments: the names the notebook printed (Clarify job, AutoML job, Autopilot
endpoint, training job, BlazingText endpoint). Prints one JSON line."""

import contextlib
import io
import json
import sys
import tarfile

import boto3
import sagemaker
from botocore.exceptions import ClientError

clarify_job, auto_ml_job_name, autopilot_endpoint, training_job_name, blazingtext_endpoint = sys.argv[1:6]
sess = sagemaker.Session()
bucket = sess.default_bucket()
sm = boto3.client("sagemaker")
runtime = boto3.client("sagemaker-runtime")
s3 = boto3.client("s3")


def read_s3(uri):
    bucket_name, key = uri[5:].split("/", 1)
    return s3.get_object(Bucket=bucket_name, Key=key)["Body"].read()


def refusal(call):
    try:
        call()
        return {"code": None}
    except ClientError as error:
        return {"code": error.response["Error"]["Code"], "message": error.response["Error"]["Message"],
                "status": error.response["ResponseMetadata"]["HTTPStatusCode"]}


def log_of(reader, name):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # the job's log, read back as the SDK reads CloudWatch Logs
        reader(name, wait=False)
    return printed.getvalue().splitlines()


# Week 2: the pre-training bias job.
described = sess.describe_processing_job(clarify_job)
clarify = {"status": described["ProcessingJobStatus"], "failure": described.get("FailureReason"),
           "image": described["AppSpecification"]["ImageUri"], "log": log_of(sess.logs_for_processing_job, clarify_job),
           "keys": sorted(item["Key"] for item in s3.list_objects_v2(
               Bucket=bucket, Prefix="bias/generated_bias_report/").get("Contents", [])),
           "analysis": json.loads(read_s3(f"s3://{bucket}/bias/generated_bias_report/analysis.json"))}

# Week 3: the AutoML job and its endpoint.
automl = sagemaker.automl.automl.AutoML(role=sagemaker.get_execution_role(), target_attribute_name="sentiment",
                                        sagemaker_session=sess)
job = automl.describe_auto_ml_job(job_name=auto_ml_job_name)
artifacts = job["AutoMLJobArtifacts"]
notebooks = {key: json.loads(read_s3(artifacts[key]))
             for key in ("DataExplorationNotebookLocation", "CandidateDefinitionNotebookLocation")}
candidates = automl.list_candidates(job_name=auto_ml_job_name, sort_by="FinalObjectiveMetricValue")
models = {}  # each candidate's model.tar.gz: the sagestack candidate its card names
for candidate in candidates:
    archive = tarfile.open(fileobj=io.BytesIO(read_s3(candidate["InferenceContainers"][0]["ModelDataUrl"])))
    models[candidate["CandidateName"]] = json.load(archive.extractfile("sagestack-model.json"))["params"]["candidate_name"]
log = [event["message"] for event in boto3.client("logs").get_log_events(
    logGroupName="/aws/sagemaker/AutoMLJobs", logStreamName=auto_ml_job_name + "/algo-1")["events"]]
best = job["BestCandidate"]
model_name = sm.describe_endpoint_config(EndpointConfigName=autopilot_endpoint)["ProductionVariants"][0]["ModelName"]
model = sm.describe_model(ModelName=model_name)
two = '"I love it, truly"\nfell apart after one wash\n'
as_json = json.loads(runtime.invoke_endpoint(EndpointName=autopilot_endpoint, ContentType="text/csv",
                                             Accept="application/json", Body=two)["Body"].read())
as_lines = runtime.invoke_endpoint(EndpointName=autopilot_endpoint, ContentType="text/csv",
                                   Accept="application/jsonlines", Body=two)["Body"].read().decode().splitlines()
predictor = sagemaker.predictor.Predictor(autopilot_endpoint, sagemaker_session=sess,
                                          serializer=sagemaker.serializers.CSVSerializer(),
                                          deserializer=sagemaker.deserializers.CSVDeserializer())
predicted = predictor.predict("I love this dress")
refused = refusal(lambda: runtime.invoke_endpoint(EndpointName=autopilot_endpoint, ContentType="application/json",
                                                  Body=b"{}"))
predictor.delete_endpoint()
autopilot = {"job": auto_ml_job_name, "describe": {k: v for k, v in job.items() if k not in (
                 "CreationTime", "EndTime", "LastModifiedTime", "BestCandidate", "ResponseMetadata")},
             "job_id": artifacts["DataExplorationNotebookLocation"].rsplit(
                 "/notebooks/SageMakerAutopilotDataExplorationNotebook.ipynb")[0].rsplit("/", 1)[-1],
             "notebooks": notebooks, "models": models, "log": log, "candidates": candidates, "best": best,
             "steps": [step["CandidateStepName"] for step in best["CandidateSteps"]],
             "containers": model.get("Containers") or [model.get("PrimaryContainer")], "as_json": as_json,
             "as_lines": [json.loads(line) for line in as_lines], "predicted": predicted, "refused": refused}

# Week 4: the BlazingText job and its endpoint.
described = sm.describe_training_job(TrainingJobName=training_job_name)
artifact = described.get("ModelArtifacts", {}).get("S3ModelArtifacts", "")
estimator = sagemaker.estimator.Estimator.attach(training_job_name, sagemaker_session=sess)
blazingtext = {"job": training_job_name, "status": described["TrainingJobStatus"],
               "failure": described.get("FailureReason"), "artifact": artifact,
               "members": tarfile.open(fileobj=io.BytesIO(read_s3(artifact))).getnames() if artifact else [],
               "estimator_model_data": estimator.model_data, "image": described["AlgorithmSpecification"]["TrainingImage"],
               "secondary": [t["Status"] for t in described["SecondaryStatusTransitions"]],
               "metrics": {m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList", [])},
               "log": log_of(sess.logs_for_job, training_job_name)}
# As on SageMaker, a running endpoint keeps serving when its configuration and model are deleted.
model_name = sm.describe_endpoint_config(EndpointConfigName=blazingtext_endpoint)["ProductionVariants"][0]["ModelName"]
sm.delete_endpoint_config(EndpointConfigName=blazingtext_endpoint)
sm.delete_model(ModelName=model_name)
text_classifier = sagemaker.predictor.Predictor(blazingtext_endpoint, sagemaker_session=sess,
                                                serializer=sagemaker.serializers.JSONSerializer(),
                                                deserializer=sagemaker.deserializers.JSONDeserializer())
blazingtext["again"] = text_classifier.predict(data={"instances": ["love it"]})
blazingtext["bad_body"] = refusal(lambda: runtime.invoke_endpoint(EndpointName=blazingtext_endpoint, Body=b"not json",
                                                                  ContentType="application/json"))
text_classifier.delete_endpoint(delete_endpoint_config=False)
blazingtext["after_delete"] = refusal(lambda: sm.describe_endpoint(EndpointName=blazingtext_endpoint))
blazingtext["invoke_after_delete"] = refusal(lambda: runtime.invoke_endpoint(
    EndpointName=blazingtext_endpoint, Body=b"{}", ContentType="application/json"))
print(json.dumps({"clarify": clarify, "autopilot": autopilot, "blazingtext": blazingtext}, default=str))
