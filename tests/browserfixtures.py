"""Real-browser test set-up shared by the browser tests: headless Debian Chromium, the app under waitress, logins,
watched pages, map frames, a held job worker and axe-core."""
from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from webfixtures import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

MAP_READY = "() => window.L !== undefined && document.querySelector('.leaflet-container')"
"""A map document is drawn: Leaflet loaded and its container in the page."""

AXE_TAGS: tuple[str, ...] = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice")
"""The axe-core rule sets every page must pass: WCAG 2.0 and 2.1 levels A and AA, and Deque's best practices."""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` under waitress in a background thread on a free port of 127.0.0.1; yields its base URL."""
    from waitress import create_server

    srv = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.effective_port}"
    finally:
        srv.close()
        thread.join(timeout=5)


def app_on_copy(base_store: Path, folder: Path, *, prepare: Callable[[Path], None] | None = None,
                **config: Any) -> Any:
    """The app on a copy of ``base_store`` in ``folder`` (changed by ``prepare`` first), with ``config`` added."""
    from webapp import create_app

    store = folder / "geo_ibm.gpkg"
    shutil.copyfile(base_store, store)
    if prepare is not None:
        prepare(store)
    return create_app({"SECRET_KEY": "browser-test", "STORE_PATH": str(store), "INSTANCE_PATH": str(folder / "instance"),
                       **config})


@contextmanager
def one_worker_site(base_store: Path, folder: Path) -> Iterator[tuple[Any, str]]:
    """The app with one job worker (so a test can hold it busy) under waitress; yields the app and its base URL."""
    from webapp.jobs import runner

    app = app_on_copy(base_store, folder, JOB_WORKERS=1)
    try:
        with served(app) as base:
            yield app, base
    finally:
        runner(app).close()


def log_in(page: Any, base: str, name: str) -> None:
    """Log ``page`` in as ``name`` through the login form; the app then shows the overview."""
    page.goto(base + "/login")
    submit_login(page, name)


def submit_login(page: Any, name: str) -> None:
    """Fill the login form shown on ``page`` for ``name``, send it and wait for the overview."""
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/overview$"))


def map_frame(page: Any, url_pattern: str, *, ready: str = MAP_READY) -> Any:
    """The frame of ``page`` whose URL matches ``url_pattern`` (a regular expression), once ``ready`` holds in it."""
    page.wait_for_selector("iframe.map")
    for _ in range(100):
        for frame in page.frames:
            if re.search(url_pattern, frame.url):
                frame.wait_for_function(ready, timeout=30_000)
                return frame
        page.wait_for_timeout(100)
    raise AssertionError(f"no frame matching {url_pattern!r} in {[f.url for f in page.frames]}")


class Watched:
    """A page with every request (all frames), console error and page error recorded."""

    def __init__(self, browser, base: str) -> None:
        self.base = base
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("response", lambda r: self.errors.append(f"{r.status} {r.url}") if r.status >= 400 and not self.expect_errors else None)
        self.expect_errors = False

    def login(self, name: str = "ada") -> None:
        self.page.goto(self.base + "/overview")
        assert "/login" in self.page.url
        submit_login(self.page, name)

    def map_frame(self, kind: str):
        return map_frame(self.page, re.escape(f"/maps/{kind}"))

    def outside_requests(self) -> list[str]:
        allowed = (self.base + "/", "data:", "about:", "blob:")
        return [u for u in self.requests if not u.startswith(allowed)]

    def close(self) -> None:
        self.context.close()


@contextmanager
def watching(browser, base: str, account: str | None = None) -> Iterator[Watched]:
    """A :class:`Watched` page on ``base``, logged in as ``account`` (``None``: not logged in), closed afterwards."""
    watched = Watched(browser, base)
    try:
        if account is not None:
            watched.login(account)
        yield watched
    finally:
        watched.close()


@contextmanager
def without_javascript(browser, base: str, account: str) -> Iterator[Any]:
    """A page with JavaScript switched off, logged in as ``account``; its context is closed afterwards."""
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, base, account)
        yield page
    finally:
        context.close()


def reload_until(page: Any, finished: Callable[[str], bool], *, tries: int) -> None:
    """Press the job page's reload button (as a reader without JavaScript would) until ``finished(page.url)``."""
    for _ in range(tries):
        page.click("#job-reload")
        page.wait_for_load_state()
        if finished(page.url):
            return
        page.wait_for_timeout(200)


@contextmanager
def worker_held(app: Any, owner: str) -> Iterator[None]:
    """Keep the only job worker of ``app`` busy (a job of ``owner``) until the block ends, so a job submitted in it
    waits on its job page."""
    from webapp.jobs import runner

    gate, started = threading.Event(), threading.Event()

    def work(progress):
        started.set()
        while not gate.wait(0.05):
            progress(0.0, "busy")

    runner(app).submit(owner, "holding the worker", work)
    assert started.wait(10)
    try:
        yield
    finally:
        gate.set()


class AxeViolations(AssertionError):
    """axe-core found violations on a page (the message is its report)."""


def assert_no_axe_violations(page) -> None:
    """axe-core (bundled by axe-playwright-python, run in the page) finds no WCAG 2.1 A/AA or best-practice violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": list(AXE_TAGS)},
                                       "resultTypes": ["violations"]})
    assert results.response["testEngine"]["name"] == "axe-core"
    if results.violations_count:
        raise AxeViolations(f"{page.url}\n{results.generate_report()}")
