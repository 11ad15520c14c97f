"""Tests for geo_ibm.trends: counts against pandas, tests against scipy, exact synthetic trends."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy import stats

from geo_ibm.errors import ValidationError
from geo_ibm.grid import square_grid
from geo_ibm.trends import hour_weekday, monthly_series, quarter_change

TZ = "Europe/Luxembourg"
AREA = shapely.box(60_000, 60_000, 100_000, 130_000)


def _events(xy, times, **cols) -> gpd.GeoDataFrame:
    xy = np.asarray(xy, dtype=float)
    return gpd.GeoDataFrame(
        {"observed_at": pd.DatetimeIndex(times)} | cols, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:2169"
    )


def _in_quarter(rng, year: int, quarter: int, n: int) -> pd.DatetimeIndex:
    start = pd.Timestamp(year=year, month=3 * quarter - 2, day=1, tz=TZ)
    span = (start + pd.offsets.QuarterBegin(startingMonth=1) - start).total_seconds()
    return start + pd.to_timedelta(rng.uniform(0, span, n), unit="s")


@pytest.fixture(scope="module")
def quarterly():
    """Canton A doubles from Q1 to Q2 2025 (60 -> 120), B stays flat (50 -> 50), C appears (0 -> 4)."""
    rng = np.random.default_rng(1)
    parts = []
    for canton, q1, q2, x in [("A", 60, 120, 70_000.0), ("B", 50, 50, 90_000.0), ("C", 0, 4, 80_000.0)]:
        for quarter, k in [(1, q1), (2, q2)]:
            times = _in_quarter(rng, 2025, quarter, k)
            xy = np.c_[np.full(k, x) + rng.uniform(-4_000, 4_000, k), rng.uniform(65_000, 125_000, k)]
            parts.append(_events(xy, times, canton=[canton] * k, region=["R1" if canton != "B" else "R2"] * k))
    return pd.concat(parts, ignore_index=True)


def test_quarter_change_by_canton_against_scipy(quarterly):
    out = quarter_change(quarterly, by="canton")
    assert list(out.columns) == ["unit", "quarter", "count", "previous", "change", "change_pct", "p_value", "significant"]
    out = out.set_index("unit")
    assert (out.quarter == "2025Q2").all()
    assert out.loc["A", ["count", "previous", "change"]].tolist() == [120, 60, 60]
    assert out.loc["A", "change_pct"] == pytest.approx(100.0)
    assert np.isnan(out.loc["C", "change_pct"])
    p0 = 91 / (91 + 90)  # Q2 2025 has 91 days, Q1 90
    for unit, (c, p) in {"A": (120, 60), "B": (50, 50), "C": (4, 0)}.items():
        assert out.loc[unit, "p_value"] == pytest.approx(stats.binomtest(c, c + p, p0).pvalue)
    adjusted = stats.false_discovery_control(out.p_value.to_numpy())
    np.testing.assert_array_equal(out.significant.to_numpy(), adjusted <= 0.05)
    assert out.loc["A", "significant"] and not out.loc["B", "significant"]


def test_quarter_change_region_from_canton_layer(quarterly):
    cantons = gpd.GeoDataFrame(
        {"canton": ["West", "East"], "region": ["RW", "RE"]},
        geometry=[shapely.box(60_000, 60_000, 80_000, 130_000), shapely.box(80_000, 60_000, 100_000, 130_000)],
        crs="EPSG:2169",
    )
    events = quarterly.drop(columns=["canton", "region"])
    out = quarter_change(events, by="region", cantons=cantons).set_index("unit")
    x = events.geometry.x
    q = events.observed_at.dt.tz_convert(TZ).dt.quarter
    west_q2 = int(((x < 80_000) & (q == 2)).sum())
    east_q1 = int(((x >= 80_000) & (q == 1)).sum())
    assert out.loc["RW", "count"] == west_q2 and out.loc["RE", "previous"] == east_q1
    assert sorted(out.index) == ["RE", "RW"]


def test_quarter_change_by_cell_matches_floor_division():
    rng = np.random.default_rng(3)
    n = 400
    xy = rng.uniform([60_000, 60_000], [100_000, 130_000], (n, 2))
    times = pd.Timestamp("2024-11-15", tz=TZ) + pd.to_timedelta(rng.uniform(0, 200, n), unit="D")
    events = _events(xy, times)
    grid = square_grid(AREA, cell=10_000.0)
    out = quarter_change(events, by="cell", grid=grid)
    spec = grid.attrs["grid"]
    col = np.floor((xy[:, 0] - spec.x0) / 10_000).astype(int)
    row = np.floor((xy[:, 1] - spec.y0) / 10_000).astype(int)
    cell = spec.lookup[row, col]
    quarter = pd.Series(times.tz_convert(TZ).tz_localize(None)).dt.to_period("Q").astype(str).to_numpy()
    ref = pd.crosstab(cell, quarter)
    assert sorted(out.quarter.unique()) == ["2025Q1", "2025Q2"]
    for _, r in out.iterrows():
        q_prev = str(pd.Period(r.quarter, "Q") - 1)
        assert r["count"] == ref.loc[r.unit, r.quarter] and r.previous == ref.loc[r.unit, q_prev]
    # Only cells with events in q or q-1 are listed.
    assert ((out["count"] + out.previous) > 0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"by": "commune"}, "by must be one of"),
        ({"by": "cell"}, "grid is required when by='cell'"),
        ({"by": "canton", "alpha": 2.0}, "alpha must be between 0 and 1"),
    ],
)
def test_quarter_change_bad_arguments(quarterly, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        quarter_change(quarterly, **kwargs)


def test_quarter_change_bad_events(quarterly):
    with pytest.raises(ValidationError, match="empty"):
        quarter_change(quarterly.iloc[:0], by="canton")
    with pytest.raises(ValidationError, match="single quarter"):
        quarter_change(quarterly.iloc[:60], by="canton")
    with pytest.raises(ValidationError, match="needs a 'region' column"):
        quarter_change(quarterly.drop(columns="region"), by="region")
    with pytest.raises(ValidationError, match="observed_at"):
        quarter_change(quarterly.drop(columns="observed_at"), by="canton")


def test_hour_weekday_in_local_time():
    stamps_utc = pd.to_datetime(
        ["2025-03-30 00:30", "2025-03-30 01:30", "2025-07-07 22:15", "2025-12-31 23:59", "2025-07-07 22:45"], utc=True
    )
    events = _events(np.full((5, 2), 80_000.0), stamps_utc)
    table = hour_weekday(events)
    assert table.shape == (7, 24) and list(table.index) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert table.to_numpy().sum() == 5
    ref = np.zeros((7, 24), int)
    for s in stamps_utc:
        local = datetime.fromtimestamp(s.timestamp(), tz=timezone.utc).astimezone(ZoneInfo(TZ))
        ref[local.weekday(), local.hour] += 1
    np.testing.assert_array_equal(table.to_numpy(), ref)
    # 01:30 UTC on the spring DST day is 03:30 CEST; 22:15 UTC on a July Monday is 00:15 Tuesday.
    assert table.loc["Sun", 3] == 1 and table.loc["Tue", 0] == 2 and table.loc["Thu", 0] == 1


def _monthly_events(counts: np.ndarray, first: str) -> gpd.GeoDataFrame:
    months = pd.period_range(first, periods=len(counts), freq="M")
    times = []
    for m, k in zip(months, counts):
        start = pd.Timestamp(m.start_time, tz=TZ)
        times.extend(start + pd.to_timedelta(np.linspace(0.1, 25, int(k)), unit="D"))
    return _events(np.full((len(times), 2), 80_000.0), pd.DatetimeIndex(times))


SEASON = np.array([-5, -6, -3, 0, 2, 6, 9, 10, 5, 0, -4, -6])


def test_monthly_series_recovers_exact_trend_and_season():
    n = 36
    counts = 40 + 2 * np.arange(n) + SEASON[np.arange(n) % 12]
    res = monthly_series(_monthly_events(counts, "2023-01"))
    assert res.seasonal_adjusted
    assert res.slope_per_year == pytest.approx(24.0)
    assert res.p_value < 1e-12 and res.r_squared == pytest.approx(1.0)
    s = res.series
    assert list(s.columns) == ["month", "count", "calendar_month", "seasonal_index", "trend", "deseasonalised"]
    assert s.month.iloc[0] == "2023-01" and s.month.iloc[-1] == "2025-12"
    np.testing.assert_array_equal(s["count"], counts)
    # The trend line passes through the seasonally averaged level.
    np.testing.assert_allclose(s.trend, 40 + 2 * np.arange(n) + SEASON.mean())
    means = counts.reshape(3, 12).mean(axis=0)
    np.testing.assert_allclose(res.profile["mean"], means)
    np.testing.assert_allclose(res.profile.seasonal_index, means / means.mean())
    assert (res.profile.months == 3).all()


def test_monthly_series_short_plain_fit_matches_linregress():
    rng = np.random.default_rng(4)
    counts = rng.poisson(30 + np.arange(10), 10)
    res = monthly_series(_monthly_events(counts, "2024-03"))
    ref = stats.linregress(np.arange(10) / 12, counts)
    assert not res.seasonal_adjusted
    assert res.slope_per_year == pytest.approx(ref.slope)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.r_squared == pytest.approx(ref.rvalue**2)
    assert np.isnan(res.profile.set_index("calendar_month").loc[2, "mean"])


def test_monthly_series_window_and_empty_months():
    events = _monthly_events(np.array([5, 0, 7, 9]), "2025-01")
    res = monthly_series(events, start="2024-11-20", end="2025-05")
    assert res.series.month.tolist() == ["2024-11", "2024-12", "2025-01", "2025-02", "2025-03", "2025-04", "2025-05"]
    assert res.series["count"].tolist() == [0, 0, 5, 0, 7, 9, 0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": "2025-05", "end": "2025-01"}, "end .* is before start"),
        ({"start": "2025-01", "end": "2025-02"}, "at least 3"),
        ({"start": "not a date"}, "start is not a date"),
    ],
)
def test_monthly_series_bad_input(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        monthly_series(_monthly_events(np.array([5, 6, 7]), "2025-01"), **kwargs)


def test_naive_times_are_local_including_dst_fold():
    naive = pd.Series(pd.to_datetime(["2025-10-26 02:30", "2025-03-30 02:30", "2025-07-01 12:00"]))
    events = pd.DataFrame({"observed_at": naive})
    table = hour_weekday(events)
    # The repeated 02:30 on the autumn change stays at 2 h; the skipped spring 02:30 moves to 03:00.
    assert table.loc["Sun", 2] == 1 and table.loc["Sun", 3] == 1 and table.loc["Tue", 12] == 1
    with pytest.raises(ValidationError, match="row 2"):
        hour_weekday(pd.DataFrame({"observed_at": ["2025-01-01 10:00", "yesterday"]}))
