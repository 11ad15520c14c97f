"""The snapping grid in the network's cache (geo_ibm.network.snap): one per network, bounded, exact for every tolerance."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely
from networkfixtures import road, roads_frame

from geo_ibm.network import snap
from geo_ibm.network.graph import RoadNetwork, build_network
from geo_ibm.network.roads import shipped_roads
from geo_ibm.network.snap import nearest_segments

TOLERANCES = [1.0, 1.1, 1.2, 1.3, 2.5, 5.0, 7.5, 10.0, 20.0, 33.3, 39.9, 40.0, 40.1, 75.0, 250.0, 2000.0]
"""Distinct tolerances, as a curious user would try them, on both sides of the grid's search radius."""


@pytest.fixture(scope="module")
def shipped() -> RoadNetwork:
    return build_network(shipped_roads())


def events_near(network: RoadNetwork, n: int, *, spread_m: float, seed: int) -> np.ndarray:
    """``n`` points beside the roads: on them, jittered by ``spread_m`` (normal, per axis)."""
    rng = np.random.default_rng(seed)
    lines = network.segments.geometry.to_numpy()
    on = shapely.line_interpolate_point(lines[rng.integers(0, len(lines), n)], rng.uniform(0, 1, n), normalized=True)
    xy = shapely.get_coordinates(on) + rng.normal(0, spread_m, (n, 2))
    return shapely.points(xy)


def grid_keys(network: RoadNetwork) -> list[object]:
    return [k for k, v in network.cache.items() if isinstance(v, snap._Grid)]


def brute_force(points: np.ndarray, network: RoadNetwork, tolerance: float) -> tuple[np.ndarray, np.ndarray, list[set]]:
    """Distance of each point to its nearest segment and the set of segments at that distance (shapely, all pairs)."""
    lines = network.segments.geometry.to_numpy()
    d = shapely.distance(points[:, None], lines[None, :])
    best = d.min(axis=1)
    ties = [set(np.flatnonzero(row <= b + 1e-9).tolist()) for row, b in zip(d, best, strict=True)]
    return best, best <= tolerance, ties


def test_distinct_tolerances_share_one_bounded_grid(shipped):
    points = events_near(shipped, 2000, spread_m=30.0, seed=1)
    for tolerance in TOLERANCES:
        nearest_segments(points, shipped, tolerance_m=tolerance)
    keys = grid_keys(shipped)
    assert keys == ["piece_grid"]
    grid = shipped.cache["piece_grid"]
    assert grid.cell >= snap._SEARCH_M
    assert grid.nx * grid.ny <= snap._MAX_GRID_CELLS
    assert grid.piece.size <= snap._MAX_GRID_LISTINGS
    assert grid.start.nbytes + grid.piece.nbytes <= 8 * (snap._MAX_GRID_CELLS + 1) + 4 * snap._MAX_GRID_LISTINGS
    # more tolerances add nothing to the cache
    before = set(shipped.cache)
    for tolerance in np.linspace(1.0, 39.0, 25):
        nearest_segments(points[:100], shipped, tolerance_m=float(tolerance))
    assert set(shipped.cache) == before


@pytest.mark.parametrize("tolerance", TOLERANCES)
def test_every_tolerance_snaps_as_a_fresh_network_and_brute_force(shipped, tolerance):
    points = events_near(shipped, 400, spread_m=tolerance, seed=2)
    # the shared network has served other tolerances first
    for other in (1.0, 17.0, 250.0):
        nearest_segments(points[:50], shipped, tolerance_m=other)
    seg, off, dist = nearest_segments(points, shipped, tolerance_m=tolerance)
    fresh = nearest_segments(points, build_network(shipped_roads()), tolerance_m=tolerance)
    np.testing.assert_array_equal(seg, fresh[0])
    np.testing.assert_array_equal(off, fresh[1])
    np.testing.assert_array_equal(dist, fresh[2])
    best, within, ties = brute_force(points, shipped, tolerance)
    assert within.sum() > 0.2 * len(points) and (~within).sum() > 0.05 * len(points)  # both cases happen
    assert (seg >= 0).tolist() == within.tolist()
    assert all(int(s) in ties[i] for i, s in enumerate(seg) if s >= 0)
    np.testing.assert_allclose(dist[within], best[within], atol=1e-6)
    lines = shipped.segments.geometry.to_numpy()
    np.testing.assert_allclose(off[within], shapely.line_locate_point(lines[seg[within]], points[within]), atol=1e-6)


