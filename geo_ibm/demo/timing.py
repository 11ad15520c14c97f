"""When demo events happen: hour, month and weekday profiles, the trend, hotspot phases and control operations."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from geo_ibm.demo.attributes import Component
from geo_ibm.settings import LOCAL_TZ

# Hour-of-day profiles (local time). Road smuggling peaks at night; transit hubs follow traffic.
HOURS_NIGHT_ROAD = np.array(
    [2.4, 2.6, 2.6, 2.4, 2.0, 1.3, 0.8, 0.6, 0.5, 0.5, 0.5, 0.5,
     0.5, 0.5, 0.5, 0.6, 0.6, 0.7, 0.8, 0.9, 1.1, 1.4, 1.9, 2.2]
)
HOURS_TRANSIT = np.array(
    [0.5, 0.3, 0.2, 0.2, 0.3, 0.7, 1.3, 1.6, 1.5, 1.1, 1.0, 1.0,
     1.0, 1.0, 1.1, 1.2, 1.4, 1.6, 1.6, 1.4, 1.2, 1.0, 0.9, 0.7]
)
HOURS_URBAN = np.array(
    [1.3, 1.2, 1.0, 0.8, 0.6, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9,
     1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.2, 1.2, 1.3, 1.3, 1.3, 1.3]
)
# Month (Jan..Dec) and weekday (Mon..Sun) factors shared by every component.
_MONTH_FACTOR = np.array([0.80, 0.78, 0.88, 1.00, 1.10, 1.35, 1.50, 1.55, 1.35, 1.05, 0.90, 0.85])
_WEEKDAY_FACTOR = np.array([0.95, 0.88, 0.90, 1.00, 1.18, 1.12, 1.02])
_TREND_END = 1.8  # intensity at the end of the period relative to its start
_OPERATION_BOOST = 1.6

Operation = tuple[np.ndarray, set[str], str]
"""A control operation: its mask over the hours, the keys of the components it targets, its id."""


@dataclass(frozen=True)
class Phases:
    """When the emerging and fading hotspots start and end, and their level at every hour."""

    emerging_start: pd.Timestamp
    fading_full_until: pd.Timestamp
    fading_end: pd.Timestamp
    emerging_ramp: np.ndarray  # 0 before the start, rising 0.4 -> 1 afterwards
    fading_level: np.ndarray  # 1 early, falling to 0


def _quarter_start(stamp: pd.Timestamp) -> pd.Timestamp:
    month = 3 * ((stamp.month - 1) // 3) + 1
    return pd.Timestamp(year=stamp.year, month=month, day=1, tz=LOCAL_TZ)


def hotspot_phases(t0: pd.Timestamp, t1: pd.Timestamp, local: pd.DatetimeIndex) -> Phases:
    span = t1 - t0
    # The emerging hotspot starts with the third-to-last quarter, or halfway for short periods.
    last_quarter = _quarter_start(t1 - pd.Timedelta(seconds=1))
    emerging = last_quarter - pd.DateOffset(months=6)
    emerging = max(pd.Timestamp(emerging).tz_convert(LOCAL_TZ), t0 + span / 2)
    fading_full_until = (t0 + span * 0.40).floor("D")
    fading_end = max((t0 + span * 0.65).floor("D"), fading_full_until + pd.Timedelta(hours=1))
    stamps = local.asi8
    e = pd.Timestamp(emerging).as_unit(local.unit).value
    ramp = np.where(stamps >= e, 0.4 + 0.6 * (stamps - e) / max(t1.as_unit(local.unit).value - e, 1), 0.0)
    f0 = fading_full_until.as_unit(local.unit).value
    f1 = fading_end.as_unit(local.unit).value
    level = np.clip((f1 - stamps) / max(f1 - f0, 1), 0.0, 1.0)
    return Phases(emerging, fading_full_until, fading_end, ramp, level)


def hourly_intensity(
    components: list[Component],
    local: pd.DatetimeIndex,
    t0: pd.Timestamp,
    t1: pd.Timestamp,
    phases: Phases,
    operations: list[Operation],
) -> np.ndarray:
    """Expected events per component (rows) and hour (columns), up to a common factor."""
    hour = local.hour.to_numpy()
    month = local.month.to_numpy() - 1
    weekday = local.day_of_week.to_numpy()
    elapsed = np.asarray((local - local[0]) / (t1 - t0), dtype=float)
    base = (1.0 + (_TREND_END - 1.0) * elapsed) * _MONTH_FACTOR[month] * _WEEKDAY_FACTOR[weekday]
    out = np.empty((len(components), len(local)))
    for i, comp in enumerate(components):
        row = comp.weight * base * comp.hours[hour] * _activity(comp.activity, phases, month)
        for op_mask, targets, _ in operations:
            if comp.key in targets:
                row = np.where(op_mask, row * _OPERATION_BOOST, row)
        out[i] = row
    return out


def _activity(kind: str, phases: Phases, month: np.ndarray) -> np.ndarray | float:
    if kind == "emerging":
        return phases.emerging_ramp
    if kind == "fading":
        return phases.fading_level
    if kind == "seasonal":
        return np.where((month >= 5) & (month <= 8), 1.0, 0.06)
    return 1.0


def draw_operations(rng: np.random.Generator, local: pd.DatetimeIndex, components: list[Component]) -> list[Operation]:
    """Named control operations: two to four per year, 10-21 days, on a few components each."""
    keys = [c.key for c in components if c.key not in ("urban", "other")]
    ops = []
    stamps = local.asi8
    step = pd.Timedelta(hours=1).as_unit(local.unit).value
    for year in range(local[0].year, local[-1].year + 1):
        count = int(rng.integers(2, 5))
        starts = np.sort(rng.integers(0, 365 - 21, count))
        for number, day in enumerate(starts, start=1):
            begin = pd.Timestamp(year=year, month=1, day=1, tz=LOCAL_TZ) + pd.Timedelta(days=int(day))
            length = int(rng.integers(10, 22))
            b = begin.as_unit(local.unit).value
            mask = (stamps >= b) & (stamps < b + length * 24 * step)
            targets = set(rng.choice(keys, size=min(len(keys), int(rng.integers(2, 5))), replace=False).tolist()) if keys else set()
            if mask.any() and targets:
                ops.append((mask, targets, f"OP-{year}-{number:02d}"))
    return ops
