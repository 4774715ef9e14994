"""The README's quickstart, run as written: every command of its block, in order, in a scratch folder.

The `sagestack` lines run through the command's own entry point in this process (``sagestack_main``),
except the two servers, which run as real processes: `sagestack serve ... &` on a free port instead
of 3000 (the README's `curl` body is then sent to it), and `sagestack console` until it answers.
`make setup` and `cd "$(mktemp -d)"` are what the test environment already is.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
from conftest import wait_until

from sagestack.bento.launch import free_port, stop_process

README = Path(__file__).resolve().parents[2] / "README.md"
SAGESTACK = Path(sys.executable).with_name("sagestack")


def quickstart_commands() -> list[list[str]]:
    """The quickstart block's commands as argument lists (continuation lines joined, comments dropped)."""
    section = README.read_text(encoding="utf-8").split("## Quickstart", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands, pending = [], ""
    for line in block.splitlines():
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        words = shlex.split(pending, comments=True)
        pending = ""
        if words:
            commands.append(words)
    return commands


def _wait_ready(process: subprocess.Popen, url: str, timeout: float = 240) -> None:
    def ready() -> bool:
        assert process.poll() is None, "the server exited"
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout, f"{url} did not answer")


def test_the_quickstart_runs_as_written(sagestack_main):
    commands = quickstart_commands()
    assert [c[:2] for c in commands][:3] == [["make", "setup"], ["cd", "$(mktemp -d)"], ["sagestack", "data"]]
    served = None
    env = dict(os.environ)  # with the fixture's SAGESTACK_HOME, as the user's shell has it
    try:
        for words in commands:
            if words[0] in ("make", "cd"):
                continue
            if words[:2] == ["sagestack", "serve"]:
                assert words[-1] == "&"
                port = free_port()
                args = [*words[1:-1]]
                args[args.index("--port") + 1] = str(port)
                served = subprocess.Popen([str(SAGESTACK), *args], cwd=sagestack_main.work, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                _wait_ready(served, f"http://127.0.0.1:{port}/readyz")
                continue
            if words[0] == "curl":
                body = json.loads(words[words.index("-d") + 1])
                answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=body, timeout=30).json()
                assert answer["model"]["alias"] == "champion" and answer["model"]["kind"] == "fasttext"
                assert [p["label"] for p in answer["predictions"]] == [1, -1]  # as the README shows
                continue
            if words[:2] == ["sagestack", "console"]:
                port = free_port()
                console = subprocess.Popen([str(SAGESTACK), "console", "--port", str(port), "--json"],
                                           cwd=sagestack_main.work, env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, text=True)
                try:
                    announced = json.loads(console.stdout.readline())
                    assert httpx.get(announced["url"], timeout=30, follow_redirects=True).status_code == 200
                finally:
                    stop_process(console)
                continue
            assert words[0] == "sagestack", words
            code, _, err = sagestack_main(*words[1:])
            assert code == 0, (words, err)
    finally:
        if served is not None:
            stop_process(served)
    assert (sagestack_main.work / "reports" / "bias" / "report.html").is_file()
    assert (sagestack_main.work / "models" / "fasttext" / "result.json").is_file()
