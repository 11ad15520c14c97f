"""Tests for geo_ibm.layers and the checks of scripts/build_boundaries.py."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from cantonfixtures import events_at, swapped, synthetic_cantons
from scipy.spatial import cKDTree
from shapely.geometry import LineString, Point, box

from geo_ibm import layers
from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.settings import WORKING_CRS

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_KM = {"BE": 148.0, "FR": 73.0, "DE": 135.0}  # ACT
OFFICIAL_AREA_KM2 = 2586.0  # STATEC


def _load_build_script():
    spec = importlib.util.spec_from_file_location("build_boundaries", REPO_ROOT / "scripts" / "build_boundaries.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_boundaries"] = module
    spec.loader.exec_module(module)
    return module


build = _load_build_script()


def _pt(lat: float, lon: float) -> Point:
    return gpd.GeoSeries([Point(lon, lat)], crs="EPSG:4326").to_crs(WORKING_CRS).iloc[0]


def _dms(d: int, m: int, s: float) -> float:
    return d + m / 60.0 + s / 3600.0


# --- borders -------------------------------------------------------------------------------------
@pytest.mark.parametrize("neighbour", ["BE", "FR", "DE"])
def test_each_border_within_10_percent_of_official(neighbour):
    borders = layers.internal_borders().set_index("neighbour")
    length = borders.loc[neighbour].geometry.length / 1000.0
    assert abs(length - OFFICIAL_KM[neighbour]) / OFFICIAL_KM[neighbour] < 0.10
    assert borders.loc[neighbour, "length_km"] == pytest.approx(length)
    assert borders.loc[neighbour, "name"] == f"LU–{neighbour}"


def test_total_border_within_5_percent_and_border_lengths_table():
    table = layers.border_lengths()
    assert list(table["neighbour"]) == ["BE", "FR", "DE", "total"]
    total = table.set_index("neighbour").loc["total"]
    assert total["official_km"] == 356.0
    assert abs(total["length_km"] - 356.0) / 356.0 < 0.05
    assert total["length_km"] == pytest.approx(table["length_km"].iloc[:3].sum())
    expected_pct = 100.0 * (table["length_km"] - table["official_km"]) / table["official_km"]
    np.testing.assert_allclose(table["diff_pct"], expected_pct)


def test_borders_are_lines_on_the_outline_and_cover_it():
    outline = layers.luxembourg_outline().geometry.iloc[0]
    borders = layers.internal_borders()
    assert sorted(borders["neighbour"]) == ["BE", "DE", "FR"]
    for line in borders.geometry:
        assert line.geom_type == "LineString" and not line.is_empty
        # every vertex lies on the outline (GeoJSON rounding and reprojection: < 1 m)
        assert shapely.distance(shapely.points(shapely.get_coordinates(line)), outline.exterior).max() < 1.0
    assert borders.geometry.length.sum() == pytest.approx(outline.exterior.length, rel=1e-3)


def test_outline_area_and_columns():
    outline = layers.luxembourg_outline()
    assert list(outline.columns) == ["name", "area_km2", "geometry"]
    assert outline.crs.to_epsg() == 2169
    assert abs(outline.geometry.iloc[0].area / 1e6 - OFFICIAL_AREA_KM2) / OFFICIAL_AREA_KM2 < 0.01


def test_neighbour_outlines_touch_their_border_line():
    neighbours = layers.neighbour_outlines().set_index("country")
    borders = layers.internal_borders().set_index("neighbour")
    assert sorted(neighbours.index) == ["BE", "DE", "FR"]
    for code in ["BE", "FR", "DE"]:
        # the middle of each border line is next to (or, on the condominium rivers, inside) that neighbour
        middle = borders.loc[code].geometry.interpolate(0.5, normalized=True)
        assert middle.distance(neighbours.loc[code].geometry) < 50.0


# Published tripoint coordinates: fr.wikipedia "Frontière entre la France et le Luxembourg"
# (BE-FR-LU, DE-FR-LU) and fr.wikipedia "Ouren (Burg-Reuland)" (BE-DE-LU).
@pytest.mark.parametrize(
    ("countries", "lat", "lon"),
    [
        ("BE-FR-LU", _dms(49, 32, 47), _dms(5, 49, 7)),
        ("DE-FR-LU", _dms(49, 28, 10), _dms(6, 22, 2)),
        ("BE-DE-LU", _dms(50, 7, 47), _dms(6, 8, 16)),
    ],
)
def test_tripoints_near_published_coordinates(countries, lat, lon):
    points = layers.tripoints().set_index("countries")
    assert len(points) == 3
    assert points.loc[countries].geometry.distance(_pt(lat, lon)) < 300.0


def test_tripoints_are_border_line_ends():
    borders = layers.internal_borders().set_index("neighbour")
    for countries, point in zip(layers.tripoints()["countries"], layers.tripoints().geometry):
        pair = [c for c in countries.split("-") if c != "LU"]
        for code in pair:
            line = borders.loc[code].geometry
            ends = [Point(line.coords[0]), Point(line.coords[-1])]
            assert min(point.distance(e) for e in ends) < 1.0


# --- crossing points -----------------------------------------------------------------------------
def test_crossing_points_schema():
    points = layers.crossing_points()
    assert len(points) >= 30
    assert set(points["kind"]) <= set(layers.CROSSING_KINDS)
    assert points["crossing_id"].is_unique
    assert points["source"].str.len().min() > 0
    assert set(points["coord_quality"]) <= {"published", "published-3rdparty", "derived", "estimate"}
    land = points[points["kind"] != "airport"]
    assert set(land["neighbour"]) == {"BE", "FR", "DE"}
    assert {"motorway", "national_road", "bridge", "rail"} <= set(land["kind"])


def test_exactly_one_airport_far_from_land_borders():
    points = layers.crossing_points()
    assert (points["kind"] == "airport").sum() == 1
    ellx = layers.airport()
    assert len(ellx) == 1 and ellx["crossing_id"].iloc[0] == "ELLX" and ellx["neighbour"].iloc[0] == "external"
    # eAIP aerodrome reference point 49°37′24″N 6°12′16″E
    assert ellx.geometry.iloc[0].distance(_pt(_dms(49, 37, 24), _dms(6, 12, 16))) < 50.0
    nearest = layers.internal_borders().distance(ellx.geometry.iloc[0]).min()
    assert 10_000 < nearest < 14_000


def test_every_land_crossing_within_300_m_of_its_border_line():
    lines = dict(zip(layers.internal_borders()["neighbour"], layers.internal_borders().geometry))
    land = layers.crossing_points().query("kind != 'airport'")
    too_far = {cid: round(geom.distance(lines[n]))
               for cid, n, geom in zip(land["crossing_id"], land["neighbour"], land.geometry)
               if geom.distance(lines[n]) > 300.0}
    assert too_far == {}


def test_crossing_geojson_matches_curated_csv():
    table = pd.read_csv(REPO_ROOT / "data" / "boundaries" / "crossing_points.csv", keep_default_na=False)
    points = layers.crossing_points().set_index("crossing_id")
    assert sorted(points.index) == sorted(table["crossing_id"])
    expected = gpd.GeoSeries(gpd.points_from_xy(table["lon"], table["lat"]), crs="EPSG:4326").to_crs(WORKING_CRS)
    got = points.loc[table["crossing_id"]].geometry.to_numpy()
    assert shapely.distance(got, expected.to_numpy()).max() < 0.5


# --- road corridors -----------------------------------------------------------------------------
# Points each motorway serves, from lists independent of the corridor file: crossing coordinates
# from de.wikipedia / the ViaCust list, Croix de Gasperich from de.wikipedia (49°34′36″N 6°7′29″E),
# the Berchem camera of the CITA camera list, Croix de Bettembourg and Croix de Cessange from the
# CITA junction list, Dudelange–Zoufftgen as the estimate of the crossings research (49.47, 6.117).
GASPERICH = (_dms(49, 34, 36), _dms(6, 7, 29))
BETTEMBOURG = (49.49692, 6.11706)
CESSANGE = (49.58599, 6.08730)
MOTORWAY_POINTS = [
    ("A1", "Wasserbillig Sauertalbrücke", (49.733333, 6.501944)),
    ("A1", "Croix de Gasperich", GASPERICH),
    ("A3", "Croix de Gasperich", GASPERICH),
    ("A3", "Berchem camera", (49.536489, 6.113913)),
    ("A3", "Croix de Bettembourg", BETTEMBOURG),
    ("A3", "Dudelange-Zoufftgen", (49.47, 6.117)),
    ("A4", "Croix de Cessange", CESSANGE),
    ("A6", "Croix de Gasperich", GASPERICH),
    ("A6", "Croix de Cessange", CESSANGE),
    ("A6", "Sterpenich", (49.638518, 5.906325)),
    ("A13", "Viaduc de Schengen", (49.479444, 6.368056)),
    ("A13", "Croix de Bettembourg", BETTEMBOURG),
]


@pytest.mark.parametrize(("ref", "label", "latlon"), MOTORWAY_POINTS, ids=[f"{r}-{n}" for r, n, _ in MOTORWAY_POINTS])
def test_motorway_passes_known_point(ref, label, latlon):
    roads = layers.road_corridors()
    motorway = roads[(roads["ref"] == ref) & (roads["class"] == "motorway")]
    assert len(motorway) > 0
    assert motorway.distance(_pt(*latlon)).min() < 500.0, label


def test_corridor_schema():
    roads = layers.road_corridors()
    assert set(roads["class"]) <= {"motorway", "national", "collector"}
    assert {"A1", "A3", "A4", "A6", "A7", "A13"} <= set(roads.loc[roads["class"] == "motorway", "ref"])
    assert (roads.geometry.geom_type == "LineString").all()
    assert (roads.geometry.length > 0).all()


def test_every_road_crossing_within_500_m_of_a_corridor():
    network = shapely.union_all(layers.road_corridors().geometry.to_numpy())
    road = layers.crossing_points().query("kind in ['motorway', 'national_road', 'bridge']")
    far = {cid: round(g.distance(network)) for cid, g in zip(road["crossing_id"], road.geometry)
           if g.distance(network) > 500.0}
    assert far == {}


def _components(lines: gpd.GeoSeries, snap_m: float) -> int:
    ends = np.array([[ln.coords[0], ln.coords[-1]] for ln in lines]).reshape(-1, 2)
    parent = list(range(len(ends)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = [(2 * k, 2 * k + 1) for k in range(len(lines))]  # both ends of one line
    pairs += list(cKDTree(ends).query_pairs(snap_m))
    for a, b in pairs:
        parent[find(a)] = find(b)
    return len({find(i) for i in range(len(ends))})


def test_corridor_network_is_connected():
    assert _components(layers.road_corridors().geometry, 50.0) == 1


def test_component_counter_detects_a_disconnected_line():
    lines = layers.road_corridors().geometry
    extra = gpd.GeoSeries([LineString([(0, 0), (1000, 0)])], crs=WORKING_CRS)
    assert _components(pd.concat([lines, extra], ignore_index=True), 50.0) == 2


# --- cantons and regions -------------------------------------------------------------------------
def test_cantons_tile_luxembourg():
    cantons = layers.cantons()
    assert list(cantons.columns) == ["canton", "region", "geometry"]
    assert sorted(cantons["canton"]) == sorted(layers.CANTON_REGION)
    total = cantons.area.sum() / 1e6
    assert abs(total - OFFICIAL_AREA_KM2) / OFFICIAL_AREA_KM2 < 0.03
    union = shapely.union_all(cantons.geometry.to_numpy())
    assert union.area == pytest.approx(cantons.area.sum(), rel=1e-4)  # no overlaps
    outline = layers.luxembourg_outline().geometry.iloc[0]
    assert union.symmetric_difference(outline).area / outline.area < 0.005


def test_canton_regions_match_mapping():
    cantons = layers.cantons()
    assert dict(zip(cantons["canton"], cantons["region"])) == layers.CANTON_REGION
    assert layers.CANTON_REGION["Luxembourg"] == "Capitale"
    assert {c for c, r in layers.CANTON_REGION.items() if r == "Sud-Ouest"} == {"Capellen", "Esch-sur-Alzette"}


def test_police_regions_dissolve_cantons():
    regions = layers.police_regions()
    assert list(regions["region"]) == ["Capitale", "Centre-Est", "Nord", "Sud-Ouest"]
    assert regions.area.sum() == pytest.approx(layers.cantons().area.sum(), rel=1e-6)
    nord = layers.cantons().query("region == 'Nord'").area.sum()
    assert regions.set_index("region").loc["Nord"].geometry.area == pytest.approx(nord, rel=1e-6)


TOWNS = [
    ("Luxembourg", 49.6117, 6.1300, "Luxembourg", "Capitale"),
    ("Esch-sur-Alzette", 49.4958, 5.9806, "Esch-sur-Alzette", "Sud-Ouest"),
    ("Capellen", 49.6450, 5.9900, "Capellen", "Sud-Ouest"),
    ("Clervaux", 50.0547, 6.0314, "Clervaux", "Nord"),
    ("Wiltz", 49.9658, 5.9325, "Wiltz", "Nord"),
    ("Diekirch", 49.8681, 6.1597, "Diekirch", "Nord"),
    ("Echternach", 49.8117, 6.4217, "Echternach", "Centre-Est"),
    ("Mersch", 49.7489, 6.1061, "Mersch", "Centre-Est"),
]


def test_assign_regions_on_towns():
    points = gpd.GeoDataFrame(
        {"town": [t[0] for t in TOWNS]},
        geometry=[Point(lon, lat) for _, lat, lon, _, _ in TOWNS], crs="EPSG:4326", index=range(10, 10 + len(TOWNS)),
    )
    out = layers.assign_regions(points)
    assert out.crs.to_epsg() == 2169
    assert list(out.index) == list(points.index)
    assert list(out["canton"]) == [t[3] for t in TOWNS]
    assert list(out["region"]) == [t[4] for t in TOWNS]
    assert "canton" not in points.columns  # input untouched


def test_assign_regions_margin_uses_nearest_canton():
    outline = layers.luxembourg_outline().geometry.iloc[0]
    x0, y0 = min(outline.exterior.coords, key=lambda c: c[0])
    near, far = Point(x0 - 1000, y0), Point(x0 - 5000, y0)
    cantons = layers.cantons()
    expected = cantons["canton"].iloc[int(np.argmin(cantons.distance(near)))]
    points = gpd.GeoDataFrame({"k": [1, 2]}, geometry=[near, far], crs=WORKING_CRS)
    out = layers.assign_regions(points, max_distance_m=2000)
    assert out["canton"].iloc[0] == expected
    assert out["region"].iloc[0] == layers.CANTON_REGION[expected]
    assert pd.isna(out["canton"].iloc[1]) and pd.isna(out["region"].iloc[1])
    strict = layers.assign_regions(points, max_distance_m=0)
    assert strict["canton"].isna().all()


def test_assign_regions_keeps_missing_and_empty_geometries_and_duplicate_index():
    points = gpd.GeoDataFrame(
        {"a": [1, 2, 3]}, geometry=[None, _pt(49.6117, 6.1300), Point()], crs=WORKING_CRS, index=[5, 5, 6]
    )
    out = layers.assign_regions(points)
    assert list(out.index) == [5, 5, 6]
    assert out["canton"].iloc[1] == "Luxembourg"
    assert out["canton"].iloc[[0, 2]].isna().all() and out["region"].iloc[[0, 2]].isna().all()
    empty = layers.assign_regions(gpd.GeoDataFrame({"a": []}, geometry=[], crs=WORKING_CRS))
    assert len(empty) == 0 and {"canton", "region"} <= set(empty.columns)


def test_assign_regions_rejects_bad_input():
    lines = gpd.GeoDataFrame(geometry=[LineString([(70000, 70000), (71000, 70000)])], crs=WORKING_CRS)
    with pytest.raises(ValidationError, match="needs points"):
        layers.assign_regions(lines)
    points = gpd.GeoDataFrame(geometry=[Point(70000, 70000)], crs=WORKING_CRS)
    with pytest.raises(ValidationError, match="max_distance_m must be >= 0"):
        layers.assign_regions(points, max_distance_m=-1)
    with pytest.raises(CrsError, match="no CRS"):
        layers.assign_regions(gpd.GeoDataFrame(geometry=[Point(70000, 70000)]))


def _sjoin_reference(points: gpd.GeoDataFrame, limit: float) -> pd.DataFrame:
    """The plain two-join method: intersecting canton (first match), else nearest within ``limit``."""
    areas = layers.cantons()
    probe = gpd.GeoDataFrame({"_pos": np.arange(len(points))}, geometry=points.geometry.to_numpy(), crs=WORKING_CRS)
    canton = pd.Series(index=range(len(points)), dtype=object)
    inside = gpd.sjoin(probe, areas, how="inner", predicate="intersects").drop_duplicates("_pos")
    canton[inside["_pos"].to_numpy()] = inside["canton"].to_numpy()
    outside = probe[~probe["_pos"].isin(inside["_pos"])]
    if len(outside) and limit > 0:
        near = gpd.sjoin_nearest(outside, areas, how="inner", max_distance=limit).drop_duplicates("_pos")
        canton[near["_pos"].to_numpy()] = near["canton"].to_numpy()
    region_of = dict(zip(areas["canton"], areas["region"]))
    return pd.DataFrame({"canton": canton.to_numpy(), "region": [region_of.get(c) if isinstance(c, str) else None for c in canton]})


def _hard_points(n_random: int, *, seed: int) -> gpd.GeoDataFrame:
    """Random points over the margin box plus points on, and a hair off, every canton limit."""
    rng = np.random.default_rng(seed)
    areas = layers.cantons()
    minx, miny, maxx, maxy = areas.total_bounds
    spread = rng.uniform([minx - 3000, miny - 3000], [maxx + 3000, maxy + 3000], size=(n_random, 2))
    rings = shapely.get_parts(shapely.boundary(areas.geometry.to_numpy()))
    vertices = shapely.get_coordinates(rings)
    on_lines = shapely.get_coordinates(shapely.line_interpolate_point(
        rings[rng.integers(0, len(rings), 3000)], rng.uniform(0, 1, 3000), normalized=True))
    off = np.concatenate([on_lines + rng.normal(0, scale, on_lines.shape) for scale in (1e-9, 1e-3, 0.5, 30.0)])
    # Points about the margin distance out, where "nearest within the limit" is decided.
    outline = layers.luxembourg_outline().geometry.iloc[0]
    ring_pts = shapely.get_coordinates(shapely.line_interpolate_point(
        outline.exterior.buffer(2000).exterior, rng.uniform(0, 1, 2000), normalized=True))
    xy = np.concatenate([spread, vertices[rng.integers(0, len(vertices), 2000)], on_lines, off,
                         ring_pts + rng.normal(0, 3, ring_pts.shape)])
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=WORKING_CRS)


@pytest.mark.parametrize("limit", [0.0, 2000.0, 350.0])
@pytest.mark.parametrize("grid_from", [0, 10**9])
def test_assign_regions_equals_the_plain_spatial_join(limit, grid_from, monkeypatch):
    # grid_from: the number of points from which the canton grid is used (0: always; 10**9:
    # never, unless built already), so both routes are checked.
    monkeypatch.setattr(layers, "_RASTER_MIN_POINTS", grid_from)
    monkeypatch.setattr(layers, "_RASTERS", {})
    points = _hard_points(20_000, seed=int(limit) + 1)
    got = layers.assign_regions(points, max_distance_m=limit)
    expected = _sjoin_reference(points, limit)
    pd.testing.assert_series_equal(got["canton"].reset_index(drop=True), expected["canton"], check_names=False)
    pd.testing.assert_series_equal(got["region"].reset_index(drop=True), expected["region"], check_names=False)
    assert got["canton"].notna().sum() > 10_000


@pytest.mark.parametrize("grid_from", [0, 10**9])
def test_assign_regions_xy_equals_the_plain_spatial_join(grid_from, monkeypatch):
    monkeypatch.setattr(layers, "_RASTER_MIN_POINTS", grid_from)
    monkeypatch.setattr(layers, "_RASTERS", {})
    points = _hard_points(20_000, seed=11)
    xy = shapely.get_coordinates(points.geometry.to_numpy())
    # coordinates no point can have come last: they get no canton and leave the others alone
    x = np.append(xy[:, 0], [np.nan, np.inf, 80_000.0])
    y = np.append(xy[:, 1], [90_000.0, 90_000.0, np.nan])
    canton, region = layers.assign_regions_xy(x, y, max_distance_m=2000.0)
    expected = _sjoin_reference(points, 2000.0)
    pd.testing.assert_series_equal(pd.Series(canton[:-3]), expected["canton"], check_names=False)
    pd.testing.assert_series_equal(pd.Series(region[:-3]), expected["region"], check_names=False)
    assert pd.isna(canton[-3:]).all() and list(region[-3:]) == [None, None, None]
    assert pd.notna(canton).sum() > 10_000


def test_prepare_region_lookup_builds_the_grid_once(monkeypatch):
    monkeypatch.setattr(layers, "_RASTERS", {})
    layers.prepare_region_lookup(max_distance_m=2000.0)
    assert len(layers._RASTERS) == 1
    built = next(iter(layers._RASTERS.values()))
    layers.prepare_region_lookup(max_distance_m=2000.0)
    layers.assign_regions_xy(np.array([75_000.0]), np.array([80_000.0]), max_distance_m=2000.0)
    assert list(layers._RASTERS.values()) == [built]
    with pytest.raises(ValidationError, match="max_distance_m"):
        layers.prepare_region_lookup(max_distance_m=-1)


@pytest.mark.parametrize("cell", [130.0, 200.0, 1500.0])
@pytest.mark.parametrize("limit", [0.0, 2000.0])
def test_canton_grid_answers_only_what_the_spatial_join_says(cell, limit):
    # The grid may leave a point to the exact join, but every answer it gives must be the join's.
    points = _hard_points(20_000, seed=7)
    areas = layers.cantons()
    xy = shapely.get_coordinates(points.geometry.to_numpy())
    grid = layers._canton_raster(areas, limit, cell=cell)
    code = grid.lookup(xy[:, 0], xy[:, 1])
    names = np.append(areas["canton"].to_numpy(dtype=object), None)
    answered = code != layers._EXACT
    expected = _sjoin_reference(points, limit)["canton"].to_numpy(dtype=object)
    got = names[np.where(code >= 0, code, len(names) - 1)]
    mismatch = [(i, got[i], expected[i]) for i in np.flatnonzero(answered)
                if not (got[i] == expected[i] or (got[i] is None and pd.isna(expected[i])))]
    assert mismatch == []
    # Most of the uniformly spread points (the first 20 000) need no join at all.
    assert answered[:20_000].mean() > (0.8 if cell < 1000 else 0.4)


# --- canton override --------------------------------------------------------------------------
@pytest.mark.parametrize("communes_per_canton", [1, 3])
def test_cantons_from_file_and_install_override(tmp_path, monkeypatch, communes_per_canton):
    source = tmp_path / "limadmin.geojson"
    centres = synthetic_cantons(source, communes_per_canton=communes_per_canton)
    official = layers.cantons_from_file(source)
    assert list(official["canton"]) == sorted(layers.CANTON_REGION)
    assert list(official["region"]) == [layers.CANTON_REGION[c] for c in official["canton"]]
    np.testing.assert_allclose(official.area, 1e6, rtol=1e-4)  # communes dissolved to 1 km² cantons

    store = tmp_path / "inst" / "geo_ibm.gpkg"
    monkeypatch.setenv("GEO_IBM_STORE", str(store))
    path = layers.install_cantons(official)
    assert path == store.parent / "cantons.gpkg" == layers.installed_cantons_path()
    assert path.exists()
    installed = layers.cantons()
    assert installed.area.sum() == pytest.approx(12e6, rel=1e-4)
    assert len(layers.police_regions()) == 4
    probe = gpd.GeoDataFrame(geometry=list(centres.values()), crs=WORKING_CRS)
    assert list(layers.assign_regions(probe, max_distance_m=0)["canton"]) == list(centres)

    monkeypatch.setenv("GEO_IBM_STORE", str(tmp_path / "elsewhere" / "geo_ibm.gpkg"))
    assert layers.cantons().area.sum() / 1e6 == pytest.approx(OFFICIAL_AREA_KM2, rel=0.03)


def test_install_cantons_replaces_previous_override(tmp_path):
    source = tmp_path / "c.geojson"
    synthetic_cantons(source)
    first = layers.cantons_from_file(source)
    layers.install_cantons(first)
    moved = first.copy()
    moved["geometry"] = moved.geometry.scale(2.0, 2.0)
    layers.install_cantons(moved)
    assert layers.cantons().area.sum() == pytest.approx(48e6, rel=1e-4)


def test_cantons_from_file_with_named_column(tmp_path):
    source = tmp_path / "c.geojson"
    synthetic_cantons(source, column="KANTON")
    with pytest.raises(ValidationError, match="no canton name column"):
        layers.cantons_from_file(source)
    assert len(layers.cantons_from_file(source, name_column="KANTON")) == 12
    with pytest.raises(ValidationError, match="no column 'NAME'"):
        layers.cantons_from_file(source, name_column="NAME")


def test_cantons_from_file_lists_unknown_names(tmp_path):
    source = tmp_path / "c.geojson"
    synthetic_cantons(source, rename={"Wiltz": "Atlantis", "Remich": "Moon"})
    with pytest.raises(ValidationError, match="2 rows name no canton") as info:
        layers.cantons_from_file(source)
    assert {p.value for p in info.value.problems} == {"Atlantis", "Moon"}
    assert "Atlantis" in str(info.value)


def test_cantons_from_file_reports_missing_canton_and_file(tmp_path):
    source = tmp_path / "c.geojson"
    synthetic_cantons(source, drop="Vianden")
    with pytest.raises(ValidationError, match=r"missing cantons \['Vianden'\]"):
        layers.cantons_from_file(source)
    with pytest.raises(ValidationError, match="file not found"):
        layers.cantons_from_file(tmp_path / "absent.geojson")


def test_install_cantons_validates(tmp_path):
    source = tmp_path / "c.geojson"
    synthetic_cantons(source)
    good = layers.cantons_from_file(source)
    wrong = good.copy()
    wrong.loc[wrong["canton"] == "Wiltz", "region"] = "Capitale"
    with pytest.raises(ValidationError, match="region of Wiltz must be 'Nord'"):
        layers.install_cantons(wrong)
    with pytest.raises(ValidationError, match="needs a 'canton' column"):
        layers.install_cantons(good.rename(columns={"canton": "name"}))
    assert not layers.installed_cantons_path().exists()


# --- build script checks ----------------------------------------------------------------------
def test_verify_tarball_accepts_and_rejects(tmp_path):
    tarball = tmp_path / "pkg.tgz"
    tarball.write_bytes(b"not really a tarball")
    sha1 = hashlib.sha1(b"not really a tarball").hexdigest()
    sri = "sha512-" + base64.b64encode(hashlib.sha512(b"not really a tarball").digest()).decode()
    build.verify_tarball(tarball, shasum=sha1, integrity=sri)
    with pytest.raises(ValidationError, match="sha1 shasum mismatch"):
        build.verify_tarball(tarball, shasum="0" * 40, integrity=sri)
    with pytest.raises(ValidationError, match="sha512 integrity mismatch"):
        build.verify_tarball(tarball, shasum=sha1, integrity=build.COUNTRIES.integrity)
    with pytest.raises(ValidationError, match="unsupported integrity"):
        build.verify_tarball(tarball, shasum=sha1, integrity="md5-abc")


def _encode_echarts(values: list[tuple[int, int]], offset: tuple[int, int]) -> str:
    """Reference encoder: zigzag each delta, shift by 64 into one character."""
    out, prev = ["@@"], offset
    for x, y in values:
        for delta in (x - prev[0], y - prev[1]):
            out.append(chr(((delta << 1) ^ (delta >> 31)) + 64))
        prev = (x, y)
    return "".join(out)


def test_decode_echarts_ring_round_trip():
    rng = np.random.default_rng(7)
    offset = (6029, 50903)
    values = [(int(offset[0] + a), int(offset[1] + b)) for a, b in np.cumsum(rng.integers(-40, 40, (50, 2)), axis=0)]
    decoded = build.decode_echarts_ring(_encode_echarts(values, offset), offset)
    np.testing.assert_allclose(decoded, np.array(values) / 1024.0)
    assert build.decode_echarts_ring("@@A@", (0, 0)) == [(-1 / 1024.0, 0.0)]


def _square_world():
    lu = box(0, 0, 10_000, 10_000)
    neighbours = gpd.GeoDataFrame(
        {"country": ["BE", "FR", "DE"], "name": ["Belgium", "France", "Germany"]},
        geometry=[
            box(-5000, -5000, 0, 15_000).union(box(0, 10_000, 5000, 15_000)),
            box(0, -5000, 3000, 0).union(box(3150, -5000, 10_000, 0)),
            # overlaps LU along its east edge, like OSM's German polygon over the condominium rivers,
            # and pokes a 150 m sliver up to LU's south edge
            box(9900, -5000, 15_000, 15_000).union(box(5000, 10_000, 10_000, 15_000)).union(box(3000, -5000, 3150, 0)),
        ],
        crs=WORKING_CRS,
    )
    return lu, neighbours


def test_split_border_on_synthetic_square():
    lu, neighbours = _square_world()
    borders, tripoints = build.split_border(lu, neighbours, piece_m=50, min_run_m=300)
    lengths = dict(zip(borders["neighbour"], borders.geometry.length))
    assert lengths == pytest.approx({"BE": 15_000, "FR": 10_000, "DE": 15_000}, abs=60)
    where = {c: p for c, p in zip(tripoints["countries"], tripoints.geometry)}
    assert where["BE-DE-LU"].distance(Point(5000, 10_000)) < 60
    assert where["BE-FR-LU"].distance(Point(0, 0)) < 60
    assert where["DE-FR-LU"].distance(Point(10_000, 0)) < 60


def test_validate_crossings_rejects_far_point_and_bad_kind():
    lu, neighbours = _square_world()
    borders, _ = build.split_border(lu, neighbours)
    lonlat = gpd.GeoSeries([Point(-50, 5000), Point(2000, 5000), Point(5000, 5000)], crs=WORKING_CRS).to_crs(4326)
    table = pd.DataFrame({
        "crossing_id": ["OK", "FAR", "AIR"], "name": ["a", "b", "c"], "kind": ["rail", "ferry", "airport"],
        "ref": ["", "", ""], "neighbour": ["BE", "BE", "external"],
        "lat": lonlat.y, "lon": lonlat.x, "source": ["s", "s", "s"],
        "coord_quality": ["published", "estimate", "published"], "notes": ["", "", ""],
    })
    with pytest.raises(ValidationError, match="invalid crossing points") as info:
        build.validate_crossings(table, borders, file="x.csv")
    reasons = " | ".join(str(p) for p in info.value.problems)
    assert "kind must be one of" in reasons and "'ferry'" in reasons
    table.loc[1, "kind"] = "rail"
    with pytest.raises(ValidationError, match="2000 m from the LU–BE border line"):
        build.validate_crossings(table, borders, file="x.csv")
    table.loc[1, ["lat", "lon"]] = table.loc[0, ["lat", "lon"]].to_numpy()
    assert len(build.validate_crossings(table, borders, file="x.csv")) == 3


# --- installing cantons re-assigns the stored events -------------------------------------------


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Synthetic cantons installed next to a store holding one event at each canton's centre."""
    from geo_ibm.store import GeoPackageStore

    store_file = tmp_path / "inst" / "geo_ibm.gpkg"
    monkeypatch.setenv("GEO_IBM_STORE", str(store_file))
    source = tmp_path / "c.geojson"
    centres = synthetic_cantons(source)
    layer = layers.cantons_from_file(source)
    layers.install_cantons(layer)
    store = GeoPackageStore(store_file, outline=False)
    store.import_events(events_at(centres), source="centres", user="test")
    return store, layer, centres


