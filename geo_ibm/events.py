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
destination_    no       where the group was heading: an ISO 3166-1 alpha-2 code (DE, NL, BE,
country                  GB, FR...; XK for Kosovo) or ``unknown``; empty when not recorded
nationalities   no       the persons' nationalities: ISO 3166-1 alpha-2 codes separated by
                         ``;`` (``SY;AF``), at most one code per person; empty when not
                         recorded. Stored upper-case, each code once, in the order given.
operation_id    no       text: the control operation the event belongs to
source_unit     no       text: the unit that reported the event
notes           no       free text
=============== ======== =================================================================

Codes are trimmed and matched case-insensitively and stored in the spelling above. A
GeoDataFrame may be validated directly: its point geometry then stands for x/y.

The stored text columns (``event_id``, ``operation_id``, ``source_unit``, ``notes``) have a
longest length and refuse control characters (``notes`` may hold tab and line breaks); see
:mod:`geo_ibm.importlimits`. Problems are counted and the first of each column listed
(:class:`geo_ibm.problems.ProblemLog`).
"""
from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pycountry
import shapely
from pyproj import Transformer

from geo_ibm import cells
from geo_ibm.cells import parse_timestamps
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.importlimits import FREE_TEXT_COLUMNS, ImportLimits
from geo_ibm.io import ROW_ERRORS
from geo_ibm.problems import ProblemLog
from geo_ibm.settings import LOCAL_TZ, WEB_CRS, WORKING_CRS
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

COUNTRY_CODES: frozenset[str] = frozenset({c.alpha_2 for c in pycountry.countries} | {"XK"})
"""ISO 3166-1 alpha-2 codes (pycountry's list) and XK, the code the EU and Frontex use for Kosovo."""

DESTINATION_CODES: tuple[str, ...] = (*sorted(COUNTRY_CODES), "unknown")
"""Accepted ``destination_country`` values in their stored spelling (matched case-insensitively)."""
MAX_NATIONALITIES_CHARS = 400
"""Longest accepted ``nationalities`` cell (well over a hundred codes); longer is refused unread."""

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
OPTIONAL_COLUMNS: tuple[str, ...] = ("destination_country", "nationalities", "operation_id", "source_unit", "notes")

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

def _transformer() -> Transformer:
    """WGS84 to the working CRS, this thread's own (pyproj objects are not shared between threads)."""
    from geo_ibm.crs import transformer

    return transformer(WEB_CRS, WORKING_CRS)


EARLY_TRANSFORM_ROWS = 50_000
"""From this many rows the lat/lon of a table are projected on a second thread while its other columns are checked."""


def _project_lonlat(lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:2169 x, y of every finite, in-range lon/lat pair (NaN elsewhere); pyproj lets go of the GIL."""
    x = np.full(len(lons), np.nan)
    y = np.full(len(lons), np.nan)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(lons) & np.isfinite(lats) & (np.abs(lons) <= 180.0) & (np.abs(lats) <= 90.0)
    if ok.any():
        x[ok], y[ok] = _transformer().transform(lons[ok], lats[ok])
    return x, y


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


def event_ids(frame: pd.DataFrame) -> list[str | None] | None:
    """The ``event_id`` of each row as :func:`validate_events` reads it (trimmed text, ``None`` when
    empty), or ``None`` when ``frame`` has no event_id column."""
    mapping, _ = canonical_columns(frame.columns)
    for original, canon in mapping.items():
        if canon == "event_id":
            return list(cells.text(_integral_as_int_text(frame[original])).to_pylist())
    return None


def _row_numbers(frame: pd.DataFrame) -> np.ndarray:
    if frame.index.name == "row" and pd.api.types.is_integer_dtype(frame.index.dtype):
        return frame.index.to_numpy(dtype=np.int64)
    return np.arange(1, len(frame) + 1, dtype=np.int64)


STORED_TEXT_COLUMNS: tuple[str, ...] = ("event_id", "operation_id", "source_unit", "notes")
"""Text columns stored as given (trimmed): their length and characters are checked."""


def validate_events(
    frame: pd.DataFrame,
    *,
    file: str,
    outline: Any = None,
    margin_m: float | None = None,
    now: pd.Timestamp | None = None,
    limits: ImportLimits | None = None,
    log: ProblemLog | None = None,
    arrow_text: bool = False,
    points: bool = True,
) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Check an event table against the schema and return the valid rows and the problems found.

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
    limits
        Field lengths (default :class:`~geo_ibm.importlimits.ImportLimits`): ``event_id``,
        ``operation_id``, ``source_unit`` and ``notes`` longer than their limit, or holding a
        control character (``notes`` may hold tab, line feed, carriage return), are refused.
    log
        Where problems are recorded (default: a new :class:`~geo_ibm.problems.ProblemLog`);
        pass one to read every count and every bad row, not only the listed problems.
    arrow_text
        Keep the free text columns (``event_id``, ``operation_id``, ``source_unit``,
        ``notes``) as Arrow-backed strings (``pd.ArrowDtype(pa.string())``, missing as
        ``pd.NA``) instead of ``str``/``None`` objects: the import pipeline hands them to the
        store's bulk writers without making a Python string per cell (a million ids cost
        about a second as objects).
    points
        ``False``: the valid rows carry float columns ``x`` and ``y`` (EPSG:2169) instead of
        point geometries, and ``valid`` is a plain DataFrame. The import pipeline needs the
        coordinates only; a million shapely points cost it about 0.6 s and 300 MB of peak memory.

    Returns
    -------
    valid
        GeoDataFrame in EPSG:2169 with the rows that have no problem, indexed by their row
        number (index name ``row``). Columns: ``event_id`` (str), ``observed_at``
        (tz-aware Europe/Luxembourg, whole seconds), ``location_kind``, ``persons`` (int64),
        ``smugglers`` (int64), ``transport_mode``, ``entry_country``, ``destination_country``,
        ``nationalities``, ``operation_id``, ``source_unit``, ``notes`` (str or None),
        ``geometry`` (Point); with ``points=False`` a DataFrame ending in ``x``, ``y``.
    problems
        The listed problems (the first of each column, see :mod:`geo_ibm.problems`), each
        naming file, row, column, value and reason. A file-level problem (missing columns)
        has ``row=None``.
    """
    limits = ImportLimits() if limits is None else limits
    log = ProblemLog(per_column=limits.problems_per_column, listed=limits.problems_listed) if log is None else log
    row_errors: dict[int, str] = dict(frame.attrs.get(ROW_ERRORS) or {})
    frame = _with_xy_from_geometry(frame)
    rows = _row_numbers(frame)
    n = len(frame)
    mapping, collisions = canonical_columns(frame.columns)
    for p in collisions:
        log.add(Problem(p.reason, file=file, column=p.column))
    data = {mapping[str(c)]: frame[c].reset_index(drop=True) for c in frame.columns if str(c) in mapping}

    has_latlon = "lat" in data and "lon" in data
    has_xy = "x" in data and "y" in data
    missing = [c for c in REQUIRED_COLUMNS if c not in data]
    if not (has_latlon or has_xy):
        missing.append("lat and lon (or x and y)")
    if missing:
        found = ", ".join(repr(str(c)) for c in frame.columns if str(c) != GEOMETRY_ERROR_COLUMN) or "none"
        log.add(Problem(f"missing required column(s): {', '.join(missing)}; columns found: {found}", file=file))

    lonlat: tuple[np.ndarray, np.ndarray] | None = None
    projected: concurrent.futures.Future[tuple[np.ndarray, np.ndarray]] | None = None
    if has_latlon:
        lonlat = cells.numbers(data["lon"]), cells.numbers(data["lat"])
        if n >= EARLY_TRANSFORM_ROWS:
            # the projection (0.4 s for 1M rows) runs beside the text and time checks below
            projector = concurrent.futures.ThreadPoolExecutor(max_workers=1)
            projected = projector.submit(_project_lonlat, *lonlat)
            projector.shutdown(wait=False)

    bad = np.zeros(n, dtype=bool)
    unsplit = np.zeros(n, dtype=bool)  # records the reader could not split: their one problem is that

    def flag(mask: np.ndarray, column: str | None, reason: str, raw: pd.Series | None,
             reasons: Any = None) -> None:
        nonlocal bad
        mask = np.asarray(mask, dtype=bool) & ~unsplit
        if not mask.any():
            return
        bad |= mask
        values = None if raw is None else (lambda pos: raw.iloc[pos].tolist())
        log.add_mask(mask, rows, file=file, column=column, reason=reason, values=values, reasons=reasons)

    if row_errors:
        where = {int(r): k for k, r in enumerate(rows.tolist()) if int(r) in row_errors}
        for reason in sorted(set(row_errors.values())):
            mask = np.zeros(n, dtype=bool)
            mask[[k for r, k in where.items() if row_errors[r] == reason]] = True
            flag(mask, None, reason, None)
        unsplit[list(where.values())] = True

    out: dict[str, Any] = {}
    texts: dict[str, pa.Array] = {}

    def text(column: str) -> pa.Array:
        if column not in texts:
            texts[column] = cells.text(data[column])
        return texts[column]

    for column in STORED_TEXT_COLUMNS:
        if column not in data:
            continue
        values = cells.text(_integral_as_int_text(data[column])) if column == "event_id" else text(column)
        texts[column] = values
        chars = limits.chars(column)
        flag(cells.longer_than(values, chars), column, f"{column} is longer than {chars:,} characters", data[column])
        free = column in FREE_TEXT_COLUMNS
        note = " (tab and line breaks are allowed)" if free else ""
        flag(cells.control_characters(values, allowed=cells.FREE_TEXT_CONTROLS if free else b""), column,
             f"{column} holds a control character{note}", data[column])

    if "event_id" in data:
        raw = data["event_id"]
        ids = texts["event_id"]
        miss = cells.blank(ids)
        flag(miss, "event_id", "event_id is missing", raw)
        # Arrow's hash encoding (0.17 s for 1M ids against 0.24 s for pandas' factorize); missing ids -1
        codes = np.asarray(pc.dictionary_encode(ids).indices.fill_null(-1).to_numpy(zero_copy_only=False),
                           dtype=np.int64)
        counts = np.bincount(codes[codes >= 0], minlength=1)
        dup = (codes >= 0) & (counts[np.maximum(codes, 0)] > 1)

        def duplicate_reasons(positions: np.ndarray) -> list[str]:
            texts_out = []
            for k in positions.tolist():
                where = rows[codes == codes[k]]
                listed = ", ".join(str(r) for r in where[:10].tolist()) + (" ..." if len(where) > 10 else "")
                texts_out.append(f"duplicate event_id (rows {listed})")
            return texts_out

        def id_values(positions: np.ndarray) -> list[Any]:
            return cells.objects(ids.take(pa.array(positions))).tolist()

        if dup.any():
            bad |= dup
            log.add_mask(dup, rows, file=file, column="event_id", reason="duplicate event_id", values=id_values,
                         reasons=duplicate_reasons)
        out["event_id"] = ids

    if "observed_at" in data:
        raw = data["observed_at"]
        stamps = parse_timestamps(raw)
        unparsed = stamps.isna().to_numpy()
        absent = np.zeros(n, dtype=bool)
        idx = np.flatnonzero(unparsed)
        if len(idx):
            absent[idx] = cells.blank(cells.text(raw.iloc[idx]))
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
        geo_err = cells.objects(text(GEOMETRY_ERROR_COLUMN))
        has_err = pd.notna(geo_err)
        for reason in sorted({str(v) for v in geo_err[has_err]}):
            flag(has_err & (geo_err == reason), "geometry", reason, None)
        loc_bad |= has_err

    def given(column: str, nums: np.ndarray) -> np.ndarray:
        """Where a coordinate cell holds something (a number, or text that is not one)."""
        out_mask = ~np.isnan(nums)
        idx = np.flatnonzero(~out_mask)
        if len(idx):
            out_mask[idx] = ~cells.blank(cells.text(data[column].iloc[idx]))
        return out_mask

    if has_xy:
        xs, ys = cells.numbers(data["x"]), cells.numbers(data["y"])
        x_given, y_given = given("x", xs), given("y", ys)
        use = x_given | y_given
        for col, vals, has in (("x", xs, x_given), ("y", ys, y_given)):
            nan = np.isnan(vals)
            other = "y" if col == "x" else "x"
            flag(use & has & nan, col, f"{col} is not a number (EPSG:2169 metres)", data[col])
            flag(use & ~has, col, f"{col} is missing while {other} is given", data[col])
            loc_bad |= use & (nan | ~has)
        ok = use & ~loc_bad
        x[ok], y[ok] = xs[ok], ys[ok]
        located |= use
    if has_latlon:
        assert lonlat is not None
        lons, lats = lonlat
        lat_given, lon_given = given("lat", lats), given("lon", lons)
        use = (lat_given | lon_given) & ~located
        for col, arr, has, limit in (("lat", lats, lat_given, 90.0), ("lon", lons, lon_given, 180.0)):
            nan = np.isnan(arr)
            other = "lon" if col == "lat" else "lat"
            flag(use & has & nan, col, f"{col} is not a number (WGS84 degrees)", data[col])
            flag(use & ~has, col, f"{col} is missing while {other} is given", data[col])
            with np.errstate(invalid="ignore"):
                out_of_range = use & has & ~nan & (np.abs(arr) > limit)
            flag(out_of_range, col, f"{col} is out of range [-{limit:g}, {limit:g}]", data[col])
            loc_bad |= use & (nan | ~has | out_of_range)
        ok = use & ~loc_bad
        if projected is not None:
            # a point's projection is the same whichever rows are projected with it
            px, py = projected.result()
            x[ok], y[ok] = px[ok], py[ok]
        elif ok.any():
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
        codes_out, miss = _match_codes(text(column), allowed)
        flag(miss, column, f"{column} is missing (allowed: {', '.join(allowed)})", raw)
        flag(pd.isna(codes_out) & ~miss, column, f"unknown {column} (allowed: {', '.join(allowed)})", raw)
        out[column] = codes_out

    for column, minimum in (("persons", 1), ("smugglers", 0)):
        if column not in data:
            continue
        raw = data[column]
        nums = cells.numbers(raw)
        nan = np.isnan(nums)
        has = given(column, nums)
        flag(~has, column, f"{column} is missing", raw)
        flag(has & nan, column, f"{column} is not a number", raw)
        with np.errstate(invalid="ignore"):
            fractional = ~nan & (np.floor(nums) != nums)
            too_small = ~nan & ~fractional & (nums < minimum)
            too_large = ~nan & ~fractional & (nums > MAX_COUNT)
        flag(fractional, column, f"{column} must be a whole number", raw)
        flag(too_small, column, f"{column} must be at least {minimum}", raw)
        flag(too_large, column, f"{column} must be at most {MAX_COUNT}", raw)
        out[column] = np.where(nan | fractional | too_large, 0, nums).astype(np.int64)

    if "destination_country" in data:
        raw = data["destination_country"]
        codes_out, empty = _match_codes(text("destination_country"), DESTINATION_CODES)
        flag(pd.isna(codes_out) & ~empty, "destination_country",
             "unknown destination_country (use an ISO 3166-1 alpha-2 code such as DE, NL, BE, GB, FR, or unknown)", raw)
        out["destination_country"] = codes_out
    if "nationalities" in data:
        raw = data["nationalities"]
        values = text("nationalities")
        flag(cells.longer_than(values, MAX_NATIONALITIES_CHARS), "nationalities",
             f"nationalities is longer than {MAX_NATIONALITIES_CHARS} characters", raw)
        joined, count, why_bad = _nationality_lists(values)
        flag(np.asarray(pd.notna(why_bad), dtype=bool), "nationalities", "nationalities: bad code", raw,
             reasons=lambda pos: why_bad[pos].tolist())
        if "persons" in out:
            more = np.asarray(pd.isna(why_bad), dtype=bool) & (count > out["persons"]) & (out["persons"] > 0)
            flag(more, "nationalities", "nationalities lists more codes than persons", raw)
        out["nationalities"] = joined
    for column in ("operation_id", "source_unit", "notes"):
        if column in data:
            out[column] = texts[column]

    if missing:
        # Without the required columns no row can be judged valid.
        bad[:] = True
    return _valid_frame(out, ~bad, rows, x, y, arrow_text=arrow_text, points=points), log.problems


def _valid_frame(out: dict[str, Any], keep: np.ndarray, rows: np.ndarray, x: np.ndarray,
                 y: np.ndarray, *, arrow_text: bool, points: bool = True) -> gpd.GeoDataFrame:
    """The kept rows as the GeoDataFrame :func:`validate_events` documents (``points=False``: x/y columns)."""
    whole = bool(keep.all())  # the usual case: no copy of any column
    pick: Any = slice(None) if whole else keep
    index = pd.Index(rows[pick], name="row")
    taken = pa.array(keep)

    def kept_text(value: pa.Array) -> pa.Array:
        return value if whole else value.filter(taken)

    columns: dict[str, Any] = {}
    for c in EVENT_COLUMNS[:-1]:
        value = out.get(c)
        if value is None:
            columns[c] = pd.Series(np.full(len(index), None, dtype=object), index=index, dtype=object)
        elif c == "observed_at":
            columns[c] = pd.Series(value.array[pick], index=index)
        elif c in ("persons", "smugglers"):
            columns[c] = pd.Series(value[pick], index=index, dtype=np.int64)
        elif isinstance(value, pa.Array) and arrow_text:
            kept = kept_text(value).cast(pa.string())
            columns[c] = pd.Series(pd.arrays.ArrowExtensionArray(kept), index=index, copy=False)
        elif isinstance(value, pa.Array):
            columns[c] = pd.Series(cells.objects(kept_text(value)), index=index, dtype=object)
        else:
            columns[c] = pd.Series(value[pick], index=index, dtype=object)
    if not points:
        columns["x"] = pd.Series(x[pick], index=index, dtype=np.float64)
        columns["y"] = pd.Series(y[pick], index=index, dtype=np.float64)
        return pd.DataFrame(columns, index=index)  # type: ignore[return-value]
    valid = gpd.GeoDataFrame(
        pd.DataFrame(columns, index=index),
        geometry=gpd.points_from_xy(x[pick], y[pick]),
        crs=WORKING_CRS,
    )
    valid.index = index
    return valid


def _match_codes(text: pa.Array, allowed: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Codes in their canonical spelling (``None`` where unknown or empty) and the empty mask.

    Works on the few distinct values, so a million rows cost one dictionary encoding.
    """
    lookup = {a.lower(): a for a in allowed}
    encoded = pc.dictionary_encode(text, null_encoding="encode")
    uniques = encoded.dictionary.to_pylist()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    mapped = np.array([None if t is None else lookup.get(t.lower()) for t in uniques], dtype=object)
    blank = np.array([t is None for t in uniques], dtype=bool)
    if not len(uniques):
        return np.full(len(codes), None, dtype=object), np.ones(len(codes), dtype=bool)
    return mapped[codes], blank[codes]


def _nationality_lists(text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each cell's codes joined by ``;`` (upper-case, each once, as given), their number, and why a cell is bad.

    Works on the distinct cells, which are few (combinations of a handful of nationalities).
    """
    encoded = pc.dictionary_encode(text, null_encoding="encode")
    uniques = encoded.dictionary.to_pylist()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    joined = np.full(len(uniques), None, dtype=object)
    count = np.zeros(len(uniques), dtype=np.int64)
    reason = np.full(len(uniques), None, dtype=object)
    for k, cell in enumerate(uniques):
        if cell is None or len(cell) > MAX_NATIONALITIES_CHARS:
            continue
        parts = [part.strip().upper() for part in cell.split(";")]
        bad = [part for part in parts if part not in COUNTRY_CODES]
        if bad:
            shown = ", ".join(repr(b) for b in bad[:3]) if any(bad) else "an empty code"
            reason[k] = (f"nationalities holds {shown}, not ISO 3166-1 alpha-2 codes separated by ';' "
                         "(e.g. SY;AF)")
            continue
        unique_parts = list(dict.fromkeys(parts))
        joined[k] = ";".join(unique_parts)
        count[k] = len(unique_parts)
    if not len(uniques):
        n = len(codes)
        return np.full(n, None, dtype=object), np.zeros(n, dtype=np.int64), np.full(n, None, dtype=object)
    return joined[codes], count[codes], reason[codes]


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
