"""Query-parameter parsing and validation shared by the web views (400 answers naming the parameter)."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, overload

import pandas as pd

from geo_ibm.crs import transformer
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.settings import LOCAL_TZ, WEB_CRS, WORKING_CRS

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

EVENT_FILTERS = ("quarter", "region", "canton", "location_kind", "entry_country", "transport_mode")
"""Event filter parameter names, passed to ``store.events`` under the same names."""

_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_CODE = re.compile(r"^[A-Za-z0-9_\- .'()/À-ÿ]{1,80}$")


def parameter_error(name: str, value: Any, reason: str) -> ValidationError:
    """Return the ``ValidationError`` for one bad query parameter; its Problem names the parameter."""
    if value is not None and len(str(value)) > 200:
        value = str(value)[:200] + "..."
    err = ValidationError(f"invalid query parameter {name!r}: {reason} (got {value!r})")
    # Kept as a Problem so the error body can name the parameter that was wrong.
    err.problems.append(Problem(reason, column=name, value=value))
    return err


def check_known(args: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuse query parameters whose names are not in ``allowed`` (catches typos like ``regoin``)."""
    allowed = set(allowed)
    unknown = sorted(k for k in args.keys() if k not in allowed)
    if unknown:
        raise parameter_error(unknown[0], args.get(unknown[0]), f"unknown parameter; allowed: {', '.join(sorted(allowed))}")


def single(args: Mapping[str, Any], name: str) -> str | None:
    """Return the one value of ``name`` (or ``None``); refuse a parameter given twice."""
    getlist = getattr(args, "getlist", None)
    if getlist is not None:
        values = getlist(name)
        if len(values) > 1:
            raise parameter_error(name, values, "given more than once")
        return values[0] if values else None
    return args.get(name)


