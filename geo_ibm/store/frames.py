"""Backend-neutral conversions between event frames and stored rows (events, counts, audit, imports)."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo_ibm.events import EVENT_COLUMNS
from geo_ibm.periods import quarter_labels
from geo_ibm.settings import LOCAL_TZ, WORKING_CRS
from geo_ibm.store.filters import LEAN_COLUMNS

RECORD_COLUMNS: tuple[str, ...] = (
    "event_id", "observed_at", "observed_utc", "quarter", "location_kind", "persons", "smugglers", "transport_mode",
    "entry_country", "destination_country", "nationalities", "operation_id", "source_unit", "notes", "canton",
    "region", "x", "y", "import_id",
)
"""Stored columns of an event besides its geometry, in storage order.

``observed_at`` is ISO 8601 local time with its offset, ``observed_utc`` UTC epoch seconds,
``quarter`` ``2025Q3`` in local time, ``x``/``y`` EPSG:2169 metres.
"""

FRAME_COLUMNS: list[str] = [c for c in EVENT_COLUMNS if c not in ("observed_at", "geometry")]
"""Event columns read as stored (``observed_at`` comes from ``observed_utc``)."""

EVENT_SELECT: list[str] = [*FRAME_COLUMNS, "observed_utc", "quarter", "canton", "region", "x", "y"]
"""What a backend selects, in this order, for :func:`events_frame`."""

CONTENT_COLUMNS: tuple[str, ...] = (
    "observed_utc", *(c for c in EVENT_COLUMNS if c not in ("event_id", "observed_at", "geometry")),
)
"""What must match for a re-imported event to count as the same event (plus x/y within 1 mm)."""

NUMERIC_LEAN = frozenset({"observed_utc", "persons", "smugglers"})

AUDIT_COLUMNS = ["id", "at", "user", "action", "detail"]
IMPORT_COLUMNS = ["id", "imported_at", "user", "file_name", "sha256", "rows", "accepted", "rejected", "duplicates",
                  "status", "message"]


def none_for_na(values: Any) -> np.ndarray:
    """An object array with every missing value as ``None``."""
    arr = np.array(values, dtype=object)
    arr[pd.isna(arr)] = None
    return arr


def id_values(event_ids: Sequence[str] | pd.Series, *, distinct: bool = False) -> list[Any]:
    """Event ids as a list of Python strings, each once (``distinct``: they are already).

    An Arrow-backed column converts in C; iterating it value by value cost 1.5 s for 1M ids.
    """
    values = event_ids.to_numpy(dtype=object).tolist() if isinstance(event_ids, pd.Series) else list(event_ids)
    return values if distinct else list(dict.fromkeys(values))


def arrow_values(series: pd.Series) -> pa.Array:
    """A column as one Arrow array: an Arrow-backed one as it is, others converted (missing values as null)."""
    if isinstance(series.dtype, pd.ArrowDtype) or (
            isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow"):
        return pa.array(series.array)
    return pa.array(series.to_numpy(), from_pandas=True)


def same_values(incoming: pd.Series, pos: np.ndarray, stored: pd.Series) -> np.ndarray:
    """Whether ``incoming[pos]`` equals ``stored`` row by row, two missing values counting as equal.

    ``incoming`` is a column of :func:`event_records` (numbers, Arrow-backed or object text),
    ``stored`` the same column read back from a store (Python values, ``None`` for missing).
    Compared in Arrow; columns Arrow cannot line up are compared as Python objects.
    """
    try:
        left = arrow_values(incoming).take(pa.array(pos))
        right = pa.array(stored.to_numpy(dtype=object), from_pandas=True)
        if left.type != right.type:
            right = right.cast(left.type)
        equal = pc.fill_null(pc.equal(left, right), False)
        both_missing = pc.and_(left.is_null(), right.is_null())
        return np.asarray(pc.or_(equal, both_missing).to_numpy(zero_copy_only=False), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        a = none_for_na(incoming.to_numpy(dtype=object)[pos])
        b = none_for_na(stored.to_numpy(dtype=object))
        return np.asarray(a == b, dtype=bool)


def python_values(series: pd.Series) -> list[Any]:
    """Python scalars for database drivers (numpy scalars are not accepted), missing values as None."""
    if pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_float_dtype(series.dtype):
        return series.to_numpy().tolist()
    arr = series.to_numpy(dtype=object)
    missing = pd.isna(arr)  # vectorised; a per-value test costs more than the insert of a million rows
    if missing.any():
        arr = arr.copy()
        arr[missing] = None
    return arr.tolist()


def numeric_rows(rows: Iterable[Sequence[Any]], width: int) -> np.ndarray:
    """All rows over numeric columns as a float array ``(n, width)``.

    Streaming the flattened values into ``np.fromiter`` keeps no list of a million tuples
    and converts about twice as fast as ``np.array(cursor.fetchall())``. Integers up to 2**53
    (row ids, epoch seconds, counts) are exact in float64. An array (a backend that reads
    columns straight into numpy) is taken as it is.
    """
    if isinstance(rows, np.ndarray):
        return np.asarray(rows, dtype=np.float64).reshape(-1, width)
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64)
    return flat.reshape(-1, width)


def _text_column(series: pd.Series) -> pd.Series:
    """A text column as stored: Arrow-backed strings pass through, objects get ``None`` for missing."""
    if isinstance(series.dtype, pd.ArrowDtype):
        return pd.Series(series.array, copy=False)
    return pd.Series(none_for_na(series.to_numpy(dtype=object)), dtype=object)


def event_records(valid: pd.DataFrame) -> pd.DataFrame:
    """Validated events as stored columns (:data:`RECORD_COLUMNS` without canton, region, import_id).

    Text columns the validation kept Arrow-backed (``arrow_text``) stay so, as does
    ``observed_at``: the bulk writers take Arrow arrays whole, and every other consumer reads
    values through ``to_numpy(dtype=object)`` / :func:`python_values`.
    """
    x, y = event_xy(valid)
    stamps = valid["observed_at"]
    utc = stamps.dt.tz_convert("UTC")
    epoch = (utc.dt.tz_localize(None).astype("datetime64[s]").astype(np.int64)).to_numpy()
    local = stamps.dt.tz_convert(LOCAL_TZ)
    return pd.DataFrame(
        {
            "event_id": _text_column(valid["event_id"]),
            "observed_at": pd.Series(pd.arrays.ArrowExtensionArray(iso_with_offset(local)), copy=False),
            "observed_utc": epoch,
            "quarter": pd.Series(quarter_labels(local), dtype=object),
            "location_kind": pd.Series(valid["location_kind"].to_numpy(dtype=object), dtype=object),
            "persons": valid["persons"].to_numpy(dtype=np.int64),
            "smugglers": valid["smugglers"].to_numpy(dtype=np.int64),
            **{
                c: _text_column(valid[c])
                for c in ("transport_mode", "entry_country", "destination_country", "nationalities", "operation_id",
                          "source_unit", "notes")
            },
            "x": x,
            "y": y,
        }
    )


def event_xy(valid: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The x and y (EPSG:2169) of validated events: their point geometries' or, from
    ``validate_events(..., points=False)``, their ``x`` and ``y`` columns."""
    if isinstance(valid, gpd.GeoDataFrame):
        geoms = valid.geometry.to_numpy()
        return shapely.get_x(geoms), shapely.get_y(geoms)
    return valid["x"].to_numpy(dtype=np.float64), valid["y"].to_numpy(dtype=np.float64)


