"""The endpoint's access log (``SAGESTACK_ACCESS_LOG``) and the warnings BentoML emits per request.

BentoML writes one INFO line per request (its ``bentoml.access`` logger): 45,000 lines in a 30-s
load test, and a share of every request's time. ``off`` turns BentoML's access log middleware off,
``on`` keeps every line, and ``sampled`` (the default) keeps one request in :data:`SAMPLE_EVERY`
and every 4xx/5xx answer. Per-request figures are in ``/metrics`` whatever the setting.
"""

from __future__ import annotations

import logging
import warnings

ACCESS_LOGGER = "bentoml.access"
# Of the successful requests, the sampled log keeps the first and then one in this many (per worker).
SAMPLE_EVERY = 100


def bentoml_logging(mode: str) -> dict:
    """The ``logging`` section of the service's BentoML configuration for an access-log mode."""
    return {"access": {"enabled": mode != "off"}}


class SampledAccessLog(logging.Filter):
    """Pass every access line of a 4xx/5xx answer and one successful request's line in ``every``.

    BentoML's access line has the arguments ``(client, request, response, latency)``, the
    response starting ``status=NNN``; any other line is sampled like a successful one.
    """

    def __init__(self, every: int = SAMPLE_EVERY) -> None:
        super().__init__()
        self.every = every
        self.seen = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to write this line."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 4 and str(args[2]).startswith(("status=4", "status=5")):
            return True
        self.seen += 1
        return self.seen % self.every == 1 or self.every == 1


def configure_worker(mode: str) -> None:
    """Set up a worker's logging for the access-log mode (``sampled``: the filter above), and silence
    the Pydantic deprecation warning BentoML 1.4 triggers on every request (it reads ``model_fields``
    from the request's model instance)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    for existing in [f for f in logger.filters if isinstance(f, SampledAccessLog)]:
        logger.removeFilter(existing)
    if mode == "sampled":
        logger.addFilter(SampledAccessLog())
    warnings.filterwarnings("ignore", message=r"Accessing the 'model_fields' attribute on the instance",
                            module=r"_bentoml_impl\.server\.app")
