"""Tests of the OGC API – Features endpoints (webapp.ogc) and their OpenAPI document, via Flask's test client."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
from openapi_spec_validator import validate as validate_openapi
from pyproj import Transformer
from shapely.geometry import box, shape
from webfixtures import Site
from webfixtures import make_site as make_api_site

from geo_ibm import layers
from geo_ibm.demo import generate_events
from webapp.ogc import COLLECTIONS, CONFORMANCE

N_EVENTS = 400
TO_LONLAT = Transformer.from_crs("EPSG:2169", "EPSG:4326", always_xy=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return make_site(tmp_path_factory.mktemp("ogc") / "store.gpkg", seed=5)


def make_site(path, *, seed: int, n_events: int = N_EVENTS) -> Site:
    return make_api_site(path, seed=seed, n_events=n_events)


def rels(links: list[dict]) -> dict[str, dict]:
    return {link["rel"]: link for link in links}


def local(href: str) -> str:
    parts = urlsplit(href)
    return parts.path + ("?" + parts.query if parts.query else "")


def ids(body: dict) -> list:
    return [f["id"] for f in body["features"]]


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize(
    "url",
    ["/ogc/", "/ogc/conformance", "/ogc/api", "/ogc/collections", "/ogc/collections/outline",
     "/ogc/collections/outline/items", "/ogc/collections/events/items", "/ogc/collections/events/items/DEMO-000001"],
)
def test_login_required(site, url):
    response = site.get(url, role=None)
    assert response.status_code == 401
    assert "Basic" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("url", "role", "status"),
    [
        ("/ogc/collections/outline/items", "viewer", 200),
        ("/ogc/collections/hotspots/items?limit=1", "viewer", 200),
        ("/ogc/collections/events", "viewer", 200),
        ("/ogc/collections/events/items", "viewer", 403),
        ("/ogc/collections/events/items/DEMO-000001", "viewer", 403),
        ("/ogc/collections/events/items?limit=1", "analyst", 200),
    ],
)
def test_roles(site, url, role, status):
    assert site.get(url, role=role).status_code == status


# --------------------------------------------------------------------------- discovery


def test_landing_page(site):
    response = site.get("/ogc/", role="viewer")
    assert response.status_code == 200
    links = rels(response.get_json()["links"])
    assert {"self", "service-desc", "conformance", "data"} <= set(links)
    assert links["service-desc"]["type"].startswith("application/vnd.oai.openapi+json")
    for rel in ("service-desc", "conformance", "data"):
        assert links[rel]["href"].startswith("http://localhost/ogc/")
        assert site.get(local(links[rel]["href"]), role="viewer").status_code == 200


def test_conformance(site):
    body = site.get("/ogc/conformance", role="viewer").get_json()
    assert set(body["conformsTo"]) == set(CONFORMANCE)
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in body["conformsTo"]


def test_openapi_document_is_valid(site):
    response = site.get("/ogc/api", role="viewer")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.oai.openapi+json"
    doc = response.get_json()
    validate_openapi(doc)
    paths = set(doc["paths"])
    assert {"/api/events", "/api/hotspots", "/api/layers/{name}", "/ogc/collections"} <= paths
    for cid in COLLECTIONS:
        assert f"/ogc/collections/{cid}/items" in paths
    event_params = {p["name"] for p in doc["paths"]["/ogc/collections/events/items"]["get"]["parameters"]}
    assert {"bbox", "limit", "offset", "datetime", "entry_country", "quarter"} <= event_params
    # Every route of the two blueprints is described.
    for rule in site.app.url_map.iter_rules():
        if rule.endpoint.startswith(("api.", "ogc.")) and "<" not in rule.rule:
            assert rule.rule in paths, rule.rule


def test_collections(site):
    body = site.get("/ogc/collections", role="viewer").get_json()
    got = {c["id"]: c for c in body["collections"]}
    assert set(got) == {"outline", "internal-borders", "tripoints", "crossing-points", "regions", "cantons",
                        "corridors", "events", "hotspots", "route_segments", "route_corridors", "route_flows",
                        "route_crossings", "route_lixels"}
    for cid, coll in got.items():
        links = rels(coll["links"])
        assert links["items"]["type"] == "application/geo+json"
        assert links["items"]["href"].endswith(f"/ogc/collections/{cid}/items")
        xmin, ymin, xmax, ymax = coll["extent"]["spatial"]["bbox"][0]
        assert 5.7 < xmin < xmax < 6.6 and 49.4 < ymin < ymax < 50.3
        assert coll["crs"] == ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"]
    # a viewer sees whole quarters: the exact first and last times would date single interceptions
    first, last = got["events"]["extent"]["temporal"]["interval"][0]
    earliest, latest = site.events["observed_at"].min(), site.events["observed_at"].max()
    assert earliest != pd.Timestamp("2024-01-01 00:00", tz="Europe/Luxembourg")  # (so the test can fail)
    assert pd.Timestamp(first) == pd.Timestamp("2024-01-01 00:00", tz="Europe/Luxembourg")
    assert earliest.year == 2024 and earliest.quarter == 1
    assert pd.Timestamp(last) == pd.Timestamp("2026-10-01 00:00", tz="Europe/Luxembourg")
    assert latest.year == 2026 and latest.quarter == 3
    assert all(c["extent"]["temporal"]["interval"] == [[first, last]] for c in got.values() if "temporal" in c["extent"])
    # an analyst, the times themselves
    exact = site.get("/ogc/collections/events", role="analyst").get_json()["extent"]["temporal"]["interval"][0]
    assert pd.Timestamp(exact[0]) == earliest and pd.Timestamp(exact[1]) == latest
    single = site.get("/ogc/collections/cantons", role="viewer").get_json()
    assert single["id"] == "cantons" and single["itemType"] == "feature"


# --------------------------------------------------------------------------- items


@pytest.mark.parametrize(
    ("cid", "function"),
    [("outline", layers.luxembourg_outline), ("internal-borders", layers.internal_borders),
     ("tripoints", layers.tripoints), ("crossing-points", layers.crossing_points),
     ("regions", layers.police_regions), ("cantons", layers.cantons), ("corridors", layers.road_corridors)],
)
def test_reference_items(site, cid, function):
    response = site.get(f"/ogc/collections/{cid}/items?limit=10000", role="viewer")
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    body = response.get_json()
    expected = function()
    assert body["numberMatched"] == body["numberReturned"] == len(expected) == len(body["features"])
    assert "next" not in rels(body["links"])
    # Independent check of the geometry: area/length in lon/lat of the reprojected layer.
    web = expected.to_crs("EPSG:4326")
    for feature, geom in zip(body["features"], web.geometry):
        # Rounding to 1e-7 degrees moves no vertex further than that.
        assert shape(feature["geometry"]).hausdorff_distance(geom) < 1.5e-7
    fid = body["features"][-1]["id"]
    one = site.get(f"/ogc/collections/{cid}/items/{fid}", role="viewer")
    assert one.status_code == 200
    assert one.get_json()["id"] == fid
    assert one.get_json()["properties"] == body["features"][-1]["properties"]


def test_events_paging_follows_next_links(site):
    url = "/ogc/collections/events/items?limit=150"
    seen, pages = [], 0
    while url:
        body = site.get(url).get_json()
        assert body["numberMatched"] == N_EVENTS
        seen += ids(body)
        pages += 1
        links = rels(body["links"])
        assert parse_qs(urlsplit(links["self"]["href"]).query)["limit"] == ["150"]
        if pages > 1:
            assert "prev" in links
        url = local(links["next"]["href"]) if "next" in links else None
    assert pages == 3
    assert len(seen) == len(set(seen)) == N_EVENTS
    assert set(seen) == set(site.events["event_id"])


def test_limit_above_maximum_is_clamped(site):
    body = site.get("/ogc/collections/hotspots/items?limit=50000", role="analyst").get_json()
    assert body["numberReturned"] == min(10000, body["numberMatched"])
    assert parse_qs(urlsplit(rels(body["links"])["self"]["href"]).query)["limit"] == ["10000"]


def test_events_default_limit_is_100(site):
    body = site.get("/ogc/collections/events/items").get_json()
    assert body["numberReturned"] == 100 and body["numberMatched"] == N_EVENTS


def test_events_bbox_and_filters_keep_through_next_links(site):
    bbox = (5.9, 49.45, 6.25, 49.7)
    x, y = TO_LONLAT.transform(site.events.geometry.x.to_numpy(), site.events.geometry.y.to_numpy())
    inside = (x >= bbox[0]) & (x <= bbox[2]) & (y >= bbox[1]) & (y <= bbox[3]) & (site.events["entry_country"] == "FR").to_numpy()
    expected = set(site.events["event_id"][inside])
    assert len(expected) > 12
    url = "/ogc/collections/events/items?limit=10&entry_country=FR&bbox=" + ",".join(map(str, bbox))
    seen = []
    while url:
        body = site.get(url).get_json()
        assert body["numberMatched"] == len(expected)
        for feature in body["features"]:
            lon, lat = feature["geometry"]["coordinates"]
            assert bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3]
            assert feature["properties"]["entry_country"] == "FR"
        seen += ids(body)
        links = rels(body["links"])
        url = local(links["next"]["href"]) if "next" in links else None
    assert set(seen) == expected and len(seen) == len(expected)


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [("2025-01-01/2025-06-30", "2025-01-01", "2025-07-01"), ("../2025-01-01", None, "2025-01-02"),
     ("2025-01-01/..", "2025-01-01", None), ("2025-03-10", "2025-03-10", "2025-03-11"),
     ("2025-01-01T00:00:00Z/2025-02-01T00:00:00Z", "2025-01-01T00:00:00Z", "2025-02-01T00:00:01Z")],
)
def test_events_datetime(site, value, start, end):
    when = site.events["observed_at"]
    mask = np.ones(len(when), dtype=bool)
    if start:
        mask &= (when >= pd.Timestamp(start).tz_localize("Europe/Luxembourg") if "Z" not in start else when >= pd.Timestamp(start)).to_numpy()
    if end:
        mask &= (when < pd.Timestamp(end).tz_localize("Europe/Luxembourg") if "Z" not in end else when < pd.Timestamp(end)).to_numpy()
    body = site.get(f"/ogc/collections/events/items?limit=10000&datetime={value}").get_json()
    assert body["numberMatched"] == int(mask.sum())
    assert set(ids(body)) == set(site.events["event_id"][mask])


def test_reference_bbox_uses_intersection(site):
    bbox = (6.05, 49.55, 6.2, 49.65)  # around Luxembourg City
    body = site.get("/ogc/collections/cantons/items?bbox=" + ",".join(map(str, bbox)), role="viewer").get_json()
    web = layers.cantons().to_crs("EPSG:4326")
    expected = set(web.loc[web.intersects(box(*bbox)), "canton"])
    assert set(ids(body)) == expected and "Luxembourg" in expected and len(expected) < len(web)


def test_hotspots_collection_is_cached_until_the_store_changes(tmp_path):
    site = make_site(tmp_path / "cache.gpkg", seed=8)
    first = site.get("/ogc/collections/hotspots/items?limit=10000", role="analyst").get_json()
    features = list(first["features"])
    second = site.get("/ogc/collections/hotspots/items?limit=10000&offset=10000", role="analyst").get_json()
    features += second["features"]
    assert first["numberMatched"] == len(features) > 0
    params = first["parameters"]
    assert params["method"] == "gi" and params["n_events"] == N_EVENTS and params["cell"] > 0
    assert sum(f["properties"]["count"] for f in features) == N_EVENTS - params.get("n_outside_grid", 0)
    def hotspot_cache() -> set:
        return set(site.app.extensions["geo_ibm_cache"].keys("ogc-hotspots"))

    cached = hotspot_cache()
    again = site.get("/ogc/collections/hotspots/items?limit=10000", role="analyst").get_json()
    assert again["features"] == first["features"] and hotspot_cache() == cached
    cell = first["features"][0]["id"]
    one = site.get(f"/ogc/collections/hotspots/items/{cell}", role="analyst").get_json()
    assert one["properties"]["gi_z"] == first["features"][0]["properties"]["gi_z"]
    extra, _ = generate_events(40, seed=99)
    extra["event_id"] = [f"EXTRA-{i}" for i in range(len(extra))]
    site.store.import_events(extra, source="extra", user="test")
    after = site.get("/ogc/collections/hotspots/items?limit=10000", role="analyst").get_json()
    assert after["parameters"]["n_events"] == N_EVENTS + 40
    assert hotspot_cache() != cached


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("url", "status", "parameter"),
    [
        ("/ogc/collections/rivers", 404, None),
        ("/ogc/collections/rivers/items", 404, None),
        ("/ogc/collections/rivers/items/1", 404, None),
        ("/ogc/collections/cantons/items/Atlantis", 404, None),
        ("/ogc/collections/events/items/NOPE", 404, None),
        ("/ogc/collections/outline/items?bbox=1,2,3", 400, "bbox"),
        ("/ogc/collections/outline/items?bbox=6,50,5,49", 400, "bbox"),
        ("/ogc/collections/outline/items?bbox=6,49,6.5,95", 400, "bbox"),
        ("/ogc/collections/outline/items?bbox=x,49,6.5,50", 400, "bbox"),
        ("/ogc/collections/outline/items?limit=0", 400, "limit"),
        ("/ogc/collections/outline/items?limit=1.5", 400, "limit"),
        ("/ogc/collections/outline/items?offset=-5", 400, "offset"),
        ("/ogc/collections/events/items?datetime=2025-02-30", 400, "datetime"),
        ("/ogc/collections/events/items?datetime=../..", 400, "datetime"),
        ("/ogc/collections/events/items?entry_country=XX", 400, "entry_country"),
        ("/ogc/collections/events/items?quarter=Q1", 400, "quarter"),
        ("/ogc/collections/outline/items?entry_country=FR", 400, "entry_country"),
        ("/ogc/collections/events/items?colour=red", 400, "colour"),
        ("/ogc/collections/outline/items?f=html", 400, "f"),
        ("/ogc/collections?limit=3", 400, "limit"),
    ],
)
def test_errors(site, url, status, parameter):
    response = site.get(url, role="admin")
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == ("NotFound" if status == 404 else "InvalidParameterValue")
    assert body.get("parameter") == parameter
    if parameter:
        assert repr(parameter) in body["description"]


def test_f_json_is_accepted(site):
    for url in ("/ogc/?f=json", "/ogc/collections?f=json", "/ogc/collections/outline/items?f=json"):
        assert site.get(url, role="viewer").status_code == 200


def test_small_store_gives_empty_hotspots_not_an_error(tmp_path):
    site = make_site(tmp_path / "small.gpkg", seed=3, n_events=12)
    body = site.get("/ogc/collections/hotspots/items", role="analyst").get_json()
    assert body["numberMatched"] == 0 and body["features"] == []
    assert body["parameters"]["n_events"] == 12
    assert "too few" in body["parameters"]["note"]
    events = site.get("/ogc/collections/events/items").get_json()
    assert events["numberMatched"] == 12
    # The JSON API, where parameters are the caller's, says 400 instead.
    response = site.get("/api/hotspots", role="viewer")
    assert response.status_code == 400 and "too few" in response.get_json()["description"]


def test_links_use_the_configured_public_url_not_the_host_header(site):
    site.app.config["PUBLIC_URL"] = "https://geo-ibm.example.lu/"
    try:
        body = site.get("/ogc/collections", role="viewer", headers={"Host": "evil.example"}).get_json()
        api = site.get("/ogc/api", role="viewer", headers={"Host": "evil.example"}).get_json()
    finally:
        site.app.config["PUBLIC_URL"] = "http://localhost"
    hrefs = [link["href"] for link in body["links"]] + [link["href"] for c in body["collections"] for link in c["links"]]
    own = [h for h in hrefs if "opendatacommons" not in h]
    assert own and all(h.startswith("https://geo-ibm.example.lu/ogc/") for h in own)
    assert api["servers"] == [{"url": "https://geo-ibm.example.lu"}]
    assert not any("evil.example" in h for h in hrefs)


def test_cached_pages_follow_every_import(tmp_path):
    # Pages are kept per store version: an import changes the version, so the next request
    # for the same page reads the events again (a new event earlier than all others is first).
    from webfixtures import demo_events, events_csv

    fresh = make_site(tmp_path / "store.gpkg", seed=5, n_events=60)
    url = "/ogc/collections/events/items?limit=5"
    before = fresh.get(url).get_json()
    assert fresh.get(url).get_json()["features"] == before["features"]  # served from the cache
    extra = demo_events(3, seed=9)
    extra["observed_at"] = pd.Timestamp("2019-01-01T08:00", tz="Europe/Luxembourg")
    path = tmp_path / "extra.csv"
    path.write_text(events_csv(extra, id_prefix="NEW-"), encoding="utf-8")
    fresh.store.import_file(path, user="test")
    after = fresh.get(url).get_json()
    assert after["numberMatched"] == before["numberMatched"] + 3
    assert after["features"][0]["id"].startswith("NEW-")
    api = fresh.get("/api/events?limit=5").get_json()
    assert api["numberMatched"] == before["numberMatched"] + 3 and api["features"][0]["id"].startswith("NEW-")


def item_keys(site: Site, query: bytes) -> list:
    """The kept ``/items`` answers of ``query`` (the query string is part of each key)."""
    return [k for k in site.app.extensions["geo_ibm_cache"].keys("ogc-items") if k[2][1] == query]


def test_items_answers_are_kept_per_query_and_reader(site):
    # Two readers of one URL: the analyst's Gi* z-scores must never reach the viewer, whose
    # answer is the protected one even when the analyst's is kept.
    url = "/ogc/collections/hotspots/items?limit=777"
    analyst = site.get(url, role="analyst").get_json()
    viewer = site.get(url, role="viewer").get_json()
    assert analyst["features"] and all("gi_z" in f["properties"] for f in analyst["features"])
    assert viewer["features"] and all("gi_z" not in f["properties"] for f in viewer["features"])
    assert viewer["parameters"]["disclosure"]["cell_m"] == 500 and "disclosure" not in analyst["parameters"]
    assert len(item_keys(site, b"limit=777")) == 2
    # Served again, the same answers; only the time stamp is the response's own.
    again = site.get(url, role="viewer").get_json()
    assert {k: v for k, v in again.items() if k != "timeStamp"} == {k: v for k, v in viewer.items() if k != "timeStamp"}
    stamp = pd.Timestamp(again["timeStamp"])
    assert stamp.tzinfo is not None and abs(pd.Timestamp.now(tz="UTC") - stamp) < pd.Timedelta(minutes=1)
    assert len(item_keys(site, b"limit=777")) == 2


def test_kept_items_links_follow_the_configured_public_url(site):
    url = "/ogc/collections/events/items?limit=3&offset=3"
    first = site.get(url).get_json()
    assert rels(first["links"])["next"]["href"].startswith("http://localhost/ogc/")
    site.app.config["PUBLIC_URL"] = "https://geo-ibm.example.lu"
    try:
        moved = site.get(url, headers={"Host": "evil.example"}).get_json()
    finally:
        site.app.config["PUBLIC_URL"] = "http://localhost"
    assert ids(moved) == ids(first)
    hrefs = [link["href"] for link in moved["links"]]
    assert all(h.startswith("https://geo-ibm.example.lu/ogc/") for h in hrefs)
    assert local(rels(moved["links"])["next"]["href"]) == local(rels(first["links"])["next"]["href"])


def test_every_kept_events_page_is_audited(site):
    import json

    url = "/ogc/collections/events/items?limit=4&offset=8"

    def tally() -> int:
        log = site.store.audit_log(limit=200)
        details = [d if isinstance(d, dict) else json.loads(d) for d in log.loc[log["action"] == "record_read", "detail"]]
        mine = [d for d in details if d.get("what") == "events" and parse_qs(d["query"]) == {"limit": ["4"], "offset": ["8"]}]
        return sum(int(d.get("count", 1)) for d in mine)

    before = tally()
    bodies = [site.get(url).get_json() for _ in range(3)]
    assert len(item_keys(site, b"limit=4&offset=8")) == 1  # built once, served three times
    assert all(ids(b) == ids(bodies[0]) and b["numberReturned"] == 4 for b in bodies)
    assert tally() == before + 3