def iso_with_offset(local: pd.Series) -> pa.Array:
    """``2025-07-14T06:30:00+02:00`` for each tz-aware local timestamp, as an Arrow string array.

    pandas' ``strftime('%z')`` on tz-aware values runs per element; this formats the wall
    clock with Arrow's strftime and appends the (few distinct) UTC offsets, with no Python
    string per value.
    """
    utc_s = local.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    wall_s = local.dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    offset_min = (wall_s - utc_s).astype(np.int64) // 60
    values, codes = np.unique(offset_min, return_inverse=True)
    suffixes = pa.array([f"{'+' if v >= 0 else '-'}{abs(int(v)) // 60:02d}:{abs(int(v)) % 60:02d}" for v in values],
                        type=pa.string())
    # Arrow's cast writes "2025-07-14 06:30:00" ten times faster than its strftime
    wall = pc.replace_substring(pa.array(wall_s, type=pa.timestamp("s")).cast(pa.string()), " ", "T",
                                max_replacements=1)
    return pc.binary_join_element_wise(wall, suffixes.take(pa.array(codes, type=pa.int32())), "")


def iso_local(epoch: int | None) -> str | None:
    """ISO 8601 local time of UTC epoch seconds (``None`` stays ``None``)."""
    if epoch is None:
        return None
    return pd.Timestamp(int(epoch), unit="s", tz="UTC").tz_convert(LOCAL_TZ).isoformat()


def events_frame(rows: Sequence[Sequence[Any]]) -> gpd.GeoDataFrame:
    """The events of :meth:`EventStore.events` from rows of the :data:`EVENT_SELECT` columns.

    Built a column at a time from the transposed rows (one DataFrame construction): a page of
    100 events, which the OGC API serves per request, costs a tenth of building an object frame
    first and copying it.
    """
    columns = list(zip(*rows, strict=True)) if len(rows) else [()] * len(EVENT_SELECT)
    raw = dict(zip(EVENT_SELECT, columns, strict=True))
    utc = pd.to_datetime(np.asarray(raw["observed_utc"], dtype=np.int64), unit="s", utc=True)
    index = pd.RangeIndex(len(utc))

    def text(c: str) -> pd.Series:  # kept as object columns, as the lean reads and every backend give them
        return pd.Series(np.asarray(raw[c], dtype=object), index=index, dtype=object, copy=False)

    data: dict[str, Any] = {"event_id": text("event_id"),
                            "observed_at": pd.Series(utc.tz_convert(LOCAL_TZ), index=index)}
    for c in FRAME_COLUMNS:
        if c != "event_id":
            data[c] = np.asarray(raw[c], dtype=np.int64) if c in ("persons", "smugglers") else text(c)
    for c in ("quarter", "canton", "region"):
        data[c] = text(c)
    geometry = gpd.points_from_xy(np.asarray(raw["x"], dtype=float), np.asarray(raw["y"], dtype=float))
    return gpd.GeoDataFrame(data, index=index, geometry=geometry, crs=WORKING_CRS)


