"""``sagestack models`` and ``sagestack lineage``: the model registry."""

from __future__ import annotations

import typer

from sagestack.cli.common import JsonOpt, emit, settings

app = typer.Typer(help="The model registry: list, show, approve, promote.", no_args_is_help=True)


@app.command("list")
def list_(json_output: bool = JsonOpt) -> None:
    """List registered models, their versions (with kind), approval statuses and aliases."""
    from sagestack.registry import list_models

    models = list_models(settings())
    lines = [
        f"{m['name']}: " + ", ".join(f"v{v['version']} {v['kind']} {v['approval_status']}" for v in m["versions"])
        + (f"  aliases {m['aliases']}" if m["aliases"] else "")
        for m in models
    ] or ["no registered models"]
    emit({"models": models}, json_output, lines)


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME/VERSION."),
    json_output: bool = JsonOpt,
) -> None:
    """Show one model version: kind, status, aliases, metrics and lineage tags."""
    from sagestack.registry import resolve_ref

    info = resolve_ref(settings(), ref).to_dict()
    lines = [f"{info['name']} version {info['version']} ({info['kind']}, {info['approval_status']}) aliases={info['aliases']}"]
    lines += [f"  {k} = {v}" for k, v in sorted(info["metrics"].items()) if k.endswith("accuracy")]
    lines += [f"  tag {k} = {v}" for k, v in sorted(info["tags"].items())]
    emit(info, json_output, lines)


@app.command("approve")
def approve(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME/VERSION."),
    reject: bool = typer.Option(False, "--reject", help="Reject instead of approving."),
    pending: bool = typer.Option(False, "--pending", help="Reset to PendingManualApproval."),
    json_output: bool = JsonOpt,
) -> None:
    """Set a version's approval status (Approved, or Rejected with --reject)."""
    from sagestack.registry import set_approval

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


def lineage(
    ref: str = typer.Argument(..., help="NAME@ALIAS or NAME/VERSION."),
    json_output: bool = JsonOpt,
) -> None:
    """Print the chain dataset → pipeline steps → candidates → model version → endpoint, read from MLflow."""
    from sagestack.registry import lineage as read_lineage

    chain = read_lineage(settings(), ref)
    model, champion = chain["model"], chain["champion"]
    lines = [
        f"dataset   {chain['dataset']['path']} (sha256 {chain['dataset']['sha256']})",
        f"pipeline  run {chain['pipeline']['run']} (sagestack {chain['pipeline']['sagestack_version']}, "
        f"commit {chain['pipeline']['git_commit']})",
        *(f"  step {s['order']}  {s['step']:17} {s['artifact']:10} {s['uri']}" for s in chain["steps"]),
        *(f"candidate {name:9} {c.get('kind', '?'):9} test_accuracy {c.get('test_accuracy')} "
          f"macro_f1 {c.get('test_macro_f1')}" + ("  <- champion" if name == champion["trainer"] else "")
          for name, c in chain["candidates"].items()),
        *([f"reviewed  {r.get('loops')} human-reviewed labels ({r.get('relabelled')} relabelled, {r.get('confirmed')} "
           f"confirmed, {r.get('added')} added) by {r.get('reviewers') or '?'}; asked by {r.get('asked_by') or '-'}; "
           f"snapshot sha256 {r.get('sha256')} (artifact reviewed/)"] if (r := chain.get("reviewed")) else []),
        f"training  MLflow run {chain['training_run']}",
        f"model     {model['name']} version {model['version']} ({model['kind']}, {model['approval_status']}, "
        f"aliases {model['aliases']}, test_accuracy {model['test_accuracy']})",
        f"endpoint  {chain['endpoint'] or 'not served yet'}",
    ]
    emit(chain, json_output, lines)
