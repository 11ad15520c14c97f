"""Shortest-path trees from (or to) the crossing points, reused by entry attribution and flows.

The trees depend on the network and the crossings only, not on the events, so they are built
once per network (one :func:`scipy.sparse.csgraph.dijkstra` call for all crossings) and kept
in the network's cache.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from geo_ibm.network.graph import RoadNetwork


@dataclass(frozen=True)
class Trees:
    """Shortest-path trees rooted at some nodes.

    Attributes
    ----------
    roots
        Root node of each tree, shape ``(k,)``.
    distance
        ``(k, n)`` network distance (metres) from each root to each node (``reverse=False``) or
        from each node to the root (``reverse=True``); ``inf`` where unreachable.
    parent
        ``(k, n)`` the next node towards the root, ``-9999`` at the root and unreachable nodes.
    reverse
        Whether the trees lead *to* their roots (paths follow the edges towards the root).
    """

    roots: np.ndarray
    distance: np.ndarray
    parent: np.ndarray
    reverse: bool


def trees(network: RoadNetwork, roots: np.ndarray, *, reverse: bool = False) -> Trees:
    """Shortest-path trees (by length) from ``roots``, or to them with ``reverse``; cached on the network."""
    roots = np.asarray(roots, dtype=np.int64)
    key = ("trees", reverse, roots.tobytes())
    if key not in network.cache:
        matrix = network.matrix("length", reverse=reverse)
        if roots.size:
            distance, parent = csgraph.dijkstra(matrix, directed=True, indices=roots, return_predecessors=True)
        else:
            distance = np.zeros((0, network.n_nodes))
            parent = np.zeros((0, network.n_nodes), dtype=np.int32)
        network.cache[key] = Trees(roots, np.atleast_2d(distance), np.atleast_2d(parent).astype(np.int64), reverse)
    result: Trees = network.cache[key]
    return result


def edge_segments(network: RoadNetwork) -> sparse.csr_matrix:
    """``lookup[a, b] - 1``: the segment a shortest path uses from node ``a`` to node ``b``.

    The cheapest of parallel segments by length, as :meth:`RoadNetwork.matrix` keeps it.
    """
    key = "edge_segments"
    if key not in network.cache:
        cost, rows, cols, seg = network.edges("length")
        order = np.lexsort((cost, cols, rows))
        rows, cols, seg = rows[order], cols[order], seg[order]
        first = np.ones(rows.size, dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        n = network.n_nodes
        network.cache[key] = sparse.csr_matrix(((seg[first] + 1).astype(np.float64), (rows[first], cols[first])),
                                               shape=(n, n))
    lookup: sparse.csr_matrix = network.cache[key]
    return lookup


@dataclass(frozen=True)
class TreeEdges:
    """Every tree edge of a :class:`Trees`, with what pushing weights to the roots needs.

    Tree ``k``'s node ``i`` is flat node ``k * n + i``. ``preorder`` lists the flat nodes of
    every tree depth first (a node's subtree is the run of ``size`` nodes starting at its
    position), so the weight below an edge is a difference of two prefix sums. Each edge
    (``child`` -> ``parent``) has the segment it runs on and whether travel (outwards from the
    root, or towards it for reverse trees) follows the segment's geometry.
    """

    child: np.ndarray
    parent: np.ndarray
    preorder: np.ndarray
    child_start: np.ndarray
    child_size: np.ndarray
    segment: np.ndarray
    along: np.ndarray


def tree_edges(network: RoadNetwork, tree: Trees) -> TreeEdges:
    """The :class:`TreeEdges` of ``tree``, cached on the network."""
    key = ("tree_edges", tree.reverse, tree.roots.tobytes())
    if key not in network.cache:
        n = network.n_nodes
        k = tree.roots.size
        parent = tree.parent.reshape(-1)
        has = parent >= 0
        flat_parent = np.where(has, parent + np.repeat(np.arange(k) * n, n), -1)
        child = np.flatnonzero(has)
        # depth-first order of each tree (scipy walks it in C) and the position of each node in it
        runs = []
        for i in range(k):
            lo = i * n
            mine = child[(child >= lo) & (child < lo + n)]
            adjacency = sparse.csr_matrix((np.ones(mine.size), (flat_parent[mine] - lo, mine - lo)), shape=(n, n))
            runs.append(lo + csgraph.depth_first_order(adjacency, int(tree.roots[i]), directed=True,
                                                       return_predecessors=False))
        preorder = np.concatenate(runs) if runs else np.zeros(0, dtype=np.int64)
        position = np.full(k * n, -1, dtype=np.int64)
        position[preorder] = np.arange(preorder.size)
        # subtree sizes, summed up the trees one hop depth at a time (deepest first); once per network
        depth = has.astype(np.int64)
        jump = flat_parent.copy()
        while (jump >= 0).any():  # hop depth by pointer doubling
            live = jump >= 0
            depth = np.where(live, depth + depth[np.where(live, jump, 0)], depth)
            jump = np.where(live, jump[np.where(live, jump, 0)], -1)
        size = np.ones(k * n, dtype=np.int64)
        by_depth = child[np.argsort(-depth[child], kind="stable")]
        level = depth[by_depth]
        cuts = np.flatnonzero(np.r_[True, level[1:] != level[:-1], True]) if by_depth.size else np.zeros(1, np.int64)
        for lo_cut, hi_cut in zip(cuts[:-1], cuts[1:], strict=True):
            these = by_depth[lo_cut:hi_cut]
            np.add.at(size, flat_parent[these], size[these])
        reached = position[child] >= 0
        child = child[reached]
        node_child = child % n
        node_parent = flat_parent[child] % n
        a, b = (node_child, node_parent) if tree.reverse else (node_parent, node_child)
        segment = (np.asarray(edge_segments(network)[a, b]).ravel().astype(np.int64) - 1 if child.size
                   else np.zeros(0, dtype=np.int64))
        along = network.segments["u"].to_numpy()[segment] == a
        network.cache[key] = TreeEdges(child, flat_parent[child], preorder, position[child], size[child], segment,
                                       along)
    edges: TreeEdges = network.cache[key]
    return edges


def push_to_roots(network: RoadNetwork, tree: Trees, flat_nodes: np.ndarray, weights: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Flows per segment when each weight travels its tree path (joining at ``flat_nodes``).

    The flow on a tree edge is the total weight of the subtree below it: with the nodes in
    depth-first order, a subtree is a contiguous run, so each edge's flow is a difference of
    prefix sums — all trees and edges at once, no loop over levels or nodes.

    Parameters
    ----------
    flat_nodes
        ``k * n + node``: the tree and node where each weight joins.
    weights
        ``(m, c)`` weights (e.g. events and persons).

    Returns
    -------
    (forward, backward)
        ``(segments, c)`` flows along and against each segment's geometry.
    """
    edges = tree_edges(network, tree)
    n_seg = len(network.segments)
    c = weights.shape[1]
    total = tree.roots.size * network.n_nodes
    columns = []
    for j in range(c):
        at_node = np.bincount(flat_nodes, weights=weights[:, j], minlength=total)
        prefix = np.r_[0.0, np.cumsum(at_node[edges.preorder])]
        columns.append(prefix[edges.child_start + edges.child_size] - prefix[edges.child_start])
    flow = np.column_stack(columns) if columns else np.zeros((edges.child.size, 0))
    used = flow[:, 0] > 0
    seg, along, flow = edges.segment[used], edges.along[used], flow[used]
    return add_per_segment(seg[along], flow[along], n_seg), add_per_segment(seg[~along], flow[~along], n_seg)


