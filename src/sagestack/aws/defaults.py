"""The defaults of ``sagestack serve-aws`` that its command line shows (kept apart from the server's modules so
that ``import sagestack.cli`` loads none of them)."""

DEFAULT_PORT = 4566  # LocalStack's, which AWS tooling and tutorials often assume
# How many SageMaker jobs run at once by default (a two-core machine; the labs start at most two together).
DEFAULT_MAX_JOBS = 2
# How many Athena queries run at once (each gets its share of the server's memory and threads), and for how long
# (Athena's DML query timeout: 30 minutes).
DEFAULT_MAX_QUERIES = 4
DEFAULT_QUERY_TIMEOUT = 30 * 60
