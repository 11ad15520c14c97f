"""The road graph (geo_ibm.network.graph): splitting, one-way edges, travel times, components, crossings."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import shapely
from networkfixtures import at, crossings_frame, node_at, road, roads_frame
from scipy.sparse import csgraph

from geo_ibm import layers
from geo_ibm.errors import ValidationError
from geo_ibm.network.graph import ROAD_KINDS, attach_crossings, build_network
from geo_ibm.network.roads import CLASS_SPEED_KMH, ROAD_COLUMNS, shipped_roads

# --------------------------------------------------------------------------- splitting and nodes


def test_roads_crossing_at_a_shared_interior_vertex_are_split_there():
    net = build_network(roads_frame([
        road([(0, 0), (100, 0), (200, 0)]),
        road([(100, -100), (100, 0), (100, 100)]),
    ]))
    assert len(net.segments) == 4
    assert net.n_nodes == 5
    assert net.n_components == 1
    np.testing.assert_allclose(sorted(net.segments["length_m"]), [100.0] * 4)
    centre = node_at(net, 100, 0)
    ends = net.segments[["u", "v"]].to_numpy()
    assert int((ends == centre).sum()) == 4  # every piece ends at the shared vertex
    assert sorted(net.segments["road_id"]) == ["r0", "r0", "r1", "r1"]


def test_roads_meeting_away_from_a_shared_vertex_are_not_joined():
    # r1 ends on r0's interior but r0 has no vertex there; r2 crosses r0 with no vertex either
    net = build_network(roads_frame([
        road([(0, 0), (200, 0)]),
        road([(100, 0), (100, 150)]),
        road([(50, -30), (50, 30)]),
    ]))
    assert len(net.segments) == 3
    assert net.n_nodes == 6
    assert net.n_components == 3
    comps = net.components()
    assert comps["component"].tolist() == [0, 1, 2]
    assert comps["segments"].tolist() == [1, 1, 1]
    np.testing.assert_allclose(comps["length_km"], [0.2, 0.15, 0.06])  # largest first
    by_road = dict(zip(net.segments["road_id"], net.segments["component"], strict=True))
    assert by_road == {"r0": 0, "r1": 1, "r2": 2}


def test_components_two_separate_pieces_largest_first():
    net = build_network(roads_frame([
        road([(0, 0), (100, 0)]), road([(100, 0), (100, 100)]),          # piece of 200 m
        road([(5000, 0), (5300, 0)]), road([(5300, 0), (5300, 400)]),  # piece of 700 m
    ]))
    assert net.n_components == 2
    comps = net.components()
    assert comps["component"].tolist() == [0, 1]
    assert comps["segments"].tolist() == [2, 2]
    np.testing.assert_allclose(comps["length_km"], [0.7, 0.2])
    assert net.segments.set_index("road_id")["component"].to_dict() == {"r0": 1, "r1": 1, "r2": 0, "r3": 0}
    # the same as networkx's weakly connected components of the segments' ends
    graph = nx.Graph(net.segments[["u", "v"]].to_numpy().tolist())
    assert sorted(len(c) for c in nx.connected_components(graph)) == [3, 3]


def test_repeated_vertices_make_no_zero_length_segment():
    net = build_network(roads_frame([road([(0, 0), (0, 0), (100, 0), (100, 0), (100, 0), (250, 0)])]))
    assert len(net.segments) == 1
    assert net.n_nodes == 2
    seg = net.segments.iloc[0]
    assert seg["length_m"] == pytest.approx(250.0)
    assert shapely.get_coordinates(seg.geometry).tolist() == [list(at(0, 0)), list(at(100, 0)), list(at(250, 0))]


def test_a_road_through_its_own_vertex_is_split_there():
    # a "P": the road comes back to its vertex (100, 0) and stops there
    net = build_network(roads_frame([road([(0, 0), (100, 0), (200, 0), (200, 100), (100, 100), (100, 0)])]))
    assert len(net.segments) == 2
    assert net.n_nodes == 2
    np.testing.assert_allclose(sorted(net.segments["length_m"]), [100.0, 400.0])


def test_multilinestring_roads_are_exploded_into_their_lines():
    rows = roads_frame([road([(0, 0), (100, 0)])])
    rows.loc[0, "geometry"] = shapely.MultiLineString([[at(0, 0), at(100, 0)], [at(0, 500), at(0, 800)]])
    net = build_network(rows)
    assert len(net.segments) == 2
    np.testing.assert_allclose(sorted(net.segments["length_m"]), [100.0, 300.0])
    assert set(net.segments["road_id"]) == {"r0"}


def test_segment_ids_are_positions_and_ends_match_the_geometry():
    net = build_network(roads_frame([
        road([(0, 0), (100, 0), (200, 0)]), road([(100, -100), (100, 0), (100, 100)], oneway=-1),
    ]))
    seg = net.segments
    assert seg["segment_id"].tolist() == list(range(len(seg)))
    coords = [shapely.get_coordinates(g) for g in seg.geometry]
    np.testing.assert_allclose([c[0] for c in coords], net.nodes[seg["u"].to_numpy()])
    np.testing.assert_allclose([c[-1] for c in coords], net.nodes[seg["v"].to_numpy()])
    np.testing.assert_allclose(seg["length_m"], [g.length for g in seg.geometry])
    assert str(seg.crs) == "EPSG:2169"


# --------------------------------------------------------------------------- directions and costs


@pytest.mark.parametrize(("oneway", "forward", "backward"), [(0, True, True), (1, True, False), (-1, False, True)])
def test_oneway_gives_one_directed_edge_the_right_way(oneway, forward, backward):
    net = build_network(roads_frame([road([(0, 0), (60, 0), (100, 0)], oneway=oneway)]))
    west, east = node_at(net, 0, 0), node_at(net, 100, 0)
    m = net.matrix("length").toarray()
    assert m[west, east] == (pytest.approx(100.0) if forward else 0.0)
    assert m[east, west] == (pytest.approx(100.0) if backward else 0.0)
    assert np.count_nonzero(m) == (2 if oneway == 0 else 1)
    # reversed: the transpose; undirected: both ways whatever the one-way
    np.testing.assert_allclose(net.matrix("length", reverse=True).toarray(), m.T)
    und = net.matrix("length", directed=False).toarray()
    assert und[west, east] == pytest.approx(100.0) and und[east, west] == pytest.approx(100.0)
    seg = net.segments.iloc[0]
    assert seg["oneway"] == (0 if oneway == 0 else 1)
    # the geometry runs the permitted way of a one-way road
    start = shapely.get_coordinates(seg.geometry)[0]
    assert tuple(start) == (at(100, 0) if oneway == -1 else at(0, 0))


def test_one_way_road_is_routed_around():
    # a square; the direct side a -> b is one-way b -> a, so a -> b goes round the other three sides
    net = build_network(roads_frame([
        road([(0, 0), (300, 0)], oneway=-1),
        road([(300, 0), (300, 300)]), road([(300, 300), (0, 300)]), road([(0, 300), (0, 0)]),
    ]))
    a, b = node_at(net, 0, 0), node_at(net, 300, 0)
    dist = csgraph.dijkstra(net.matrix("length"), directed=True, indices=[a, b])
    assert dist[0, b] == pytest.approx(900.0)
    assert dist[1, a] == pytest.approx(300.0)


def test_travel_time_from_maxspeed_and_from_the_class_speed():
    net = build_network(roads_frame([
        road([(0, 0), (1000, 0)], highway="motorway", maxspeed=72.0),       # 20 m/s: 50 s
        road([(1000, 0), (1000, 900)], highway="motorway"),                 # class speed
        road([(1000, 900), (1000, 1500)], highway="tertiary_link", maxspeed=0.0),  # 0 is no speed
        road([(1000, 1500), (0, 1500)], highway="secondary", maxspeed=36.0),  # 10 m/s: 100 s
    ]))
    seg = net.segments.set_index("road_id")
    assert seg.loc["r0", "speed_kmh"] == 72.0
    assert seg.loc["r0", "time_s"] == pytest.approx(50.0)
    assert seg.loc["r1", "speed_kmh"] == CLASS_SPEED_KMH["motorway"]
    assert seg.loc["r1", "time_s"] == pytest.approx(900.0 / (CLASS_SPEED_KMH["motorway"] / 3.6))
    assert np.isnan(seg.loc["r1", "maxspeed"])
    assert seg.loc["r2", "speed_kmh"] == CLASS_SPEED_KMH["tertiary_link"]
    assert seg.loc["r2", "time_s"] == pytest.approx(600.0 / (CLASS_SPEED_KMH["tertiary_link"] / 3.6))
    assert seg.loc["r3", "time_s"] == pytest.approx(100.0)
    t = net.matrix("time").toarray()
    assert t[node_at(net, 0, 0), node_at(net, 1000, 0)] == pytest.approx(50.0)
    assert t[node_at(net, 0, 1500), node_at(net, 1000, 1500)] == pytest.approx(100.0)
    total = csgraph.dijkstra(net.matrix("time"), indices=node_at(net, 0, 0))[node_at(net, 0, 1500)]
    assert total == pytest.approx(50.0 + 900 / (CLASS_SPEED_KMH["motorway"] / 3.6)
                                  + 600 / (CLASS_SPEED_KMH["tertiary_link"] / 3.6) + 100.0)


def test_parallel_roads_keep_the_cheaper_edge():
    net = build_network(roads_frame([
        road([(0, 0), (100, 0)]), road([(0, 0), (50, 80), (100, 0)]),
    ]))
    assert len(net.segments) == 2
    m = net.matrix("length").toarray()
    assert m[node_at(net, 0, 0), node_at(net, 100, 0)] == pytest.approx(100.0)


# --------------------------------------------------------------------------- bad input


def test_missing_column_is_refused_naming_it():
    rows = roads_frame([road([(0, 0), (100, 0)])]).drop(columns=["oneway", "maxspeed"])
    with pytest.raises(ValidationError, match="oneway") as info:
        build_network(rows)
    assert sorted(p.column for p in info.value.problems) == ["maxspeed", "oneway"]


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:3035", None])
def test_wrong_or_missing_crs_is_refused(crs):
    rows = roads_frame([road([(0, 0), (100, 0)])], crs=None)
    if crs is not None:
        rows = rows.set_crs(crs)
    with pytest.raises(ValidationError, match="EPSG:2169"):
        build_network(rows)


def test_no_road_of_positive_length_is_refused():
    with pytest.raises(ValidationError, match="road"):
        build_network(roads_frame([road([(0, 0), (0, 0)])]))


def test_columns_of_the_road_layer_are_the_documented_ones():
    net = build_network(roads_frame([road([(0, 0), (100, 0)])]))
    for column in (*ROAD_COLUMNS, "segment_id", "speed_kmh", "length_m", "time_s", "u", "v", "component", "geometry"):
        assert column in net.segments.columns


# --------------------------------------------------------------------------- crossings


def test_crossings_attach_to_the_nearest_node_within_the_tolerance():
    net = build_network(roads_frame([road([(0, 0), (1000, 0)]), road([(1000, 0), (1000, 1000)])]))
    crossings = crossings_frame([
        ("BE-1", "motorway", "BE", (-30, 40)),         # 50 m from (0, 0)
        ("DE-1", "bridge", "DE", (1000, 1300)),        # 300 m from (1000, 1000)
        ("FR-1", "national_road", "FR", (1600, 0)),    # 600 m from (1000, 0): beyond 500
        ("BE-R", "rail", "BE", (0, 0)),                # rail: never attached
        ("AIR", "airport", "external", (1000, 0)),
    ])
    attached, warnings = attach_crossings(net, crossings)
    frame = attached.frame
    assert frame["crossing_id"].tolist() == ["BE-1", "DE-1"]
    assert frame["node"].tolist() == [node_at(net, 0, 0), node_at(net, 1000, 1000)]
    np.testing.assert_allclose(frame["attach_distance_m"], [50.0, 300.0])
    assert attached.unattached == ("FR-1",)
    assert len(warnings) == 1 and "FR-1" in warnings[0]
    assert attached.of_country("DE")["crossing_id"].tolist() == ["DE-1"]
    # a wider tolerance takes FR-1 too
    wide, warnings = attach_crossings(net, crossings, tolerance_m=700)
    assert wide.frame["crossing_id"].tolist() == ["BE-1", "DE-1", "FR-1"] and warnings == []
    with pytest.raises(ValidationError, match="tolerance_m"):
        attach_crossings(net, crossings, tolerance_m=0)


def test_a_network_reaching_no_crossing_warns():
    net = build_network(roads_frame([road([(0, 0), (100, 0)])]))
    attached, warnings = attach_crossings(net, crossings_frame([("BE-1", "motorway", "BE", (0, 9000))]))
    assert len(attached.frame) == 0
    assert any("BE-1" in w for w in warnings)
    assert any("no road crossing" in w for w in warnings)


@pytest.fixture(scope="module")
def shipped():
    return build_network(shipped_roads())


def test_the_shipped_network_is_one_component_as_long_as_its_roads(shipped):
    assert shipped.n_components == 1
    roads = shipped_roads()
    assert shipped.total_length_m == pytest.approx(float(roads.geometry.length.sum()), rel=1e-9)
    graph = nx.Graph(shipped.segments[["u", "v"]].to_numpy().tolist())
    assert nx.number_connected_components(graph) == 1
    assert graph.number_of_nodes() == shipped.n_nodes


def test_every_shipped_road_crossing_is_attached_within_the_tolerance(shipped):
    crossings = layers.crossing_points()
    attached, warnings = attach_crossings(shipped, crossings)
    assert warnings == [] and attached.unattached == ()
    road_ids = crossings.loc[crossings["kind"].isin(ROAD_KINDS), "crossing_id"].tolist()
    assert len(road_ids) == 22
    assert attached.frame["crossing_id"].tolist() == road_ids
    # nearest node by brute force over every node
    xy = shapely.get_coordinates(attached.frame.geometry.to_numpy())
    d = np.hypot(xy[:, None, 0] - shipped.nodes[None, :, 0], xy[:, None, 1] - shipped.nodes[None, :, 1])
    assert attached.frame["node"].tolist() == d.argmin(axis=1).tolist()
    np.testing.assert_allclose(attached.frame["attach_distance_m"], d.min(axis=1), atol=1e-9)
    assert (attached.frame["attach_distance_m"] <= 500.0).all()


def test_a_shipped_crossing_moved_5_km_away_is_named_in_a_warning(shipped):
    crossings = layers.crossing_points()
    moved = crossings.copy()
    row = moved.index[moved["crossing_id"] == "DE-A1-WASSERBILLIG"][0]
    point = moved.geometry[row]
    moved.loc[row, "geometry"] = shapely.Point(point.x + 5000.0, point.y)
    d = np.hypot(shipped.nodes[:, 0] - point.x - 5000.0, shipped.nodes[:, 1] - point.y)
    assert d.min() > 500.0
    attached, warnings = attach_crossings(shipped, moved)
    assert attached.unattached == ("DE-A1-WASSERBILLIG",)
    assert len(warnings) == 1 and "DE-A1-WASSERBILLIG" in warnings[0]
    assert "DE-A1-WASSERBILLIG" not in attached.frame["crossing_id"].tolist()
    assert len(attached.frame) == 21
