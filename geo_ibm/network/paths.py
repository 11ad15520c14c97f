"""Shortest-path trees from (or to) the crossing points, reused by entry attribution and flows.

The trees depend on the network and the crossings only, not on the events, so they are built
once per network (one :func:`scipy.sparse.csgraph.dijkstra` call for all crossings) and kept
in the network's cache, together with what the per-event steps read from them: the two
nearest roots of a set of roots at every node (:func:`nearest_roots`) and the trees in
depth-first order (:func:`tree_edges`). Per event, finding the nearest crossing is then a few
gathers whatever the number of crossings, and pushing the events up the trees a few passes
over the trees' nodes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
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


@dataclass(frozen=True)
class NearestRoots:
    """The nearest and second-nearest of some of a :class:`Trees`' roots, at every node.

    Attributes
    ----------
    root
        ``(2, n)`` position in ``Trees.roots`` of the nearest and the second-nearest root;
        ``-1`` where fewer roots are reachable. Of equally near roots, the one listed first.
    distance
        ``(2, n)`` their distances (metres), ``inf`` where the root is ``-1``.
    """

    root: np.ndarray
    distance: np.ndarray


def nearest_roots(network: RoadNetwork, tree: Trees, candidates: np.ndarray) -> NearestRoots:
    """The :class:`NearestRoots` among ``candidates`` (ascending positions in ``tree.roots``); cached."""
    candidates = np.asarray(candidates, dtype=np.int64)
    key = ("nearest_roots", tree.reverse, tree.roots.tobytes(), candidates.tobytes())
    if key not in network.cache:
        n = network.n_nodes
        distance = np.full((2, n), np.inf)
        root = np.full((2, n), -1, dtype=np.int64)
        if candidates.size:
            rows = tree.distance[candidates]
            # stable: ties keep the order of the candidates
            order = np.argsort(rows, axis=0, kind="stable")[:2]
            kept = order.shape[0]
            distance[:kept] = np.take_along_axis(rows, order, axis=0)
            root[:kept] = candidates[order]
        root[~np.isfinite(distance)] = -1
        network.cache[key] = NearestRoots(root, distance)
    result: NearestRoots = network.cache[key]
    return result


@dataclass(frozen=True)
class SegmentEnds:
    """The two nearest roots of a set at each segment's ends, by the way a path may use each end.

    ``cost_u[r]`` is the distance between the ``r``-th nearest root and the ``u`` end (``inf``
    where a path cannot pass that end: the ``v`` end of a one-way segment for paths from the
    roots, its ``u`` end for paths to them), ``root_u[r]`` that root's position in
    ``Trees.roots`` (``-1`` where none is reachable); likewise for the ``v`` end.
    """

    cost_u: np.ndarray
    root_u: np.ndarray
    cost_v: np.ndarray
    root_v: np.ndarray


def segment_ends(network: RoadNetwork, tree: Trees, candidates: np.ndarray) -> SegmentEnds:
    """The :class:`SegmentEnds` of ``tree``'s roots ``candidates`` (ascending positions); cached."""
    candidates = np.asarray(candidates, dtype=np.int64)
    key = ("segment_ends", tree.reverse, tree.roots.tobytes(), candidates.tobytes())
    if key not in network.cache:
        near = nearest_roots(network, tree, candidates)
        seg = network.segments
        u, v = seg["u"].to_numpy(), seg["v"].to_numpy()
        one_way = seg["oneway"].to_numpy() != 0
        cost_u, cost_v = near.distance[:, u], near.distance[:, v]
        root_u, root_v = near.root[:, u], near.root[:, v]
        closed_cost, closed_root = (cost_u, root_u) if tree.reverse else (cost_v, root_v)
        closed_cost[:, one_way] = np.inf
        closed_root[:, one_way] = -1
        network.cache[key] = SegmentEnds(cost_u, root_u, cost_v, root_v)
    ends: SegmentEnds = network.cache[key]
    return ends


@dataclass(frozen=True)
class SegmentReach:
    """The nearest roots of points on segments (:func:`reach_points`).

    Attributes
    ----------
    first, second
        Position in ``Trees.roots`` of the nearest and of the second-nearest other root of each
        point; ``-1`` where none is reachable (and for ``second`` unless asked for).
    first_distance, second_distance
        Their network distances (metres), ``inf`` where the root is ``-1``.
    through_u
        Whether the path between the point and its nearest root runs through the segment's
        ``u`` end (else through ``v``).
    """

    first: np.ndarray
    first_distance: np.ndarray
    through_u: np.ndarray
    second: np.ndarray
    second_distance: np.ndarray


def _nearer(cost_a: np.ndarray, root_a: np.ndarray, cost_b: np.ndarray, root_b: np.ndarray) -> np.ndarray:
    """Whether ``b`` beats ``a``: cheaper, or as cheap with a root listed earlier."""
    return (cost_b < cost_a) | ((cost_b == cost_a) & (root_b < root_a))


