"""Tests for geo_ibm.kde: binned FFT quartic density against brute-force evaluation."""
from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.kde import KdeResult, default_search_radius, density_contours, kernel_density

AREA = shapely.box(60_000, 60_000, 100_000, 130_000)


def _events(xy: np.ndarray, **cols) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(cols, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:2169")


@pytest.fixture(scope="module")
def blob_events() -> gpd.GeoDataFrame:
    rng = np.random.default_rng(7)
    xy = np.r_[
        rng.normal([75_000, 90_000], 2_000, (300, 2)),
        rng.normal([90_000, 120_000], 1_000, (60, 2)),
        rng.uniform([60_000, 60_000], [100_000, 130_000], (100, 2)),
    ]
    return _events(xy, persons=rng.integers(1, 9, len(xy)))


def _brute_force(kde: KdeResult, xy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact ArcGIS quartic sum at every cell centre, events per km²."""
    x0, cell, _, y0, _, _ = kde.transform
    rows, cols = kde.density.shape
    gx, gy = np.meshgrid(x0 + (np.arange(cols) + 0.5) * cell, y0 - (np.arange(rows) + 0.5) * cell)
    out = np.zeros((rows, cols))
    r = kde.radius
    for (px, py), wi in zip(xy, w):
        u2 = ((gx - px) ** 2 + (gy - py) ** 2) / r**2
        out += np.where(u2 < 1, wi * 3 / (math.pi * r**2) * (1 - u2) ** 2, 0.0)
    return out * 1e6


@pytest.mark.parametrize(
    ("cell", "radius", "weights"),
    [(200, 3000, None), (100, 2000, None), (150, 3000, "persons"), (250, 5000, "persons")],
)
def test_matches_brute_force_within_one_percent(blob_events, cell, radius, weights):
    kde = kernel_density(blob_events, study_area=AREA, cell=cell, radius=radius, weights=weights)
    xy = shapely.get_coordinates(blob_events.geometry.values)
    w = np.ones(len(xy)) if weights is None else blob_events[weights].to_numpy(float)
    exact = _brute_force(kde, xy, w)
    assert kde.density.shape == (math.ceil(70_000 / cell), math.ceil(40_000 / cell))
    significant = exact > 0.05 * exact.max()
    rel = np.abs(kde.density - exact)[significant] / exact[significant]
    assert rel.max() < 0.01
    assert np.abs(kde.density - exact).max() < 0.01 * exact.max()
    # Binning may reach one cell past the radius, but only with the kernel's vanishing tail.
    assert kde.density[exact == 0].max(initial=0) < 0.005 * exact.max()


def test_surface_integrates_to_event_count_and_weights(blob_events):
    inner = blob_events[blob_events.geometry.within(AREA.buffer(-3_000))]
    kde = kernel_density(inner, study_area=AREA, cell=100, radius=2_500)
    assert kde.density.sum() * (kde.cell / 1000) ** 2 == pytest.approx(len(inner), rel=0.01)
    kde_w = kernel_density(inner, study_area=AREA, cell=100, radius=2_500, weights="persons")
    assert kde_w.density.sum() * 0.01 == pytest.approx(inner["persons"].sum(), rel=0.01)
    assert kde_w.total_weight == inner["persons"].sum()


def test_event_outside_grid_contributes_inside():
    ev = _events(np.array([[59_500.0, 90_000.0]]))
    kde = kernel_density(ev, study_area=AREA, cell=100, radius=2_000)
    exact = _brute_force(kde, np.array([[59_500.0, 90_000.0]]), np.ones(1))
    assert kde.density.max() > 0
    core = exact > 0.25 * exact.max()
    np.testing.assert_allclose(kde.density[core], exact[core], rtol=0.01)
    np.testing.assert_allclose(kde.density, exact, atol=0.01 * exact.max())


def test_transform_and_cell_centres():
    ev = _events(np.array([[80_050.0, 99_950.0], [86_000.0, 100_000.0]]))
    kde = kernel_density(ev, study_area=AREA, cell=100, radius=1_000)
    assert kde.transform == (60_000.0, 100.0, 0.0, 130_000.0, 0.0, -100.0)
    xs, ys = kde.cell_centres()
    i, j = np.unravel_index(np.argmax(kde.density), kde.shape)
    # The first event sits exactly on a cell centre and is the peak.
    assert (xs[j], ys[i]) == (80_050.0, 99_950.0)
    assert kde.density[i, j] == pytest.approx(3 / (math.pi * 1_000**2) * 1e6, rel=1e-9)
    assert kde.crs == "EPSG:2169"


def test_inside_mask_follows_study_polygon():
    tri = shapely.Polygon([(60_000, 60_000), (100_000, 60_000), (60_000, 130_000)])
    ev = _events(np.array([[70_000.0, 70_000.0], [72_000.0, 71_000.0]]))
    kde = kernel_density(ev, study_area=gpd.GeoDataFrame(geometry=[tri], crs=2169), cell=500, radius=3_000)
    share = kde.inside.mean()
    assert share == pytest.approx(0.5, abs=0.02)
    cells = kde.to_geodataframe()
    assert list(cells.columns) == ["row", "col", "density", "geometry"]
    assert (cells.density > 0).all() and cells.crs.to_epsg() == 2169
    assert cells.geometry.area.eq(500 * 500).all()
    assert cells.density.sum() == pytest.approx(kde.density[kde.inside].sum())


def test_default_search_radius_formula():
    rng = np.random.default_rng(3)
    xy = np.r_[rng.normal(0, 1_000, (200, 2)), [[50_000, 50_000]]] + [80_000, 90_000]
    centre = xy.mean(axis=0)
    d = np.hypot(*(xy - centre).T)
    sd = math.sqrt(np.mean(d**2))
    expected = 0.9 * min(sd, math.sqrt(1 / math.log(2)) * np.median(d)) * len(xy) ** -0.2
    assert default_search_radius(xy) == pytest.approx(expected, rel=1e-2)
    # The outlier inflates SD, so the median term must be the one used.
    assert expected < 0.9 * sd * len(xy) ** -0.2
    kde = kernel_density(_events(xy), study_area=AREA, cell=500)
    assert kde.radius == default_search_radius(xy)


def test_default_radius_integer_weights_equal_repeated_points():
    rng = np.random.default_rng(4)
    xy = rng.normal(85_000, 3_000, (51, 2))
    w = rng.integers(1, 5, 51)
    assert default_search_radius(xy, w.astype(float)) == pytest.approx(default_search_radius(np.repeat(xy, w, axis=0)))


def test_default_cell_is_arcgis_rule(blob_events):
    kde = kernel_density(blob_events, study_area=AREA, radius=2_000)
    assert kde.cell == pytest.approx(40_000 / 250)


def test_contours_bands_match_cell_areas(blob_events):
    kde = kernel_density(blob_events, study_area=AREA, cell=200, radius=3_000)
    bands = density_contours(kde)
    assert list(bands.columns) == ["level", "upper", "quantile", "geometry"]
    assert bands.crs.to_epsg() == 2169
    assert bands.level.is_monotonic_increasing
    assert bands.geometry.is_valid.all()
    np.testing.assert_allclose(bands.upper.iloc[:-1].to_numpy(), bands.level.iloc[1:].to_numpy())
    pool = kde.density[kde.inside]
    np.testing.assert_allclose(bands.level, np.quantile(pool[pool > 0], bands["quantile"]))
    for _, band in bands.iterrows():
        cells = ((kde.density >= band.level) & (kde.density < band.upper)).sum() * kde.cell**2
        if band.upper == bands.upper.max():
            cells = (kde.density >= band.level).sum() * kde.cell**2
        assert band.geometry.area == pytest.approx(cells, rel=0.2)
    # The peak lies in the top band.
    i, j = np.unravel_index(np.argmax(kde.density), kde.shape)
    xs, ys = kde.cell_centres()
    assert bands.geometry.iloc[-1].buffer(1).contains(shapely.Point(xs[j], ys[i]))


def test_contours_explicit_levels_and_clip(blob_events):
    kde = kernel_density(blob_events, study_area=AREA, cell=200, radius=3_000)
    half = shapely.box(60_000, 60_000, 80_000, 130_000)
    bands = density_contours(kde, levels=[1.0, 5.0], study_area=half)
    assert bands.level.tolist() == [1.0, 5.0]
    assert bands["quantile"].isna().all()
    assert all(g.difference(half).area < 1e-6 for g in bands.geometry)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cell": -5}, "cell must be a positive"),
        ({"cell": 0}, "cell must be a positive"),
        ({"cell": float("nan")}, "cell must be a positive"),
        ({"radius": -100}, "radius must be a positive"),
        ({"radius": 0.0}, "radius must be a positive"),
        ({"cell": 1, "radius": 1_000}, "use a larger cell"),
        ({"weights": "missing"}, "weights: column 'missing' not found"),
        ({"weights": [1.0, 2.0]}, "weights must have one value per event"),
    ],
)
def test_bad_parameters_raise(blob_events, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        kernel_density(blob_events, study_area=AREA, **({"radius": 1_000} | kwargs))


def test_bad_inputs_raise(blob_events):
    with pytest.raises(ValidationError, match="events is empty"):
        kernel_density(blob_events.iloc[:0], study_area=AREA, radius=1_000)
    with pytest.raises(ValidationError, match="radius cannot be derived"):
        kernel_density(blob_events.iloc[:1], study_area=AREA)
    with pytest.raises(CrsError, match="EPSG:4326"):
        kernel_density(blob_events.to_crs(4326), study_area=AREA, radius=1_000)
    neg = blob_events.assign(persons=-1)
    with pytest.raises(ValidationError, match="weights must be finite and >= 0"):
        kernel_density(neg, study_area=AREA, radius=1_000, weights="persons")
    lines = gpd.GeoDataFrame(geometry=[shapely.LineString([(70_000, 70_000), (71_000, 71_000)])], crs=2169)
    with pytest.raises(ValidationError, match="only non-empty Point"):
        kernel_density(lines, study_area=AREA, radius=1_000)
    with pytest.raises(ValidationError, match="study_area must be"):
        kernel_density(blob_events, study_area="lux", radius=1_000)
    with pytest.raises(ValidationError, match="levels must be ascending"):
        density_contours(kernel_density(blob_events, study_area=AREA, radius=2_000), levels=[5.0, 1.0])


def test_agrees_with_kdepy_biweight(blob_events):
    import KDEpy as kdepy
    cell, radius = 200.0, 3_000.0
    kde = kernel_density(blob_events, study_area=AREA, cell=cell, radius=radius)
    xy = shapely.get_coordinates(blob_events.geometry.values)
    xs, ys = kde.cell_centres()
    pad = int(radius // cell) + 2
    gx = np.r_[xs[0] - cell * np.arange(pad, 0, -1), xs, xs[-1] + cell * np.arange(1, pad + 1)]
    gy = np.r_[ys[-1] - cell * np.arange(pad, 0, -1), ys[::-1], ys[0] + cell * np.arange(1, pad + 1)]
    mesh = np.stack(np.meshgrid(gx, gy, indexing="ij"), axis=-1).reshape(-1, 2)
    # KDEpy's bw is the 1-D standard deviation of the kernel; its biweight support is bw * sqrt(7).
    est = kdepy.FFTKDE(kernel="biweight", bw=radius / math.sqrt(7), norm=2).fit(xy)
    dens = est.evaluate(mesh).reshape(len(gx), len(gy))[pad:-pad, pad:-pad].T[::-1, :] * len(xy) * 1e6
    np.testing.assert_allclose(kde.density, dens, atol=1e-6 * kde.density.max())
