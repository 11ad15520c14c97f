"""Coverage and cost matrices between demand points and candidate sites (sparse, bounded before work).

A :class:`Coverage` holds, for each demand point, the candidate sites that reach it and the
cost (metres or minutes) of each reach: a CSR matrix of shape ``(n_demand, n_sites)`` whose
stored entries are exactly the covering pairs (a cost of 0 is a stored entry too, so the
pattern, never the values, says what covers). Straight-line coverage is built here with a
k-d tree; any other cost (a road network's travel times) plugs in through
:func:`coverage_from_pairs`, which takes the covering pairs a router found.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.eventframe import as_number

Unit = Literal["m", "min"]

MAX_RADIUS_M = 82_000.0
"""Largest straight-line radius: Luxembourg's north-south extent (about 82 km). A wider radius
covers the whole country from any site and makes no plan."""

MAX_MINUTES = 120.0
"""Largest network travel time: two hours reach every point of the country from anywhere."""

MAX_SITES = 5_000
"""Most candidate sites one plan considers."""

MAX_DEMAND = 250_000
"""Most demand points one plan covers (events are aggregated to cells first, see
:func:`geo_ibm.planning.demand.demand_from_events`)."""

MAX_NONZEROS = 30_000_000
"""Most covering (demand, site) pairs: 16 bytes a pair kept (index and cost), about 500 MB with
the solver's copy."""


