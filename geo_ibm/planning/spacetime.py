"""Space-time plans: k (site, shift) pairs over the week's hour-of-week blocks covering the most events.

A team works one shift (a block of ``shift_hours`` consecutive hours of the week, Monday 00:00
first) at one site. An event at demand point ``i`` in block ``b`` is covered when a team works
block ``b`` at a site reaching ``i``. Choosing ``k`` (site, block) pairs is a maximal covering
problem over the expanded ground set of pairs, whose coverage matrix is block-diagonal (one
copy of the spatial matrix per block), solved by :class:`~geo_ibm.planning.models.MaximalCovering`;
a pair is chosen at most once, so at most one team works a site in a given shift.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.planning.coverage import Coverage
from geo_ibm.planning.models import MaximalCovering

HOURS_PER_WEEK = 168
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

MAX_PAIRS = 250_000
"""Most (site, shift) candidate pairs of one space-time plan."""

MAX_SPACETIME_NONZEROS = 20_000_000
"""Most covering ((demand, block), (site, block)) entries of the expanded matrix."""


def check_shift_hours(hours: object, *, name: str = "shifts") -> int:
    """``hours`` as a whole number of hours dividing the week's 168 (1, 2, 3, 4, 6, 7, 8, 12, 24, ...)."""
    try:
        value = int(hours)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        value = -1
    if isinstance(hours, bool) or value < 1 or value > HOURS_PER_WEEK or HOURS_PER_WEEK % value or value != hours:
        raise ValidationError(
            f"{name} must be a shift length in whole hours dividing the week's 168 hours (e.g. 4, 6, 8, 12, 24), "
            f"got {hours!r}", [Problem("bad shift length", column=name, value=hours)])
    return value


def block_label(block: int, shift_hours: int) -> str:
    """``'Mon 08-12'``: the day and hours of hour-of-week block ``block``."""
    start = block * shift_hours
    end = start + shift_hours
    day, hour = divmod(start, 24)
    end_day, end_hour = divmod(end, 24)
    if end_day == day or (end_hour == 0 and end_day == day + 1):
        return f"{DAY_NAMES[day]} {hour:02d}-{end_hour if end_day == day else 24:02d}"
    return f"{DAY_NAMES[day]} {hour:02d} - {DAY_NAMES[end_day % 7]} {end_hour:02d}"


def hour_of_week(times: pd.Series) -> np.ndarray:
    """Hour of the week (0 = Monday 00:00-01:00) of tz-aware local timestamps."""
    return (times.dt.day_of_week * 24 + times.dt.hour).to_numpy(dtype=np.int64)


def demand_blocks(point: np.ndarray, hour: np.ndarray, weight: np.ndarray, *, shift_hours: int,
                  n_points: int) -> sp.csr_matrix:
    """Weight per (demand point, block): ``(n_points, 168 / shift_hours)`` sparse."""
    n_blocks = HOURS_PER_WEEK // shift_hours
    block = np.asarray(hour, dtype=np.int64) // shift_hours
    if len(block) and (block.min() < 0 or block.max() >= n_blocks):
        raise ValidationError("hour of week outside 0..167")
    return sp.csr_matrix((np.asarray(weight, dtype=float), (np.asarray(point), block)), shape=(n_points, n_blocks))


@dataclass
class SpaceTimePlan:
    """A fitted space-time plan.

    Attributes
    ----------
    pairs
        Table of the chosen pairs in rank order: ``rank``, ``site`` (column index of the
        spatial coverage), ``block``, ``window`` (``'Mon 08-12'``), ``gain`` (weight the pair
        adds to those ranked before it).
    objective
        Covered weight of (event, hour) demand.
    bound, gap, status, method, seconds
        As :class:`~geo_ibm.planning.models.MaximalCovering`.
    total
        All demand weight.
    model
        The expanded :class:`MaximalCovering` (its matrix rows are (point, block) pairs).
    """

    pairs: pd.DataFrame
    objective: float
    bound: float
    gap: float
    status: str
    method: str
    seconds: float
    total: float
    shift_hours: int
    model: MaximalCovering

    def windows(self) -> pd.DataFrame:
        """Per chosen site its windows, best first: ``site``, ``windows`` (labels joined), ``gain``, ``shifts``."""
        grouped = self.pairs.groupby("site", sort=False)
        return pd.DataFrame({
            "site": list(grouped.groups),
            "windows": [", ".join(g["window"]) for _, g in grouped],
            "gain": [float(g["gain"].sum()) for _, g in grouped],
            "shifts": [len(g) for _, g in grouped],
        })


