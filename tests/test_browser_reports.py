"""The quarterly report pages in headless Debian Chromium: axe-core finds no violation on the form, the job page, a
version, the recipients (also with errors) and a sending's outcome; the job page follows the build with JavaScript and
by reloading without it; nothing is requested outside the app."""
from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from test_browser import Watched, assert_no_axe_violations, browser  # noqa: F401
from test_report_mail import Handler, smtp_server
from webfixtures import PASSWORD, base_store  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUARTER = "2026Q2"
SMTP_VARIABLES = ("GEO_IBM_SMTP_HOST", "GEO_IBM_SMTP_PORT", "GEO_IBM_SMTP_TLS", "GEO_IBM_SMTP_FROM",
                  "GEO_IBM_SMTP_USER", "GEO_IBM_SMTP_PASSWORD", "GEO_IBM_REPORTS_DIR")


@pytest.fixture(scope="module")
def site(base_store, tmp_path_factory) -> Iterator[tuple[Any, str]]:
    """The app under waitress with one job worker; yields the app and its base URL."""
    from waitress import create_server

    from webapp import create_app
    from webapp.jobs import runner

    saved = {k: os.environ.pop(k) for k in SMTP_VARIABLES if k in os.environ}
    folder = tmp_path_factory.mktemp("browser-reports")
    store = folder / "geo_ibm.gpkg"
    shutil.copyfile(base_store, store)
    app = create_app({"SECRET_KEY": "browser-test", "STORE_PATH": str(store), "INSTANCE_PATH": str(folder / "instance"),
                      "JOB_WORKERS": 1})
    srv = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{srv.effective_port}"
    finally:
        srv.close()
        thread.join(timeout=5)
        runner(app).close()
        for key in SMTP_VARIABLES:
            os.environ.pop(key, None)
        os.environ.update(saved)


@pytest.fixture
def admin(browser, site) -> Iterator[Watched]:
    watched = Watched(browser, site[1])
    watched.login("ada")
    yield watched
    watched.close()


def _hold_worker(app) -> threading.Event:
    """Keep the only worker busy until the returned gate is set, so a report waits on its job page."""
    from webapp.jobs import runner

    gate, started = threading.Event(), threading.Event()

    def work(progress):
        started.set()
        while not gate.wait(0.05):
            progress(0.0, "busy")

    runner(app).submit("someone", "holding the worker", work)
    assert started.wait(10)
    return gate


def _fill_report(page, base: str, *, region: str = "Nord") -> None:
    page.goto(base + "/reports/quarterly")
    page.select_option("select[name=quarter]", QUARTER)
    page.select_option("select[name=region]", region)
    page.click("#build-button")


def test_form_job_version_recipients_and_sending_have_no_axe_violations(admin, site) -> None:
    app, base = site
    page = admin.page
    page.goto(base + "/reports/")
    page.click("#quarterly-link")
    assert page.inner_text("h1") == "Quarterly report"
    assert_no_axe_violations(page)

    gate = _hold_worker(app)
    try:
        _fill_report(page, base)
        page.wait_for_url(re.compile(r".*/reports/quarterly/jobs/[^/]+$"))
        assert page.is_visible("#job-progress") and page.is_visible("#cancel-button")
        assert page.is_hidden("#job-reload")  # the script follows the job instead
        assert_no_axe_violations(page)
    finally:
        gate.set()
    # The script sees the report archived and opens its version.
    page.wait_for_url(re.compile(rf".*/reports/quarterly/{QUARTER}/Nord/en/v\d+$"), timeout=120_000)
    assert "report.pdf" in page.inner_text("#version-files")
    assert page.inner_text("#send-recipients") == "No recipient is set for this area."
    assert_no_axe_violations(page)
    version_url = page.url

    page.goto(base + "/reports/recipients")
    assert_no_axe_violations(page)
    page.fill("#recipients-Nord", "nord@police.example.lu\nnot an address")
    admin.expect_errors = True
    before = len(admin.errors)
    page.click("#save-recipients")
    page.wait_for_selector("#recipient-problems")
    assert "not an address" in page.inner_text("#recipient-problems")
    assert_no_axe_violations(page)
    admin.expect_errors = False
    # The refused form is a 400, which Chromium reports on the console: that one is expected.
    assert [e for e in admin.errors[before:] if "status of 400" not in e] == []
    del admin.errors[before:]
    page.fill("#recipients-Nord", "nord@police.example.lu")
    page.click("#save-recipients")
    page.wait_for_selector("p.flash")

    handler = Handler()
    with smtp_server(handler) as port:
        os.environ.update({"GEO_IBM_SMTP_HOST": "127.0.0.1", "GEO_IBM_SMTP_PORT": str(port), "GEO_IBM_SMTP_TLS": "none",
                           "GEO_IBM_SMTP_FROM": "reports@police.example.lu"})
        page.goto(version_url)
        assert "1 recipient" in page.inner_text("#send-recipients")
        page.click("#send-button")
        page.wait_for_selector("#sent")
    assert "was sent to 1 of 1 recipients" in page.inner_text("#sent")
    assert [m["to"] for m in handler.messages] == [["nord@police.example.lu"]]
    assert_no_axe_violations(page)

    page.goto(base + "/reports/quarterly")
    assert page.locator("#versions tbody tr").count() >= 1
    assert_no_axe_violations(page)
    assert admin.outside_requests() == []
    assert admin.errors == []


def test_viewer_page_and_protected_version(browser, site) -> None:
    app, base = site
    viewer = Watched(browser, base)
    try:
        viewer.login("vic")
        page = viewer.page
        page.goto(base + "/reports/quarterly")
        assert page.is_visible("#edition-note") and page.locator("select[name=edition]").count() == 0
        assert_no_axe_violations(page)
        _fill_report(page, base, region="national")
        page.wait_for_url(re.compile(rf".*/reports/quarterly/{QUARTER}/national/en/v\d+$"), timeout=120_000)
        assert "Aggregates only" in page.inner_text("#manifest") and page.locator("#send-form").count() == 0
        assert_no_axe_violations(page)
        assert viewer.outside_requests() == [] and viewer.errors == []
    finally:
        viewer.close()


def test_cancel_from_the_job_page(admin, site) -> None:
    app, base = site
    page = admin.page
    gate = _hold_worker(app)
    try:
        _fill_report(page, base, region="Capitale")
        page.wait_for_url(re.compile(r".*/reports/quarterly/jobs/[^/]+$"))
        page.click("#cancel-button")
        page.wait_for_selector("#job-cancelled")
        assert "cancelled" in page.inner_text("#job-state")
        assert_no_axe_violations(page)
    finally:
        gate.set()
    assert admin.errors == []


def test_the_job_page_works_without_javascript(browser, site) -> None:
    app, base = site
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(base + "/login")
        page.fill("input[name=username]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/overview$"))
        gate = _hold_worker(app)
        try:
            _fill_report(page, base, region="Sud-Ouest")
            page.wait_for_url(re.compile(r".*/reports/quarterly/jobs/[^/]+$"))
            assert page.is_visible("#job-reload")
        finally:
            gate.set()
        for _ in range(300):
            page.click("#job-reload")
            page.wait_for_load_state()
            if "/jobs/" not in page.url:
                break
            page.wait_for_timeout(200)
        assert re.search(rf"/reports/quarterly/{QUARTER}/Sud-Ouest/en/v\d+$", page.url)
        assert "report.pdf" in page.inner_text("#version-files")
    finally:
        context.close()
