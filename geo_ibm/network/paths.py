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


def subtree_sums(parent: np.ndarray, distance: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum of ``weights`` over each node's subtree in one tree (the node itself included).

    The flow on the tree edge ``node — parent[node]`` is the subtree sum of ``node``: every
    weight on a node travels along the path to the root. Nodes are processed level by level
    (hop depth, deepest first), one vectorised step per level.

    Parameters
    ----------
    parent
        ``(n,)`` parent per node, negative at the root and unreachable nodes.
    distance
        ``(n,)`` distance from the root (``inf`` unreachable); unused apart from reachability.
    weights
        ``(n,)`` or ``(n, c)`` weights per node.
    """
    n = parent.size
    acc = np.array(weights, dtype=float, copy=True)
    has_parent = parent >= 0
    child = np.flatnonzero(has_parent)
    if child.size == 0:
        return acc
    tree = sparse.csr_matrix((np.ones(child.size), (parent[child], child)), shape=(n, n))
    root = int(np.flatnonzero(np.isfinite(distance) & ~has_parent)[0]) if np.isfinite(distance).any() else 0
    depth = csgraph.dijkstra(tree, directed=True, indices=root, unweighted=True)
    reach = np.isfinite(depth) & has_parent
    nodes = np.flatnonzero(reach)
    level = depth[nodes].astype(np.int64)
    order = np.argsort(-level, kind="stable")
    nodes, level = nodes[order], level[order]
    cuts = np.flatnonzero(np.r_[True, level[1:] != level[:-1], True])
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        these = nodes[a:b]
        np.add.at(acc, parent[these], acc[these])
    return acc


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
