"""The command-line conventions, checked on every command of the real command tree, in process.

One name per idea (``--out``, ``--kfp-url``, ``--approve`` ...), lists given repeated or
comma-separated, ``--home``/``--tracking-uri`` anywhere, ``--json`` and help everywhere, old
spellings still parsing for one release; and the output helpers every command prints with.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.core import TyperArgument, TyperOption
from typer.testing import CliRunner

from sagestack.cli import app
from sagestack.cli.common import GLOBAL_OPTIONS, fields, human, iso_time, renamed_options, split_list, table

ROOT = typer.main.get_command(app)
RUNNER = CliRunner()


def _walk(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(ROOT))
LEAVES = {path: command for path, command in COMMANDS if not hasattr(command, "commands")}
# Options that are a bind address (--host) belong to the commands that start a server.
SERVERS = {("console",), ("serve",), ("features", "serve"), ("serve-aws",)}


def _visible_options(command):
    return [p for p in command.params if isinstance(p, TyperOption) and not p.hidden]


def _help(path) -> str:
    result = RUNNER.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (path, result.output)
    return result.output


def test_the_tree_is_the_whole_cli():
    assert len(LEAVES) > 40 and ("models", "list") in LEAVES and ("review", "flow", "create") in LEAVES


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=lambda p: " ".join(p) or "sagestack")
def test_help_has_no_bool_metavar_braces_or_rst(path):
    text = _help(path)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    assert "<bool>" not in text
    assert "``" not in text


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_every_leaf_command_follows_the_conventions(path):
    command = LEAVES[path]
    options = _visible_options(command)
    names = {name for option in options for name in (*option.opts, *option.secondary_opts)}
    assert "--json" in names, f"{' '.join(path)} has no --json"
    for param in command.params:
        if not param.hidden:
            assert param.help, f"{' '.join(path)}: {param.name} has no help text"
    # One spelling per idea: --out for what a command writes, --approve for registering as Approved,
    # --host only for the address a server binds.
    assert not names & {"--output", "-o", "--output-dir", "--out-dir", "--auto-approve"}, names
    assert "--host" not in names or path in SERVERS, path
    for option in options:
        # One long name per visible option: an old spelling is a hidden alias (common.renamed), never a second name.
        assert len([name for name in option.opts if name.startswith("--")]) == 1, (path, option.opts)
        if option.name in ("out", "output"):
            assert option.opts == ["--out"], (path, option.opts)
        if option.is_flag:
            assert option.metavar is None or not option.metavar.strip()
    # --home and --tracking-uri work after the command too (hidden copies of the root's options).
    hidden = {name for p in command.params if p.hidden for name in p.opts}
    for flag in GLOBAL_OPTIONS:
        assert flag in hidden or flag in renamed_options(command), (path, flag)


def _parse(path, args):
    """Parse ``args`` as the command at ``path`` would (no invocation): its parameter values."""
    command = LEAVES[tuple(path)]
    return command.make_context(path[-1], list(args)).params


@pytest.mark.parametrize("path, args, expected", [
    (("pipeline", "compile"), ["-o", "p.yaml"], {"out": "p.yaml"}),
    (("pipeline", "compile"), ["--output", "p.yaml"], {"out": "p.yaml"}),
    (("pipeline", "submit"), ["--host", "http://kfp", "--data", "d.csv", "--tracking-uri", "http://m", "--auto-approve"],
     {"kfp_url": "http://kfp", "cluster_tracking_uri": "http://m", "approve": True}),
    (("pipeline", "run"), ["--auto-approve", "--trainers", "fasttext,baseline", "--trainers", "bert"],
     {"approve": True, "trainers": ["fasttext,baseline", "bert"]}),
    (("monitor", "schedule"), ["--host", "http://kfp", "--tracking-uri", "http://m"],
     {"kfp_url": "http://kfp", "cluster_tracking_uri": "http://m"}),
    (("review", "answer"), ["loop-1", "--label", "1", "--reviewer", "ann"], {"label": "1", "loop": "loop-1"}),
])
def test_old_spellings_still_parse(path, args, expected):
    params = _parse(path, args)
    assert {key: (str(params[key]) if isinstance(params[key], Path) else params[key]) for key in expected} == expected


def test_old_spellings_are_not_shown():
    renaming = [path for path, command in LEAVES.items() if renamed_options(command)]
    assert {("pipeline", "compile"), ("pipeline", "run"), ("review", "answer"), ("data", "prepare")} <= set(renaming)
    for path in renaming:
        text = _help(path)
        for old in renamed_options(LEAVES[path]):
            assert f"{old} " not in text and f"{old}," not in text, (path, old)


def test_global_options_after_the_command(tmp_path):
    ctx = LEAVES[("models", "list")].make_context("list", ["--home", str(tmp_path / "h"), "--tracking-uri", "sqlite:///x.db"])
    state = ctx.find_root().obj  # the command line's Invocation, where the root's options land too
    assert Path(state.home) == tmp_path / "h" and state.tracking_uri == "sqlite:///x.db"
    # And for real: the home given after the command is the one used.
    result = RUNNER.invoke(app, ["models", "list", "--home", str(tmp_path / "after"), "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "after" / "mlflow.db").is_file()


def test_root_help_keeps_every_group_short():
    lines = [line for line in _help(()).splitlines() if "tune" in line or "Optuna" in line]
    assert len(lines) == 1, lines


def test_defaults_are_shown_where_a_preset_decides_them():
    text = _help(("train", "fasttext"))
    assert "(default 10; 5 with --preset blazingtext)" in text  # epochs
    params = {p.name: p for p in LEAVES[("review", "import")].params}
    assert params["flow"].help and params["fmt"].default == "label-studio"
    bias_seed = {p.name: p for p in LEAVES[("bias",)].params}["seed"]
    assert bias_seed.default == 42


def test_lists_are_repeated_or_comma_separated():
    assert split_list(None) == []
    assert split_list(["fasttext,baseline", " bert ", ""]) == ["fasttext", "baseline", "bert"]
    assert split_list("a;b,c", ",;") == ["a", "b", "c"]


def test_human_output_helpers():
    assert [human(v) for v in (None, "", [], True, 0.61971830, 3, ["a", "b"], {"k": None})] == [
        "-", "-", "-", "yes", "0.6197", "3", "a, b", "k=-"]
    assert iso_time(0) == "1970-01-01T00:00:00+00:00" and iso_time(None) == "-"
    assert table([{"name": "a", "n": 5}, {"name": "bbb", "n": None}], ["name", "n"]) == [
        "name  n", "a     5", "bbb   -"]
    assert table([], ["x"], empty="no rows") == ["no rows"]
    assert fields({"A": 1, "Nested": {"B": None}}) == ["A         1", "Nested.B  -"]
