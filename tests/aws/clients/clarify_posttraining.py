"""The course's remaining week-2 Clarify cells, unchanged: a model made by CreateModel, then DataConfig, BiasConfig,
ModelConfig and ModelPredictedLabelConfig for run_post_training_bias(wait=False), SHAPConfig for
run_explainability(wait=False), processor.latest_job, ProcessingJob.from_processing_name(...).wait(), and the
jobs' analysis.json read back from S3, and their shadow endpoints looked up once they ended; then two jobs that
must fail (a model that does not exist, a label location that is not in the model's answer), and post-training
bias of the same model answering one probability, thresholded by probability_threshold. Prints one JSON line.

The model: a BlazingText training job (small hyperparameters, the course's Estimator calls) served as an
Autopilot candidate's inference container is deployed (the image and environment ListCandidatesForAutoMLJob
gives a candidate trained on review_body and product_category), so Clarify's text/csv records of two features
reach a model of the reviews' text without an AutoML run in a test's time.

Arguments: the BlazingText train file, the Clarify lab CSV, a smaller CSV to explain, a folder to unpack the
model into (for the test's own computation).
"""

import contextlib
import io
import json
import sys
import tarfile
import time

import boto3
import sagemaker
from sagemaker import clarify

sess = sagemaker.Session()
bucket = sess.default_bucket()
role = sagemaker.get_execution_role()
region = sess.boto_region_name
s3 = boto3.client("s3")
began = time.monotonic()
timings = {}

# The model: BlazingText's estimator, its model data registered as a model (CreateModel).
train_s3_uri = sess.upload_data(sys.argv[1], bucket=bucket, key_prefix="clarify-model/train")
estimator = sagemaker.estimator.Estimator(
    image_uri=sagemaker.image_uris.retrieve(region=region, framework="blazingtext"), role=role, instance_count=1,
    instance_type="ml.m5.large", sagemaker_session=sess)
estimator.set_hyperparameters(mode="supervised", epochs=5, learning_rate=0.1, min_count=1, vector_dim=10,
                              word_ngrams=1, buckets=1000, early_stopping=False)
estimator.fit(inputs={"train": sagemaker.inputs.TrainingInput(train_s3_uri, content_type="text/plain")}, logs=False)
timings["trained"] = time.monotonic() - began
model_name = "reviews-model-" + str(int(time.time()))
autopilot_image = f"683313688378.dkr.ecr.{region}.amazonaws.com/sagemaker-sklearn-automl:2.5-1-cpu-py3"
sess.create_model(model_name, role, sagemaker.session.container_def(
    autopilot_image, estimator.model_data, env={
        "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability,probabilities",
        "SAGESTACK_INPUT_COLUMNS": json.dumps(["review_body", "product_category"]),
        "SAGESTACK_TEXT_COLUMN": "review_body"}))

# Week 2: post-training bias and explainability of that model.
data_s3_uri = sess.upload_data(sys.argv[2], bucket=bucket, key_prefix="bias/prepared")
explain_s3_uri = sess.upload_data(sys.argv[3], bucket=bucket, key_prefix="explainability/prepared")
headers = ["sentiment", "review_body", "product_category"]
clarify_processor = clarify.SageMakerClarifyProcessor(role=role, instance_count=1, instance_type="ml.c5.2xlarge",
                                                      sagemaker_session=sess)
bias_config = clarify.BiasConfig(label_values_or_threshold=[1], facet_name="product_category")
model_config = clarify.ModelConfig(model_name=model_name, instance_type="ml.m5.large", instance_count=1,
                                   content_type="text/csv", accept_type="text/csv")
predicted_label_config = clarify.ModelPredictedLabelConfig(label=0, probability=1)
post_methods = ["DPPL", "DI", "DCA", "DCR", "RD", "DAR", "DRR", "AD", "TE"]
clarify_processor.run_post_training_bias(
    data_config=clarify.DataConfig(s3_data_input_path=data_s3_uri, s3_output_path=f"s3://{bucket}/bias/posttraining",
                                   label="sentiment", headers=headers, dataset_type="text/csv"),
    data_bias_config=bias_config, model_config=model_config, model_predicted_label_config=predicted_label_config,
    methods=post_methods, wait=False, logs=False)
post_job = clarify_processor.latest_job.job_name
shap_config = clarify.SHAPConfig(baseline=[["this is a dress", "Dresses"]], num_samples=10, agg_method="mean_abs")
clarify_processor.run_explainability(
    data_config=clarify.DataConfig(s3_data_input_path=explain_s3_uri,
                                   s3_output_path=f"s3://{bucket}/explainability/output", label="sentiment",
                                   headers=headers, dataset_type="text/csv"),
    model_config=model_config, explainability_config=shap_config, model_scores=2, wait=False, logs=False)
