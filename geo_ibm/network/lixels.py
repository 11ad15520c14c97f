"""Hotspots on the road network: lixels, a network kernel density and a network Gi*.

Events on roads make a planar Gi* light up the roads themselves (the roads are where the
events can be). Here the roads are cut into *lixels* (linear pixels, about ``lixel_m`` long)
and the neighbourhood of a lixel is every lixel within ``band_m`` of it *along the roads*:

- network kernel density: ``density_i = sum_j c_j K(d_ij / h) / h`` events per km of road,
  ``c_j`` the events on lixel ``j``, ``d_ij`` the network distance between lixel midpoints,
  ``K`` the quartic kernel and ``h = band_m``. This is the simple lixel-based estimator (Xie &
  Yan, 2008): at a junction of ``k`` roads the kernel's mass is not divided between branches,
  so densities near junctions are higher than Okabe's equal-split estimator would give.
- network Gi*: Getis–Ord Gi* of the lixel counts with binary weights ``d_ij <= band_m`` (the
  lixel itself included), p-values two-sided, confidence bins with Benjamini–Hochberg FDR
  correction as for the grid hotspots (:func:`geo_ibm.hotspots.fdr_bins`).

Network distances are undirected (a kernel spreads both ways along a road) and are found with
:func:`scipy.sparse.csgraph.dijkstra` bounded by ``band_m``. A shortest path of length at most
``band_m`` never leaves the disc of that radius around its start, so the lixels are processed
in square tiles, each on the part of the graph within ``band_m`` of the tile: every Dijkstra
run is over a few thousand nodes, not the whole network.
"""
from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse import csgraph

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.hotspots import fdr_bins, gi_z_from_sums, two_sided_p
from geo_ibm.network.graph import RoadNetwork
from geo_ibm.network.snap import Snapped
from geo_ibm.settings import WORKING_CRS

DEFAULT_LIXEL_M = 100.0
DEFAULT_BAND_M = 1000.0
MIN_LIXEL_M = 10.0
MAX_LIXELS = 250_000
"""Most lixels one analysis may cut (about 25,000 km of road at 100 m)."""
MAX_PAIRS = 25_000_000
"""Most lixel pairs within the band one analysis may hold (about 600 MB of pair arrays)."""
_CHUNK_BYTES = 64 * 2**20
"""Largest distance block one Dijkstra call may allocate."""


def check_lixels(network: RoadNetwork, *, lixel_m: object, band_m: object) -> tuple[float, float, int, int]:
    """Check lixel length and band against the network before any work.

    Returns
    -------
    (lixel_m, band_m, n_lixels, pair_estimate)

    Raises
    ------
    ValidationError
        Naming ``lixel`` or ``band`` when a value is not a number, out of range, or when the
        lixel count or the expected pairs within the band exceed :data:`MAX_LIXELS` /
        :data:`MAX_PAIRS`.
    """
    def number(value: object, name: str) -> float:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValidationError(f"{name} must be a distance in metres, not {value!r}",
                                  [Problem("not a number", column=name, value=value)]) from None

    lixel = number(lixel_m, "lixel")
    band = number(band_m, "band")
    if not (math.isfinite(lixel) and lixel >= MIN_LIXEL_M):
        raise ValidationError(f"lixel must be at least {MIN_LIXEL_M:g} m, not {lixel_m!r}",
                              [Problem("out of range", column="lixel", value=lixel_m)])
    if not (math.isfinite(band) and band >= lixel):
        raise ValidationError(f"band must be at least the lixel length ({lixel:g} m), not {band_m!r}",
                              [Problem("out of range", column="band", value=band_m)])
    n_lixels = int(np.ceil(network.segments["length_m"].to_numpy() / lixel).sum())
    if n_lixels > MAX_LIXELS:
        raise ValidationError(
            f"lixel: {lixel:g} m cuts the {network.total_length_m / 1000:,.0f} km network into {n_lixels:,} lixels, "
            f"more than the limit of {MAX_LIXELS:,}; use a lixel of at least "
            f"{math.ceil(network.total_length_m / MAX_LIXELS):,} m",
            [Problem("too many lixels", column="lixel", value=lixel_m)])
    # along a road a lixel has about 2 band / lixel neighbours; junctions add branches
    estimate_f = n_lixels * (2.0 * band / lixel + 1.0) * 1.5  # a float: a huge band is inf, not an overflow
    if not estimate_f <= MAX_PAIRS:
        raise ValidationError(
            f"band: {band:g} m with {lixel:g} m lixels makes about {estimate_f:,.0f} lixel pairs, more than the limit of "
            f"{MAX_PAIRS:,}; use a smaller band or longer lixels",
            [Problem("too many pairs", column="band", value=band_m)])
    return lixel, band, n_lixels, int(estimate_f)


