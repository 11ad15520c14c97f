"""The Planning pages in headless Debian Chromium: axe-core finds no violation on the form, the job page and the result;
the job page follows the plan with JavaScript and by reloading without it."""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browserfixtures import (
    Watched,
    assert_no_axe_violations,
    browser,  # noqa: F401
    map_frame,
    one_worker_site,
    reload_until,
    watching,
    without_javascript,
    worker_held,
)
from webfixtures import base_store  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(base_store, tmp_path_factory) -> Iterator[tuple[Any, str]]:
    """The app under waitress with one job worker (so a test can hold it busy); yields the app and its base URL."""
    with one_worker_site(base_store, tmp_path_factory.mktemp("browser-planning")) as found:
        yield found


@pytest.fixture
def planner(browser, site) -> Iterator[Watched]:
    with watching(browser, site[1], "pia") as watched:
        yield watched


def _start_plan(page, base: str) -> None:
    """Send the plan form; the browser is then on the job's page."""
    page.goto(base + "/planning/")
    page.fill("input[name=teams]", "3")
    page.fill("input[name=radius]", "3000")
    page.click("#plan-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/planning/jobs/[^/]+$"))


def _plan_frame(page):
    return map_frame(page, r"/planning/jobs/[^/]+/map$")


def test_form_job_and_result_pages_have_no_axe_violations(planner, site) -> None:
    app, base = site
    page = planner.page
    page.goto(base + "/planning/")
    assert "Planning" in page.inner_text("h1")
    assert_no_axe_violations(page)

    with worker_held(app, "ada"):
        _start_plan(page, base)
        assert page.is_visible("#job-progress") and page.is_visible("#cancel-button")
        assert page.is_hidden("#job-reload")  # the script follows the job instead
        assert_no_axe_violations(page)
    # The script sees the plan finish and opens its result.
    page.wait_for_url(re.compile(r".*/planning/jobs/[^/]+/result$"), timeout=60_000)
    rows = page.locator("#plan-sites tbody tr")
    assert rows.count() == 3
    assert page.inner_text("#plan-sites tbody tr:first-child td:nth-child(2)") == "1"  # rank after the id
    frame = _plan_frame(page)
    assert frame.evaluate("() => document.querySelectorAll('.geo-ibm-legend').length") == 1
    assert "Chosen control sites" in frame.evaluate(
        "() => document.querySelector('.leaflet-control-layers-overlays').textContent")
    assert_no_axe_violations(page)
    assert planner.outside_requests() == []
    assert planner.errors == []


def test_cancel_from_the_job_page(planner, site) -> None:
    app, base = site
    page = planner.page
    with worker_held(app, "ada"):
        _start_plan(page, base)
        page.click("#cancel-button")
        page.wait_for_selector("#job-cancelled")
        assert "cancelled" in page.inner_text("#job-state")
        assert page.locator("#cancel-button").count() == 0
        assert_no_axe_violations(page)
    assert planner.errors == []


def test_the_job_page_works_without_javascript(browser, site) -> None:
    app, base = site
    with without_javascript(browser, base, "pia") as page:
        with worker_held(app, "ada"):
            _start_plan(page, base)
            assert page.is_visible("#job-reload")
        reload_until(page, lambda url: url.endswith("/result"), tries=100)
        assert page.url.endswith("/result") and page.locator("#plan-sites tbody tr").count() == 3
