"""Tests of the JSON API (webapp.api) through Flask's test client on a small synthetic store."""
from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from webfixtures import API_PASSWORD as PASSWORD
from webfixtures import Site, make_site

from geo_ibm import layers
from geo_ibm.hotspots import hotspots_from_events

N_EVENTS = 700
TO_LONLAT = Transformer.from_crs("EPSG:2169", "EPSG:4326", always_xy=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return make_site(tmp_path_factory.mktemp("api") / "store.gpkg", seed=11, n_events=N_EVENTS)


def lonlat(events: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    return TO_LONLAT.transform(events.geometry.x.to_numpy(), events.geometry.y.to_numpy())


def ids(body: dict) -> list[str]:
    return [f["id"] for f in body["features"]]


# --------------------------------------------------------------------------- access


ROUTES = [
    "/api/layers",
    "/api/layers/outline",
    "/api/events",
    "/api/events/DEMO-000001",
    "/api/stats",
    "/api/hotspots",
    "/api/archives",
]


@pytest.mark.parametrize("url", ROUTES)
def test_login_required(site, url):
    response = site.get(url, role=None)
    assert response.status_code == 401
    assert "Basic" in response.headers["WWW-Authenticate"]
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert response.get_json()["code"] == "Unauthorized"


@pytest.mark.parametrize("url", ROUTES[:2])
def test_bad_credentials(site, url):
    response = site.get(url, role=None, headers={"Authorization": "Bearer gib_not-a-token"})
    assert response.status_code == 401
    response = site.app.test_client().get(url, auth=("viewer", "wrong-password"))
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("url", "role", "status"),
    [
        ("/api/layers/outline", "viewer", 200),
        ("/api/stats", "viewer", 200),
        ("/api/events?limit=1", "viewer", 403),
        ("/api/events/DEMO-000001", "viewer", 403),
        ("/api/events?limit=1", "analyst", 200),
        ("/api/events?limit=1", "planner", 200),
        ("/api/events?limit=1", "admin", 200),
    ],
)
def test_roles(site, url, role, status):
    response = site.get(url, role=role)
    assert response.status_code == status
    if status == 403:
        assert response.get_json()["code"] == "Forbidden"
        assert "analyst" in response.get_json()["description"]


def test_basic_auth_works(site):
    response = site.app.test_client().get("/api/layers", auth=("viewer", PASSWORD))
    assert response.status_code == 200
    listed = response.get_json()["layers"]
    assert {layer["name"] for layer in listed} == {"outline", "borders", "tripoints", "crossings", "cantons", "regions", "corridors"}
    for layer in listed:
        assert layer["href"] == f"/api/layers/{layer['name']}"


# --------------------------------------------------------------------------- layers


@pytest.mark.parametrize(
    ("name", "function", "id_column"),
    [
        ("outline", layers.luxembourg_outline, None),
        ("borders", layers.internal_borders, "neighbour"),
        ("tripoints", layers.tripoints, None),
        ("crossings", layers.crossing_points, "crossing_id"),
        ("cantons", layers.cantons, "canton"),
        ("regions", layers.police_regions, "region"),
        ("corridors", layers.road_corridors, None),
    ],
)
def test_layer_geojson(site, name, function, id_column):
    response = site.get(f"/api/layers/{name}", role="viewer")
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    body = response.get_json()
    expected = function()
    assert body["type"] == "FeatureCollection"
    assert len(body["features"]) == len(expected)
    if id_column:
        assert ids(body) == [json_id(v) for v in expected[id_column]]
    # The first vertex of every feature, transformed independently with pyproj.
    for feature, geom in zip(body["features"], expected.geometry):
        first = shapely.get_coordinates(geom)[0]
        lon, lat = TO_LONLAT.transform(first[0], first[1])
        coords = np.asarray(list(walk(feature["geometry"]["coordinates"]))).reshape(-1, 2)
        assert np.min(np.hypot(coords[:, 0] - lon, coords[:, 1] - lat)) < 2e-7
        assert np.all((coords[:, 0] > 5.5) & (coords[:, 0] < 6.8) & (coords[:, 1] > 49.3) & (coords[:, 1] < 50.3))


def json_id(value):
    return value.item() if hasattr(value, "item") else value


def walk(coords):
    if isinstance(coords[0], (int, float)):
        yield from coords[:2]
    else:
        for c in coords:
            yield from walk(c)


def test_unknown_layer(site):
    response = site.get("/api/layers/rivers", role="viewer")
    assert response.status_code == 404
    body = response.get_json()
    assert body["code"] == "NotFound"
    assert "rivers" in body["description"]


# --------------------------------------------------------------------------- events


def test_events_default_page(site):
    body = site.get("/api/events").get_json()
    assert body["numberMatched"] == N_EVENTS
    assert body["numberReturned"] == len(body["features"]) == N_EVENTS  # default limit 1000
    assert sorted(ids(body)) == sorted(site.events["event_id"])
    feature = next(f for f in body["features"] if f["id"] == site.events["event_id"].iloc[0])
    row = site.events.iloc[0]
    lon, lat = TO_LONLAT.transform(row.geometry.x, row.geometry.y)
    assert feature["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-7)
    props = feature["properties"]
    assert props["persons"] == row["persons"]
    assert props["entry_country"] == row["entry_country"]
    assert pd.Timestamp(props["observed_at"]) == row["observed_at"]


def test_events_paging_covers_everything_once(site):
    seen = []
    for offset in range(0, N_EVENTS, 250):
        body = site.get(f"/api/events?limit=250&offset={offset}").get_json()
        assert body["numberMatched"] == N_EVENTS
        assert body["numberReturned"] == min(250, N_EVENTS - offset)
        seen += ids(body)
    assert len(seen) == len(set(seen)) == N_EVENTS
    assert site.get(f"/api/events?offset={N_EVENTS}").get_json()["features"] == []


@pytest.mark.parametrize("column,value", [("entry_country", "FR"), ("entry_country", "BE"), ("transport_mode", "car"),
                                          ("location_kind", "motorway")])
def test_events_code_filter(site, column, value):
    body = site.get(f"/api/events?{column}={value.lower()}").get_json()
    expected = site.events[site.events[column] == value]
    assert len(expected) > 0
    assert body["numberMatched"] == len(expected)
    assert sorted(ids(body)) == sorted(expected["event_id"])


def test_events_bbox_matches_independent_filter(site):
    bbox = (6.0, 49.45, 6.2, 49.65)
    lon, lat = lonlat(site.events)
    inside = (lon >= bbox[0]) & (lon <= bbox[2]) & (lat >= bbox[1]) & (lat <= bbox[3])
    expected = set(site.events["event_id"][inside])
    assert 0 < len(expected) < N_EVENTS
    body = site.get("/api/events?bbox=" + ",".join(map(str, bbox))).get_json()
    assert body["numberMatched"] == len(expected)
    assert set(ids(body)) == expected
    page = site.get("/api/events?limit=7&offset=3&bbox=" + ",".join(map(str, bbox))).get_json()
    assert page["numberMatched"] == len(expected) and page["numberReturned"] == 7
    assert set(ids(page)) <= expected


@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        ("from=2025-01-01&to=2025-03-31", "2025-01-01", "2025-04-01"),
        ("datetime=2025-01-01/2025-03-31", "2025-01-01", "2025-04-01"),
        ("datetime=../2024-06-30", None, "2024-07-01"),
        ("datetime=2026-01-01/..", "2026-01-01", None),
        ("datetime=2025-05-05", "2025-05-05", "2025-05-06"),
    ],
)
def test_events_time_filters(site, query, start, end):
    when = site.events["observed_at"]
    mask = np.ones(len(when), dtype=bool)
    if start:
        mask &= (when >= pd.Timestamp(start).tz_localize("Europe/Luxembourg")).to_numpy()
    if end:
        mask &= (when < pd.Timestamp(end).tz_localize("Europe/Luxembourg")).to_numpy()
    body = site.get(f"/api/events?limit=10000&{query}").get_json()
    assert body["numberMatched"] == int(mask.sum())
    assert sorted(ids(body)) == sorted(site.events["event_id"][mask])


