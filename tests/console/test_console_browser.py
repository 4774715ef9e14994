"""The console end to end: a real ``sagestack console`` on loopback, driven by headless Chromium.

One console (and its home) serves the whole module, and the tests follow a user's day in order:
upload and profile the Clarify lab file, run a bias job, make mistakes, run a pipeline, approve and
promote its model, ask the endpoint, run AutoML, and finally restart the console in the middle of
a job. Each test saves a screenshot of its last page in its own output folder, and no test may see
the console answer 5xx.
"""

from __future__ import annotations

import html
import json
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from conftest import run_sagestack
from console_server import Console, browser  # noqa: F401 (browser is a fixture)
from serving.launch import free_port, serve_command, serve_env, stop_process

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


@pytest.fixture
def page(browser, console, tmp_path):
    """A fresh browser page on the console; saves a screenshot and checks that nothing answered 5xx."""
    context = browser.new_context(base_url=console.url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    server_errors = []
    page.on("response", lambda r: server_errors.append(f"{r.status} {r.request.method} {r.url}")
            if r.status >= 500 and not (r.status == 502 and r.url.endswith("/endpoint")) else None)
    yield page
    page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
    context.close()
    assert (tmp_path / "screenshot.png").stat().st_size > 0
    assert not server_errors, server_errors


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


def test_bad_input_gets_a_clear_message_and_never_a_500(page, console, tmp_path):
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
    for path in ("/jobs/1/files/..%2Fjobs.db", "/pipelines/files?path=../console/jobs/jobs.db",
                 "/pipelines/files?path=/etc/passwd"):
        assert (console.home / "console" / "jobs" / "jobs.db").is_file()  # they exist: refused, not absent
        assert page.goto(path).status == 404, path
        expect(page.locator(".error")).to_contain_text("here")

    # A state change without the CSRF token.
    answer = page.request.post("/bias", form={"data": "reviews_clarify_lab.csv", "label": "sentiment",
                                              "positive": "1", "facet": "product_category"})
    assert answer.status == 403 and "security token (CSRF)" in html.unescape(answer.text())
    page.goto("/jobs")
    assert page.locator("table.jobs tbody tr").count() == 1  # still only the first bias job


def test_pipeline_run_from_the_console(page, console):
    page.goto("/pipelines")
    for trainer in ("baseline", "automl", "bert"):
        page.locator(f"input[name=trainers][value={trainer}]").uncheck()
    page.locator("input[name=trainers][value=fasttext]").check()
    page.select_option("select[name=data]", "reviews_clarify_lab.csv")
    page.fill("input[name=min_accuracy]", "0")
    page.fill("input[name=epochs]", "5")
    page.get_by_role("button", name="Start run").click()
    wait_for_job(page, "succeeded", 400)
    page.locator("a[href^='/pipelines/runs/']").first.click()
    steps = page.locator("#steps tbody tr")
    assert steps.count() >= 5
    expect(page.locator("#steps")).to_contain_text("train-fasttext")
    expect(page.locator("#steps")).not_to_contain_text("FAILED")
    page.locator("#steps a").first.click()  # an artifact of the first step
    assert "Not here" not in page.content()
    page.goto("/pipelines")
    expect(page.locator("#runs tbody tr").first).to_contain_text("SUCCESS")
    expect(page.locator("#runs .step").first).to_be_visible()


def test_approve_and_promote_move_the_alias_as_the_cli_does(page, console):
    page.goto("/models")
    row = page.locator("#version-1")
    expect(row).to_contain_text("PendingManualApproval")
    expect(page.locator("#alias-champion")).to_have_count(0)
    with page.expect_navigation() as navigation:
        row.get_by_role("button", name="Promote to champion").click()
    assert navigation.value.status == 400
    expect(page.locator(".error")).to_contain_text("approve it first")

    page.goto("/models")
    page.locator("#version-1").get_by_role("button", name="Approve").click()
    expect(page.locator(".notice")).to_have_text("version 1 is now Approved")
    expect(page.locator("#version-1")).to_contain_text("Approved")
    expect(page.locator("#alias-champion")).to_have_count(0)  # approving does not move the alias
    page.locator("#version-1").get_by_role("button", name="Promote to champion").click()
    expect(page.locator(".notice")).to_have_text("@champion now points at version 1")
    expect(page.locator("#alias-champion")).to_have_text("1")
    expect(page.locator("#version-1 .aliases")).to_contain_text("@champion")

    listed = run_sagestack(console.home, "models", "list", "--json")
    model = json.loads(listed.stdout)["models"][0]
    assert model["aliases"]["champion"] == "1"
    assert model["versions"][0]["approval_status"] == "Approved"

    page.locator("#version-1 a").first.click()
    expect(page.locator("#lineage")).to_contain_text("reviews_clarify_lab.csv")


def test_endpoint_page_asks_the_running_endpoint(page, console):
    page.goto("/endpoint")
    page.fill("textarea[name=review]", "I love this dress, it fits perfectly")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator(".error")).to_contain_text(f"no endpoint answers at http://127.0.0.1:{console.endpoint_port}")

    from sagestack.config import load_settings

    settings = load_settings(cwd=console.home.parent, environ={}, home=console.home)
    log = (console.home.parent / "endpoint.log").open("w")
    server = subprocess.Popen(serve_command("127.0.0.1", console.endpoint_port),
                              env=serve_env(settings, "reviews-sentiment@champion"), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{console.endpoint_port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the endpoint did not start"
            time.sleep(0.5)
        page.get_by_role("button", name="Predict").click()
        label = page.locator("#predicted-label").inner_text()
        assert label in ("-1", "0", "1")
        assert page.locator("#prediction tbody tr").count() == 3
        expect(page.locator("#prediction")).to_contain_text("reviews-sentiment version 1 (fasttext)")
    finally:
        stop_process(server)
        log.close()


def test_automl_from_the_console(page, console):
    page.goto("/automl?data=reviews_clarify_lab.csv")
    page.select_option("select[name=target]", "sentiment")
    page.select_option("select[name=text_column]", "review_body")
    page.fill("input[name=time_limit]", "10")
    page.fill("input[name=max_candidates]", "1")
    page.get_by_role("button", name="Run").click()
    wait_for_job(page, "succeeded", 240)
    expect(page.locator("#leaderboard tbody tr")).to_have_count(1)
    expect(page.frame_locator("iframe.report").locator("body")).to_contain_text("review_body")
    page.goto("/models")
    expect(page.locator("#version-2")).to_contain_text("autogluon")


def test_second_job_is_refused_and_a_restart_marks_the_running_job_failed(page, console):
    page.goto("/automl?data=reviews_balanced.csv")
    page.fill("input[name=time_limit]", "600")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#job-status")).to_have_text("running")
    job_id = page.url.rsplit("/", 1)[1]

    page.goto("/bias?data=reviews_clarify_lab.csv")
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
    deadline = time.monotonic() + 20
    while _processes_in(folder) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_in(folder), "the stopped job left processes behind"
    page.goto("/jobs/1")  # the first bias job, finished before the restart: intact
    expect(page.locator("#job-status")).to_have_text("succeeded")
    assert "CI = 0.888889" in page.locator("#bias-metrics").inner_text()
    page.goto("/jobs")
    expect(page.locator("table.jobs tbody tr")).to_have_count(4)  # bias, pipeline, AutoML, the stopped AutoML
