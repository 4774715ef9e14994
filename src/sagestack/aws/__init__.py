"""A loopback AWS API over sagestack (``sagestack serve-aws``): SageMaker users' unchanged code — the SageMaker
Python SDK, boto3, awswrangler, the ``aws`` CLI — pointed at one local endpoint.

- :mod:`~sagestack.aws.identity`: the one identity the server accepts (account, role, credentials), made once
  per home.
- :mod:`~sagestack.aws.sigv4`: Signature Version 4 verification of every request.
- :mod:`~sagestack.aws.protocol`: requests and responses as the AWS protocols shape them (rest-xml, query, json),
  and AWS-shaped errors.
- :mod:`~sagestack.aws.operations`: the one table of supported operations and what each maps to;
  :mod:`~sagestack.aws.migration` the course's calls and whether each is served (the README's migration table).
- :mod:`~sagestack.aws.s3`: S3 objects kept under the home (:mod:`~sagestack.aws.s3store`) behind S3's REST API.
- :mod:`~sagestack.aws.iam`: STS and IAM for the home's one identity and execution role.
- :mod:`~sagestack.aws.jobs`: SageMaker's asynchronous jobs (records, a bounded pool, logs);
  :mod:`~sagestack.aws.sagemaker` their API, :mod:`~sagestack.aws.processing` processing jobs (inputs, the
  image's work, outputs), :mod:`~sagestack.aws.clarify` the Clarify image as ``sagestack bias``,
  :mod:`~sagestack.aws.logs` their logs as CloudWatch Logs; :mod:`~sagestack.aws.images` the images sagestack
  knows and what runs each, :mod:`~sagestack.aws.containers` what a container would see (paths, S3 in and out).
- :mod:`~sagestack.aws.glue_catalog`: the Glue Data Catalog (databases, tables) of the home, Glue's API over it
  :mod:`~sagestack.aws.glue`; :mod:`~sagestack.aws.athena_queries` Athena's query executions, run on DuckDB by
  :mod:`~sagestack.aws.athena_sql` over tables read as Athena's SerDes read them
  (:mod:`~sagestack.aws.athena_tables`), Athena's API over them :mod:`~sagestack.aws.athena`.
- :mod:`~sagestack.aws.server`: the HTTP server that routes a request to its operation.
- :mod:`~sagestack.aws.bootstrap`: the environment a client process needs (``serve-aws --env``).
- :mod:`~sagestack.aws.defaults`: the command line's defaults (port, concurrent jobs), importable alone.
"""
