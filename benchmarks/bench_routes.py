"""Route analysis speed: snapping, attribution + flows and network hotspots on a ~20,000-segment network.

Prints, in one run and side by side:

- snapping 100k events: ours (:func:`geo_ibm.network.snap.snap_events`) against
  ``geopandas.sjoin_nearest`` and ``osmnx.distance.nearest_edges`` on the same segments;
- entry attribution + flows for the same events after snapping, with the network's cache warm (as
  the web app keeps its network) and on a first call (which builds the crossings' shortest-path
  trees and the tables read from them, once per network), against a naive route: each event's
  path walked back through the predecessor tree (timed on a sample, scaled up);
- network hotspots (lixels, network KDE and Gi*): time and peak traced memory, against an untiled
  Dijkstra over the whole graph (timed on a sample of sources, scaled up).

The network is synthetic (no map data is downloaded): junctions scattered over Luxembourg's
outline (four fifths in 150 towns), joined by a Delaunay triangulation with its long edges removed, each road drawn with a
few bends, so it has the size and vertex count of a Luxembourg OpenStreetMap extract
(motorway..tertiary: about 20,000 segments).

Run: ``python benchmarks/bench_routes.py [--segments 20000] [--events 100000]``.
"""
from __future__ import annotations

import argparse
import math
import time
import tracemalloc
from collections.abc import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import Delaunay

from geo_ibm import layers
from geo_ibm.network.attribution import attribute_entries
from geo_ibm.network.flows import route_flows
from geo_ibm.network.graph import RoadNetwork, attach_crossings, build_network
from geo_ibm.network.lixels import _lixel_graph, lixelize, network_hotspots
from geo_ibm.network.paths import trees
from geo_ibm.network.snap import snap_events
from geo_ibm.settings import WORKING_CRS

CLASSES = ("motorway", "primary", "secondary", "tertiary", "tertiary")


