"""``sagestack data``: prepare and locate review datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sagestack.cli.common import JsonOpt, OverwriteOpt, check_out, emit, human, progress, renamed, settings, split_list

app = typer.Typer(help="Prepare and locate review datasets.", no_args_is_help=True)


@app.command("prepare", context_settings=renamed({"--input": "--data"}))
def prepare(
    data: Optional[Path] = typer.Option(None, "--data", help="Review CSV (course or raw layout); default: the resolved dataset."),
    out: Path = typer.Option(..., "--out", help="Output folder, written whole; a previous `data prepare` output there is replaced."),
    overwrite: bool = OverwriteOpt,
    balance: bool = typer.Option(False, "--balance", help="Down-sample every label to the rarest one."),
    validation_fraction: float = typer.Option(0.05, help="Share of rows for validation."),
    test_fraction: float = typer.Option(0.05, help="Share of rows for test."),
    seed: int = typer.Option(42, help="Random seed for balancing and splitting."),
    labels: Optional[list[str]] = typer.Option(None, "--labels", help="Allowed sentiment labels (repeat or "
                                               "comma-separate; default -1,0,1)."),
    json_output: bool = JsonOpt,
) -> None:
    """Validate, tokenize and split a review CSV into CSV and fastText files."""
    from sagestack.data import prepare_dataset, resolve_dataset
    from sagestack.errors import ConfigError

    given = split_list(labels) or ["-1", "0", "1"]
    try:
        label_set = [int(x) for x in given]
    except ValueError:
        raise ConfigError(f"--labels must be integers, got {', '.join(given)}") from None
    say = progress(json_output)
    resolved = resolve_dataset(data, settings=settings())
    check_out(out, "data prepare", overwrite, resolved.path)
    if say:
        say(f"preparing {resolved.path} ({resolved.source})")
    result = prepare_dataset(
        resolved.path, out, labels=label_set, balance=balance,
        validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed, overwrite=overwrite,
    )
    emit(result.to_dict(), json_output,
         [f"{name}: {sum(c.values())} rows ({human(c)})" for name, c in result.counts.items()] + [f"written to {out}"])


@app.command("list")
def list_(json_output: bool = JsonOpt) -> None:
    """The datasets `--data NAME` finds from any folder (the course's CSVs shipped with sagestack)."""
    from sagestack.data.resolver import list_datasets

    datasets = list_datasets(settings())
    rows = [("name", "rows", "bytes", "sha256", "source")]
    rows += [(d.name, f"{d.rows:,}", f"{d.bytes:,}", d.sha256[:12], d.source) for d in datasets]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 2}  # numbers align right
    lines = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    emit({"datasets": [d.to_dict() for d in datasets]}, json_output,
         [*lines, "pass a name as --data (e.g. --data reviews_balanced.csv); a file of that name here wins"])


@app.command("resolve")
def resolve(
    name: str = typer.Option("reviews_balanced.csv", help="Dataset file name to look for."),
    json_output: bool = JsonOpt,
) -> None:
    """Show where a dataset is found (SAGESTACK_DATA → the embedded copy → download)."""
    from sagestack.data import resolve_dataset

    resolved = resolve_dataset(settings=settings(), name=name)
    emit({"path": str(resolved.path), "source": resolved.source}, json_output, [f"{resolved.path} ({resolved.source})"])
