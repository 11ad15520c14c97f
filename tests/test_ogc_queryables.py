"""OGC API – Features Part 3 queryables and the ``name=value`` filters of ``/items``: in process, then with GDAL and OWSLib against ``geo-ibm serve``."""
from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pyogrio
import pytest
from owslib.ogcapi.features import Features
from owslib.util import Authentication
from webfixtures import Site, make_site, serve_store

from geo_ibm import layers
from geo_ibm.accounts import add_user
from geo_ibm.demo import generate_events
from geo_ibm.store import open_store
from webapp.ogc import COLLECTIONS, CONFORMANCE, QUERYABLES_REL, filter_features
from webapp.openapi import build_openapi

PASSWORD = "correct-horse-battery"
N_EVENTS = 240


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return make_site(tmp_path_factory.mktemp("queryables") / "store.gpkg", seed=21, n_events=400)


def features(site: Site, url: str, role: str = "analyst") -> dict:
    response = site.get(url, role=role)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def every_feature(site: Site, url: str, role: str = "analyst") -> list[dict]:
    """All features of ``url``, page after page (a viewer's hotspot grid has more than one page)."""
    out: list[dict] = []
    while True:
        page = features(site, f"{url}{'&' if '?' in url else '?'}limit=10000&offset={len(out)}", role=role)
        out.extend(page["features"])
        if len(out) >= page["numberMatched"] or not page["features"]:
            return out


# --------------------------------------------------------------------------- the documents


