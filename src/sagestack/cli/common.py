"""What every command group shares: the settings from the global options, progress and output."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import typer

if TYPE_CHECKING:
    from sagestack.config import Settings

USER_ERROR_EXIT = 2

JsonOpt = typer.Option(False, "--json", help="Print a machine-readable JSON result on stdout.")


@dataclass
class Invocation:
    """One command line's global options and the settings they resolve to: typer's context object,
    made by the root callback and read by every command through :func:`settings`."""

    home: Path | None = None
    tracking_uri: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """The validated settings: global options over the environment over ``sagestack.toml``.

        Resolved on first use, once every global option is parsed (they may follow the command),
        and only by a command that needs them (a broken ``sagestack.toml`` does not break ``--help``).
        """
        if self._settings is None:
            from sagestack.config import load_settings

            self._settings = load_settings(home=self.home, tracking_uri=self.tracking_uri)
        return self._settings


def invocation(ctx: typer.Context | None = None) -> Invocation:
    """The :class:`Invocation` of the command line being run (``ctx``: default, the current context)."""
    # typer keeps its own copy of click: its contexts are found through typer, not `click`.
    from typer.main import get_current_context

    return (ctx or get_current_context()).find_root().ensure_object(Invocation)


def settings() -> Settings:
    """The validated settings of the command line being run (see :meth:`Invocation.settings`)."""
    return invocation().settings()


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
    """A pipeline run's trainers, then the steps that did work (``sagestack.pipeline_runs.work_steps``: not the
    branches' plumbing), one line each (status, seconds), optionally with their artifact paths. Every step is in
    the run's JSON and summary.json."""
    from sagestack.pipeline_runs import run_trainers, work_steps

    lines = [f"trainers: {', '.join(run_trainers(summary)) or 'none'}"]
    for step in work_steps(summary):
        lines.append(f"  {step['name']:20} {step['status']:8} {step['seconds']:6.2f} s")
        if artifacts:
            lines += [f"      {name}: {path}" for name, path in step.get("artifacts", {}).items()]
    return lines


def candidate_lines(selection: dict | None) -> list[str]:
    """A run's candidates with their scores on the selection metric (none when no selection ran)."""
    if not selection:
        return []
    return [f"candidate {name:9} test {selection['metric']} {c['score']:.4f}" for name, c in selection["candidates"].items()]


OverwriteOpt = typer.Option(False, "--overwrite", help="Replace --out even if it holds files sagestack did not write.")


def check_out_file(out, overwrite: bool, option: str = "--out") -> None:
    """Refuse an output file (``option``) that exists unless ``--overwrite`` (see :func:`sagestack.data.atomic.check_out_file`)."""
    from sagestack.data.atomic import check_out_file as check

    check(out, overwrite=overwrite, option=option)


def check_out(out, command: str, overwrite: bool, *inputs) -> None:
    """Refuse ``--out`` before any work starts when writing it could lose a user's file.

    ``inputs`` are the command's input arguments as given (paths, or references such as
    ``NAME@ALIAS`` and URIs: only those naming an existing local path count; ``None`` is skipped).
    They and the sagestack home may not lie inside the output folder, which is replaced whole, and
    the output may not lie inside the home.
    """
    from sagestack.data.atomic import check_out_dir

    home = settings().home
    local = [Path(str(p)) for p in inputs if p is not None and "://" not in str(p) and Path(str(p)).exists()]
    check_out_dir(out, command=command, overwrite=overwrite, protect=local, inside=[home])


# ---------------------------------------------------------------------------------------------
# Output a person reads: aligned text, `-` for an absent value, ISO times (--json prints the data).

ABSENT = "-"


def human(value: object) -> str:
    """One value as a person reads it: ``-`` for ``None``/empty, ``yes``/``no``, floats to 4
    significant decimals, lists comma-joined, mappings as ``key=value``, datetimes in ISO 8601."""
    import datetime as dt

    if value is None or value == "" or (isinstance(value, (list, tuple, set, dict)) and not value):
        return ABSENT
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.4g}"
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat(timespec="seconds") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, dict):
        return ", ".join(f"{k}={human(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(human(v) for v in value)
    return str(value)


def iso_time(epoch_seconds: float | None) -> str:
    """A Unix time (seconds) as ISO 8601 in UTC, e.g. ``2026-11-26T14:00:00+00:00``; ``-`` if absent."""
    import datetime as dt

    if epoch_seconds is None:
        return ABSENT
    return dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc).isoformat(timespec="seconds")


def table(rows: list[dict], columns: list[str] | dict[str, str], *, empty: str = "nothing to show") -> list[str]:
    """Rows as aligned text lines under a header: every cell through :func:`human`, numbers right-aligned.

    Args:
        rows: one mapping per row.
        columns: the keys to show, in order; a mapping ``{key: header}`` names the headers
            (default: the key itself).
        empty: the one line printed when there are no rows.
    """
    if not rows:
        return [empty]
    headers = columns if isinstance(columns, dict) else {key: key for key in columns}
    cells = [[human(row.get(key)) for key in headers] for row in rows]
    numeric = [all(isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)
                   or row.get(key) is None for row in rows) for key in headers]
    grid = [list(headers.values()), *cells]
    widths = [max(len(line[i]) for line in grid) for i in range(len(headers))]
    return ["  ".join(cell.rjust(w) if right else cell.ljust(w)
                      for cell, w, right in zip(line, widths, numeric)).rstrip() for line in grid]