def test_event_by_id(site):
    row = site.events.iloc[5]
    response = site.get(f"/api/events/{row['event_id']}")
    assert response.status_code == 200
    feature = response.get_json()
    assert feature["type"] == "Feature" and feature["id"] == row["event_id"]
    assert feature["properties"]["smugglers"] == row["smugglers"]


def test_event_unknown_id(site):
    response = site.get("/api/events/NOPE-1")
    assert response.status_code == 404
    assert response.get_json()["code"] == "NotFound"


# --------------------------------------------------------------------------- stats


def test_stats_counts_match_pandas(site):
    body = site.get("/api/stats", role="analyst").get_json()
    assert body["total"] == N_EVENTS
    quarters = site.events["observed_at"].dt.tz_convert("Europe/Luxembourg").dt.tz_localize(None).dt.to_period("Q")
    expected = quarters.astype(str).value_counts().to_dict()
    got = {row["quarter"]: row["events"] for row in body["by_quarter"]}
    assert got == expected
    regions = {row["region"]: row["events"] for row in body["by_region"]}
    # Independent region assignment: the police-region polygon containing the point, or the
    # nearest one for events in the margin just outside the border.
    joined = gpd.sjoin_nearest(site.events[["geometry"]], layers.police_regions()[["region", "geometry"]])
    joined = joined[~joined.index.duplicated()]
    assert regions == joined["region"].value_counts().to_dict()
    assert sum(regions.values()) == N_EVENTS


