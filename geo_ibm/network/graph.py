"""A routable road graph on :mod:`scipy.sparse.csgraph`: nodes merged at shared coordinates, segments
between them, directed where a road is one-way, and the crossing points attached to it.

A *segment* is a piece of road between two nodes; a *node* is a road end or a vertex shared by
two roads (OpenStreetMap ways meet at shared nodes, the shipped corridors at shared junction
coordinates). The graph's edges are the segments: ``u -> v`` along the geometry, and ``v -> u``
too unless the road is one-way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse import csgraph

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.network.roads import CLASS_SPEED_KMH, ROAD_COLUMNS
from geo_ibm.settings import WORKING_CRS

MERGE_TOLERANCE_M = 0.01
"""Coordinates closer than this (on a grid of this size) are one node."""

ROAD_KINDS: tuple[str, ...] = ("motorway", "national_road", "bridge")
"""Crossing-point kinds that are on the road network (rail crossings and the airport are not)."""

Weight = Literal["length", "time"]


@dataclass(frozen=True)
class RoadNetwork:
    """A road graph.

    Attributes
    ----------
    segments
        GeoDataFrame, one row per segment, ``segment_id`` equal to its position: ``segment_id``,
        ``road_id``, ``ref``, ``name``, ``highway``, ``oneway`` (0 both ways, 1 only ``u -> v``),
        ``maxspeed``, ``speed_kmh`` (maxspeed, else :data:`CLASS_SPEED_KMH`), ``length_m``,
        ``time_s``, ``u``, ``v`` (node ids; the geometry runs from ``u`` to ``v``), ``component``
        (weakly connected component, 0 the largest), ``geometry`` (LineString).
    nodes
        ``(n, 2)`` node coordinates.
    """

    segments: gpd.GeoDataFrame
    nodes: np.ndarray
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    """Derived structures (matrices, search trees) built once per network.

    It is never emptied while the network lives (a process keeps its network for as long as it
    serves it), so its keys must be few by construction: they may name a structure and the
    network's own data (its crossings, say), never a value a request chooses, such as a
    tolerance: each distinct value would keep its own entry. The snapping grid is one per
    network for that reason (:func:`geo_ibm.network.snap.nearest_segments`)."""

    @property
    def n_nodes(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def n_components(self) -> int:
        return int(self.segments["component"].max()) + 1 if len(self.segments) else 0

    @property
    def total_length_m(self) -> float:
        return float(self.segments["length_m"].sum())

    def matrix(self, weight: Weight = "length", *, reverse: bool = False, directed: bool = True) -> sparse.csr_matrix:
        """The graph as an ``n x n`` sparse matrix of edge costs (metres or seconds).

        Parallel segments keep their cheapest cost. With ``reverse`` the edges point the other
        way (distances *to* a node); with ``directed=False`` every segment is two-way.
        """
        key = (weight, reverse, directed)
        if key not in self.cache:
            cost, rows, cols, _ = self.edges(weight, directed=directed)
            if reverse:
                rows, cols = cols, rows
            n = self.n_nodes
            # cheapest of parallel edges: sort by cost, keep the first of each (row, col)
            order = np.lexsort((cost, cols, rows))
            rows, cols, cost = rows[order], cols[order], cost[order]
            first = np.ones(rows.size, dtype=bool)
            first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
            # a zero cost would read as "no edge" in csgraph: keep it tiny instead
            data = np.maximum(cost[first], 1e-9)
            self.cache[key] = sparse.csr_matrix((data, (rows[first], cols[first])), shape=(n, n))
        return self.cache[key]

    def edges(self, weight: Weight = "length", *, directed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                 np.ndarray]:
        """Every directed edge: ``(cost, from_node, to_node, segment_id)``; two-way segments twice."""
        seg = self.segments
        cost = seg["length_m" if weight == "length" else "time_s"].to_numpy(dtype=float)
        u = seg["u"].to_numpy(dtype=np.int64)
        v = seg["v"].to_numpy(dtype=np.int64)
        ids = np.arange(len(seg), dtype=np.int64)
        back = np.ones(len(seg), dtype=bool) if not directed else seg["oneway"].to_numpy() == 0
        return (np.concatenate([cost, cost[back]]), np.concatenate([u, v[back]]),
                np.concatenate([v, u[back]]), np.concatenate([ids, ids[back]]))

    def components(self) -> pd.DataFrame:
        """Weakly connected components: ``component``, ``segments``, ``length_km``, largest first."""
        seg = self.segments
        out = seg.groupby("component").agg(segments=("segment_id", "size"), length_km=("length_m", "sum"))
        out["length_km"] = out["length_km"] / 1000.0
        return out.reset_index()


def _node_ids(xy: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Node id per coordinate row and the node coordinates, merging rows on a ``tolerance`` grid."""
    keys = np.floor(xy / tolerance + 0.5).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return inverse.reshape(-1), xy[first]


