"""The interception event schema and its vectorised validation.

An event is one interception of one group of people by a police or customs unit. Input
files (CSV, XLSX, GeoJSON, GeoPackage) are read by :func:`geo_ibm.io.read_event_table`
and checked here; the store only ever holds rows that passed :func:`validate_events`.

Input columns (names are trimmed and matched case-insensitively; aliases in brackets)

=============== ======== =================================================================
column          required meaning and accepted values
=============== ======== =================================================================
event_id        yes      unique text identifier (unique within the file and the store)
observed_at     yes      date and time of the interception: ISO 8601 (``2025-07-14T06:30``,
                         ``2025-07-14 06:30:00+02:00``, ``...Z``), ``dd/mm/yyyy hh:mm[:ss]``,
                         ``dd.mm.yyyy hh:mm[:ss]``, a date alone, or an XLSX date cell.
                         Without an offset the time is local (Europe/Luxembourg). Kept to
                         the second; must not lie in the future nor before 1990.
lat, lon        one of   WGS84 degrees (lat: ``latitude``; lon: ``lng``, ``long``,
                the two  ``longitude``)
x, y            pairs    EPSG:2169 metres (x: ``easting``; y: ``northing``). When a row has
                         both pairs, x/y wins. Points must lie inside Luxembourg's outline
                         plus a margin (``GEO_IBM_MARGIN_M``, default 2 km).
location_kind   yes      motorway, rest_area, border_crossing, train_station, bus_station,
                         urban, other
persons         yes      integer >= 1: people intercepted (smugglers included), <= 100 000
smugglers       yes      integer >= 0: suspected smugglers among them, <= 100 000
transport_mode  yes      car, van, truck, bus, train, taxi, on_foot, other
entry_country   yes      BE, FR, DE, unknown: the neighbour the group came from
operation_id    no       text: the control operation the event belongs to
source_unit     no       text: the unit that reported the event
notes           no       free text
=============== ======== =================================================================

Codes are trimmed and matched case-insensitively and stored in the spelling above. A
GeoDataFrame may be validated directly: its point geometry then stands for x/y.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.settings import LOCAL_TZ, WORKING_CRS
from geo_ibm.settings import margin_m as default_margin_m

LOCATION_KINDS: tuple[str, ...] = (
    "motorway",
    "rest_area",
    "border_crossing",
    "train_station",
    "bus_station",
    "urban",
    "other",
)
TRANSPORT_MODES: tuple[str, ...] = ("car", "van", "truck", "bus", "train", "taxi", "on_foot", "other")
ENTRY_COUNTRIES: tuple[str, ...] = ("BE", "FR", "DE", "unknown")

CODE_LISTS: dict[str, tuple[str, ...]] = {
    "location_kind": LOCATION_KINDS,
    "transport_mode": TRANSPORT_MODES,
    "entry_country": ENTRY_COUNTRIES,
}

EARLIEST_DATE = "1990-01-01"
"""Earlier dates are taken for typos in the year (e.g. 0025 for 2025) and refused."""

MAX_COUNT = 100_000
"""Largest accepted ``persons``/``smugglers``: guards against typos and integer overflow."""

REQUIRED_COLUMNS: tuple[str, ...] = (
    "event_id",
    "observed_at",
    "location_kind",
    "persons",
    "smugglers",
    "transport_mode",
    "entry_country",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("operation_id", "source_unit", "notes")

EVENT_COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "geometry")
"""Columns of a validated event GeoDataFrame, in order."""

COLUMN_ALIASES: dict[str, str] = {
    "lat": "lat",
    "latitude": "lat",
    "lon": "lon",
    "lng": "lon",
    "long": "lon",
    "longitude": "lon",
    "x": "x",
    "easting": "x",
    "y": "y",
    "northing": "y",
}
"""Lower-case spellings of the location columns and the canonical name each stands for."""

GEOMETRY_ERROR_COLUMN = "_geometry_error"
"""Column a reader may add to say why a feature's geometry gave no x/y (e.g. not a point)."""

_DMY_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y")
_TO_2169 = None


def _transformer() -> Transformer:
    global _TO_2169
    if _TO_2169 is None:
        _TO_2169 = Transformer.from_crs("EPSG:4326", WORKING_CRS, always_xy=True)
    return _TO_2169


