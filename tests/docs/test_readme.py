"""The README's examples against the real code: every command line parses, every Python block compiles.

Each ``sagestack ...`` line of a ```bash/```sh/```console block is parsed, in this process, by the real
command tree (``typer.main.get_command(sagestack.cli.app)``, each level's ``make_context`` with resilient
parsing off), so an unknown command, an unknown option, a missing value or a bad choice fails here with its
README line number. Nothing runs: the examples that need a trained model or a server are run by the tests of
those commands; this test only keeps the README's spelling of them true, in well under a second.

Synopsis notation is understood: ``[...]`` is an optional part (checked as if given), ``a|b`` inside a word
or a bracket lists alternatives (each one is checked), ``...`` repeats, and an upper-case word or ``<name>``
is a placeholder (accepted wherever any text is; a typed option gets a real example value in the README).
A spaced `` | `` outside brackets is a shell pipe. Python blocks are compiled, and run unless the line
before the block is ``<!-- doc-test: compile only (REASON) -->``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
import typer.main

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SHELL_LANGUAGES = {"bash", "sh", "console", "shell"}
COMPILE_ONLY = re.compile(r"<!--\s*doc-test:\s*compile only \((?P<reason>[^)]+)\)\s*-->")
PROGRAM = "sagestack"
# the adapters' installed names -> their folders in the repository (setup.py)
INSTALLED_ADAPTERS = {"sagestack.components": "components", "sagestack.pipelines": "pipelines",
                      "sagestack.bento": "serving", "sagestack.console": "console", "sagestack.feature_repo": "feature_repo"}


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, the README line of its first content line, its lines."""

    language: str
    first_line: int
    lines: tuple[str, ...]
    compile_only: str | None


@dataclass(frozen=True)
class CommandLine:
    """One logical shell command (continuations joined) and the README line it starts on."""

    line: int
    text: str


