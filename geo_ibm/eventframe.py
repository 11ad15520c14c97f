"""Events as the statistics read them: coordinates, weights, times, period selection, argument checks."""
from __future__ import annotations

import math
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm import periods
from geo_ibm.errors import CrsError, Problem, ValidationError
from geo_ibm.events import parse_timestamps
from geo_ibm.io import ensure_working_crs
from geo_ibm.settings import WORKING_CRS

TIME_COLUMN = "observed_at"
"""The column holding when each event was observed."""

_MAX_PROBLEMS = 50


# --------------------------------------------------------------------------------------------
# what each event is: where, how much, when


def event_xy(events: gpd.GeoDataFrame, *, name: str = "events") -> np.ndarray:
    """The ``(n, 2)`` point coordinates of ``events``, which must be in EPSG:2169.

    Raises
    ------
    CrsError
        ``events`` has no CRS or another one (convert with ``to_crs`` first, or use
        :func:`select_events`, which converts).
    ValidationError
        Not a GeoDataFrame, or a geometry that is missing, empty or not a point.
    """
    if not isinstance(events, gpd.GeoDataFrame):
        raise ValidationError(f"{name} must be a GeoDataFrame of points, got {type(events).__name__}")
    if events.crs is None:
        raise CrsError(f"{name} has no CRS; expected {WORKING_CRS}")
    if events.crs.to_epsg() != 2169:
        raise CrsError(f"{name} is in {events.crs.to_string()}; expected {WORKING_CRS} (convert with to_crs first)")
    geoms = np.asarray(events.geometry.values)
    # get_x/get_y are faster than get_coordinates and give NaN for missing and non-point
    # geometries; GEOS refuses an empty Point, so those are masked out on a second pass only.
    xy = np.full((len(geoms), 2), np.nan)
    try:
        xy[:, 0] = shapely.get_x(geoms)
        xy[:, 1] = shapely.get_y(geoms)
    except shapely.errors.GEOSException:
        keep = ~shapely.is_empty(geoms)
        xy[keep, 0] = shapely.get_x(geoms[keep])
        xy[keep, 1] = shapely.get_y(geoms[keep])
    if not np.isfinite(xy).all():
        bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
        first = int(bad[0])
        g = geoms[first]
        what = "missing" if g is None else f"{g.geom_type}{' (empty)' if g.is_empty else ''}"
        raise ValidationError(
            f"{name} must contain only non-empty Point geometries; row {first + 1} is {what} ({bad.size} such rows)"
        )
    return xy


def event_weights(
    events: pd.DataFrame,
    weights: str | Sequence[float] | np.ndarray | None,
    *,
    name: str = "weights",
    negative: bool = False,
) -> np.ndarray | None:
    """One weight per event, or ``None`` when every event counts 1.

    Parameters
    ----------
    events
        The events the weights belong to.
    weights
        ``None``, the name of a numeric column of ``events`` (e.g. ``"persons"``), or one
        value per event.
    name
        The caller's parameter, named in error messages.
    negative
        Accept negative weights (a Gi* sum of values); a density or a count needs ``>= 0``.

    Raises
    ------
    ValidationError
        An unknown column, the wrong number of values, or a missing, non-numeric, infinite
        (or, unless ``negative``, negative) weight; the problems list each bad event.
    """
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights not in events.columns:
            raise ValidationError(
                f"{name}: column {weights!r} not found in events (columns: {list(events.columns)})",
                [Problem(f"weight column {weights!r} not found", column=name, value=weights)],
            )
        raw = events[weights]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        column = weights
    else:
        try:
            values = np.asarray(weights, dtype=float)
        except (TypeError, ValueError):
            raise ValidationError(
                f"{name} must be numbers, one per event", [Problem("not a number", column=name)]
            ) from None
        if values.shape != (len(events),):
            raise ValidationError(
                f"{name} must have one value per event ({len(events)}), got shape {values.shape}",
                [Problem("wrong length", column=name, value=values.shape)],
            )
        raw = pd.Series(values)
        column = name
    ok = np.isfinite(values) if negative else np.isfinite(values) & (values >= 0)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        first = int(bad[0])
        rule = "finite" if negative else "finite and >= 0"
        raise ValidationError(
            f"{name} must be {rule}; event {first + 1} has {_plain(raw.iloc[first])!r} ({bad.size} such events)",
            [Problem(f"not {rule}", row=int(i) + 1, column=column, value=_plain(raw.iloc[i])) for i in bad[:_MAX_PROBLEMS]],
        )
    return values