def reach_points(network: RoadNetwork, tree: Trees, candidates: np.ndarray, segment_id: np.ndarray,
                 offset: np.ndarray, *, second: bool = True) -> SegmentReach:
    """The nearest (and second-nearest) of ``candidates`` (roots of ``tree``) to points on segments.

    From a root to a point (``tree.reverse`` false): through the segment's ``u`` end and
    forward along it (``root -> u``, then ``offset``), or through ``v`` and backward when the
    segment is two-way. From a point to a root (``tree.reverse``): leaving forward through
    ``v`` or, two-way, backward through ``u``. The nearest root of a point is the nearer of the
    nearest roots of its segment's two ends, each plus the way along the segment; the second is
    the nearer of the best other roots of the two ends, so two roots per node answer for any
    number of candidates. Of equally near roots, the one listed first is taken.

    Parameters
    ----------
    candidates
        Ascending positions in ``tree.roots`` among which to choose.
    segment_id, offset
        Each point's segment and its distance along it from the ``u`` end (metres).
    second
        Also find the second-nearest root.
    """
    ends = segment_ends(network, tree, candidates)
    to_v = network.segments["length_m"].to_numpy()[segment_id] - offset
    cost_u, root_u = ends.cost_u[0][segment_id] + offset, ends.root_u[0][segment_id]
    cost_v, root_v = ends.cost_v[0][segment_id] + to_v, ends.root_v[0][segment_id]
    take_v = _nearer(cost_u, root_u, cost_v, root_v)
    first = np.where(take_v, root_v, root_u)
    d1 = np.where(take_v, cost_v, cost_u)
    through_u = ~take_v
    if not second:
        return SegmentReach(first, d1, through_u, np.full(first.size, -1, dtype=np.int64), np.full(first.size, np.inf))
    # the best root other than the first at each end, then the nearer of the two
    other_u = root_u == first
    cost_u = np.where(other_u, ends.cost_u[1][segment_id] + offset, cost_u)
    root_u = np.where(other_u, ends.root_u[1][segment_id], root_u)
    other_v = root_v == first
    cost_v = np.where(other_v, ends.cost_v[1][segment_id] + to_v, cost_v)
    root_v = np.where(other_v, ends.root_v[1][segment_id], root_v)
    take_v = _nearer(cost_u, root_u, cost_v, root_v)
    return SegmentReach(first, d1, through_u, np.where(take_v, root_v, root_u), np.where(take_v, cost_v, cost_u))


def edge_segments(network: RoadNetwork) -> tuple[pd.Index, np.ndarray]:
    """The keys ``a * n + b`` of the graph's edges (a hashed index) and the segment a shortest path uses for each.

    The cheapest of parallel segments by length, as :meth:`RoadNetwork.matrix` keeps it.
    """
    key = "edge_segments"
    if key not in network.cache:
        cost, rows, cols, seg = network.edges("length")
        pair = rows * network.n_nodes + cols
        order = np.lexsort((cost, pair))
        pair, seg = pair[order], seg[order]
        first = np.r_[True, pair[1:] != pair[:-1]] if pair.size else np.zeros(0, dtype=bool)
        network.cache[key] = (pd.Index(pair[first]), seg[first])
    lookup: tuple[pd.Index, np.ndarray] = network.cache[key]
    return lookup


@dataclass(frozen=True)
class TreeEdges:
    """The trees of a :class:`Trees` as one forest in depth-first order, for pushing weights to the roots.

    Tree ``k``'s node ``i`` is flat node ``k * n + i``; all trees hang from one extra node at
    position 0 of the order. A node's subtree is the run of the order from its position up to
    ``subtree_end``, so the weight below a tree edge is a difference of two prefix sums.

    Attributes
    ----------
    position
        ``(k * n,)`` where each flat node stands in the order, ``-1`` where unreached.
    subtree_end
        One past the last position of each position's subtree.
    segment_direction
        For each position, ``2 * segment + along`` of the tree edge between the node and its
        parent (``along``: travel outwards from the root, or towards it for reverse trees,
        follows the segment's geometry); ``2 * n_segments`` at the roots and the extra node.
    """

    position: np.ndarray
    subtree_end: np.ndarray
    segment_direction: np.ndarray


def _preorder(parent: np.ndarray, top: int, *, reverse_children: bool = False) -> np.ndarray:
    """Depth-first order from ``top`` of the forest ``parent`` (``-1``: no parent), children by
    ascending index, or by descending index with ``reverse_children``."""
    size = parent.size
    # the nodes relabelled (reversed for reverse_children), one row per child holding its parent;
    # the transpose, converted in C, lists each node's children by ascending label
    label_parent = parent[::-1] if reverse_children else parent
    has = label_parent >= 0
    indices = label_parent[has]
    if reverse_children:
        indices = size - 1 - indices
    indptr = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(has, out=indptr[1:])
    upward = sparse.csr_matrix((np.ones(indices.size), indices, indptr), shape=(size, size))
    children = upward.T.tocsr()
    start = size - 1 - top if reverse_children else top
    order = csgraph.depth_first_order(children, start, directed=True, return_predecessors=False)
    return np.asarray(size - 1 - order if reverse_children else order, dtype=np.int64)


