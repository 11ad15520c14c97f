"""Shortest-path trees and what is read from them (geo_ibm.network.paths), against plain walks and networkx."""
from __future__ import annotations

from collections import defaultdict

import networkx as nx
import numpy as np
import pytest
from networkfixtures import crossings_frame, events_frame, node_at, road, roads_frame

from geo_ibm.network.attribution import attribute_entries
from geo_ibm.network.graph import RoadNetwork, attach_crossings, build_network
from geo_ibm.network.paths import nearest_roots, push_to_roots, reach_points, segment_ends, tree_edges, trees
from geo_ibm.network.snap import snap_events


def grid_network(seed: int, size: int = 7) -> RoadNetwork:
    """A jittered ``size`` x ``size`` grid of roads 500 m apart, a fifth of them one-way (either way)."""
    rng = np.random.default_rng(seed)
    xy = {(i, j): (i * 500.0 + rng.uniform(-120, 120), j * 500.0 + rng.uniform(-120, 120))
          for i in range(size) for j in range(size)}
    rows = []
    for (i, j), a in xy.items():
        for b_key in ((i + 1, j), (i, j + 1)):
            if b_key in xy:
                oneway = int(rng.choice([0, 0, 0, 0, 1, -1]))
                b = xy[b_key]
                bend = ((a[0] + b[0]) / 2 + rng.uniform(-60, 60), (a[1] + b[1]) / 2 + rng.uniform(-60, 60))
                rows.append(road([a, bend, b], oneway=oneway))
    return build_network(roads_frame(rows))


@pytest.fixture(scope="module", params=[3, 11])
def grid(request):
    network = grid_network(request.param)
    rng = np.random.default_rng(request.param)
    roots = np.sort(rng.choice(network.n_nodes, 7, replace=False))
    return network, roots


def tree_graph(tree, k: int) -> nx.DiGraph:
    """Tree ``k`` as a networkx DiGraph, parent -> child."""
    graph = nx.DiGraph()
    graph.add_node(int(tree.roots[k]))
    for node, parent in enumerate(tree.parent[k]):
        if parent >= 0:
            graph.add_edge(int(parent), node)
    return graph


@pytest.mark.parametrize("reverse", [False, True])
def test_each_subtree_is_the_run_of_its_descendants(grid, reverse):
    network, roots = grid
    tree = trees(network, roots, reverse=reverse)
    edges = tree_edges(network, tree)
    n = network.n_nodes
    seg = network.segments
    n_reached = 0
    for k in range(roots.size):
        graph = tree_graph(tree, k)
        n_reached += graph.number_of_nodes()
        for node in graph.nodes:
            start = edges.position[k * n + node]
            end = edges.subtree_end[start]
            run = set(range(start, end))
            assert run == {int(edges.position[k * n + d]) for d in nx.descendants(graph, node) | {node}}
            parent = tree.parent[k, node]
            if parent < 0:
                assert edges.segment_direction[start] == 2 * len(seg)
                continue
            # the segment of the tree edge, and whether travel follows its geometry
            s, along = divmod(int(edges.segment_direction[start]), 2)
            a, b = (node, parent) if reverse else (parent, node)
            assert {int(seg["u"].iloc[s]), int(seg["v"].iloc[s])} == {int(a), int(b)}
            assert bool(along) == (int(seg["u"].iloc[s]) == a)
            assert along or seg["oneway"].iloc[s] == 0
    unreached = tree.parent.ravel() < 0
    unreached[roots + np.arange(roots.size) * n] = False
    assert (edges.position[unreached] == -1).all()
    assert edges.subtree_end.size == n_reached + 1  # and the node above the roots


@pytest.mark.parametrize("reverse", [False, True])
def test_pushing_weights_to_the_roots_equals_walking_each_path(grid, reverse):
    network, roots = grid
    tree = trees(network, roots, reverse=reverse)
    n, n_seg = network.n_nodes, len(network.segments)
    rng = np.random.default_rng(5)
    k = rng.integers(0, roots.size, 400)
    node = rng.integers(0, n, 400)
    reached = np.isfinite(tree.distance[k, node])
    k, node = k[reached], node[reached]
    weights = np.column_stack([np.ones(k.size), rng.integers(1, 9, k.size)])
    flow = push_to_roots(network, tree, k * n + node, weights)
    assert flow.shape == (2 * n_seg, 2)
    # the shortest segment between two nodes in the direction of travel, and whether it runs along it
    step: dict[tuple[int, int], tuple[float, int]] = {}
    seg = network.segments
    for s, (u, v, oneway, length) in enumerate(zip(seg["u"], seg["v"], seg["oneway"], seg["length_m"], strict=True)):
        for a, b, key in ((u, v, 2 * s + 1), (v, u, 2 * s)):
            if (a, b) == (v, u) and oneway:
                continue
            if (a, b) not in step or length < step[(a, b)][0]:
                step[(int(a), int(b))] = (float(length), key)
    expected: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(2))
    for tree_k, start, w in zip(k, node, weights, strict=True):
        at = int(start)
        while tree.parent[tree_k, at] >= 0:
            up = int(tree.parent[tree_k, at])
            expected[step[(at, up) if reverse else (up, at)][1]] += w
            at = up
    want = np.zeros((2 * n_seg, 2))
    for key, w in expected.items():
        want[key] = w
    np.testing.assert_array_equal(flow, want)


