"""OGC API – Features Part 3 CQL2 filters on ``/items``: in process against pandas, paging, roles, bounds and audit;
then GDAL (``ogr2ogr``/``ogrinfo`` and pyogrio) against ``geo-ibm serve``, proving the filter is applied on the server."""
from __future__ import annotations

import json
import os
import subprocess
from urllib.parse import parse_qs, quote, urlsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from pyproj import Transformer
from webfixtures import Site, make_site, serve_store

from geo_ibm import cql2, layers
from geo_ibm.accounts import add_user
from geo_ibm.demo import generate_events
from geo_ibm.store import open_store
from webapp.ogc import CONFORMANCE

PASSWORD = "correct-horse-battery"
N_EVENTS = 300
TZ = "Europe/Luxembourg"
TO_LONLAT = Transformer.from_crs("EPSG:2169", "EPSG:4326", always_xy=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return make_site(tmp_path_factory.mktemp("cql2") / "store.gpkg", seed=23, n_events=N_EVENTS)


def items(site: Site, collection: str, query: str, role: str = "analyst") -> dict:
    response = site.get(f"/ogc/collections/{collection}/items?{query}", role=role)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def every_id(site: Site, collection: str, query: str, *, page: int = 7, role: str = "analyst") -> list:
    """Feature ids of every page, following the server's ``next`` links from ``limit=page``."""
    url: str | None = f"/ogc/collections/{collection}/items?{query}&limit={page}"
    ids: list = []
    matched = None
    while url:
        response = site.get(url.removeprefix("http://localhost"), role=role)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        matched = body["numberMatched"] if matched is None else matched
        assert body["numberMatched"] == matched and body["numberReturned"] == len(body["features"])
        ids.extend(f["id"] for f in body["features"])
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert matched == len(ids)
    return ids


def _lonlat(events: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    return TO_LONLAT.transform(events.geometry.x.to_numpy(), events.geometry.y.to_numpy())


def _expected(events: gpd.GeoDataFrame, mask: pd.Series) -> list[str]:
    """Ids of ``mask`` in the store's order (by time, as every page is)."""
    chosen = events[mask.fillna(False).to_numpy(dtype=bool)]
    return list(chosen.sort_values(["observed_at", "event_id"], kind="stable")["event_id"])


# --------------------------------------------------------------------------- documents


def test_conformance_and_openapi_declare_the_filter(site):
    conformance = site.get("/ogc/conformance", role="viewer").get_json()["conformsTo"]
    for cls in ("ogcapi-features-3/1.0/conf/filter", "ogcapi-features-3/1.0/conf/features-filter",
                "cql2/1.0/conf/cql2-text", "cql2/1.0/conf/basic-cql2", "cql2/1.0/conf/advanced-comparison-operators",
                "cql2/1.0/conf/basic-spatial-functions"):
        assert f"http://www.opengis.net/spec/{cls}" in conformance
    assert not any(c.endswith(("cql2-json", "temporal-functions")) for c in conformance)
    assert set(conformance) == set(CONFORMANCE)
    own = site.get("/ogc/openapi", role="viewer").get_json()
    params = {p["name"]: p for p in own["paths"]["/collections/events/items"]["get"]["parameters"]}
    # GDAL's OAPIF driver sends a filter only when filter-lang lists cql-text, and only on the
    # properties the operation names as parameters.
    assert params["filter-lang"]["schema"]["enum"] == ["cql2-text", "cql-text"]
    assert {"filter", "filter-crs", "persons", "smugglers", "observed_at", "destination_country", "event_id"} <= set(params)
    queryables = site.get("/ogc/collections/events/queryables", role="viewer").get_json()["properties"]
    assert queryables["observed_at"] == {"title": queryables["observed_at"]["title"], "type": "string",
                                         "format": "date-time"}
    assert queryables["persons"]["type"] == "integer"


# --------------------------------------------------------------------------- events against pandas


def _event_cases(e: gpd.GeoDataFrame) -> list[tuple[str, pd.Series]]:
    lon, lat = _lonlat(e)
    t = e["observed_at"]
    return [
        ("persons > 5 AND entry_country = 'DE'", (e["persons"] > 5) & (e["entry_country"] == "DE")),
        ("persons >= 4 OR smugglers = 2 AND transport_mode = 'van'",
         (e["persons"] >= 4) | ((e["smugglers"] == 2) & (e["transport_mode"] == "van"))),
        ("NOT (entry_country IN ('DE', 'FR'))", ~e["entry_country"].isin(["DE", "FR"])),
        ("persons BETWEEN 2 AND 3 AND location_kind LIKE '%way'",
         e["persons"].between(2, 3) & e["location_kind"].str.endswith("way")),
        ("destination_country IS NULL", e["destination_country"].isna()),
        ("destination_country IS NOT NULL AND destination_country <> 'NL'",
         e["destination_country"].notna() & (e["destination_country"] != "NL")),
        ("T_INTERSECTS(observed_at, INTERVAL('2025-01-01', '2025-06-30'))",
         (t >= pd.Timestamp("2025-01-01", tz=TZ)) & (t < pd.Timestamp("2025-07-01", tz=TZ))),
        ("observed_at >= '2025-03-01T' AND region = 'Sud-Ouest'",
         (t >= pd.Timestamp("2025-03-01", tz=TZ)) & (e["region"] == "Sud-Ouest")),
        ("S_INTERSECTS(geometry, BBOX(5.9, 49.4, 6.1, 49.7))",
         pd.Series((lon >= 5.9) & (lon <= 6.1) & (lat >= 49.4) & (lat <= 49.7), index=e.index)),
        ("CASEI(canton) = CASEI('esch-sur-alzette')", e["canton"].str.lower() == "esch-sur-alzette"),
    ]


def test_event_filters_equal_pandas_filtering_on_every_page(site):
    stored = site.store.events()
    assert len(stored) == N_EVENTS
    for text, mask in _event_cases(stored):
        expected = _expected(stored, mask)
        assert 0 < len(expected) < N_EVENTS, text
        assert every_id(site, "events", "filter=" + quote(text)) == expected, text
        first = items(site, "events", "limit=3&filter=" + quote(text))
        assert first["numberMatched"] == len(expected) and first["numberReturned"] == min(3, len(expected))


def test_the_filter_combines_with_bbox_datetime_and_the_other_parameters(site):
    stored = site.store.events()
    lon, lat = _lonlat(stored)
    inside = pd.Series((lon >= 5.95) & (lon <= 6.3) & (lat >= 49.45) & (lat <= 49.75), index=stored.index)
    t = stored["observed_at"]
    mask = (inside & (stored["persons"] > 2) & (stored["transport_mode"] == "car")
            & (t >= pd.Timestamp("2025-01-01", tz=TZ)) & (t < pd.Timestamp("2026-01-01", tz=TZ))
            & (stored["smugglers"] == 1))
    expected = _expected(stored, mask)
    assert expected
    query = ("bbox=5.95,49.45,6.3,49.75&datetime=2025-01-01/2025-12-31&transport_mode=car&smugglers=1&filter="
             + quote("persons > 2"))
    assert every_id(site, "events", query, page=2) == expected


def test_equality_parameters_on_the_new_queryables(site):
    stored = site.store.events()
    assert every_id(site, "events", "persons=3") == _expected(stored, stored["persons"] == 3)
    day = stored["observed_at"].iloc[10]
    same_day = (stored["observed_at"] >= day.normalize()) & (stored["observed_at"] < day.normalize() + pd.Timedelta(days=1))
    assert every_id(site, "events", f"observed_at={day:%Y-%m-%d}") == _expected(stored, same_day)
    second = day.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    assert stored["event_id"].iloc[10] in every_id(site, "events", f"observed_at={second}")
    one = stored["event_id"].iloc[5]
    assert every_id(site, "events", f"event_id={one}") == [one]
    bad = site.get("/ogc/collections/events/items?persons=0")
    assert bad.status_code == 400 and bad.get_json()["parameter"] == "persons"
    bad = site.get("/ogc/collections/events/items?observed_at=2025-01-01/2025-02-01")
    assert bad.status_code == 400 and bad.get_json()["parameter"] == "observed_at"


def test_filtered_reads_are_audited_with_their_filter(site):
    text = "persons > 6"
    body = items(site, "events", "limit=4&filter=" + quote(text))
    log = site.store.audit_log(limit=50)
    details = [d if isinstance(d, dict) else json.loads(d) for d in log.loc[log["action"] == "record_read", "detail"]]
    mine = [d for d in details if d.get("what") == "events" and parse_qs(d["query"]).get("filter") == [text]]
    assert mine and mine[0]["rows"] == body["numberReturned"] == 4


# --------------------------------------------------------------------------- other collections and roles


def test_reference_and_hotspot_filters_equal_filtering_the_whole_collection(site):
    crossings = layers.crossing_points()
    expected = sorted(crossings.loc[(crossings["neighbour"] == "DE") | crossings["name"].str.startswith("A"),
                                    "crossing_id"])
    got = items(site, "crossing-points", "limit=1000&filter=" + quote("neighbour = 'DE' OR name LIKE 'A%'"), "viewer")
    assert sorted(f["id"] for f in got["features"]) == expected
    for role in ("viewer", "analyst"):
        whole = items(site, "hotspots", "limit=10000", role)["features"]
        want = sorted(f["id"] for f in whole if f["properties"]["gi_bin"] >= 2 or f["properties"]["gi_bin_fdr"] < 0)
        got = items(site, "hotspots", "limit=10000&filter=" + quote("gi_bin >= 2 OR gi_bin_fdr < 0"), role)
        assert sorted(f["id"] for f in got["features"]) == want
        shown = {f["id"]: f["properties"] for f in whole}
        assert all(shown[f["id"]] == f["properties"] for f in got["features"])


@pytest.mark.parametrize("text", ["count > 3", "persons > 1", "S_INTERSECTS(geometry, POINT(6 49.6)) AND count = 1"])
def test_a_viewer_cannot_filter_hotspots_on_counts(site, text):
    response = site.get("/ogc/collections/hotspots/items?filter=" + quote(text), role="viewer")
    assert response.status_code == 400 and response.get_json()["parameter"] == "filter"
    assert "is not queryable here; queryables: gi_bin, gi_bin_fdr, geometry" in response.get_json()["description"]


def test_a_viewer_cannot_filter_events(site):
    response = site.get("/ogc/collections/events/items?filter=" + quote("persons > 5"), role="viewer")
    assert response.status_code == 403


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("query", "parameter"), [
    ("filter=" + quote("notes LIKE '%x%'"), "filter"),
    ("filter=" + quote("persons > 'five'"), "filter"),
    ("filter=" + quote("(" * 500 + "persons = 1" + ")" * 500), "filter"),
    ("filter=" + quote("persons IN (" + ",".join(["1"] * 1000) + ")"), "filter"),
    ("filter=" + quote("canton LIKE '" + "%_" * 40 + "'"), "filter"),
    ("filter=" + quote("persons = 1 OR " * 300 + "persons = 1"), "filter"),
    ("filter=" + "x" * 5000, "filter"),
    ("filter=" + quote("S_INTERSECTS(geometry, POLYGON((" + ",".join(["6 49"] * 1500) + ")))"), "filter"),
    ("filter=persons%3D1&filter=persons%3D2", "filter"),
    ("filter=persons%3D1&filter-lang=cql2-json", "filter-lang"),
    ("filter-lang=ecql", "filter-lang"),
    ("filter=persons%3D1&filter-crs=EPSG%3A2169", "filter-crs"),
])
def test_bad_or_hostile_filters_are_400_before_any_event_is_read(site, forbid, query, parameter):
    # Not timed: reading, paging or filtering the events fails (the app turns the
    # AssertionError into a 500) and must not have started; the parser's own bounded work is
    # counted in test_cql2.
    for name in ("filtered_event_ids", "event_page_features"):
        forbid(f"webapp.ogc.{name}", why="the filter is refused first")
    forbid(cql2, "filter_mask", why="the filter is refused first")
    response = site.get(f"/ogc/collections/events/items?{query}")
    assert forbid.ran == []
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["parameter"] == parameter


def test_events_over_the_row_limit_are_refused_before_they_are_read(site, monkeypatch):
    # The limit is a setting of the module; a small one lets a small store cross it.
    stored = site.store.events()
    in_2025 = int(((stored["observed_at"] >= pd.Timestamp("2025-01-01", tz=TZ))
                   & (stored["observed_at"] < pd.Timestamp("2026-01-01", tz=TZ))).sum())
    monkeypatch.setattr(cql2, "MAX_FILTER_ROWS", in_2025)
    ok = site.get("/ogc/collections/events/items?datetime=2025-01-01/2025-12-31&filter=persons%3E1")
    assert ok.status_code == 200
    refused = site.get("/ogc/collections/events/items?filter=persons%3E2")
    assert refused.status_code == 400 and refused.get_json()["parameter"] == "filter"
    assert f"select {N_EVENTS} features, more than the {in_2025}" in refused.get_json()["description"]


# --------------------------------------------------------------------------- GDAL against geo-ibm serve


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``geo-ibm serve`` on 127.0.0.1; yields (base url, stored events, store path)."""
    folder = tmp_path_factory.mktemp("cql2-http")
    path = folder / "store.gpkg"
    store = open_store(path)
    store.init()
    events, _truth = generate_events(N_EVENTS, seed=29)
    assert store.import_events(events, source="test_ogc_cql2", user="test").accepted == N_EVENTS
    add_user(store, "gis", "analyst", PASSWORD)
    with serve_store(path, folder) as url:
        yield url, store.events(), path


def _gdal(tool: str, *args: str) -> subprocess.CompletedProcess:
    """The system GDAL ``tool`` with basic credentials and its debug output (the URLs it fetches) on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDAL_HTTP")}
    auth = ["--config", "GDAL_HTTP_AUTH", "BASIC", "--config", "GDAL_HTTP_USERPWD", f"gis:{PASSWORD}",
            "--config", "CPL_DEBUG", "ON"]
    return subprocess.run([tool, *auth, *args], capture_output=True, text=True, timeout=180, env=env)


def _fetched_filters(stderr: str, collection: str) -> list[str | None]:
    """The ``filter`` of each items URL GDAL fetched (``None``: unfiltered), checked to be GDAL's CQL text."""
    out: list[str | None] = []
    for line in stderr.splitlines():
        if "HTTP: Fetch(" in line and f"/collections/{collection}/items" in line:
            query = parse_qs(urlsplit(line.split("Fetch(", 1)[1].rstrip(")")).query)
            if "filter" in query:
                assert query["filter-lang"] == ["cql-text"]
            out.append(query.get("filter", [None])[0])
    return out


def _event_reads(store_path) -> list[dict]:
    log = open_store(store_path).audit_log(limit=1000)
    details = [d if isinstance(d, dict) else json.loads(d) for d in log.loc[log["action"] == "record_read", "detail"]]
    return [d for d in details if d.get("what") == "events"]


def test_ogr2ogr_where_is_applied_by_the_server(server, tmp_path):
    url, stored, store_path = server
    where = "persons > 5 AND entry_country = 'DE'"
    expected = stored[(stored["persons"] > 5) & (stored["entry_country"] == "DE")]
    assert 0 < len(expected) < N_EVENTS // 5
    before = len(_event_reads(store_path))
    out = tmp_path / "filtered.gpkg"
    result = _gdal("ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{url}", "events", "-where", where,
                   "-oo", "PAGE_SIZE=10")
    assert result.returncode == 0, result.stderr
    got = pyogrio.read_dataframe(out, columns=["event_id", "persons"])
    assert sorted(got["event_id"]) == sorted(expected["event_id"])
    np.testing.assert_array_equal(got.set_index("event_id").loc[expected["event_id"], "persons"].to_numpy(),
                                  expected["persons"].to_numpy())
    # One unfiltered page for the schema, then only filtered pages, carrying the whole -where.
    sent = _fetched_filters(result.stderr, "events")
    assert sent[0] is None and sent[1:] and set(sent[1:]) == {"(persons > 5) AND (entry_country = 'DE')"}
    assert "evaluated on client side" not in result.stderr
    # The server sent the matching events only: its audit counts them.
    reads = _event_reads(store_path)[: len(_event_reads(store_path)) - before]
    filtered = [r for r in reads if "filter" in parse_qs(r["query"])]
    assert sum(r["rows"] for r in filtered) == len(expected)
    assert sum(r["rows"] for r in reads if r not in filtered) <= 10  # the schema page


def test_ogrinfo_feature_count_comes_from_the_server(server):
    url, stored, _path = server
    where = "smugglers >= 1 AND transport_mode <> 'car'"
    result = _gdal("ogrinfo", "-ro", "-so", "-where", where, f"OAPIF:{url}", "events")
    assert result.returncode == 0, result.stderr
    expected = int(((stored["smugglers"] >= 1) & (stored["transport_mode"] != "car")).sum())
    assert f"Feature Count: {expected}" in result.stdout
    assert set(f for f in _fetched_filters(result.stderr, "events") if f) == {
        "(smugglers >= 1) AND (transport_mode <> 'car')"}


@pytest.mark.parametrize(("where", "sent", "reference"), [
    ("persons BETWEEN 2 AND 4 OR destination_country IS NOT NULL",
     "((persons >= 2) AND (persons <= 4)) OR (NOT ((destination_country IS NULL)))",
     lambda e: e["persons"].between(2, 4) | e["destination_country"].notna()),
    ("observed_at >= '2025-06-01' AND NOT (location_kind = 'motorway')",
     "(observed_at >= '2025-06-01T') AND (NOT (location_kind = 'motorway'))",
     lambda e: (e["observed_at"] >= pd.Timestamp("2025-06-01", tz=TZ)) & (e["location_kind"] != "motorway")),
    ("region LIKE 'N%' AND persons < 3", "(region LIKE 'N%') AND (persons < 3)",
     lambda e: e["region"].str.startswith("N").fillna(False) & (e["persons"] < 3)),
])
def test_gdal_python_bindings_send_the_whole_where(server, where, sent, reference):
    url, stored, store_path = server
    expected = stored[reference(stored).fillna(False).to_numpy(dtype=bool)]
    assert 0 < len(expected) < N_EVENTS
    options = {"GDAL_HTTP_AUTH": "BASIC", "GDAL_HTTP_USERPWD": f"gis:{PASSWORD}"}
    pyogrio.set_gdal_config_options(options)
    try:
        before = len(_event_reads(store_path))
        gdf = pyogrio.read_dataframe(f"OAPIF:{url}", layer="events", where=where, PAGE_SIZE="40")
    finally:
        pyogrio.set_gdal_config_options({key: None for key in options})
    assert sorted(gdf["event_id"]) == sorted(expected["event_id"])
    reads = _event_reads(store_path)[: len(_event_reads(store_path)) - before]
    filtered = [r for r in reads if parse_qs(r["query"]).get("filter") == [sent]]
    assert filtered and sum(r["rows"] for r in filtered) == len(expected)
