"""Entry attribution (geo_ibm.network.attribution): the nearest crossing along the roads, its margin, the table."""
from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from networkfixtures import crossings_frame, events_frame, reference_graph, road, roads_frame, with_point

from geo_ibm import layers
from geo_ibm.network.attribution import attribute_entries, crossing_table
from geo_ibm.network.graph import attach_crossings, build_network
from geo_ibm.network.roads import shipped_roads
from geo_ibm.network.snap import snap_events


@pytest.fixture(scope="module")
def line():
    """Two BE crossings at the ends of a 3 km road, an FR crossing up a side road, a BE rail crossing."""
    network = build_network(roads_frame([
        road([(0, 0), (1000, 0)]), road([(1000, 0), (3000, 0)]), road([(1000, 0), (1000, 800)]),
    ]))
    crossings, warnings = attach_crossings(network, crossings_frame([
        ("BE-WEST", "motorway", "BE", (0, 0)), ("BE-EAST", "national_road", "BE", (3000, 0)),
        ("FR-NORTH", "bridge", "FR", (1000, 800)), ("BE-RAIL", "rail", "BE", (500, 0)),
    ]))
    assert warnings == []
    return network, crossings


EVENTS = [  # point, entry country, persons
    ((800, 10), "BE", 1),
    ((2500, -20), "BE", 3),
    ((1000 + 5, 400), "BE", 2),
    ((1000 - 5, 400), "FR", 4),
    ((1700, 0), "DE", 1),
    ((1700, 0), "unknown", 6),
    ((1700, 5000), "BE", 2),
    ((2000, 0), None, 1),
]


@pytest.fixture(scope="module")
def attributed(line):
    network, crossings = line
    events = events_frame([e[0] for e in EVENTS], index=[100 + i for i in range(len(EVENTS))],
                          entry_country=[e[1] for e in EVENTS], persons=[e[2] for e in EVENTS])
    return attribute_entries(network, snap_events(events, network), crossings)


def ids(values) -> list:
    """Crossing ids with every missing value (None or NaN, as the column's dtype holds it) as None."""
    return [None if pd.isna(v) else v for v in values]


def test_the_nearer_crossing_is_chosen_with_its_margin_and_confidence(attributed):
    out = attributed
    assert out.index.tolist() == list(range(100, 108))
    assert out["event_id"].tolist() == [f"E{i}" for i in range(8)]
    assert ids(out["crossing_id"])[:4] == ["BE-WEST", "BE-EAST", "BE-WEST", "FR-NORTH"]
    assert ids(out["second_crossing_id"])[:4] == ["BE-EAST", "BE-WEST", "BE-EAST", None]
    np.testing.assert_allclose(out["distance_m"].iloc[:4], [800, 500, 1400, 400], atol=1e-9)
    np.testing.assert_allclose(out["margin_m"].iloc[:3], [2200 - 800, 2500 - 500, 2400 - 1400], atol=1e-9)
    assert np.isnan(out["margin_m"].iloc[3])  # the only FR crossing
    np.testing.assert_allclose(out["confidence"].iloc[:4], [1 - 800 / 2200, 1 - 500 / 2500, 1 - 1400 / 2400, 1.0])
    assert out["crossing_name"].iloc[0] == "name of BE-WEST"
    assert ids(out["reason"])[:4] == [None] * 4
    assert out["persons"].tolist() == [e[2] for e in EVENTS]
    assert out["entry_country"].tolist()[:7] == [e[1] for e in EVENTS][:7]
    assert shapely.equals(out.geometry.iloc[0], shapely.Point(75_800, 90_010))


def test_events_that_cannot_be_attributed_get_their_reason(attributed):
    out = attributed
    assert out["reason"].tolist()[4:] == ["no reachable crossing", "unknown entry country", "not on the network",
                                          "unknown entry country"]
    rest = out.iloc[4:]
    assert rest["crossing_id"].isna().all() and rest["second_crossing_id"].isna().all()
    assert rest["distance_m"].isna().all() and rest["margin_m"].isna().all() and rest["confidence"].isna().all()


def test_rail_crossings_are_never_candidates(line, attributed):
    _, crossings = line
    assert "BE-RAIL" not in crossings.frame["crossing_id"].tolist()
    assert "BE-RAIL" not in set(attributed["crossing_id"].dropna()) | set(attributed["second_crossing_id"].dropna())


