"""Snapping events to the nearest road segment, with a tolerance; events beyond it are kept and listed."""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io import ensure_working_crs
from geo_ibm.network.graph import RoadNetwork

DEFAULT_TOLERANCE_M = 250.0
"""Farthest an event may lie from a road to be placed on it (metres)."""

MAX_TOLERANCE_M = 2_000.0
"""Largest accepted snapping tolerance: beyond it an event is not "on" a road any more."""


@dataclass(frozen=True)
class Snapped:
    """Events placed on the road network.

    Attributes
    ----------
    events
        The input rows (same index, same columns) plus ``segment_id`` (int, -1 when beyond the
        tolerance), ``offset_m`` (distance along the segment from its ``u`` end; NaN when not
        snapped), ``snap_distance_m`` (to the nearest segment within the tolerance, NaN beyond)
        and ``snapped`` (bool).
    tolerance_m
        The tolerance used.
    """

    events: gpd.GeoDataFrame
    tolerance_m: float

    @property
    def on_network(self) -> gpd.GeoDataFrame:
        """The snapped rows."""
        return self.events[self.events["snapped"].to_numpy()]

    @property
    def unsnapped(self) -> gpd.GeoDataFrame:
        """The rows farther than the tolerance from every segment."""
        return self.events[~self.events["snapped"].to_numpy()]

    @property
    def n_unsnapped(self) -> int:
        return int((~self.events["snapped"].to_numpy()).sum())


def check_tolerance(tolerance_m: object) -> float:
    """The snapping tolerance as a float in ``(0, MAX_TOLERANCE_M]``, else a ValidationError naming ``tolerance``."""
    try:
        value = float(tolerance_m)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = float("nan")
    if not 0 < value <= MAX_TOLERANCE_M:
        raise ValidationError(f"tolerance must be a distance in metres in (0, {MAX_TOLERANCE_M:g}], not {tolerance_m!r}",
                              [Problem("out of range", column="tolerance", value=tolerance_m)])
    return value


_SEARCH_M = 40.0
"""Radius of the grid search: a point with a piece this near is answered from the grid (exactly: any
nearer piece passes through the disc of that radius, so it is listed in the point's cell), the others by
an STRtree query up to the tolerance."""
_MAX_MEAN_CANDIDATES = 64
"""Above this many candidates per point the grid search gives way to an STRtree query."""
_CANDIDATE_CHUNK = 4_000_000
"""Most (point, piece) candidates one vectorised step of :func:`nearest_segments` holds (about 300 MB)."""


