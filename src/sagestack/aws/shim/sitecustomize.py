"""The start-up shim of ``sagestack serve-aws --env``: copied to ``HOME/aws/python/sitecustomize.py`` and put
on ``PYTHONPATH``, so that any Python started with that environment sends every AWS call to the loopback
server — also the calls whose client names an AWS endpoint explicitly (the SageMaker SDK's STS client in
``Session.default_bucket()`` and ``get_execution_role()``: ``https://sts.<region>.amazonaws.com``).

It imports nothing of sagestack nor botocore at start-up: a one-shot import hook patches
``botocore.session.Session.create_client`` when botocore is first imported, and only if
``AWS_ENDPOINT_URL`` is set. Another ``sitecustomize`` further along ``sys.path`` still runs.
"""

import os
import re
import sys

_AWS_ENDPOINT = re.compile(r"^https?://[^/]*\.amazonaws\.com(\.cn)?(:\d+)?(/|$)")


def _reroute(create_client):
    import functools
    import inspect

    signature = inspect.signature(create_client)

    @functools.wraps(create_client)
    def create(*args, **kwargs):
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            bound = signature.bind(*args, **kwargs)
            explicit = bound.arguments.get("endpoint_url")
            if explicit and _AWS_ENDPOINT.match(explicit):
                bound.arguments["endpoint_url"] = endpoint
                return create_client(*bound.args, **bound.kwargs)
        return create_client(*args, **kwargs)

    return create


class _PatchBotocoreSession:
    """A one-shot meta path finder: when ``botocore.session`` loads, wrap ``Session.create_client``."""

    def find_spec(self, name, path=None, target=None):
        if name != "botocore.session":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.Session.create_client = _reroute(module.Session.create_client)

        spec.loader.exec_module = exec_module
        return spec


def _run_next_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        candidate = os.path.join(entry or os.getcwd(), "sitecustomize.py")
        if os.path.abspath(os.path.dirname(candidate)) != here and os.path.isfile(candidate):
            with open(candidate, encoding="utf-8") as source:
                code = compile(source.read(), candidate, "exec")
            exec(code, {"__name__": "sitecustomize", "__file__": candidate})
            return


if os.environ.get("AWS_ENDPOINT_URL") and "botocore.session" not in sys.modules:
    sys.meta_path.insert(0, _PatchBotocoreSession())
_run_next_sitecustomize()