def test_install_cantons_moves_stored_events_to_the_new_boundaries(installed):
    store, layer, centres = installed
    before = store.events().set_index("event_id")
    assert before["canton"].to_dict() == {f"at-{n}": n for n in centres}
    version = store.version()
    path = layers.install_cantons(swapped(layer, "Capellen", "Remich"), store=store)
    assert path == layers.installed_cantons_path()
    after = store.events().set_index("event_id")
    assert after.loc["at-Capellen", ["canton", "region"]].tolist() == ["Remich", "Centre-Est"]
    assert after.loc["at-Remich", ["canton", "region"]].tolist() == ["Capellen", "Sud-Ouest"]
    others = [f"at-{n}" for n in centres if n not in ("Capellen", "Remich")]
    assert after.loc[others, ["canton", "region"]].equals(before.loc[others, ["canton", "region"]])
    # The stored assignment agrees with the installed layer, table by table.
    fresh = layers.assign_regions(store.events()[["event_id", "geometry"]])
    expected = fresh.groupby("canton").size().to_dict()
    assert store.counts(by="canton").set_index("canton")["events"].to_dict() == expected
    assert store.count(region="Centre-Est") == int((fresh["region"] == "Centre-Est").sum())
    assert store.version() != version
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("failure", ["events", "rename", "commit"])
def test_a_failed_install_leaves_the_layer_file_and_the_events_as_they_were(installed, monkeypatch, failure):
    from geo_ibm.errors import StoreError
    from geo_ibm.store import geopackage, gpkg_schema

    store, layer, _centres = installed
    path = layers.installed_cantons_path()
    files = sorted(p.name for p in path.parent.iterdir())
    layer_bytes, events, version = path.read_bytes(), store.events(), store.version()
    with monkeypatch.context() as patch:
        if failure == "events":  # the update of the events fails
            def refuse(*args):
                raise StoreError("disk full")
            patch.setattr(geopackage._Transaction, "set_places", refuse)
        elif failure == "rename":  # the new file cannot take the old one's place
            real = layers.os.replace

            def refuse_rename(src, dst):
                if ".new" in str(src):
                    raise OSError("read-only folder")
                return real(src, dst)
            patch.setattr(layers.os, "replace", refuse_rename)
        else:  # the commit fails after the rename
            def refuse_bump(conn):
                raise StoreError("database is locked")
            patch.setattr(gpkg_schema, "bump_version", refuse_bump)
        with pytest.raises((StoreError, OSError)):
            layers.install_cantons(swapped(layer, "Capellen", "Remich"), store=store)
    assert path.read_bytes() == layer_bytes
    pd.testing.assert_frame_equal(store.events(), events)
    assert store.version() == version
    assert sorted(p.name for p in path.parent.iterdir()) == files
    assert layers.cantons().loc[lambda g: g["canton"] == "Capellen"].geometry.iloc[0].equals(
        layer.loc[layer["canton"] == "Capellen"].geometry.iloc[0])


def test_a_failed_first_install_leaves_no_layer(tmp_path, monkeypatch):
    from geo_ibm.errors import StoreError
    from geo_ibm.store import GeoPackageStore, gpkg_schema

    store_file = tmp_path / "inst" / "geo_ibm.gpkg"
    monkeypatch.setenv("GEO_IBM_STORE", str(store_file))
    source = tmp_path / "c.geojson"
    centres = synthetic_cantons(source)
    store = GeoPackageStore(store_file, outline=False, assign_regions=False)
    store.import_events(events_at(centres), source="centres", user="test")

    def refuse_bump(conn):
        raise StoreError("database is locked")

    monkeypatch.setattr(gpkg_schema, "bump_version", refuse_bump)
    with pytest.raises(StoreError, match="locked"):
        layers.install_cantons(layers.cantons_from_file(source), store=store)
    assert not layers.installed_cantons_path().exists()
    assert sorted(p.name for p in store_file.parent.iterdir() if "cantons" in p.name) == []
    assert store.events()["canton"].isna().all()