def nearest_segments(points: np.ndarray, network: RoadNetwork, *, tolerance_m: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest segment of each point within ``tolerance_m``.

    The segments are cut into their two-vertex *pieces*, and each piece is listed in every
    cell of a square grid (cell side at least the search radius, :data:`_SEARCH_M`) that its
    bounding box grown by the search radius touches; the grid is built once per network and
    serves every tolerance. A point's candidates are the pieces listed in its own cell: every
    piece within the search radius of it is among them, so the nearest of them is kept when it
    is within ``min(tolerance_m, search radius)``.
    Point-to-piece distances are computed for all candidates at once with numpy and the nearest
    kept; the points with no piece within the search radius (few: events lie on or beside the
    roads) are answered by an STRtree ``query_nearest`` on the segments up to the tolerance. Both are exact, so
    the result is an exact nearest-within-tolerance search (the same answer as an STRtree query
    for every point, up to ties), without a tree query for most points
    (benchmarks/bench_routes.py compares it with ``geopandas.sjoin_nearest``).

    Returns
    -------
    (segment_id, offset_m, distance_m)
        Arrays of the points' length; ``-1`` / NaN where no segment is within the tolerance.
    """
    n = len(points)
    segment_id = np.full(n, -1, dtype=np.int64)
    offset = np.full(n, np.nan)
    distance = np.full(n, np.nan)
    if n == 0 or len(network.segments) == 0:
        return segment_id, offset, distance
    # the grid is searched to _SEARCH_M whatever the tolerance; a smaller tolerance only keeps fewer hits
    search = min(float(tolerance_m), _SEARCH_M)
    grid = _piece_grid(network)
    xy = shapely.get_coordinates(points)
    if xy.shape[0] != n:
        raise ValueError("nearest_segments takes one point per row")
    cell = grid.cells(xy)
    count = grid.counts(cell)
    if count.sum() > _MAX_MEAN_CANDIDATES * n:
        # roads dense against the search radius: a tree query costs less than the candidates
        return _tree_nearest(points, network, tolerance_m)
    # cut the points into steps of at most _CANDIDATE_CHUNK candidates (a point has at most all pieces)
    bounds = np.searchsorted(np.cumsum(count), np.arange(1, int(count.sum()) // _CANDIDATE_CHUNK + 1)
                             * _CANDIDATE_CHUNK)
    cuts = np.unique(np.r_[0, bounds, n])
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        seg, off, dist = _nearest_chunk(xy[lo:hi], cell[lo:hi], grid, _pieces(network), search)
        segment_id[lo:hi], offset[lo:hi], distance[lo:hi] = seg, off, dist
    if search < tolerance_m:
        # nothing within the search radius: the nearest piece is farther, ask the tree up to the tolerance
        rest = np.flatnonzero(segment_id < 0)
        if rest.size:
            seg, off, dist = _tree_nearest(points[rest], network, tolerance_m)
            segment_id[rest], offset[rest], distance[rest] = seg, off, dist
    return segment_id, offset, distance


def _tree_nearest(points: np.ndarray, network: RoadNetwork, tolerance_m: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`nearest_segments` by an STRtree ``query_nearest`` on the segments (offsets by ``line_locate_point``)."""
    key = "segment_tree"
    geoms = network.segments.geometry.to_numpy()
    if key not in network.cache:
        network.cache[key] = shapely.STRtree(geoms)
    (hit, found), dist = network.cache[key].query_nearest(points, max_distance=tolerance_m, return_distance=True,
                                                          all_matches=False)
    n = len(points)
    segment_id = np.full(n, -1, dtype=np.int64)
    offset = np.full(n, np.nan)
    distance = np.full(n, np.nan)
    segment_id[hit] = found
    offset[hit] = shapely.line_locate_point(geoms[found], points[hit])
    distance[hit] = dist
    return segment_id, offset, distance


def _pieces(network: RoadNetwork) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network's two-vertex pieces: ``(segment of each, its start along the segment, x0 y0 x1 y1)``."""
    key = "pieces"
    if key not in network.cache:
        coords, which = shapely.get_coordinates(network.segments.geometry.to_numpy(), return_index=True)
        same = which[1:] == which[:-1]
        start = np.flatnonzero(same)
        steps = np.where(same, np.hypot(*(coords[1:] - coords[:-1]).T), 0.0)
        cum = np.r_[0.0, np.cumsum(steps)]
        seg_first = np.flatnonzero(np.r_[True, ~same])
        base = np.repeat(cum[seg_first], np.diff(np.r_[seg_first, coords.shape[0]]))
        network.cache[key] = (which[start], (cum - base)[start], np.hstack([coords[start], coords[start + 1]]))
    pieces: tuple[np.ndarray, np.ndarray, np.ndarray] = network.cache[key]
    return pieces


@dataclass(frozen=True)
class _Grid:
    """Pieces listed per cell of a square grid, CSR-like: the pieces of cell ``c`` are
    ``piece[start[c]:start[c + 1]]``; cell ``c = ix * ny + iy``."""

    x0: float
    y0: float
    cell: float
    nx: int
    ny: int
    start: np.ndarray
    piece: np.ndarray

    def cells(self, xy: np.ndarray) -> np.ndarray:
        """Cell of each point; ``-1`` outside the grid (no piece near)."""
        ix = np.floor((xy[:, 0] - self.x0) / self.cell).astype(np.int64)
        iy = np.floor((xy[:, 1] - self.y0) / self.cell).astype(np.int64)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        return np.where(inside, ix * self.ny + iy, -1)

    def counts(self, cell: np.ndarray) -> np.ndarray:
        safe = np.maximum(cell, 0)
        return np.where(cell >= 0, self.start[safe + 1] - self.start[safe], 0)


_MAX_GRID_CELLS = 4_000_000
"""Most cells of the candidate grid (its ``start`` array: 32 MB); a larger extent gets larger cells."""
_MAX_GRID_LISTINGS = 16_000_000
"""Most (cell, piece) listings of the candidate grid (its ``piece`` array: 64 MB); more get larger cells."""
_BUILD_CHUNK = 1_000_000
"""About the most listings one step of :func:`_build_grid` holds (fewer than twice it, or one piece), so that
building costs little memory beyond the grid's own."""


def _piece_grid(network: RoadNetwork) -> _Grid:
    """The network's candidate grid, searched to :data:`_SEARCH_M` (cached: one per network).

    The grid does not depend on the tolerance: a tolerance below the search radius only drops
    the candidates farther than it, so every request shares it and the cache holds at most one.
    """
    key = "piece_grid"
    if key not in network.cache:
        network.cache[key] = _build_grid(_pieces(network)[2], _SEARCH_M)
    grid: _Grid = network.cache[key]
    return grid


def _build_grid(ab: np.ndarray, search_m: float) -> _Grid:
    """Every piece (``x0 y0 x1 y1`` rows of ``ab``) listed in each cell its bounding box grown by ``search_m`` touches.

    Any cell side at least ``search_m`` gives the same nearest piece (the candidates always hold
    every piece within ``search_m`` of the point); the side grows past it only to keep the grid
    within :data:`_MAX_GRID_CELLS` cells and :data:`_MAX_GRID_LISTINGS` listings, checked before
    anything of the grid's size is allocated. Within a cell the pieces are in ascending order,
    which makes ties go to the first piece, as :func:`_nearest_chunk` expects.
    """
    lo = np.minimum(ab[:, 0:2], ab[:, 2:4]) - search_m
    hi = np.maximum(ab[:, 0:2], ab[:, 2:4]) + search_m
    x0, y0 = (float(v) for v in lo.min(axis=0))
    span = hi.max(axis=0) - lo.min(axis=0)
    cell = max(float(search_m), float(np.sqrt(span[0] * span[1] / _MAX_GRID_CELLS)))
    while True:
        nx, ny = (int(v) + 1 for v in np.floor(span / cell))
        ix0 = np.floor((lo[:, 0] - x0) / cell).astype(np.int64)
        ix1 = np.minimum(np.floor((hi[:, 0] - x0) / cell).astype(np.int64), nx - 1)
        iy0 = np.floor((lo[:, 1] - y0) / cell).astype(np.int64)
        iy1 = np.minimum(np.floor((hi[:, 1] - y0) / cell).astype(np.int64), ny - 1)
        wy = iy1 - iy0 + 1
        count = (ix1 - ix0 + 1) * wy
        total = int(count.sum())
        over = max(nx * ny / _MAX_GRID_CELLS, total / _MAX_GRID_LISTINGS)
        if over <= 1.0 or nx * ny == 1:
            break
        cell *= max(1.25, float(np.sqrt(over)))
    n_cells = nx * ny
    ends = np.cumsum(count)
    # pieces in runs of about _BUILD_CHUNK listings (a run holds at least one piece)
    cuts = np.unique(np.r_[0, np.searchsorted(ends, np.arange(1, total // _BUILD_CHUNK + 1) * _BUILD_CHUNK,
                                              side="right"), ab.shape[0]])
    runs = list(zip(cuts[:-1], cuts[1:], strict=True))

    def run_keys(first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Cell key and piece of every listing of pieces ``first:last``, in piece order."""
        c = count[first:last]
        piece = np.repeat(np.arange(first, last, dtype=np.int32), c)
        local = np.arange(int(c.sum())) - np.repeat(np.r_[0, np.cumsum(c)[:-1]], c)
        wy_rep = np.repeat(wy[first:last], c)
        keys = ((np.repeat(ix0[first:last], c) + local // wy_rep) * ny
                + np.repeat(iy0[first:last], c) + local % wy_rep)
        return keys, piece

    start = np.zeros(n_cells + 1, dtype=np.int64)
    for first, last in runs:
        start[1:] += np.bincount(run_keys(first, last)[0], minlength=n_cells)
    np.cumsum(start, out=start)
    listed = np.empty(total, dtype=np.int32)
    cursor = start[:-1].copy()
    for first, last in runs:
        keys, piece = run_keys(first, last)
        order = np.argsort(keys, kind="stable")
        keys, piece = keys[order], piece[order]
        head = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        size = np.diff(np.r_[head, keys.size])
        rank = np.arange(keys.size) - np.repeat(head, size)
        listed[cursor[keys] + rank] = piece
        cursor[keys[head]] += size
    return _Grid(x0, y0, cell, nx, ny, start, listed)


def _nearest_chunk(xy: np.ndarray, cell: np.ndarray, grid: _Grid, pieces: tuple[np.ndarray, np.ndarray, np.ndarray],
                   tolerance_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest listed piece within the tolerance of each point of one chunk (``cell``: the points' cells)."""
    piece_segment, piece_start, ab = pieces
    n = xy.shape[0]
    seg_out = np.full(n, -1, dtype=np.int64)
    off_out = np.full(n, np.nan)
    dist_out = np.full(n, np.nan)
    count = grid.counts(cell)
    total = int(count.sum())
    if total == 0:
        return seg_out, off_out, dist_out
    first = grid.start[np.maximum(cell, 0)]
    point = np.repeat(np.arange(n), count)
    slot = np.repeat(first - np.r_[0, np.cumsum(count)[:-1]], count) + np.arange(total)
    piece = grid.piece[slot]
    a = ab[piece, 0:2]
    d = ab[piece, 2:4] - a
    p = xy[point] - a
    length_sq = np.einsum("ij,ij->i", d, d)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(length_sq > 0, np.clip(np.einsum("ij,ij->i", p, d) / length_sq, 0.0, 1.0), 0.0)
    gap = p - t[:, None] * d
    dist_sq = np.einsum("ij,ij->i", gap, gap)
    # nearest candidate per point: candidates come grouped by point (np.repeat keeps the order)
    has = np.flatnonzero(count)
    starts = np.r_[0, np.cumsum(count[has])[:-1]]
    best = np.minimum.reduceat(dist_sq, starts)
    is_best = dist_sq == np.repeat(best, count[has])
    hits = np.flatnonzero(is_best)
    head = hits[np.r_[True, point[hits][1:] != point[hits][:-1]]]
    point, piece, dist_sq, t, length_sq = point[head], piece[head], dist_sq[head], t[head], length_sq[head]
    near = dist_sq <= tolerance_m * tolerance_m
    point, piece = point[near], piece[near]
    seg_out[point] = piece_segment[piece]
    off_out[point] = piece_start[piece] + t[near] * np.sqrt(length_sq[near])
    dist_out[point] = np.sqrt(dist_sq[near])
    return seg_out, off_out, dist_out


def snap_events(events: gpd.GeoDataFrame, network: RoadNetwork, *,
                tolerance_m: float = DEFAULT_TOLERANCE_M) -> Snapped:
    """Place each event on its nearest road segment within ``tolerance_m``.

    Events farther than the tolerance from every segment are kept with ``segment_id == -1``
    (see :attr:`Snapped.unsnapped`), never dropped.

    Parameters
    ----------
    events
        Point events (converted to EPSG:2169 when in another CRS; refused without one).
    network
        The road graph.
    tolerance_m
        Snapping tolerance (metres), in ``(0, MAX_TOLERANCE_M]``.

    Returns
    -------
    Snapped
    """
    tolerance = check_tolerance(tolerance_m)
    events = ensure_working_crs(events, name="events")
    points = events.geometry.to_numpy()
    segment_id, offset, distance = nearest_segments(points, network, tolerance_m=tolerance)
    out = events.assign(segment_id=segment_id, offset_m=offset, snap_distance_m=distance,
                        snapped=segment_id >= 0)
    return Snapped(events=out, tolerance_m=tolerance)


def distance_to_network(points: np.ndarray, network: RoadNetwork) -> np.ndarray:
    """Distance of each point to its nearest segment (metres), with no tolerance."""
    if len(points) == 0:
        return np.zeros(0)
    tree = shapely.STRtree(network.segments.geometry.to_numpy())
    (hit, _), dist = tree.query_nearest(points, return_distance=True, all_matches=False)
    out = np.full(len(points), np.nan)
    out[hit] = dist
    return out
