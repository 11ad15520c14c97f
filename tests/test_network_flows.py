"""Flows along the roads (geo_ibm.network.flows) against a brute-force enumeration of all simple paths."""
from __future__ import annotations

from collections import defaultdict

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from networkfixtures import crossings_frame, events_frame, path_length, reference_graph, road, roads_frame, with_point

from geo_ibm.network.attribution import attribute_entries
from geo_ibm.network.flows import EXIT_COUNTRIES, route_flows
from geo_ibm.network.graph import attach_crossings, build_network
from geo_ibm.network.snap import snap_events

# a small network with cycles (many simple paths), one-way roads and bends
NODES = {"a": (0, 0), "b": (1000, 0), "c": (2000, 0), "d": (1000, 800), "e": (2000, 900), "f": (3000, 300),
         "g": (0, 1500), "h": (3000, 1600), "i": (1500, -900)}
ROADS = [
    ("a", "b", 0, []), ("b", "c", 0, []), ("b", "d", 0, []), ("c", "e", 0, []),
    ("d", "e", 0, [(1500, 1000)]),        # bent
    ("c", "f", 0, []), ("e", "h", 0, []), ("g", "d", 0, [(400, 1300)]),
    ("e", "f", 1, []),                    # one-way e -> f
    ("c", "i", 0, []), ("g", "a", 0, []),
    ("h", "f", -1, []),                   # one-way f -> h (against its geometry)
]
CROSSINGS = [("BE-A", "motorway", "BE", NODES["a"]), ("BE-G", "national_road", "BE", NODES["g"]),
             ("DE-F", "motorway", "DE", NODES["f"]), ("DE-H", "bridge", "DE", NODES["h"]),
             ("FR-I", "national_road", "FR", NODES["i"])]
ENTRIES = ["BE", "DE", "FR", "unknown"]
DESTINATIONS = ["DE", "NL", "FR", "BE", "GB", "CH", "unknown", None, "US"]


def road_rows():
    return [road([NODES[a], *bend, NODES[b]], oneway=oneway) for a, b, oneway, bend in ROADS]


@pytest.fixture(scope="module")
def case():
    network = build_network(roads_frame(road_rows()))
    crossings, warnings = attach_crossings(network, crossings_frame(CROSSINGS))
    assert warnings == [] and len(network.segments) == len(ROADS)
    rng = np.random.default_rng(2024)
    n = 60
    points = []
    for r in rng.integers(0, len(ROADS), n):
        a, b, _, bend = ROADS[r]
        line = shapely.LineString([NODES[a], *bend, NODES[b]])
        p = line.interpolate(rng.uniform(0.05, 0.95), normalized=True)
        points.append((p.x + rng.normal(0, 20), p.y + rng.normal(0, 20)))
    points.append((1500, 4000))  # far from every road
    m = len(points)
    events = events_frame(points, index=np.arange(m) * 3 + 7,
                          entry_country=rng.choice(ENTRIES, m).tolist(),
                          destination_country=[DESTINATIONS[k] for k in rng.integers(0, len(DESTINATIONS), m)],
                          persons=rng.integers(1, 6, m).tolist())
    snapped = snap_events(events, network)
    assert snapped.n_unsnapped == 1
    attribution = attribute_entries(network, snapped, crossings)
    return network, crossings, snapped, attribution


def shortest_by_enumeration(graph: nx.DiGraph, source, target) -> tuple[float, list]:
    """The shortest of all simple paths from ``source`` to ``target``; it must be unique."""
    paths = sorted((path_length(graph, p), p) for p in nx.all_simple_paths(graph, source, target))
    assert paths, f"no path from {source} to {target}"
    if len(paths) > 1:
        assert paths[1][0] - paths[0][0] > 1e-6, "a tie: the expected flow would be ambiguous"
    return paths[0]


