"""Route mapping on the road network: graph, snapping, corridors, entry attribution, flows, network hotspots.

Modules, lowest first: :mod:`~geo_ibm.network.roads` (the road layer: installed OpenStreetMap
extract or shipped corridors), :mod:`~geo_ibm.network.graph` (the routable graph and the attached
crossing points), :mod:`~geo_ibm.network.snap` (events onto segments),
:mod:`~geo_ibm.network.paths` (shortest-path trees of the crossings),
:mod:`~geo_ibm.network.corridors`, :mod:`~geo_ibm.network.attribution`,
:mod:`~geo_ibm.network.flows`, :mod:`~geo_ibm.network.lixels` (the analyses) and
:mod:`~geo_ibm.network.requests` (one query on the stored events for the CLI, web and OGC).
"""
from __future__ import annotations

from geo_ibm.network.attribution import attribute_entries, crossing_table
from geo_ibm.network.corridors import corridor_ranking, segment_stats
from geo_ibm.network.flows import route_flows
from geo_ibm.network.graph import AttachedCrossings, RoadNetwork, attach_crossings, build_network
from geo_ibm.network.lixels import lixelize, network_hotspots
from geo_ibm.network.snap import Snapped, snap_events

__all__ = [
    "AttachedCrossings", "RoadNetwork", "Snapped", "attach_crossings", "attribute_entries", "build_network",
    "corridor_ranking", "crossing_table", "lixelize", "network_hotspots", "route_flows", "segment_stats",
    "snap_events",
]