def lean_layout(wanted: list[str]) -> tuple[list[str], list[str]]:
    """Stored numeric and text columns to select (after ``fid, x, y``) for :func:`lean_frame`."""
    stored = [LEAN_COLUMNS[c] for c in wanted]
    numeric = [c for c in dict.fromkeys(["observed_utc", *stored]) if c in NUMERIC_LEAN]
    text = [c for c in dict.fromkeys(stored) if c not in NUMERIC_LEAN]
    return numeric, text


def lean_frame(rows: Iterable[Sequence[Any]], wanted: list[str], *, ordered: bool) -> gpd.GeoDataFrame:
    """Only ``wanted`` columns and the geometry, ordered by time then row id as :meth:`EventStore.events`.

    ``rows`` hold ``fid, x, y``, then the columns of :func:`lean_layout`; ``ordered`` says they
    come sorted already (paged reads), else they are sorted here: sorting the few numeric
    columns in numpy beats an ``ORDER BY`` that walks the time index and fetches every row.
    """
    numeric, text = lean_layout(wanted)
    n_num = 3 + len(numeric)
    if text:
        table = pd.DataFrame(list(rows), columns=["fid", "x", "y", *numeric, *text], dtype=object)
        values = table[["fid", "x", "y", *numeric]].to_numpy(dtype=np.float64).reshape(-1, n_num)
    else:
        table = None
        values = numeric_rows(rows, n_num)
    fid = values[:, 0].astype(np.int64)
    utc = values[:, 3].astype(np.int64)
    order = np.arange(len(fid)) if ordered else np.lexsort((fid, utc))
    number = {name: values[order, 3 + k] for k, name in enumerate(numeric)}
    out: dict[str, Any] = {}
    for name in wanted:
        column = LEAN_COLUMNS[name]
        if column == "observed_utc":
            stamps = pd.to_datetime(number[column].astype(np.int64), unit="s", utc=True).tz_convert(LOCAL_TZ)
            out[name] = pd.Series(stamps)
        elif column in NUMERIC_LEAN:
            out[name] = pd.Series(number[column].astype(np.int64))
        else:
            assert table is not None
            out[name] = pd.Series(table[column].to_numpy(dtype=object)[order], dtype=object)
    geometry = gpd.points_from_xy(values[order, 1], values[order, 2])
    return gpd.GeoDataFrame(pd.DataFrame(out, index=pd.RangeIndex(len(fid))), geometry=geometry, crs=WORKING_CRS)


def counts_frame(rows: Sequence[Sequence[Any]], keys: list[str]) -> pd.DataFrame:
    """``keys``, ``events``, ``persons`` from grouped count rows."""
    frame = pd.DataFrame(list(rows), columns=[*keys, "events", "persons"], dtype=object)
    return frame.astype({"events": np.int64, "persons": np.int64})


def audit_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """``id``, ``at`` (tz-aware UTC), ``user``, ``action``, ``detail`` (dict) from audit rows (detail as JSON)."""
    frame = pd.DataFrame(list(rows), columns=AUDIT_COLUMNS, dtype=object)
    frame["id"] = frame["id"].astype(np.int64)
    frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
    frame["detail"] = [json.loads(d) if isinstance(d, str) else d for d in frame["detail"]]
    return frame


OPERATION_COLUMNS = ["id", "name", "created", "user", "start_date", "end_date"]
"""The listed columns of saved operations (their ``body`` is read one at a time)."""


def operations_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Saved operations (:data:`OPERATION_COLUMNS`): whole-number ids, tz-aware UTC ``created``, dates as text."""
    frame = pd.DataFrame(list(rows), columns=OPERATION_COLUMNS, dtype=object)
    frame["id"] = frame["id"].astype(np.int64)
    frame["created"] = pd.to_datetime(frame["created"], utc=True, format="ISO8601")
    return frame


def operation_record(row: Sequence[Any]) -> tuple[dict[str, Any], str]:
    """One saved operation read as :data:`OPERATION_COLUMNS` then ``body``: its listed columns and its body."""
    listed = operations_frame([row[:-1]]).iloc[0]
    return {str(k): v for k, v in listed.items()}, str(row[-1])


def imports_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """The imports table (:data:`IMPORT_COLUMNS`) with whole numbers and tz-aware UTC times."""
    frame = pd.DataFrame(list(rows), columns=IMPORT_COLUMNS, dtype=object)
    for col in ("id", "rows", "accepted", "rejected", "duplicates"):
        frame[col] = frame[col].astype(np.int64)
    frame["imported_at"] = pd.to_datetime(frame["imported_at"], utc=True, format="ISO8601")
    return frame


def audit_detail(detail: dict[str, Any]) -> str:
    """An audit record's detail as JSON text (paths and other objects as text)."""
    return json.dumps(detail, default=str, ensure_ascii=False)
