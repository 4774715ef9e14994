"""The console's guard on a real ``sagestack console`` process: loopback by default, a token
beyond it, CSRF on state changes, and one-line errors from the command."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import SAGESTACK, run_sagestack
from sagestack.bento.launch import free_port, stop_process

TOKEN = "s3cret-token-for-tests"


def _environment(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGESTACK_")}
    env["SAGESTACK_HOME"] = str(home)
    return env


def _start(root: Path, *options: str) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    process = subprocess.Popen([str(SAGESTACK), "console", "--port", str(port), *options],
                               env=_environment(root / "home"), cwd=root, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    banner = process.stdout.readline()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.3)
    return process, url, banner


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A console that needs a token (on loopback, so the test can reach it)."""
    process, url, banner = _start(tmp_path_factory.mktemp("guarded"), "--token", TOKEN)
    yield url, banner
    stop_process(process)


@pytest.fixture(scope="module")
def odd_endpoint():
    """Something at the console's --endpoint that answers 200, but not as a sagestack endpoint (a list)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def loopback(tmp_path_factory, odd_endpoint):
    """A console as `sagestack console` starts it by default (loopback, no token), asking an odd endpoint."""
    process, url, _ = _start(tmp_path_factory.mktemp("loopback"), "--endpoint", odd_endpoint)
    yield url
    stop_process(process)


def test_the_printed_url_carries_the_token_and_nothing_opens_without_it(guarded):
    url, banner = guarded
    assert f"{url}/?token={TOKEN}" in banner
    refused = httpx.get(f"{url}/models")
    assert refused.status_code == 401 and "access token" in refused.text
    assert httpx.get(f"{url}/models?token=wrong").status_code == 401
    assert httpx.get(f"{url}/static/console.css").status_code == 401
    # A browser's patience, not httpx's 5 s: the first Models page of a fresh home creates its MLflow
    # database (schema migrations, ~10 s on a busy 2-core machine).
    with httpx.Client(base_url=url, follow_redirects=True, timeout=120) as browser:
        entry = browser.get(f"/data?token={TOKEN}")
        assert entry.status_code == 200 and str(entry.url) == f"{url}/data"  # redirected without the token
        assert browser.get("/models").status_code == 200  # the cookie now carries it
    bearer = httpx.get(f"{url}/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200


def test_state_changes_need_the_pages_csrf_token_and_the_same_origin(guarded):
    url, _ = guarded
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as browser:
        page = browser.get("/endpoint")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        assert browser.post("/endpoint", data={"review": "nice"}).status_code == 403
        assert browser.post("/endpoint", data={"review": "nice", "csrf_token": "forged"}).status_code == 403
        cross = browser.post("/endpoint", data={"review": "nice", "csrf_token": token},
                             headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403 and "another site" in cross.text
        # The right token passes the guard: the page then says no endpoint is running (a 502, not a 500).
        answered = browser.post("/endpoint", data={"review": "nice", "csrf_token": token})
        assert answered.status_code == 502 and "no endpoint answers at" in answered.text
        # Chunked bodies (no Content-Length) are refused before they are read.
        chunked = browser.post("/data", content=iter([b"a" * 10]), headers={"Content-Type": "text/csv"})
        assert chunked.status_code == 411


def test_listening_beyond_loopback_needs_a_token_and_a_busy_port_is_one_line(tmp_path):
    exposed = run_sagestack(tmp_path / "home", "console", "--host", "0.0.0.0", timeout=60)
    assert exposed.returncode == 2
    assert exposed.stderr.strip() == ("error: listening on 0.0.0.0 without a token would expose the console; "
                                      "pass --token (or set SAGESTACK_CONSOLE_TOKEN), or keep the default --host 127.0.0.1")
    for host in ("127.0.0.2", "192.168.1.10"):
        refused = run_sagestack(tmp_path / "home", "console", "--host", host, timeout=60)
        assert refused.returncode == 2 and "without a token would expose the console" in refused.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = run_sagestack(tmp_path / "home", "console", "--port", str(port), timeout=60)
    assert taken.returncode == 2 and "Traceback" not in taken.stderr
    assert taken.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port} (Address already in use); pass another --port"


def test_without_a_token_only_loopback_names_are_answered(loopback):
    """DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends its own name as Host."""
    rebound = httpx.get(f"{loopback}/data", headers={"Host": "evil.example"})
    assert rebound.status_code == 400 and "answers only on this machine" in rebound.text
    assert "set-cookie" not in rebound.headers  # no CSRF token handed out either
    port = loopback.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert httpx.get(f"{loopback}/data", headers={"Host": host}).status_code == 200, host


def test_a_planted_or_null_origin_csrf_token_is_refused(loopback):
    with httpx.Client(base_url=loopback) as browser:
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/endpoint").text).group(1)
        genuine = browser.post("/endpoint", data={"review": "x", "csrf_token": token})
        assert genuine.status_code == 502 and "not as a sagestack endpoint does" in genuine.text
        null = browser.post("/endpoint", data={"review": "x", "csrf_token": token}, headers={"Origin": "null"})
        assert null.status_code == 403
    # A cookie another site planted (cookies ignore ports) is not signed with the console's key.
    planted = httpx.post(f"{loopback}/endpoint", data={"review": "x", "csrf_token": "attacker.0123"},
                         headers={"Cookie": "sagestack_csrf=attacker.0123"})
    assert planted.status_code == 403 and "security token (CSRF)" in planted.text.replace("&#39;", "'")


@pytest.mark.parametrize("path", [
    "/pipelines/files?path=%00", "/pipelines/runs/%00", "/pipelines/files?path=" + "a" * 5000,
    "/jobs/99999999999999999999999", "/api/jobs/99999999999999999999999", "/jobs/0", "/jobs/abc",
    "/jobs/1/files/%00", "/models/%00", "/models/1/explode", "/data/view", "/data/view?name=%00",
    "/bias?data=%00.csv", "/nowhere",
])
def test_odd_requests_get_a_4xx_never_a_500(loopback, path):
    answer = httpx.get(f"{loopback}{path}")
    assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text[-300:])
    if path.startswith("/api/"):
        assert "error" in answer.json()  # the API answers JSON, also for a malformed id


def test_an_unknown_model_action_an_empty_review_an_anonymous_answer_and_no_trainer_are_4xx(loopback):
    """Each with the page's CSRF token (so the guard lets it through): the route itself refuses, in words."""
    with httpx.Client(base_url=loopback) as browser:
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/endpoint").text).group(1)
        for path, form, status, message in (
            ("/models/1/explode", {}, 404, "unknown action 'explode'; use approve, reject or promote"),
            ("/models/1/reject", {}, 400, "no registered model named 'reviews-sentiment'"),  # nothing registered here
            ("/endpoint", {"review": "  \n"}, 400, "type a review first"),
            ("/review/answer", {"loop": "loop-1", "label": "1"}, 400, "say who is reviewing first"),
            ("/pipelines", {"data": "reviews_clarify_lab.csv"}, 400, "pick at least one trainer of: "),
        ):
            answer = browser.post(path, data={"csrf_token": token, **form})
            assert answer.status_code == status, (path, answer.status_code, answer.text[-300:])
            assert message in answer.text.replace("&#39;", "'"), (path, answer.text[-300:])
