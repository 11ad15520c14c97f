"""Lixels, network kernel density and network Gi* (geo_ibm.network.lixels) against direct 1-D sums and esda."""
from __future__ import annotations

import esda
import geopandas as gpd
import libpysal
import numpy as np
import pytest
import shapely
from networkfixtures import ORIGIN, events_frame, road, roads_frame
from scipy import stats
from shapely.ops import substring

from geo_ibm.errors import ValidationError
from geo_ibm.network.graph import build_network
from geo_ibm.network.lixels import check_lixels, lixelize, network_hotspots
from geo_ibm.network.roads import shipped_roads
from geo_ibm.network.snap import snap_events

# --------------------------------------------------------------------------- lixels


@pytest.fixture(scope="module")
def bent():
    return build_network(roads_frame([
        road([(0, 0), (130, 0), (130, 275)]),                 # 405 m, bent
        road([(130, 275), (130, 1000)]),                      # 725 m
        road([(500, 0), (600, 0), (600, 100)], oneway=-1),    # 200 m, cut on its vertex; reversed
    ]))


@pytest.mark.parametrize(("lixel", "counts"), [(100.0, [5, 8, 2]), (50.0, [9, 15, 4]), (1000.0, [1, 1, 1])])
def test_lixel_counts_and_limits(bent, lixel, counts):
    lixels = lixelize(bent, lixel_m=lixel)
    per_segment = lixels.groupby("segment_id").size()
    assert per_segment.tolist() == counts
    assert lixels["lixel_id"].tolist() == list(range(sum(counts)))
    for sid, k in zip(per_segment.index, counts, strict=True):
        these = lixels[lixels["segment_id"] == sid]
        length = bent.segments["length_m"].iloc[sid]
        np.testing.assert_allclose(these["start_m"], np.arange(k) * length / k, atol=1e-9)
        np.testing.assert_allclose(these["end_m"], np.arange(1, k + 1) * length / k, atol=1e-9)
    assert check_lixels(bent, lixel_m=lixel, band_m=lixel)[2] == sum(counts)


@pytest.mark.parametrize("lixel", [100.0, 50.0, 37.0])
def test_lixel_geometry_equals_shapely_substring(bent, lixel):
    lixels = lixelize(bent, lixel_m=lixel)
    segments = bent.segments.geometry
    for row in lixels.itertuples():
        expected = substring(segments.iloc[row.segment_id], row.start_m, row.end_m)
        assert shapely.equals_exact(row.geometry, expected, tolerance=1e-6), (row.lixel_id, row.geometry, expected)
    np.testing.assert_allclose(lixels.geometry.length, lixels["end_m"] - lixels["start_m"], atol=1e-9)
    # the reversed one-way road is cut from its u end, its original end
    first = lixels[lixels["segment_id"] == 2].geometry.iloc[0]
    assert shapely.get_coordinates(first)[0].tolist() == [ORIGIN[0] + 600, ORIGIN[1] + 100]


# --------------------------------------------------------------------------- a straight road

LENGTH, LIXEL, BAND = 10_000.0, 100.0, 950.0  # no two midpoints exactly a band apart
POSITIONS = [120.0, 130.0, 180.0, 3010.0, 3020.0, 3050.0, 3099.0, 3101.0, 3140.0, 3160.0, 3190.0, 3210.0, 3260.0,
             3290.0, 3310.0, 3333.0, 3390.0, 3410.0, 3470.0, 3480.0, 3555.0, 3620.0, 5010.0, 7777.0, 7790.0, 9990.0]


def straight(cuts=()):
    xs = [0.0, *cuts, LENGTH]
    return build_network(roads_frame([road([(a, 0), (b, 0)]) for a, b in zip(xs[:-1], xs[1:])]))


def straight_events():
    return events_frame([(x, 15.0) for x in POSITIONS])


def quartic_1d(u):
    return np.where(np.abs(u) < 1, 15 / 16 * (1 - u**2) ** 2, 0.0)


