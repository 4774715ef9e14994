"""The course's BlazingText deployment cells: the trained estimator attached by job name, deploy() with JSON
(de)serializers, predict({"instances": [...]}) with k=2, then the endpoint deleted. Prints one JSON line."""

import json
import sys
import threading
import time

import boto3
import sagemaker
from botocore.exceptions import ClientError

sess = sagemaker.Session()
client = boto3.client("sagemaker")
estimator = sagemaker.estimator.Estimator.attach(sys.argv[1], sagemaker_session=sess)
endpoint_name = "blazingtext-endpoint-" + str(int(time.time()))
statuses = []


def watch():  # the statuses DescribeEndpoint reports while deploy() waits
    while not statuses or statuses[-1] not in ("InService", "Failed"):
        try:
            statuses.append(client.describe_endpoint(EndpointName=endpoint_name)["EndpointStatus"])
        except ClientError:
            pass
        time.sleep(0.5)


threading.Thread(target=watch, daemon=True).start()
text_classifier = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=endpoint_name,
                                   serializer=sagemaker.serializers.JSONSerializer(),
                                   deserializer=sagemaker.deserializers.JSONDeserializer())
predictions = text_classifier.predict(data={"instances": ["I love this dress , it fits perfectly", "terrible fabric"],
                                            "configuration": {"k": 2}})
runtime = boto3.client("sagemaker-runtime")
results = {}
# As on SageMaker, a running endpoint keeps serving when its configuration and model are deleted.
model_name = client.describe_endpoint_config(EndpointConfigName=endpoint_name)["ProductionVariants"][0]["ModelName"]
client.delete_endpoint_config(EndpointConfigName=endpoint_name)
client.delete_model(ModelName=model_name)
again = text_classifier.predict(data={"instances": ["love it"]})


def record(name, call):
    try:
        call()
        results[name] = {"code": None}
    except ClientError as error:
        results[name] = {"code": error.response["Error"]["Code"], "message": error.response["Error"]["Message"],
                         "status": error.response["ResponseMetadata"]["HTTPStatusCode"]}


record("bad_body", lambda: runtime.invoke_endpoint(EndpointName=endpoint_name, Body=b"not json",
                                                   ContentType="application/json"))
text_classifier.delete_endpoint(delete_endpoint_config=False)
record("after_delete", lambda: client.describe_endpoint(EndpointName=endpoint_name))
record("invoke_after_delete", lambda: runtime.invoke_endpoint(EndpointName=endpoint_name, Body=b"{}",
                                                              ContentType="application/json"))
print(json.dumps({"statuses": [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s],
                  "predictions": predictions, "again": again, **results}))
