"""``sagestack review``: human review of low-confidence predictions (Augmented AI's flows and human loops)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sagestack.cli.common import JsonOpt, OverwriteOpt, check_out_file, emit, fields, renamed, settings, split_list, table

app = typer.Typer(help="Human review: flows, human loops, answers, export and import.", no_args_is_help=True)
flow_app = typer.Typer(help="Flow definitions: which predictions go to people, and how many answer each.",
                       no_args_is_help=True)
app.add_typer(flow_app, name="flow")


def _store():
    from sagestack.review.store import review_store

    return review_store(settings())


@flow_app.command("create")
def flow_create(
    name: str = typer.Option(..., "--name", help="Flow name (lowercase letters, digits, hyphens)."),
    threshold: float = typer.Option(0.9, "--threshold", help="Predictions less confident than this go to people."),
    reviewers_per_item: int = typer.Option(1, "--reviewers-per-item", help="Answers per item; a majority decides."),
    labels: list[str] = typer.Option(["-1", "0", "1"], "--labels", help="The labels reviewers choose from (repeat or comma-separate)."),
    task_title: Optional[str] = typer.Option(None, "--task-title", help="What reviewers are asked."),
    tie_break: str = typer.Option(
        "escalate", "--tie-break", metavar="escalate|model",
        help="How a tie ends (every reviewer answered, no label has a majority): escalate = one more reviewer "
             "picks one of the tied labels, and that answer decides; model = the model's label wins if it is tied, "
             "else the first tied label in --labels order."),
    json_output: bool = JsonOpt,
) -> None:
    """Define a flow (A2I's create_flow_definition)."""
    flow = _store().create_flow(name, threshold=threshold, reviewers_per_item=reviewers_per_item,
                                labels=split_list(labels), task_title=task_title, tie_break=tie_break)
    ties = {"escalate": "; a tie goes to one more reviewer", "model": "; a tie goes to the model's label"}
    emit(flow.describe(), json_output, [f"flow {flow.name}: predictions below {flow.threshold:g} confidence go to "
                                        f"{flow.reviewers_per_item} reviewer(s), labels {', '.join(flow.labels)}"
                                        + (ties[flow.tie_break] if flow.reviewers_per_item > 1 else "")])


@flow_app.command("list")
def flow_list(json_output: bool = JsonOpt) -> None:
    """Every flow."""
    flows = _store().flows()
    rows = [{"flow": f.name, "threshold": f.threshold, "reviewers": f.reviewers_per_item, "labels": ",".join(f.labels)}
            for f in flows]
    emit({"FlowDefinitionSummaries": [f.describe() for f in flows]}, json_output,
         table(rows, ["flow", "threshold", "reviewers", "labels"],
               empty="no flows yet; create one with: sagestack review flow create --name NAME"))


@flow_app.command("describe")
def flow_describe(name: str = typer.Argument(..., help="The flow's name."), json_output: bool = JsonOpt) -> None:
    """One flow (A2I's describe_flow_definition) with its loops' progress."""
    store = _store()
    described = {**store.flow(name).describe(), "Progress": store.progress(name)}
    emit(described, json_output, fields(described))


@app.command("start")
def start(
    flow: str = typer.Option(..., "--flow", help="The flow to start the loop in."),
    review: str = typer.Option(..., "--review", help="The review text to label."),
    initial_value: Optional[str] = typer.Option(None, "--initial-value", help="The model's prediction, pre-selected."),
    confidence: Optional[float] = typer.Option(None, "--confidence", help="The model's confidence (orders the queue)."),
    name: Optional[str] = typer.Option(None, "--name", help="The loop's name (default: a fresh one)."),
    json_output: bool = JsonOpt,
) -> None:
    """Start one human loop by hand (A2I's start_human_loop)."""
    from sagestack.review.store import LoopInput

    loop = _store().start_loops(flow, [LoopInput(review=review, initial_value=initial_value, confidence=confidence,
                                                 name=name)])[0]
    emit({"HumanLoopName": loop, "HumanLoopStatus": "InProgress"}, json_output, [f"started {loop}"])


@app.command("describe")
def describe(loop: str = typer.Argument(..., help="The loop's name."), json_output: bool = JsonOpt) -> None:
    """A loop's status, input, answers so far and, once completed, its output.json (A2I's describe_human_loop)."""
    described = _store().describe(loop)
    emit(described, json_output, fields(described))


@app.command("list")
def list_(
    status: Optional[str] = typer.Option(None, "--status", help="InProgress, Completed, Stopped or Failed."),
    flow: Optional[str] = typer.Option(None, "--flow", help="Only the loops of this flow."),
    limit: int = typer.Option(100, "--limit", min=1, help="How many loops to list."),
    json_output: bool = JsonOpt,
) -> None:
    """Loops, newest first (A2I's list_human_loops)."""
    loops = _store().loops(flow=flow, status=status, limit=limit)
    summaries = [{"HumanLoopName": loop.name, "HumanLoopStatus": loop.status, "Tied": loop.tied,
                  "FlowDefinitionArn": f"sagestack:flow-definition/{loop.flow}", "Answers": len(loop.answers),
                  "Confidence": loop.confidence, "Label": loop.label} for loop in loops]
    rows = [{"loop": s["HumanLoopName"], "status": s["HumanLoopStatus"] + (" (tied)" if s["Tied"] else ""),
             "answers": s["Answers"], "confidence": s["Confidence"], "label": s["Label"]} for s in summaries]
    emit({"HumanLoopSummaries": summaries}, json_output,
         table(rows, ["loop", "status", "answers", "confidence", "label"], empty="no human loops"))


@app.command("answer", context_settings=renamed({"--label": "--answer"}))
def answer(
    loop: str = typer.Argument(..., help="The loop's name."),
    label: str = typer.Option(..., "--answer", help="The label this reviewer chooses (one of the flow's labels)."),
    reviewer: str = typer.Option(..., "--reviewer", help="Who answers (one answer per reviewer and loop)."),
    json_output: bool = JsonOpt,
) -> None:
    """Answer a loop from the command line (what the console's Review page does)."""
    done = _store().answer(loop, reviewer, label)
    emit({"HumanLoopName": done.name, "HumanLoopStatus": done.status, "Label": done.label,
          "Answers": len(done.answers)}, json_output,
         [f"{done.name}: {done.status}" + (f", label {done.label}" if done.label is not None else
                                            f", tied between {', '.join(done.tied_labels)}: one more reviewer decides"
                                            if done.tied else f", {len(done.answers)}/{done.needed} answers")])


@app.command("stop")
def stop(loop: str = typer.Argument(..., help="The loop's name."), json_output: bool = JsonOpt) -> None:
    """Stop an open loop, e.g. a tie (A2I's stop_human_loop)."""
    done = _store().stop(loop)
    emit({"HumanLoopName": done.name, "HumanLoopStatus": done.status}, json_output, [f"{done.name}: {done.status}"])


@app.command("export")
def export(
    fmt: str = typer.Option("csv", "--format", help="csv, label-studio or ground-truth."),
    out: Path = typer.Option(..., "--out", help="The file to write (.csv or .json)."),
    flow: Optional[str] = typer.Option(None, "--flow", help="Only the loops of this flow."),
    status: Optional[str] = typer.Option(None, "--status", help="Only loops in this status: InProgress, Completed, Stopped or Failed."),
    overwrite: bool = OverwriteOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Write loops (with their answers) as CSV or Label Studio tasks, or the endpoint's reviewed predictions as
    ground truth for sagestack monitor run --ground-truth (product categories from the feature store)."""
    from sagestack.review.formats import export_loops, known_categories

    check_out_file(out, overwrite)
    categories = known_categories(settings()) if fmt == "ground-truth" else None
    count = export_loops(_store(), out, fmt=fmt, flow=flow, status=status, categories=categories)
    emit({"loops": count, "out": str(out)}, json_output, [f"{count} loop(s) -> {out}"])


@app.command("import")
def import_(
    path: Path = typer.Argument(..., help="A Label Studio JSON export."),
    flow: str = typer.Option(..., "--flow", help="The flow the imported answers (and any new loops) belong to."),
    fmt: str = typer.Option("label-studio", "--format", help="The file's format: label-studio (the only one so far)."),
    json_output: bool = JsonOpt,
) -> None:
    """Bring Label Studio annotations back as answers (a task without a loop starts one)."""
    from sagestack.errors import DataError
    from sagestack.review.formats import import_label_studio

    if fmt != "label-studio":
        raise DataError(f"--format must be label-studio, got {fmt!r}")
    result = import_label_studio(_store(), path, flow=flow).to_dict()
    emit(result, json_output, [f"{result['started']} loop(s) started, {result['answers']} answer(s) recorded",
                               *(f"  skipped: {s}" for s in result["skipped"])])