@dataclass(frozen=True)
class Coverage:
    """Which candidate sites reach which demand points, and at what cost.

    Attributes
    ----------
    cost
        CSR matrix ``(n_demand, n_sites)``; entry ``(i, j)`` is stored when site ``j`` reaches
        demand ``i`` within ``limit`` and holds the cost in ``unit``.
    limit
        The radius (metres) or travel time (minutes) that defines coverage.
    unit
        ``"m"`` (straight line) or ``"min"`` (network travel time).
    """

    cost: sp.csr_matrix
    limit: float
    unit: Unit = "m"

    @property
    def shape(self) -> tuple[int, int]:
        n, m = self.cost.shape
        return int(n), int(m)

    @property
    def nnz(self) -> int:
        return int(self.cost.indptr[-1])

    def incidence(self) -> sp.csr_matrix:
        """The 0/1 coverage matrix ``a_ij`` (float64, same pattern as :attr:`cost`)."""
        return sp.csr_matrix(
            (np.ones(self.nnz), self.cost.indices.copy(), self.cost.indptr.copy()), shape=self.shape
        )

    def sites_of(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Sites reaching demand ``i`` and their costs."""
        lo, hi = self.cost.indptr[i], self.cost.indptr[i + 1]
        return self.cost.indices[lo:hi], self.cost.data[lo:hi]

    def columns(self, keep: np.ndarray) -> Coverage:
        """The coverage of the sites ``keep`` only (an index array), in that order."""
        return Coverage(self.cost[:, keep].tocsr(), self.limit, self.unit)


def check_radius(radius: object, *, name: str = "radius", maximum: float = MAX_RADIUS_M) -> float:
    """``radius`` as metres in ``(0, maximum]``, or ValidationError naming ``name``."""
    value = as_number(radius)
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(f"{name} must be a positive number of metres, got {radius!r}",
                              [Problem("not a positive length", column=name, value=radius)])
    if value > maximum:
        raise ValidationError(
            f"{name}: {value:g} m is wider than the country (at most {maximum:g} m, Luxembourg's north-south extent)",
            [Problem("radius over the country", column=name, value=radius)],
        )
    return value


def check_minutes(minutes: object, *, name: str = "network_minutes") -> float:
    """``minutes`` in ``(0, MAX_MINUTES]``, or ValidationError naming ``name``."""
    value = as_number(minutes)
    if not math.isfinite(value) or value <= 0 or value > MAX_MINUTES:
        raise ValidationError(f"{name} must be a travel time in minutes in (0, {MAX_MINUTES:g}], got {minutes!r}",
                              [Problem("travel time out of range", column=name, value=minutes)])
    return value


def check_sizes(n_demand: int, n_sites: int) -> None:
    """Refuse more demand points or candidate sites than one plan takes."""
    if n_sites == 0:
        raise ValidationError("candidates: no candidate sites left (all excluded, or an empty file)",
                              [Problem("no candidates", column="candidates")])
    if n_sites > MAX_SITES:
        raise ValidationError(f"candidates: {n_sites:,} candidate sites; a plan takes at most {MAX_SITES:,}",
                              [Problem("too many candidates", column="candidates", value=n_sites)])
    if n_demand == 0:
        raise ValidationError("demand: no demand points (no events in the period, or an empty demand file)",
                              [Problem("no demand", column="demand")])
    if n_demand > MAX_DEMAND:
        raise ValidationError(
            f"demand: {n_demand:,} demand points; a plan takes at most {MAX_DEMAND:,} (aggregate events to a coarser "
            f"cell, or narrow the period or region)", [Problem("too much demand", column="demand", value=n_demand)])


def estimate_pairs(demand_xy: np.ndarray, site_xy: np.ndarray, radius: float, *, sample: int = 5_000,
                   seed: int = 0) -> int:
    """Estimated number of (demand, site) pairs within ``radius``, from a sample of the demand.

    Counting is a dual-tree count (no pair stored), so the estimate costs milliseconds where
    building a matrix over the limit would take gigabytes.
    """
    n = len(demand_xy)
    if n == 0 or len(site_xy) == 0:
        return 0
    rng = np.random.default_rng(seed)
    rows = demand_xy if n <= sample else demand_xy[rng.choice(n, sample, replace=False)]
    counted = cKDTree(rows).count_neighbors(cKDTree(site_xy), float(radius))
    return int(round(float(counted) * n / len(rows)))


def coverage_by_radius(demand_xy: np.ndarray, site_xy: np.ndarray, *, radius: float,
                       max_nonzeros: int = MAX_NONZEROS) -> Coverage:
    """Straight-line coverage: site ``j`` covers demand ``i`` when they are at most ``radius`` metres apart.

    Parameters
    ----------
    demand_xy, site_xy
        ``(n, 2)`` and ``(m, 2)`` coordinates in EPSG:2169.
    radius
        Metres, in ``(0, MAX_RADIUS_M]``.
    max_nonzeros
        Most covering pairs; estimated from a sample before the matrix is built.

    Raises
    ------
    ValidationError
        Naming ``radius`` (bad, or too many pairs for the limit), ``candidates`` or ``demand``.
    """
    radius = check_radius(radius)
    demand_xy = np.asarray(demand_xy, dtype=float).reshape(-1, 2)
    site_xy = np.asarray(site_xy, dtype=float).reshape(-1, 2)
    check_sizes(len(demand_xy), len(site_xy))
    estimate = estimate_pairs(demand_xy, site_xy, radius)
    if estimate > max_nonzeros:
        raise ValidationError(
            f"radius: {radius:g} m makes about {estimate:,} covering (demand, site) pairs; at most {max_nonzeros:,} "
            f"(use a smaller radius, fewer candidates or a coarser demand cell)",
            [Problem("too many covering pairs", column="radius", value=radius)],
        )
    tree_d, tree_s = cKDTree(demand_xy), cKDTree(site_xy)
    pairs = tree_d.sparse_distance_matrix(tree_s, radius, output_type="ndarray")
    if len(pairs) > max_nonzeros:  # the estimate was low: refuse all the same
        raise ValidationError(f"radius: {radius:g} m makes {len(pairs):,} covering pairs; at most {max_nonzeros:,}",
                              [Problem("too many covering pairs", column="radius", value=radius)])
    # sparse_distance_matrix leaves out pairs at distance 0 only in its sparse outputs; the
    # record array keeps them, so a site standing on a demand point covers it.
    return coverage_from_pairs(pairs["i"], pairs["j"], pairs["v"], shape=(len(demand_xy), len(site_xy)),
                               limit=radius, unit="m")


def coverage_from_pairs(rows: np.ndarray, cols: np.ndarray, cost: np.ndarray, *, shape: tuple[int, int],
                        limit: float, unit: Unit = "m") -> Coverage:
    """A :class:`Coverage` from the covering pairs another cost source found (a road network router).

    Pairs with a cost over ``limit`` are dropped; a pair given twice keeps its lower cost.

    Parameters
    ----------
    rows, cols
        Demand and site index of each pair.
    cost
        Cost of each pair in ``unit`` (finite, ``>= 0``).
    shape
        ``(n_demand, n_sites)``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    cost = np.asarray(cost, dtype=float)
    n, m = shape
    if not (len(rows) == len(cols) == len(cost)):
        raise ValidationError("coverage pairs: rows, cols and cost must have the same length")
    if len(rows) and (rows.min() < 0 or rows.max() >= n or cols.min() < 0 or cols.max() >= m):
        raise ValidationError(f"coverage pairs: an index lies outside the shape {shape}")
    if len(cost) and not (np.isfinite(cost).all() and (cost >= 0).all()):
        raise ValidationError("coverage pairs: every cost must be finite and >= 0")
    keep = cost <= limit
    rows, cols, cost = rows[keep], cols[keep], cost[keep]
    # sort by row, then column, then cost; the first of each (row, col) is its lowest cost
    order = np.lexsort((cost, cols, rows))
    rows, cols, cost = rows[order], cols[order], cost[order]
    if len(rows):
        first = np.ones(len(rows), dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        rows, cols, cost = rows[first], cols[first], cost[first]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(indptr, rows + 1, 1)
    np.cumsum(indptr, out=indptr)
    matrix = sp.csr_matrix((cost, cols.astype(np.int32), indptr), shape=(n, m))
    return Coverage(matrix, float(limit), unit)


MAX_DENSE_PAIRS = 8_000_000
"""Most (demand, site) distances of a dense cost matrix (p-median assigns every demand point to
some site, so it needs them all): 64 MB of float64."""


def distance_matrix(demand_xy: np.ndarray, site_xy: np.ndarray, *, max_pairs: int = MAX_DENSE_PAIRS) -> np.ndarray:
    """Dense straight-line distances ``(n_demand, n_sites)`` in metres, bounded before work.

    Raises
    ------
    ValidationError
        Naming ``demand`` when ``n_demand x n_sites`` exceeds ``max_pairs``.
    """
    demand_xy = np.asarray(demand_xy, dtype=float).reshape(-1, 2)
    site_xy = np.asarray(site_xy, dtype=float).reshape(-1, 2)
    check_sizes(len(demand_xy), len(site_xy))
    pairs = len(demand_xy) * len(site_xy)
    if pairs > max_pairs:
        raise ValidationError(
            f"demand: p-median needs every (demand, site) distance: {len(demand_xy):,} x {len(site_xy):,} = {pairs:,}; "
            f"at most {max_pairs:,} (aggregate demand to a coarser cell or use fewer candidates)",
            [Problem("too many distances", column="demand", value=pairs)],
        )
    diff = demand_xy[:, None, :] - site_xy[None, :, :]
    return np.sqrt((diff**2).sum(axis=2))