explain_job = clarify_processor.latest_job.job_name
# Two that must fail: a model nobody created, and a label location the model's CSV answer does not have.
clarify_processor.run_post_training_bias(
    data_config=clarify.DataConfig(s3_data_input_path=explain_s3_uri, s3_output_path=f"s3://{bucket}/bias/missing",
                                   label="sentiment", headers=headers, dataset_type="text/csv"),
    data_bias_config=bias_config, model_config=clarify.ModelConfig(
        model_name="no-such-model", instance_type="ml.m5.large", instance_count=1, content_type="text/csv"),
    model_predicted_label_config=predicted_label_config, wait=False, logs=False)
missing_job = clarify_processor.latest_job.job_name
clarify_processor.run_post_training_bias(
    data_config=clarify.DataConfig(s3_data_input_path=explain_s3_uri, s3_output_path=f"s3://{bucket}/bias/mismatch",
                                   label="sentiment", headers=headers, dataset_type="text/csv"),
    data_bias_config=bias_config, model_config=model_config,
    model_predicted_label_config=clarify.ModelPredictedLabelConfig(label=7), wait=False, logs=False)
mismatch_job = clarify_processor.latest_job.job_name
# The same model answering one probability (the winner's, as Autopilot's container does for three classes):
# probability_threshold turns it into a 0/1 label, as ModelPredictedLabelConfig documents.
probability_model = model_name + "-probability"
sess.create_model(probability_model, role, sagemaker.session.container_def(
    autopilot_image, estimator.model_data, env={
        "SAGEMAKER_INFERENCE_OUTPUT": "probability",
        "SAGESTACK_INPUT_COLUMNS": json.dumps(["review_body", "product_category"]),
        "SAGESTACK_TEXT_COLUMN": "review_body"}))
clarify_processor.run_post_training_bias(
    data_config=clarify.DataConfig(s3_data_input_path=data_s3_uri, s3_output_path=f"s3://{bucket}/bias/probability",
                                   label="sentiment", headers=headers, dataset_type="text/csv"),
    data_bias_config=bias_config, model_config=clarify.ModelConfig(
        model_name=probability_model, instance_type="ml.m5.large", instance_count=1, content_type="text/csv",
        accept_type="text/csv"),
    model_predicted_label_config=clarify.ModelPredictedLabelConfig(probability_threshold=0.345),
    methods=["DPPL", "DI"], wait=False, logs=False)
probability_job = clarify_processor.latest_job.job_name
started = sess.describe_processing_job(post_job)["ProcessingJobStatus"]

results = {"started_status": started, "model_name": model_name}
for key, name, prefix in (("post", post_job, "bias/posttraining/"), ("explain", explain_job, "explainability/output/"),
                          ("missing", missing_job, None), ("mismatch", mismatch_job, None),
                          ("probability", probability_job, "bias/probability/")):
    running_processor = sagemaker.processing.ProcessingJob.from_processing_name(processing_job_name=name,
                                                                                 sagemaker_session=sess)
    try:
        running_processor.wait(logs=False)
    except sagemaker.exceptions.UnexpectedStatusException:  # what wait() raises for a Failed job
        pass
    timings[key] = time.monotonic() - began
    described = sess.describe_processing_job(name)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # the job's log, read back as the SDK reads CloudWatch Logs
        sess.logs_for_processing_job(name, wait=False)
    seen = {"status": described["ProcessingJobStatus"], "failure": described.get("FailureReason"),
            "log": printed.getvalue().splitlines()}
    if prefix and seen["status"] == "Completed":
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        seen["keys"] = sorted(item["Key"][len(prefix):] for item in listing.get("Contents", []))
        seen["analysis"] = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "analysis.json")["Body"].read())
        if "explanations_shap/out.csv" in seen["keys"]:
            seen["out_csv"] = s3.get_object(Bucket=bucket, Key=prefix + "explanations_shap/out.csv")["Body"].read(
                ).decode()
    results[key] = seen

# Every shadow endpoint the jobs started is gone once they ended.
shadows = sorted({word for key in ("post", "explain", "mismatch", "probability") for line in results[key]["log"]
                  for word in line.split() if word.startswith("sm-clarify-")})
results["shadows_after"] = {}
for shadow in shadows:
    try:
        results["shadows_after"][shadow] = sess.sagemaker_client.describe_endpoint(EndpointName=shadow)[
            "EndpointStatus"]
    except sess.sagemaker_client.exceptions.ClientError as error:
        results["shadows_after"][shadow] = error.response["Error"]["Code"]

# The model's files, for the test's own computation on the same model.
model_bucket, model_key = estimator.model_data[5:].split("/", 1)
tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=model_bucket, Key=model_key)["Body"].read())).extractall(
    sys.argv[4], filter="data")
print(json.dumps({**results, "timings": timings}))
