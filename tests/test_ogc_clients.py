"""Real OGC API – Features clients (GDAL's OAPIF driver via pyogrio and ogrinfo, OWSLib) against ``geo-ibm serve``."""
from __future__ import annotations

import os
import subprocess

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from owslib.ogcapi.features import Features
from owslib.util import Authentication
from pyproj import Transformer
from webfixtures import serve_store

from geo_ibm import layers
from geo_ibm.accounts import add_user, new_token
from geo_ibm.demo import generate_events
from geo_ibm.store import open_store

PASSWORD = "correct-horse-battery"
N_EVENTS = 240
TO_LONLAT = Transformer.from_crs("EPSG:2169", "EPSG:4326", always_xy=True)
BBOX = (5.95, 49.45, 6.3, 49.75)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``geo-ibm serve`` (waitress) on 127.0.0.1 at a free port; yields (base url, events, token).

    The server runs in its own process: pyogrio keeps the GIL while GDAL reads features, so a
    server thread in the test process could not answer GDAL's requests.
    """
    folder = tmp_path_factory.mktemp("clients")
    path = folder / "store.gpkg"
    store = open_store(path)
    store.init()
    events, _truth = generate_events(N_EVENTS, seed=21)
    assert store.import_events(events, source="test_ogc_clients", user="test").accepted == N_EVENTS
    add_user(store, "gis", "analyst", PASSWORD)
    add_user(store, "looker", "viewer", PASSWORD)
    token = new_token(store, "gis")
    with serve_store(path, folder) as url:
        yield url, events, token


@pytest.fixture
def gdal_basic():
    """Basic credentials for GDAL's HTTP layer, removed afterwards."""
    options = {"GDAL_HTTP_AUTH": "BASIC", "GDAL_HTTP_USERPWD": f"gis:{PASSWORD}"}
    pyogrio.set_gdal_config_options(options)
    yield
    pyogrio.set_gdal_config_options({key: None for key in options})


def _inside(events: gpd.GeoDataFrame, bbox) -> np.ndarray:
    x, y = TO_LONLAT.transform(events.geometry.x.to_numpy(), events.geometry.y.to_numpy())
    return (x >= bbox[0]) & (x <= bbox[2]) & (y >= bbox[1]) & (y <= bbox[3])


# --------------------------------------------------------------------------- GDAL via pyogrio


def test_gdal_lists_collections(server, gdal_basic):
    url, _events, _token = server
    names = {str(name) for name, _geom in pyogrio.list_layers(f"OAPIF:{url}")}
    assert names == {"outline", "internal-borders", "tripoints", "crossing-points", "regions", "cantons",
                     "corridors", "events", "hotspots", "route_segments", "route_corridors", "route_flows",
                     "route_crossings", "route_lixels"}


def test_gdal_reads_all_events_following_next_links(server, gdal_basic):
    url, events, _token = server
    # PAGE_SIZE 50 < 240 events: GDAL must follow four 'next' links.
    gdf = pyogrio.read_dataframe(f"OAPIF:{url}", layer="events", PAGE_SIZE="50")
    assert len(gdf) == N_EVENTS
    assert set(gdf["event_id"]) == set(events["event_id"])
    assert gdf.crs.to_epsg() == 4326
    got = gdf.set_index("event_id").loc[events["event_id"]]
    lon, lat = TO_LONLAT.transform(events.geometry.x.to_numpy(), events.geometry.y.to_numpy())
    np.testing.assert_allclose(got.geometry.x.to_numpy(), lon, atol=2e-7)
    np.testing.assert_allclose(got.geometry.y.to_numpy(), lat, atol=2e-7)
    np.testing.assert_array_equal(got["persons"].to_numpy(), events["persons"].to_numpy())


def test_gdal_bbox_on_events(server, gdal_basic):
    url, events, _token = server
    expected = set(events["event_id"][_inside(events, BBOX)])
    assert 10 < len(expected) < N_EVENTS
    gdf = pyogrio.read_dataframe(f"OAPIF:{url}", layer="events", bbox=BBOX, PAGE_SIZE="25")
    assert set(gdf["event_id"]) == expected
    assert len(gdf) == len(expected)