def add_per_segment(segment: np.ndarray, weights: np.ndarray, n_segments: int) -> np.ndarray:
    """``(n_segments, c)`` sums of ``weights`` rows by ``segment`` (one ``bincount`` per column)."""
    segment = np.asarray(segment, dtype=np.int64)
    return np.column_stack([np.bincount(segment, weights=weights[:, j], minlength=n_segments).astype(float)
                            for j in range(weights.shape[1])]) if weights.shape[1] else np.zeros((n_segments, 0))


def reach_costs(network: RoadNetwork, tree_distance: np.ndarray, segment_id: np.ndarray, offset: np.ndarray, *,
                reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Network distance between each tree's root and points on segments, and which end is used.

    From the root to a point (``reverse=False``): through the segment's ``u`` end and forward
    along it (``root -> u``, then ``offset``), or through ``v`` and backward when the segment
    is two-way. To the root (``reverse=True``): leaving forward through ``v`` or, two-way,
    backward through ``u``.

    Returns
    -------
    (cost, through_u)
        ``(k, m)`` distances (``inf`` unreachable) and whether the ``u`` end is used.
    """
    seg = network.segments
    u = seg["u"].to_numpy()[segment_id]
    v = seg["v"].to_numpy()[segment_id]
    length = seg["length_m"].to_numpy()[segment_id]
    two_way = seg["oneway"].to_numpy()[segment_id] == 0
    if not reverse:
        via_u = tree_distance[:, u] + offset
        via_v = np.where(two_way, tree_distance[:, v] + (length - offset), np.inf)
    else:
        via_u = np.where(two_way, tree_distance[:, u] + offset, np.inf)
        via_v = tree_distance[:, v] + (length - offset)
    through_u = via_u <= via_v
    return np.where(through_u, via_u, via_v), through_u
