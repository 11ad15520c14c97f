"""Real-browser tests: headless Debian Chromium against the app served by waitress on 127.0.0.1; axe-core checks
every page for WCAG 2.1 A/AA violations."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from browserfixtures import (
    MAP_READY,
    Watched,
    app_on_copy,
    assert_no_axe_violations,
    browser,  # noqa: F401
    log_in,
    map_frame,
    served,
    watching,
)
from webfixtures import XSS_NOTE, base_store, demo_events, events_csv  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _save_operation(path: Path) -> None:
    """A two-site operation in the store, saved as a planner would (its page and map are checked below)."""
    import geopandas as gpd
    import shapely

    from geo_ibm.planning.operations import operation_from_plan, save_operation
    from geo_ibm.store import open_store

    sites = gpd.GeoDataFrame({"site_id": ["A", "B"], "rank": [1, 2], "windows": ["Mon 08-12", "Tue 16-20, Sat 00-04"]},
                             geometry=[shapely.Point(70_000, 80_000), shapely.Point(90_000, 100_000)], crs=2169)
    params = {"radius_m": 3000.0, "model": "mclp", "teams": 2, "shift_hours": 4, "from": "2024-06-01", "to": "2024-06-30"}
    op = operation_from_plan(sites, params, name=OPERATION, start="2025-03-03", end="2025-03-16")
    store = open_store(path)
    save_operation(store, op, user="pia")
    # Its interceptions: two near A in its Monday shift, one out of every site's reach.
    csv = path.parent / "operation-events.csv"
    csv.write_text("event_id;observed_at;x;y;location_kind;persons;smugglers;transport_mode;entry_country;operation_id\n"
                   f"axe-1;2025-03-03T09:00;70300;80200;motorway;2;0;car;FR;{OPERATION}\n"
                   f"axe-2;2025-03-10T10:00;69800;80100;motorway;3;0;car;FR;{OPERATION}\n"
                   f"axe-3;2025-03-05T10:00;60000;120000;motorway;1;0;car;DE;{OPERATION}\n", encoding="utf-8")
    store.import_file(csv, user="ana")


@pytest.fixture(scope="module")
def server(base_store, tmp_path_factory) -> Iterator[str]:
    """The app under waitress in a background thread, with :data:`OPERATION` saved and an archive; yields its base URL."""
    from geo_ibm.archive import write_synthetic_archive

    archive = tmp_path_factory.mktemp("browser-archive") / "lux"
    write_synthetic_archive(archive, n_events=8_000, partitions=8, quarters=8, seed=2)
    # no scheduler: each archive job starts a local cluster of one worker process
    app = app_on_copy(base_store, tmp_path_factory.mktemp("browser"), prepare=_save_operation,
                      ARCHIVES={"lux": str(archive)}, DASK_WORKERS=1)
    with served(app) as base:
        yield base


@pytest.fixture
def watched(browser, server) -> Iterator[Watched]:
    with watching(browser, server) as w:
        yield w


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


def test_routes_page_draws_its_layers_offline(watched):
    watched.login("ana")
    watched.page.click("nav a[href='/routes/']")
    watched.page.wait_for_url(re.compile(r".*/routes/$"))
    watched.page.check("input[name=network_hotspots]")
    watched.page.click("form.filters button[type=submit]")
    watched.page.wait_for_url(re.compile(r".*network_hotspots=1.*"))
    assert watched.page.locator("#route-corridors tbody tr").count() > 0
    frame = map_frame(watched.page, "/routes/map",
                      ready="() => window.L !== undefined && document.querySelector('.leaflet-control-layers')")
    labels = frame.evaluate("() => Array.from(document.querySelectorAll('.leaflet-control-layers-overlays label'))"
                            ".map(l => l.textContent.trim())")
    assert {"Events per km of road", "Network hot and cold spots", "Flows (direction of travel)",
            "Entry crossings (attributed events)"} <= set(labels)
    # The flows start switched off; switching them on shows their arrows with their lines (one layer).
    assert frame.evaluate("() => document.querySelectorAll('.geo-ibm-arrow').length") == 0
    frame.click("text=Flows (direction of travel)")
    frame.wait_for_function("() => document.querySelectorAll('.geo-ibm-arrow svg').length > 0", timeout=10_000)
    assert watched.outside_requests() == []
    assert watched.errors == []


# --------------------------------------------------------------------------- accessibility (axe-core)

OPERATION = "OP-AXE"
BAD_CSV = b"event_id,observed_at,x,y\nbad-1,not a time,70000,80000\nbad-2,2025-03-03T10:00,,80000\n"


def _upload_bad_file(page) -> None:
    page.set_input_files("input[name=file]", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": BAD_CSV}])
    page.click("form.upload button[type=submit]")
    page.wait_for_selector("#problems")


def _plan_and_open_its_map(page) -> None:
    page.fill("input[name=teams]", "2")
    page.fill("input[name=radius]", "3000")
    page.click("#plan-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/planning/jobs/[^/]+/result$"), timeout=60_000)
    page.goto(page.url.removesuffix("/result") + "/map")


def _analyse_archive(page) -> None:
    page.select_option("select[name=method]", "gi")
    page.fill("input[name=cell]", "3000")
    page.click("#archive-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/archives/jobs/[^/]+/result$"), timeout=120_000)


def _count_archive(page) -> None:
    page.select_option("#counts-form select[name=by]", "country")
    page.fill("#counts-form input[name=from]", "2024-01-01")
    page.click("#counts-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/archives/jobs/[^/]+/result$"), timeout=120_000)
    assert page.locator("#archive-counts tbody tr").count() >= 4


def _analyse_archive_and_open_its_map(page) -> None:
    _analyse_archive(page)
    page.goto(page.url.removesuffix("/result") + "/map")


def _page(name: str, account: str | None, path: str, status: int = 200,
          action: Callable[[Any], None] | None = None) -> Any:
    return pytest.param(account, path, status, action, id=name)


# Every page of the app, once, for the least role that sees it (None: not logged in), with its HTTP status and
# what to do on it before the check; the map documents of the pages' iframes are checked as pages of their own.
PAGES: list[Any] = [
    _page("login", None, "/login"),
    _page("overview", "vic", "/overview"),
    _page("overview-map", "vic", "/maps/overview"),
    _page("overview-fr", "vic@fr", "/overview"),
    _page("overview-map-fr", "vic@fr", "/maps/overview"),
    _page("hotspots", "vic", "/hotspots"),
    _page("hotspots-map", "ana", "/maps/hotspots"),
    _page("import", "ana", "/import"),
    _page("import-report", "ana", "/import", action=_upload_bad_file),
    _page("exports", "ana", "/exports/"),
    _page("reports", "ana", "/reports/"),
    _page("routes", "ana", "/routes/"),
    _page("routes-fr", "ana@fr", "/routes/?network_hotspots=1&tolerance=400"),
    _page("routes-map", "ana", "/routes/map"),
    _page("account", "vic", "/account"),
    _page("admin-audit", "ada", "/admin/audit"),
    _page("admin-users", "ada", "/admin/users"),
    _page("error-400", "vic", "/overview?entry_country=XX", 400),
    _page("error-403", "vic", "/admin/users", 403),
    _page("error-404", "vic", "/no-such-page", 404),
    _page("error-404-anonymous", None, "/no-such-page", 404),
    _page("planning", "pia", "/planning/"),
    _page("plan-map", "pia", "/planning/", action=_plan_and_open_its_map),
    _page("operations", "pia", "/operations/"),
    _page("operation", "pia", f"/operations/{OPERATION}"),
    _page("operation-map", "pia", f"/operations/{OPERATION}/map"),
    _page("archives", "ana", "/archives/"),
    _page("archives-fr", "ana@fr", "/archives/"),
    _page("archive-result", "ana", "/archives/", action=_analyse_archive),
    _page("archive-map", "ana", "/archives/", action=_analyse_archive_and_open_its_map),
    _page("archive-counts", "ana", "/archives/", action=_count_archive),
    _page("archive-counts-fr", "ana@fr", "/archives/", action=_count_archive),
]


@pytest.fixture(scope="module")
def sessions(browser, server) -> Iterator[Callable[[str | None], Any]]:
    """One browser context per account, logged in once (``None``: not logged in; ``"vic@fr"``: vic in French)."""
    contexts: dict[str | None, Any] = {}

    def context(account: str | None) -> Any:
        if account not in contexts:
            ctx = browser.new_context()
            name, _at, language = (account or "").partition("@")
            if language:
                ctx.add_cookies([{"name": "lang", "value": language, "url": server}])
            if name:
                page = ctx.new_page()
                log_in(page, server, name)
                page.close()
            contexts[account] = ctx
        return contexts[account]

    yield context
    for ctx in contexts.values():
        ctx.close()


def _open(sessions, server: str, account: str | None, path: str, status: int, action: Callable[[Any], None] | None):
    page = sessions(account).new_page()
    response = page.goto(server + path)
    assert response is not None and response.status == status
    if action is not None:
        action(page)
    if _is_map_document(page.url.removeprefix(server)):
        page.wait_for_function(MAP_READY, timeout=30_000)
    assert page.evaluate("() => document.documentElement.lang") == ((account or "").partition("@")[2] or "en")
    return page


def _is_map_document(path: str) -> bool:
    return re.search(r"/maps?(/|$)", path) is not None


@pytest.mark.parametrize(("account", "path", "status", "action"), PAGES)
def test_every_page_has_no_axe_violations(sessions, server, account, path, status, action) -> None:
    page = _open(sessions, server, account, path, status, action)
    try:
        assert_no_axe_violations(page)
    finally:
        page.close()


class MapNotShown(AssertionError):
    """The map of a map document does not fill its page."""


@pytest.mark.parametrize(("account", "path", "status", "action"),
                         [p for p in PAGES if p.id.endswith("-map")])
def test_map_documents_fill_their_page(sessions, server, account, path, status, action) -> None:
    page = _open(sessions, server, account, path, status, action)
    try:
        height = page.evaluate("() => document.querySelector('.leaflet-container').getBoundingClientRect().height")
        if height < 0.9 * page.viewport_size["height"]:
            raise MapNotShown(f"{page.url}: the map is {height:.0f} px high in a {page.viewport_size['height']} px page")
    finally:
        page.close()