def plan_shifts(coverage: Coverage, blocks: sp.csr_matrix, *, k: int, shift_hours: int,
                excluded: np.ndarray | None = None, method: str = "exact", time_limit: float = 30.0,
                max_pairs: int = MAX_PAIRS, max_nonzeros: int = MAX_SPACETIME_NONZEROS) -> SpaceTimePlan:
    """The ``k`` (site, block) pairs covering the most demand weight in space and time.

    Parameters
    ----------
    coverage
        Spatial coverage ``(n_points, n_sites)``.
    blocks
        Weight per (point, block), from :func:`demand_blocks` with the same ``shift_hours``.
    k
        Team-shifts to place.
    excluded
        Site indices no team may use.

    Raises
    ------
    ValidationError
        Naming ``shifts`` or ``teams`` when the expanded problem is over its limits, or
        ``demand`` when there is no weight in any block.
    """
    shift_hours = check_shift_hours(shift_hours)
    n, m = coverage.shape
    n_blocks = HOURS_PER_WEEK // shift_hours
    if blocks.shape != (n, n_blocks):
        raise ValidationError(f"blocks must be ({n}, {n_blocks}) for {shift_hours}-hour shifts, got {blocks.shape}")
    if m * n_blocks > max_pairs:
        raise ValidationError(
            f"shifts: {m:,} sites x {n_blocks} shifts of {shift_hours} h = {m * n_blocks:,} (site, shift) pairs; at most "
            f"{max_pairs:,} (use longer shifts or fewer candidates)",
            [Problem("too many site-shift pairs", column="shifts", value=shift_hours)])
    coo = blocks.tocoo()
    keep = coo.data > 0
    point, block, weight = coo.row[keep], coo.col[keep], coo.data[keep]
    if len(weight) == 0:
        raise ValidationError("demand: no event weight in any shift", [Problem("no demand", column="demand")])
    degree = np.diff(coverage.cost.indptr)
    nnz = int(degree[point].sum())
    if nnz > max_nonzeros:
        raise ValidationError(
            f"shifts: the space-time model has {nnz:,} covering entries; at most {max_nonzeros:,} (use longer shifts, "
            f"a smaller radius or a coarser demand cell)",
            [Problem("space-time model too large", column="shifts", value=shift_hours)])
    # row r = (point[r], block[r]) is covered by columns block[r] * m + (sites of point[r])
    starts = coverage.cost.indptr[point]
    lengths = degree[point]
    indptr = np.r_[0, np.cumsum(lengths)]
    offsets = np.arange(nnz) - np.repeat(indptr[:-1], lengths)
    src = np.repeat(starts, lengths) + offsets
    cols = coverage.cost.indices[src].astype(np.int64) + np.repeat(block, lengths) * m
    expanded = Coverage(sp.csr_matrix((coverage.cost.data[src], cols, indptr), shape=(len(weight), m * n_blocks)),
                        coverage.limit, coverage.unit)
    blocked = None
    if excluded is not None and len(excluded):
        blocked = (np.asarray(excluded, dtype=np.int64)[None, :] + (np.arange(n_blocks) * m)[:, None]).ravel()
    model = MaximalCovering(expanded, weight, k=_pairs_k(k, m * n_blocks - (0 if blocked is None else len(blocked))),
                            excluded=blocked).solve(method=method, time_limit=time_limit)
    sel = model.selected_
    pairs = pd.DataFrame({
        "rank": np.arange(1, len(sel) + 1),
        "site": sel % m,
        "block": sel // m,
        "window": [block_label(int(b), shift_hours) for b in sel // m],
        "gain": model.gains_,
    })
    return SpaceTimePlan(pairs, model.objective_, model.bound_, model.gap_, model.status_, model.method_,
                         model.seconds_, float(weight.sum()), shift_hours, model)


def _pairs_k(k: Any, available: int) -> int:
    from geo_ibm.planning.models import check_teams

    return check_teams(k, n_sites=available)


def best_windows(coverage: Coverage, blocks: sp.csr_matrix, sites: np.ndarray, *, shift_hours: int,
                 top: int = 3) -> list[list[tuple[str, float]]]:
    """For each of ``sites`` the ``top`` blocks with most weight it reaches: ``[(label, weight), ...]``."""
    inc = coverage.incidence()
    per_block = (inc[:, sites].T @ blocks).toarray() if len(sites) else np.zeros((0, blocks.shape[1]))
    out: list[list[tuple[str, float]]] = []
    for row in per_block:
        order = np.argsort(-row, kind="stable")[:top]
        out.append([(block_label(int(b), shift_hours), float(row[b])) for b in order if row[b] > 0])
    return out
