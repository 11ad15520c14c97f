"""Point-pattern statistics of events: Clark–Evans nearest neighbour index, Ripley's L, Knox test."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import stats
from scipy.spatial import cKDTree

from geo_ibm.errors import ValidationError
from geo_ibm.eventframe import event_times, event_xy
from geo_ibm.grid import as_area

CLARK_EVANS_SE = 0.26136
"""Standard error constant of the mean nearest-neighbour distance under CSR (Clark & Evans 1954)."""


@dataclass(frozen=True)
class NearestNeighbourResult:
    """Clark–Evans average nearest neighbour statistic (as ArcGIS's Average Nearest Neighbor).

    Attributes
    ----------
    n
        Number of events.
    area
        Study area in m².
    observed_mean
        Mean distance (m) from each event to its nearest other event, ``D_o``.
    expected_mean
        Mean under complete spatial randomness, ``D_e = 0.5 / sqrt(n / A)``.
    ratio
        ``R = D_o / D_e``: < 1 clustered, 1 random, > 1 dispersed (2.149 for a hexagonal lattice).
    z
        ``(D_o − D_e) / SE`` with ``SE = 0.26136 / sqrt(n² / A)``.
    p_value
        Two-sided normal p-value of ``z``.
    """

    n: int
    area: float
    observed_mean: float
    expected_mean: float
    ratio: float
    z: float
    p_value: float


def _area_value(area: Any) -> float:
    if isinstance(area, (int, float, np.integer, np.floating)) and not isinstance(area, bool):
        if not (math.isfinite(area) and area > 0):
            raise ValidationError(f"area must be a positive number of m² or a polygon, got {area!r}")
        return float(area)
    return float(as_area(area, name="area").area)


def _distinct_minimum(xy: np.ndarray, minimum: int, what: str) -> None:
    if len(xy) < minimum:
        raise ValidationError(f"events: {what} needs at least {minimum} events, got {len(xy)}")


def nearest_neighbour_index(events: gpd.GeoDataFrame, *, area: Any) -> NearestNeighbourResult:
    """Clark–Evans nearest neighbour index of point events.

    ``D_o`` is the mean distance from each event to its nearest other event (coincident events
    count with distance 0); under complete spatial randomness with intensity ``n / A`` its
    expectation is ``D_e = 0.5 / sqrt(n / A)`` and its standard error
    ``SE = 0.26136 / sqrt(n² / A)``. No edge correction is applied, as in ArcGIS, so ``R`` is
    biased upward for small ``n`` in irregular areas.

    Parameters
    ----------
    events
        Point events in EPSG:2169.
    area
        The study polygon (GeoDataFrame, GeoSeries or shapely geometry) or its area in m².

    Raises
    ------
    ValidationError
        Fewer than 2 events, or an area that is not positive.
    """
    xy = event_xy(events)
    a = _area_value(area)
    _distinct_minimum(xy, 2, "the nearest neighbour index")
    n = len(xy)
    dist, _ = cKDTree(xy).query(xy, k=2)
    d_obs = float(dist[:, 1].mean())
    d_exp = 0.5 / math.sqrt(n / a)
    se = CLARK_EVANS_SE / math.sqrt(n * n / a)
    z = (d_obs - d_exp) / se
    return NearestNeighbourResult(
        n=n,
        area=a,
        observed_mean=d_obs,
        expected_mean=d_exp,
        ratio=d_obs / d_exp,
        z=z,
        p_value=float(2 * stats.norm.sf(abs(z))),
    )


def _check_distances(distances: Sequence[float] | np.ndarray) -> np.ndarray:
    d = np.asarray(distances, dtype=float)
    if d.ndim != 1 or d.size == 0 or not np.all(np.isfinite(d)) or np.any(d <= 0) or np.any(np.diff(d) <= 0):
        raise ValidationError(f"distances must be ascending positive metres, got {np.asarray(distances).tolist()!r}")
    return d


def _k_function(
    xy: np.ndarray, distances: np.ndarray, area: float, boundary: shapely.Geometry | None
) -> np.ndarray:
    """Ripley's K at ``distances``; ``boundary`` given = border (reduced-sample) correction.

    All pairs within the largest distance are found once; each ordered pair (centre i,
    neighbour j) at distance ``δ`` counts for every ``d_k >= δ`` (and, with the border
    correction, ``d_k <= `` the distance of i to the boundary), added as a range on a
    difference array so the cost is linear in the number of pairs.
    """
    n = len(xy)
    m = distances.size
    pairs = cKDTree(xy).query_pairs(float(distances[-1]), output_type="ndarray")
    delta = np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T)
    lo = np.searchsorted(distances, delta, side="left")
    if boundary is None:
        per_k = np.cumsum(np.bincount(lo, minlength=m + 1)[:m])
        return area * 2.0 * per_k / (n * (n - 1))
    to_edge = shapely.distance(shapely.points(xy), boundary)
    # Last distance index at which each event can still serve as a centre.
    last = np.searchsorted(distances, to_edge, side="right") - 1
    centres = np.concatenate([pairs[:, 0], pairs[:, 1]])
    lo2 = np.concatenate([lo, lo])
    hi = last[centres]
    ok = lo2 <= hi
    diff = np.bincount(lo2[ok], minlength=m + 1)[: m + 1] - np.bincount(hi[ok] + 1, minlength=m + 1)[: m + 1]
    neighbours = np.cumsum(diff)[:m]
    n_centres = np.array([(to_edge >= d).sum() for d in distances], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = neighbours / n_centres * area / n
    out[n_centres == 0] = np.nan
    return out


def random_points_in(polygon: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random points inside ``polygon`` by rejection sampling from its bounding box."""
    minx, miny, maxx, maxy = polygon.bounds
    accept = polygon.area / ((maxx - minx) * (maxy - miny))
    shapely.prepare(polygon)
    out = np.empty((0, 2))
    while len(out) < n:
        batch = int((n - len(out)) / accept * 1.2) + 16
        cand = rng.uniform([minx, miny], [maxx, maxy], (batch, 2))
        out = np.vstack([out, cand[shapely.contains_xy(polygon, cand[:, 0], cand[:, 1])]])
    return out[:n]


def ripley_l(
    events: gpd.GeoDataFrame,
    *,
    study_area: Any,
    distances: Sequence[float] | np.ndarray,
    simulations: int = 99,
    seed: int | None = None,
    edge_correction: Literal["border", "none"] = "border",
) -> pd.DataFrame:
    """Ripley's L function with a complete-spatial-randomness simulation envelope.

    ``K(d)`` is the expected number of further events within ``d`` of an event divided by the
    intensity ``λ = n / A``; ``L(d) = sqrt(K(d) / π)`` equals ``d`` under CSR, so
    ``L − d > 0`` means clustering at that scale.

    Edge correction:

    - ``"border"`` (default, reduced-sample estimator): only events at least ``d`` from the
      study-area boundary serve as centres, ``K(d) = mean_i #{j ≠ i: d_ij ≤ d} / λ``; events
      near the edge still count as neighbours. Unbiased, but distances beyond the inradius
      have no centres (NaN).
    - ``"none"``: ``K(d) = A · #{ordered pairs i ≠ j: d_ij ≤ d} / (n (n − 1))``; biased low
      near the boundary, as is the envelope, so the comparison stays fair.

    The envelope is the pointwise minimum and maximum of ``L`` over ``simulations`` patterns of
    ``n`` uniform random points in the study polygon, with the same estimator.

    Parameters
    ----------
    events
        Point events in EPSG:2169 (those outside ``study_area`` are used as given).
    study_area
        Polygon(s) in EPSG:2169: its area sets ``λ``, its boundary the border correction and
        the simulations are drawn inside it.
    distances
        Ascending positive distances in metres.
    simulations
        Number of CSR patterns (0 = no envelope, NaN columns).
    seed
        Seed of the random generator.
    edge_correction
        ``"border"`` or ``"none"``.

    Returns
    -------
    pandas.DataFrame
        One row per distance, columns ``distance``, ``K``, ``L``, ``L_minus_d``,
        ``env_low``, ``env_high`` (envelope of ``L``), ``clustered`` (``L > env_high``),
        ``dispersed`` (``L < env_low``).
    """
    xy = event_xy(events)
    poly = as_area(study_area)
    d = _check_distances(distances)
    _distinct_minimum(xy, 3, "Ripley's L")
    if not (isinstance(simulations, (int, np.integer)) and simulations >= 0):
        raise ValidationError(f"simulations must be an integer >= 0, got {simulations!r}")
    if edge_correction not in ("border", "none"):
        raise ValidationError(f"edge_correction must be 'border' or 'none', got {edge_correction!r}")
    boundary = poly.boundary if edge_correction == "border" else None
    area = poly.area
    k_obs = _k_function(xy, d, area, boundary)
    l_obs = np.sqrt(k_obs / math.pi)
    rng = np.random.default_rng(seed)
    if simulations:
        sims = np.empty((simulations, d.size))
        for s in range(simulations):
            sims[s] = np.sqrt(_k_function(random_points_in(poly, len(xy), rng), d, area, boundary) / math.pi)
        low, high = np.nanmin(sims, axis=0), np.nanmax(sims, axis=0)
    else:
        low = high = np.full(d.size, np.nan)
    return pd.DataFrame(
        {
            "distance": d,
            "K": k_obs,
            "L": l_obs,
            "L_minus_d": l_obs - d,
            "env_low": low,
            "env_high": high,
            "clustered": l_obs > high,
            "dispersed": l_obs < low,
        }
    )


@dataclass(frozen=True)
class KnoxResult:
    """Knox space–time interaction test.

    Attributes
    ----------
    n
        Number of events.
    distance, days
        Closeness thresholds (inclusive): metres and days.
    observed
        Unordered pairs close in both space and time, ``N_st``.
    expected
        ``N_s · N_t / N`` under no space–time interaction.
    space_pairs, time_pairs, total_pairs
        ``N_s`` (pairs within ``distance``), ``N_t`` (pairs within ``days``), ``N = n(n−1)/2``.
    ratio
        ``observed / expected`` (NaN when ``expected`` is 0).
    p_value
        One-sided Monte Carlo p-value ``(1 + #{simulated ≥ observed}) / (permutations + 1)``.
    p_value_poisson
        ``P(X ≥ observed)`` for ``X ~ Poisson(expected)``, the classical approximation.
    permutations
        Number of time permutations.
    simulated_mean, simulated_sd
        Mean and standard deviation of ``N_st`` over the permutations.
    """

    n: int
    distance: float
    days: float
    observed: int
    expected: float
    space_pairs: int
    time_pairs: int
    total_pairs: int
    ratio: float
    p_value: float
    p_value_poisson: float
    permutations: int
    simulated_mean: float
    simulated_sd: float


def _event_ns(events: gpd.GeoDataFrame) -> np.ndarray:
    """Event times as int64 nanoseconds since the first event (exact comparisons, no float drift)."""
    stamps = event_times(events)
    ns = stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return ns - ns.min()


def knox_test(
    events: gpd.GeoDataFrame,
    *,
    distance: float,
    days: float,
    permutations: int = 999,
    seed: int | None = None,
) -> KnoxResult:
    """Knox test: are events close in space also close in time more often than chance?

    A pair is close in space when ``d_ij ≤ distance`` and close in time when
    ``|t_i − t_j| ≤ days`` (both inclusive). Under the null hypothesis the event times are
    exchangeable across locations; the Monte Carlo p-value comes from ``permutations`` random
    permutations of the times over the events (Mantel-type permutation test), recounting
    ``N_st`` over the fixed spatial pairs each time.

    Parameters
    ----------
    events
        Point events in EPSG:2169 with ``observed_at``.
    distance
        Spatial closeness threshold in metres (> 0).
    days
        Temporal closeness threshold in days (> 0; fractions allowed).
    permutations
        Number of permutations (>= 1).
    seed
        Seed of the random generator.
    """
    problems = []
    if not (isinstance(distance, (int, float, np.integer, np.floating)) and math.isfinite(distance) and distance > 0):
        problems.append(f"distance must be a positive number of metres, got {distance!r}")
    if not (isinstance(days, (int, float, np.integer, np.floating)) and math.isfinite(days) and days > 0):
        problems.append(f"days must be a positive number of days, got {days!r}")
    if not (isinstance(permutations, (int, np.integer)) and permutations >= 1):
        problems.append(f"permutations must be an integer >= 1, got {permutations!r}")
    if problems:
        raise ValidationError("; ".join(problems))
    xy = event_xy(events)
    _distinct_minimum(xy, 3, "the Knox test")
    t = _event_ns(events)
    window = int(round(float(days) * 86_400e9))
    n = len(xy)
    total = n * (n - 1) // 2
    pairs = cKDTree(xy).query_pairs(float(distance), output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    observed = int(np.count_nonzero(np.abs(t[i] - t[j]) <= window))
    t_sorted = np.sort(t)
    # Pairs within `days` in time: for each event, later events up to t + days.
    time_pairs = int((np.searchsorted(t_sorted, t_sorted + window, side="right") - np.arange(n) - 1).sum())
    expected = len(pairs) * time_pairs / total
    rng = np.random.default_rng(seed)
    sims = np.empty(permutations, dtype=np.int64)
    for s in range(permutations):
        tp = t[rng.permutation(n)]
        sims[s] = np.count_nonzero(np.abs(tp[i] - tp[j]) <= window)
    return KnoxResult(
        n=n,
        distance=float(distance),
        days=float(days),
        observed=observed,
        expected=float(expected),
        space_pairs=int(len(pairs)),
        time_pairs=time_pairs,
        total_pairs=total,
        ratio=observed / expected if expected > 0 else math.nan,
        p_value=float((1 + np.count_nonzero(sims >= observed)) / (permutations + 1)),
        p_value_poisson=float(stats.poisson.sf(observed - 1, expected)) if expected > 0 else math.nan,
        permutations=int(permutations),
        simulated_mean=float(sims.mean()),
        simulated_sd=float(sims.std(ddof=1)) if permutations > 1 else math.nan,
    )
