"""Flows along the roads: entry crossing -> interception, and interception -> exit crossing.

Each attributed event travels the shortest path from its entry crossing to where it was
intercepted (the *entry* leg) and, when its destination country is known, the shortest path on
to the nearest exit crossing towards that country (the *exit* leg: where the group was heading).
Paths are not enumerated: with one shortest-path tree per crossing, the events' weights are put
on the nodes where they join the tree and summed up the tree, so the flow on a tree edge is the
weight of its subtree.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm.network.graph import AttachedCrossings, RoadNetwork
from geo_ibm.network.paths import Trees, edge_segments, reach_costs, subtree_sums, trees
from geo_ibm.network.snap import Snapped
from geo_ibm.settings import WORKING_CRS

EXIT_COUNTRIES: dict[str, tuple[str, ...]] = {
    "DE": ("DE",), "BE": ("BE",), "FR": ("FR",),
    "NL": ("BE", "DE"), "GB": ("BE", "FR"), "IE": ("BE", "FR"),
    "DK": ("DE",), "SE": ("DE",), "NO": ("DE",), "FI": ("DE",), "PL": ("DE",), "CZ": ("DE",), "AT": ("DE",),
    "CH": ("FR", "DE"), "IT": ("FR", "DE"), "ES": ("FR",), "PT": ("FR",),
}
"""Neighbours through which a group leaves Luxembourg for a destination country: the country
itself for BE/FR/DE, else the neighbours on the usual road routes (the Netherlands through
Belgium or Germany, the United Kingdom and Ireland through the Channel ports of Belgium or
France...). Destinations not listed (and ``unknown``) get no exit leg."""


def _push(network: RoadNetwork, tree: Trees, k: int, nodes: np.ndarray, weights: np.ndarray,
          lookup: np.ndarray, forward: np.ndarray, backward: np.ndarray) -> None:
    """Add the paths of ``weights`` joining tree ``k`` at ``nodes`` to the per-segment flows."""
    n = network.n_nodes
    node_weight = np.zeros((n, weights.shape[1]))
    np.add.at(node_weight, nodes, weights)
    acc = subtree_sums(tree.parent[k], tree.distance[k], node_weight)
    parent = tree.parent[k]
    child = np.flatnonzero((parent >= 0) & (acc[:, 0] > 0))
    if child.size == 0:
        return
    # travel direction: from the root outwards (entry) or towards the root (exit)
    a, b = (child, parent[child]) if tree.reverse else (parent[child], child)
    seg = np.asarray(lookup[a, b]).ravel().astype(np.int64) - 1
    along = network.segments["u"].to_numpy()[seg] == a
    np.add.at(forward, seg[along], acc[child][along])
    np.add.at(backward, seg[~along], acc[child][~along])


def route_flows(network: RoadNetwork, snapped: Snapped, attribution: gpd.GeoDataFrame,
                crossings: AttachedCrossings, *, exits: bool = True) -> gpd.GeoDataFrame:
    """Events and persons per segment and direction along the entry and exit legs.

    Parameters
    ----------
    network
        The road graph.
    snapped
        Events on the network, with ``persons`` and, for exit legs, ``destination_country``.
    attribution
        :func:`geo_ibm.network.attribution.attribute_entries` of the same events.
    crossings
        :func:`geo_ibm.network.graph.attach_crossings`.
    exits
        Also route each event with a known destination on to its nearest exit crossing
        (:data:`EXIT_COUNTRIES`).

    Returns
    -------
    GeoDataFrame
        One row per segment, direction and leg with flow: ``segment_id``, ``ref``, ``name``,
        ``direction`` (+1 along the segment's geometry, -1 against it), ``leg`` (``entry`` or
        ``exit``), ``events``, ``persons``, ``geometry`` (LineString drawn in the direction of
        travel).
    """
    events = snapped.events
    n_seg = len(network.segments)
    lookup = edge_segments(network)
    frame = crossings.frame
    ids = frame["crossing_id"].to_numpy()
    segment = events["segment_id"].to_numpy()
    offset = events["offset_m"].to_numpy()
    persons = pd.to_numeric(events["persons"], errors="coerce").fillna(0).to_numpy(dtype=float) \
        if "persons" in events else np.ones(len(events))
    weights = np.column_stack([np.ones(len(events)), persons])
    seg_u = network.segments["u"].to_numpy()
    seg_v = network.segments["v"].to_numpy()
    rows_out = []

    # entry legs: from the attributed crossing to the event
    forward = np.zeros((n_seg, 2))
    backward = np.zeros((n_seg, 2))
    tree = trees(network, frame["node"].to_numpy())
    attributed = attribution["crossing_id"].to_numpy()
    for k, cid in enumerate(ids):
        rows = np.flatnonzero(attributed == cid)
        if rows.size == 0:
            continue
        _, through_u = reach_costs(network, tree.distance[k:k + 1], segment[rows], offset[rows], reverse=False)
        through_u = through_u[0]
        # the event's own segment, from the end it was reached through up to the event
        np.add.at(forward, segment[rows[through_u]], weights[rows[through_u]])
        np.add.at(backward, segment[rows[~through_u]], weights[rows[~through_u]])
        join = np.where(through_u, seg_u[segment[rows]], seg_v[segment[rows]])
        _push(network, tree, k, join, weights[rows], lookup, forward, backward)
    rows_out.append(("entry", forward, backward))

    if exits and "destination_country" in events:
        forward = np.zeros((n_seg, 2))
        backward = np.zeros((n_seg, 2))
        back_tree = trees(network, frame["node"].to_numpy(), reverse=True)
        destination = events["destination_country"].to_numpy(dtype=object)
        on = events["snapped"].to_numpy()
        neighbour = frame["neighbour"].to_numpy()
        choice = np.full(len(events), -1, dtype=np.int64)
        choice_u = np.zeros(len(events), dtype=bool)
        best = np.full(len(events), np.inf)
        for dest, via in EXIT_COUNTRIES.items():
            rows = np.flatnonzero((destination == dest) & on)
            candidates = np.flatnonzero(np.isin(neighbour, via))
            if rows.size == 0 or candidates.size == 0:
                continue
            cost, through_u = reach_costs(network, back_tree.distance[candidates], segment[rows], offset[rows],
                                          reverse=True)
            pick = np.argmin(cost, axis=0)
            col = np.arange(rows.size)
            reach = np.isfinite(cost[pick, col])
            choice[rows[reach]] = candidates[pick[reach]]
            choice_u[rows[reach]] = through_u[pick, col][reach]
            best[rows[reach]] = cost[pick, col][reach]
        for k in np.unique(choice[choice >= 0]):
            rows = np.flatnonzero(choice == k)
            leave_u = choice_u[rows]
            # own segment: from the event to the end it leaves through
            np.add.at(forward, segment[rows[~leave_u]], weights[rows[~leave_u]])
            np.add.at(backward, segment[rows[leave_u]], weights[rows[leave_u]])
            join = np.where(leave_u, seg_u[segment[rows]], seg_v[segment[rows]])
            _push(network, back_tree, int(k), join, weights[rows], lookup, forward, backward)
        rows_out.append(("exit", forward, backward))
    return _flow_frame(network, rows_out)


def _flow_frame(network: RoadNetwork, legs: list[tuple[str, np.ndarray, np.ndarray]]) -> gpd.GeoDataFrame:
    seg = network.segments
    geoms = seg.geometry.to_numpy()
    parts = []
    for leg, forward, backward in legs:
        for direction, flow in ((1, forward), (-1, backward)):
            idx = np.flatnonzero(flow[:, 0] > 0)
            if idx.size == 0:
                continue
            g = geoms[idx] if direction == 1 else shapely.reverse(geoms[idx])
            parts.append(gpd.GeoDataFrame({
                "segment_id": idx.astype(np.int64), "ref": seg["ref"].to_numpy()[idx],
                "name": seg["name"].to_numpy()[idx], "direction": np.full(idx.size, direction, dtype=np.int8),
                "leg": np.full(idx.size, leg, dtype=object),
                "events": np.rint(flow[idx, 0]).astype(np.int64), "persons": np.rint(flow[idx, 1]).astype(np.int64),
            }, geometry=g, crs=WORKING_CRS))
    if not parts:
        return gpd.GeoDataFrame({"segment_id": pd.Series(dtype=np.int64), "ref": pd.Series(dtype=object),
                                 "name": pd.Series(dtype=object), "direction": pd.Series(dtype=np.int8),
                                 "leg": pd.Series(dtype=object), "events": pd.Series(dtype=np.int64),
                                 "persons": pd.Series(dtype=np.int64)},
                                geometry=gpd.GeoSeries([], crs=WORKING_CRS), crs=WORKING_CRS)
    out = pd.concat(parts, ignore_index=True)
    order = np.lexsort((out["direction"].to_numpy(), out["segment_id"].to_numpy(), out["leg"].to_numpy()))
    return gpd.GeoDataFrame(out.iloc[order].reset_index(drop=True), geometry="geometry", crs=WORKING_CRS)