def lixel_values():
    """Counts per 100 m lixel and the lixel midpoints, by hand."""
    m = int(LENGTH / LIXEL)
    counts = np.zeros(m)
    for x in POSITIONS:
        counts[int(x // LIXEL)] += 1
    return counts, (np.arange(m) + 0.5) * LIXEL


def bh(p):
    order = np.argsort(p)
    m = p.size
    adjusted = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        running = min(running, p[order[rank - 1]] * m / rank)
        adjusted[order[rank - 1]] = running
    return adjusted


def bins(z, p):
    out = np.zeros(z.size, dtype=int)
    for level, value in ((0.10, 1), (0.05, 2), (0.01, 3)):
        out[p <= level] = value
    return np.sign(z).astype(int) * out


@pytest.fixture(scope="module", params=[(), (3000.0, 3100.0, 7000.0)], ids=["one road", "four roads"])
def road_hotspots(request):
    network = straight(request.param)
    return network_hotspots(network, snap_events(straight_events(), network), lixel_m=LIXEL, band_m=BAND)


def along_road(frame):
    """The rows in order along the road, west to east."""
    return frame.iloc[np.argsort(frame.geometry.bounds["minx"].to_numpy())]


def test_events_are_counted_on_their_lixel(road_hotspots):
    counts, _ = lixel_values()
    out = along_road(road_hotspots)
    np.testing.assert_allclose(out.geometry.bounds["minx"] - ORIGIN[0], np.arange(100) * LIXEL, atol=1e-6)
    assert out["events"].tolist() == counts.astype(int).tolist()
    assert int(out["events"].sum()) == len(POSITIONS)


def test_network_kde_equals_the_1d_quartic_kernel_sum(road_hotspots):
    counts, mid = lixel_values()
    expected = np.array([np.sum(counts * quartic_1d((m - mid) / BAND)) / BAND * 1000.0 for m in mid])
    np.testing.assert_allclose(along_road(road_hotspots)["density"], expected, rtol=1e-9, atol=1e-12)


def test_network_gi_star_equals_esda_with_a_distance_band(road_hotspots):
    counts, mid = lixel_values()
    weights = libpysal.weights.DistanceBand(np.column_stack([mid, np.zeros_like(mid)]), threshold=BAND, binary=True,
                                            silence_warnings=True)
    ref = esda.G_Local(counts, weights, star=True, transform="B", permutations=0)
    got = along_road(road_hotspots)
    np.testing.assert_allclose(got["gi_z"], ref.Zs, atol=1e-9)
    # the textbook formula too
    n = counts.size
    w = (np.abs(mid[:, None] - mid[None, :]) <= BAND).astype(float)
    mean, s = counts.mean(), np.sqrt((counts**2).mean() - counts.mean() ** 2)
    wi = w.sum(axis=1)
    z = (w @ counts - mean * wi) / (s * np.sqrt((n * (w**2).sum(axis=1) - wi**2) / (n - 1)))
    np.testing.assert_allclose(got["gi_z"], z, atol=1e-9)
    p = 2 * stats.norm.sf(np.abs(z))
    np.testing.assert_allclose(got["gi_p"], p, atol=1e-12)
    assert got["gi_bin"].tolist() == bins(z, bh(p)).tolist()
    assert (got["gi_bin"] == 3).any()  # the run of events near 3 km


def test_without_fdr_the_bins_use_the_raw_p_values():
    network = straight()
    out = along_road(network_hotspots(network, snap_events(straight_events(), network), lixel_m=LIXEL, band_m=BAND,
                                      fdr=False))
    assert out["gi_bin"].tolist() == bins(out["gi_z"].to_numpy(), out["gi_p"].to_numpy()).tolist()


def test_unsnapped_events_are_on_no_lixel():
    network = straight()
    events = events_frame([(500, 10), (500, 4000)])
    out = network_hotspots(network, snap_events(events, network), lixel_m=LIXEL, band_m=BAND)
    assert int(out["events"].sum()) == 1
    assert out.columns.tolist() == ["lixel_id", "segment_id", "ref", "start_m", "end_m", "events", "density", "gi_z",
                                    "gi_p", "gi_bin", "geometry"]


def test_network_distance_is_along_the_roads_not_across():
    # two parallel roads 200 m apart joined only at their west end: events on one do not raise the other
    network = build_network(roads_frame([road([(0, 0), (3000, 0)]), road([(0, 0), (0, 200)]),
                                         road([(0, 200), (3000, 200)])]))
    events = events_frame([(2800 + k, 5) for k in range(10)])
    out = network_hotspots(network, snap_events(events, network), lixel_m=100, band_m=500)
    far_end = out[(out["segment_id"] == 2) & (out["start_m"] >= 2500)]
    assert len(far_end) == 5 and (far_end["density"] == 0).all()
    near = out[(out["segment_id"] == 0) & (out["start_m"] >= 2500)]
    assert (near["density"] > 0).all()


# --------------------------------------------------------------------------- the shipped network

N_UNIFORM = 3000
STRETCH_SEGMENT, STRETCH = 7, (4000.0, 4500.0)  # an A3 motorway segment of 8.96 km


def uniform_on_network(network, n, rng):
    seg = network.segments
    pick = rng.choice(len(seg), size=n, p=seg["length_m"] / seg["length_m"].sum())
    where = rng.uniform(0, 1, n) * seg["length_m"].to_numpy()[pick]
    return shapely.line_interpolate_point(seg.geometry.to_numpy()[pick], where)


@pytest.fixture(scope="module")
def shipped():
    return build_network(shipped_roads())


def test_a_planted_cluster_on_a_motorway_stretch_is_found(shipped):
    seg = shipped.segments.iloc[STRETCH_SEGMENT]
    assert seg["ref"] == "A3" and seg["highway"] == "motorway"
    rng = np.random.default_rng(5)
    background = uniform_on_network(shipped, N_UNIFORM, rng)
    planted = shapely.line_interpolate_point(seg.geometry, rng.uniform(*STRETCH, 60))
    events = gpd.GeoDataFrame(geometry=np.concatenate([background, planted]), crs="EPSG:2169")
    out = network_hotspots(shipped, snap_events(events, shipped), lixel_m=100, band_m=1000)
    on_stretch = out[(out["segment_id"] == STRETCH_SEGMENT) & (out["end_m"] > STRETCH[0]) & (out["start_m"] < STRETCH[1])]
    k = int(np.ceil(seg["length_m"] / 100))
    step = seg["length_m"] / k  # 90 lixels of 99.6 m: the stretch touches lixels 40..45
    assert len(on_stretch) == int(STRETCH[1] // step) - int(STRETCH[0] // step) + 1 == 6
    assert (on_stretch["gi_bin"] == 3).all()
    hot = out[out["gi_bin"] == 3]
    # every 99 % hot spot is within the band of the stretch, along that segment
    assert (hot["segment_id"] == STRETCH_SEGMENT).all()
    assert (hot["end_m"] > STRETCH[0] - 1000).all() and (hot["start_m"] < STRETCH[1] + 1000).all()
    assert out["density"].idxmax() in on_stretch.index


def test_the_uniform_on_network_null_finds_almost_nothing(shipped):
    rng = np.random.default_rng(6)
    events = gpd.GeoDataFrame(geometry=uniform_on_network(shipped, N_UNIFORM, rng), crs="EPSG:2169")
    out = network_hotspots(shipped, snap_events(events, shipped), lixel_m=100, band_m=1000)
    assert len(out) > 3000
    assert (out["gi_bin"] == 3).sum() == 0
    assert (out["gi_bin"] != 0).mean() < 0.01


# --------------------------------------------------------------------------- hostile parameters


@pytest.mark.parametrize(("lixel", "band", "column"), [
    (1, 1000, "lixel"), (0, 1000, "lixel"), (-100, 1000, "lixel"), (float("nan"), 1000, "lixel"),
    (float("inf"), 1000, "lixel"), ("abc", 1000, "lixel"), (None, 1000, "lixel"),
    (100, 50, "band"), (100, float("nan"), "band"), (100, float("inf"), "band"), (100, -1, "band"),
    (100, 10**7, "band"), (10, 10**6, "band"), (100, 1e308, "band"),
])
def test_check_lixels_refuses_hostile_values_naming_lixel_or_band(shipped, lixel, band, column):
    with pytest.raises(ValidationError, match=column) as info:
        check_lixels(shipped, lixel_m=lixel, band_m=band)
    assert [p.column for p in info.value.problems] == [column]
    with pytest.raises(ValidationError, match=column):
        network_hotspots(shipped, snap_events(gpd.GeoDataFrame(geometry=[], crs="EPSG:2169"), shipped), lixel_m=lixel,
                         band_m=band)


def test_band_given_as_text_is_refused_naming_band(shipped):
    with pytest.raises(ValidationError) as info:
        check_lixels(shipped, lixel_m=100, band_m="wide")
    assert [p.column for p in info.value.problems] == ["band"]


def test_too_many_lixels_are_refused_naming_lixel():
    # 30,000 km of road at 100 m: more lixels than any analysis may cut
    network = build_network(roads_frame([road([(0, 0), (0, 30_000_000)])]))
    with pytest.raises(ValidationError, match="lixel") as info:
        check_lixels(network, lixel_m=100, band_m=100)
    assert [p.column for p in info.value.problems] == ["lixel"]


def test_reasonable_values_are_accepted(shipped):
    lixel, band, n, _ = check_lixels(shipped, lixel_m="100", band_m=1000)
    assert (lixel, band) == (100.0, 1000.0)
    assert n == int(np.ceil(shipped.segments["length_m"] / 100).sum())


# --------------------------------------------------------------------------- junctions, one-way roads, tiles


def midpoint_distances(network, lixels, band):
    """Network distances between lixel midpoints within ``band``, by networkx on a graph of the
    roads' nodes and the midpoints (consecutive along each segment)."""
    import networkx as nx

    graph = nx.Graph()
    seg = network.segments
    for sid, these in lixels.groupby("segment_id"):
        start, end = these["start_m"].to_numpy(), these["end_m"].to_numpy()
        mids = (start + end) / 2
        names = [("lixel", int(i)) for i in these["lixel_id"]]
        chain = [("node", int(seg["u"].iloc[sid])), *names, ("node", int(seg["v"].iloc[sid]))]
        at_m = [0.0, *mids, float(seg["length_m"].iloc[sid])]
        for a, b, da, db in zip(chain[:-1], chain[1:], at_m[:-1], at_m[1:]):
            w = db - da
            if not graph.has_edge(a, b) or graph.edges[a, b]["w"] > w:
                graph.add_edge(a, b, w=w)
    out = {}
    for i in lixels["lixel_id"]:
        reach = nx.single_source_dijkstra_path_length(graph, ("lixel", int(i)), cutoff=band, weight="w")
        out[int(i)] = {j: d for (kind, j), d in reach.items() if kind == "lixel"}
    return out


def reference_hotspots(counts, distances, band):
    """Density and Gi* z from pairwise distances, by the formulas of the module docstring."""
    m = counts.size
    density = np.array([sum(counts[j] * quartic_1d(d / band) for j, d in distances[i].items()) for i in range(m)])
    density = density / band * 1000.0
    w = np.zeros((m, m))
    for i in range(m):
        for j in distances[i]:
            w[i, j] = 1.0
    mean, s = counts.mean(), np.sqrt((counts**2).mean() - counts.mean() ** 2)
    wi = w.sum(axis=1)
    z = (w @ counts - mean * wi) / (s * np.sqrt((m * (w**2).sum(axis=1) - wi**2) / (m - 1)))
    return density, z


def test_kde_and_gi_star_at_a_junction_follow_every_branch():
    # a T: west and east arms and a northern arm meeting at (1000, 0); the kernel is not split there
    network = build_network(roads_frame([road([(0, 0), (1000, 0)]), road([(1000, 0), (2000, 0)]),
                                         road([(1000, 0), (1000, 1000)])]))
    events = events_frame([(960, 5), (940, 5), (1030, 5), (1005, 80), (1003, 420), (200, 5), (1810, 5)])
    band = 450.0  # midpoints are multiples of 100 m apart: none exactly a band apart
    out = network_hotspots(network, snap_events(events, network), lixel_m=100, band_m=band)
    lixels = lixelize(network, lixel_m=100)
    distances = midpoint_distances(network, lixels, band)
    # across the junction: the last lixel of the west arm is 100 m from the first of each other arm
    west_last = int(lixels[(lixels["segment_id"] == 0)]["lixel_id"].iloc[-1])
    assert sorted(d for d in distances[west_last].values())[:4] == [0.0, 100.0, 100.0, 100.0]
    density, z = reference_hotspots(out["events"].to_numpy().astype(float), distances, band)
    assert out["events"].sum() == 7
    np.testing.assert_allclose(out["density"], density, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out["gi_z"], z, atol=1e-9)


def test_one_way_roads_spread_the_kernel_both_ways():
    two_way = straight()
    one_way = build_network(roads_frame([road([(0, 0), (LENGTH, 0)], oneway=-1)]))
    a = network_hotspots(two_way, snap_events(straight_events(), two_way), lixel_m=LIXEL, band_m=BAND)
    b = network_hotspots(one_way, snap_events(straight_events(), one_way), lixel_m=LIXEL, band_m=BAND)
    np.testing.assert_allclose(along_road(b)["density"], along_road(a)["density"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(along_road(b)["gi_z"], along_road(a)["gi_z"], atol=1e-9)


def test_shipped_network_hotspots_equal_networkx_distances_across_tiles(shipped):
    rng = np.random.default_rng(11)
    seg = shipped.segments.iloc[STRETCH_SEGMENT]
    points = np.concatenate([uniform_on_network(shipped, 1500, rng),
                             shapely.line_interpolate_point(seg.geometry, rng.uniform(*STRETCH, 40))])
    events = gpd.GeoDataFrame(geometry=points, crs="EPSG:2169")
    band = 1500.0  # tiles of 3 km: many lixel pairs lie in different tiles
    out = network_hotspots(shipped, snap_events(events, shipped), lixel_m=250, band_m=band)
    lixels = lixelize(shipped, lixel_m=250)
    distances = midpoint_distances(shipped, lixels, band)
    density, z = reference_hotspots(out["events"].to_numpy().astype(float), distances, band)
    np.testing.assert_allclose(out["density"], density, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(out["gi_z"], z, atol=1e-7)
