"""Statistical disclosure control: what readers entitled to aggregates only may see of the events.

Interception records are law-enforcement data. Readers below the analyst role see counts,
hotspot classes and density surfaces, never a single record, and no combination of their
queries may single one out. The rule (:class:`DisclosureRule`, configurable per deployment):

1. **Fixed time blocks.** A time filter is widened to whole blocks (calendar quarters by
   default; ISO weeks or days where configured), in local time: two overlapping windows
   become the same blocks, so their difference is no smaller than a block.
2. **One fixed grid.** Grid results use one cell size (500 m by default) on the national
   lattice anchored at multiples of the cell (``geo_ibm.grid``), whatever cell was asked
   for. A region or canton clips the map but does not filter the events: a border cell
   counts the same events in a regional and a national map, so subtracting one from the
   other reveals nothing.
3. **Small counts suppressed, others rounded.** A count from 1 to ``min_count - 1`` is
   suppressed (shown as missing); larger counts are rounded to the nearest multiple of
   ``rounding`` (never below ``min_count``). Zero stays zero: "no interception here" is not
   a record. Rounding keeps differences of two counts (all events minus those of one
   transport mode, say) from being exact. Where a row's count of events is suppressed, so
   are its other counts (the persons of one interception would show its size), and no
   message, parameter or metadata gives an exact count of events either (a selection too
   small to analyse is refused as "fewer than 30", never with its size).
4. **Derived values only as classes.** Hot spot results keep their confidence bins,
   categories and classes, not the z-scores and p-values (a system of many overlapping
   Gi* sums could be solved for the cell counts). Kernel density is computed from the
   protected 500 m counts, not from event positions; cluster hulls, whose vertices are
   event positions, are for analysts only.

Residual risk (documented for the data protection officer): attribute filters
(``location_kind``, ``entry_country``, ``transport_mode``) still narrow the events counted;
rounding bounds what a difference of two such counts reveals to a range of width
``rounding``, which can show that *some* interception of a kind happened in a cell and
quarter, but not which one nor exactly how many. Deployments that need more set a larger
``rounding`` or ``min_count``, or a coarser cell.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.errors import NotPermittedError, Problem, ValidationError
from geo_ibm.settings import LOCAL_TZ

Period = Literal["quarter", "week", "day"]
PERIODS: tuple[str, ...] = ("quarter", "week", "day")

SAFE_COLUMNS: dict[str, tuple[str, ...]] = {
    "gi": ("cell_id", "area_frac", "count", "gi_bin", "gi_bin_fdr"),
    "lisa": ("cell_id", "area_frac", "count", "lisa_class"),
    "emerging": ("cell_id", "area_frac", "count", "category", "n_steps_hot", "n_steps_cold"),
    "kde": ("level", "band", "lower", "upper"),
}
"""Columns of each method's result that aggregates-only readers get (with ``geometry``)."""

COUNT_COLUMNS: tuple[str, ...] = ("count", "events", "persons", "smugglers", "n_events", "n_outside_grid")
"""Columns holding counts of events or people: protected wherever they are shown."""

LEAD_COLUMNS: tuple[str, ...] = ("events", "count", "n_events")
"""The count of events of a row, by the first of these names it has: where it is suppressed, the row's other
counts are too."""

BAND_DETAILS_KEPT: tuple[str, ...] = ("method", "k")
"""What aggregates-only readers see of how an automatic distance band was chosen (not the Moran's I
z-scores, statistics of the exact counts)."""


@dataclass(frozen=True)
class DisclosureRule:
    """How aggregates are protected for readers who may not see single records.

    Attributes
    ----------
    min_count
        Counts below this (but above zero) are suppressed (``k``, default 5).
    rounding
        Other counts are rounded to the nearest multiple of this (default 5; 1: no rounding).
    cell_m
        The one grid cell size, in metres (default 500).
    period
        Time block filters are widened to: ``"quarter"`` (default), ``"week"`` or ``"day"``.
    """

    min_count: int = 5
    rounding: int = 5
    cell_m: float = 500.0
    period: Period = "quarter"

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.min_count, int) and self.min_count >= 2):
            problems.append(Problem("must be a whole number >= 2", column="min_count", value=self.min_count))
        if not (isinstance(self.rounding, int) and self.rounding >= 1):
            problems.append(Problem("must be a whole number >= 1", column="rounding", value=self.rounding))
        if not (isinstance(self.cell_m, (int, float)) and math.isfinite(self.cell_m) and self.cell_m >= 100):
            problems.append(Problem("must be at least 100 m", column="cell_m", value=self.cell_m))
        if self.period not in PERIODS:
            problems.append(Problem(f"must be one of {', '.join(PERIODS)}", column="period", value=self.period))
        if problems:
            raise ValidationError("invalid disclosure rule: " + "; ".join(f"{p.column} {p.reason}" for p in problems),
                                  problems)

    def describe(self) -> dict[str, Any]:
        """The rule as plain values, for the ``parameters`` of a protected result."""
        return {"min_count": self.min_count, "rounding": self.rounding, "cell_m": float(self.cell_m),
                "period": self.period}


