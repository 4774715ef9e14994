"""The ``sagestack`` command line: thin adapters over the library, one module per command group.

Every command accepts ``--json`` (one JSON document on stdout) and ``--help``. User errors
print one ``error: ...`` line on stderr and exit with status 2; progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from sagestack import __version__
from sagestack.cli import (
    analysis, automl, aws, console, data, debug, demo, deploy, features, models, monitor, pipeline, review, serve, train,
    tune,
)
from sagestack.cli.common import USER_ERROR_EXIT, Invocation, apply_conventions
from sagestack.errors import SagestackError


class SagestackGroup(TyperGroup):
    """The root command: typer builds the tree, then :func:`apply_conventions` adjusts it (global
    options after the command, flags without a value type, usage lines without braces)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        apply_conventions(self)


app = typer.Typer(
    cls=SagestackGroup,
    help="sagestack: the SageMaker data-science workflow on open-source parts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.add_typer(models.app, name="models")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(features.app, name="features")
app.add_typer(debug.app, name="debug")
app.add_typer(tune.app, name="tune")
app.add_typer(deploy.app, name="deploy")
app.add_typer(monitor.app, name="monitor")
app.add_typer(review.app, name="review")
app.add_typer(aws.compat_app, name="compat")
app.command("bias")(analysis.bias)
app.command("explain")(analysis.explain)
app.command("automl")(automl.automl)
app.command("lineage")(models.lineage)
app.command("serve")(serve.serve)
app.command("serve-aws")(aws.serve_aws)
app.command("demo")(demo.demo)
app.command("console")(console.console)
app.command("up")(deploy.up)
app.command("down")(deploy.down)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"sagestack {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(None, "--home", help="State directory (default: $SAGESTACK_HOME or ./.sagestack)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: SQLite under the home)."),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version."),
) -> None:
    """sagestack: the SageMaker data-science workflow on open-source parts."""
    ctx.obj = Invocation(home=home, tracking_uri=tracking_uri)


def quiet_libraries() -> None:
    """Keep library chatter off the terminal of an ordinary command: sagestack prints its own
    progress (``... step``), and stderr should show that and errors, not the libraries' warnings.

    Silenced: MLflow's UserWarnings (raw ANSI colour codes), its CloudPickle and migration log
    lines (MLflow logs at ERROR only), its "Downloading artifacts" progress bars, the Hugging Face
    libraries' progress bars (e.g. "Writing model shards" when a BERT model is saved), and the
    Deprecation/FutureWarnings of ibis, Feast, transformers and friends (a user cannot act on
    them; they stay visible to anyone who calls the library from Python). The MLflow variables are set with ``setdefault`` for this process and its children
    (pipeline steps, the endpoint), so a user's own setting wins; the warning filters and
    logging levels stay inside this process.
    """
    import logging
    import os
    import warnings

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # With a tracking *server* MLflow writes "View run … at: URL" lines to stdout, which belongs to --json.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # transformers' and huggingface_hub's progress bars ("Writing model shards", "Loading weights"):
    # sagestack's own progress lines say what a long step does.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    # MLflow shows some UserWarnings under its own `catch_warnings("once")`, past any filter set here:
    # every warning goes to the logging module instead, where "py.warnings" keeps only errors
    # (sagestack itself warns through its progress lines and errors, never with `warnings`).
    logging.captureWarnings(True)
    for name in ("py.warnings", "mlflow", "alembic", "feast", "kfp", "urllib3", "httpx", "bentoml"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main() -> None:
    """Entry point of the ``sagestack`` console script."""
    quiet_libraries()
    try:
        app(prog_name="sagestack")
    except SagestackError as exc:
        if "--json" in sys.argv:
            typer.echo(json.dumps({"ok": False, "error": str(exc)}))
        typer.echo(f"error: {exc}", err=True)
        sys.exit(USER_ERROR_EXIT)