def readme_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    blocks, lines = [], text.splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^(`{3,})\s*([\w+-]*)", lines[index])
        if not opening:
            index += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        marker = COMPILE_ONLY.search(lines[index - 1]) if index else None
        body_start = index + 1
        index += 1
        while index < len(lines) and not lines[index].startswith(fence):
            index += 1
        blocks.append(Block(language, body_start + 1, tuple(lines[body_start:index]),
                            marker.group("reason") if marker else None))
        index += 1
    return blocks


def _strip_comment(line: str) -> str:
    """The line without its shell comment (a ``#`` at the start or after a space, outside quotes)."""
    quote = None
    for position, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1].isspace()):
            return line[:position].rstrip()
    return line.rstrip()


def command_lines(block: Block) -> list[CommandLine]:
    """The logical command lines of a shell block; in a console block only the ``$ `` lines are commands."""
    commands: list[CommandLine] = []
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(block.lines):
        number = block.first_line + offset
        if not pending:
            if block.language == "console":
                if not raw.startswith("$ "):
                    continue
                raw = raw[2:]
            start = number
        line = _strip_comment(raw)
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        text = " ".join(part.strip() for part in pending).strip()
        pending = []
        if text:
            commands.append(CommandLine(start, text))
    return commands


def split_commands(text: str) -> list[str]:
    """The simple commands of a shell line: split on ``&&``, ``||``, ``;``, ``&`` and a spaced ``|``.

    Quotes, ``$(...)`` and synopsis brackets are kept whole; a ``|`` without spaces is an alternative.
    """
    parts, current, quote, depth = [], [], None, 0
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth = max(0, depth - 1)
        elif depth == 0 and (text.startswith("&&", index) or text.startswith("||", index)):
            parts.append("".join(current))
            current = []
            index += 2
            continue
        elif depth == 0 and (char in ";&" or (char == "|" and text[index - 1:index] == " ")):
            parts.append("".join(current))
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _bracket_groups(text: str) -> list[tuple[int, int]]:
    """(start, end) of each outermost ``[...]`` outside quotes."""
    groups, quote, depth, start = [], None, 0, 0
    for index, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "[":
            if depth == 0:
                start = index
            depth += 1
        elif char == "]" and depth:
            depth -= 1
            if depth == 0:
                groups.append((start, index))
    return groups


def _split_alternatives(text: str) -> list[str]:
    """The alternatives inside one bracket group.

    ``[--a A | --b B]`` splits on the spaced ``|``; a group of one word, ``[--reject|--pending]`` or
    ``[@ALIAS|/VERSION]``, on every ``|``; otherwise (``[--metric accuracy|macro_f1]``) the group is one
    alternative and the word-level ``|`` is left to :func:`expand_words`. Nested groups and quotes stay whole.
    """
    separator = " | " if " | " in text else ("|" if not text.strip().count(" ") else None)
    if separator is None:
        return [text.strip()]
    parts, current, quote, depth, index = [], [], None, 0, 0
    while index < len(text):
        char = text[index]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0 and text.startswith(separator, index):
            parts.append("".join(current))
            current = []
            index += len(separator)
            continue
        current.append(char)
        index += 1
    parts.append("".join(current))
    return [part.strip() for part in parts]


def expand_synopsis(text: str) -> list[str]:
    """Concrete variants of a synopsis line: every optional part in, every alternative in at least one variant.

    Alternatives are zipped rather than multiplied (variant i takes alternative i of each group), so
    the number of variants is the longest list of alternatives, not their product.
    """
    groups = _bracket_groups(text)
    if not groups:
        return [text]
    choices = []
    for start, end in groups:
        options = [variant for alternative in _split_alternatives(text[start + 1:end])
                   for variant in expand_synopsis(alternative)]
        choices.append(options)
    variants = []
    for number in range(max(len(options) for options in choices)):
        pieces, previous = [], 0
        for (start, end), options in zip(groups, choices):
            pieces += [text[previous:start], options[number % len(options)]]
            previous = end + 1
        pieces.append(text[previous:])
        variants.append("".join(pieces))
    return variants


def expand_words(words: list[str]) -> list[list[str]]:
    """Word-level synopsis: drop ``...``; ``a|b`` gives each alternative in some variant (zipped)."""
    words = [word.removesuffix("...").removesuffix("…") for word in words]
    words = [word for word in words if word]
    alternatives = [word.split("|") if "|" in word and not word.startswith(("'", '"')) else [word] for word in words]
    count = max((len(options) for options in alternatives), default=1)
    return [[options[number % len(options)] for options in alternatives] for number in range(count)]


def _is_program(word: str) -> bool:
    return Path(word).name == PROGRAM


def _exceptions():
    try:
        from typer._click import exceptions
    except ImportError:  # a typer that uses click itself
        from click import exceptions
    return exceptions


def parse_sagestack(root, args: list[str], *, lenient: bool = False) -> str | None:
    """Parse ``args`` as the real command line does; the problem in one line, or None when it parses.

    A hidden option (an old spelling kept as an alias) is a problem too: the README shows the current name.
    ``lenient`` (for commands quoted inside prose) accepts a missing required value, a placeholder where a
    number goes and a bare group; an unknown command or option is still a problem.
    """
    exceptions = _exceptions()
    try:
        ctx = root.make_context(PROGRAM, list(args), resilient_parsing=False)
        command = root
        ancestors = {opt for param in root.params for opt in param.opts}
        while hasattr(command, "resolve_command"):
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            if not rest:
                return None if lenient else f"'{' '.join(args)}' names a group, not a command"
            name, command, rest = command.resolve_command(ctx, rest)
            ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)
            ancestors |= {opt for param in command.params for opt in param.opts} if hasattr(command, "resolve_command") else set()
        hidden = {opt for param in command.params if getattr(param, "hidden", False) for opt in param.opts} - ancestors
        # Renamed options parse through the context's token_normalize_func, which records the old spellings.
        normalize = (getattr(command, "context_settings", None) or {}).get("token_normalize_func")
        hidden |= set(getattr(normalize, "renamed", {}))
        used = sorted({arg.split("=", 1)[0] for arg in args} & hidden)
        if used:
            return f"uses the hidden old spelling {', '.join(used)} of '{ctx.command_path}'"
    except typer.Exit:  # --help or --version
        return None
    except (exceptions.MissingParameter, exceptions.BadParameter) as exc:
        return None if lenient else exc.format_message()
    except exceptions.BadOptionUsage as exc:  # "--x requires an argument": prose may name an option alone
        return None if lenient and "requires an argument" in exc.format_message() else exc.format_message()
    except exceptions.ClickException as exc:
        return exc.format_message()
    return None


def check_shell_command(root, text: str, makefile_targets: set[str]) -> list[str]:
    """Every problem of one simple command: sagestack's own parse, make targets, curl JSON bodies."""
    problems = []
    for variant in expand_synopsis(text):
        try:
            words = shlex.split(variant)
        except ValueError as exc:
            return [f"not a shell line ({exc})"]
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):
            words = words[1:]  # VAR=value before the program
        if not words:
            continue
        if _is_program(words[0]):
            for concrete in expand_words(words[1:]):
                problem = parse_sagestack(root, concrete)
                if problem and problem not in problems:
                    problems.append(f"{problem}  [as: {PROGRAM} {' '.join(concrete)}]")
        elif words[0] == "make":
            problems += [f"make has no target {target!r}" for target in words[1:]
                         if not target.startswith("-") and "=" not in target and target not in makefile_targets]
        elif words[0] == "curl" and "-d" in words:
            body = words[words.index("-d") + 1]
            try:
                json.loads(body)
            except ValueError as exc:
                problems.append(f"curl's body is not JSON ({exc})")
    return problems


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def root_command():
    from sagestack.cli import app

    return typer.main.get_command(app)


@pytest.fixture(scope="module")
def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def test_every_sagestack_command_of_the_readme_parses(root_command, readme_text):
    targets = makefile_targets()
    problems, checked = [], 0
    for block in readme_blocks(readme_text):
        if block.language not in SHELL_LANGUAGES:
            continue
        for command in command_lines(block):
            for simple in split_commands(command.text):
                found = check_shell_command(root_command, simple, targets)
                checked += 1
                problems += [f"README.md:{command.line}: {simple}\n    {problem}" for problem in found[:1]]
    assert checked > 40, "the README's shell blocks were not found"
    assert not problems, "README commands that the CLI does not accept:\n" + "\n".join(problems)


def test_commands_quoted_in_the_prose_and_tables_name_real_commands_and_options(root_command, readme_text):
    """Inline ``sagestack ...`` code spans: every command and option they name exists (values may be left out)."""
    problems, checked = [], 0
    fence = False
    for number, line in enumerate(readme_text.splitlines(), start=1):
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        for span in re.findall(r"(?<!`)`(sagestack [^`]+)`(?!`)", line):
            if span.split()[1].startswith(("…", "...")):
                continue  # "sagestack … --json": any command
            for variant in expand_synopsis(span.replace("…", "...")):
                try:
                    words = shlex.split(variant)
                except ValueError:
                    words = variant.split()
                for concrete in expand_words(words[1:]):
                    checked += 1
                    problem = parse_sagestack(root_command, concrete, lenient=True)
                    if problem:
                        problems.append(f"README.md:{number}: `{span}`\n    {problem}")
                        break
    assert checked > 30
    assert not problems, "README prose names commands or options the CLI does not have:\n" + "\n".join(problems)


