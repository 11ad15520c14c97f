"""Tests for geo_ibm.bordergeo on a square 'country' with three border lines of known geometry."""
from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_ibm.bordergeo import border_distance_profile, distance_to_borders
from geo_ibm.errors import ValidationError

# West edge borders BE, south edge FR, east edge DE (two pieces), north edge is no border.
BORDERS = gpd.GeoDataFrame(
    {"neighbour": ["BE", "FR", "DE", "DE"]},
    geometry=[
        shapely.LineString([(60_000, 130_000), (60_000, 95_000), (60_000, 60_000)]),
        shapely.LineString([(60_000, 60_000), (80_000, 60_000), (100_000, 60_000)]),
        shapely.LineString([(100_000, 60_000), (100_000, 100_000)]),
        shapely.LineString([(100_000, 100_000), (100_000, 130_000)]),
    ],
    crs="EPSG:2169",
)
CROSSINGS = gpd.GeoDataFrame(
    {"crossing_id": ["BE-1", "FR-1", "DE-1"], "kind": ["motorway", "rail", "bridge"], "neighbour": ["BE", "FR", "DE"]},
    geometry=[shapely.Point(60_000, 100_000), shapely.Point(80_000, 60_000), shapely.Point(100_000, 110_000)],
    crs="EPSG:2169",
)


@pytest.fixture(scope="module")
def events():
    rng = np.random.default_rng(8)
    n = 500
    xy = rng.uniform([59_000, 59_000], [100_500, 130_000], (n, 2))
    return gpd.GeoDataFrame(
        {"persons": rng.integers(1, 8, n)}, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:2169",
        index=pd.RangeIndex(100, 100 + n),
    )


def test_distances_match_per_point_shapely(events):
    out = distance_to_borders(events, borders=BORDERS, crossings=CROSSINGS)
    assert list(out.columns) == [
        "dist_BE", "dist_FR", "dist_DE", "border_distance", "nearest_border",
        "crossing_id", "crossing_neighbour", "crossing_kind", "crossing_distance",
    ]
    assert out.index.equals(events.index)
    lines = {code: shapely.union_all(BORDERS.geometry[BORDERS.neighbour == code].values) for code in ["BE", "FR", "DE"]}
    for (_, p), (_, row) in zip(events.geometry.items(), out.iterrows()):
        ref = {code: p.distance(line) for code, line in lines.items()}
        for code, d in ref.items():
            assert row[f"dist_{code}"] == pytest.approx(d, abs=1e-6)
        assert row.nearest_border == min(ref, key=ref.get)
        cd = [p.distance(c) for c in CROSSINGS.geometry]
        assert row.crossing_distance == pytest.approx(min(cd))
        k = int(np.argmin(cd))
        assert row.crossing_id == CROSSINGS.crossing_id[k] and row.crossing_kind == CROSSINGS.kind[k]


def test_known_distances():
    pts = gpd.GeoDataFrame(geometry=[shapely.Point(61_000, 120_000), shapely.Point(99_000, 61_500)], crs=2169)
    out = distance_to_borders(pts, borders=BORDERS)
    assert out.dist_BE.tolist() == pytest.approx([1_000, 39_000])
    assert out.dist_DE.tolist() == pytest.approx([39_000, 1_000])
    assert out.dist_FR.tolist() == pytest.approx([60_000, 1_500])
    assert out.nearest_border.tolist() == ["BE", "DE"]
    assert "crossing_id" not in out


def test_profile_tables_match_pandas(events):
    prof = border_distance_profile(events, borders=BORDERS, crossings=CROSSINGS)
    per = prof.events
    edges = [0, 1_000, 2_000, 5_000, 10_000, 20_000, np.inf]
    cut = pd.cut(per.border_distance, edges, right=False, labels=False)
    ref = pd.DataFrame({"n": per.nearest_border, "b": cut, "p": events.persons}).groupby(["n", "b"]).agg(
        events=("p", "size"), persons=("p", "sum")
    )
    t = prof.by_neighbour
    assert list(t.columns) == [
        "neighbour", "band", "band_min_m", "band_max_m", "events", "persons", "share", "events_per_border_km",
    ]
    assert len(t) == 3 * 6 and t.events.sum() == len(events)
    for _, row in t.iterrows():
        b = edges.index(row.band_min_m)
        key = (row.neighbour, b)
        assert row.events == (ref.loc[key, "events"] if key in ref.index else 0)
        assert row.persons == (ref.loc[key, "persons"] if key in ref.index else 0)
    assert t.band.iloc[:6].tolist() == ["0–1 km", "1–2 km", "2–5 km", "5–10 km", "10–20 km", "20 km+"]
    assert t.share.sum() == pytest.approx(1.0)
    be = t[t.neighbour == "BE"]
    np.testing.assert_allclose(be.events_per_border_km, be.events / 70.0)
    de = t[t.neighbour == "DE"]
    np.testing.assert_allclose(de.events_per_border_km, de.events / 70.0)  # both DE pieces together

    c = prof.by_crossing
    assert len(c) == 3 * 6 and c.events.sum() == len(events)
    cref = pd.crosstab(per.crossing_id, pd.cut(per.crossing_distance, edges, right=False, labels=False))
    for _, row in c.iterrows():
        b = edges.index(row.band_min_m)
        assert row.events == (cref.loc[row.crossing_id, b] if b in cref.columns else 0)
    assert set(c.kind) == {"motorway", "rail", "bridge"}