def test_stats_filtered(site):
    body = site.get("/api/stats?entry_country=DE&from=2025-01-01", role="analyst").get_json()
    mask = (site.events["entry_country"] == "DE") & (site.events["observed_at"] >= pd.Timestamp("2025-01-01", tz="Europe/Luxembourg"))
    assert body["total"] == int(mask.sum())
    assert sum(row["events"] for row in body["by_quarter"]) == int(mask.sum())
    assert body["filters"]["entry_country"] == "DE"


@pytest.mark.parametrize("query", ["region=Nord", "quarter=2025-Q1&transport_mode=car", "region=Capitale&from=2024-06-01"])
def test_stats_breakdowns_match_the_store_rows(site, query):
    from urllib.parse import parse_qsl

    body = site.get(f"/api/stats?{query}", role="analyst").get_json()
    args = dict(parse_qsl(query))
    filters = {k: v for k, v in args.items() if k != "from"}
    if "from" in args:
        filters["start"] = args["from"]
    rows = site.store.events(**filters)
    assert body["total"] == len(rows) > 0
    expected_q = rows.groupby("quarter").agg(events=("event_id", "size"), persons=("persons", "sum")).reset_index()
    assert body["by_quarter"] == [{"quarter": q, "events": int(e), "persons": int(p)} for q, e, p in expected_q.itertuples(index=False)]
    expected_r = rows["region"].value_counts().to_dict()
    shown = {row["region"]: row["events"] for row in body["by_region"]}
    if "region" in args:
        assert list(shown) == [args["region"]]
    assert {r: e for r, e in shown.items() if e} == expected_r


# --------------------------------------------------------------------------- hotspots


def test_hotspots_gi_matches_library(site):
    response = site.get("/api/hotspots?method=gi&cell=2000&band=5000&cells=all", role="analyst")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    params = body["parameters"]
    assert params["method"] == "gi" and params["cell"] == 2000 and params["band"] == 5000
    assert params["n_events"] == N_EVENTS
    reference = hotspots_from_events(site.events, study_area=layers.luxembourg_outline(), cell=2000, band=5000)
    assert len(body["features"]) == len(reference)
    got = {f["id"]: f["properties"] for f in body["features"]}
    for row in reference.itertuples():
        assert got[json_id(row.cell_id)]["count"] == row.count
        assert got[json_id(row.cell_id)]["gi_z"] == pytest.approx(row.gi_z, rel=1e-9, abs=1e-12)
    assert sum(p["count"] for p in got.values()) == reference["count"].sum()


@pytest.mark.parametrize("cells", ["significant", "nonzero", None])
def test_hotspots_cell_selection(site, cells):
    query = "/api/hotspots?method=gi&cell=1000&band=3000" + (f"&cells={cells}" if cells else "")
    body = site.get(query, role="analyst").get_json()
    reference = hotspots_from_events(site.events, study_area=layers.luxembourg_outline(), cell=1000, band=3000)
    if cells == "nonzero":
        expected = reference[reference["count"] > 0]
    else:  # significant is the default
        expected = reference[reference["gi_bin_fdr"] != 0]
    assert 0 < len(expected) < len(reference)
    assert sorted(ids(body)) == sorted(json_id(v) for v in expected["cell_id"])
    assert body["parameters"]["n_cells"] == len(reference)
    assert body["parameters"]["n_features"] == len(expected)
    assert body["parameters"]["cells"] == (cells or "significant")


