"""Near-repeat analysis: Knox ratios over distance × time bands with Monte Carlo significance.

The table Ratcliffe's Near Repeat Calculator gives crime analysts: every unordered pair of
events is placed in a cell by its spatial distance and its time difference, the observed
count of each cell is set against the counts when the event times are shuffled among the
events (places fixed), and the Knox ratio observed / expected says how much more often
than chance a second interception follows near an earlier one within days.

Cost is bounded before any pair is built: the pairs closer than the largest distance edge are
counted on a KD-tree (no pair materialised), and that count, the permutations and their
product are checked against :data:`MAX_PAIRS`, :data:`MAX_PERMUTATIONS` and
:data:`MAX_PAIR_PERMUTATIONS`. The pairs are then found once; each permutation costs two
gathers, a ``searchsorted`` over the time edges and one ``bincount`` over the pairs.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.eventframe import event_xy
from geo_ibm.pointpattern import _event_ns

Metric = Literal["euclidean", "manhattan"]
METRICS: tuple[str, ...] = ("euclidean", "manhattan")

Bands = Sequence[float] | tuple[float, int]
"""Band edges ``(0, 100, 200, ...)`` starting at 0, or ``(width, count)``: ``count`` equal bands of ``width``."""

DEFAULT_DISTANCE_BANDS: tuple[float, ...] = (0, 100, 200, 300, 400, 500)
"""Distance band edges in metres: five bands of 100 m."""

DEFAULT_TIME_BANDS: tuple[float, ...] = (0, 7, 14, 21, 28)
"""Time band edges in days: four weeks."""

MAX_BANDS = 30
"""Most bands on each axis (the table has at most 30 × 30 cells)."""

MAX_DAYS = 36_600.0
"""Largest time edge in days (a century; time differences are int64 nanoseconds)."""

MAX_PERMUTATIONS = 9_999
"""Most permutations (p-values to 1/10 000)."""

MAX_EVENTS = 2_000_000
"""Most events (the KD-tree and the time arrays)."""

MAX_PAIRS = 5_000_000
"""Most pairs closer than the largest distance edge (about 50 bytes each are held: 250 MB at the limit)."""

MAX_PAIR_PERMUTATIONS = 1_000_000_000
"""Most pairs × permutations: the work of the Monte Carlo test (measured about 11 ns each on one core, so
about 11 s at the limit, after about 2 s finding 4.5 million pairs)."""

Progress = Callable[[int, int], None]
"""``progress(permutations_done, permutations)``."""

_NS_PER_DAY = 86_400 * 10**9

# Pairs are searched a hair beyond the last edge and then cut at the edge with the same
# distance formula as the bands, so the tree's own rounding cannot drop a pair at the edge.
_SEARCH_SLACK = 1e-9


@dataclass(frozen=True)
class NearRepeatResult:
    """A near-repeat (Knox) table and the parameters it was computed with.

    Attributes
    ----------
    table
        One row per (distance band, time band), distance bands outer: ``distance_band``
        (label, e.g. ``"0-100 m"``), ``time_band`` (``"0-7 days"``), ``distance_from_m``,
        ``distance_to_m``, ``days_from``, ``days_to`` (bands are ``[from, to)``),
        ``observed`` (unordered pairs of events in the cell), ``expected`` (mean count over
        the permutations), ``knox_ratio`` (``observed / expected``, NaN when ``expected`` is
        0), ``p_value`` (``(1 + #{permutations with count >= observed}) / (1 + permutations)``)
        and ``significant`` (``p_value <= alpha`` and ``knox_ratio > 1``).
    n
        Number of events.
    pairs
        Pairs of events closer than the largest distance edge (whatever their time difference).
    distance_edges, time_edges
        Band edges in metres and in days.
    metric
        ``"euclidean"`` or ``"manhattan"`` (in EPSG:2169 metres).
    permutations, seed, alpha
        The Monte Carlo parameters and the significance level.
    reason
        Why nothing could be tested (fewer than 2 events, no pair within the largest
        distance band), else ``None``.
    """

    table: pd.DataFrame
    n: int
    pairs: int
    distance_edges: tuple[float, ...]
    time_edges: tuple[float, ...]
    metric: str
    permutations: int
    seed: int | None
    alpha: float
    reason: str | None = None

    def matrix(self, column: str = "knox_ratio") -> pd.DataFrame:
        """``column`` of :attr:`table` as a distance band × time band frame (band labels as index and columns)."""
        if column not in self.table.columns:
            raise ValidationError(f"column must be one of {', '.join(self.table.columns)}, got {column!r}",
                                  [Problem("unknown column", column="column", value=column)])
        n_d, n_t = len(self.distance_edges) - 1, len(self.time_edges) - 1
        values = self.table[column].to_numpy().reshape(n_d, n_t)
        return pd.DataFrame(values, index=pd.Index(self.table["distance_band"].to_numpy()[::n_t], name="distance"),
                            columns=pd.Index(self.table["time_band"].to_numpy()[:n_t], name="time"))


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def band_edges(bands: Bands, *, name: str, unit: str, largest: float = math.inf) -> np.ndarray:
    """Ascending band edges from ``bands``: edges starting at 0, or ``(width, count)``.

    A pair whose first value is above 0 is ``(width, count)``: ``count`` bands of ``width``
    (``(100, 5)`` -> ``0, 100, ..., 500``); otherwise the values are the edges themselves and
    must start at 0 and increase.

    Raises
    ------
    ValidationError
        Anything else, more than :data:`MAX_BANDS` bands or an edge above ``largest`` (the
        problem names ``name``).
    """
    def refuse(why: str) -> ValidationError:
        return ValidationError(f"{name}: {why}, got {bands!r}", [Problem(why, column=name, value=repr(bands))])

    if isinstance(bands, (str, bytes)) or not isinstance(bands, (Sequence, np.ndarray)):
        raise refuse(f"give band edges in {unit} starting at 0, or (width, count)")
    values = list(bands)
    if not values or not all(_is_number(v) for v in values):
        raise refuse(f"give band edges in {unit} starting at 0, or (width, count)")
    if len(values) == 2 and float(values[0]) > 0:
        width, count = values
        if not _is_int(count) or int(count) < 1:
            raise refuse("(width, count) needs a whole number of bands >= 1 (edges start at 0)")
        if int(count) > MAX_BANDS:
            raise refuse(f"at most {MAX_BANDS} bands")
        edges = float(width) * np.arange(int(count) + 1, dtype=float)
    else:
        edges = np.asarray(values, dtype=float)
        if edges.size < 2 or edges[0] != 0 or np.any(np.diff(edges) <= 0):
            raise refuse(f"band edges in {unit} must start at 0 and increase")
        if edges.size - 1 > MAX_BANDS:
            raise refuse(f"at most {MAX_BANDS} bands")
    if edges[-1] > largest:
        raise refuse(f"the largest edge may be at most {largest:g} {unit}")
    return edges


def _labels(edges: np.ndarray, unit: str) -> list[str]:
    return [f"{a:g}-{b:g} {unit}" for a, b in zip(edges[:-1], edges[1:])]


def _table(d_edges: np.ndarray, t_edges: np.ndarray, observed: np.ndarray, expected: np.ndarray,
           p_value: np.ndarray, alpha: float) -> pd.DataFrame:
    n_d, n_t = d_edges.size - 1, t_edges.size - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(expected > 0, observed / np.where(expected > 0, expected, 1.0), np.nan)
    return pd.DataFrame({
        "distance_band": np.repeat(_labels(d_edges, "m"), n_t),
        "time_band": np.tile(_labels(t_edges, "days"), n_d),
        "distance_from_m": np.repeat(d_edges[:-1], n_t),
        "distance_to_m": np.repeat(d_edges[1:], n_t),
        "days_from": np.tile(t_edges[:-1], n_d),
        "days_to": np.tile(t_edges[1:], n_d),
        "observed": observed.astype(np.int64),
        "expected": expected.astype(float),
        "knox_ratio": ratio,
        "p_value": p_value.astype(float),
        "significant": (p_value <= alpha) & (np.nan_to_num(ratio, nan=0.0) > 1),
    })


def _check_parameters(distance_bands_m: Bands, time_bands_days: Bands, permutations: int, metric: str,
                      alpha: float, seed: object = None) -> tuple[np.ndarray, np.ndarray]:
    problems: list[Problem] = []
    messages: list[str] = []
    edges: dict[str, np.ndarray] = {}
    for name, bands, unit, largest in (("distance_bands_m", distance_bands_m, "m", math.inf),
                                       ("time_bands_days", time_bands_days, "days", MAX_DAYS)):
        try:
            edges[name] = band_edges(bands, name=name, unit=unit, largest=largest)
        except ValidationError as exc:
            problems.extend(exc.problems)
            messages.append(str(exc).splitlines()[0])
    if not (_is_int(permutations) and 1 <= permutations <= MAX_PERMUTATIONS):
        why = f"must be a whole number from 1 to {MAX_PERMUTATIONS}"
        problems.append(Problem(why, column="permutations", value=permutations))
        messages.append(f"permutations {why}, got {permutations!r}")
    if not (seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0)):
        # numpy's generator takes no negative or fractional seed: refused here, by name, not as its ValueError
        why = "must be a whole number >= 0 or None"
        problems.append(Problem(why, column="seed", value=seed))
        messages.append(f"seed {why}, got {seed!r}")
    if metric not in METRICS:
        why = f"must be one of {', '.join(METRICS)}"
        problems.append(Problem(why, column="metric", value=metric))
        messages.append(f"metric {why}, got {metric!r}")
    if not (_is_number(alpha) and 0 < float(alpha) < 1):
        problems.append(Problem("must be between 0 and 1", column="alpha", value=alpha))
        messages.append(f"alpha must be between 0 and 1, got {alpha!r}")
    if problems:
        raise ValidationError("; ".join(messages), problems)
    return edges["distance_bands_m"], edges["time_bands_days"]


def count_close_pairs(xy: np.ndarray, distance: float, *, metric: Metric = "euclidean") -> int:
    """Unordered pairs of points at most ``distance`` apart, counted on a KD-tree without listing them."""
    if len(xy) < 2:
        return 0
    tree = cKDTree(xy)
    p = 2.0 if metric == "euclidean" else 1.0
    ordered = int(tree.count_neighbors(tree, distance * (1 + _SEARCH_SLACK) + _SEARCH_SLACK, p=p))
    return (ordered - len(xy)) // 2


def check_near_repeat_cost(n: int, pairs: int, permutations: int, *, largest_distance: float) -> None:
    """Refuse a near-repeat run over the limits before its pairs are built.

    Raises
    ------
    ValidationError
        More than :data:`MAX_EVENTS` events (names ``events``), more than :data:`MAX_PAIRS`
        pairs within the largest distance band (names ``distance_bands_m``) or more than
        :data:`MAX_PAIR_PERMUTATIONS` pairs × permutations (names ``permutations``).
    """
    if n > MAX_EVENTS:
        raise ValidationError(f"events: {n:,} events, more than the {MAX_EVENTS:,} a near-repeat table takes; "
                              "select a shorter period or one region",
                              [Problem("too many events", column="events", value=n)])
    if pairs > MAX_PAIRS:
        raise ValidationError(
            f"distance_bands_m: {pairs:,} pairs of events are closer than {largest_distance:g} m, more than "
            f"{MAX_PAIRS:,}; use a smaller largest distance band or fewer events",
            [Problem("too many pairs within the largest band", column="distance_bands_m", value=largest_distance)])
    if pairs * permutations > MAX_PAIR_PERMUTATIONS:
        most = max(1, MAX_PAIR_PERMUTATIONS // max(pairs, 1))
        raise ValidationError(
            f"permutations: {permutations:,} permutations of {pairs:,} pairs within {largest_distance:g} m are "
            f"{pairs * permutations:,} pair evaluations, more than {MAX_PAIR_PERMUTATIONS:,}; use at most "
            f"{most:,} permutations or a smaller largest distance band",
            [Problem("too many pairs × permutations", column="permutations", value=permutations)])


def _pairs(xy: np.ndarray, largest: float, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair ``i < j`` closer than ``largest`` and its distance."""
    p = 2.0 if metric == "euclidean" else 1.0
    found = cKDTree(xy).query_pairs(largest * (1 + _SEARCH_SLACK) + _SEARCH_SLACK, p=p, output_type="ndarray")
    i, j = found[:, 0].astype(np.intp), found[:, 1].astype(np.intp)
    diff = xy[i] - xy[j]
    dist = np.hypot(diff[:, 0], diff[:, 1]) if metric == "euclidean" else np.abs(diff).sum(axis=1)
    keep = dist < largest
    return i[keep], j[keep], dist[keep]


def near_repeat(
    events: gpd.GeoDataFrame,
    *,
    distance_bands_m: Bands = DEFAULT_DISTANCE_BANDS,
    time_bands_days: Bands = DEFAULT_TIME_BANDS,
    permutations: int = 99,
    seed: int | None = 0,
    metric: Metric = "euclidean",
    alpha: float = 0.05,
    progress: Progress | None = None,
) -> NearRepeatResult:
    """Knox ratios of event pairs over distance × time bands, with Monte Carlo p-values.

    Each unordered pair of events falls in the distance band ``[a, b)`` of its distance
    (Euclidean or Manhattan, in EPSG:2169 metres) and the time band ``[c, d)`` of its time
    difference in days; pairs beyond the last edge of either axis are in no cell. Under the
    null hypothesis of no space–time interaction the event times are exchangeable across the
    places: each permutation shuffles the times among the events, keeps the places, and
    recounts every cell. ``expected`` is the mean count over the permutations, the Knox ratio
    is ``observed / expected`` and the one-sided p-value is
    ``(1 + #{permutations with count >= observed}) / (1 + permutations)``, as in Ratcliffe's
    Near Repeat Calculator. The first cell with the same seed gives exactly the counts of
    :func:`geo_ibm.pointpattern.knox_test` (which uses inclusive thresholds).

    Parameters
    ----------
    events
        Point events in EPSG:2169 with ``observed_at``.
    distance_bands_m
        Distance band edges in metres starting at 0 (``(0, 100, 200)``), or ``(width, count)``.
    time_bands_days
        Time band edges in days starting at 0 (``(0, 7, 14)``; fractions allowed), or
        ``(width, count)``.
    permutations
        Number of time permutations (1 to :data:`MAX_PERMUTATIONS`).
    seed
        Seed of the random generator (a whole number >= 0, or ``None`` for fresh entropy).
    metric
        ``"euclidean"`` or ``"manhattan"`` (``|dx| + |dy|``, closer to distances on a street grid).
    alpha
        Significance level of the ``significant`` column.
    progress
        ``progress(done, permutations)`` as permutations complete.

    Returns
    -------
    NearRepeatResult
        With fewer than 2 events or no pair within the largest distance band, every cell
        has ``observed`` and ``expected`` 0, ratio NaN, p-value 1, and :attr:`~NearRepeatResult.reason`
        says why.

    Raises
    ------
    ValidationError
        Bad bands, permutations, seed, metric or alpha (each problem named), events not in
        EPSG:2169 or without valid times, or a run over the limits
        (:func:`check_near_repeat_cost`), all before the pairs are built.

    Examples
    --------
    >>> result = near_repeat(events, distance_bands_m=(100, 5), time_bands_days=(0, 3, 7, 14))  # doctest: +SKIP
    >>> result.matrix("knox_ratio")  # doctest: +SKIP
    """
    d_edges, t_edges = _check_parameters(distance_bands_m, time_bands_days, permutations, metric, alpha, seed)
    xy = event_xy(events)
    n = len(xy)
    n_d, n_t = d_edges.size - 1, t_edges.size - 1
    cells = n_d * n_t

    def result(observed: np.ndarray, expected: np.ndarray, p: np.ndarray, pairs: int,
               reason: str | None) -> NearRepeatResult:
        return NearRepeatResult(
            table=_table(d_edges, t_edges, observed, expected, p, float(alpha)), n=n, pairs=pairs,
            distance_edges=tuple(float(e) for e in d_edges), time_edges=tuple(float(e) for e in t_edges),
            metric=metric, permutations=int(permutations), seed=seed, alpha=float(alpha), reason=reason)

    zeros, ones = np.zeros(cells), np.ones(cells)
    if n < 2:
        return result(zeros, zeros, ones, 0, f"{n} event{'s' if n != 1 else ''}: a near-repeat table needs "
                                             "at least 2 events")
    t = _event_ns(events)
    largest = float(d_edges[-1])
    check_near_repeat_cost(n, count_close_pairs(xy, largest, metric=metric), int(permutations),
                           largest_distance=largest)
    i, j, dist = _pairs(xy, largest, metric)
    if len(i) == 0:
        if progress is not None:
            progress(int(permutations), int(permutations))
        return result(zeros, zeros, ones, 0, f"no two of the {n} events are closer than {largest:g} m")
    t_ns = np.round(t_edges * _NS_PER_DAY).astype(np.int64)
    # Flat cell index = distance band * (n_t + 1) + time band; time band n_t collects the
    # pairs at or beyond the last time edge, dropped after the count (no mask per permutation).
    row = (np.searchsorted(d_edges, dist, side="right") - 1) * (n_t + 1)
    del dist
    width = n_d * (n_t + 1)
    # Equal time bands (the usual table) are found by a division, five times faster than a search.
    step_ns = int(t_ns[1])
    equal = bool(np.all(t_ns == step_ns * np.arange(n_t + 1)))
    first, second = np.empty(len(i), dtype=np.int64), np.empty(len(i), dtype=np.int64)

    def counts(times: np.ndarray) -> np.ndarray:
        np.take(times, i, out=first)
        np.take(times, j, out=second)
        gap = np.abs(np.subtract(first, second, out=first), out=first)
        if equal:
            col = np.minimum(np.floor_divide(gap, step_ns, out=second), n_t, out=second)
        else:
            col = np.searchsorted(t_ns, gap, side="right") - 1
        return np.bincount(np.add(row, col, out=second), minlength=width).reshape(n_d, n_t + 1)[:, :n_t].ravel()

    observed = counts(t)
    total = np.zeros(cells, dtype=np.int64)
    at_least = np.zeros(cells, dtype=np.int64)
    rng = np.random.default_rng(seed)
    step = max(1, int(permutations) // 100)
    for s in range(int(permutations)):
        # The permutation is drawn as knox_test draws it: the same seed gives the same draws.
        simulated = counts(t[rng.permutation(n)])
        total += simulated
        at_least += simulated >= observed
        if progress is not None and ((s + 1) % step == 0 or s + 1 == permutations):
            progress(s + 1, int(permutations))
    expected = total / int(permutations)
    p_value = (1 + at_least) / (1 + int(permutations))
    return result(observed, expected, p_value, int(len(i)), None)