def event_times(events: pd.DataFrame, *, name: str = "events") -> pd.Series:
    """``observed_at`` of each event as tz-aware Europe/Luxembourg timestamps (same index).

    Values are read as the event schema reads them (:func:`geo_ibm.events.parse_timestamps`):
    naive times are local wall-clock time.

    Raises
    ------
    ValidationError
        Not a table, no ``observed_at`` column, no rows, or a value that is not a date.
    """
    if not isinstance(events, pd.DataFrame):
        raise ValidationError(f"{name} must be a (Geo)DataFrame, got {type(events).__name__}")
    if TIME_COLUMN not in events.columns:
        raise ValidationError(f"{name} has no {TIME_COLUMN!r} column", [Problem("missing column", column=TIME_COLUMN)])
    if len(events) == 0:
        raise ValidationError(f"{name} is empty; nothing to analyse")
    when = parse_timestamps(events[TIME_COLUMN])
    missing = when.isna().to_numpy()
    if missing.any():
        bad = np.flatnonzero(missing)
        first = int(bad[0])
        raw = events[TIME_COLUMN]
        raise ValidationError(
            f"{name}: {TIME_COLUMN} is missing or not a date in row {first + 1} (value {raw.iloc[first]!r})",
            [Problem("not a date", row=int(i) + 1, column=TIME_COLUMN, value=raw.iloc[i]) for i in bad[:_MAX_PROBLEMS]],
        )
    return when


def select_events(
    events: gpd.GeoDataFrame,
    *,
    start: object = None,
    end: object = None,
    name: str = "events",
) -> gpd.GeoDataFrame:
    """Point events in EPSG:2169 observed in ``[start, end)``, empty geometries dropped.

    ``start``/``end`` are anything :func:`geo_ibm.periods.to_timestamp` reads (naive values
    are Europe/Luxembourg time); ``end`` is exclusive even when it is a date alone.

    Raises
    ------
    CrsError
        ``events`` has no CRS or one that cannot be converted to EPSG:2169.
    ValidationError
        Not a GeoDataFrame, geometries that are not points, ``start``/``end`` given without an
        ``observed_at`` column or not dates, or nothing left to analyse.
    """
    if not isinstance(events, gpd.GeoDataFrame):
        raise ValidationError(f"{name} must be a GeoDataFrame, got {type(events).__name__}")
    lower = None if start is None else periods.to_timestamp(start, name="start")
    upper = None if end is None else periods.to_timestamp(end, name="end")
    frame = ensure_working_crs(events, name=name)
    geoms = frame.geometry.to_numpy()
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not present.all():
        frame, geoms = frame[present], geoms[present]
    if len(frame) and (shapely.get_type_id(geoms) != 0).any():  # type id 0 is Point
        bad = sorted(set(frame.geometry.geom_type) - {"Point"})
        raise ValidationError(f"{name} must be points, found {', '.join(bad)}")
    if start is not None or end is not None:
        if TIME_COLUMN not in frame.columns:
            raise ValidationError(
                f"{name} has no {TIME_COLUMN!r} column to select by start/end",
                [Problem("missing column", column=TIME_COLUMN)],
            )
        if len(frame):
            when = event_times(frame, name=name)
            keep = np.ones(len(frame), dtype=bool)
            if lower is not None:
                keep &= (when >= lower).to_numpy()
            if upper is not None:
                keep &= (when < upper).to_numpy()
            frame = frame[keep]
    if len(frame) == 0:
        span = f" between start={start!s} and end={end!s}" if (start is not None or end is not None) else ""
        raise ValidationError(f"no {name} to analyse{span}", [Problem("empty selection", column=TIME_COLUMN)])
    return frame


# --------------------------------------------------------------------------------------------
# argument checks shared by the statistics


def check_length(value: object, *, name: str) -> float:
    """``value`` as a positive, finite number of metres, or ValidationError naming ``name``."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(
            f"{name} must be a number of metres, got {value!r}", [Problem("not a number", column=name, value=value)]
        ) from None
    if not math.isfinite(number) or number <= 0:
        raise ValidationError(
            f"{name} must be a positive number of metres, got {value!r}",
            [Problem("must be > 0", column=name, value=value)],
        )
    return number


def check_fraction(value: object, *, name: str = "min_area_frac") -> float:
    """``value`` as a number from 0 to 1 (both allowed), or ValidationError naming ``name``."""
    number = as_number(value)
    if not 0.0 <= number <= 1.0:
        raise ValidationError(
            f"{name} must be between 0 and 1, got {value!r}", [Problem("out of range", column=name, value=value)]
        )
    return number


def check_probability(value: object, *, name: str = "alpha") -> float:
    """``value`` as a number strictly between 0 and 1 (a significance level, a share)."""
    number = as_number(value)
    if not 0.0 < number < 1.0:
        raise ValidationError(
            f"{name} must be between 0 and 1 (exclusive), got {value!r}",
            [Problem("out of range", column=name, value=value)],
        )
    return number


def check_whole(value: object, *, name: str, minimum: int = 0) -> int:
    """``value`` as a whole number of at least ``minimum``, or ValidationError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValidationError(
            f"{name} must be a whole number >= {minimum}, got {value!r}",
            [Problem("out of range", column=name, value=value)],
        )
    return int(value)


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (for messages: ``-1.0``, not ``np.float64(-1.0)``)."""
    return value.item() if isinstance(value, np.generic) else value


def as_number(value: object) -> float:
    """``value`` as a float, NaN when it is not a number (booleans included): checks then need one range test."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


__all__ = [
    "TIME_COLUMN",
    "as_number",
    "check_fraction",
    "check_length",
    "check_probability",
    "check_whole",
    "event_times",
    "event_weights",
    "event_xy",
    "select_events",
]