def test_bands_without_inf_leave_far_events_out(events):
    prof = border_distance_profile(events, borders=BORDERS, bands=[0, 2_000, 5_000])
    within = (prof.events.border_distance < 5_000).sum()
    assert prof.by_neighbour.events.sum() == within < len(events)
    assert prof.events.border_band.isna().sum() == len(events) - within
    assert prof.by_crossing.empty


@pytest.mark.parametrize(
    "bands",
    [[1_000, 0], [0], [-5, 100], [0, math.inf, 5_000], [0, 0, 100]],
)
def test_bad_bands(events, bands):
    with pytest.raises(ValidationError, match="bands must be"):
        border_distance_profile(events, borders=BORDERS, bands=bands)


def test_bad_layers(events):
    with pytest.raises(ValidationError, match="events is empty"):
        border_distance_profile(events.iloc[:0], borders=BORDERS)
    with pytest.raises(ValidationError, match="borders has no 'neighbour' column"):
        distance_to_borders(events, borders=BORDERS.rename(columns={"neighbour": "country"}))
    with pytest.raises(ValidationError, match="crossings row 1: expected Point"):
        distance_to_borders(events, borders=BORDERS, crossings=BORDERS.rename(columns={"neighbour": "crossing_id"}))
    with pytest.raises(ValidationError, match="borders is empty"):
        distance_to_borders(events, borders=BORDERS.iloc[:0])


def test_nearest_border_without_per_neighbour_columns(events):
    full = distance_to_borders(events, borders=BORDERS, crossings=CROSSINGS)
    fast = distance_to_borders(events, borders=BORDERS, crossings=CROSSINGS, per_neighbour=False)
    assert not any(c.startswith("dist_") for c in fast.columns)
    np.testing.assert_allclose(fast.border_distance, full.border_distance)
    assert (fast.nearest_border == full.nearest_border).all()
    pd.testing.assert_frame_equal(fast.iloc[:, 2:], full.iloc[:, 5:])


@pytest.mark.parametrize("candidates", [1, 4])
def test_exact_near_tight_bends(monkeypatch, candidates):
    """A saw-tooth border with 30 m teeth; with 1 candidate most points need the fallback search."""
    from geo_ibm import bordergeo

    monkeypatch.setattr(bordergeo, "_CANDIDATES", candidates)
    xs = 70_000 + np.arange(0, 3_000, 15.0)
    ys = 90_000 + np.where(np.arange(xs.size) % 2, 30.0, 0.0)
    saw = gpd.GeoDataFrame(
        {"neighbour": ["BE", "DE"]},
        geometry=[shapely.LineString(np.c_[xs, ys]), shapely.LineString([(75_000, 80_000), (75_000, 100_000)])],
        crs=2169,
    )
    rng = np.random.default_rng(2)
    xy = np.r_[rng.uniform([69_000, 89_900], [74_000, 90_200], (400, 2)), rng.uniform(60_000, 100_000, (100, 2))]
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=2169)
    out = distance_to_borders(pts, borders=saw)
    ref = shapely.distance(shapely.points(xy)[:, None], np.asarray(saw.geometry.values)[None, :])
    np.testing.assert_allclose(out[["dist_BE", "dist_DE"]].to_numpy(), ref, atol=1e-6)
    fast = distance_to_borders(pts, borders=saw, per_neighbour=False)
    np.testing.assert_allclose(fast.border_distance, ref.min(axis=1), atol=1e-6)
    assert (fast.nearest_border.to_numpy() == np.array(["BE", "DE"])[ref.argmin(axis=1)]).all()
