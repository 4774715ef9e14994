"""``sagestack serve-aws``: a loopback AWS API (S3, STS, IAM … — see ``--operations``) over the sagestack home,
so SageMaker code runs unchanged against it; ``sagestack compat kernel install``: the Jupyter kernel that runs
notebooks against it."""

from __future__ import annotations

from pathlib import Path

import typer

from sagestack.aws.defaults import DEFAULT_MAX_JOBS, DEFAULT_MAX_QUERIES, DEFAULT_PORT, DEFAULT_QUERY_TIMEOUT
from sagestack.cli.common import emit, settings, table


def serve_aws(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on; beyond loopback, set "
                             "SAGESTACK_AWS_ACCESS_KEY_ID and SAGESTACK_AWS_SECRET_ACCESS_KEY."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=0, max=65535, help="TCP port (0: any free one)."),
    env: bool = typer.Option(False, "--env", help='Print the shell lines a client needs and exit: '
                             'eval "$(sagestack serve-aws --env)".'),
    operations: bool = typer.Option(False, "--operations", help="List the supported operations and what each "
                                    "maps to, and exit."),
    migration: bool = typer.Option(False, "--migration", help="List the course's SageMaker, boto3, awswrangler and "
                                   "aws CLI calls, whether each is served and what it is on sagestack, and exit."),
    access_log: bool = typer.Option(False, "--access-log", help="Print a line per request on stderr."),
    max_jobs: int = typer.Option(DEFAULT_MAX_JOBS, "--max-jobs", min=1, help="How many SageMaker jobs run at once (more wait "
                                 "InProgress)."),
    max_queries: int = typer.Option(DEFAULT_MAX_QUERIES, "--max-queries", min=1, help="How many Athena queries run "
                                    "at once (one more is refused with TooManyRequestsException); each gets its "
                                    "share of half the memory and of the cores."),
    query_timeout: float = typer.Option(DEFAULT_QUERY_TIMEOUT, "--query-timeout", min=1, help="Seconds an Athena "
                                        "query may run before it fails (Athena's: 30 minutes)."),
    json_output: bool = typer.Option(False, "--json", help="JSON output; when serving, one line "
                                     '{"url", "pid", "home"} once the server listens.'),
) -> None:
    """Serve the AWS APIs SageMaker code calls (signed with the --env credentials), backed by sagestack."""
    if operations:
        from sagestack.aws.operations import table as operation_table

        rows = operation_table()
        emit({"operations": rows}, json_output, table(rows, {"service": "SERVICE", "operation": "OPERATION",
                                                             "maps_to": "MAPS TO"}))
        return
    if migration:
        from sagestack.aws.migration import rows as migration_rows

        calls = migration_rows()
        emit({"calls": calls}, json_output, table(
            [{**call, "course": f"{call['course']}.{call['week']}", "served": "yes" if call["served"] else "no"}
             for call in calls], {"course": "COURSE", "served": "SERVED", "call": "CALL", "sagestack": "ON SAGESTACK"}))
        return
    home = settings().home
    if env:
        from sagestack.aws.bootstrap import client_environment, export_lines

        environment = client_environment(home, host, port)
        emit(environment, json_output, export_lines(environment))
        return
    import json
    import os

    from sagestack.aws.server import serve

    def ready(url: str) -> None:
        if json_output:
            typer.echo(json.dumps({"url": url, "pid": os.getpid(), "home": str(home)}))
        else:
            typer.echo(f"... serving the AWS API on {url} (home {home}); a client's shell: "
                       f'eval "$(sagestack serve-aws --env --port {port} --home {home})"', err=True)

    serve(home, host, port, on_ready=ready, access_log=access_log, max_jobs=max_jobs, max_queries=max_queries,
          query_timeout=query_timeout)


compat_app = typer.Typer(help="Run SageMaker code unchanged: the client side of serve-aws.", no_args_is_help=True)
kernel_app = typer.Typer(help='The Jupyter kernel "Python (sagestack AWS)".', no_args_is_help=True)
compat_app.add_typer(kernel_app, name="kernel")


@kernel_app.command("install")
def kernel_install(
    python: Path = typer.Option(Path(".venv-aws/bin/python"), "--python", help="The client environment's Python "
                                "(with ipykernel and the AWS SDKs; make aws-client builds .venv-aws)."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="The port serve-aws listens on."),
    prefix: Path = typer.Option(None, "--prefix", help="Install under PREFIX/share/jupyter/kernels (default: the "
                                "client environment's prefix)."),
    json_output: bool = typer.Option(False, "--json", help="Print the kernel's name and folder as JSON."),
) -> None:
    """Install the kernel "Python (sagestack AWS)": notebooks run against serve-aws with no cell edited."""
    from sagestack.aws.bootstrap import KERNEL_DISPLAY_NAME, KERNEL_NAME, install_kernel

    folder = install_kernel(settings().home, port, python, prefix)
    emit({"name": KERNEL_NAME, "display_name": KERNEL_DISPLAY_NAME, "folder": str(folder)}, json_output,
         [f"installed the kernel {KERNEL_DISPLAY_NAME!r} ({KERNEL_NAME}) in {folder}"])
