"""``sagestack features``: the Feast feature store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sagestack.cli.common import JsonOpt, OverwriteOpt, check_out_file, emit, human, progress, settings

app = typer.Typer(help="The Feast feature store: ingest, online reads, training sets, HTTP server.", no_args_is_help=True)


@app.command("ingest")
def ingest_(
    data: Optional[Path] = typer.Option(None, "--data", help="Review CSV; default: the resolved reviews_balanced.csv."),
    max_seq_length: int = typer.Option(128, help="Tokens per review (padding/truncation)."),
    tokenizer: Optional[Path] = typer.Option(None, help="Local Hugging Face tokenizer directory (default: the bundled BERT one)."),
    json_output: bool = JsonOpt,
) -> None:
    """Engineer features, write the offline table, `feast apply` and materialize online."""
    from sagestack.data import load_reviews, resolve_dataset
    from sagestack.features import ingest

    current = settings()
    resolved = resolve_dataset(data, settings=current)
    say = progress(json_output)
    if say:
        say(f"engineering features for {resolved.path}")
    on_tokenized = (lambda done, total: say(f"tokenized {done:,}/{total:,} reviews")) if say else None
    result = ingest(current, load_reviews(resolved.path).frame, max_seq_length=max_seq_length, tokenizer_dir=tokenizer,
                    progress=on_tokenized)
    result.pop("review_ids")
    emit(result, json_output, [f"{result['rows']} reviews in the store ({result['new_rows']} new), splits {human(result['splits'])}",
                                f"offline table: {result['path']}"])


@app.command("get")
def get(
    review_id: list[int] = typer.Option(..., "--review-id", help="Review id (repeatable)."),
    json_output: bool = JsonOpt,
) -> None:
    """Online features of reviews (sentiment_serving_v1); unknown ids are reported as not found."""
    from sagestack.features import get_online

    rows = get_online(settings(), review_id)
    lines = [
        f"{r['review_id']}: " + (f"{r['product_category']} | {r['review_body'][:60]}" if r["found"] else "not found")
        for r in rows
    ]
    emit({"features": rows}, json_output, lines)


@app.command("training-set")
def training_set_(
    split: str = typer.Option("train", "--split", help="train, validation or test."),
    out: Path = typer.Option(..., "--out", help="Output file (.parquet or .csv), written atomically."),
    overwrite: bool = OverwriteOpt,
    json_output: bool = JsonOpt,
) -> None:
    """A point-in-time correct training set read back through Feast (sentiment_training_v1)."""
    from sagestack.data.atomic import atomic_file
    from sagestack.features import training_set

    check_out_file(out, overwrite)
    frame = training_set(settings(), split)
    with atomic_file(out) as tmp:
        if out.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    emit({"rows": len(frame), "path": str(out), "columns": list(frame.columns)}, json_output,
          [f"wrote {len(frame)} {split} rows to {out}"])


@app.command("serve")
def serve(
    port: int = typer.Option(6566, "--port", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    json_output: bool = typer.Option(False, "--json", help="Once the server answers, print one JSON line "
                                     '{"url", "pid"} on stdout (Feast\'s output goes to stderr) and keep serving.'),
) -> None:
    """Feast's HTTP feature server on this home's store (POST /get-online-features)."""
    import json
    import os
    import sys

    from sagestack.features.store import feast_command, feast_env
    from sagestack.processes import check_port_free

    check_port_free(host, port)
    current = settings()
    command = feast_command(current, "serve", "--host", host, "--port", str(port))
    if not json_output:
        os.execve(command[0], command, feast_env(current))
    from sagestack.bento.launch import run_until_stopped

    shown = f"[{host}]" if ":" in host else host

    def announce(url: str) -> None:  # the pid to signal: this process passes SIGINT/SIGTERM on to Feast
        typer.echo(json.dumps({"url": url, "pid": os.getpid()}))

    raise typer.Exit(run_until_stopped(command, feast_env(current), f"http://{shown}:{port}", on_ready=announce,
                                       ready_path="/health", what="the Feast feature server", timeout=120,
                                       output=sys.stderr))