def _text(values: pd.Series | np.ndarray) -> np.ndarray:
    """Trimmed text as an object array; empty cells become ``None``.

    Plain list comprehensions over object arrays: several times faster than pandas' string
    methods when pyarrow is not installed.
    """
    arr = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    out = np.empty(len(arr), dtype=object)
    out[:] = [(v.strip() or None) if v.__class__ is str else _cell_text(v) for v in arr]
    return out


def _cell_text(value: Any) -> str | None:
    if _isna(value):
        return None
    return str(value).strip() or None


def _blank(values: pd.Series, where: np.ndarray) -> np.ndarray:
    """True where ``values`` is empty, looking only at the positions in ``where``."""
    out = np.zeros(len(values), dtype=bool)
    idx = np.flatnonzero(where)
    if len(idx):
        out[idx] = pd.isna(_text(values.to_numpy(dtype=object)[idx]))
    return out


def _number(values: pd.Series) -> np.ndarray:
    """Numbers as float64; anything that is not a finite number becomes NaN."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        nums = np.array(values.to_numpy(dtype="float64", na_value=np.nan), dtype="float64")
        nums[~np.isfinite(nums)] = np.nan
        return nums
    arr = values.to_numpy(dtype=object)
    nums = pd.to_numeric(arr, errors="coerce").astype("float64")
    retry = np.flatnonzero(np.isnan(nums) & ~pd.isna(arr))
    if len(retry):
        # Decimal commas are common in Luxembourg spreadsheets (49,61); accept them.
        fixed = [str(v).strip().replace(",", ".") for v in arr[retry]]
        nums[retry] = pd.to_numeric(np.array(fixed, dtype=object), errors="coerce")
    nums[~np.isfinite(nums)] = np.nan  # 'inf' parses as a number but is no coordinate or count
    return nums


def _localize(naive: pd.Series) -> pd.Series:
    """Interpret naive timestamps as Europe/Luxembourg wall-clock time.

    In the autumn hour that occurs twice the summer-time reading is taken; a time skipped in
    spring is moved forward to the first valid instant.
    """
    ambiguous = np.ones(len(naive), dtype=bool)
    return naive.dt.tz_localize(LOCAL_TZ, ambiguous=ambiguous, nonexistent="shift_forward")


def parse_timestamps(series: pd.Series) -> pd.Series:
    """Parse event timestamps to tz-aware Europe/Luxembourg values; unparseable ones become NaT.

    Accepts ISO 8601 (with or without offset), ``dd/mm/yyyy hh:mm[:ss]``, ``dd.mm.yyyy ...``,
    dates alone and datetime values. Naive values are local time (Europe/Luxembourg).
    """
    index = series.index
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert(LOCAL_TZ)
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return _localize(series.astype("datetime64[us]"))
    arr = series.to_numpy(dtype=object)
    if len(arr) and not isinstance(arr[0], str):
        arr = np.array([v.isoformat() if hasattr(v, "isoformat") else v for v in arr], dtype=object)
    text = _text(arr)
    # Microseconds since the epoch: unlike nanoseconds they hold any year a typo may produce.
    utc_us = np.full(len(arr), np.iinfo(np.int64).min, dtype=np.int64)  # NaT
    present = np.flatnonzero(text != None)  # noqa: E711 - elementwise comparison
    if len(present):
        strings = text[present]
        dmy = np.array([len(v) > 2 and (v[1] in "/." or v[2] in "/.") for v in strings], dtype=bool)
        # A date part has '-' at fixed places only; a sign or Z after it is a UTC offset.
        aware = np.array([v[-1] in "Zz" or "+" in v[10:] or "-" in v[10:] for v in strings], dtype=bool) & ~dmy
        naive = ~aware & ~dmy
        if aware.any():
            parsed = pd.to_datetime(pd.Series(strings[aware]), format="ISO8601", utc=True, errors="coerce")
            utc_us[present[aware]] = _us(parsed.dt.tz_convert("UTC").dt.tz_localize(None))
        if naive.any():
            parsed = pd.to_datetime(pd.Series(strings[naive]), format="ISO8601", errors="coerce")
            if isinstance(parsed.dtype, pd.DatetimeTZDtype):  # an offset the test above missed
                parsed = parsed.dt.tz_convert(LOCAL_TZ)
            else:
                parsed = _localize(parsed.astype("datetime64[us]"))
            utc_us[present[naive]] = _us(parsed.dt.tz_convert("UTC").dt.tz_localize(None))
        if dmy.any():
            day_first = pd.Series([v.replace(".", "/") for v in strings[dmy]], dtype=object)
            parsed = pd.Series(pd.NaT, index=day_first.index, dtype="datetime64[us]")
            for fmt in _DMY_FORMATS:
                todo = parsed.isna().to_numpy()
                if not todo.any():
                    break
                parsed[todo] = pd.to_datetime(day_first[todo], format=fmt, errors="coerce").astype("datetime64[us]")
            local = _localize(parsed)
            utc_us[present[dmy]] = _us(local.dt.tz_convert("UTC").dt.tz_localize(None))
    stamps = pd.DatetimeIndex(utc_us.view("datetime64[us]")).tz_localize("UTC").tz_convert(LOCAL_TZ)
    return pd.Series(stamps, index=index)


def _us(naive_utc: pd.Series) -> np.ndarray:
    return naive_utc.astype("datetime64[us]").to_numpy().view(np.int64)


def canonical_columns(columns: Iterable[Any]) -> tuple[dict[str, str], list[Problem]]:
    """Map each input column name to its canonical name (trimmed, lower-case, aliases resolved).

    Returns the mapping ``{original: canonical}`` and problems for names that collide.
    """
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    problems: list[Problem] = []
    for col in columns:
        name = str(col).strip().lower()
        canon = COLUMN_ALIASES.get(name, name)
        if canon in seen:
            problems.append(
                Problem(
                    f"columns {seen[canon]!r} and {col!r} both give {canon!r}; keep one of them",
                    column=str(col),
                )
            )
            continue
        seen[canon] = str(col)
        mapping[str(col)] = canon
    return mapping, problems


def _row_numbers(frame: pd.DataFrame) -> np.ndarray:
    if frame.index.name == "row" and pd.api.types.is_integer_dtype(frame.index.dtype):
        return frame.index.to_numpy(dtype=np.int64)
    return np.arange(1, len(frame) + 1, dtype=np.int64)


def _problems(
    mask: np.ndarray, rows: np.ndarray, raw: pd.Series | None, *, file: str, column: str, reason: str
) -> list[Problem]:
    idx = np.flatnonzero(mask)
    if not len(idx):
        return []
    values = raw.to_numpy(dtype=object)[idx] if raw is not None else [None] * len(idx)
    return [
        Problem(reason, file=file, row=int(r), column=column, value=None if _isna(v) else v)
        for r, v in zip(rows[idx].tolist(), values)
    ]


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def validate_events(
    frame: pd.DataFrame,
    *,
    file: str,
    outline: Any = None,
    margin_m: float | None = None,
    now: pd.Timestamp | None = None,
) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Check an event table against the schema and return the valid rows and every problem.

    Parameters
    ----------
    frame
        Rows as read by :func:`geo_ibm.io.read_event_table` (index named ``row`` holding the
        row number the user sees) or any DataFrame / point GeoDataFrame; without a ``row``
        index, rows are numbered from 1.
    file
        Name of the source, used in every problem.
    outline
        Luxembourg's outline as a shapely geometry in EPSG:2169 (the caller passes
        ``geo_ibm.layers.luxembourg_outline()``); ``None`` skips the location check.
    margin_m
        Accepted distance outside the outline in metres (default ``settings.margin_m()``).
    now
        Reference time for the "not in the future" rule (default: the current time).

    Returns
    -------
    valid
        GeoDataFrame in EPSG:2169 with the rows that have no problem, indexed by their row
        number (index name ``row``). Columns: ``event_id`` (str), ``observed_at``
        (tz-aware Europe/Luxembourg, whole seconds), ``location_kind``, ``persons`` (int64),
        ``smugglers`` (int64), ``transport_mode``, ``entry_country``, ``operation_id``,
        ``source_unit``, ``notes`` (str or None), ``geometry`` (Point).
    problems
        Every problem found, each naming file, row, column, value and reason. A file-level
        problem (missing columns) has ``row=None``.
    """
    frame = _with_xy_from_geometry(frame)
    rows = _row_numbers(frame)
    n = len(frame)
    mapping, problems = canonical_columns(frame.columns)
    problems = [Problem(p.reason, file=file, column=p.column) for p in problems]
    data = {mapping[str(c)]: frame[c].reset_index(drop=True) for c in frame.columns if str(c) in mapping}

    has_latlon = "lat" in data and "lon" in data
    has_xy = "x" in data and "y" in data
    missing = [c for c in REQUIRED_COLUMNS if c not in data]
    if not (has_latlon or has_xy):
        missing.append("lat and lon (or x and y)")
    if missing:
        found = ", ".join(repr(str(c)) for c in frame.columns if str(c) != GEOMETRY_ERROR_COLUMN) or "none"
        problems.append(
            Problem(f"missing required column(s): {', '.join(missing)}; columns found: {found}", file=file)
        )

    bad = np.zeros(n, dtype=bool)

    def flag(mask: np.ndarray, column: str, reason: str, raw: pd.Series | None) -> None:
        nonlocal bad
        mask = np.asarray(mask, dtype=bool)
        bad |= mask
        problems.extend(_problems(mask, rows, raw, file=file, column=column, reason=reason))

    out: dict[str, Any] = {}
    texts: dict[str, np.ndarray] = {}

    def text(column: str) -> np.ndarray:
        if column not in texts:
            texts[column] = _text(data[column])
        return texts[column]

    if "event_id" in data:
        raw = data["event_id"]
        ids = _text(_integral_as_int_text(raw))
        miss = pd.isna(ids)
        flag(miss, "event_id", "event_id is missing", raw)
        dup = pd.Series(ids).duplicated(keep=False).to_numpy() & ~miss
        if dup.any():
            rows_of = pd.Series(rows[dup]).groupby(ids[dup]).agg(list)
            for value, where in rows_of.items():
                listed = ", ".join(str(r) for r in where[:10]) + (" ..." if len(where) > 10 else "")
                for r in where:
                    problems.append(
                        Problem(f"duplicate event_id (rows {listed})", file=file, row=int(r), column="event_id", value=value)
                    )
            bad |= dup
        out["event_id"] = ids

    if "observed_at" in data:
        raw = data["observed_at"]
        stamps = parse_timestamps(raw)
        unparsed = stamps.isna().to_numpy()
        absent = _blank(raw, unparsed)
        flag(absent, "observed_at", "observed_at is missing", raw)
        flag(
            unparsed & ~absent,
            "observed_at",
            "not a date and time (use ISO 8601 such as 2025-07-14T06:30 or dd/mm/yyyy hh:mm)",
            raw,
        )
        reference = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
        reference = reference.tz_localize(LOCAL_TZ) if reference.tzinfo is None else reference.tz_convert(LOCAL_TZ)
        future = (stamps > reference).to_numpy(dtype=bool) & ~unparsed
        flag(future, "observed_at", f"date lies in the future (after {reference.isoformat(timespec='seconds')})", raw)
        early = (stamps < pd.Timestamp(EARLIEST_DATE, tz=LOCAL_TZ)).to_numpy(dtype=bool) & ~unparsed
        flag(early, "observed_at", f"date lies before {EARLIEST_DATE}; check the year", raw)
        # Floor in UTC: local time has an ambiguous hour each autumn.
        out["observed_at"] = stamps.dt.tz_convert("UTC").dt.floor("s").dt.tz_convert(LOCAL_TZ)

    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    located = np.zeros(n, dtype=bool)
    loc_bad = np.zeros(n, dtype=bool)
    if GEOMETRY_ERROR_COLUMN in data:
        geo_err = text(GEOMETRY_ERROR_COLUMN)
        has_err = ~pd.isna(geo_err)
        for i in np.flatnonzero(has_err):
            problems.append(Problem(str(geo_err[i]), file=file, row=int(rows[i]), column="geometry"))
        bad |= has_err
        loc_bad |= has_err
    if has_xy:
        xs, ys = _number(data["x"]), _number(data["y"])
        x_given, y_given = ~_blank(data["x"], np.isnan(xs)), ~_blank(data["y"], np.isnan(ys))
        use = x_given | y_given
        for col, vals, given in (("x", xs, x_given), ("y", ys, y_given)):
            nan = np.isnan(vals)
            other = "y" if col == "x" else "x"
            flag(use & given & nan, col, f"{col} is not a number (EPSG:2169 metres)", data[col])
            flag(use & ~given, col, f"{col} is missing while {other} is given", data[col])
            loc_bad |= use & (nan | ~given)
        ok = use & ~loc_bad
        x[ok], y[ok] = xs[ok], ys[ok]
        located |= use
    if has_latlon:
        lats, lons = _number(data["lat"]), _number(data["lon"])
        lat_given, lon_given = ~_blank(data["lat"], np.isnan(lats)), ~_blank(data["lon"], np.isnan(lons))
        use = (lat_given | lon_given) & ~located
        for col, arr, given, limit in (("lat", lats, lat_given, 90.0), ("lon", lons, lon_given, 180.0)):
            nan = np.isnan(arr)
            other = "lon" if col == "lat" else "lat"
            flag(use & given & nan, col, f"{col} is not a number (WGS84 degrees)", data[col])
            flag(use & ~given, col, f"{col} is missing while {other} is given", data[col])
            with np.errstate(invalid="ignore"):
                out_of_range = use & given & ~nan & (np.abs(arr) > limit)
            flag(out_of_range, col, f"{col} is out of range [-{limit:g}, {limit:g}]", data[col])
            loc_bad |= use & (nan | ~given | out_of_range)
        ok = use & ~loc_bad
        if ok.any():
            x[ok], y[ok] = _transformer().transform(lons[ok], lats[ok])
        located |= use
    if has_xy or has_latlon:
        nowhere = ~located & ~loc_bad
        flag(nowhere, "lat" if has_latlon and not has_xy else "x", "location is missing (give lat/lon or x/y)", None)
        loc_bad |= nowhere
    finite = np.isfinite(x) & np.isfinite(y) & ~loc_bad
    if outline is not None and outline is not False and finite.any():
        margin = float(margin_m if margin_m is not None else default_margin_m())
        area = shapely.buffer(outline, margin) if margin > 0 else outline
        shapely.prepare(area)
        inside = np.zeros(n, dtype=bool)
        inside[finite] = shapely.contains_xy(area, x[finite], y[finite])
        outside = finite & ~inside
        if outside.any():
            col = "lat" if has_latlon and not has_xy else "x"
            raw_loc = _location_text(data, outside, x, y, use_latlon=has_latlon and not has_xy)
            flag(outside, col, f"location lies outside Luxembourg's outline plus {margin:g} m", raw_loc)
    bad |= loc_bad

    for column, allowed in CODE_LISTS.items():
        if column not in data:
            continue
        raw = data[column]
        codes, miss = _match_codes(raw, allowed)
        flag(miss, column, f"{column} is missing (allowed: {', '.join(allowed)})", raw)
        flag(pd.isna(codes) & ~miss, column, f"unknown {column} (allowed: {', '.join(allowed)})", raw)
        out[column] = codes

    for column, minimum in (("persons", 1), ("smugglers", 0)):
        if column not in data:
            continue
        raw = data[column]
        nums = _number(raw)
        nan = np.isnan(nums)
        given = ~_blank(raw, nan)
        flag(~given, column, f"{column} is missing", raw)
        flag(given & nan, column, f"{column} is not a number", raw)
        with np.errstate(invalid="ignore"):
            fractional = ~nan & (np.floor(nums) != nums)
            too_small = ~nan & ~fractional & (nums < minimum)
            too_large = ~nan & ~fractional & (nums > MAX_COUNT)
        flag(fractional, column, f"{column} must be a whole number", raw)
        flag(too_small, column, f"{column} must be at least {minimum}", raw)
        flag(too_large, column, f"{column} must be at most {MAX_COUNT}", raw)
        out[column] = np.where(nan | fractional | too_large, 0, nums).astype(np.int64)

    for column in OPTIONAL_COLUMNS:
        out[column] = text(column) if column in data else np.full(n, None, dtype=object)

    if missing:
        # Without the required columns no row can be judged valid.
        bad[:] = True
    keep = ~bad
    index = pd.Index(rows[keep], name="row")
    columns: dict[str, Any] = {}
    for c in EVENT_COLUMNS[:-1]:
        if c not in out:
            columns[c] = pd.Series(np.full(int(keep.sum()), None, dtype=object), index=index, dtype=object)
        elif c == "observed_at":
            columns[c] = pd.Series(out[c].array[keep], index=index)
        elif c in ("persons", "smugglers"):
            columns[c] = pd.Series(out[c][keep], index=index, dtype=np.int64)
        else:
            columns[c] = pd.Series(out[c][keep], index=index, dtype=object)
    valid = gpd.GeoDataFrame(
        pd.DataFrame(columns, index=index),
        geometry=gpd.points_from_xy(x[keep], y[keep]),
        crs=WORKING_CRS,
    )
    valid.index = index
    problems.sort(key=lambda p: (p.row is not None, p.row or 0))
    return valid, problems


