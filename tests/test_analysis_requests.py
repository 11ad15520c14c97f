"""Tests of geo_ibm.analysis.requests: one hotspot query gives the same cells in the library, the
hotspot map, ``/api/hotspots`` and ``geo-ibm hotspots``."""
from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from webfixtures import Site, make_site

from geo_ibm import analysis
from geo_ibm.analysis import HotspotQuery, hotspot_layers, hotspots, study_area
from geo_ibm.cli import main
from geo_ibm.errors import ValidationError
from geo_ibm.periods import period_end, period_start

N_EVENTS = 3000
FROM, TO = "2025-01-01", "2026-06-30"
REGION = "Sud-Ouest"
CELL, BAND = 1000.0, 3000.0


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return make_site(tmp_path_factory.mktemp("requests") / "store.gpkg", seed=5, n_events=N_EVENTS)


def query(method: str = "gi", **changes) -> HotspotQuery:
    values = {"method": method, "cell": CELL, "band": BAND, "start": period_start(FROM), "end": period_end(TO),
              "region": REGION, **changes}
    return HotspotQuery(**values)


def same_cells(got: gpd.GeoDataFrame, got_column: str, want: gpd.GeoDataFrame, want_column: str) -> None:
    """``got`` holds exactly the cells of ``want`` with the same values, whatever the format.

    Cells are matched by their centres (GeoJSON and map documents round coordinates and may
    simplify clipped edge cells, so centres move by centimetres to metres, never by a cell).
    """
    from scipy.spatial import cKDTree

    a = shapely.get_coordinates(shapely.centroid(got.to_crs("EPSG:2169").geometry.to_numpy()))
    b = shapely.get_coordinates(shapely.centroid(want.to_crs("EPSG:2169").geometry.to_numpy()))
    assert len(a) == len(b) > 0
    distance, index = cKDTree(b).query(a)
    assert distance.max() < 0.1 * CELL and len(set(index.tolist())) == len(b)
    assert [str(v) for v in got[got_column]] == [str(v) for v in want[want_column].to_numpy()[index]]


# --------------------------------------------------------------------------- the library


def test_query_selects_the_region_and_period_and_uses_the_region_as_study_area(site):
    result = hotspots(site.store, query(), cells="all")
    params = result.attrs["parameters"]
    events = site.store.events(start=period_start(FROM), end=period_end(TO), region=REGION)
    assert params["n_events"] == len(events) > 100
    assert (params["method"], params["region"], params["cell"], params["band"]) == ("gi", REGION, CELL, BAND)
    assert params["from"].startswith("2025-01-01T00:00:00") and params["to"].startswith("2026-07-01T00:00:00")
    # Every cell lies in the region (the study area), none elsewhere in the country.
    area = study_area(REGION).geometry.union_all().buffer(CELL)
    assert shapely.within(shapely.centroid(result.geometry.to_numpy()), area).all()
    assert int(result["count"].sum()) + params.get("n_outside_grid", 0) == len(events)


@pytest.mark.parametrize("method", analysis.PAGE_METHODS)
def test_each_map_layer_equals_the_hotspots_request_for_that_method(site, method):
    layers = hotspot_layers(site.store, query())
    assert not layers.failures, layers.failures
    own = hotspots(site.store, query().sized_for(method), cells="significant")
    layer = layers.layers[method]
    assert len(layer) == len(own) > 0
    assert layer.geometry.normalize().geom_equals_exact(own.geometry.normalize(), tolerance=1e-6).all()
    for column in [c for c in ("gi_z", "gi_bin_fdr", "category", "n_events", "level") if c in own.columns]:
        np.testing.assert_array_equal(layer[column].to_numpy(), own[column].to_numpy())


def test_only_gi_lisa_and_emerging_take_the_query_sizes_on_the_map():
    q = query()
    assert (q.sized_for("emerging").cell, q.sized_for("emerging").band) == (CELL, BAND)
    assert (q.sized_for("kde").cell, q.sized_for("kde").band) == (None, None)
    assert (q.sized_for("clusters").cell, q.sized_for("clusters").band) == (None, None)


def test_sizes_over_a_limit_are_refused_before_the_store_is_read():
    class NoStore:
        def __getattr__(self, name):
            raise AssertionError(f"the store was asked for {name}")

    with pytest.raises(ValidationError, match=r"cell: 60 m makes about"):
        hotspots(NoStore(), query("lisa", cell=60.0, band=None, region=None))
    with pytest.raises(ValidationError, match=r"band: 30000 m is 30 cells"):
        hotspot_layers(NoStore(), query(band=30_000.0, region=None))


