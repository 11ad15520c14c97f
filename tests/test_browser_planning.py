"""The Planning pages in headless Debian Chromium: axe-core finds no violation on the form, the job page and the result;
the job page follows the plan with JavaScript and by reloading without it."""
from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from test_browser import Watched, assert_no_axe_violations, browser  # noqa: F401
from webfixtures import PASSWORD, base_store  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(base_store, tmp_path_factory) -> Iterator[tuple[Any, str]]:
    """The app under waitress with one job worker (so a test can hold it busy); yields the app and its base URL."""
    from waitress import create_server

    from webapp import create_app
    from webapp.jobs import runner

    folder = tmp_path_factory.mktemp("browser-planning")
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


@pytest.fixture
def planner(browser, site) -> Iterator[Watched]:
    watched = Watched(browser, site[1])
    watched.login("pia")
    yield watched
    watched.close()


def _hold_worker(app) -> threading.Event:
    """Keep the only worker busy until the returned gate is set, so a plan waits on its job page."""
    from webapp.jobs import runner

    gate, started = threading.Event(), threading.Event()

    def work(progress):
        started.set()
        while not gate.wait(0.05):
            progress(0.0, "busy")

    runner(app).submit("ada", "holding the worker", work)
    assert started.wait(10)
    return gate


def _fill_plan(page, base: str) -> None:
    page.goto(base + "/planning/")
    page.fill("input[name=teams]", "3")
    page.fill("input[name=radius]", "3000")
    page.click("#plan-form button[type=submit]")


def _plan_frame(page):
    page.wait_for_selector("iframe.map")
    for _ in range(100):
        for frame in page.frames:
            if re.search(r"/planning/jobs/[^/]+/map$", frame.url):
                frame.wait_for_function("() => window.L !== undefined && document.querySelector('.leaflet-container')",
                                        timeout=30_000)
                return frame
        page.wait_for_timeout(100)
    raise AssertionError(f"no plan map frame in {[f.url for f in page.frames]}")


def test_form_job_and_result_pages_have_no_axe_violations(planner, site) -> None:
    app, base = site
    page = planner.page
    page.goto(base + "/planning/")
    assert "Planning" in page.inner_text("h1")
    assert_no_axe_violations(page)

    gate = _hold_worker(app)
    try:
        _fill_plan(page, base)
        page.wait_for_url(re.compile(r".*/planning/jobs/[^/]+$"))
        assert page.is_visible("#job-progress") and page.is_visible("#cancel-button")
        assert page.is_hidden("#job-reload")  # the script follows the job instead
        assert_no_axe_violations(page)
    finally:
        gate.set()
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
    gate = _hold_worker(app)
    try:
        _fill_plan(page, base)
        page.wait_for_url(re.compile(r".*/planning/jobs/[^/]+$"))
        page.click("#cancel-button")
        page.wait_for_selector("#job-cancelled")
        assert "cancelled" in page.inner_text("#job-state")
        assert page.locator("#cancel-button").count() == 0
        assert_no_axe_violations(page)
    finally:
        gate.set()
    assert planner.errors == []


def test_the_job_page_works_without_javascript(browser, site) -> None:
    app, base = site
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(base + "/login")
        page.fill("input[name=username]", "pia")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/overview$"))
        gate = _hold_worker(app)
        try:
            _fill_plan(page, base)
            page.wait_for_url(re.compile(r".*/planning/jobs/[^/]+$"))
            assert page.is_visible("#job-reload")
        finally:
            gate.set()
        for _ in range(100):
            page.click("#job-reload")
            page.wait_for_load_state()
            if page.url.endswith("/result"):
                break
            page.wait_for_timeout(200)
        assert page.url.endswith("/result") and page.locator("#plan-sites tbody tr").count() == 3
    finally:
        context.close()