def test_two_crossings_equally_near_give_zero_confidence(line):
    network, crossings = line
    events = events_frame([(1500, 0)], entry_country=["BE"], persons=[1])
    out = attribute_entries(network, snap_events(events, network), crossings)
    # a tie goes to the crossing listed first
    assert (out["crossing_id"].iloc[0], out["second_crossing_id"].iloc[0]) == ("BE-WEST", "BE-EAST")
    assert out["distance_m"].iloc[0] == pytest.approx(1500.0)
    assert out["margin_m"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    assert out["confidence"].iloc[0] == pytest.approx(0.0, abs=1e-12)


def test_crossing_table_sums_the_attributed_events(line, attributed):
    _, crossings = line
    table = crossing_table(attributed, crossings)
    assert table["crossing_id"].tolist() == ["BE-WEST", "BE-EAST", "FR-NORTH"]
    assert table["neighbour"].tolist() == ["BE", "BE", "FR"]
    assert table["name"].tolist() == ["name of BE-WEST", "name of BE-EAST", "name of FR-NORTH"]
    assert table["events"].tolist() == [2, 1, 1]
    assert table["persons"].tolist() == [1 + 2, 3, 4]
    np.testing.assert_allclose(table["share"], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(table["mean_confidence"].iloc[:2],
                               [(1 - 800 / 2200 + 1 - 1400 / 2400) / 2, 1 - 500 / 2500])
    assert [(p.x, p.y) for p in table.geometry] == [(75_000, 90_000), (78_000, 90_000), (76_000, 90_800)]


def test_crossing_table_lists_crossings_with_no_event(line):
    network, crossings = line
    events = events_frame([(2900, 0)], entry_country=["BE"], persons=[5])
    table = crossing_table(attribute_entries(network, snap_events(events, network), crossings), crossings)
    assert table.set_index("crossing_id")["events"].to_dict() == {"BE-EAST": 1, "BE-WEST": 0, "FR-NORTH": 0}
    assert table.set_index("crossing_id")["persons"].to_dict() == {"BE-EAST": 5, "BE-WEST": 0, "FR-NORTH": 0}
    assert table["share"].tolist() == [1.0, 0.0, 0.0]


# --------------------------------------------------------------------------- one-way roads


def one_way_network(oneway: int):
    """A (0, 0) -[r0, oneway]- J (1000, 0) --- (2000, 0) --- B (5000, 0), both crossings to BE."""
    network = build_network(roads_frame([
        road([(0, 0), (1000, 0)], oneway=oneway), road([(1000, 0), (2000, 0)]), road([(2000, 0), (5000, 0)]),
    ]))
    crossings, _ = attach_crossings(network, crossings_frame([("A", "motorway", "BE", (0, 0)),
                                                              ("B", "motorway", "BE", (5000, 0))]))
    return network, crossings


@pytest.mark.parametrize(("oneway", "beyond", "on_it"), [
    # the event beyond the one-way road (x = 1200) and on it (x = 500): (crossing, d1, second, d2)
    (0, ("A", 1200, "B", 3800), ("A", 500, "B", 4500)),
    (1, ("A", 1200, "B", 3800), ("A", 500, None, None)),       # from B, r0 cannot be driven westwards
    (-1, ("B", 3800, None, None), ("B", 4500, None, None)),    # from A, r0 cannot be driven eastwards
])
def test_one_way_roads_are_respected(oneway, beyond, on_it):
    network, crossings = one_way_network(oneway)
    events = events_frame([(1200, 30), (500, -30)], entry_country=["BE", "BE"], persons=[1, 1])
    out = attribute_entries(network, snap_events(events, network), crossings)
    for row, (cid, d1, second, d2) in zip(out.itertuples(), (beyond, on_it), strict=True):
        assert row.crossing_id == cid
        assert row.distance_m == pytest.approx(d1)
        assert ids([row.second_crossing_id]) == [second]
        if second is None:
            assert np.isnan(row.margin_m) and row.confidence == 1.0
        else:
            assert row.margin_m == pytest.approx(d2 - d1)
            assert row.confidence == pytest.approx(1 - d1 / d2)


# --------------------------------------------------------------------------- against networkx


def test_attribution_on_the_shipped_network_equals_networkx_shortest_paths():
    network = build_network(shipped_roads())
    crossings, _ = attach_crossings(network, layers.crossing_points())
    rng = np.random.default_rng(8)
    n = 150
    seg = network.segments
    pick = rng.choice(len(seg), size=n, p=seg["length_m"] / seg["length_m"].sum())
    on_road = shapely.line_interpolate_point(seg.geometry.to_numpy()[pick], rng.uniform(0, 1, n), normalized=True)
    xy = shapely.get_coordinates(on_road) + rng.normal(0, 60, (n, 2))
    events = gpd.GeoDataFrame({"event_id": [f"S{i}" for i in range(n)],
                               "entry_country": rng.choice(["BE", "FR", "DE"], n), "persons": rng.integers(1, 6, n)},
                              geometry=shapely.points(xy), crs="EPSG:2169")
    snapped = snap_events(events, network)
    out = attribute_entries(network, snapped, crossings)
    graph = reference_graph(network)
    frame = crossings.frame
    checked = 0
    for i in range(n):
        row = snapped.events.iloc[i]
        if not row["snapped"]:
            assert out["reason"].iloc[i] == "not on the network"
            continue
        g = with_point(graph, network, int(row["segment_id"]), row.geometry)
        to_event = nx.single_source_dijkstra_path_length(g.reverse(copy=False), "event", weight="length")
        candidates = frame[frame["neighbour"] == row["entry_country"]]
        d = np.array([to_event.get(int(node), np.inf) for node in candidates["node"]])
        order = np.argsort(d)
        assert out["distance_m"].iloc[i] == pytest.approx(d[order[0]], abs=1e-6)
        margin = d[order[1]] - d[order[0]]
        assert out["margin_m"].iloc[i] == pytest.approx(margin, abs=1e-6)
        assert out["confidence"].iloc[i] == pytest.approx(1 - d[order[0]] / d[order[1]], abs=1e-9)
        if margin > 1e-6:
            assert out["crossing_id"].iloc[i] == candidates["crossing_id"].iloc[order[0]]
            assert out["second_crossing_id"].iloc[i] == candidates["crossing_id"].iloc[order[1]]
            checked += 1
    assert checked > 100
    table = crossing_table(out, crossings)
    assert int(table["events"].sum()) == int(out["crossing_id"].notna().sum())
    assert int(table["persons"].sum()) == int(out.loc[out["crossing_id"].notna(), "persons"].sum())
    assert table["share"].sum() == pytest.approx(1.0)


def test_a_network_reaching_no_crossing_attributes_nothing():
    network = build_network(roads_frame([road([(0, 0), (1000, 0)])]))
    crossings, warnings = attach_crossings(network, crossings_frame([("BE-FAR", "motorway", "BE", (0, 9000))]))
    assert len(crossings.frame) == 0 and any("BE-FAR" in w for w in warnings)
    events = events_frame([(200, 0), (800, 0)], entry_country=["BE", "unknown"], persons=[2, 1])
    out = attribute_entries(network, snap_events(events, network), crossings)
    assert ids(out["reason"]) == ["no reachable crossing", "unknown entry country"]
    assert out["crossing_id"].isna().all()
    table = crossing_table(out, crossings)
    assert len(table) == 0


def test_a_crossing_in_another_component_is_not_reachable():
    network = build_network(roads_frame([road([(0, 0), (1000, 0)]), road([(5000, 0), (6000, 0)])]))
    crossings, _ = attach_crossings(network, crossings_frame([("BE-A", "motorway", "BE", (0, 0)),
                                                              ("BE-B", "motorway", "BE", (6000, 0))]))
    events = events_frame([(400, 0), (5100, 0)], entry_country=["BE", "BE"], persons=[1, 1])
    out = attribute_entries(network, snap_events(events, network), crossings)
    assert ids(out["crossing_id"]) == ["BE-A", "BE-B"]
    assert ids(out["second_crossing_id"]) == [None, None]
    np.testing.assert_allclose(out["distance_m"], [400.0, 900.0])
    assert out["confidence"].tolist() == [1.0, 1.0] and out["margin_m"].isna().all()
