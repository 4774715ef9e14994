"""The console end to end: a real ``sagestack console`` on loopback, driven by headless Chromium.

One console (and its home) serves the whole module. What several tests need is made once by a
module fixture (the Clarify lab file uploaded, a finished bias job, a pipeline run and its model),
so each test passes alone and in any order: upload and profile the Clarify lab file, run a bias
job, make mistakes, run a pipeline, approve and promote its model, ask the endpoint, run AutoML,
and restart the console in the middle of a job. Each test saves a screenshot of its last page in
its own output folder (checked to be a rendered page), and no test may see the console answer 5xx.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from contextlib import closing
from pathlib import Path

import httpx
import pandas as pd
import pytest

from conftest import run_sagestack, wait_until
from console_server import Console, browser, check_screenshot  # noqa: F401 (browser is a fixture)
from sagestack.bento.launch import free_port, serve_command, serve_env, stop_process

import playwright.sync_api as playwright_api  # in the lock: missing, the module fails instead of skipping

expect = playwright_api.expect
CLARIFY_ROWS = 486


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    (root / "home").mkdir()
    server = Console(root / "home", free_port(), free_port())
    server.start()
    yield server
    server.stop()


def _new_page(browser, console):
    """A browser page of its own on the console, and the list its 5xx answers are collected in."""
    context = browser.new_context(base_url=console.url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    server_errors = []
    page.on("response", lambda r: server_errors.append(f"{r.status} {r.request.method} {r.url}")
            if r.status >= 500 and not (r.status == 502 and r.url.endswith("/endpoint")) else None)
    return context, page, server_errors


@pytest.fixture
def page(browser, console, tmp_path):
    """A fresh browser page on the console; saves a screenshot and checks that nothing answered 5xx."""
    context, page, server_errors = _new_page(browser, console)
    yield page
    check_screenshot(page, tmp_path / "screenshot.png")
    context.close()
    assert not server_errors, server_errors


def signed_in(console) -> tuple[httpx.Client, str]:
    """An HTTP client holding the console's session cookie, and its CSRF token (as a browser holds them)."""
    client = httpx.Client(base_url=console.url, timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/data").text).group(1)
    return client, token


def finished(console, job_id: str, timeout: float) -> dict:
    """The job's API record once it is no longer running."""
    def done():
        job = httpx.get(f"{console.url}/api/jobs/{job_id}", timeout=10).json()
        return job if job["status"] != "running" else None

    return wait_until(done, timeout, f"job {job_id} still running")


def job_rows(page) -> int:
    page.goto("/jobs")
    return page.locator("table.jobs tbody tr").count()


def version_kinds(console) -> dict[str, str]:
    """``{version: kind}`` of every registered version, as the CLI lists them."""
    listed = run_sagestack(console.home, "models", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {v["version"]: v["kind"] for model in json.loads(listed.stdout)["models"] for v in model["versions"]}


@pytest.fixture(scope="module")
def clarify_lab(console, shared_data) -> str:
    """The Clarify lab's CSV, uploaded to the console as the Data page's form sends it."""
    client, token = signed_in(console)
    with closing(client), (shared_data / "reviews_clarify_lab.csv").open("rb") as file:
        answer = client.post("/data", data={"csrf_token": token},
                             files={"file": ("reviews_clarify_lab.csv", file, "text/csv")})
    assert answer.status_code == 303, answer.text[-2000:]
    return "reviews_clarify_lab.csv"


@pytest.fixture(scope="module")
def bias_job(console, clarify_lab) -> str:
    """A bias job on the Clarify lab file, finished (its id)."""
    client, token = signed_in(console)
    with closing(client):
        answer = client.post("/bias", data={"csrf_token": token, "data": clarify_lab, "label": "sentiment",
                                            "positive": "1", "facet": "product_category"})
    assert answer.status_code == 303, answer.text[-2000:]
    job_id = answer.headers["location"].rsplit("/", 1)[1]
    job = finished(console, job_id, 120)
    assert job["status"] == "succeeded", job
    return job_id


@pytest.fixture(scope="module")
def pipeline(browser, console, clarify_lab) -> dict:
    """A fastText pipeline run started from the Pipelines page's form, finished: its job page's URL
    and the version it registered."""
    before = version_kinds(console)
    context, page, server_errors = _new_page(browser, console)
    page.goto("/pipelines")
    for trainer in ("baseline", "automl", "bert"):
        page.locator(f"input[name=trainers][value={trainer}]").uncheck()
    page.locator("input[name=trainers][value=fasttext]").check()
    page.select_option("select[name=data]", clarify_lab)
    page.fill("input[name=min_accuracy]", "0")
    page.fill("input[name=epochs]", "5")
    page.get_by_role("button", name="Start run").click()
    wait_for_job(page, "succeeded", 400)
    job_url = page.url
    context.close()
    assert not server_errors, server_errors
    [(version, kind)] = set(version_kinds(console).items()) - set(before.items())
    assert kind == "fasttext"
    return {"job_url": job_url, "version": version}


def _processes_in(folder: Path) -> list[int]:
    """The processes whose working directory is ``folder`` (a job's command and its children)."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            if Path(process.cwd()) == folder:
                found.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return found


def csrf(page) -> str:
    return page.locator("input[name=csrf_token]").first.get_attribute("value")


def wait_for_job(page, status: str, timeout_s: float) -> None:
    """On a job's page (which reloads itself while the job runs), wait for the job's final status."""
    expect(page.locator("#job-status")).to_have_text(status, timeout=timeout_s * 1000)


def test_upload_profile_and_bias_report(page, console, shared_data):
    page.goto("/data")
    page.set_input_files("input[name=file]", str(shared_data / "reviews_clarify_lab.csv"))
    page.get_by_role("button", name="Upload").click()
    expect(page).to_have_url(f"{console.url}/data/view?name=reviews_clarify_lab.csv")
    assert page.locator(".lede strong").first.inner_text() == str(CLARIFY_ROWS)
    columns = page.locator("#columns").inner_text()
    assert "review_body\ttext" in columns and "product_category\tcategorical" in columns
    assert page.locator("#label-distribution tbody tr").count() == 3  # sentiment -1/0/1
    assert page.get_by_role("heading", name="review_body (words)").is_visible()

    page.get_by_role("link", name="detect bias").click()
    page.select_option("#label", "sentiment")
    page.select_option("#positive", "1")
    page.select_option("#facet", "product_category")
    page.get_by_role("button", name="Run").click()
    wait_for_job(page, "succeeded", 90)
    metrics = page.locator("#bias-metrics").inner_text()
    assert "CI = 0.888889" in metrics
    report = page.frame_locator("iframe.report")
    expect(report.locator("body")).to_contain_text("Class Imbalance")
    page.goto("/bias")
    expect(page.locator("table.jobs")).to_contain_text("succeeded")


def test_bad_input_gets_a_clear_message_and_never_a_500(page, console, bias_job, tmp_path):
    jobs_before = job_rows(page)
    page.goto("/data")
    not_text = tmp_path / "photo.csv"
    not_text.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00")
    page.set_input_files("input[name=file]", str(not_text))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".error")).to_contain_text("'photo.csv' is not valid UTF-8")
    notes = tmp_path / "notes.txt"
    notes.write_text("a,b\n1,2\n")
    page.set_input_files("input[name=file]", str(notes))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".error")).to_contain_text("is not a CSV file name")
    for lines in (1_500_000, 2_000_000):  # 6 MB (read, then refused) and 8 MB (refused by its Content-Length)
        big = tmp_path / "big.csv"
        big.write_text("a,b\n" + "1,2\n" * lines)
        page.goto("/data")
        page.set_input_files("input[name=file]", str(big))
        with page.expect_navigation() as navigation:
            page.get_by_role("button", name="Upload").click()
        assert navigation.value.status == 413
        expect(page.locator("body")).to_contain_text("larger than the upload limit of 5 MB")
    page.goto("/data")
    assert "big.csv" not in page.locator("table").first.inner_text()

    # A facet with one value: the page says so before any job starts.
    one = tmp_path / "one_category.csv"
    pd.DataFrame({"sentiment": [1, 0, -1, 1], "review_body": ["a", "b", "c", "d"],
                  "product_category": ["Dresses"] * 4}).to_csv(one, index=False)
    page.set_input_files("input[name=file]", str(one))
    page.get_by_role("button", name="Upload").click()
    page.goto("/bias?data=one_category.csv")
    page.select_option("#facet", "product_category")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Run").click()
    assert navigation.value.status == 400
    expect(page.locator(".error")).to_contain_text("facet 'product_category' has a single value (Dresses)")

    # A CSV without the chosen column, sent as an API call: 400 with the reason.
    page.goto("/bias?data=one_category.csv")
    answer = page.request.post("/bias", form={"csrf_token": csrf(page), "data": "one_category.csv",
                                              "label": "sentiment", "positive": "1", "facet": "color"})
    assert answer.status == 400 and "facet column 'color' is not in the data" in html.unescape(answer.text())

    # Paths that try to leave the data directory, a job's folder or the pipelines' folder.
    for path in ("/data/view?name=../../mlflow.db", "/data/view?name=..%2F..%2Fetc%2Fpasswd.csv",
                 "/bias?data=../console.log"):
        response = page.goto(path)
        assert response.status == 400, path
        expect(page.locator(".error")).to_contain_text("not a dataset name")
    for path in (f"/jobs/{bias_job}/files/..%2Fjobs.db", "/pipelines/files?path=../console/jobs/jobs.db",
                 "/pipelines/files?path=/etc/passwd"):
        assert (console.home / "console" / "jobs" / "jobs.db").is_file()  # they exist: refused, not absent
        assert page.goto(path).status == 404, path
        expect(page.locator(".error")).to_contain_text("here")

    # A state change without the CSRF token.
    answer = page.request.post("/bias", form={"data": "reviews_clarify_lab.csv", "label": "sentiment",
                                              "positive": "1", "facet": "product_category"})
    assert answer.status == 403 and "security token (CSRF)" in html.unescape(answer.text())
    assert job_rows(page) == jobs_before  # none of the refused requests started a job


def test_pipeline_run_from_the_console(page, console, pipeline):
    page.goto(pipeline["job_url"])
    expect(page.locator("#job-status")).to_have_text("succeeded")
    page.locator("a[href^='/pipelines/runs/']").first.click()
    expect(page.locator("#steps")).to_contain_text("train-fasttext")  # waits for the run's page to load
    assert page.locator("#steps tbody tr").count() >= 5
    expect(page.locator("#steps")).not_to_contain_text("FAILED")
    page.locator("#steps a").first.click()  # an artifact of the first step
    assert "Not here" not in page.content()
    page.goto("/pipelines")
    expect(page.locator("#runs tbody tr").first).to_contain_text("SUCCESS")
    expect(page.locator("#runs .step").first).to_be_visible()


def test_approve_and_promote_move_the_alias_as_the_cli_does(page, console, pipeline):
    version = pipeline["version"]
    page.goto("/models")
    row = page.locator(f"#version-{version}")
    expect(row).to_contain_text("PendingManualApproval")
    expect(page.locator("#alias-champion")).to_have_count(0)
    with page.expect_navigation() as navigation:
        row.get_by_role("button", name="Promote to champion").click()
    assert navigation.value.status == 400
    expect(page.locator(".error")).to_contain_text("approve it first")

    page.goto("/models")
    page.locator(f"#version-{version}").get_by_role("button", name="Approve").click()
    expect(page.locator(".notice")).to_have_text(f"version {version} is now Approved")
    expect(page.locator(f"#version-{version}")).to_contain_text("Approved")
    expect(page.locator("#alias-champion")).to_have_count(0)  # approving does not move the alias
    page.locator(f"#version-{version}").get_by_role("button", name="Promote to champion").click()
    expect(page.locator(".notice")).to_have_text(f"@champion now points at version {version}")
    expect(page.locator("#alias-champion")).to_have_text(version)
    expect(page.locator(f"#version-{version} .aliases")).to_contain_text("@champion")

    listed = run_sagestack(console.home, "models", "list", "--json")
    model = json.loads(listed.stdout)["models"][0]
    assert model["aliases"]["champion"] == version
    assert {v["version"]: v["approval_status"] for v in model["versions"]}[version] == "Approved"

    page.locator(f"#version-{version} a").first.click()
    expect(page.locator("#lineage")).to_contain_text("reviews_clarify_lab.csv")


def test_endpoint_page_asks_the_running_endpoint(page, console, pipeline):
    page.goto("/endpoint")
    page.fill("textarea[name=review]", "I love this dress, it fits perfectly")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator(".error")).to_contain_text(f"no endpoint answers at http://127.0.0.1:{console.endpoint_port}")

    from sagestack.config import load_settings

    settings = load_settings(cwd=console.home.parent, environ={}, home=console.home)
    log = (console.home.parent / "endpoint.log").open("w")
    server = subprocess.Popen(serve_command("127.0.0.1", console.endpoint_port),
                              env=serve_env(settings, f"reviews-sentiment/{pipeline['version']}"), stdout=log, stderr=log)

    def ready() -> bool:
        assert server.poll() is None, "the endpoint exited"
        try:
            return httpx.get(f"http://127.0.0.1:{console.endpoint_port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, 180, "the endpoint did not start", interval=0.5)
        page.get_by_role("button", name="Predict").click()
        label = page.locator("#predicted-label").inner_text()
        assert label in ("-1", "0", "1")
        assert page.locator("#prediction tbody tr").count() == 3
        expect(page.locator("#prediction")).to_contain_text(f"reviews-sentiment version {pipeline['version']} (fasttext)")
    finally:
        stop_process(server)
        log.close()


def test_automl_from_the_console(page, console, clarify_lab):
    before = version_kinds(console)
    page.goto(f"/automl?data={clarify_lab}")
    page.select_option("select[name=target]", "sentiment")
    page.select_option("select[name=text_column]", "review_body")
    page.fill("input[name=time_limit]", "10")
    page.fill("input[name=max_candidates]", "1")
    page.get_by_role("button", name="Run").click()
    wait_for_job(page, "succeeded", 240)
    expect(page.locator("#leaderboard tbody tr")).to_have_count(1)
    expect(page.frame_locator("iframe.report").locator("body")).to_contain_text("review_body")
    [(version, kind)] = set(version_kinds(console).items()) - set(before.items())
    assert kind == "autogluon"
    page.goto("/models")
    expect(page.locator(f"#version-{version}")).to_contain_text("autogluon")


def test_second_job_is_refused_and_a_restart_marks_the_running_job_failed(page, console, clarify_lab, bias_job):
    jobs_before = job_rows(page)
    page.goto("/automl?data=reviews_balanced.csv")
    page.fill("input[name=time_limit]", "600")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#job-status")).to_have_text("running")
    job_id = page.url.rsplit("/", 1)[1]

    page.goto(f"/bias?data={clarify_lab}")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Run").click()
    assert navigation.value.status == 409
    expect(page.locator(".error")).to_contain_text(f"job {job_id} (automl) is still running")

    runner = json.loads(httpx.get(f"{console.url}/api/jobs/{job_id}").text)
    assert runner["status"] == "running"
    folder = (console.home / "console" / "jobs" / job_id).resolve()
    assert _processes_in(folder), "the AutoML job should be running in its folder"
    console.kill()
    console.start()
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("failed")
    expect(page.locator("#job-error")).to_contain_text("the console that started it stopped while it ran")
    wait_until(lambda: not _processes_in(folder), 20, "the stopped job left processes behind", interval=0.5)
    page.goto(f"/jobs/{bias_job}")  # a bias job finished before the restart: intact
    expect(page.locator("#job-status")).to_have_text("succeeded")
    assert "CI = 0.888889" in page.locator("#bias-metrics").inner_text()
    page.goto("/jobs")
    expect(page.locator("table.jobs tbody tr")).to_have_count(jobs_before + 1)  # and the stopped AutoML


def test_reject_from_the_models_page_and_an_unknown_action_changes_nothing_else(page, console, pipeline):
    from sagestack.config import load_settings
    from sagestack.registry import promote, resolve_ref, set_approval

    version = pipeline["version"]
    settings = load_settings(cwd=console.home.parent, environ={}, home=console.home)
    ref = f"reviews-sentiment/{version}"
    before = resolve_ref(settings, ref)
    try:
        page.goto("/models")
        page.locator(f"#version-{version}").get_by_role("button", name="Reject").click()
        expect(page.locator(".notice")).to_have_text(f"version {version} is now Rejected")
        expect(page.locator(f"#version-{version}")).to_contain_text("Rejected")
        expect(page.locator(f"#version-{version}").get_by_role("button", name="Reject")).to_have_count(0)
        assert resolve_ref(settings, ref).status == "Rejected"  # in the registry the CLI reads
        answer = page.request.post(f"/models/{version}/retire", form={"csrf_token": csrf(page)}, max_redirects=0)
        assert answer.status == 404
        assert "unknown action 'retire'; use approve, reject or promote" in html.unescape(answer.text())
        assert resolve_ref(settings, ref).status == "Rejected"
    finally:  # the version goes back as it was, for the module's other tests
        set_approval(settings, ref, before.status)
        for alias in before.aliases:
            promote(settings, ref, alias)
