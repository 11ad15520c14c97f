"""Snapping events to road segments (geo_ibm.network.snap): exact positions, the tolerance, sjoin_nearest."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from networkfixtures import events_frame, road, roads_frame

from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.network.graph import build_network
from geo_ibm.network.roads import shipped_roads
from geo_ibm.network.snap import MAX_TOLERANCE_M, distance_to_network, snap_events


@pytest.fixture(scope="module")
def network():
    return build_network(roads_frame([
        road([(0, 0), (1000, 0)]),                        # r0: east
        road([(1000, 0), (1000, 1000)]),                  # r1: north from r0's end
        road([(2000, 0), (3000, 0)], oneway=-1),          # r2: drivable westwards only
        road([(0, 2000), (500, 2000), (500, 2500)]),      # r3: one segment with a bend
    ]))


def segment_of(network, road_id: str) -> int:
    ids = network.segments.index[network.segments["road_id"] == road_id]
    assert len(ids) == 1
    return int(network.segments.loc[ids[0], "segment_id"])


# point (relative), road, offset from the segment's u end, distance
KNOWN = [
    ((300, 40), "r0", 300.0, 40.0),
    ((700, -120), "r0", 700.0, 120.0),
    ((-30, 0), "r0", 0.0, 30.0),              # beyond the start: the end point
    ((1100, 500), "r1", 500.0, 100.0),
    ((1010, 990), "r1", 990.0, 10.0),
    ((2200, 10), "r2", 800.0, 10.0),          # reversed one-way: u is at x = 3000
    ((510, 2300), "r3", 800.0, 10.0),         # on the bend's second piece: 500 + 300
    ((250, 1990), "r3", 250.0, 10.0),
]


def test_known_points_get_their_segment_offset_and_distance(network):
    points = [k[0] for k in KNOWN]
    events = events_frame(points, index=[10 * i + 5 for i in range(len(points))], persons=range(1, len(points) + 1))
    snapped = snap_events(events, network)
    out = snapped.events
    assert out.index.tolist() == events.index.tolist()
    assert out["persons"].tolist() == events["persons"].tolist()
    assert out["event_id"].tolist() == events["event_id"].tolist()
    assert out["segment_id"].tolist() == [segment_of(network, k[1]) for k in KNOWN]
    np.testing.assert_allclose(out["offset_m"], [k[2] for k in KNOWN], atol=1e-9)
    np.testing.assert_allclose(out["snap_distance_m"], [k[3] for k in KNOWN], atol=1e-9)
    assert out["snapped"].all() and snapped.n_unsnapped == 0
    assert snapped.tolerance_m == 250.0


def test_points_beyond_the_tolerance_are_kept_unsnapped(network):
    points = [(300, 40), (500, 600), (4000, 0), (1100, 500), (-500, 1000)]
    events = events_frame(points, index=["a", "b", "c", "d", "e"])
    snapped = snap_events(events, network, tolerance_m=250)
    out = snapped.events
    assert len(out) == 5 and out.index.tolist() == ["a", "b", "c", "d", "e"]
    assert out["snapped"].tolist() == [True, False, False, True, False]
    assert out["segment_id"].tolist()[1:3] == [-1, -1] and out.loc["e", "segment_id"] == -1
    assert out.loc[["b", "c", "e"], "offset_m"].isna().all()
    assert out.loc[["b", "c", "e"], "snap_distance_m"].isna().all()
    assert snapped.n_unsnapped == 3
    assert snapped.unsnapped.index.tolist() == ["b", "c", "e"]
    assert snapped.unsnapped["event_id"].tolist() == ["E1", "E2", "E4"]
    assert snapped.on_network.index.tolist() == ["a", "d"]
    # their distances to the nearest road: (500, 600) is 500 m from r1, (4000, 0) 1000 m from r2's end
    d = distance_to_network(snapped.unsnapped.geometry.to_numpy(), network)
    np.testing.assert_allclose(d, [500.0, 1000.0, np.hypot(500.0, 1000.0)])
    # a wider tolerance takes the first two
    wide = snap_events(events, network, tolerance_m=1000.0)
    assert wide.events["snapped"].tolist() == [True, True, True, True, False]
    assert wide.events.loc["b", "snap_distance_m"] == pytest.approx(500.0)


def test_exactly_at_the_tolerance_is_snapped(network):
    snapped = snap_events(events_frame([(400, 250.0), (400, 250.5)]), network, tolerance_m=250)
    assert snapped.events["snapped"].tolist() == [True, False]


def test_no_events_give_an_empty_result(network):
    events = events_frame([])
    snapped = snap_events(events, network)
    assert len(snapped.events) == 0 and snapped.n_unsnapped == 0
    for column in ("segment_id", "offset_m", "snap_distance_m", "snapped"):
        assert column in snapped.events.columns


@pytest.mark.parametrize("tolerance", [0, -1, float("nan"), float("inf"), MAX_TOLERANCE_M + 1, "abc", None, 10**9])
def test_hostile_tolerances_are_refused_naming_tolerance(network, tolerance):
    with pytest.raises(ValidationError, match="tolerance") as info:
        snap_events(events_frame([(0, 0)]), network, tolerance_m=tolerance)
    assert [p.column for p in info.value.problems] == ["tolerance"]


def test_the_largest_tolerance_is_accepted(network):
    # r0 runs along y = 0 from x = 0 to 1000, every other road is north of it
    snapped = snap_events(events_frame([(500, -MAX_TOLERANCE_M + 1), (500, -MAX_TOLERANCE_M - 1)]), network,
                          tolerance_m=MAX_TOLERANCE_M)
    assert snapped.events["snapped"].tolist() == [True, False]
    assert snapped.events["snap_distance_m"].iloc[0] == pytest.approx(MAX_TOLERANCE_M - 1)


def comb():
    """150 parallel roads 20 m apart, 3 km long, crossed by three roads: a dense network."""
    rows = [road([(0, 20 * k), (3000, 20 * k)]) for k in range(150)]
    rows += [road([(x, -10), (x, 3010)]) for x in (700.0, 1500.0, 2300.0)]
    return build_network(roads_frame(rows))


@pytest.mark.parametrize(("name", "tolerance"), [("shipped", 10.0), ("shipped", 250.0), ("shipped", MAX_TOLERANCE_M),
                                                 ("comb", 5.0), ("comb", 250.0), ("comb", MAX_TOLERANCE_M)])
def test_same_nearest_segment_as_sjoin_nearest_on_random_points(name, tolerance):
    network = build_network(shipped_roads()) if name == "shipped" else comb()
    segments = network.segments
    rng = np.random.default_rng(42)
    x0, y0, x1, y1 = segments.total_bounds
    n = 4000
    margin = max(3 * tolerance, 300.0)
    # over the network's bounds and beyond them
    points = gpd.GeoDataFrame({"event_id": [f"P{i}" for i in range(n)]},
                              geometry=shapely.points(rng.uniform(x0 - margin, x1 + margin, n),
                                                      rng.uniform(y0 - margin, y1 + margin, n)), crs="EPSG:2169")
    # half of them near a road, as events are
    near = rng.uniform(size=n) < 0.5
    pick = rng.integers(0, len(segments), n)
    on_road = shapely.line_interpolate_point(segments.geometry.to_numpy()[pick], rng.uniform(0, 1, n), normalized=True)
    jitter = shapely.get_coordinates(on_road) + rng.normal(0, tolerance / 2, (n, 2))
    points.loc[near, "geometry"] = shapely.points(jitter[near])
    snapped = snap_events(points, network, tolerance_m=tolerance).events
    joined = gpd.sjoin_nearest(points, segments[["segment_id", "geometry"]], how="left", distance_col="dist")
    ties = joined.groupby(level=0)["segment_id"].agg(set)
    distance = joined.groupby(level=0)["dist"].first()
    within = distance.to_numpy() <= tolerance
    assert within.sum() > 0.2 * n and (~within).sum() > 0.05 * n  # both cases happen
    assert snapped["snapped"].to_numpy().tolist() == within.tolist()
    got = snapped[within]
    assert all(s in ties[i] for i, s in zip(got.index, got["segment_id"], strict=True))
    np.testing.assert_allclose(got["snap_distance_m"], distance[within], atol=1e-6)
    # the offset is where the point projects onto its segment
    unique = np.array([len(ties[i]) == 1 for i in got.index])
    assert unique.sum() > 0.15 * n
    lines = segments.geometry.to_numpy()[got["segment_id"].to_numpy()[unique]]
    expected = shapely.line_locate_point(lines, got.geometry.to_numpy()[unique])
    np.testing.assert_allclose(got["offset_m"].to_numpy()[unique], expected, atol=1e-6)
    # beyond the tolerance: the distance to the network is sjoin_nearest's
    far = snapped[~within]
    np.testing.assert_allclose(distance_to_network(far.geometry.to_numpy(), network), distance[~within], atol=1e-6)


def test_snapped_position_lies_on_the_segment(network):
    rng = np.random.default_rng(3)
    points = list(zip(rng.uniform(-200, 3200, 300), rng.uniform(-200, 2700, 300), strict=True))
    out = snap_events(events_frame(points), network, tolerance_m=300).events
    on = out[out["snapped"]]
    assert len(on) > 50
    lines = network.segments.geometry.to_numpy()[on["segment_id"].to_numpy()]
    position = shapely.line_interpolate_point(lines, on["offset_m"].to_numpy())
    np.testing.assert_allclose(shapely.distance(position, on.geometry.to_numpy()), on["snap_distance_m"], atol=1e-6)
    np.testing.assert_allclose(shapely.distance(on.geometry.to_numpy(), lines), on["snap_distance_m"], atol=1e-6)
    assert (on["offset_m"] >= 0).all() and (on["offset_m"] <= network.segments["length_m"].to_numpy()[
        on["segment_id"].to_numpy()] + 1e-9).all()


def test_events_in_a_foreign_crs_are_converted(network):
    events = events_frame([k[0] for k in KNOWN], persons=range(len(KNOWN)))
    expected = snap_events(events, network).events
    got = snap_events(events.to_crs("EPSG:4326"), network).events
    assert got["segment_id"].tolist() == expected["segment_id"].tolist()
    np.testing.assert_allclose(got["snap_distance_m"], expected["snap_distance_m"], atol=1e-3)
    np.testing.assert_allclose(got["offset_m"], expected["offset_m"], atol=1e-3)
    assert got["persons"].tolist() == list(range(len(KNOWN)))


def test_events_without_a_crs_are_refused(network):
    events = events_frame([(300, 40)]).set_crs(None, allow_override=True)
    with pytest.raises(CrsError, match="EPSG:2169"):
        snap_events(events, network)
