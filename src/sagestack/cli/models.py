"""``sagestack models`` and ``sagestack lineage``: the model registry."""

from __future__ import annotations

import typer

from sagestack.cli.common import JsonOpt, emit, fields, human, settings, table

app = typer.Typer(help="The model registry: list, show, approve, promote.", no_args_is_help=True)


@app.command("list")
def list_(json_output: bool = JsonOpt) -> None:
    """List registered models, their versions (with kind), approval statuses and aliases."""
    from sagestack.registry import list_models

    models = list_models(settings())
    rows = [{"model": m["name"], "version": int(v["version"]), "kind": v["kind"], "status": v["approval_status"],
             "aliases": sorted(alias for alias, number in m["aliases"].items() if number == v["version"])}
            for m in models for v in m["versions"]]
    emit({"models": models}, json_output,
         table(rows, ["model", "version", "kind", "status", "aliases"], empty="no registered models"))


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME/VERSION."),
    json_output: bool = JsonOpt,
) -> None:
    """Show one model version: kind, status, aliases, metrics and lineage tags."""
    from sagestack.registry import resolve_ref

    info = resolve_ref(settings(), ref).to_dict()
    lines = [f"{info['name']} version {info['version']} ({info['kind']}, {info['approval_status']}), "
             f"aliases {human(info['aliases'])}"]
    lines += fields({"metric": {k: v for k, v in sorted(info["metrics"].items()) if k.endswith("accuracy")},
                     "tag": dict(sorted(info["tags"].items()))}, prefix="  ")
    emit(info, json_output, lines)


@app.command("approve")
def approve(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME/VERSION."),
    reject: bool = typer.Option(False, "--reject", help="Reject instead of approving."),
    pending: bool = typer.Option(False, "--pending", help="Reset to PendingManualApproval."),
    json_output: bool = JsonOpt,
) -> None:
    """Set a version's approval status (Approved; Rejected with --reject; PendingManualApproval with --pending)."""
    from sagestack.errors import ConfigError
    from sagestack.registry import set_approval

    if reject and pending:
        raise ConfigError("pass --reject or --pending, not both")
    status = "Rejected" if reject else "PendingManualApproval" if pending else "Approved"
    info = set_approval(settings(), ref, status).to_dict()
    emit(info, json_output, [f"{info['name']} version {info['version']} is now {info['approval_status']}"])


@app.command("promote")
def promote(
    ref: str = typer.Argument(..., help="NAME/VERSION (or NAME@ALIAS) to promote."),
    alias: str = typer.Option("champion", help="Alias to point at it (champion needs Approved)."),
    json_output: bool = JsonOpt,
) -> None:
    """Point an alias (champion/challenger) at a model version."""
    from sagestack.registry import promote as point_alias

    info = point_alias(settings(), ref, alias).to_dict()
    emit(info, json_output, [f"{info['name']}@{alias} -> version {info['version']}"])


def endpoint_line(chain: dict) -> str:
    """Lineage's endpoint in words: the live URL, the last one and when it stopped, or none yet."""
    last = chain.get("last_endpoint")
    if chain["endpoint"]:
        return chain["endpoint"]
    if last:
        return f"not serving (last served at {last['url']}, " + (
            f"stopped {last['stopped_at']})" if last["stopped_at"] else "its process has ended)")
    return "not served yet"


def lineage(
    ref: str = typer.Argument(..., help="NAME@ALIAS or NAME/VERSION."),
    json_output: bool = JsonOpt,
) -> None:
    """Print the chain dataset → pipeline steps → candidates → model version → endpoint, read from MLflow."""
    from sagestack.registry import lineage as read_lineage

    chain = read_lineage(settings(), ref)
    model, champion, pipeline, h = chain["model"], chain["champion"], chain["pipeline"], human
    lines = [
        f"dataset   {h(chain['dataset']['path'])} (sha256 {h(chain['dataset']['sha256'])})",
        f"pipeline  run {h(pipeline['run'])} (sagestack {h(pipeline['sagestack_version'])}, commit {h(pipeline['git_commit'])})"
        if pipeline.get("run") else f"pipeline  - (trained outside a pipeline; sagestack {h(pipeline['sagestack_version'])}, "
                                    f"commit {h(pipeline['git_commit'])})",
        *(f"  step {s['order']}  {s['step']:17} {s['artifact']:10} {s['uri']}" for s in chain["steps"]),
        *(f"candidate {name:9} {h(c.get('kind')):9} test_accuracy {h(c.get('test_accuracy'))} "
          f"macro_f1 {h(c.get('test_macro_f1'))}" + ("  <- champion" if name == champion["trainer"] else "")
          for name, c in chain["candidates"].items()),
        *([f"reviewed  {h(r.get('loops'))} human-reviewed labels ({h(r.get('relabelled'))} relabelled, "
           f"{h(r.get('confirmed'))} confirmed, {h(r.get('added'))} added) by {r.get('reviewers') or '?'}; "
           f"asked by {h(r.get('asked_by'))}; snapshot sha256 {h(r.get('sha256'))} (artifact reviewed/)"]
          if (r := chain.get("reviewed")) else []),
        f"training  MLflow run {h(chain['training_run'])}",
        f"model     {model['name']} version {model['version']} ({h(model['kind'])}, {h(model['approval_status'])}, "
        f"aliases {h(model['aliases'])}, test_accuracy {h(model['test_accuracy'])})",
        f"endpoint  {endpoint_line(chain)}",
    ]
    emit(chain, json_output, lines)