def lattice() -> RoadNetwork:
    """A 2 km street lattice, 100 m blocks, plus two long diagonals: short pieces and long ones."""
    rows = [road([(0, 100 * k), (2000, 100 * k)]) for k in range(21)]
    rows += [road([(100 * k, 0), (100 * k, 2000)]) for k in range(21)]
    rows += [road([(-500, -500), (2500, 2500)]), road([(2500, -500), (-500, 2500)])]
    return build_network(roads_frame(rows))


def test_the_grid_lists_each_piece_in_every_cell_its_grown_box_touches():
    network = lattice()
    _, _, ab = snap._pieces(network)
    grid = snap._build_grid(ab, snap._SEARCH_M)
    expected: dict[int, list[int]] = {}
    for p, (xa, ya, xb, yb) in enumerate(ab):
        ix = range(int((min(xa, xb) - snap._SEARCH_M - grid.x0) // grid.cell),
                   min(int((max(xa, xb) + snap._SEARCH_M - grid.x0) // grid.cell), grid.nx - 1) + 1)
        iy = range(int((min(ya, yb) - snap._SEARCH_M - grid.y0) // grid.cell),
                   min(int((max(ya, yb) + snap._SEARCH_M - grid.y0) // grid.cell), grid.ny - 1) + 1)
        for i, j in itertools.product(ix, iy):
            expected.setdefault(i * grid.ny + j, []).append(p)
    got = {c: grid.piece[grid.start[c]:grid.start[c + 1]].tolist() for c in range(grid.nx * grid.ny)
           if grid.start[c + 1] > grid.start[c]}
    assert got == expected  # pieces in ascending order within each cell


def test_capped_grids_give_larger_cells_and_the_same_answers(monkeypatch):
    network = lattice()
    rng = np.random.default_rng(5)
    points = shapely.points(rng.uniform(-600, 2600, (3000, 2)) + np.array([75_000.0, 90_000.0]))
    _, _, ab = snap._pieces(network)
    full = snap._build_grid(ab, snap._SEARCH_M)
    assert full.cell == snap._SEARCH_M
    answers = {t: nearest_segments(points, network, tolerance_m=t) for t in (3.0, 40.0, 120.0)}
    # a tenth of the cells and listings, built 500 listings at a time
    monkeypatch.setattr(snap, "_MAX_GRID_CELLS", full.nx * full.ny // 10)
    monkeypatch.setattr(snap, "_MAX_GRID_LISTINGS", full.piece.size // 10)
    monkeypatch.setattr(snap, "_BUILD_CHUNK", 500)
    monkeypatch.setattr(snap, "_MAX_MEAN_CANDIDATES", 10**9)  # keep the grid search whatever the cell
    capped = snap._build_grid(ab, snap._SEARCH_M)
    assert capped.cell > full.cell
    assert capped.nx * capped.ny <= full.nx * full.ny // 10
    assert capped.piece.size <= full.piece.size // 10
    network.cache["piece_grid"] = capped
    for tolerance, (seg, off, dist) in answers.items():
        got = nearest_segments(points, network, tolerance_m=tolerance)
        np.testing.assert_array_equal(got[0], seg)
        np.testing.assert_allclose(got[1], off, rtol=0, atol=1e-9)
        np.testing.assert_allclose(got[2], dist, rtol=0, atol=1e-9)