def test_hotspots_automatic_parameters_and_region(site):
    body = site.get("/api/hotspots?region=Capitale&from=2024-01-01&to=2026-12-31", role="analyst").get_json()
    params = body["parameters"]
    assert params["method"] == "gi" and params["region"] == "Capitale"
    assert params["cell"] > 0 and params["band"] >= params["cell"]
    assert params["from"].startswith("2024-01-01")


@pytest.mark.parametrize(("method", "extra"), [("lisa", "&cell=1500"), ("kde", ""), ("clusters", ""), ("emerging", "")])
def test_hotspot_methods(site, method, extra):
    # LISA's 999 permutations on the automatic fine grid take seconds; a coarser grid keeps it quick.
    response = site.get(f"/api/hotspots?method={method}{extra}", role="analyst")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["type"] == "FeatureCollection"
    assert body["parameters"]["method"] == method
    assert len(body["features"]) > 0


@pytest.mark.parametrize(("method", "query"), [("clusters", "&band=1500"), ("emerging", "&cell=3000&band=6000"),
                                               ("kde", "&cell=1000")])
def test_hotspots_from_lean_rows_equal_the_library_on_full_rows(site, method, query):
    # The API reads only geometry, observed_at and persons; the library given every column of
    # every event must give the same features (cluster persons and time spans included).
    from geo_ibm.analysis import run_method
    from geo_ibm.geojson import json_value, to_feature_collection

    body = site.get(f"/api/hotspots?method={method}{query}&cells=all", role="analyst").get_json()
    args = dict(part.split("=") for part in query.strip("&").split("&"))
    full = run_method(site.store.events(), method=method, cell=float(args["cell"]) if "cell" in args else None,
                      band=float(args["band"]) if "band" in args else None)
    expected = json_value(to_feature_collection(full, id_column="cell_id" if "cell_id" in full.columns else None))
    assert len(body["features"]) == len(expected["features"]) > 0
    assert [f["properties"] for f in body["features"]] == [f["properties"] for f in expected["features"]]
    assert [f["geometry"] for f in body["features"]] == [f["geometry"] for f in expected["features"]]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/events?bbox=1,2,3", "bbox"),
        ("/api/events?bbox=a,b,c,d", "bbox"),
        ("/api/events?bbox=6.5,49.5,6.0,50", "bbox"),
        ("/api/events?bbox=6,49,200,50", "bbox"),
        ("/api/events?limit=0", "limit"),
        ("/api/events?limit=10001", "limit"),
        ("/api/events?limit=abc", "limit"),
        ("/api/events?offset=-1", "offset"),
        ("/api/events?datetime=2025-13-01", "datetime"),
        ("/api/events?datetime=2025-03-01/2025-01-01", "datetime"),
        ("/api/events?datetime=2025-01-01&from=2025-01-01", "datetime"),
        ("/api/events?from=soon", "from"),
        ("/api/events?to=9999-12-31", "to"),
        ("/api/stats?from=%00", "from"),
        ("/api/events?entry_country=LU", "entry_country"),
        ("/api/events?transport_mode=rocket", "transport_mode"),
        ("/api/events?region=Atlantis", "region"),
        ("/api/events?quarter=2025-Q7", "quarter"),
        ("/api/events?regoin=Nord", "regoin"),
        ("/api/events?limit=1&limit=2", "limit"),
        ("/api/stats?limit=5", "limit"),
        ("/api/layers/outline?bbox=6,49,7,50", "bbox"),
        ("/api/hotspots?method=idw", "method"),
        ("/api/hotspots?cell=10", "cell"),
        ("/api/hotspots?band=wide", "band"),
        ("/api/hotspots?cell=nan", "cell"),
        ("/api/hotspots?region=Mars", "region"),
        ("/api/hotspots?seed=-1", "seed"),
        ("/api/hotspots?cells=some", "cells"),
    ],
)
def test_bad_parameters_give_400(site, url, parameter):
    response = site.get(url, role="admin")
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == "InvalidParameterValue"
    assert body["parameter"] == parameter
    assert repr(parameter) in body["description"]


def test_library_refusal_is_a_400_not_a_500(site):
    # Too few events for Gi* in one day: the library refuses, the API passes the message on.
    response = site.get("/api/hotspots?from=2025-05-05&to=2025-05-05", role="analyst")
    assert response.status_code == 400
    assert "events" in response.get_json()["description"]