def test_every_collection_links_its_queryables_and_serves_a_json_schema(site):
    listing = features(site, "/ogc/collections", role="viewer")
    for doc in listing["collections"]:
        links = [link for link in doc["links"] if link["rel"] == QUERYABLES_REL]
        assert len(links) == 1 and links[0]["type"] == "application/schema+json"
        path = links[0]["href"].removeprefix("http://localhost")
        assert path == f"/ogc/collections/{doc['id']}/queryables"
        response = site.get(path, role="viewer")
        assert response.status_code == 200 and response.mimetype == "application/schema+json"
        schema = response.get_json()
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert list(schema["properties"]) == [q.name for q in COLLECTIONS[doc["id"]].queryables]
    conformance = features(site, "/ogc/conformance", role="viewer")["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables" in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters" in conformance
    assert set(conformance) == set(CONFORMANCE)


def test_queryables_list_the_values_clients_can_pick(site):
    from geo_ibm.events import ENTRY_COUNTRIES, TRANSPORT_MODES

    events = features(site, "/ogc/collections/events/queryables", role="viewer")["properties"]
    assert events["entry_country"]["enum"] == list(ENTRY_COUNTRIES)
    assert events["transport_mode"]["enum"] == list(TRANSPORT_MODES)
    assert events["region"]["enum"] == sorted(layers.police_regions()["region"])
    assert "enum" not in events["quarter"] and events["quarter"]["type"] == "string"
    borders = features(site, "/ogc/collections/internal-borders/queryables", role="viewer")["properties"]
    assert borders["neighbour"]["enum"] == sorted(layers.internal_borders()["neighbour"])
    hot = features(site, "/ogc/collections/hotspots/queryables", role="viewer")["properties"]
    assert hot["gi_bin"] == {"title": hot["gi_bin"]["title"], "type": "integer", "minimum": -3, "maximum": 3}


def test_openapi_declares_queryables_and_their_parameters():
    doc = build_openapi(server_url="http://localhost", collections=COLLECTIONS, cookie_name="s")
    for cid, coll in COLLECTIONS.items():
        op = doc["paths"][f"/ogc/collections/{cid}/queryables"]["get"]
        assert "application/schema+json" in op["responses"]["200"]["content"]
        names = {p["name"] for p in doc["paths"][f"/ogc/collections/{cid}/items"]["get"]["parameters"]}
        assert {q.name for q in coll.queryables} <= names
    hot = {p["name"]: p for p in doc["paths"]["/ogc/collections/hotspots/items"]["get"]["parameters"]}
    assert hot["gi_bin"]["schema"]["anyOf"][0] == {"type": "integer", "minimum": -3, "maximum": 3}


# --------------------------------------------------------------------------- filters in process


def test_hotspot_filter_equals_filtering_the_whole_collection(site):
    whole = features(site, "/ogc/collections/hotspots/items?limit=10000")
    for b in (3, 2, -1, 0):
        expected = sorted(f["id"] for f in whole["features"] if f["properties"]["gi_bin"] == b)
        got = features(site, f"/ogc/collections/hotspots/items?limit=10000&gi_bin={b}")
        assert got["numberMatched"] == len(expected)
        assert sorted(f["id"] for f in got["features"]) == expected
    both = features(site, "/ogc/collections/hotspots/items?limit=10000&gi_bin=3&gi_bin_fdr=3")
    assert sorted(f["id"] for f in both["features"]) == sorted(
        f["id"] for f in whole["features"] if f["properties"]["gi_bin"] == 3 and f["properties"]["gi_bin_fdr"] == 3)
    assert features(site, "/ogc/collections/hotspots/items?gi_bin=")["numberMatched"] == whole["numberMatched"]


def test_viewer_filters_select_among_the_disclosed_cells_only(site):
    shown = {f["id"]: f["properties"] for f in every_feature(site, "/ogc/collections/hotspots/items", role="viewer")}
    for b in (0, 1, 2, 3):
        got = every_feature(site, f"/ogc/collections/hotspots/items?gi_bin={b}", role="viewer")
        for feature in got:
            # The same cell with the same (rounded) properties as the unfiltered viewer's pages.
            assert shown[feature["id"]] == feature["properties"]
        assert len(got) == sum(1 for p in shown.values() if p["gi_bin"] == b)
    assert site.get("/ogc/collections/events/items?entry_country=FR", role="viewer").status_code == 403


def test_reference_filters(site):
    expected = layers.crossing_points()
    for kind in sorted(set(expected["kind"])):
        got = features(site, f"/ogc/collections/crossing-points/items?kind={kind}", role="viewer")
        assert sorted(f["id"] for f in got["features"]) == sorted(expected.loc[expected["kind"] == kind, "crossing_id"])
    fr = features(site, "/ogc/collections/internal-borders/items?neighbour=FR", role="viewer")
    assert [f["id"] for f in fr["features"]] == ["FR"]
    none = features(site, "/ogc/collections/cantons/items?region=Atlantis", role="viewer")
    assert none["numberMatched"] == 0 and none["features"] == []
    paged = features(site, "/ogc/collections/crossing-points/items?neighbour=DE&limit=2", role="viewer")
    next_link = next(link["href"] for link in paged["links"] if link["rel"] == "next")
    assert "neighbour=DE" in next_link


def test_event_filters_are_the_store_filters(site):
    events = site.events
    got = features(site, "/ogc/collections/events/items?entry_country=FR&transport_mode=car&limit=1000")
    expected = events[(events["entry_country"] == "FR") & (events["transport_mode"] == "car")]
    assert sorted(f["id"] for f in got["features"]) == sorted(expected["event_id"])


@pytest.mark.parametrize(("query", "parameter"), [
    ("gi_bin=4", "gi_bin"), ("gi_bin=-4", "gi_bin"), ("gi_bin=hot", "gi_bin"), ("gi_bin=1.5", "gi_bin"),
    ("gi_bin=1&gi_bin=2", "gi_bin"), ("gi_bin_fdr=x", "gi_bin_fdr"), ("count=3", "count"),
])
def test_bad_hotspot_filters_are_400_naming_the_parameter(site, query, parameter):
    response = site.get(f"/ogc/collections/hotspots/items?{query}")
    assert response.status_code == 400
    assert response.get_json()["parameter"] == parameter


def test_bad_text_filters_are_400_naming_the_parameter(site):
    long = site.get("/ogc/collections/corridors/items?name=" + "x" * 81, role="viewer")
    assert long.status_code == 400 and long.get_json()["parameter"] == "name"
    twice = site.get("/ogc/collections/cantons/items?canton=Capellen&canton=Esch", role="viewer")
    assert twice.status_code == 400 and twice.get_json()["parameter"] == "canton"
    other = site.get("/ogc/collections/cantons/items?neighbour=FR", role="viewer")
    assert other.status_code == 400 and other.get_json()["parameter"] == "neighbour"
    queryables = site.get("/ogc/collections/cantons/queryables?x=1", role="viewer")
    assert queryables.status_code == 400
    assert site.get("/ogc/collections/nowhere/queryables", role="viewer").status_code == 404


def test_filter_features_matches_nothing_on_a_missing_column():
    import geopandas as gpd
    from shapely.geometry import Point

    frame = gpd.GeoDataFrame({"a": ["x", None, "y"], "n": [1, 2, 1]}, geometry=[Point(0, 0)] * 3, crs="EPSG:4326")
    assert list(filter_features(frame, {"a": "x"}).index) == [0]
    assert list(filter_features(frame, {"n": 1}).index) == [0, 2]
    assert list(filter_features(frame, {"a": "None"}).index) == []
    assert filter_features(frame, {"gi_bin": 3}).empty


# --------------------------------------------------------------------------- GDAL and OWSLib over HTTP


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``geo-ibm serve`` on 127.0.0.1 at a free port; yields (base url, events, store path)."""
    folder = tmp_path_factory.mktemp("queryables-http")
    path = folder / "store.gpkg"
    store = open_store(path)
    store.init()
    events, _truth = generate_events(N_EVENTS, seed=21)
    assert store.import_events(events, source="test_ogc_queryables", user="test").accepted == N_EVENTS
    add_user(store, "gis", "analyst", PASSWORD)
    with serve_store(path, folder) as url:
        yield url, events, path


def _ogrinfo(*args: str) -> subprocess.CompletedProcess:
    """The system ``ogrinfo`` with basic credentials and GDAL's debug output (the URLs it fetches) on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDAL_HTTP")}
    auth = ["--config", "GDAL_HTTP_AUTH", "BASIC", "--config", "GDAL_HTTP_USERPWD", f"gis:{PASSWORD}",
            "--config", "CPL_DEBUG", "ON"]
    return subprocess.run(["ogrinfo", "-ro", *auth, *args], capture_output=True, text=True, timeout=120, env=env)


def _fetched(stderr: str) -> list[str]:
    return [line.split("Fetch(", 1)[1].rstrip(")") for line in stderr.splitlines() if "HTTP: Fetch(" in line]


def _event_reads(store_path) -> list[dict]:
    log = open_store(store_path).audit_log(limit=1000)
    details = [d if isinstance(d, dict) else json.loads(d) for d in log.loc[log["action"] == "record_read", "detail"]]
    return [d for d in details if d.get("what") == "events"]


def _sent_filter(url_or_query: str) -> str | None:
    """The CQL2 ``filter`` of a URL or query string, checked to come with GDAL's ``filter-lang``, or ``None``."""
    query = parse_qs(urlsplit(url_or_query).query if "://" in url_or_query else url_or_query)
    if "filter" not in query:
        return None
    assert query["filter-lang"] == ["cql-text"]
    return query["filter"][0]


def test_ogrinfo_where_on_events_is_sent_as_a_cql2_filter(server):
    url, events, store_path = server
    before = len(_event_reads(store_path))
    result = _ogrinfo("-al", "-oo", "PAGE_SIZE=100", "-where", "entry_country = 'FR' AND transport_mode = 'car'",
                      f"OAPIF:{url}", "events")
    assert result.returncode == 0, result.stderr
    expected = events[(events["entry_country"] == "FR") & (events["transport_mode"] == "car")]
    assert 0 < len(expected) < N_EVENTS
    assert result.stdout.count("OGRFeature(events)") == len(expected)
    # GDAL reads one unfiltered page to learn the fields, then asks for the filtered features only,
    # with the whole -where as a CQL2 filter (the OpenAPI document lists filter-lang cql-text).
    probe, *item_urls = [u for u in _fetched(result.stderr) if "/collections/events/items" in u]
    assert _sent_filter(probe) is None
    sent = "(entry_country = 'FR') AND (transport_mode = 'car')"
    assert item_urls and all(_sent_filter(u) == sent for u in item_urls)
    # The server received the filter and sent only the matching events (its audit of the reads says so).
    reads = _event_reads(store_path)[: len(_event_reads(store_path)) - before]
    filtered = [r for r in reads if _sent_filter(r["query"]) == sent]
    assert filtered and sum(r["rows"] for r in filtered) == len(expected)
    assert [r["query"] for r in reads if r not in filtered] == ["limit=100"]


def test_ogrinfo_where_on_hotspots_and_reference_layers_is_sent(server):
    url, _events, _path = server
    result = _ogrinfo("-al", "-q", "-where", "neighbour = 'DE'", f"OAPIF:{url}", "crossing-points")
    assert result.returncode == 0, result.stderr
    expected = layers.crossing_points()
    assert result.stdout.count("OGRFeature(crossing-points)") == int((expected["neighbour"] == "DE").sum())
    assert any("/collections/crossing-points/items" in u and _sent_filter(u) == "neighbour = 'DE'"
               for u in _fetched(result.stderr))
    hot = _ogrinfo("-al", "-q", "-where", "gi_bin = 3", f"OAPIF:{url}", "hotspots")
    assert hot.returncode == 0, hot.stderr
    sent = [u for u in _fetched(hot.stderr) if "/collections/hotspots/items" in u and _sent_filter(u) == "gi_bin = 3"]
    assert sent
    with urllib.request.urlopen(urllib.request.Request(sent[-1], headers={"Authorization": _basic()})) as response:
        page = json.loads(response.read())
    assert hot.stdout.count("OGRFeature(hotspots)") == page["numberMatched"]
    assert all(f["properties"]["gi_bin"] == 3 for f in page["features"])


def _basic() -> str:
    import base64

    return "Basic " + base64.b64encode(f"gis:{PASSWORD}".encode()).decode()


def test_gdal_python_bindings_filter_on_the_server(server):
    url, events, store_path = server
    options = {"GDAL_HTTP_AUTH": "BASIC", "GDAL_HTTP_USERPWD": f"gis:{PASSWORD}"}
    pyogrio.set_gdal_config_options(options)
    try:
        before = len(_event_reads(store_path))
        gdf = pyogrio.read_dataframe(f"OAPIF:{url}", layer="events", where="location_kind = 'motorway'", PAGE_SIZE="50")
    finally:
        pyogrio.set_gdal_config_options({key: None for key in options})
    expected = events[events["location_kind"] == "motorway"]
    assert sorted(gdf["event_id"]) == sorted(expected["event_id"])
    reads = _event_reads(store_path)[: len(_event_reads(store_path)) - before]
    filtered = [r for r in reads if _sent_filter(r["query"]) == "location_kind = 'motorway'"]
    assert filtered and sum(r["rows"] for r in filtered) == len(expected)
    assert len(reads) - len(filtered) == 1  # the page GDAL reads to learn the fields


def test_owslib_reads_queryables_and_filters(server):
    url, events, _path = server
    api = Features(url, auth=Authentication(username="gis", password=PASSWORD))
    queryables = api.collection_queryables("events")
    assert "entry_country" in queryables["properties"]
    page = api.collection_items("events", entry_country="DE", limit=500)
    expected = events[events["entry_country"] == "DE"]
    assert page["numberMatched"] == len(expected)
    assert sorted(f["id"] for f in page["features"]) == sorted(expected["event_id"])
    borders = api.collection_items("internal-borders", neighbour="BE")
    assert [f["id"] for f in borders["features"]] == ["BE"]


def test_the_landing_page_describes_the_ogc_api_with_its_own_document(site):
    from openapi_spec_validator import validate as validate_openapi

    links = {link["rel"]: link for link in features(site, "/ogc/", role="viewer")["links"]}
    assert links["service-desc"]["href"] == "http://localhost/ogc/openapi"
    assert links["describedby"]["href"] == "http://localhost/ogc/api"
    response = site.get("/ogc/openapi", role="viewer")
    assert response.status_code == 200 and response.mimetype == "application/vnd.oai.openapi+json"
    own = response.get_json()
    validate_openapi(own)
    whole = features(site, "/ogc/api", role="viewer")
    assert own["servers"] == [{"url": "http://localhost/ogc"}]
    # The same operations as the whole document's /ogc paths, written relative to /ogc.
    assert {("/ogc" + p).rstrip("/") or "/ogc" for p in own["paths"]} == {
        p.rstrip("/") for p in whole["paths"] if p.startswith("/ogc/")}
    for path, item in own["paths"].items():
        assert item == whole["paths"]["/ogc" + path]
    assert {p["name"] for p in own["paths"]["/collections/hotspots/items"]["get"]["parameters"]} >= {"gi_bin", "gi_bin_fdr"}