def expected_flows(case, *, exits: bool = True) -> dict[tuple[str, int, int], list[float]]:
    """(leg, segment, direction) -> [events, persons], every path found by enumeration."""
    network, crossings, snapped, attribution = case
    frame = crossings.frame
    graph = reference_graph(network)
    node_of = dict(zip(frame["crossing_id"], frame["node"], strict=True))
    flows: dict[tuple[str, int, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for idx, row in snapped.events.iterrows():
        if not row["snapped"]:
            continue
        g = with_point(graph, network, int(row["segment_id"]), row.geometry)
        legs = []
        if row["entry_country"] in ("BE", "FR", "DE"):
            # the nearest crossing of the entry country, by enumeration too
            options = [(shortest_by_enumeration(g, int(node), "event"), cid)
                       for cid, node, neighbour in zip(frame["crossing_id"], frame["node"], frame["neighbour"],
                                                       strict=True)
                       if neighbour == row["entry_country"]]
            options.sort(key=lambda o: o[0][0])
            if len(options) > 1:
                assert options[1][0][0] - options[0][0][0] > 1e-6
            assert attribution.loc[idx, "crossing_id"] == options[0][1]
            legs.append(("entry", options[0][0][1]))
            assert options[0][0][0] == pytest.approx(attribution.loc[idx, "distance_m"])
            assert shortest_by_enumeration(g, node_of[options[0][1]], "event")[1] == options[0][0][1]
        destination = row["destination_country"]
        if exits and destination in EXIT_COUNTRIES:
            via = EXIT_COUNTRIES[destination]
            ways = [shortest_by_enumeration(g, "event", int(node))
                    for node, neighbour in zip(frame["node"], frame["neighbour"], strict=True) if neighbour in via]
            ways.sort(key=lambda o: o[0])
            if len(ways) > 1:
                assert ways[1][0] - ways[0][0] > 1e-6
            legs.append(("exit", ways[0][1]))
        for leg, path in legs:
            for a, b in zip(path[:-1], path[1:]):
                edge = g.edges[a, b]
                total = flows[(leg, edge["segment"], edge["direction"])]
                total[0] += 1
                total[1] += row["persons"]
    return dict(flows)


def as_dict(flows: gpd.GeoDataFrame) -> dict[tuple[str, int, int], list[float]]:
    return {(leg, int(s), int(d)): [float(e), float(p)] for leg, s, d, e, p in
            zip(flows["leg"], flows["segment_id"], flows["direction"], flows["events"], flows["persons"], strict=True)}


def test_entry_and_exit_flows_equal_the_enumerated_shortest_paths(case):
    network, crossings, snapped, attribution = case
    flows = route_flows(network, snapped, attribution, crossings)
    expected = expected_flows(case)
    assert {k[0] for k in expected} == {"entry", "exit"}
    assert len(expected) > 20
    assert as_dict(flows) == expected


def test_without_exits_only_entry_legs(case):
    network, crossings, snapped, attribution = case
    flows = route_flows(network, snapped, attribution, crossings, exits=False)
    assert set(flows["leg"]) == {"entry"}
    assert as_dict(flows) == expected_flows(case, exits=False)
    # no destination column: the same
    bare = snap_events(snapped.events.drop(columns=["destination_country", "segment_id", "offset_m",
                                                    "snap_distance_m", "snapped"]), network)
    assert as_dict(route_flows(network, bare, attribution, crossings)) == as_dict(flows)


def test_flow_rows_are_drawn_in_the_direction_of_travel(case):
    network, crossings, snapped, attribution = case
    flows = route_flows(network, snapped, attribution, crossings)
    assert flows["direction"].isin([1, -1]).all() and set(flows["leg"]) <= {"entry", "exit"}
    assert (flows["events"] > 0).all() and (flows["persons"] >= flows["events"]).all()
    seg = network.segments
    for row in flows.itertuples():
        own = shapely.get_coordinates(seg.geometry.iloc[row.segment_id])
        drawn = shapely.get_coordinates(row.geometry)
        np.testing.assert_allclose(drawn, own if row.direction == 1 else own[::-1])
        assert row.ref == seg["ref"].iloc[row.segment_id]
    # one row per segment, direction and leg
    assert not flows.duplicated(["leg", "segment_id", "direction"]).any()
    assert str(flows.crs) == "EPSG:2169"


def test_one_way_roads_carry_flow_only_their_way(case):
    network, crossings, snapped, attribution = case
    flows = route_flows(network, snapped, attribution, crossings)
    seg = network.segments
    for sid in seg.index[seg["oneway"] == 1]:
        assert set(flows.loc[flows["segment_id"] == sid, "direction"]) <= {1}
    # the one-way e -> f carries exits towards DE-F
    ef = int(seg.index[seg["road_id"] == "r8"][0])
    assert ((flows["segment_id"] == ef) & (flows["leg"] == "exit")).any()


def test_events_weighted_by_persons_on_a_line():
    """One road A (0) - B (1000) - C (3000): hand-made numbers."""
    network = build_network(roads_frame([road([(0, 0), (1000, 0)]), road([(1000, 0), (3000, 0)])]))
    crossings, _ = attach_crossings(network, crossings_frame([("BE-A", "motorway", "BE", (0, 0)),
                                                              ("DE-C", "motorway", "DE", (3000, 0))]))
    events = events_frame([(500, 0), (2000, 0), (2500, 0)], entry_country=["BE", "BE", "DE"],
                          destination_country=["DE", "NL", "BE"], persons=[2, 3, 7])
    snapped = snap_events(events, network)
    flows = route_flows(network, snapped, attribute_entries(network, snapped, crossings), crossings)
    assert as_dict(flows) == {
        ("entry", 0, 1): [2.0, 5.0],    # both BE entries through A - B
        ("entry", 1, 1): [1.0, 3.0],    # the one at 2000 goes on
        ("entry", 1, -1): [1.0, 7.0],   # the DE entry from C back to 2500
        ("exit", 0, 1): [1.0, 2.0],     # the event at 500 heads for DE: on to C
        ("exit", 1, 1): [2.0, 5.0],     # ... and so does the one for NL (through DE-C, nearer than BE-A)
        ("exit", 1, -1): [1.0, 7.0],    # the event for BE at 2500 goes back west to A
        ("exit", 0, -1): [1.0, 7.0],
    }


def test_no_flow_at_all_gives_an_empty_frame_with_the_columns():
    network = build_network(roads_frame([road([(0, 0), (1000, 0)])]))
    crossings, _ = attach_crossings(network, crossings_frame([("BE-A", "motorway", "BE", (0, 0))]))
    events = events_frame([(500, 0)], entry_country=["unknown"], destination_country=[None], persons=[1])
    snapped = snap_events(events, network)
    flows = route_flows(network, snapped, attribute_entries(network, snapped, crossings), crossings)
    assert len(flows) == 0
    assert list(flows.columns) == ["segment_id", "ref", "name", "direction", "leg", "events", "persons", "geometry"]
    assert isinstance(flows, gpd.GeoDataFrame) and str(flows.crs) == "EPSG:2169"
    assert pd.api.types.is_integer_dtype(flows["events"])


def test_an_exit_crossing_in_another_component_gives_no_exit_leg():
    network = build_network(roads_frame([road([(0, 0), (1000, 0)]), road([(5000, 0), (6000, 0)])]))
    crossings, _ = attach_crossings(network, crossings_frame([("BE-A", "motorway", "BE", (0, 0)),
                                                              ("DE-B", "motorway", "DE", (6000, 0))]))
    events = events_frame([(400, 0)], entry_country=["BE"], destination_country=["DE"], persons=[3])
    snapped = snap_events(events, network)
    flows = route_flows(network, snapped, attribute_entries(network, snapped, crossings), crossings)
    assert as_dict(flows) == {("entry", 0, 1): [1.0, 3.0]}


def test_a_network_reaching_no_crossing_has_no_flow():
    network = build_network(roads_frame([road([(0, 0), (1000, 0)])]))
    crossings, _ = attach_crossings(network, crossings_frame([("BE-FAR", "motorway", "BE", (0, 9000))]))
    events = events_frame([(400, 0)], entry_country=["BE"], destination_country=["BE"], persons=[3])
    snapped = snap_events(events, network)
    flows = route_flows(network, snapped, attribute_entries(network, snapped, crossings), crossings)
    assert len(flows) == 0


def test_flows_on_the_shipped_network_with_one_way_roads_equal_networkx_shortest_paths():
    from geo_ibm import layers
    from geo_ibm.network.roads import shipped_roads

    rng = np.random.default_rng(31)
    roads = shipped_roads()
    roads["oneway"] = rng.choice(np.array([0, 0, 1, -1], dtype=np.int8), len(roads))
    network = build_network(roads)
    crossings, _ = attach_crossings(network, layers.crossing_points())
    seg = network.segments
    n = 200
    pick = rng.choice(len(seg), size=n, p=seg["length_m"] / seg["length_m"].sum())
    on_road = shapely.line_interpolate_point(seg.geometry.to_numpy()[pick], rng.uniform(0.02, 0.98, n),
                                             normalized=True)
    xy = shapely.get_coordinates(on_road) + rng.normal(0, 30, (n, 2))
    events = gpd.GeoDataFrame({"event_id": [f"S{i}" for i in range(n)],
                               "entry_country": rng.choice(ENTRIES, n),
                               "destination_country": rng.choice(["DE", "NL", "FR", "BE", "GB", "unknown"], n),
                               "persons": rng.integers(1, 6, n)}, geometry=shapely.points(xy), crs="EPSG:2169")
    snapped = snap_events(events, network)
    attribution = attribute_entries(network, snapped, crossings)
    flows = route_flows(network, snapped, attribution, crossings)
    frame = crossings.frame
    graph = reference_graph(network)
    expected: dict[tuple[str, int, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    legs_seen = {"entry": 0, "exit": 0}
    for idx, row in snapped.events.iterrows():
        if not row["snapped"]:
            continue
        g = with_point(graph, network, int(row["segment_id"]), row.geometry)
        from_event = nx.single_source_dijkstra(g, "event", weight="length")
        to_event = nx.single_source_dijkstra(g.reverse(copy=False), "event", weight="length")
        legs = []
        if row["entry_country"] in ("BE", "FR", "DE"):
            options = sorted((to_event[0][int(node)], cid) for cid, node, nb in
                             zip(frame["crossing_id"], frame["node"], frame["neighbour"], strict=True)
                             if nb == row["entry_country"] and int(node) in to_event[0])
            if options:
                assert attribution.loc[idx, "crossing_id"] == options[0][1]
                assert attribution.loc[idx, "distance_m"] == pytest.approx(options[0][0])
                node = int(frame.set_index("crossing_id").loc[options[0][1], "node"])
                legs.append(("entry", to_event[1][node][::-1]))
            else:
                assert attribution.loc[idx, "reason"] == "no reachable crossing"
        if row["destination_country"] in EXIT_COUNTRIES:
            via = EXIT_COUNTRIES[row["destination_country"]]
            options = sorted((from_event[0][int(node)], int(node)) for node, nb in
                             zip(frame["node"], frame["neighbour"], strict=True)
                             if nb in via and int(node) in from_event[0])
            if options:
                legs.append(("exit", from_event[1][options[0][1]]))
        for leg, path in legs:
            legs_seen[leg] += 1
            for a, b in zip(path[:-1], path[1:]):
                edge = g.edges[a, b]
                total = expected[(leg, edge["segment"], edge["direction"])]
                total[0] += 1
                total[1] += row["persons"]
    assert legs_seen["entry"] > 50 and legs_seen["exit"] > 50
    assert as_dict(flows) == dict(expected)
