"""Vectorised reading of table cells as the event schema reads them: trimmed text, numbers, timestamps, control characters.

Text works on pyarrow string arrays: the CSV and XLSX readers give pyarrow-backed columns, so
a million cells are trimmed, measured and matched without a Python object each. Columns of
other types (numbers and dates of GeoJSON, GeoPackage or a DataFrame) are turned into text
value by value, as before.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo_ibm.settings import LOCAL_TZ

FREE_TEXT_CONTROLS = b"\t\n\r"
"""The control characters free text may hold: tab, line feed, carriage return."""

_PLAIN_NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
_COMMA_NUMBER = r"^-?[0-9]+,[0-9]+$"


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _cell_text(value: Any) -> str | None:
    if value is None or _isna(value):
        return None
    return str(value).strip() or None


def _as_objects(values: pd.Series | np.ndarray) -> np.ndarray:
    return values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)


def arrow_strings(values: pd.Series | np.ndarray) -> pa.Array | None:
    """``values`` as one pyarrow string array (no copy for pyarrow-backed text), or ``None`` when not all text."""
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if isinstance(dtype, pd.StringDtype) or (
            isinstance(dtype, pd.ArrowDtype) and (pa.types.is_string(dtype.pyarrow_dtype)
                                                  or pa.types.is_large_string(dtype.pyarrow_dtype))
        ):
            arr = pa.array(values.array)
            return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        if not pd.api.types.is_object_dtype(dtype):
            return None
    try:
        return pa.array(_as_objects(values), type=pa.large_string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return None


def text(values: pd.Series | np.ndarray) -> pa.Array:
    """Trimmed text of each cell as a pyarrow string array; an empty or missing cell is null.

    Non-text values (numbers, dates) become their ``str()``.
    """
    arr = arrow_strings(values)
    if arr is None:
        arr = pa.array([_cell_text(v) for v in _as_objects(values)], type=pa.large_string())
    trimmed = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(pc.utf8_length(trimmed), 0), pa.scalar(None, trimmed.type), trimmed)


def blank(arr: pa.Array) -> np.ndarray:
    """Where a :func:`text` array is null (the cell empty or missing)."""
    return np.asarray(pc.is_null(arr), dtype=bool)


def objects(arr: pa.Array) -> np.ndarray:
    """A :func:`text` array as an object array of ``str`` and ``None``."""
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)


def matches(arr: pa.Array, pattern: str) -> np.ndarray:
    """Where the (non-null) text has a match of the RE2 ``pattern``."""
    return np.asarray(pc.fill_null(pc.match_substring_regex(arr, pattern), False), dtype=bool)


def _bytes_of(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a large-string array and each value's ``[start, end)`` offsets into them."""
    arr = arr.cast(pa.large_string())
    _validity, offsets, data = arr.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return raw, bounds


def control_characters(arr: pa.Array, *, allowed: bytes = b"") -> np.ndarray:
    """Where the text holds a C0 control character or DEL (other than those in ``allowed``).

    Works on the UTF-8 bytes: a byte below 0x20 or 0x7F is never part of a multi-byte
    character, so a million cells cost one numpy pass.
    """
    raw, bounds = _bytes_of(arr)
    found = np.zeros(len(arr), dtype=bool)
    if not len(raw):
        return found
    window = raw[bounds[0] : bounds[-1]]
    bad = (window < 0x20) | (window == 0x7F)
    for byte in allowed:
        bad &= window != byte
    where = np.flatnonzero(bad) + bounds[0]
    if len(where):
        found[np.searchsorted(bounds, where, side="right") - 1] = True
    found &= ~blank(arr)
    return found


def longer_than(arr: pa.Array, chars: int) -> np.ndarray:
    """Where the text has more than ``chars`` characters (counted only where its bytes could be more)."""
    _raw, bounds = _bytes_of(arr)
    out = np.diff(bounds) > chars
    idx = np.flatnonzero(out)
    if len(idx):
        out[idx] = np.asarray(pc.fill_null(pc.greater(pc.utf8_length(arr.take(pa.array(idx))), chars), False))
    return out


def numbers(values: pd.Series) -> np.ndarray:
    """Numbers as float64; anything that is not a finite number becomes NaN.

    Text takes ``.`` or ``,`` as the decimal mark (decimal commas are common in Luxembourg
    spreadsheets: 49,61) and whatever else ``pandas.to_numeric`` reads (``1e3``, ``+4``).
    """
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        nums = np.array(values.to_numpy(dtype="float64", na_value=np.nan), dtype="float64")
        nums[~np.isfinite(nums)] = np.nan
        return nums
    cells = text(values)
    try:
        # Clean columns (the common case) convert in one pass; any odd value takes the long way.
        nums = np.array(pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False), dtype="float64")
    except pa.ArrowInvalid:
        return _numbers_one_by_one(cells)
    nums[~np.isfinite(nums)] = np.nan
    return nums