def test_a_method_over_its_event_limit_is_a_failure_of_that_layer_only(site):
    layers = hotspot_layers(site.store, query(), event_limits={"clusters": 10})
    assert set(layers.layers) == {"gi", "kde", "emerging"}
    assert "too many for clustering on request (limit 10)" in layers.failures["clusters"]
    with pytest.raises(ValidationError, match="too many for clustering"):
        analysis.check_event_count("clusters", 11, limits={"clusters": 10})


def test_store_filters_are_the_set_selection_fields_and_clip_only_keeps_region_and_canton_out():
    start = period_start(FROM)
    q = HotspotQuery(method="kde", cell=CELL, start=start, region=REGION, canton="Esch", entry_country="FR")
    assert q.store_filters() == {"start": start, "region": REGION, "canton": "Esch", "entry_country": "FR"}
    clipped = HotspotQuery(start=start, region=REGION, canton="Esch", entry_country="FR", clip_only=True)
    assert clipped.store_filters() == {"start": start, "entry_country": "FR"}
    # The method's own fields stay positional; the selection's are keywords only.
    assert HotspotQuery("lisa", 500.0).cell == 500.0
    with pytest.raises(TypeError):
        HotspotQuery("gi", None, None, 0, False, start)  # type: ignore[misc]


def test_unknown_method_names_the_parameter():
    with pytest.raises(ValidationError, match="method: unknown method 'idw'") as info:
        HotspotQuery(method="idw")
    assert info.value.problems[0].column == "method"


# --------------------------------------------------------------------------- every entry point


def _map_features(document: str, layer_name: str) -> list[dict]:
    """The GeoJSON features Folium embedded for the layer named ``layer_name``."""
    found = []
    for match in re.finditer(r"geo_json_(\w+)_add\((\{.*?\})\);", document, flags=re.S):
        data = json.loads(match.group(2))
        found.append((match.group(1), data))
    names = dict(re.findall(r'"([^"]+)"\s*:\s*geo_json_(\w+)', document))
    wanted = names[layer_name]
    return next(data["features"] for key, data in found if key == wanted)


def test_map_api_and_cli_give_the_same_cells_and_bins(site, tmp_path, logged_in_site):
    url_query = f"region={REGION}&from={FROM}&to={TO}&cell={CELL:.0f}&band={BAND:.0f}"
    expected = hotspots(site.store, query(), cells="significant")
    assert len(expected) > 10

    api = site.get(f"/api/hotspots?method=gi&{url_query}", role="analyst")
    assert api.status_code == 200
    api_cells = gpd.GeoDataFrame.from_features(api.get_json()["features"], crs="EPSG:4326")
    same_cells(api_cells, "gi_bin_fdr", expected, "gi_bin_fdr")

    out = tmp_path / "gi.gpkg"
    result = CliRunner().invoke(main, ["--store", str(site.store.path), "hotspots", "--method", "gi", "--region", REGION,
                                       "--from", FROM, "--to", TO, "--cell", f"{CELL:.0f}", "--band", f"{BAND:.0f}",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    cli = pyogrio.read_dataframe(out)
    cli = cli[cli["gi_bin_fdr"] != 0]
    same_cells(cli, "gi_bin_fdr", expected, "gi_bin_fdr")

    document = logged_in_site.get(f"/maps/hotspots?{url_query}").get_data(as_text=True)
    features = _map_features(document, "Gi* hot and cold spots")
    # The map's properties are escaped text: the bins compare as text.
    same_cells(gpd.GeoDataFrame.from_features(features, crs="EPSG:4326"), "gi_bin", expected, "gi_bin_fdr")

    emerging = hotspots(site.store, query("emerging"), cells="significant")
    drawn = gpd.GeoDataFrame.from_features(_map_features(document, "Emerging hot spots"), crs="EPSG:4326")
    same_cells(drawn, "category", emerging, "category")


@pytest.fixture
def logged_in_site(site):
    """A browser-like client of the site: the map documents are for sessions and tokens alike."""
    client = site.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {site.tokens['analyst']}"
    return client


def test_the_default_cell_is_the_same_for_the_map_the_api_and_the_cli(site, tmp_path):
    api = site.get(f"/api/hotspots?method=gi&region={REGION}", role="analyst").get_json()["parameters"]
    out = tmp_path / "auto.gpkg"
    result = CliRunner().invoke(main, ["--store", str(site.store.path), "hotspots", "--method", "gi", "--region", REGION,
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.output[: result.output.rindex("}") + 1])
    layers = hotspot_layers(site.store, HotspotQuery(region=REGION))
    page = layers.layers["gi"].attrs["parameters"]
    assert api["cell"] == cli["cell"] == page["cell"]
    assert api["cell_method"] == cli["cell_method"] == page["cell_method"]
    assert pd.notna(api["cell"]) and api["cell"] >= 200
