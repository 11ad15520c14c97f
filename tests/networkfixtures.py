"""Hand-built road layers, crossings and events for the network tests, and an independent router.

Coordinates are given relative to :data:`ORIGIN` (a point in Luxembourg, EPSG:2169) so that the
numbers in the tests read as metres along the roads. The reference router (:func:`reference_graph`,
:func:`with_point`) is networkx on the roads' own coordinates, not the network's matrices.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely

from geo_ibm.network.graph import RoadNetwork

CRS = "EPSG:2169"
ORIGIN = (75_000.0, 90_000.0)
"""Where the hand-built networks sit (central Luxembourg)."""

XY = tuple[float, float]


def at(x: float, y: float) -> tuple[float, float]:
    """A point ``(x, y)`` metres from :data:`ORIGIN`."""
    return (ORIGIN[0] + x, ORIGIN[1] + y)


def road(coords: Sequence[XY], *, road_id: str = "r", ref: str = "", name: str = "", highway: str = "primary",
         oneway: int = 0, maxspeed: float = float("nan")) -> dict[str, Any]:
    """One road row; ``coords`` relative to :data:`ORIGIN`."""
    return {"road_id": road_id, "ref": ref, "name": name, "highway": highway, "oneway": oneway,
            "maxspeed": maxspeed, "geometry": shapely.LineString([at(*c) for c in coords])}


def roads_frame(rows: Sequence[dict[str, Any]], *, crs: str | None = CRS) -> gpd.GeoDataFrame:
    """A road layer (ROAD_COLUMNS + geometry) of ``rows``; road ids ``r0``, ``r1``... unless given."""
    rows = [dict(r, road_id=r["road_id"] if r["road_id"] != "r" else f"r{i}") for i, r in enumerate(rows)]
    frame = pd.DataFrame(rows)
    frame["oneway"] = frame["oneway"].astype(np.int8)
    frame["maxspeed"] = frame["maxspeed"].astype(float)
    return gpd.GeoDataFrame(frame.drop(columns="geometry"), geometry=list(frame["geometry"]), crs=crs)


def crossings_frame(rows: Sequence[tuple[str, str, str, XY]]) -> gpd.GeoDataFrame:
    """Crossing points as :func:`geo_ibm.layers.crossing_points`: ``(crossing_id, kind, neighbour, xy)``."""
    return gpd.GeoDataFrame({
        "crossing_id": [r[0] for r in rows], "name": [f"name of {r[0]}" for r in rows],
        "kind": [r[1] for r in rows], "ref": ["" for _ in rows], "neighbour": [r[2] for r in rows],
        "source": ["test" for _ in rows], "coord_quality": ["published" for _ in rows], "notes": [None for _ in rows],
    }, geometry=[shapely.Point(at(*r[3])) for r in rows], crs=CRS)


def events_frame(points: Sequence[XY], *, index: Sequence[Any] | None = None, **columns: Sequence[Any]
                 ) -> gpd.GeoDataFrame:
    """Point events at ``points`` (relative to :data:`ORIGIN`), ``event_id`` ``E0``, ``E1``... and ``columns``."""
    data: dict[str, Any] = {"event_id": [f"E{i}" for i in range(len(points))], **{k: list(v) for k, v in columns.items()}}
    idx = pd.Index(list(index)) if index is not None else None
    return gpd.GeoDataFrame(data, geometry=[shapely.Point(at(*p)) for p in points], crs=CRS, index=idx)


def node_at(network: RoadNetwork, x: float, y: float) -> int:
    """The network node at ``(x, y)`` relative to :data:`ORIGIN` (exactly one must be within 1 mm)."""
    d = np.hypot(network.nodes[:, 0] - ORIGIN[0] - x, network.nodes[:, 1] - ORIGIN[1] - y)
    hits = np.flatnonzero(d < 1e-3)
    assert hits.size == 1, f"{hits.size} nodes at ({x}, {y})"
    return int(hits[0])


def reference_graph(network: RoadNetwork) -> nx.DiGraph:
    """A networkx DiGraph of the network's segments: edge ``a -> b`` with ``length`` (the geometry's
    own length), ``segment`` and ``direction`` (+1 along the geometry, -1 against); one-way
    segments only along their geometry."""
    graph = nx.DiGraph()
    seg = network.segments
    for sid, u, v, oneway, geom in zip(seg["segment_id"], seg["u"], seg["v"], seg["oneway"], seg.geometry,
                                       strict=True):
        length = float(geom.length)
        graph.add_edge(int(u), int(v), length=length, segment=int(sid), direction=1)
        if not oneway:
            graph.add_edge(int(v), int(u), length=length, segment=int(sid), direction=-1)
    return graph


def with_point(graph: nx.DiGraph, network: RoadNetwork, segment_id: int, point: shapely.Point,
               name: str = "event") -> nx.DiGraph:
    """A copy of ``graph`` with a node ``name`` on ``segment_id`` where ``point`` projects onto it
    (by :func:`shapely.line_locate_point`), joined to the segment's ends as the segment allows."""
    seg = network.segments.iloc[segment_id]
    geom = seg.geometry
    offset = float(shapely.line_locate_point(geom, point))
    length = float(geom.length)
    out = graph.copy()
    u, v = int(seg["u"]), int(seg["v"])
    out.add_edge(u, name, length=offset, segment=segment_id, direction=1)
    out.add_edge(name, v, length=length - offset, segment=segment_id, direction=1)
    if not seg["oneway"]:
        out.add_edge(v, name, length=length - offset, segment=segment_id, direction=-1)
        out.add_edge(name, u, length=offset, segment=segment_id, direction=-1)
    return out


def path_length(graph: nx.DiGraph, path: Sequence[Any]) -> float:
    return float(sum(graph.edges[a, b]["length"] for a, b in zip(path[:-1], path[1:])))
