"""Real-browser tests: headless Debian Chromium against the app served by waitress on 127.0.0.1."""
from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator

import pandas as pd
import pytest
from webfixtures import PASSWORD, XSS_NOTE, base_store, demo_events, events_csv  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def server(base_store, tmp_path_factory) -> Iterator[str]:
    """The app under waitress in a background thread; yields its base URL."""
    from waitress import create_server

    from webapp import create_app

    folder = tmp_path_factory.mktemp("browser")
    store = folder / "geo_ibm.gpkg"
    shutil.copyfile(base_store, store)
    app = create_app({"SECRET_KEY": "browser-test", "STORE_PATH": str(store), "INSTANCE_PATH": str(folder / "instance")})
    srv = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.effective_port}"
    finally:
        srv.close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


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
        self.page.fill("input[name=username]", name)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/overview$"))

    def map_frame(self, kind: str):
        self.page.wait_for_selector("iframe.map")
        for _ in range(100):
            for frame in self.page.frames:
                if f"/maps/{kind}" in frame.url:
                    frame.wait_for_function("() => window.L !== undefined && document.querySelector('.leaflet-container')",
                                            timeout=30_000)
                    return frame
            self.page.wait_for_timeout(100)
        raise AssertionError(f"no /maps/{kind} frame in {[f.url for f in self.page.frames]}")

    def outside_requests(self) -> list[str]:
        allowed = (self.base + "/", "data:", "about:", "blob:")
        return [u for u in self.requests if not u.startswith(allowed)]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser, server) -> Iterator[Watched]:
    w = Watched(browser, server)
    yield w
    w.close()


def test_pages_load_maps_offline_without_errors(watched):
    watched.login("ada")
    frame = watched.map_frame("overview")
    assert frame.evaluate("() => typeof window.L.map") == "function"
    # The three border lines are SVG paths in their neighbour's colour.
    from geo_ibm.maps import NEIGHBOUR_COLOURS

    for code, colour in NEIGHBOUR_COLOURS.items():
        count = frame.evaluate("(c) => document.querySelectorAll(`path[stroke='${c}']`).length", colour)
        assert count >= 1, f"no border line drawn for {code}"
    assert frame.evaluate("() => document.querySelectorAll('.geo-ibm-legend').length") == 1
    assert "OpenStreetMap contributors" in frame.evaluate("() => document.querySelector('.leaflet-control-attribution').textContent")
    # The map document cannot reach the app: it runs in an opaque origin.
    assert frame.evaluate("() => { try { return document.cookie; } catch (e) { return 'blocked'; } }") in ("", "blocked")

    for path, heading in [("/hotspots", "Hotspots"), ("/import", "Import events"), ("/exports/", "Exports"),
                          ("/reports/", "Reports"), ("/admin/audit", "Audit trail"), ("/admin/users", "Users"),
                          ("/account", "Account")]:
        watched.page.click(f"nav a[href='{path}']")
        watched.page.wait_for_url(re.compile(f".*{re.escape(path)}$"))
        assert heading in watched.page.inner_text("h1")
    watched.page.click("nav a[href='/hotspots']")
    hot = watched.map_frame("hotspots")
    hot.wait_for_function("() => document.querySelectorAll('.leaflet-control-layers-overlays label').length >= 3")
    labels = hot.evaluate("() => Array.from(document.querySelectorAll('.leaflet-control-layers-overlays label')).map(l => l.textContent.trim())")
    assert "Gi* hot and cold spots" in labels and "Kernel density contours" in labels
    assert watched.outside_requests() == []
    assert watched.errors == []


def test_filters_live_in_the_url(watched):
    watched.login("vic")
    watched.page.select_option("select[name=entry_country]", "DE")
    watched.page.select_option("select[name=location_kind]", "motorway")
    watched.page.click("form.filters button[type=submit]")
    watched.page.wait_for_url(re.compile(r".*entry_country=DE.*"))
    assert "location_kind=motorway" in watched.page.url
    src = watched.page.get_attribute("iframe.map", "src")
    assert "entry_country=DE" in src and "location_kind=motorway" in src
    assert watched.page.get_attribute("iframe.map", "sandbox") == "allow-scripts"
    watched.map_frame("overview")
    # A shared link reproduces the view; a bad value is refused naming the parameter.
    watched.expect_errors = True
    response = watched.page.goto(watched.base + "/overview?entry_country=XX")
    assert response.status == 400 and "entry_country" in watched.page.inner_text("main")
    assert watched.outside_requests() == []


def test_upload_then_xss_in_notes_is_not_executed(watched):
    watched.login("ana")
    events = demo_events(4, seed=77)
    events["observed_at"] = pd.Timestamp.now(tz="Europe/Luxembourg").floor("s") - pd.Timedelta(minutes=30)
    csv = events_csv(events, notes=XSS_NOTE, id_prefix="browser-xss-").encode("utf-8")
    watched.page.goto(watched.base + "/import")
    watched.page.set_input_files("input[name=file]", files=[{"name": "xss.csv", "mimeType": "text/csv", "buffer": csv}])
    watched.page.click("form.upload button[type=submit]")
    watched.page.wait_for_selector("#import-report")
    assert "4 new events" in watched.page.inner_text("#import-report")

    watched.page.goto(watched.base + "/overview")
    assert XSS_NOTE in watched.page.inner_text("#recent-events")  # shown as text
    frame = watched.map_frame("overview")
    texts = frame.evaluate(
        """() => {
            const maps = Object.keys(window).filter(k => k.startsWith('map_')).map(k => window[k]);
            const shown = [];
            const seen = new Set();
            const visit = (layer) => {
                if (seen.has(L.stamp(layer))) return;
                seen.add(L.stamp(layer));
                if (layer.eachLayer) { layer.eachLayer(visit); return; }
                const notes = layer.feature && layer.feature.properties && layer.feature.properties.notes;
                if (notes && notes.includes('onerror')) {
                    // A click, as a user would: the GeoJSON layer opens its popup for this marker.
                    layer.fire('click', {latlng: layer.getLatLng()}, true);
                    const popup = document.querySelector('.leaflet-popup-content');
                    shown.push(popup ? popup.textContent : '');
                }
            };
            maps.forEach(m => m.eachLayer(visit));
            return shown;
        }"""
    )
    assert len(texts) == 4 and all(XSS_NOTE in t for t in texts)
    watched.page.wait_for_timeout(300)  # give an injected onerror handler time to fire
    assert frame.evaluate("() => window.__xss") is None
    assert watched.page.evaluate("() => window.__xss") is None
    assert watched.outside_requests() == []
    assert watched.errors == []


def test_french_interface(watched):
    watched.login("vic")
    watched.page.click("a[href^='/lang/fr']")
    watched.page.wait_for_load_state()
    assert "Vue d'ensemble" in watched.page.inner_text("h1")
    frame = watched.map_frame("overview")
    assert "Frontières intérieures Schengen" in frame.evaluate("() => document.querySelector('.geo-ibm-legend').textContent")
    assert watched.errors == []
