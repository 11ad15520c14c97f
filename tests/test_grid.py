"""Tests for geo_ibm.grid: grid construction, index binning against a spatial join, stencil sums."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box

from geo_ibm import grid as grid_module
from geo_ibm.errors import ValidationError
from geo_ibm.grid import (
    bin_counts,
    cell_polygons,
    clip_cells,
    grid_spec,
    hex_grid,
    locate,
    locate_xy,
    make_grid,
    neighbourhood_sum,
    square_grid,
)

SQUARE = box(50_000, 55_000, 80_000, 95_000)
# an irregular pentagon in LUREF coordinates, so clipping and partial cells are exercised
PENTAGON = Polygon([(52_300, 57_100), (98_700, 60_400), (108_900, 101_200), (74_500, 138_600), (55_200, 112_000)])


def _points(area, n, seed):
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = area.bounds
    return np.column_stack([rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)])


@pytest.mark.parametrize("shape", ["square", "hex"])
@pytest.mark.parametrize("area", [SQUARE, PENTAGON], ids=["square_area", "pentagon_area"])
def test_grid_covers_area_exactly(shape, area):
    grid = make_grid(area, cell=2_500, shape=shape)
    assert list(grid.columns) == ["cell_id", "row", "col", "area_frac", "geometry"]
    assert grid.crs.to_epsg() == 2169
    assert (grid["cell_id"].to_numpy() == np.arange(len(grid))).all()
    # clipped cells tile the area: their areas add up to it and none sticks out
    assert grid.geometry.area.sum() == pytest.approx(area.area, rel=1e-9)
    assert shapely.difference(grid.geometry.union_all(), area).area < 1e-3
    full = 2_500**2 if shape == "square" else 2_500**2 * np.sqrt(3) / 2
    np.testing.assert_allclose(grid["area_frac"], grid.geometry.area / full, rtol=1e-9)
    assert ((grid["area_frac"] > 0) & (grid["area_frac"] <= 1)).all()


def _every_cell_tested(area, cell, shape):
    """The grid's cells as testing every lattice cell against the area gives them (make_grid's rule, by brute force)."""
    x0, y0, n_rows, n_cols = grid_module.lattice_extent(area.bounds, cell=cell, shape=shape)
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    polys = cell_polygons(shape, cell, x0, y0, rows, cols)
    inside = shapely.contains_properly(area, polys)
    touching = ~inside & shapely.intersects(area, polys)
    shapes = polys.copy()
    shapes[touching] = clip_cells(polys[touching], area, shape=shape)
    full = cell**2 if shape == "square" else cell**2 * np.sqrt(3) / 2
    frac = inside.astype(float)
    frac[touching] = shapely.area(shapes[touching]) / full
    keep = inside | (touching & (frac > 1e-9))
    return rows[keep], cols[keep], np.minimum(frac[keep], 1.0), shapes[keep]


HOLED = shapely.MultiPolygon([
    Polygon(PENTAGON.exterior.coords, [shapely.Point(78_000, 95_000).buffer(9_000).exterior.coords]),
    box(110_000, 60_000, 121_300, 67_700).difference(shapely.Point(115_000, 64_000).buffer(1_500)),
])
ALIGNED = box(50_000, 55_000, 80_000, 95_000)  # edges on lattice lines of 1,000 m squares
SLIVER = Polygon([(60_000, 60_000), (90_000, 60_300), (60_000, 60_450)])
SPECK = box(70_010, 80_020, 70_190, 80_110)  # a few cells of 150 m, no whole one


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_grid_of_a_geometry_collection_keeps_the_cells_of_its_polygons(shape):
    # mixed layers union to a collection, which has no boundary of its own: its polygons' boundary is followed
    frame = gpd.GeoDataFrame(geometry=[box(60_000, 70_000, 70_000, 80_000), shapely.Point(90_000, 95_000),
                                       shapely.LineString([(60_000, 60_000), (95_000, 99_000)]), PENTAGON.buffer(-20_000)],
                             crs=2169)
    grid = make_grid(frame, cell=1_000, shape=shape)
    union = frame.geometry.union_all()
    assert union.geom_type == "GeometryCollection"
    polygons = shapely.MultiPolygon([p for p in shapely.get_parts(union) if p.geom_type == "Polygon"])
    rows, cols, frac, shapes = _every_cell_tested(polygons, 1_000.0, shape)
    np.testing.assert_array_equal(grid["row"].to_numpy(), rows)
    np.testing.assert_array_equal(grid["col"].to_numpy(), cols)
    np.testing.assert_array_equal(grid["area_frac"].to_numpy(), frac)
    assert (shapely.to_wkb(grid.geometry.values) == shapely.to_wkb(shapes)).all()
    assert grid.geometry.area.sum() == pytest.approx(box(60_000, 70_000, 70_000, 80_000).union(PENTAGON.buffer(-20_000)).area)


@pytest.mark.parametrize("shape", ["square", "hex"])
@pytest.mark.parametrize(("area", "cell"), [(PENTAGON, 1_000.0), (PENTAGON, 333.0), (HOLED, 700.0), (ALIGNED, 1_000.0),
                                            (SLIVER, 250.0), (SPECK, 150.0)],
                         ids=["pentagon", "pentagon-fine", "holed", "aligned", "sliver", "speck"])
def test_grid_keeps_the_cells_testing_every_cell_keeps(shape, area, cell):
    # make_grid tests only the cells the boundary may reach; testing every cell must keep the same ones, as the same shapes
    grid = make_grid(area, cell=cell, shape=shape)
    rows, cols, frac, shapes = _every_cell_tested(area, cell, shape)
    np.testing.assert_array_equal(grid["row"].to_numpy(), rows)
    np.testing.assert_array_equal(grid["col"].to_numpy(), cols)
    np.testing.assert_array_equal(grid["area_frac"].to_numpy(), frac)
    assert (shapely.to_wkb(grid.geometry.values) == shapely.to_wkb(shapes)).all()
    assert len(grid) >= 1


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_clip_cells_equals_the_overlay_with_the_whole_area(shape):
    # a ring with a hole and a thin spike, so cells meet concave corners, the hole and slivers
    outer = [(52_300, 57_100), (98_700, 60_400), (99_000, 60_401), (108_900, 101_200), (74_500, 138_600), (55_200, 112_000)]
    area = Polygon(outer, [[(70_000, 80_000), (80_000, 80_000), (75_000, 90_000)]])
    rows, cols = np.divmod(np.arange(40 * 30), 30)
    polys = cell_polygons(shape, 2_000.0, 50_000.0, 55_000.0, rows, cols)
    polys = polys[shapely.intersects(area, polys) & ~shapely.contains_properly(area, polys)]
    fast = clip_cells(polys, area, shape=shape)
    reference = shapely.intersection(polys, area)
    assert len(polys) > 100
    assert shapely.is_valid(fast).all()
    np.testing.assert_allclose(shapely.area(fast), shapely.area(reference), rtol=0, atol=1e-6)
    # the same point sets: what one has and the other lacks is float noise at the crossings
    assert shapely.area(shapely.symmetric_difference(fast, reference)).max() < 1e-6


def test_hexagon_geometry_and_spacing():
    grid = hex_grid(SQUARE, cell=1_000)
    inner = grid[grid["area_frac"] == 1.0]
    np.testing.assert_allclose(inner.geometry.area, 1_000**2 * np.sqrt(3) / 2, rtol=1e-9)
    centres = grid_spec(grid).centres()
    from scipy.spatial import cKDTree

    d, _ = cKDTree(centres).query(centres, k=7)
    # every interior hexagon has six neighbours at exactly the spacing
    interior = (d[:, 6] < 1_000.001)
    assert interior.sum() > 0.8 * len(grid)
    np.testing.assert_allclose(d[interior, 1:], 1_000, rtol=1e-9)


@pytest.mark.parametrize("chunk", [None, 997], ids=["default_chunk", "small_chunks"])
@pytest.mark.parametrize("shape", ["square", "hex"])
def test_locate_matches_spatial_join(shape, chunk, monkeypatch):
    if chunk is not None:  # many chunks and a short last one
        monkeypatch.setattr(grid_module, "LOCATE_CHUNK", chunk)
    grid = make_grid(PENTAGON, cell=1_700, shape=shape)
    spec = grid_spec(grid)
    xy = _points(PENTAGON, 30_000, seed=3)
    ids = locate(xy, grid)
    full = cell_polygons(shape, spec.cell, spec.x0, spec.y0, spec.rows, spec.cols)
    hit_point, hit_cell = shapely.STRtree(full).query(shapely.points(xy), predicate="within")
    expected = np.full(len(xy), -1)
    expected[hit_point] = hit_cell
    assert (ids == expected).all()
    assert (ids == -1).sum() > 0  # the bounding box holds points outside every kept cell


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_bin_counts_counts_and_weights(shape):
    grid = make_grid(SQUARE, cell=3_000, shape=shape)
    xy = _points(SQUARE, 5_000, seed=4)
    weights = np.random.default_rng(5).integers(1, 6, len(xy)).astype(float)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=2169)
    joined = gpd.sjoin(pts.assign(w=weights), grid[["cell_id", "geometry"]], predicate="within")
    counts = bin_counts(pts, grid)
    sums = bin_counts(xy, grid, weights=weights)
    expected_counts = np.bincount(joined["cell_id"], minlength=len(grid))
    expected_sums = np.bincount(joined["cell_id"], weights=joined["w"], minlength=len(grid))
    assert counts.dtype == np.int64
    # points exactly on a shared edge could differ between the join and floor division; with
    # continuous coordinates none does, so the two agree exactly
    assert (counts == expected_counts).all()
    np.testing.assert_allclose(sums, expected_sums)
    assert counts.sum() == len(xy)


def test_square_cells_are_half_open():
    grid = square_grid(box(0, 0, 10_000, 10_000), cell=1_000)
    ids = locate(np.array([[0.0, 0.0], [999.999, 0.0], [1_000.0, 0.0], [10_000.0, 10_000.0]]), grid)
    spec = grid_spec(grid)
    assert spec.rows[ids[0]] == 0 and spec.cols[ids[0]] == 0
    assert spec.cols[ids[1]] == 0 and spec.cols[ids[2]] == 1
    assert ids[3] == -1  # the far corner belongs to a cell that lies outside the area


@pytest.mark.parametrize("cell", [0, -5, float("nan"), "wide", 200_000])
def test_bad_cell_is_refused(cell):
    with pytest.raises(ValidationError, match="cell"):
        square_grid(SQUARE, cell=cell)
    with pytest.raises(ValidationError, match="cell"):
        hex_grid(SQUARE, cell=cell)


def test_too_fine_grid_is_refused():
    with pytest.raises(ValidationError, match="cell=1 m is too small"):
        square_grid(PENTAGON, cell=1)


def test_bad_area_and_shape():
    with pytest.raises(ValidationError, match="study_area"):
        square_grid(Polygon(), cell=100)
    with pytest.raises(ValidationError, match="shape"):
        make_grid(SQUARE, cell=1_000, shape="triangle")


def test_area_given_as_geodataframe_in_other_crs_is_converted():
    frame = gpd.GeoDataFrame(geometry=[SQUARE], crs=2169).to_crs(4326)
    grid = square_grid(frame, cell=5_000)
    assert grid.geometry.area.sum() == pytest.approx(SQUARE.area, rel=1e-4)


@pytest.mark.parametrize("shape", ["square", "hex"])
@pytest.mark.parametrize("radius", [1_000, 1_500, 2_700, 6_100])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("route", ["runs", "convolution"])
def test_neighbourhood_sum_equals_brute_force(shape, radius, include_self, route, monkeypatch):
    grid = make_grid(PENTAGON, cell=1_000, shape=shape)
    spec = grid_spec(grid)
    values = np.random.default_rng(6).poisson(2.5, (spec.n_cells, 2)).astype(float)
    if route == "convolution":
        # whole numbers by FFT or ndimage (as a band of more runs than MAX_STENCIL_RUNS would go), still exact
        monkeypatch.setattr("geo_ibm.grid.MAX_STENCIL_RUNS", 0)
    centres = spec.centres()
    from scipy.spatial import cKDTree

    tree = cKDTree(centres)
    expected = np.zeros_like(values)
    for i, nbrs in enumerate(tree.query_ball_point(centres, radius * (1 + 1e-12))):
        nbrs = [j for j in nbrs if include_self or j != i]
        expected[i] = values[nbrs].sum(axis=0)
    got = neighbourhood_sum(values, grid, radius=radius, include_self=include_self)
    assert (got == expected).all()
    np.testing.assert_array_equal(neighbourhood_sum(values[:, 0], grid, radius=radius, include_self=include_self), expected[:, 0])
    # fractional values (weights, deviations) always go by convolution
    fractional = values + np.random.default_rng(7).uniform(-0.5, 0.5, values.shape)
    summed = np.zeros_like(fractional)
    for i, nbrs in enumerate(tree.query_ball_point(centres, radius * (1 + 1e-12))):
        summed[i] = fractional[[j for j in nbrs if include_self or j != i]].sum(axis=0)
    np.testing.assert_allclose(neighbourhood_sum(fractional, grid, radius=radius, include_self=include_self), summed,
                               rtol=0, atol=1e-9)


def test_subset_grid_renumbers_and_drops_from_binning():
    from geo_ibm.grid import subset_grid

    grid = square_grid(PENTAGON, cell=2_000)
    keep = grid["area_frac"].to_numpy() >= 0.5
    sub = subset_grid(grid, keep)
    assert (sub["cell_id"].to_numpy() == np.arange(keep.sum())).all()
    xy = _points(PENTAGON, 10_000, seed=9)
    full_counts = bin_counts(xy, grid)
    np.testing.assert_array_equal(bin_counts(xy, sub), full_counts[keep])
    np.testing.assert_allclose(grid_spec(sub).centres(), grid_spec(grid).centres()[keep])


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_missing_and_far_coordinates_fall_outside(shape):
    grid = make_grid(SQUARE, cell=1_000, shape=shape)
    xy = np.array([[np.nan, 60_000.0], [60_000.0, np.inf], [-1e9, 1e9], [60_100.0, 60_100.0]])
    ids = locate(xy, grid)
    assert ids[:3].tolist() == [-1, -1, -1] and ids[3] >= 0
    assert locate_xy(xy[:, 0], xy[:, 1], grid_spec(grid)).tolist() == ids.tolist()
    assert bin_counts(xy, grid).sum() == 1


def test_h3_grid_covers_area_and_bins_like_a_spatial_join():
    import h3

    from geo_ibm.grid import h3_grid

    grid = h3_grid(PENTAGON, resolution=7)
    assert list(grid.columns) == ["cell_id", "h3", "area_frac", "geometry"]
    assert all(h3.get_resolution(c) == 7 for c in grid["h3"])
    assert grid.geometry.area.sum() == pytest.approx(PENTAGON.area, rel=1e-9)
    xy = _points(PENTAGON, 20_000, seed=10)
    inside = shapely.contains_xy(PENTAGON, xy[:, 0], xy[:, 1])
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[inside, 0], xy[inside, 1]), crs=2169)
    joined = gpd.sjoin(pts, grid[["cell_id", "geometry"]], predicate="within")
    # h3 cell edges are great-circle arcs, the projected polygons straight lines: a point within
    # a few centimetres of an edge may go either way, so allow a handful of disagreements
    ids = locate(xy[inside], grid)
    assert (ids[joined.index] == joined["cell_id"].to_numpy()).mean() > 0.999
    assert (ids >= 0).all()
    expected = np.array([h3.latlng_to_cell(*_to_lat_lng(x, y), 7) for x, y in xy[inside][:50]])
    assert (grid["h3"].to_numpy()[ids[:50]] == expected).all()
    counts = bin_counts(xy, grid)
    assert counts.sum() == inside.sum() + (locate(xy[~inside], grid) >= 0).sum()


def _to_lat_lng(x, y):
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(2169, 4326, always_xy=True).transform(x, y)
    return lat, lon


@pytest.mark.parametrize("resolution", [-1, 16, 2.5, 15])
def test_h3_resolution_is_validated(resolution):
    from geo_ibm.grid import h3_grid

    with pytest.raises(ValidationError, match="resolution"):
        h3_grid(PENTAGON, resolution=resolution)


def test_h3_grid_has_no_lattice_sums():
    from geo_ibm.grid import h3_grid

    grid = h3_grid(SQUARE, resolution=6)
    with pytest.raises(ValidationError, match="H3 grids are not a planar lattice"):
        neighbourhood_sum(np.ones(len(grid)), grid, radius=5_000)


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_merge_cells_is_dissolve_of_the_same_cells(shape):
    """The union per value equals geopandas' dissolve (area of the symmetric difference ~0) on a grid clipped
    to a round area, for square cells joined along rows first and for hexagons united as they are."""
    from shapely.geometry import Point

    from geo_ibm.grid import make_grid, merge_cells

    area = Point(0, 0).buffer(5_000)
    grid = make_grid(area, cell=250.0, shape=shape)
    x, y = shapely.get_coordinates(grid.geometry.centroid).T
    grid["bin"] = np.where(x + 0.5 * y > 1_200, 3, np.where(x < -2_000, -2, np.where(y > 3_000, 1, 0)))
    merged = merge_cells(grid[["bin", "geometry"]], "bin")
    want = grid[["bin", "geometry"]].dissolve(by="bin").reset_index()
    assert merged["bin"].tolist() == want["bin"].tolist() == [-2, 0, 1, 3] and merged.crs == grid.crs
    for got, ref in zip(merged.geometry, want.geometry):
        assert got.is_valid and got.symmetric_difference(ref).area < 1e-6 * ref.area
        assert abs(got.area - ref.area) < 1e-6 * ref.area
    if shape == "square":
        # whole cells of a row joined first: fewer vertices than the cell by cell union keeps
        assert shapely.get_num_coordinates(np.asarray(merged.geometry.values)).sum() \
            < shapely.get_num_coordinates(np.asarray(want.geometry.values)).sum()
    assert len(merge_cells(grid.iloc[:0], "bin")) == 0
    with pytest.raises(ValidationError, match="no column 'gi'"):
        merge_cells(grid, "gi")