def fields(mapping: dict, *, prefix: str = "") -> list[str]:
    """A record as aligned ``key  value`` lines; nested mappings become dotted keys (``Config.Threshold``)."""
    flat: dict[str, object] = {}

    def walk(value: dict, path: str) -> None:
        for key, item in value.items():
            if isinstance(item, dict) and item:
                walk(item, f"{path}{key}.")
            else:
                flat[f"{path}{key}"] = item

    walk(mapping, prefix)
    width = max((len(key) for key in flat), default=0)
    return [f"{key.ljust(width)}  {human(value)}" for key, value in flat.items()]


def split_list(values: list[str] | str | None, separators: str = ",") -> list[str]:
    """A list option's values: given repeated (``--x a --x b``), comma-separated (``--x a,b``) or both."""
    import re

    if values is None:
        return []
    items = [values] if isinstance(values, str) else values
    pattern = "[" + re.escape(separators) + "]"
    return [part.strip() for item in items for part in re.split(pattern, item) if part.strip()]


# ---------------------------------------------------------------------------------------------
# Command-line conventions, applied to the whole command tree once (see `apply_conventions`).

GLOBAL_OPTIONS = {"--home": "home", "--tracking-uri": "tracking_uri"}


def renamed(old_to_new: dict[str, str], **context_settings) -> dict:
    """``context_settings`` for a command whose options were renamed: the old spellings
    (e.g. ``{"--output": "--out", "-o": "--out"}``) still parse, for one release, but are not shown.

    Click normalises every option token through ``token_normalize_func`` before matching it,
    so an old spelling simply becomes the new one.
    """
    mapping = {}
    for old, new in old_to_new.items():
        prefix = "--" if old.startswith("--") else "-"
        # click splits the prefix off, normalises the rest, and puts the prefix back.
        mapping[old[len(prefix):]] = new[len(prefix):] if new.startswith(prefix) else new

    def normalize(name: str) -> str:
        return mapping.get(name, name)

    normalize.renamed = dict(old_to_new)  # read by apply_conventions and the conventions test
    return {**context_settings, "token_normalize_func": normalize}


def renamed_options(command) -> dict[str, str]:
    """The old spellings a command still accepts, ``{old: new}``."""
    normalize = (command.context_settings or {}).get("token_normalize_func")
    return dict(getattr(normalize, "renamed", {}))


def _set_global(ctx, param, value) -> None:
    if value is not None:
        setattr(invocation(ctx), param.name, value)


def apply_conventions(group) -> None:
    """Make the command tree under ``group`` follow the CLI conventions that typer does not:

    - ``--home`` and ``--tracking-uri`` are accepted after the command too (a hidden copy on
      every command that has no option of that name; the value lands where the root's would);
    - a flag shows no value type (this typer prints ``<bool>`` beside every flag, ``--help`` too);
    - a usage line names a required argument ``REF``, an optional one ``[REF]`` (not ``{ref}``).
    """
    from typer.core import TyperArgument, TyperOption

    class Flag(TyperOption):
        def display_type_rich(self, ctx):
            return None if self.is_flag or self.count else super().display_type_rich(ctx)

    class Argument(TyperArgument):
        def _usage_display_name(self) -> str:
            name = self.display_name_raw.upper() + ("..." if self.nargs != 1 else "")
            return name if self.required else f"[{name}]"

    import copy

    import typer

    # Hidden copies of the root's own global options (same type, help and checks).
    globals_ = [param for param in group.params if param.name in GLOBAL_OPTIONS.values()]

    def visit(command) -> None:
        help_option = command.get_help_option(typer.Context(command))
        for param in [*command.params, *([help_option] if help_option else [])]:
            if type(param) is TyperOption and (param.is_flag or param.count):
                param.__class__ = Flag
            elif type(param) is TyperArgument:
                param.__class__ = Argument
        for sub in getattr(command, "commands", {}).values():
            visit(sub)
        if command is not group and not hasattr(command, "commands"):
            taken = {name for p in command.params for name in (*p.opts, *p.secondary_opts)}
            taken |= set(renamed_options(command))
            for option in globals_:
                if not taken & set(option.opts):
                    clone = copy.copy(option)
                    clone.hidden, clone.expose_value, clone.callback = True, False, _set_global
                    command.params.append(clone)

    visit(group)


def kind_group(command_for_kind, what: str):
    """A typer group class holding the commands declared on it plus one made by ``command_for_kind(kind)``
    for each other trainable kind of the registry (``sagestack train KIND``, ``sagestack tune KIND``)."""
    from typer.core import TyperGroup

    class KindGroup(TyperGroup):
        __doc__ = f"The ``{what}`` group: the commands declared here plus one generated per other trainable kind."

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            from sagestack.models.kinds import trainer_kinds

            for kind in trainer_kinds():
                if kind.trainer_name not in self.commands:
                    self.add_command(typer.main.get_command(command_for_kind(kind)), kind.trainer_name)

    return KindGroup