def test_gdal_reads_reference_layers(server, gdal_basic):
    url, _events, _token = server
    cantons = pyogrio.read_dataframe(f"OAPIF:{url}", layer="cantons")
    expected = layers.cantons()
    assert sorted(cantons["canton"]) == sorted(expected["canton"])
    ours = cantons.to_crs("EPSG:2169").set_index("canton").loc[expected["canton"]]
    np.testing.assert_allclose(ours.geometry.area.to_numpy(), expected.geometry.area.to_numpy(), rtol=1e-5)
    crossings = pyogrio.read_dataframe(f"OAPIF:{url}", layer="crossing-points")
    assert len(crossings) == len(layers.crossing_points())


def test_gdal_bearer_token(server):
    url, _events, token = server
    # The OAPIF driver sets its own Accept header, which replaces GDAL_HTTP_HEADERS, so the
    # token goes through GDAL's bearer authentication (GDAL >= 3.9).
    options = {"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": token}
    pyogrio.set_gdal_config_options(options)
    try:
        gdf = pyogrio.read_dataframe(f"OAPIF:{url}", layer="regions")
    finally:
        pyogrio.set_gdal_config_options({key: None for key in options})
    assert sorted(gdf["region"]) == sorted(layers.police_regions()["region"])


def test_gdal_without_credentials_fails(server):
    url, _events, _token = server
    with pytest.raises(Exception, match="401|[Uu]nauthori|authentication"):
        pyogrio.list_layers(f"OAPIF:{url}")


# --------------------------------------------------------------------------- ogrinfo


def _ogrinfo(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDAL_HTTP")}
    return subprocess.run(["ogrinfo", "-ro", *args], capture_output=True, text=True, timeout=120, env=env)


def test_ogrinfo_summary_and_bbox(server):
    url, events, _token = server
    auth = ["--config", "GDAL_HTTP_AUTH", "BASIC", "--config", "GDAL_HTTP_USERPWD", f"gis:{PASSWORD}"]
    listing = _ogrinfo(*auth, f"OAPIF:{url}")
    assert listing.returncode == 0, listing.stderr
    assert "events" in listing.stdout and "hotspots" in listing.stdout
    summary = _ogrinfo(*auth, "-so", "-oo", "PAGE_SIZE=100", f"OAPIF:{url}", "events")
    assert summary.returncode == 0, summary.stderr
    assert f"Feature Count: {N_EVENTS}" in summary.stdout
    assert "observed_at" in summary.stdout and "entry_country" in summary.stdout
    spat = _ogrinfo(*auth, "-so", "-spat", *map(str, BBOX), "-oo", "PAGE_SIZE=30", f"OAPIF:{url}", "events")
    assert spat.returncode == 0, spat.stderr
    assert f"Feature Count: {int(_inside(events, BBOX).sum())}" in spat.stdout


def test_ogrinfo_viewer_cannot_read_events(server):
    url, _events, _token = server
    result = _ogrinfo("--config", "GDAL_HTTP_AUTH", "BASIC", "--config", "GDAL_HTTP_USERPWD", f"looker:{PASSWORD}",
                      "-so", f"OAPIF:{url}", "events")
    assert "403" in result.stderr + result.stdout


# --------------------------------------------------------------------------- OWSLib


def test_owslib_collections_and_items(server):
    url, events, _token = server
    api = Features(url, auth=Authentication(username="gis", password=PASSWORD))
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"events", "hotspots", "cantons", "internal-borders"} <= ids
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in api.conformance()["conformsTo"]
    meta = api.collection("events")
    assert meta["id"] == "events"
    page = api.collection_items("events", bbox=list(BBOX), limit=7)
    expected = set(events["event_id"][_inside(events, BBOX)])
    assert page["numberMatched"] == len(expected)
    assert page["numberReturned"] == len(page["features"]) == 7
    assert {f["id"] for f in page["features"]} <= expected
    second = api.collection_items("events", bbox=list(BBOX), limit=7, offset=7)
    assert not {f["id"] for f in second["features"]} & {f["id"] for f in page["features"]}
    one = api.collection_item("events", page["features"][0]["id"])
    assert one["properties"] == page["features"][0]["properties"]
    borders = api.collection_items("internal-borders")
    assert sorted(f["id"] for f in borders["features"]) == sorted(layers.internal_borders()["neighbour"])


def test_owslib_wrong_password_is_refused(server):
    url, _events, _token = server
    api = Features(url, auth=Authentication(username="gis", password="wrong-password-1"))
    with pytest.raises(Exception, match="401|Unauthorized"):
        api.collections()
