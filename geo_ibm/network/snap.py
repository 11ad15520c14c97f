"""Snapping events to the nearest road segment, with a tolerance; events beyond it are kept and listed."""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.network.graph import RoadNetwork

DEFAULT_TOLERANCE_M = 250.0
"""Farthest an event may lie from a road to be placed on it (metres)."""

MAX_TOLERANCE_M = 5_000.0
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


def nearest_segments(points: np.ndarray, network: RoadNetwork, *, tolerance_m: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest segment of each point within ``tolerance_m``.

    One vectorised query of an STRtree on the segments' *pieces* (two-vertex lines), whose
    distances cost the same whatever the segment's vertex count, then the offset along the
    chosen segment from the piece's start.

    Returns
    -------
    (segment_id, offset_m, distance_m)
        Arrays of the points' length; ``-1`` / NaN where no segment is within the tolerance.
    """
    segments = network.segments
    n = len(points)
    segment_id = np.full(n, -1, dtype=np.int64)
    offset = np.full(n, np.nan)
    distance = np.full(n, np.nan)
    if n == 0 or len(segments) == 0:
        return segment_id, offset, distance
    tree, piece_segment, piece_start, piece_xy = _pieces(network)
    (hit, piece), dist = tree.query_nearest(points, max_distance=tolerance_m, return_distance=True,
                                            all_matches=False)
    # offset along the piece: project the point onto it
    xy = shapely.get_coordinates(points[hit])
    a = piece_xy[piece, 0:2]
    b = piece_xy[piece, 2:4]
    ab = b - a
    length_sq = np.einsum("ij,ij->i", ab, ab)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip(np.einsum("ij,ij->i", xy - a, ab) / length_sq, 0.0, 1.0)
    t = np.where(length_sq > 0, t, 0.0)
    segment_id[hit] = piece_segment[piece]
    offset[hit] = piece_start[piece] + t * np.sqrt(length_sq)
    distance[hit] = dist
    return segment_id, offset, distance


def _pieces(network: RoadNetwork) -> tuple[shapely.STRtree, np.ndarray, np.ndarray, np.ndarray]:
    """STRtree of the network's two-vertex pieces, cached on the network."""
    cache = network.cache
    key = "pieces"
    if key not in cache:
        coords, which = shapely.get_coordinates(network.segments.geometry.to_numpy(), return_index=True)
        same = which[1:] == which[:-1]
        start = np.flatnonzero(same)
        a, b = coords[start], coords[start + 1]
        # distance of each piece's start along its segment
        cum = np.cumsum(np.r_[0.0, np.where(same, np.hypot(*(coords[1:] - coords[:-1]).T), 0.0)])
        seg_first = np.flatnonzero(np.r_[True, ~same])
        base = np.repeat(cum[seg_first], np.diff(np.r_[seg_first, coords.shape[0]]))
        piece_start = (cum - base)[start]
        pieces = shapely.linestrings(np.stack([a, b], axis=1))
        cache[key] = (shapely.STRtree(pieces), which[start], piece_start, np.hstack([a, b]))
    tree, piece_segment, piece_start, piece_xy = cache[key]
    return tree, piece_segment, piece_start, piece_xy


def snap_events(events: gpd.GeoDataFrame, network: RoadNetwork, *,
                tolerance_m: float = DEFAULT_TOLERANCE_M) -> Snapped:
    """Place each event on its nearest road segment within ``tolerance_m``.

    Events farther than the tolerance from every segment are kept with ``segment_id == -1``
    (see :attr:`Snapped.unsnapped`), never dropped.

    Parameters
    ----------
    events
        Point events in EPSG:2169.
    network
        The road graph.
    tolerance_m
        Snapping tolerance (metres), in ``(0, MAX_TOLERANCE_M]``.

    Returns
    -------
    Snapped
    """
    tolerance = check_tolerance(tolerance_m)
    points = events.geometry.to_numpy()
    segment_id, offset, distance = nearest_segments(points, network, tolerance_m=tolerance)
    out = events.assign(segment_id=segment_id, offset_m=offset, snap_distance_m=distance,
                        snapped=segment_id >= 0)
    return Snapped(events=out, tolerance_m=tolerance)


def distance_to_network(points: np.ndarray, network: RoadNetwork) -> np.ndarray:
    """Distance of each point to its nearest segment (metres), with no tolerance."""
    tree, _, _, _ = _pieces(network)
    if len(points) == 0:
        return np.zeros(0)
    (hit, _), dist = tree.query_nearest(points, return_distance=True, all_matches=False)
    out = np.full(len(points), np.nan)
    out[hit] = dist
    return out
