"""What every command group shares: the settings from the global options, progress and output."""

from __future__ import annotations

import json
from typing import Callable

import typer

USER_ERROR_EXIT = 2
# Global options (--home, --tracking-uri), set by the root callback before any command runs.
state: dict[str, object] = {}

JsonOpt = typer.Option(False, "--json", help="Print a machine-readable JSON result on stdout.")


def settings():
    """The validated settings: global options over the environment over ``sagestack.toml``."""
    from sagestack.config import load_settings

    return load_settings(home=state.get("home"), tracking_uri=state.get("tracking_uri"))


def progress(json_output: bool) -> Callable[[str], None] | None:
    """A progress printer on stderr: silent with --json, unless ``SAGESTACK_PROGRESS=1`` asks for it
    (the console's jobs do, to show live status; stdout stays one JSON document either way)."""
    import os

    if json_output and os.environ.get("SAGESTACK_PROGRESS") != "1":
        return None
    return lambda message: typer.echo(f"... {message}", err=True)


def emit(result: dict, json_output: bool, lines: list[str]) -> None:
    """Print ``result`` as JSON with --json, else the human-readable ``lines``."""
    if json_output:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        for line in lines:
            typer.echo(line)


def step_lines(summary: dict, *, artifacts: bool = False) -> list[str]:
    """A pipeline run's steps, one line each (status, seconds), optionally with their artifact paths."""
    lines = []
    for step in summary["steps"]:
        lines.append(f"  {step['name']:20} {step['status']:8} {step['seconds']:6.2f} s")
        if artifacts:
            lines += [f"      {name}: {path}" for name, path in step.get("artifacts", {}).items()]
    return lines


def candidate_lines(selection: dict | None) -> list[str]:
    """A run's candidates with their scores on the selection metric (none when no selection ran)."""
    if not selection:
        return []
    return [f"candidate {name:9} test {selection['metric']} {c['score']:.4f}" for name, c in selection["candidates"].items()]