def protect_counts(counts: Any, rule: DisclosureRule) -> np.ndarray:
    """Counts as an aggregates-only reader sees them: 0 stays 0, 1..k-1 become NaN, others rounded.

    Rounding is to the nearest multiple of ``rule.rounding`` (halves up) and never below
    ``rule.min_count``.
    """
    values = np.asarray(counts, dtype=float)
    out = np.full(values.shape, np.nan)
    zero = values == 0
    big = values >= rule.min_count
    out[zero] = 0.0
    if rule.rounding > 1:
        rounded = np.floor(values[big] / rule.rounding + 0.5) * rule.rounding
    else:
        rounded = values[big]
    out[big] = np.maximum(rounded, rule.min_count)
    return out


def _block_start(stamp: pd.Timestamp, period: str) -> pd.Timestamp:
    local = stamp.tz_convert(LOCAL_TZ).tz_localize(None)
    if period == "quarter":
        start = pd.Timestamp(year=local.year, month=3 * ((local.month - 1) // 3) + 1, day=1)
    elif period == "week":
        start = (local - pd.Timedelta(days=local.weekday())).normalize()
    else:
        start = local.normalize()
    return start.tz_localize(LOCAL_TZ, ambiguous=True, nonexistent="shift_forward")


def _next_block(start: pd.Timestamp, period: str) -> pd.Timestamp:
    naive = start.tz_localize(None)
    step = pd.DateOffset(months=3) if period == "quarter" else pd.Timedelta(days=7 if period == "week" else 1)
    return (naive + step).tz_localize(LOCAL_TZ, ambiguous=True, nonexistent="shift_forward")


def widen_window(start: Any, end: Any, rule: DisclosureRule) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """``[start, end)`` widened outwards to whole blocks of ``rule.period`` (open ends stay open)."""
    first = None if start is None else _block_start(pd.Timestamp(start), rule.period)
    last = None
    if end is not None:
        end = pd.Timestamp(end)
        block = _block_start(end - pd.Timedelta(microseconds=1), rule.period)
        last = _next_block(block, rule.period)
    return first, last


def released_span(first: Any, last: Any, rule: DisclosureRule) -> tuple[str | None, str | None]:
    """The time span of some events (their first and last time) as an aggregates-only reader may see it.

    From the start of the first event's block to the end of the last event's block (the start of
    the next one), ISO 8601 text in local time; ``None`` stays ``None``. The exact first and last
    times would date the earliest and the latest interception to the second.
    """
    start, _ = widen_window(first, None, rule) if first is not None else (None, None)
    end = None
    if last is not None:
        _, end = widen_window(None, pd.Timestamp(last) + pd.Timedelta(microseconds=1), rule)
    return (None if start is None else start.isoformat(), None if end is None else end.isoformat())


def protect_filters(filters: dict[str, Any], rule: DisclosureRule) -> dict[str, Any]:
    """Store filters with the time window widened to whole blocks (see :func:`widen_window`)."""
    out = dict(filters)
    start, end = widen_window(filters.get("start"), filters.get("end"), rule)
    for name, value in (("start", start), ("end", end)):
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def protect_table(frame: pd.DataFrame, rule: DisclosureRule, *, columns: tuple[str, ...] = COUNT_COLUMNS) -> pd.DataFrame:
    """A copy of ``frame`` whose count columns are protected (:func:`protect_counts`)."""
    out = frame.copy()
    present = [c for c in columns if c in out.columns]
    for column in present:
        out[column] = protect_counts(out[column].to_numpy(), rule)
    lead = next((c for c in LEAD_COLUMNS if c in present), None)
    if lead is not None:
        hidden = np.isnan(out[lead].to_numpy(dtype=float))
        if hidden.any():
            for column in present:
                values = out[column].to_numpy(dtype=float).copy()
                values[hidden] = np.nan
                out[column] = values
    return out


def protect_result(result: gpd.GeoDataFrame, method: str, rule: DisclosureRule) -> gpd.GeoDataFrame:
    """A hotspot result as aggregates-only readers get it: classes and protected counts only.

    Raises
    ------
    NotPermittedError
        For clusters (their hulls pass through event positions): analysts only (HTTP 403).
    """
    if method not in SAFE_COLUMNS:
        raise NotPermittedError(
            f"method: {method} results show single event positions; they need the analyst role",
            [Problem("needs the analyst role", column="method", value=method)],
        )
    keep = [c for c in SAFE_COLUMNS[method] if c in result.columns]
    out = gpd.GeoDataFrame(protect_table(pd.DataFrame(result[keep]), rule), geometry=result.geometry.to_numpy(),
                           crs=result.crs)
    parameters = {k: v for k, v in result.attrs.get("parameters", {}).items()
                  if k not in ("cell_details", "distances", "moran_z", "start", "end")}
    if isinstance(parameters.get("band_details"), dict):
        parameters["band_details"] = {k: v for k, v in parameters["band_details"].items() if k in BAND_DETAILS_KEPT}
    for column in COUNT_COLUMNS:
        if isinstance(parameters.get(column), (int, float, np.integer, np.floating)):
            parameters[column] = float(protect_counts([parameters[column]], rule)[0])
    parameters["disclosure"] = rule.describe()
    out.attrs = {"parameters": parameters}
    return out