def _numbers_one_by_one(cells: pa.Array) -> np.ndarray:
    nums = np.full(len(cells), np.nan)
    plain = matches(cells, _PLAIN_NUMBER)
    if plain.any():
        nums[plain] = pc.cast(cells.filter(pa.array(plain)), pa.float64()).to_numpy(zero_copy_only=False)
    comma = ~plain & matches(cells, _COMMA_NUMBER)
    if comma.any():
        dotted = pc.replace_substring(cells.filter(pa.array(comma)), ",", ".")
        nums[comma] = pc.cast(dotted, pa.float64()).to_numpy(zero_copy_only=False)
    rest = np.flatnonzero(~plain & ~comma & ~blank(cells))
    if len(rest):
        odd = objects(cells.take(pa.array(rest)))
        parsed = np.array(pd.to_numeric(pd.Series(odd, dtype=object), errors="coerce"), dtype="float64")
        retry = np.isnan(parsed)
        if retry.any():
            fixed = [v.replace(",", ".") for v in odd[retry]]
            parsed[retry] = pd.to_numeric(pd.Series(fixed, dtype=object), errors="coerce").to_numpy(dtype="float64")
        nums[rest] = parsed
    nums[~np.isfinite(nums)] = np.nan  # 'inf' parses as a number but is no coordinate or count
    return nums


_DMY_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y")
_DMY_PATTERN = r"(?s)^(.[/.].|..[/.])"
_AWARE_PATTERN = r"(?s)([Zz]$|^.{10}.*[+-])"
def _localize(naive: pd.Series) -> pd.Series:
    """Interpret naive timestamps as Europe/Luxembourg wall-clock time.

    In the autumn hour that occurs twice the summer-time reading is taken; a time skipped in
    spring is moved forward to the first valid instant.
    """
    ambiguous = np.ones(len(naive), dtype=bool)
    return naive.dt.tz_localize(LOCAL_TZ, ambiguous=ambiguous, nonexistent="shift_forward")


def _naive_us(strings: pa.Array) -> np.ndarray:
    """UTC microseconds of ISO 8601 local wall-clock texts (NaT where unreadable)."""
    try:
        # Arrow's ISO 8601 cast reads the usual shapes in one pass; any odd value sends the
        # whole set through pandas, which decides what is readable.
        parsed = pd.Series(pc.cast(strings, pa.timestamp("us")).to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed = pd.to_datetime(pd.Series(objects(strings)), format="ISO8601", errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):  # an offset the pattern missed
            return _us(parsed.dt.tz_convert("UTC").dt.tz_localize(None))
    return _us(_localize(parsed.astype("datetime64[us]")).dt.tz_convert("UTC").dt.tz_localize(None))


def _aware_us(strings: pa.Array) -> np.ndarray:
    """UTC microseconds of ISO 8601 texts with a UTC offset or ``Z`` (NaT where unreadable)."""
    try:
        parsed = pd.Series(pc.cast(strings, pa.timestamp("us", tz="UTC")).to_numpy(zero_copy_only=False))
        parsed = pd.to_datetime(parsed, utc=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed = pd.to_datetime(pd.Series(objects(strings)), format="ISO8601", utc=True, errors="coerce")
    return _us(parsed.dt.tz_convert("UTC").dt.tz_localize(None))


def _day_first_us(strings: pa.Array) -> np.ndarray:
    """UTC microseconds of ``dd/mm/yyyy [hh:mm[:ss]]`` (or ``.``) local texts (NaT where unreadable)."""
    day_first = pd.Series([v.replace(".", "/") for v in objects(strings)], dtype=object)
    parsed = pd.Series(pd.NaT, index=day_first.index, dtype="datetime64[us]")
    for fmt in _DMY_FORMATS:
        todo = parsed.isna().to_numpy()
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(day_first[todo], format=fmt, errors="coerce").astype("datetime64[us]")
    return _us(_localize(parsed).dt.tz_convert("UTC").dt.tz_localize(None))


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
    if series.dtype == object and len(series) and not isinstance(series.iloc[0], str):
        series = pd.Series([v.isoformat() if hasattr(v, "isoformat") else v for v in series], dtype=object)
    cells = text(series)
    # Microseconds since the epoch: unlike nanoseconds they hold any year a typo may produce.
    utc_us = np.full(len(cells), np.iinfo(np.int64).min, dtype=np.int64)  # NaT
    present = np.flatnonzero(~blank(cells))
    if len(present):
        strings = cells.take(pa.array(present))
        try:
            # All naive ISO 8601 (the common case): Arrow's cast refuses offsets and day-first dates.
            naive_all = pc.cast(strings, pa.timestamp("us")).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            naive_all = None
        if naive_all is not None:
            naive_local = _localize(pd.Series(naive_all).astype("datetime64[us]"))
            utc_us[present] = _us(naive_local.dt.tz_convert("UTC").dt.tz_localize(None))
        else:
            dmy = matches(strings, _DMY_PATTERN)
            # A date part has '-' at fixed places only; a sign or Z after it is a UTC offset.
            aware = matches(strings, _AWARE_PATTERN) & ~dmy
            naive = ~aware & ~dmy
            for mask, parse in ((aware, _aware_us), (naive, _naive_us), (dmy, _day_first_us)):
                if mask.any():
                    utc_us[present[mask]] = parse(strings.filter(pa.array(mask)))
    stamps = pd.DatetimeIndex(utc_us.view("datetime64[us]")).tz_localize("UTC").tz_convert(LOCAL_TZ)
    return pd.Series(stamps, index=index)


def _us(naive_utc: pd.Series) -> np.ndarray:
    return naive_utc.astype("datetime64[us]").to_numpy().view(np.int64)
