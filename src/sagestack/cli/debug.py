"""``sagestack debug``: the Debugger's rules, and re-evaluating them on a recorded run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sagestack.cli.common import JsonOpt, OverwriteOpt, check_out_file, emit

app = typer.Typer(help="Debugger rules and offline analysis of recorded training runs.", no_args_is_help=True)


@app.command("rules")
def rules(json_output: bool = JsonOpt) -> None:
    """List the built-in rules with their parameters and defaults."""
    from sagestack.debugger.rules import DEFAULT_RULES, describe_rules

    described = describe_rules()
    lines = []
    for rule in described:
        params = ", ".join(f"{name}={value}" for name, value in rule["parameters"].items()) or "-"
        mark = " (default)" if rule["name"] in DEFAULT_RULES else ""
        lines.append(f"{rule['name']}{mark}: {rule['description']}\n    parameters: {params}")
    emit({"rules": described, "default": list(DEFAULT_RULES)}, json_output, lines)


@app.command("analyze")
def analyze(
    run_dir: Path = typer.Argument(..., help="A recorded run: a `train bert` output folder or its debugger/ folder."),
    rule: Optional[list[str]] = typer.Option(None, "--rule", help="Rules to evaluate (repeat; default: every rule the recording can feed)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The HTML report (default: RUN_DIR's debugger/analysis.html)."),
    overwrite: bool = OverwriteOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Re-evaluate the rules on a recorded run and write an HTML report."""
    from sagestack.debugger.analysis import analyze_run

    if out is not None:  # the default report lies in the run folder sagestack wrote
        check_out_file(out, overwrite)
    result = analyze_run(run_dir, rules=tuple(rule) if rule else None, report=out)
    lines = [f"{f['rule']} fired at step {f['step']}: {f['detail']}" for f in result["findings"]] or ["no rule fired"]
    lines.append(f"report: {result['report']}")
    emit(result, json_output, lines)
