"""The route layers as OGC API – Features collections: analyst role, the event filters selecting the
analysis, property filters, paging, single features, queryables, and GDAL's OAPIF driver reading them."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from webfixtures import Site, make_site, serve_store

from geo_ibm.accounts import add_user
from geo_ibm.network.requests import RouteQuery, route_analysis
from geo_ibm.periods import quarter_bounds
from webapp.ogc import COLLECTIONS, ROUTE_LAYERS
from webapp.openapi import build_openapi

N_EVENTS = 300
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return make_site(tmp_path_factory.mktemp("ogc-routes") / "store.gpkg", seed=11, n_events=N_EVENTS)


def features(site: Site, url: str, role: str = "analyst") -> dict:
    response = site.get(url, role=role)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_json()


def test_route_collections_are_listed_and_analyst_only(site):
    listing = {c["id"]: c for c in features(site, "/ogc/collections", role="viewer")["collections"]}
    assert set(ROUTE_LAYERS) <= set(listing)
    for cid in ROUTE_LAYERS:
        assert COLLECTIONS[cid].role == "analyst"
        assert site.get(f"/ogc/collections/{cid}/items", role="viewer").status_code == 403
        assert site.get(f"/ogc/collections/{cid}/items", role=None).status_code == 401
        assert "temporal" in listing[cid]["extent"]
    doc = build_openapi(server_url="http://localhost", collections=COLLECTIONS, cookie_name="s")
    for cid in ROUTE_LAYERS:
        op = doc["paths"][f"/ogc/collections/{cid}/items"]["get"]
        names = {p["name"] for p in op["parameters"]}
        assert {"quarter", "region", "entry_country", "datetime", "bbox", "limit", "offset"} <= names
        assert "(analyst role)" in op["summary"]


@pytest.mark.parametrize(("cid", "layer", "id_column"), [
    ("route_segments", "segments", "segment_id"), ("route_corridors", "corridors", "rank"),
    ("route_crossings", "crossings", "crossing_id"), ("route_flows", "flows", None)])
def test_items_are_the_layers_of_the_analysis(site, cid, layer, id_column):
    expected = getattr(route_analysis(site.store, RouteQuery()), layer)
    body = features(site, f"/ogc/collections/{cid}/items?limit=10000")
    assert body["numberMatched"] == body["numberReturned"] == len(expected)
    assert body["parameters"]["n_events"] == N_EVENTS
    got = pd.DataFrame([f["properties"] for f in body["features"]])
    np.testing.assert_array_equal(got["events"].to_numpy(), expected["events"].to_numpy())
    np.testing.assert_array_equal(got["persons"].to_numpy(), expected["persons"].to_numpy())
    if id_column is not None:
        assert [f["id"] for f in body["features"]] == list(expected[id_column])
    else:
        assert [f["id"] for f in body["features"]] == list(range(1, len(expected) + 1))
    # Geometries in longitude/latitude, the analysis' own lines converted.
    lonlat = gpd.GeoDataFrame.from_features(body["features"], crs=4326)
    assert lonlat.geometry.geom_type.tolist() == expected.geometry.geom_type.tolist()
    back = lonlat.to_crs(2169).geometry
    assert np.all(back.hausdorff_distance(expected.geometry.reset_index(drop=True)).to_numpy() < 2.0)


def test_event_filters_and_datetime_select_the_events_analysed(site):
    n = site.store.count(region="Nord", entry_country="DE")
    assert 0 < n < N_EVENTS
    body = features(site, "/ogc/collections/route_segments/items?region=Nord&entry_country=DE&limit=10000")
    assert body["parameters"]["n_events"] == n
    expected = route_analysis(site.store, RouteQuery(region="Nord", entry_country="DE"))
    assert sum(f["properties"]["events"] for f in body["features"]) == int(expected.segments["events"].sum())
    # A quarter and a datetime together: the events of both.
    _first, last = quarter_bounds("2025Q2")
    mid = pd.Timestamp("2025-05-16", tz="Europe/Luxembourg")
    both = features(site, "/ogc/collections/route_corridors/items?quarter=2025Q2&datetime=2025-05-16/..")
    assert 0 < both["parameters"]["n_events"] == site.store.count(start=mid, end=last) < site.store.count(
        quarter="2025Q2")
    disjoint = features(site, "/ogc/collections/route_corridors/items?quarter=2025Q2&datetime=2020-01-01/2020-02-01")
    assert disjoint["numberMatched"] == 0 and "do not overlap" in disjoint["parameters"]["note"]


def test_property_filters_equal_filtering_the_whole_layer(site):
    whole = features(site, "/ogc/collections/route_flows/items?limit=10000")["features"]
    for leg in ("entry", "exit"):
        got = features(site, f"/ogc/collections/route_flows/items?limit=10000&leg={leg}")
        assert got["numberMatched"] == sum(f["properties"]["leg"] == leg for f in whole) > 0
        assert {f["properties"]["leg"] for f in got["features"]} == {leg}
    lixels = features(site, "/ogc/collections/route_lixels/items?limit=10000")["features"]
    expected = route_analysis(site.store, RouteQuery(network_hotspots=True)).lixels
    assert len(lixels) == len(expected)
    hot = features(site, "/ogc/collections/route_lixels/items?limit=10000&gi_bin=3")
    assert hot["numberMatched"] == int((expected["gi_bin"] == 3).sum()) > 0
    bad = site.get("/ogc/collections/route_lixels/items?gi_bin=7")
    assert bad.status_code == 400 and bad.get_json()["parameter"] == "gi_bin"
    assert site.get("/ogc/collections/route_segments/items?regoin=Nord").get_json()["parameter"] == "regoin"


def test_paging_and_single_features(site):
    page = features(site, "/ogc/collections/route_segments/items?limit=10")
    assert page["numberReturned"] == 10 and page["numberMatched"] > 10
    following = next(link["href"] for link in page["links"] if link["rel"] == "next")
    second = features(site, following.removeprefix("http://localhost"))
    assert second["features"][0]["id"] == page["features"][-1]["id"] + 1
    crossing = features(site, "/ogc/collections/route_crossings/items/FR-A3-DUDELANGE")
    table = route_analysis(site.store, RouteQuery()).crossings.set_index("crossing_id")
    assert crossing["properties"]["events"] == int(table.loc["FR-A3-DUDELANGE", "events"])
    assert site.get("/ogc/collections/route_crossings/items/nowhere").status_code == 404
    assert site.get("/ogc/collections/route_crossings/items/FR-A3-DUDELANGE", role="viewer").status_code == 403


def test_queryables_describe_the_route_properties(site):
    schema = features(site, "/ogc/collections/route_flows/queryables", role="viewer")
    assert list(schema["properties"]) == ["ref", "leg", "direction"]
    assert schema["properties"]["direction"] == {"title": schema["properties"]["direction"]["title"],
                                                 "type": "integer", "minimum": -1, "maximum": 1}


# --------------------------------------------------------------------------- a real client


@pytest.fixture(scope="module")
def served(site, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ogc-routes-served")
    add_user(site.store, "gis", "analyst", PASSWORD)
    with serve_store(site.store.path, folder) as url:
        yield url


def test_gdal_reads_route_layers(site, served):
    options = {"GDAL_HTTP_AUTH": "BASIC", "GDAL_HTTP_USERPWD": f"gis:{PASSWORD}"}
    pyogrio.set_gdal_config_options(options)
    try:
        names = {str(name) for name, _geom in pyogrio.list_layers(f"OAPIF:{served}")}
        assert set(ROUTE_LAYERS) <= names
        # A small page size: GDAL follows the next links.
        segments = pyogrio.read_dataframe(f"OAPIF:{served}", layer="route_segments", PAGE_SIZE="20")
        flows = pyogrio.read_dataframe(f"OAPIF:{served}", layer="route_flows", PAGE_SIZE="50")
    finally:
        pyogrio.set_gdal_config_options({key: None for key in options})
    expected = route_analysis(site.store, RouteQuery())
    assert len(segments) == len(expected.segments) and len(flows) == len(expected.flows)
    assert segments.crs.to_epsg() == 4326
    got = segments.set_index("segment_id").loc[expected.segments["segment_id"]]
    np.testing.assert_array_equal(got["events"].to_numpy(), expected.segments["events"].to_numpy())
    # The lines come back where the analysis put them (lengths within a metre per km).
    lengths = gpd.GeoSeries(got.geometry.to_numpy(), crs=4326).to_crs(2169).length.to_numpy()
    np.testing.assert_allclose(lengths, expected.segments["length_m"].to_numpy(), rtol=2e-3, atol=2.0)
    assert flows["events"].sum() == expected.flows["events"].sum()