def parse_int(
    raw: str | None,
    *,
    name: str,
    default: int,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """Return ``raw`` as an integer within [``minimum``, ``maximum``], or ``default`` if absent."""
    if raw is None or raw == "":
        return default
    text = str(raw).strip()
    if not re.fullmatch(r"[+-]?\d{1,18}", text):
        raise parameter_error(name, raw, "must be an integer")
    value = int(text)
    if minimum is not None and value < minimum:
        raise parameter_error(name, raw, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise parameter_error(name, raw, f"must be at most {maximum}")
    return value


@overload
def parse_float(raw: str | None, *, name: str, default: float, minimum: float | None = None,
                maximum: float | None = None) -> float: ...
@overload
def parse_float(raw: str | None, *, name: str, default: None, minimum: float | None = None,
                maximum: float | None = None) -> float | None: ...
def parse_float(
    raw: str | None,
    *,
    name: str,
    default: float | None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float | None:
    """Return ``raw`` as a finite float within [``minimum``, ``maximum``], or ``default`` if absent."""
    if raw is None or raw == "":
        return default
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise parameter_error(name, raw, "must be a number") from None
    if not math.isfinite(value):
        raise parameter_error(name, raw, "must be a finite number")
    if minimum is not None and value < minimum:
        raise parameter_error(name, raw, f"must be at least {minimum:g}")
    if maximum is not None and value > maximum:
        raise parameter_error(name, raw, f"must be at most {maximum:g}")
    return value


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT, clamp: bool = False) -> int:
    """Return the ``limit`` parameter: an integer in 1..``maximum`` (default ``default``).

    With ``clamp``, a larger integer is served as ``maximum`` instead of refused: OGC API –
    Features lets a client ask for more than the server's page size and follow ``next`` links.
    """
    value = parse_int(raw, name="limit", default=default, minimum=1, maximum=None if clamp else maximum)
    return min(value, maximum)


def parse_offset(raw: str | None) -> int:
    """Return the ``offset`` parameter: an integer >= 0 (default 0)."""
    return parse_int(raw, name="offset", default=0, minimum=0)


def parse_bbox(raw: str | None, *, name: str = "bbox") -> tuple[float, float, float, float] | None:
    """Return a CRS84 ``bbox`` (lon_min, lat_min, lon_max, lat_max) or ``None`` if absent.

    Four numbers, or six (with heights, which are dropped), comma-separated; longitudes in
    [-180, 180], latitudes in [-90, 90], min <= max. Boxes crossing the antimeridian are
    refused (nothing in this service lies near it).
    """
    if raw is None:
        return None
    parts = [p.strip() for p in str(raw).split(",")]
    if len(parts) not in (4, 6):
        raise parameter_error(name, raw, f"must be 4 comma-separated numbers lon_min,lat_min,lon_max,lat_max; got {len(parts)} values")
    numbers = []
    for part in parts:
        try:
            number = float(part)
        except ValueError:
            raise parameter_error(name, raw, f"{part!r} is not a number") from None
        if not math.isfinite(number):
            raise parameter_error(name, raw, f"{part!r} is not a finite number")
        numbers.append(number)
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    xmin, ymin, xmax, ymax = numbers
    for lon in (xmin, xmax):
        if not -180 <= lon <= 180:
            raise parameter_error(name, raw, f"longitude {lon:g} is outside [-180, 180]")
    for lat in (ymin, ymax):
        if not -90 <= lat <= 90:
            raise parameter_error(name, raw, f"latitude {lat:g} is outside [-90, 90]")
    if xmin > xmax:
        raise parameter_error(name, raw, f"lon_min {xmin:g} is greater than lon_max {xmax:g}")
    if ymin > ymax:
        raise parameter_error(name, raw, f"lat_min {ymin:g} is greater than lat_max {ymax:g}")
    return (xmin, ymin, xmax, ymax)


def bbox_to_working_crs(bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Return an EPSG:2169 box enclosing a CRS84 ``bbox``, never clipping it.

    The edges are densified; projected lon/lat edges bow between the sample points by a few
    centimetres, so the box is padded by one metre. Callers filter exactly afterwards.
    """
    xmin, ymin, xmax, ymax = transformer(WEB_CRS, WORKING_CRS).transform_bounds(*bbox, densify_pts=101)
    pad = 1.0
    return (float(xmin) - pad, float(ymin) - pad, float(xmax) + pad, float(ymax) + pad)


@dataclass(frozen=True)
class Interval:
    """A time interval ``[start, end)``; either end may be ``None`` (open). Timestamps are tz-aware."""

    start: pd.Timestamp | None
    end: pd.Timestamp | None

    def as_filters(self) -> dict[str, pd.Timestamp]:
        """Return ``{"start": ..., "end": ...}`` without the open ends, for ``store.events``."""
        out = {}
        if self.start is not None:
            out["start"] = self.start
        if self.end is not None:
            out["end"] = self.end
        return out


MIN_YEAR, MAX_YEAR = 1900, 2199
"""Dates outside these years are refused (beyond them day arithmetic leaves pandas' range)."""

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _instant(text: str, *, name: str, raw: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    # Returns the instant and the end of the period it names: a date names its whole day.
    text = text.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?", text, re.IGNORECASE):
        raise parameter_error(name, raw, f"{text!r} is not an RFC 3339 date or date-time (e.g. 2025-01-31 or 2025-01-31T08:00:00Z)")
    try:
        stamp = pd.Timestamp(text.upper())  # RFC 3339 allows a lower-case t and z
    except (ValueError, OverflowError):
        raise parameter_error(name, raw, f"{text!r} is not a valid date") from None
    if not MIN_YEAR <= stamp.year <= MAX_YEAR:
        raise parameter_error(name, raw, f"{text!r} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(LOCAL_TZ, ambiguous="NaT", nonexistent="shift_forward")
        if pd.isna(stamp):
            raise parameter_error(name, raw, f"{text!r} is ambiguous in {LOCAL_TZ} (clock change); give an offset")
    if _DATE_ONLY.match(text):
        following = (pd.Timestamp(text) + pd.Timedelta(days=1)).tz_localize(LOCAL_TZ, nonexistent="shift_forward")
        return stamp, following
    # Event times are kept to the second, so an instant names its whole second.
    second = stamp.floor("s")
    return second, second + pd.Timedelta(seconds=1)


def parse_datetime(raw: str | None, *, name: str = "datetime") -> Interval | None:
    """Return the OGC API ``datetime`` parameter as an :class:`Interval`, or ``None`` if absent.

    Accepts an instant (``2025-01-31`` or ``2025-01-31T08:00:00Z``), a closed interval
    (``2025-01-01/2025-03-31``) and half-open ones (``../2025-01-01``, ``2025-01-01/..``,
    ``/2025-01-01``). A date names its whole day and a time its whole second, so ends are
    included; the returned end is exclusive. Times without an offset are in Europe/Luxembourg.
    """
    if raw is None:
        return None
    text = str(raw).strip()
    if text == "":
        raise parameter_error(name, raw, "is empty")
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    if "/" not in text:
        start, end = _instant(text, name=name, raw=raw)
        return Interval(start, end)
    parts = text.split("/")
    if len(parts) != 2:
        raise parameter_error(name, raw, "an interval has exactly one '/' (start/end, '..' for open)")
    left, right = (p.strip() for p in parts)
    open_left = left in ("", "..")
    open_right = right in ("", "..")
    if open_left and open_right:
        raise parameter_error(name, raw, "an interval needs at least one end")
    start = None if open_left else _instant(left, name=name, raw=raw)[0]
    end = None if open_right else _instant(right, name=name, raw=raw)[1]
    if start is not None and end is not None and start >= end:
        raise parameter_error(name, raw, "the start is after the end")
    return Interval(start, end)


def parse_date_range(args: Mapping[str, Any], *, start_name: str = "from", end_name: str = "to") -> Interval | None:
    """Return the ``from``/``to`` pair (dates or date-times, ``to`` included) as an Interval."""
    raw_start = single(args, start_name)
    raw_end = single(args, end_name)
    if not raw_start and not raw_end:
        return None
    start = _instant(raw_start, name=start_name, raw=raw_start)[0] if raw_start else None
    end = _instant(raw_end, name=end_name, raw=raw_end)[1] if raw_end else None
    if start is not None and end is not None and start >= end:
        raise parameter_error(start_name, raw_start, f"is after {end_name!r} ({raw_end})")
    return Interval(start, end)


def parse_quarter(raw: str, *, name: str = "quarter") -> str:
    """Return a quarter as the store spells it, ``YYYYQn`` (``2025-Q1``, ``2025q1`` are accepted)."""
    match = _QUARTER.match(str(raw).strip())
    if not match:
        raise parameter_error(name, raw, "must be a quarter like 2025Q1 or 2025-Q1")
    return f"{match.group(1)}Q{match.group(2)}"


def parse_event_filters(args: Mapping[str, Any], *, choices: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any]:
    """Return the event filters present in ``args`` as keyword arguments for ``store.events``.

    ``quarter`` is normalised to ``YYYYQn``; the other filters are codes of at most 80 plain
    characters, checked case-insensitively against ``choices[name]`` when given (for example
    ``geo_ibm.events.CODE_LISTS`` and the known police regions) and returned in the spelling
    of ``choices``.
    """
    filters: dict[str, Any] = {}
    for name in EVENT_FILTERS:
        raw = single(args, name)
        if raw is None or raw == "":
            continue
        value = str(raw).strip()
        if name == "quarter":
            filters[name] = parse_quarter(value)
            continue
        if not _CODE.match(value):
            raise parameter_error(name, raw, "contains characters no code has")
        known = list((choices or {}).get(name) or [])
        if known:
            lookup = {str(k).casefold(): str(k) for k in known}
            if value.casefold() not in lookup:
                raise parameter_error(name, raw, f"unknown value; known: {', '.join(sorted(map(str, known)))}")
            value = lookup[value.casefold()]
        filters[name] = value
    return filters


def parse_choice(raw: str | None, *, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
    """Return ``raw`` if it is one of ``choices`` (case-insensitive), else refuse it."""
    if raw is None or raw == "":
        return default
    options = list(choices)
    lookup = {c.casefold(): c for c in options}
    if str(raw).strip().casefold() not in lookup:
        raise parameter_error(name, raw, f"must be one of {', '.join(options)}")
    return lookup[str(raw).strip().casefold()]
