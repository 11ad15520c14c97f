"""The quarterly report pages in headless Debian Chromium: axe-core finds no violation on the form, the job page, a
version, the recipients (also with errors) and a sending's outcome; the job page follows the build with JavaScript and
by reloading without it; nothing is requested outside the app."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from browserfixtures import (
    Watched,
    assert_no_axe_violations,
    browser,  # noqa: F401
    one_worker_site,
    reload_until,
    watching,
    without_javascript,
    worker_held,
)
from mailfixtures import Handler, smtp_server
from webfixtures import base_store  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUARTER = "2026Q2"
SMTP_VARIABLES = ("GEO_IBM_SMTP_HOST", "GEO_IBM_SMTP_PORT", "GEO_IBM_SMTP_TLS", "GEO_IBM_SMTP_FROM",
                  "GEO_IBM_SMTP_USER", "GEO_IBM_SMTP_PASSWORD", "GEO_IBM_REPORTS_DIR")


@pytest.fixture(scope="module")
def site(base_store, tmp_path_factory) -> Iterator[tuple[Any, str]]:
    """The app under waitress with one job worker, no mail settings from outside; yields the app and its base URL."""
    saved = {k: os.environ.pop(k) for k in SMTP_VARIABLES if k in os.environ}
    try:
        with one_worker_site(base_store, tmp_path_factory.mktemp("browser-reports")) as found:
            yield found
    finally:
        for key in SMTP_VARIABLES:
            os.environ.pop(key, None)
        os.environ.update(saved)


@pytest.fixture
def admin(browser, site) -> Iterator[Watched]:
    with watching(browser, site[1], "ada") as watched:
        yield watched


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

    with worker_held(app, "someone"):
        _fill_report(page, base)
        page.wait_for_url(re.compile(r".*/reports/quarterly/jobs/[^/]+$"))
        assert page.is_visible("#job-progress") and page.is_visible("#cancel-button")
        assert page.is_hidden("#job-reload")  # the script follows the job instead
        assert_no_axe_violations(page)
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
    with watching(browser, base, "vic") as viewer:
        page = viewer.page
        page.goto(base + "/reports/quarterly")
        assert page.is_visible("#edition-note") and page.locator("select[name=edition]").count() == 0
        assert_no_axe_violations(page)
        _fill_report(page, base, region="national")
        page.wait_for_url(re.compile(rf".*/reports/quarterly/{QUARTER}/national/en/v\d+$"), timeout=120_000)
        assert "Aggregates only" in page.inner_text("#manifest") and page.locator("#send-form").count() == 0
        assert_no_axe_violations(page)
        assert viewer.outside_requests() == [] and viewer.errors == []


def test_cancel_from_the_job_page(admin, site) -> None:
    app, base = site
    page = admin.page
    with worker_held(app, "someone"):
        _fill_report(page, base, region="Capitale")
        page.wait_for_url(re.compile(r".*/reports/quarterly/jobs/[^/]+$"))
        page.click("#cancel-button")
        page.wait_for_selector("#job-cancelled")
        assert "cancelled" in page.inner_text("#job-state")
        assert_no_axe_violations(page)
    assert admin.errors == []


def test_the_job_page_works_without_javascript(browser, site) -> None:
    app, base = site
    with without_javascript(browser, base, "ana") as page:
        with worker_held(app, "someone"):
            _fill_report(page, base, region="Sud-Ouest")
            page.wait_for_url(re.compile(r".*/reports/quarterly/jobs/[^/]+$"))
            assert page.is_visible("#job-reload")
        reload_until(page, lambda url: "/jobs/" not in url, tries=300)
        assert re.search(rf"/reports/quarterly/{QUARTER}/Sud-Ouest/en/v\d+$", page.url)
        assert "report.pdf" in page.inner_text("#version-files")