@pytest.mark.parametrize("reverse", [False, True])
def test_the_two_nearest_roots_of_points_equal_an_exhaustive_search(grid, reverse):
    """Two roots per segment end answer for any number of candidates: against every candidate's cost."""
    network, roots = grid
    tree = trees(network, roots, reverse=reverse)
    seg = network.segments
    rng = np.random.default_rng(9)
    m = 3000
    segment = rng.integers(0, len(seg), m)
    offset = rng.uniform(0, 1, m) * seg["length_m"].to_numpy()[segment]
    candidates = np.array([0, 2, 3, 5, 6])
    reach = reach_points(network, tree, candidates, segment, offset)
    u, v = seg["u"].to_numpy()[segment], seg["v"].to_numpy()[segment]
    two_way = seg["oneway"].to_numpy()[segment] == 0
    rest = seg["length_m"].to_numpy()[segment] - offset
    via_u = tree.distance[candidates][:, u] + offset
    via_v = tree.distance[candidates][:, v] + rest
    if reverse:
        via_u = np.where(two_way, via_u, np.inf)
    else:
        via_v = np.where(two_way, via_v, np.inf)
    cost = np.minimum(via_u, via_v)
    order = np.argsort(cost, axis=0, kind="stable")
    col = np.arange(m)
    best, next_best = cost[order[0], col], cost[order[1], col]
    assert np.isfinite(best).mean() > 0.5 and np.isfinite(next_best).mean() > 0.5
    np.testing.assert_array_equal(reach.first_distance, best)
    np.testing.assert_array_equal(reach.second_distance, next_best)
    np.testing.assert_array_equal(reach.first, np.where(np.isfinite(best), candidates[order[0]], -1))
    np.testing.assert_array_equal(reach.second, np.where(np.isfinite(next_best), candidates[order[1]], -1))
    finite = np.isfinite(best)
    np.testing.assert_array_equal(reach.through_u[finite],
                                  (via_u[order[0], col] <= via_v[order[0], col])[finite])
    only = reach_points(network, tree, candidates, segment, offset, second=False)
    np.testing.assert_array_equal(only.first, reach.first)
    assert (only.second == -1).all() and np.isinf(only.second_distance).all()


def test_one_way_ends_cannot_be_passed():
    """r0 (0 -> 1000) is one-way: from a root its v end cannot be entered backwards, towards one its u end."""
    network = build_network(roads_frame([road([(0, 0), (1000, 0)], oneway=1), road([(1000, 0), (2000, 0)])]))
    tree = trees(network, np.array([0, 1, 2]))
    back = trees(network, np.array([0, 1, 2]), reverse=True)
    r0 = 0
    out = segment_ends(network, tree, np.array([0, 1, 2]))
    assert np.isinf(out.cost_v[:, r0]).all() and (out.root_v[:, r0] == -1).all()
    assert np.isfinite(out.cost_u[0, r0])
    into = segment_ends(network, back, np.array([0, 1, 2]))
    assert np.isinf(into.cost_u[:, r0]).all() and (into.root_u[:, r0] == -1).all()


def test_equally_near_roots_go_to_the_one_listed_first():
    network = build_network(roads_frame([road([(0, 0), (1000, 0)]), road([(1000, 0), (2000, 0)])]))
    west, middle, east = (node_at(network, x, 0) for x in (0, 1000, 2000))
    tree = trees(network, np.array([east, west, east]))  # the east end twice
    near = nearest_roots(network, tree, np.array([0, 1, 2]))
    assert near.root[:, middle].tolist() == [0, 1]  # all three 1000 m away: the first two listed
    assert near.root[:, east].tolist() == [0, 2] and near.distance[:, east].tolist() == [0.0, 0.0]
    # the middle node as a point on either segment: the same order
    segment = np.array([0, 1])
    offset = np.array([1000.0, 0.0])
    reach = reach_points(network, tree, np.array([0, 1, 2]), segment, offset)
    assert reach.first.tolist() == [0, 0] and reach.second.tolist() == [1, 1]


def test_two_crossings_at_one_node_the_first_listed_is_attributed():
    network = build_network(roads_frame([road([(0, 0), (1000, 0)]), road([(1000, 0), (3000, 0)])]))
    crossings, _ = attach_crossings(network, crossings_frame([
        ("BE-2", "motorway", "BE", (0, 0)), ("BE-1", "bridge", "BE", (0, 10)), ("BE-3", "motorway", "BE", (3000, 0)),
    ]))
    events = events_frame([(400, 0), (2900, 0)], entry_country=["BE", "BE"], persons=[1, 1])
    out = attribute_entries(network, snap_events(events, network), crossings)
    assert out["crossing_id"].tolist() == ["BE-2", "BE-3"]
    assert out["second_crossing_id"].tolist() == ["BE-1", "BE-2"]
    assert out["confidence"].iloc[0] == 0.0 and out["margin_m"].iloc[0] == 0.0