def _match_codes(raw: pd.Series, allowed: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Codes in their canonical spelling (``None`` where unknown or empty) and the empty mask.

    Works on the few distinct values, so a million rows cost one factorize.
    """
    lookup = {a.lower(): a for a in allowed}
    codes, uniques = pd.factorize(raw.to_numpy(dtype=object), use_na_sentinel=True)
    unique_text = _text(np.asarray(uniques, dtype=object))
    mapped = np.array([None if t is None else lookup.get(t.lower()) for t in unique_text] + [None], dtype=object)
    blank = np.array([t is None for t in unique_text] + [True], dtype=bool)
    return mapped[codes], blank[codes]  # the NA sentinel -1 picks the trailing entry


def _location_text(
    data: dict[str, pd.Series], mask: np.ndarray, x: np.ndarray, y: np.ndarray, *, use_latlon: bool
) -> pd.Series:
    """The location as the user gave it, for the problem's ``value``."""
    text = np.full(len(mask), None, dtype=object)
    idx = np.flatnonzero(mask)
    if use_latlon:
        lat = data["lat"].to_numpy(dtype=object)
        lon = data["lon"].to_numpy(dtype=object)
        text[idx] = [f"lat {lat[i]}, lon {lon[i]}" for i in idx]
    else:
        text[idx] = [f"x {x[i]:.1f}, y {y[i]:.1f}" for i in idx]
    return pd.Series(text, dtype=object)


def _integral_as_int_text(series: pd.Series) -> pd.Series:
    """Spreadsheet numbers used as identifiers: 1042.0 means '1042'."""
    if pd.api.types.is_float_dtype(series.dtype):
        vals = series.to_numpy()
        out = series.astype(object)
        integral = np.isfinite(vals) & (np.floor(vals) == vals)
        out[integral] = vals[integral].astype(np.int64).astype(str)
        return out
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.astype(str)
    return series


def _with_xy_from_geometry(frame: pd.DataFrame) -> pd.DataFrame:
    """A point GeoDataFrame without location columns gets x/y (EPSG:2169) from its geometry."""
    if not isinstance(frame, gpd.GeoDataFrame) or frame._geometry_column_name not in frame.columns:
        return frame
    names = {COLUMN_ALIASES.get(str(c).strip().lower()) for c in frame.columns}
    geom_name = frame.geometry.name
    plain = pd.DataFrame(frame.drop(columns=[geom_name]))
    if {"x", "y"} <= names or {"lat", "lon"} <= names:
        return plain
    if frame.crs is None:
        raise ValidationError("event layer has no CRS; expected EPSG:2169 or EPSG:4326")
    geoms = frame.geometry.to_crs(WORKING_CRS).to_numpy()
    is_point = shapely.get_type_id(geoms) == 0
    empty = shapely.is_empty(geoms) | pd.isna(geoms)
    ok = is_point & ~empty
    xs = np.full(len(frame), np.nan)
    ys = np.full(len(frame), np.nan)
    xs[ok] = shapely.get_x(geoms[ok])
    ys[ok] = shapely.get_y(geoms[ok])
    plain["x"] = xs
    plain["y"] = ys
    errors = np.full(len(frame), None, dtype=object)
    for i in np.flatnonzero(~ok):
        if empty[i]:
            errors[i] = "geometry is missing or empty; expected a point"
        else:
            errors[i] = f"geometry is a {geoms[i].geom_type}; expected a point"
    plain[GEOMETRY_ERROR_COLUMN] = errors
    return plain