def _defines(module: Path, names: list[str]) -> bool:
    """Whether ``module`` defines ``names[0]`` (and, for a class, ``names[1]`` in its body).

    Read with ``ast``, nothing imported, so the check costs milliseconds even for modules that import
    torch. A name counts as defined by a ``def``/``class``/assignment, an import (followed to its module),
    or a key of a module-level dict (the lazy exports of PEP 562 ``__getattr__`` modules).
    """
    import ast

    tree = ast.parse(module.read_text(encoding="utf-8"))
    scope = tree.body
    for depth, name in enumerate(names):
        found = None
        for node in scope:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                found = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found = node
                elif depth == 0 and isinstance(node.value, ast.Dict) and name in [
                        getattr(key, "value", None) for key in node.value.keys]:
                    return True  # a lazily exported name: its source module says the rest
            elif isinstance(node, ast.ImportFrom) and depth == 0 and node.module:
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        return resolve_dotted(".".join([node.module, alias.name, *names[1:]]))
        if found is None:
            return False
        scope = getattr(found, "body", [])
    return True


def resolve_dotted(dotted: str) -> bool:
    """Whether a dotted name (``sagestack.registry.promote``, ``sagestack.pipelines.runner.run_local``,
    ``sagestack.review.ReviewStore.answer``) names a module or package of the clone, or something one defines."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        if cut >= 2 and ".".join(parts[:2]) in INSTALLED_ADAPTERS:  # sagestack.bento.x -> serving/x.py
            base = (REPO / INSTALLED_ADAPTERS[".".join(parts[:2])]).joinpath(*parts[2:cut])
        else:
            base = (REPO / "src" if parts[0] == "sagestack" else REPO).joinpath(*parts[:cut])
        if cut == len(parts) and base.is_dir():
            return True
        for module in (base.with_suffix(".py"), base / "__init__.py"):
            if module.is_file():
                return cut == len(parts) or _defines(module, parts[cut:])
    return False


def migration_table_names(text: str) -> list[str]:
    """The library column of the SageMaker migration table: dotted names, ``.method`` continuing the last class."""
    section = text.split("## Coming from SageMaker", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for row in section.splitlines():
        if not row.startswith("| ") or row.startswith("| SageMaker"):
            continue
        for name in re.findall(r"`([\w.]+)`", row.rstrip(" |").rsplit(" | ", 1)[-1]):
            if name.startswith(".") and names:
                name = names[-1].rsplit(".", 1)[0] + name
            if "." in name and not name.endswith("/"):
                names.append(name)
    return names


def test_the_library_functions_of_the_migration_table_exist(readme_text):
    names = migration_table_names(readme_text)
    assert len(names) > 25
    assert [name for name in names if not resolve_dotted(name)] == []
    assert not resolve_dotted("sagestack.registry.no_such_function")
    assert not resolve_dotted("sagestack.review.ReviewStore.no_such_method")


def test_every_python_block_of_the_readme_compiles_and_the_cheap_ones_run(readme_text, tmp_path, monkeypatch):
    blocks = [block for block in readme_blocks(readme_text) if block.language in {"python", "py"}]
    assert blocks
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGESTACK_HOME", str(tmp_path / "home"))
    for block in blocks:
        source = "\n" * (block.first_line - 1) + "\n".join(block.lines) + "\n"
        code = compile(source, str(README), "exec")
        if block.compile_only is None:
            exec(code, {"__name__": "readme_example"})


def test_the_readme_names_nothing_outside_the_clone(readme_text):
    outside = [
        f"README.md:{number}: {match.group(0)}"
        for number, line in enumerate(readme_text.splitlines(), start=1)
        for match in re.finditer(r"\.\./shared\S*|(?<![\w.])/(?:opt|work|home|root|Users)/\S*", line)
    ]
    assert outside == []


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_the_readmes_links_lead_somewhere(readme_text):
    """Every ``#anchor`` is a heading of the README and every relative link a file or folder of the clone."""
    in_code = False
    headings, links = set(), []
    for number, line in enumerate(readme_text.splitlines(), start=1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            headings.add(_slug(heading.group(1)))
        links += [(number, target) for target in re.findall(r"\]\(([^)\s]+)\)", line)]
    broken = []
    for number, target in links:
        if target.startswith("#"):
            if target[1:] not in headings:
                broken.append(f"README.md:{number}: no heading for {target}")
        elif not re.match(r"^[a-z]+://", target) and not (REPO / target.split("#", 1)[0]).exists():
            broken.append(f"README.md:{number}: no file {target}")
    assert broken == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("sagestack models list", []),
        ("sagestack models lst", ["No such command"]),
        ("sagestack train baseline --train a.csv --out m --no-such-flag", ["No such option"]),
        ("sagestack up|down --json", []),
        ("sagestack up|dwn --json", ["No such command"]),
        ("sagestack tune fasttext --max-trials 2", ["Missing option '--train'"]),
        ("sagestack models approve REF [--reject|--pending]", []),
        ("sagestack models approve REF [--reject|--pendin]", ["No such option"]),
        ("sagestack pipeline run [--min-accuracy 0.55|high]", ["'--min-accuracy'"]),
        ("sagestack pipeline run [--select-metric accuracy|macro_f1] [--data A | --trainers B]", []),
        ("SAGESTACK_CAPTURE=20 sagestack serve --port 3000", []),
        ("sagestack serve --port 3000 --model", ["requires an argument"]),
        ("make demo", []),
        ("make demos", ["no target"]),
        ("curl -s localhost:3000/predict -d '{\"reviews\": [\"a\"]}'", []),
        ("curl -s localhost:3000/predict -d '{\"reviews\": [\"a\"}'", ["not JSON"]),
    ],
)
def test_the_checker_itself_tells_good_lines_from_bad(root_command, line, expected):
    problems = [p for simple in split_commands(line) for p in check_shell_command(root_command, simple, makefile_targets())]
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected):
        assert fragment in problem


def test_continuations_comments_and_console_prompts_are_read_as_a_person_types_them():
    block = Block("console", 10, ("$ sagestack models list \\", "    --json   # all versions", "1 reviews-sentiment",
                                  "$ make test"), None)
    assert command_lines(block) == [CommandLine(10, "sagestack models list --json"), CommandLine(13, "make test")]
    assert split_commands("export A=1; sagestack up && sagestack up --json | python -c 'x|y' &") == [
        "export A=1", "sagestack up", "sagestack up --json", "python -c 'x|y'"]
    assert expand_synopsis("sagestack x [--a A | --b B] [--c]") == ["sagestack x --a A --c", "sagestack x --b B --c"]
    assert expand_synopsis("sagestack models show NAME[@ALIAS|/VERSION]") == [
        "sagestack models show NAME@ALIAS", "sagestack models show NAME/VERSION"]