def test_session_login_reaches_the_api(site):
    client = site.app.test_client()
    assert client.get("/api/stats").status_code == 401
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    login = client.post("/login", data={"username": "analyst", "password": PASSWORD, "csrf_token": token})
    assert login.status_code == 302
    assert client.get("/api/stats").status_code == 200
    assert client.get("/api/events?limit=1").get_json()["numberReturned"] == 1


ODD_VALUES = ["", " ", "nan", "1e309", "-0", "é", "%00", "..", "../..", "2025-02-29", "9999-12-31", "1,2,3,4",
              "x" * 3000, "{}", "2025Q5"]


@pytest.mark.parametrize("url", ["/api/events", "/api/stats", "/ogc/collections/events/items", "/ogc/collections/cantons/items"])
@pytest.mark.parametrize("name", ["bbox", "limit", "offset", "datetime", "from", "quarter", "region", "entry_country", "f"])
def test_odd_values_never_give_a_server_error(site, url, name):
    for value in ODD_VALUES:
        query = {name: value} if name == "limit" or url == "/api/stats" else {name: value, "limit": "1"}
        response = site.get(url, query_string=query, role="admin")
        assert response.status_code < 500, (name, value, response.get_data(as_text=True))
        if response.status_code == 400:
            assert response.get_json()["parameter"] in (name, "limit")


# --------------------------------------------------------------------------- archives


@pytest.fixture(scope="module")
def archive_site(tmp_path_factory):
    from geo_ibm.archive import write_synthetic_archive

    folder = tmp_path_factory.mktemp("api-archives")
    write_synthetic_archive(folder / "lux", n_events=6_000, partitions=6, quarters=3, seed=4)
    write_synthetic_archive(folder / "eu", n_events=4_000, partitions=4, quarters=2, crs="EPSG:3035", seed=5)
    archives = {"lux": str(folder / "lux"), "eu": str(folder / "eu"), "gone": str(folder / "missing")}
    return make_site(folder / "store.gpkg", seed=12, n_events=50, config={"ARCHIVES": archives}), folder


def test_archives_are_listed_from_their_manifests_without_their_locations(archive_site):
    import pyarrow.parquet as pq

    from geo_ibm.archive import read_manifest

    site, folder = archive_site
    response = site.get("/api/archives")
    assert response.status_code == 200
    body = response.get_json()
    assert [a["name"] for a in body["archives"]] == ["lux", "eu", "gone"] and body["analyses"] == "/archives/"
    lux, eu, gone = body["archives"]
    # independent of the manifest: the partition files themselves
    files = sorted((folder / "lux").rglob("*.parquet"))
    assert lux["partitions"] == len(files) == 6
    assert lux["rows"] == sum(pq.ParquetFile(f).metadata.num_rows for f in files) == 6_000
    assert lux["bytes"] == sum(f.stat().st_size for f in files)
    assert sum(lux["rows_per_quarter"].values()) == 6_000 and len(lux["rows_per_quarter"]) == 3
    assert lux["crs"] == "EPSG:2169" and eu["crs"] == "EPSG:3035"
    assert lux["bounds"] == pytest.approx(list(read_manifest(folder / "lux").bounds))
    assert lux["counts_by"] == ["quarter", "country"] and "x" in lux["columns"]
    assert lux["href"] == "/api/archives/lux" and site.get(lux["href"]).get_json() == lux
    # unreadable: named with the reason, the server's paths named nowhere
    assert set(gone) == {"name", "href", "error"} and gone["error"]
    assert str(folder) not in response.get_data(as_text=True)


def test_archives_need_the_analyst_role_and_known_names(archive_site, site):
    plain = site
    site, _folder = archive_site
    assert site.get("/api/archives", role="viewer").status_code == 403
    assert site.get("/api/archives/lux", role=None).status_code == 401
    missing = site.get("/api/archives/nowhere")
    assert missing.status_code == 404 and "lux" in missing.get_json()["description"]
    assert site.get("/api/archives?name=lux").status_code == 400
    assert site.get("/api/archives/..%2Fetc").status_code == 404
    # a server without archives lists none, and has no archive of any name
    assert site_without(plain) == []


def site_without(site) -> list:
    assert site.get("/api/archives/lux").status_code == 404
    return site.get("/api/archives").get_json()["archives"]