def build_network(roads: gpd.GeoDataFrame, *, merge_tolerance_m: float = MERGE_TOLERANCE_M) -> RoadNetwork:
    """Build the road graph of a road layer.

    Roads are split into segments at every vertex they share with another road (or with
    themselves) and at their ends; vertices closer than ``merge_tolerance_m`` are one node.
    Roads with ``oneway == -1`` are reversed so that every segment's geometry runs the
    permitted way.

    Parameters
    ----------
    roads
        A road layer: :data:`geo_ibm.network.roads.ROAD_COLUMNS` and LineString or
        MultiLineString geometry in EPSG:2169.
    merge_tolerance_m
        Node merging grid (metres).

    Returns
    -------
    RoadNetwork

    Raises
    ------
    ValidationError
        If a column is missing, the layer is not in EPSG:2169, or it has no line of
        positive length.
    """
    missing = [c for c in ROAD_COLUMNS if c not in roads.columns]
    if missing:
        raise ValidationError(f"road layer: missing columns {missing}",
                              [Problem("missing column", column=c) for c in missing])
    if roads.crs is None or not roads.crs.equals(WORKING_CRS):
        raise ValidationError(f"road layer: CRS must be {WORKING_CRS}, not {roads.crs}")
    if not merge_tolerance_m > 0:
        raise ValidationError("merge_tolerance_m must be positive",
                              [Problem("not positive", column="merge_tolerance_m", value=merge_tolerance_m)])
    lines = roads.explode(index_parts=False, ignore_index=True)
    lines = lines[lines.geometry.notna() & ~lines.geometry.is_empty
                  & (lines.geometry.geom_type == "LineString")].reset_index(drop=True)
    oneway = lines["oneway"].to_numpy(dtype=np.int64)
    geoms = lines.geometry.to_numpy()
    geoms = np.where(oneway == -1, shapely.reverse(geoms), geoms)
    coords, line_of = shapely.get_coordinates(geoms, return_index=True)
    if coords.shape[0] == 0:
        raise ValidationError("road layer: no road lines")
    node, node_xy = _node_ids(coords, merge_tolerance_m)
    # drop repeated vertices (zero-length steps) within a line
    repeated = np.zeros(coords.shape[0], dtype=bool)
    repeated[1:] = (node[1:] == node[:-1]) & (line_of[1:] == line_of[:-1])
    coords, line_of, node = coords[~repeated], line_of[~repeated], node[~repeated]
    n_vertices = coords.shape[0]
    starts = np.flatnonzero(np.r_[True, line_of[1:] != line_of[:-1]])
    ends = np.r_[starts[1:] - 1, n_vertices - 1]
    # a vertex is a node when it ends its line or its coordinate occurs more than once
    occurrences = np.bincount(node, minlength=node_xy.shape[0])
    is_node = occurrences[node] > 1
    is_node[starts] = True
    is_node[ends] = True
    at = np.flatnonzero(is_node)
    pair = line_of[at[:-1]] == line_of[at[1:]]
    first, last = at[:-1][pair], at[1:][pair]
    if first.size == 0:
        raise ValidationError("road layer: no road line of positive length")
    counts = last - first + 1
    offsets = np.r_[0, np.cumsum(counts)[:-1]]
    label = np.repeat(np.arange(first.size), counts)
    idx = np.repeat(first, counts) + (np.arange(int(counts.sum())) - np.repeat(offsets, counts))
    geometry = shapely.linestrings(coords[idx], indices=label)
    length = shapely.length(geometry)
    valid = length > 0
    u, v, seg_line = node[first][valid], node[last][valid], line_of[first][valid]
    geometry, length = geometry[valid], length[valid]
    if u.size == 0:
        raise ValidationError("road layer: no road line of positive length")
    attrs = lines.iloc[seg_line].reset_index(drop=True)
    maxspeed = pd.to_numeric(attrs["maxspeed"], errors="coerce").to_numpy(dtype=float)
    default = attrs["highway"].map(CLASS_SPEED_KMH).fillna(50.0).to_numpy(dtype=float)
    speed = np.where(np.isfinite(maxspeed) & (maxspeed > 0), maxspeed, default)
    # renumber the nodes actually used, in order of first use
    used, u_v = np.unique(np.concatenate([u, v]), return_inverse=True)
    u_new, v_new = u_v[: u.size], u_v[u.size:]
    n = used.size
    adjacency = sparse.csr_matrix((np.ones(u.size), (u_new, v_new)), shape=(n, n))
    n_comp, comp_of_node = csgraph.connected_components(adjacency, directed=True, connection="weak")
    comp = comp_of_node[u_new]
    # number components by total length, largest first
    comp_length = np.bincount(comp, weights=length, minlength=n_comp)
    rank = np.empty(n_comp, dtype=np.int64)
    rank[np.argsort(-comp_length, kind="stable")] = np.arange(n_comp)
    segments = gpd.GeoDataFrame({
        "segment_id": np.arange(u.size, dtype=np.int64),
        "road_id": attrs["road_id"].astype(str).to_numpy(),
        "ref": attrs["ref"].fillna("").astype(str).to_numpy(),
        "name": attrs["name"].fillna("").astype(str).to_numpy(),
        "highway": attrs["highway"].astype(str).to_numpy(),
        "oneway": (attrs["oneway"].to_numpy(dtype=np.int64) != 0).astype(np.int8),
        "maxspeed": maxspeed,
        "speed_kmh": speed,
        "length_m": length,
        "time_s": length / (speed / 3.6),
        "u": u_new.astype(np.int64),
        "v": v_new.astype(np.int64),
        "component": rank[comp],
    }, geometry=geometry, crs=WORKING_CRS)
    return RoadNetwork(segments=segments, nodes=node_xy[used])