def lixelize(network: RoadNetwork, *, lixel_m: float = DEFAULT_LIXEL_M) -> gpd.GeoDataFrame:
    """Cut every segment into ``ceil(length / lixel_m)`` equal lixels.

    Returns
    -------
    GeoDataFrame
        ``lixel_id`` (position), ``segment_id``, ``ref``, ``start_m``, ``end_m`` (along the
        segment from its ``u`` end), ``geometry`` (LineString).
    """
    seg = network.segments
    length = seg["length_m"].to_numpy()
    k = np.maximum(np.ceil(length / lixel_m).astype(np.int64), 1)
    seg_of = np.repeat(np.arange(len(seg)), k)
    first = np.r_[0, np.cumsum(k)[:-1]]
    i = np.arange(int(k.sum())) - np.repeat(first, k)
    step = length[seg_of] / k[seg_of]
    start = i * step
    end = np.where(i == k[seg_of] - 1, length[seg_of], (i + 1) * step)
    geometry = _substrings(seg.geometry.to_numpy(), seg_of, start, end)
    return gpd.GeoDataFrame({
        "lixel_id": np.arange(seg_of.size, dtype=np.int64), "segment_id": seg_of.astype(np.int64),
        "ref": seg["ref"].to_numpy()[seg_of], "start_m": start, "end_m": end,
    }, geometry=geometry, crs=WORKING_CRS)