def synthetic_roads(n_segments: int, *, seed: int) -> gpd.GeoDataFrame:
    """About ``n_segments`` roads over Luxembourg, each with 2-5 bends."""
    rng = np.random.default_rng(seed)
    outline = layers.luxembourg_outline().geometry.union_all()
    minx, miny, maxx, maxy = outline.bounds
    # roads: a minimum spanning tree of the junctions' Delaunay triangulation (so that the
    # network is connected), plus its shortest other edges up to n_segments
    n_points = int(n_segments / 1.35)
    towns = rng.uniform([minx, miny], [maxx, maxy], (150, 2))
    pts = np.empty((0, 2))
    while len(pts) < n_points:
        # four fifths of the junctions in towns, the rest in the countryside
        cand = rng.uniform([minx, miny], [maxx, maxy], (n_points * 2, 2))
        in_town = rng.random(len(cand)) < 0.8
        cand[in_town] = towns[rng.integers(0, len(towns), int(in_town.sum()))] + rng.normal(0, 500, (int(in_town.sum()), 2))
        inside = shapely.contains_xy(outline, cand[:, 0], cand[:, 1])
        pts = np.vstack([pts, cand[inside]])
    pts = pts[:n_points]
    tri = Delaunay(pts)
    edges = np.vstack([tri.simplices[:, [0, 1]], tri.simplices[:, [1, 2]], tri.simplices[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    length = np.hypot(*(pts[edges[:, 0]] - pts[edges[:, 1]]).T)
    tree = csgraph.minimum_spanning_tree(sparse.csr_matrix((length, (edges[:, 0], edges[:, 1])),
                                                           shape=(n_points, n_points))).tocoo()
    in_tree = set(zip(tree.row.tolist(), tree.col.tolist(), strict=True))
    is_tree = np.array([(int(a), int(b)) in in_tree or (int(b), int(a)) in in_tree for a, b in edges])
    rest = np.flatnonzero(~is_tree)
    extra = rest[np.argsort(length[rest])][: max(n_segments - int(is_tree.sum()), 0)]
    edges = np.vstack([edges[is_tree], edges[extra]])
    a, b = pts[edges[:, 0]], pts[edges[:, 1]]
    bends = rng.integers(2, 6, len(edges))
    lines = []
    for i in range(len(edges)):
        t = np.linspace(0, 1, bends[i] + 2)[:, None]
        path = a[i] + t * (b[i] - a[i])
        normal = np.array([-(b[i] - a[i])[1], (b[i] - a[i])[0]]) / max(np.hypot(*(b[i] - a[i])), 1.0)
        path[1:-1] += normal * rng.normal(0, 40, (bends[i], 1))
        lines.append(path)
    geoms = shapely.linestrings(np.vstack(lines), indices=np.repeat(np.arange(len(lines)), bends + 2))
    frame = pd.DataFrame({
        "road_id": [f"r{i}" for i in range(len(edges))], "ref": [f"N{i % 40}" for i in range(len(edges))],
        "name": "", "highway": rng.choice(CLASSES, len(edges)), "oneway": np.int8(0), "maxspeed": np.nan,
    })
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=WORKING_CRS)


def synthetic_events(network: RoadNetwork, n: int, *, seed: int) -> gpd.GeoDataFrame:
    """Events along the roads (30 m off them), a third of them in five clusters, with entry and destination."""
    rng = np.random.default_rng(seed)
    seg = network.segments
    length = seg["length_m"].to_numpy()
    k = rng.choice(len(seg), n, p=length / length.sum())
    hot = rng.choice(len(seg), 5)
    clustered = rng.random(n) < 1 / 3
    k[clustered] = hot[rng.integers(0, 5, int(clustered.sum()))]
    pts = shapely.line_interpolate_point(seg.geometry.to_numpy()[k], rng.random(n), normalized=True)
    xy = shapely.get_coordinates(pts) + rng.normal(0, 30, (n, 2))
    return gpd.GeoDataFrame({
        "event_id": [f"e{i}" for i in range(n)], "persons": rng.integers(1, 8, n),
        "entry_country": rng.choice(["BE", "FR", "DE", "unknown"], n, p=[0.35, 0.3, 0.3, 0.05]),
        "destination_country": rng.choice(["DE", "NL", "BE", "GB", "FR", "unknown"], n),
    }, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=WORKING_CRS)


CPU: dict[int, float] = {}
"""CPU seconds of the last :func:`timed` call's best run, by the id of its result (the machine is shared:
CPU time varies less than wall time)."""


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeat`` runs and the result; the best run's CPU time goes to :data:`CPU`."""
    best, best_cpu, out = math.inf, math.inf, None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    CPU[id(out)] = best_cpu
    return best, out


def cpu(result: object) -> str:
    return f"(CPU {CPU.get(id(result), math.nan):.3f} s)"


def osmnx_graph(network: RoadNetwork) -> object:
    import osmnx

    nodes = gpd.GeoDataFrame({"x": network.nodes[:, 0], "y": network.nodes[:, 1]},
                             geometry=gpd.points_from_xy(network.nodes[:, 0], network.nodes[:, 1]), crs=WORKING_CRS)
    seg = network.segments
    edges = gpd.GeoDataFrame({"u": seg["u"].to_numpy(), "v": seg["v"].to_numpy(), "key": 0,
                              "length": seg["length_m"].to_numpy()}, geometry=seg.geometry.to_numpy(),
                             crs=WORKING_CRS)
    edges = edges.drop_duplicates(["u", "v"]).set_index(["u", "v", "key"])
    return osmnx.graph_from_gdfs(nodes, edges)


def naive_routes(network: RoadNetwork, snapped: object, attribution: gpd.GeoDataFrame, crossings: object,
                 sample: int) -> float:
    """Seconds per event to walk each attributed event's path back to its crossing, one node at a time."""
    frame = crossings.frame  # type: ignore[attr-defined]
    tree = trees(network, frame["node"].to_numpy())
    index = {cid: i for i, cid in enumerate(frame["crossing_id"])}
    seg = network.segments
    u = seg["u"].to_numpy()
    done = attribution[attribution["crossing_id"].notna()].head(sample)
    counts: dict[tuple[int, int], int] = {}
    events = snapped.events  # type: ignore[attr-defined]
    t = time.perf_counter()
    for label, cid in zip(done.index, done["crossing_id"], strict=True):
        k = index[cid]
        node = int(u[int(events.at[label, "segment_id"])])
        parent = tree.parent[k]
        while parent[node] >= 0:
            edge = (int(parent[node]), node)
            counts[edge] = counts.get(edge, 0) + 1
            node = int(parent[node])
    return (time.perf_counter() - t) / max(len(done), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    roads = synthetic_roads(args.segments, seed=args.seed)
    t_build, network = timed(lambda: build_network(roads))
    assert isinstance(network, RoadNetwork)
    seg = network.segments
    print(f"network: {len(seg):,} segments, {network.n_nodes:,} nodes, {network.total_length_m / 1000:,.0f} km, "
          f"{int(shapely.get_num_coordinates(seg.geometry.to_numpy()).sum()):,} vertices, "
          f"{network.n_components} components; built in {t_build:.2f} s")
    events = synthetic_events(network, args.events, seed=args.seed)
    print(f"events: {len(events):,}\n")

    print("snapping (tolerance 250 m), best of 3")
    fresh = build_network(roads)
    t_first, first = timed(lambda: snap_events(events, fresh))
    t_ours, snapped = timed(lambda: snap_events(events, network), repeat=3)
    segments = seg[["segment_id", "geometry"]]
    t_sjoin, joined = timed(lambda: gpd.sjoin_nearest(events[["geometry"]], segments, max_distance=250.0,
                                                      distance_col="d"), repeat=3)
    import osmnx

    graph = osmnx_graph(network)
    xy = shapely.get_coordinates(events.geometry.to_numpy())
    t_osmnx, nearest = timed(lambda: osmnx.distance.nearest_edges(graph, xy[:, 0], xy[:, 1]), repeat=3)
    assert isinstance(joined, gpd.GeoDataFrame)
    same = joined[~joined.index.duplicated()]
    agree = float((snapped.events.loc[same.index, "segment_id"].to_numpy()  # type: ignore[attr-defined]
                   == same["segment_id"].to_numpy()).mean())
    print(f"  {'ours (index cached)':34s} {t_ours:7.3f} s {cpu(snapped)}")
    print(f"  {'ours (first call, builds index)':34s} {t_first:7.3f} s {cpu(first)}")
    print(f"  {'geopandas.sjoin_nearest':34s} {t_sjoin:7.3f} s {cpu(joined)}   ours is {t_sjoin / t_first:.1f}x "
          f"faster on a first call, {t_sjoin / t_ours:.1f}x with the index cached; same segment for {agree:.2%} "
          "(rest: ties)")
    print(f"  {'osmnx.distance.nearest_edges':34s} {t_osmnx:7.3f} s {cpu(nearest)}   ours is "
          f"{t_osmnx / t_first:.1f}x faster on a first call (no tolerance: every point gets an edge)\n")

    crossing_points = layers.crossing_points()
    crossings, warnings = attach_crossings(network, crossing_points, tolerance_m=5_000.0)
    print(f"attribution + flows ({len(crossings.frame)} crossings attached)")

    def attribution_and_flows(net: RoadNetwork, attached: object) -> object:
        att = attribute_entries(net, snapped, attached)  # type: ignore[arg-type]
        return att, route_flows(net, snapped, att, attached)  # type: ignore[arg-type]

    # the first call on a network builds the crossings' shortest-path trees and the tables read from
    # them (kept in the network's cache, as the web app keeps its network): timed on a network built
    # afresh, whose segments are the same; the Dijkstra runs alone on another one
    fresh_crossings, _ = attach_crossings(fresh, crossing_points, tolerance_m=5_000.0)
    t_cold, cold = timed(lambda: attribution_and_flows(fresh, fresh_crossings))
    t_trees, trees_only = timed(lambda: (trees(network, crossings.frame["node"].to_numpy()),
                                         trees(network, crossings.frame["node"].to_numpy(), reverse=True)))
    t_af, both = timed(lambda: attribution_and_flows(network, crossings), repeat=5)
    att, flows = both  # type: ignore[misc]
    assert isinstance(att, gpd.GeoDataFrame) and isinstance(flows, gpd.GeoDataFrame)
    cold_att, cold_flows = cold  # type: ignore[misc]
    assert cold_att.drop(columns="geometry").equals(att.drop(columns="geometry")) and cold_flows.equals(flows)
    t_att, only_att = timed(lambda: attribute_entries(network, snapped, crossings), repeat=5)  # type: ignore[arg-type]
    per_event = naive_routes(network, snapped, att, crossings, sample=2_000)
    n_attributed = int(att["crossing_id"].notna().sum())
    print(f"  {'ours: attribution + flows':34s} {t_af:7.3f} s {cpu(both)}   (attribution alone {t_att:.3f} s "
          f"{cpu(only_att)}); {n_attributed:,} events attributed, {len(flows):,} flow rows")
    print(f"  {'ours: the same, first call':34s} {t_cold:7.3f} s {cpu(cold)}   (builds the trees and their "
          f"tables, once per network; the Dijkstra trees alone {t_trees:.3f} s {cpu(trees_only)})")
    print(f"  {'naive: walk each path (entry leg)':34s} {per_event * n_attributed:7.3f} s   "
          f"(scaled from 2,000 events) ours is {per_event * n_attributed / t_af:.0f}x faster\n")

    print("network hotspots (100 m lixels, 1,000 m band)")
    tracemalloc.start()
    t_hot, hot = timed(lambda: network_hotspots(network, snapped, lixel_m=100.0, band_m=1000.0))  # type: ignore[arg-type]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(hot, gpd.GeoDataFrame)
    print(f"  {'ours (tiled bounded Dijkstra)':34s} {t_hot:7.3f} s   peak traced memory {peak / 2**20:,.0f} MiB; "
          f"{len(hot):,} lixels, {(hot['gi_bin'] == 3).sum():,} hot at 99 %")
    lixels = lixelize(network, lixel_m=100.0)
    graph_all, _ = _lixel_graph(network, lixels)
    sample = np.arange(network.n_nodes, network.n_nodes + 500)
    t_naive, _ = timed(lambda: csgraph.dijkstra(graph_all, directed=False, indices=sample, limit=1000.0))
    print(f"  {'naive: Dijkstra on the whole graph':34s} {t_naive / 500 * len(lixels):7.3f} s   "
          f"(scaled from 500 of {len(lixels):,} sources) ours is {t_naive / 500 * len(lixels) / t_hot:.1f}x faster")


if __name__ == "__main__":
    main()