@dataclass(frozen=True)
class AttachedCrossings:
    """Crossing points on the road network.

    Attributes
    ----------
    frame
        GeoDataFrame ``crossing_id``, ``name``, ``kind``, ``neighbour``, ``node`` (network node),
        ``attach_distance_m``, ``geometry`` (the crossing point): the road crossings within the
        tolerance of a node.
    unattached
        ``crossing_id`` of road crossings farther than the tolerance from every node.
    """

    frame: gpd.GeoDataFrame
    unattached: tuple[str, ...] = ()

    def of_country(self, country: str) -> gpd.GeoDataFrame:
        """The attached crossings to ``country`` (BE, FR, DE)."""
        return self.frame[self.frame["neighbour"] == country]


def attach_crossings(network: RoadNetwork, crossings: gpd.GeoDataFrame, *,
                     tolerance_m: float = 500.0) -> tuple[AttachedCrossings, list[str]]:
    """Attach each road crossing point to its nearest network node within ``tolerance_m``.

    Only road crossings (:data:`ROAD_KINDS`) are attached: rail crossings and the airport are
    not on the road network. A road crossing farther than the tolerance from every node is
    named in a warning and left out, never silently dropped.

    Parameters
    ----------
    network
        The road graph.
    crossings
        Crossing points, as :func:`geo_ibm.layers.crossing_points`.
    tolerance_m
        Largest distance from a crossing to its node (metres).

    Returns
    -------
    (AttachedCrossings, list of warning texts)
    """
    if not tolerance_m > 0:
        raise ValidationError("tolerance_m must be positive",
                              [Problem("not positive", column="tolerance_m", value=tolerance_m)])
    road = crossings[crossings["kind"].isin(ROAD_KINDS)].reset_index(drop=True)
    points = road.geometry.to_numpy()
    tree = shapely.STRtree(shapely.points(network.nodes))
    found, dist = tree.query_nearest(points, max_distance=tolerance_m, return_distance=True, all_matches=False)
    node = np.full(len(road), -1, dtype=np.int64)
    distance = np.full(len(road), np.nan)
    node[found[0]] = found[1]
    distance[found[0]] = dist
    ok = node >= 0
    warnings = [
        f"crossing {cid} ({name}) is more than {tolerance_m:g} m from the road network: not attached"
        for cid, name in zip(road.loc[~ok, "crossing_id"], road.loc[~ok, "name"], strict=True)
    ]
    frame = road.loc[ok, ["crossing_id", "name", "kind", "neighbour"]].assign(
        node=node[ok], attach_distance_m=distance[ok])
    out = gpd.GeoDataFrame(frame, geometry=road.geometry[ok].to_numpy(), crs=WORKING_CRS).reset_index(drop=True)
    if not len(out):
        warnings.append("no road crossing point is within "
                        f"{tolerance_m:g} m of the road network: entries and flows cannot be attributed")
    return AttachedCrossings(out, tuple(road.loc[~ok, "crossing_id"])), warnings
