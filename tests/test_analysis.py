"""End-to-end analysis on the demo data: the planted hotspots of the ground truth are found."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo_ibm.analysis import METHODS, run_method, study_area
from geo_ibm.demo import generate_events
from geo_ibm.errors import NotFoundError, ValidationError


@pytest.fixture(scope="module")
def demo():
    return generate_events(20_000, seed=11)


def _cells_near(result, point, radius):
    """Rows of ``result`` whose cell lies within ``radius`` of ``point``."""
    return result[result.geometry.distance(point) <= radius]


def test_gi_finds_every_persistent_planted_hotspot(demo):
    events, truth = demo
    # A band of two cells: the small station hotspots (about 1 % of events each) are diluted
    # by wider bands, which is the expected behaviour of Gi*, not a miss of the method.
    result = run_method(events, method="gi", cell=500, band=1000)
    hot = result[result["gi_bin_fdr"] == 3]
    assert len(hot) > 0
    persistent = truth[truth["kind"] == "persistent"]
    assert len(persistent) >= 5
    found = [bool((hot.geometry.distance(pt) <= r + 500).any()) for pt, r in zip(persistent.geometry, persistent["radius_m"])]
    assert all(found), list(zip(persistent["name"], found))


def test_gi_on_last_quarters_finds_the_emerging_hotspot_absent_before(demo):
    events, truth = demo
    emerging = truth[truth["kind"] == "emerging"].iloc[0]
    begin = emerging["start"]
    before = events[events["observed_at"] < begin]
    after = events[events["observed_at"] >= begin]
    hot_after = run_method(after, method="gi", cell=500, band=1000)
    hot_before = run_method(before, method="gi", cell=500, band=1000)
    site_after = _cells_near(hot_after, emerging.geometry, emerging["radius_m"])
    site_before = _cells_near(hot_before, emerging.geometry, emerging["radius_m"])
    assert (site_after["gi_bin_fdr"] == 3).any()
    assert not (site_before["gi_bin_fdr"] == 3).any()
    days_before = (begin - events["observed_at"].min()).days
    days_after = (events["observed_at"].max() - begin).days + 1
    rate_before = site_before["count"].sum() / days_before
    rate_after = site_after["count"].sum() / days_after
    assert rate_before < 0.2 * rate_after


def test_emerging_categories_mark_the_planted_new_site(demo):
    events, truth = demo
    emerging = truth[truth["kind"] == "emerging"].iloc[0]
    result = run_method(events, method="emerging", cell=1500, band=3000)
    near = _cells_near(result, emerging.geometry, emerging["radius_m"] + 1500)
    fresh = {"new hot spot", "consecutive hot spot", "intensifying hot spot", "sporadic hot spot"}
    cats = set(near["category"].str.lower())
    assert cats & fresh, cats
    fading = truth[truth["kind"] == "fading"].iloc[0]
    near_fading = _cells_near(result, fading.geometry, fading["radius_m"] + 1500)
    assert not (set(near_fading["category"].str.lower()) & {"new hot spot", "consecutive hot spot"})


def test_uniform_events_give_almost_no_significant_cells():
    outline = study_area().geometry.iloc[0]
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = outline.bounds
    xy = rng.uniform((minx, miny), (maxx, maxy), size=(12_000, 2))
    xy = xy[shapely.contains_xy(outline, xy[:, 0], xy[:, 1])][:5000]
    import geopandas as gpd
    import pandas as pd

    events = gpd.GeoDataFrame(
        {"observed_at": [pd.Timestamp("2025-01-01", tz="Europe/Luxembourg")] * len(xy), "persons": 1},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:2169",
    )
    result = run_method(events, method="gi", cell=2000, band=6000)
    assert (result["gi_bin_fdr"] != 0).mean() < 0.02


@pytest.mark.parametrize("method", METHODS)
def test_every_method_reports_its_parameters(demo, method):
    events, _ = demo
    sample = events.sample(4000, random_state=0)
    result = run_method(sample, method=method, cell=1500 if method != "clusters" else None, band=None)
    params = result.attrs["parameters"]
    assert params["method"] == method
    assert result.crs.to_epsg() == 2169
    assert len(result) > 0
    import json

    json.dumps(params)  # plain JSON, ready for file metadata and API responses


def test_region_restricts_the_study_area(demo):
    events, _ = demo
    nord = study_area("nord")
    assert nord["region"].iloc[0] == "Nord"
    inside = events[events.within(nord.geometry.iloc[0])]
    result = run_method(inside, method="gi", cell=1500, band=4500, region="Nord")
    assert result.geometry.union_all().difference(nord.geometry.iloc[0].buffer(1)).area < 1.0
    assert result.attrs["parameters"]["region"] == "Nord"


def test_bad_method_and_region_are_named(demo):
    events, _ = demo
    with pytest.raises(ValidationError, match="method"):
        run_method(events, method="magic")
    with pytest.raises(NotFoundError, match="region.*Atlantis"):
        run_method(events, method="gi", region="Atlantis")


def test_lisa_defaults_keep_the_grid_small_and_find_high_high_at_planted_sites(demo):
    events, truth = demo
    result = run_method(events, method="lisa", seed=1)
    params = result.attrs["parameters"]
    assert len(result) <= 21_000  # LISA_MAX_AUTO_CELLS, plus partial cells on the outline
    assert "20,000 cells" in params["cell_method"] or float(params["cell"]) >= 300
    assert params["fdr"] == "none"  # ArcGIS's default for cluster and outlier analysis
    high = result[result["lisa_class"] == "HH"]
    busiest = truth.sort_values("events", ascending=False).head(5)
    near = [bool((high.geometry.distance(pt) <= 1000).any()) for pt in busiest.geometry]
    assert sum(near) >= 4, list(zip(busiest["name"], near))
    with_fdr = run_method(events, method="lisa", seed=1, cell=1000, fdr=True)
    assert with_fdr.attrs["parameters"]["fdr"].startswith("Benjamini")


_METHOD_WORK = (
    ("geo_ibm.hotspots", "hotspots_from_events"),
    ("geo_ibm.lisa", "lisa_from_events"),
    ("geo_ibm.emerging", "emerging_hotspots"),
    ("geo_ibm.kde", "kernel_density"),
)
"""Where the work of each method these cases size starts (run_method imports it from there when it runs)."""


@pytest.mark.parametrize(
    ("method", "cell", "band", "needle"),
    [
        ("gi", 50, None, "cell: 50 m makes about"),
        ("lisa", 200, None, "lisa accepts at most 50,000"),
        ("emerging", 100, None, "emerging accepts at most 100,000"),
        ("kde", 20, None, "kde accepts at most 4,000,000"),
        ("gi", 500, 50_000, "band: 50000 m is 100 cells"),
        ("emerging", 1000, 30_000, "band"),
    ],
)
def test_costly_requests_are_refused_before_running(demo, forbid, method, cell, band, needle):
    # Every method's work fails the test: the refusal must come before any of it runs.
    for module, name in _METHOD_WORK:
        forbid(f"{module}.{name}", why="the request was over the cost limits")
    events, _ = demo
    with pytest.raises(ValidationError, match=needle) as info:
        run_method(events, method=method, cell=cell, band=band)
    assert info.value.problems[0].column in {"cell", "band"}
