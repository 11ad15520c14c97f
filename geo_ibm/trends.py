"""Temporal patterns of events: quarter-on-quarter change per area, hour × weekday, monthly series."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import stats

from geo_ibm import periods
from geo_ibm.errors import ValidationError
from geo_ibm.eventframe import check_probability, event_times
from geo_ibm.hotspots import benjamini_hochberg

UNITS = ("cell", "canton", "region")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

QUARTER_COLUMNS = ["unit", "quarter", "count", "previous", "change", "change_pct", "p_value", "significant"]


def _units_for(
    events: gpd.GeoDataFrame, by: str, grid: gpd.GeoDataFrame | None, cantons: gpd.GeoDataFrame | None
) -> tuple[np.ndarray, list[Any] | None]:
    """Unit label of each event (None/-1 = outside every unit) and the full list of units if known."""
    if by == "cell":
        if grid is None:
            raise ValidationError("grid is required when by='cell' (build one with geo_ibm.grid.square_grid)")
        from geo_ibm.grid import locate

        if not isinstance(events, gpd.GeoDataFrame):
            raise ValidationError("events must be a GeoDataFrame of points when by='cell'")
        return locate(events, grid), None
    column = by
    if column in events.columns:
        labels = events[column].astype(object).to_numpy()
        known = None
        if cantons is not None and column in cantons.columns:
            known = sorted(set(cantons[column].astype(str)))
        return labels, known
    if cantons is None:
        raise ValidationError(
            f"by={by!r} needs a {by!r} column in events or the cantons layer (columns 'canton', 'region') "
            "to place events in"
        )
    if column not in cantons.columns:
        raise ValidationError(f"cantons has no {column!r} column (columns: {list(cantons.columns)})")
    if not isinstance(events, gpd.GeoDataFrame):
        raise ValidationError(f"events must be a GeoDataFrame of points to place them in {by}s")
    from geo_ibm.io import ensure_working_crs

    layer = ensure_working_crs(cantons, name="cantons")[[column, "geometry"]]
    pts = ensure_working_crs(events, name="events")
    joined = gpd.sjoin(pts[["geometry"]].reset_index(drop=True), layer, how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    return joined[column].astype(object).to_numpy(), sorted(set(layer[column].astype(str)))


def quarter_change(
    events: gpd.GeoDataFrame,
    *,
    by: Literal["cell", "canton", "region"] = "cell",
    grid: gpd.GeoDataFrame | None = None,
    cantons: gpd.GeoDataFrame | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Quarter-on-quarter event counts per area unit, with a test for a change in rate.

    Quarters are calendar quarters in Europe/Luxembourg time, from the first to the last
    event's quarter (empty quarters included). For each unit and quarter ``q`` after the first,
    the counts ``c_q`` and ``c_{q−1}`` are compared with the exact conditional test for two
    Poisson rates: given ``c_q + c_{q−1} = T``, ``c_q ~ Binomial(T, p0)`` under "same daily
    rate", where ``p0 = days(q) / (days(q) + days(q−1))`` allows for quarters of 90–92 days.
    ``p_value`` is two-sided (``scipy.stats.binomtest``). Within each quarter the p-values of
    the units with ``T > 0`` are corrected with Benjamini–Hochberg at false discovery rate
    ``alpha`` (``significant``). The first and last quarters may be only partly covered by
    the data; compare them with care.

    Parameters
    ----------
    events
        Events with ``observed_at``; points in EPSG:2169 when units come from geometry.
    by
        ``"cell"`` (cells of ``grid``), ``"canton"`` or ``"region"`` (the events' ``canton`` /
        ``region`` column, else a point-in-polygon join with ``cantons``; events with no
        value are ignored).
    grid
        A grid from :func:`geo_ibm.grid.square_grid` / ``hex_grid`` (required for ``"cell"``).
    cantons
        The canton layer (``canton``, ``region``, geometry), e.g. :func:`geo_ibm.layers.cantons`.
    alpha
        False discovery rate for ``significant``.

    Returns
    -------
    pandas.DataFrame
        Columns ``unit`` (cell_id, canton or region name), ``quarter`` (e.g. ``"2025Q2"``),
        ``count`` (events in the quarter), ``previous`` (events in the quarter before),
        ``change`` (count − previous), ``change_pct`` (100 · change / previous; NaN when
        previous is 0), ``p_value``, ``significant``. Cells appear only in quarters where they
        have events in ``q`` or ``q−1``; cantons/regions appear in every quarter. Events
        outside every unit are ignored.
    """
    if by not in UNITS:
        raise ValidationError(f"by must be one of {UNITS}, got {by!r}")
    check_probability(alpha, name="alpha")
    when = event_times(events)
    labels, known = _units_for(events, by, grid, cantons)
    quarters = periods.local_periods(when, "Q")
    frame = pd.DataFrame({"unit": labels, "quarter": quarters.to_numpy()})
    frame = frame[pd.notna(frame["unit"]) & (frame["unit"].astype(object) != -1)]
    q_all = pd.period_range(quarters.min(), quarters.max(), freq="Q")
    if len(q_all) < 2:
        raise ValidationError(
            f"events span a single quarter ({q_all[0]}); quarter-on-quarter change needs at least two"
        )
    counts = frame.groupby(["unit", "quarter"]).size().unstack("quarter", fill_value=0)
    counts = counts.reindex(columns=q_all, fill_value=0)
    if known is not None:
        counts = counts.reindex(sorted(set(counts.index.astype(str)) | set(known)), fill_value=0)
    days = np.array([(q.end_time.normalize() - q.start_time).days + 1 for q in q_all], dtype=float)
    rows = []
    values = counts.to_numpy()
    for k in range(1, len(q_all)):
        cur, prev = values[:, k], values[:, k - 1]
        total = cur + prev
        if by == "cell":
            take = total > 0
        else:
            take = np.ones(len(cur), dtype=bool)
        p0 = days[k] / (days[k] + days[k - 1])
        pv = np.full(len(cur), np.nan)
        for idx in np.flatnonzero(take & (total > 0)):
            pv[idx] = stats.binomtest(int(cur[idx]), int(total[idx]), p0).pvalue
        sig = benjamini_hochberg(pv, alpha)
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(prev > 0, 100.0 * (cur - prev) / np.where(prev > 0, prev, 1), np.nan)
        sel = np.flatnonzero(take)
        rows.append(
            pd.DataFrame(
                {
                    "unit": counts.index.to_numpy()[sel],
                    "quarter": str(q_all[k]),
                    "count": cur[sel].astype(np.int64),
                    "previous": prev[sel].astype(np.int64),
                    "change": (cur - prev)[sel].astype(np.int64),
                    "change_pct": pct[sel],
                    "p_value": np.where(np.isnan(pv[sel]), 1.0, pv[sel]),
                    "significant": sig[sel],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)[QUARTER_COLUMNS]


def hour_weekday(events: pd.DataFrame) -> pd.DataFrame:
    """Events per weekday and hour of day, in Europe/Luxembourg local time.

    Returns
    -------
    pandas.DataFrame
        7 × 24 integer counts; index ``Mon`` … ``Sun`` (named ``weekday``), columns 0 … 23
        (named ``hour``, the local clock hour the event fell in).
    """
    when = event_times(events)
    table = np.zeros((7, 24), dtype=np.int64)
    np.add.at(table, (when.dt.day_of_week.to_numpy(), when.dt.hour.to_numpy()), 1)
    return pd.DataFrame(
        table,
        index=pd.Index(WEEKDAYS, name="weekday"),
        columns=pd.Index(range(24), name="hour"),
    )


@dataclass(frozen=True)
class MonthlySeries:
    """Monthly event counts with their seasonal profile and linear trend.

    Attributes
    ----------
    series
        One row per month: ``month`` (first day, a ``pandas.Period`` string such as
        ``"2025-07"``), ``count``, ``calendar_month`` (1–12), ``seasonal_index`` (the month's
        profile ``seasonal_index``), ``trend`` (fitted trend line, seasonal effects averaged
        out), ``deseasonalised`` (``count / seasonal_index``).
    profile
        One row per calendar month 1–12: ``calendar_month``, ``months`` (how many months of
        the series fell on it), ``mean`` (mean count), ``seasonal_index`` (``mean`` divided by
        the mean of the 12 means; 1 = an average month; NaN when the month never occurs).
    slope_per_year
        Trend slope in events per month, per year.
    p_value
        Two-sided p-value of the slope (t-test of the OLS coefficient).
    seasonal_adjusted
        Whether the regression included calendar-month effects (done when the series covers
        at least 24 months; otherwise a plain straight-line fit).
    r_squared
        R² of the fitted model.
    """

    series: pd.DataFrame
    profile: pd.DataFrame
    slope_per_year: float
    p_value: float
    seasonal_adjusted: bool
    r_squared: float


def monthly_series(events: pd.DataFrame, *, start: Any = None, end: Any = None) -> MonthlySeries:
    """Monthly counts (Europe/Luxembourg months), seasonal profile and linear trend.

    The trend is an ordinary least-squares fit of the monthly count on time in years. With at
    least 24 months it includes one effect per calendar month (so a summer peak is not mistaken
    for a trend); ``trend`` then shows the line at the average seasonal level. The p-value is
    the two-sided t-test of the slope with ``n − k`` degrees of freedom.

    Parameters
    ----------
    events
        Events with ``observed_at``.
    start, end
        First and last month to include (inclusive; any date in the month will do). Default:
        the first and last event's month. Events outside are ignored; months without events
        count 0.

    Raises
    ------
    ValidationError
        No events, ``end`` before ``start``, or fewer than 3 months.
    """
    months = periods.local_periods(event_times(events), "M")
    first = periods.local_period(start, "M", name="start") if start is not None else months.min()
    last = periods.local_period(end, "M", name="end") if end is not None else months.max()
    if last < first:
        raise ValidationError(f"end ({last}) is before start ({first})")
    index = pd.period_range(first, last, freq="M")
    if len(index) < 3:
        raise ValidationError(f"start..end spans {len(index)} month(s); a monthly trend needs at least 3")
    counts = months[(months >= first) & (months <= last)].value_counts().reindex(index, fill_value=0).to_numpy()
    cal = np.asarray(index.month)
    prof_mean = np.array([counts[cal == m].mean() if (cal == m).any() else np.nan for m in range(1, 13)])
    prof_n = np.array([(cal == m).sum() for m in range(1, 13)])
    overall = np.nanmean(prof_mean)
    index_by_month = prof_mean / overall if overall > 0 else np.full(12, np.nan)

    years = (np.arange(len(index)) - (len(index) - 1) / 2) / 12.0
    seasonal = len(index) >= 24
    if seasonal:
        present = sorted(set(cal))
        dummies = np.column_stack([(cal == m).astype(float) for m in present])
        design = np.column_stack([years, dummies])
    else:
        design = np.column_stack([years, np.ones(len(index))])
    y = counts.astype(float)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    fitted = design @ coef
    resid = y - fitted
    dof = len(y) - np.linalg.matrix_rank(design)
    sigma2 = float(resid @ resid) / dof if dof > 0 else math.nan
    cov = sigma2 * np.linalg.pinv(design.T @ design)
    se = math.sqrt(cov[0, 0]) if sigma2 > 0 else 0.0
    slope = float(coef[0])
    if se > 0:
        p_value = float(2 * stats.t.sf(abs(slope / se), dof))
    else:
        p_value = 0.0 if slope != 0 else 1.0
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(resid @ resid) / ss_tot if ss_tot > 0 else 1.0
    level = float(coef[1:].mean()) if seasonal else float(coef[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        seasonal_idx = index_by_month[cal - 1]
        deseason = np.where(seasonal_idx > 0, y / seasonal_idx, np.nan)
    series = pd.DataFrame(
        {
            "month": index.astype(str),
            "count": counts.astype(np.int64),
            "calendar_month": cal,
            "seasonal_index": seasonal_idx,
            "trend": level + slope * years,
            "deseasonalised": deseason,
        }
    )
    profile = pd.DataFrame(
        {"calendar_month": np.arange(1, 13), "months": prof_n, "mean": prof_mean, "seasonal_index": index_by_month}
    )
    return MonthlySeries(
        series=series,
        profile=profile,
        slope_per_year=slope,
        p_value=p_value,
        seasonal_adjusted=seasonal,
        r_squared=r2,
    )