def tree_edges(network: RoadNetwork, tree: Trees) -> TreeEdges:
    """The :class:`TreeEdges` of ``tree``, cached on the network."""
    key = ("tree_edges", tree.reverse, tree.roots.tobytes())
    if key not in network.cache:
        n = network.n_nodes
        k = tree.roots.size
        top = k * n  # the extra node above the roots
        parent = tree.parent.reshape(-1)
        has = parent >= 0
        flat_parent = np.full(top + 1, -1, dtype=np.int64)
        flat_parent[:top] = np.where(has, parent + np.repeat(np.arange(k, dtype=np.int64) * n, n), -1)
        flat_parent[tree.roots + np.arange(k, dtype=np.int64) * n] = top
        # subtree sizes from two depth-first orders that visit children in opposite orders: before
        # a node come its ancestors (depth) in both, the nodes of the subtrees left of it in one
        # (pre), of those right of it in the other (mirror), so size = reached - pre - mirror + depth
        order = _preorder(flat_parent, top)
        reached = order.size
        pre = np.full(top + 1, -1, dtype=np.int64)
        pre[order] = np.arange(reached)
        mirror = np.empty(top + 1, dtype=np.int64)
        mirror[_preorder(flat_parent, top, reverse_children=True)] = np.arange(reached)
        # depth (hops up to the extra node) by pointer doubling on positions, the extra node its own parent
        up = np.zeros(reached, dtype=np.int64)
        up[1:] = pre[flat_parent[order[1:]]]
        parent_position = up.copy()
        depth = np.ones(reached, dtype=np.int64)
        depth[0] = 0
        while up.any():
            depth += depth[up]
            up = up[up]
        size = reached - np.arange(reached) - mirror[order] + depth
        # the sizes must add up the trees (they would not if the two orders were not mirror images)
        below = np.bincount(parent_position[1:], weights=size[1:], minlength=reached)
        if not np.array_equal(below + 1, size):
            raise RuntimeError("shortest-path trees: depth-first orders are not mirror images; subtree sizes wrong")
        nodes = order[1:]
        inner = flat_parent[nodes] != top
        child = nodes[inner]
        node_child, node_parent = child % n, parent[child]
        a, b = (node_child, node_parent) if tree.reverse else (node_parent, node_child)
        pairs, pair_segment = edge_segments(network)
        segment = pair_segment[pairs.get_indexer(a * n + b)]
        along = network.segments["u"].to_numpy()[segment] == a
        direction = np.full(reached, 2 * len(network.segments), dtype=np.int64)
        direction[1:][inner] = 2 * segment + along
        network.cache[key] = TreeEdges(pre[:top], np.arange(reached) + size, direction)
    edges: TreeEdges = network.cache[key]
    return edges


def push_to_roots(network: RoadNetwork, tree: Trees, flat_nodes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Flows per segment and direction when each weight travels its tree path (joining at ``flat_nodes``).

    The flow on a tree edge is the total weight of the subtree below it: with the nodes in
    depth-first order, a subtree is a contiguous run, so each edge's flow is a difference of
    prefix sums — all trees and edges at once, no loop over levels or nodes.

    Parameters
    ----------
    flat_nodes
        ``k * n + node``: the tree and node where each weight joins (a node the tree reaches).
    weights
        ``(m, c)`` weights (e.g. events and persons).

    Returns
    -------
    ndarray
        ``(2 * segments, c)``: row ``2 * s + 1`` the flow along segment ``s``'s geometry, row
        ``2 * s`` against it.
    """
    edges = tree_edges(network, tree)
    n_keys = 2 * len(network.segments)
    position = edges.position[flat_nodes]
    columns = []
    for j in range(weights.shape[1]):
        prefix = np.zeros(edges.subtree_end.size + 1)
        np.cumsum(np.bincount(position, weights=weights[:, j], minlength=edges.subtree_end.size), out=prefix[1:])
        below = prefix[edges.subtree_end]
        below -= prefix[:-1]
        columns.append(np.bincount(edges.segment_direction, weights=below, minlength=n_keys + 1)[:n_keys])
    return np.column_stack(columns) if columns else np.zeros((n_keys, 0))


def per_segment_direction(segment: np.ndarray, along: np.ndarray, weights: np.ndarray, n_segments: int
                          ) -> np.ndarray:
    """``(2 * n_segments, c)`` sums of ``weights`` rows by segment and direction (as :func:`push_to_roots`)."""
    keys = 2 * np.asarray(segment, dtype=np.int64) + along
    return np.column_stack([np.bincount(keys, weights=weights[:, j], minlength=2 * n_segments).astype(float)
                            for j in range(weights.shape[1])]) if weights.shape[1] else np.zeros((2 * n_segments, 0))