def _substrings(lines: np.ndarray, which: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``shapely.ops.substring`` of ``lines[which]`` between ``start`` and ``end``, vectorised."""
    coords, line_of = shapely.get_coordinates(lines, return_index=True)
    same = np.r_[False, line_of[1:] == line_of[:-1]]
    steps = np.where(same, np.hypot(*(coords - np.roll(coords, 1, axis=0)).T), 0.0)
    cum = np.cumsum(steps)
    first = np.flatnonzero(~same)
    measure = cum - np.repeat(cum[first], np.diff(np.r_[first, coords.shape[0]]))
    # a global, increasing measure: line index * big + measure along the line
    big = float(measure.max() + 1.0) if measure.size else 1.0
    key = line_of * big + measure
    cut_key_a = which * big + start
    cut_key_b = which * big + end
    ax = np.interp(cut_key_a, key, coords[:, 0])
    ay = np.interp(cut_key_a, key, coords[:, 1])
    bx = np.interp(cut_key_b, key, coords[:, 0])
    by = np.interp(cut_key_b, key, coords[:, 1])
    # interior vertices of each piece: vertices of its line strictly between start and end
    n_piece = which.size
    piece_first = np.searchsorted(key, cut_key_a, side="right")
    piece_last = np.searchsorted(key, cut_key_b, side="left")
    n_inner = np.maximum(piece_last - piece_first, 0)
    total = 2 * n_piece + int(n_inner.sum())
    out_xy = np.empty((total, 2))
    out_label = np.empty(total, dtype=np.int64)
    size = n_inner + 2
    offset = np.r_[0, np.cumsum(size)[:-1]]
    out_xy[offset] = np.column_stack([ax, ay])
    out_xy[offset + size - 1] = np.column_stack([bx, by])
    out_label[:] = np.repeat(np.arange(n_piece), size)
    inner_pos = np.repeat(offset + 1, n_inner) + (np.arange(int(n_inner.sum())) - np.repeat(
        np.r_[0, np.cumsum(n_inner)[:-1]], n_inner))
    inner_src = np.repeat(piece_first, n_inner) + (np.arange(int(n_inner.sum())) - np.repeat(
        np.r_[0, np.cumsum(n_inner)[:-1]], n_inner))
    out_xy[inner_pos] = coords[inner_src]
    return np.asarray(shapely.linestrings(out_xy, indices=out_label))


def _lixel_graph(network: RoadNetwork, lixels: gpd.GeoDataFrame) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Undirected graph of network nodes (``0..n-1``) and lixel midpoints (``n..n+m-1``), and node coordinates."""
    seg = network.segments
    n = network.n_nodes
    m = len(lixels)
    seg_of = lixels["segment_id"].to_numpy()
    half = (lixels["end_m"].to_numpy() - lixels["start_m"].to_numpy()) / 2.0
    mid = n + np.arange(m)
    is_first = np.r_[True, seg_of[1:] != seg_of[:-1]]
    is_last = np.r_[seg_of[1:] != seg_of[:-1], True]
    rows = [seg["u"].to_numpy()[seg_of[is_first]], mid[is_last], mid[:-1][~is_last[:-1]]]
    cols = [mid[is_first], seg["v"].to_numpy()[seg_of[is_last]], mid[1:][~is_last[:-1]]]
    cost = [half[is_first], half[is_last], half[:-1][~is_last[:-1]] + half[1:][~is_last[:-1]]]
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    w = np.maximum(np.concatenate(cost), 1e-9)
    # parallel pieces (two segments between the same nodes, each one lixel) keep the shorter
    order = np.lexsort((np.r_[w, w], np.r_[c, r], np.r_[r, c]))
    rr, cc, ww = np.r_[r, c][order], np.r_[c, r][order], np.r_[w, w][order]
    keep = np.r_[True, (rr[1:] != rr[:-1]) | (cc[1:] != cc[:-1])]
    graph = sparse.csr_matrix((ww[keep], (rr[keep], cc[keep])), shape=(n + m, n + m))
    mid_xy = shapely.get_coordinates(shapely.line_interpolate_point(lixels.geometry.to_numpy(), 0.5, normalized=True))
    return graph, np.vstack([network.nodes, mid_xy])


def lixel_pairs(network: RoadNetwork, lixels: gpd.GeoDataFrame, *, band_m: float,
                max_pairs: int = MAX_PAIRS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of lixels whose midpoints are within ``band_m`` along the roads (each lixel with itself too).

    Returns
    -------
    (i, j, distance)
        Lixel ids and network distances (metres), both orders of each pair.

    Raises
    ------
    ValidationError
        Naming ``band`` when more than ``max_pairs`` pairs are found.
    """
    graph, xy = _lixel_graph(network, lixels)
    n = network.n_nodes
    m = len(lixels)
    if m == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    tile = max(2.0 * band_m, 2000.0)
    origin = xy.min(axis=0)
    txy = np.floor((xy - origin) / tile).astype(np.int64)
    n_ty = int(txy[:, 1].max()) + 3
    tile_key = (txy[:, 0] + 1) * n_ty + (txy[:, 1] + 1)
    by_tile = np.argsort(tile_key, kind="stable")
    sorted_keys = tile_key[by_tile]
    mid = xy[n:]
    tile_of = tile_key[n:]
    order = np.argsort(tile_of, kind="stable")
    cuts = np.flatnonzero(np.r_[True, tile_of[order][1:] != tile_of[order][:-1], True])
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    out_d: list[np.ndarray] = []
    found = 0
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        sources = order[a:b]
        lo = mid[sources].min(axis=0) - band_m
        hi = mid[sources].max(axis=0) + band_m
        # the 3 x 3 tiles around the sources' tile hold everything within band_m of them
        centre = int(tile_of[sources[0]])
        near = [by_tile[np.searchsorted(sorted_keys, key, "left"):np.searchsorted(sorted_keys, key, "right")]
                for dx in (-1, 0, 1) for key in (centre + dx * n_ty - 1, centre + dx * n_ty, centre + dx * n_ty + 1)]
        candidates = np.sort(np.concatenate(near))
        inside = candidates[np.all((xy[candidates] >= lo) & (xy[candidates] <= hi), axis=1)]
        sub = graph[inside][:, inside]
        local = np.searchsorted(inside, n + sources)
        is_lixel = inside >= n
        chunk = max(1, int(_CHUNK_BYTES // (8 * inside.size)))
        for s in range(0, sources.size, chunk):
            part = local[s:s + chunk]
            dist = csgraph.dijkstra(sub, directed=False, indices=part, limit=band_m)
            dist = dist[:, is_lixel]
            hit_r, hit_c = np.nonzero(dist <= band_m)
            found += hit_r.size
            if found > max_pairs:
                raise ValidationError(
                    f"band: more than {max_pairs:,} lixel pairs lie within {band_m:g} m of each other on this network; "
                    "use a smaller band or longer lixels",
                    [Problem("too many pairs", column="band", value=band_m)])
            out_i.append(sources[s:s + chunk][hit_r])
            out_j.append(inside[is_lixel][hit_c] - n)
            out_d.append(dist[hit_r, hit_c])
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


def lixel_counts(network: RoadNetwork, lixels: gpd.GeoDataFrame, snapped: Snapped) -> np.ndarray:
    """Events per lixel (events beyond the snapping tolerance are not on any)."""
    events = snapped.events
    on = events["snapped"].to_numpy()
    seg = events["segment_id"].to_numpy()[on]
    offset = events["offset_m"].to_numpy()[on]
    seg_of = lixels["segment_id"].to_numpy()
    first = np.searchsorted(seg_of, np.arange(len(network.segments)))
    k = np.bincount(seg_of, minlength=len(network.segments))
    length = network.segments["length_m"].to_numpy()
    i = np.minimum(np.floor(offset / (length[seg] / k[seg])).astype(np.int64), k[seg] - 1)
    return np.bincount(first[seg] + np.maximum(i, 0), minlength=len(lixels)).astype(np.int64)


def quartic(u: np.ndarray) -> np.ndarray:
    """The quartic (biweight) kernel ``15/16 (1 - u^2)^2`` on ``|u| < 1``, integrating to 1 on the line."""
    u = np.asarray(u, dtype=float)
    return np.where(np.abs(u) < 1.0, 15.0 / 16.0 * (1.0 - u * u) ** 2, 0.0)


def network_hotspots(network: RoadNetwork, snapped: Snapped, *, lixel_m: float = DEFAULT_LIXEL_M,
                     band_m: float = DEFAULT_BAND_M, fdr: bool = True) -> gpd.GeoDataFrame:
    """Network kernel density and network Gi* hot spots of the snapped events.

    Parameters
    ----------
    network
        The road graph.
    snapped
        Events on the network (:func:`geo_ibm.network.snap.snap_events`).
    lixel_m
        Lixel length (metres, at least :data:`MIN_LIXEL_M`).
    band_m
        Kernel bandwidth and Gi* neighbourhood radius along the roads (metres, at least the
        lixel length).
    fdr
        Benjamini–Hochberg correction of the Gi* bins.

    Returns
    -------
    GeoDataFrame
        ``lixel_id``, ``segment_id``, ``ref``, ``start_m``, ``end_m``, ``events``, ``density``
        (events per km of road, network kernel), ``gi_z``, ``gi_p``, ``gi_bin`` (-3..3),
        ``geometry`` (LineString).

    Raises
    ------
    ValidationError
        From :func:`check_lixels` before any work, naming ``lixel`` or ``band``.
    """
    lixel, band, _, _ = check_lixels(network, lixel_m=lixel_m, band_m=band_m)
    lixels = lixelize(network, lixel_m=lixel)
    counts = lixel_counts(network, lixels, snapped)
    i, j, d = lixel_pairs(network, lixels, band_m=band)
    m = len(lixels)
    y = counts.astype(float)
    density = np.bincount(i, weights=y[j] * quartic(d / band), minlength=m) / band * 1000.0
    lag = np.bincount(i, weights=y[j], minlength=m)
    weight_sum = np.bincount(i, minlength=m).astype(float)
    z = gi_z_from_sums(y, lag, weight_sum, weight_sum) if m > 1 else np.zeros(m)
    p = two_sided_p(z)
    out = pd.DataFrame(lixels.drop(columns="geometry")).assign(events=counts, density=density, gi_z=z, gi_p=p,
                                                               gi_bin=fdr_bins(z, p, fdr=fdr))
    return gpd.GeoDataFrame(out, geometry=lixels.geometry.to_numpy(), crs=WORKING_CRS)
