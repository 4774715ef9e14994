"""STS and IAM for the one identity of the home: who the caller is (``GetCallerIdentity``, which
``Session.default_bucket()`` names its bucket after) and the execution role (``GetRole``, which
``get_execution_role()`` asks for the role's path)."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from sagestack.aws.backends import Backends
from sagestack.aws.protocol import AwsError, Request, Response, query_response, tag

# Who may assume the role: SageMaker, as for a SageMaker execution role.
TRUST_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def get_caller_identity(backends: Backends, request: Request) -> Response:
    """STS GetCallerIdentity: a session of the home's execution role."""
    identity = backends.identity
    result = (tag("Arn", identity.caller_arn) + tag("UserId", f"{identity.role_id}:sagestack")
              + tag("Account", identity.account))
    return query_response("sts", "GetCallerIdentity", result, request)


def get_role(backends: Backends, request: Request) -> Response:
    """IAM GetRole: the home's execution role; any other name is ``NoSuchEntity`` (404)."""
    identity = backends.identity
    name = request.form().get("RoleName", "")
    if name != identity.role_name:
        raise AwsError("NoSuchEntity", f"the role with name {name} cannot be found; the one role here is "
                       f"{identity.role_name}", 404)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0))
    role = (tag("Path", "/") + tag("RoleName", identity.role_name) + tag("RoleId", identity.role_id)
            + tag("Arn", identity.role_arn) + tag("CreateDate", created)
            + tag("AssumeRolePolicyDocument", quote(json.dumps(TRUST_POLICY))) + tag("MaxSessionDuration", 3600))
    return query_response("iam", "GetRole", f"<Role>{role}</Role>", request)
