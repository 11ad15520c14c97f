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
from geopandas.array import GeometryArray, from_shapely

from geo_ibm.network.graph import AttachedCrossings, RoadNetwork
from geo_ibm.network.paths import per_segment_direction, push_to_roots, reach_points, trees
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


LEGS: list[str] = ["entry", "exit"]
"""The legs of a route: from the entry crossing to the interception, and on to the exit crossing."""


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
    n = network.n_nodes
    frame = crossings.frame
    ids = frame["crossing_id"].to_numpy()
    segment = events["segment_id"].to_numpy()
    offset = events["offset_m"].to_numpy()
    persons = pd.to_numeric(events["persons"], errors="coerce").fillna(0).to_numpy(dtype=float) \
        if "persons" in events else np.ones(len(events))
    weights = np.column_stack([np.ones(len(events)), persons])
    seg_u = network.segments["u"].to_numpy()
    seg_v = network.segments["v"].to_numpy()
    legs = []

    # entry legs: from the attributed crossing to the event
    tree = trees(network, frame["node"].to_numpy())
    code = pd.Index(ids).get_indexer(attribution["crossing_id"])
    rows = np.flatnonzero(code >= 0)
    k = code[rows]
    on = segment[rows]
    # the end of its segment the event is reached through, from its own crossing
    cost_u = tree.distance.ravel()[k * n + seg_u[on]] + offset[rows]
    cost_v = tree.distance.ravel()[k * n + seg_v[on]] + (network.segments["length_m"].to_numpy()[on] - offset[rows])
    through_u = (cost_u <= cost_v) | (network.segments["oneway"].to_numpy()[on] != 0)
    join = np.where(through_u, seg_u[on], seg_v[on])
    flow = push_to_roots(network, tree, k * n + join, weights[rows])
    # the event's own segment, from the end it was reached through
    flow += per_segment_direction(on, through_u, weights[rows], n_seg)
    legs.append(("entry", flow))

    if exits and "destination_country" in events:
        back_tree = trees(network, frame["node"].to_numpy(), reverse=True)
        dest_code, dest_values = pd.factorize(events["destination_country"])
        snapped_mask = events["snapped"].to_numpy()
        neighbour = frame["neighbour"].to_numpy()
        choice = np.full(len(events), -1, dtype=np.int64)
        choice_u = np.zeros(len(events), dtype=bool)
        for value_code, dest in enumerate(dest_values):
            via = EXIT_COUNTRIES.get(str(dest), ())
            candidates = np.flatnonzero(np.isin(neighbour, via))
            if candidates.size == 0:
                continue
            rows = np.flatnonzero((dest_code == value_code) & snapped_mask)
            reach = reach_points(network, back_tree, candidates, segment[rows], offset[rows], second=False)
            choice[rows] = reach.first
            choice_u[rows] = reach.through_u
        rows = np.flatnonzero(choice >= 0)
        leave_u = choice_u[rows]
        on = segment[rows]
        join = np.where(leave_u, seg_u[on], seg_v[on])
        flow = push_to_roots(network, back_tree, choice[rows] * n + join, weights[rows])
        # the event's own segment, from the event to the end it leaves through
        flow += per_segment_direction(on, ~leave_u, weights[rows], n_seg)
        legs.append(("exit", flow))
    return _flow_frame(network, legs)


def _directed_geometries(network: RoadNetwork) -> GeometryArray:
    """Each segment drawn against (position ``2 * s``) and along (``2 * s + 1``) its geometry; cached."""
    key = "directed_geometries"
    if key not in network.cache:
        geoms = network.segments.geometry.to_numpy()
        both = np.empty(2 * geoms.size, dtype=object)
        both[0::2] = shapely.reverse(geoms)
        both[1::2] = geoms
        network.cache[key] = from_shapely(both, crs=WORKING_CRS)
    directed: GeometryArray = network.cache[key]
    return directed


def _flow_frame(network: RoadNetwork, legs: list[tuple[str, np.ndarray]]) -> gpd.GeoDataFrame:
    seg = network.segments
    # keys 2 * segment + along: ascending keys order the rows by segment, then direction -1 before +1
    key_parts, leg_parts, flow_parts = [], [], []
    for leg, flow in legs:
        keys = np.flatnonzero(flow[:, 0] > 0)
        key_parts.append(keys)
        leg_parts.append(np.full(keys.size, LEGS.index(leg), dtype=np.int8))
        flow_parts.append(flow[keys])
    keys = np.concatenate(key_parts) if key_parts else np.zeros(0, dtype=np.int64)
    leg_code = np.concatenate(leg_parts) if leg_parts else np.zeros(0, dtype=np.int8)
    flow = np.concatenate(flow_parts) if flow_parts else np.zeros((0, 2))
    idx = keys // 2
    return gpd.GeoDataFrame({
        "segment_id": idx.astype(np.int64), "ref": seg["ref"].take(idx).reset_index(drop=True),
        "name": seg["name"].take(idx).reset_index(drop=True),
        "direction": np.where(keys % 2 == 1, 1, -1).astype(np.int8),
        "leg": pd.Categorical.from_codes(leg_code, dtype=pd.CategoricalDtype(LEGS)),
        "events": np.rint(flow[:, 0]).astype(np.int64), "persons": np.rint(flow[:, 1]).astype(np.int64),
    }, geometry=_directed_geometries(network).take(keys), crs=WORKING_CRS)
