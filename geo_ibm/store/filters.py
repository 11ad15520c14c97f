"""Backend-neutral query keywords of the event store: filters, paging, columns, groupings and their SQL."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from geo_ibm.errors import ValidationError
from geo_ibm.events import CODE_LISTS
from geo_ibm.periods import epoch_seconds, parse_quarter, period_end, period_start

BBox = tuple[float, float, float, float]

FILTER_NAMES = frozenset({
    "start", "end", "quarter", "region", "canton", "location_kind", "entry_country", "transport_mode", "bbox",
    "event_id",
})
"""The filter keywords every read of the store takes."""

MAX_EVENT_IDS = 30_000
"""Most ids one ``event_id`` filter may list (SQLite binds at most 32 766 parameters)."""

LEAN_COLUMNS: dict[str, str] = {
    "observed_at": "observed_utc",
    "persons": "persons",
    "smugglers": "smugglers",
    "quarter": "quarter",
    "canton": "canton",
    "region": "region",
    "location_kind": "location_kind",
    "entry_country": "entry_country",
    "transport_mode": "transport_mode",
    "destination_country": "destination_country",
    "nationalities": "nationalities",
    "event_id": "event_id",
    "operation_id": "operation_id",
    "source_unit": "source_unit",
    "notes": "notes",
}
"""Columns :meth:`EventStore.events` can return alone (``columns=``) -> their stored column."""

COUNT_KEYS = ("quarter", "region", "canton", "location_kind", "entry_country", "transport_mode")
"""Columns :meth:`EventStore.counts` can group by."""


@dataclass(frozen=True)
class EventFilter:
    """Validated filters in stored form: every set field must hold for an event to match.

    ``start``/``end`` are UTC epoch seconds (``start <= observed_utc < end``); names and codes
    are in their stored spelling; ``bbox`` is ``(minx, miny, maxx, maxy)`` in EPSG:2169.
    """

    start: int | None = None
    end: int | None = None
    quarter: str | None = None
    region: tuple[str, ...] | None = None
    canton: tuple[str, ...] | None = None
    location_kind: tuple[str, ...] | None = None
    transport_mode: tuple[str, ...] | None = None
    entry_country: tuple[str, ...] | None = None
    event_id: tuple[str, ...] | None = None
    bbox: BBox | None = None


@dataclass(frozen=True)
class Paging:
    """``limit`` rows (``None``: all) after skipping ``offset``."""

    limit: int | None = None
    offset: int = 0

    @property
    def active(self) -> bool:
        return self.limit is not None or bool(self.offset)


@dataclass(frozen=True)
class SqlDialect:
    """What differs between the SQL of the backends: the parameter placeholder and "no limit"."""

    placeholder: str
    no_limit: str


SQLITE = SqlDialect(placeholder="?", no_limit="-1")
POSTGRESQL = SqlDialect(placeholder="%s", no_limit="ALL")


def check_filter_names(filters: Mapping[str, Any]) -> None:
    """Refuse keywords that are not filters, so a typo never silently widens a selection."""
    unknown = sorted(set(filters) - FILTER_NAMES)
    if unknown:
        raise ValidationError(f"unknown filter(s) {', '.join(unknown)}; use {', '.join(sorted(FILTER_NAMES))}")


def parse_filters(
    filters: Mapping[str, Any], *, stored_names: Callable[[str], Iterable[str]] | None = None
) -> EventFilter:
    """Validate filter keywords (``None`` values are ignored) into an :class:`EventFilter`.

    Parameters
    ----------
    filters
        ``start``, ``end`` (ISO text, date or datetime; naive = local time; an ``end`` given
        as a date includes that day), ``quarter`` (``2025Q3``), ``region``, ``canton`` (a
        name or a list, case-insensitive), ``location_kind``, ``entry_country``,
        ``transport_mode`` (a code or a list), ``bbox`` (four numbers, EPSG:2169),
        ``event_id`` (a text or a list of texts).
    stored_names
        Gives the distinct stored values of ``region`` or ``canton``; asked only for names
        the shipped or installed canton layer does not know (older layers).

    Raises
    ------
    ValidationError
        Naming the keyword and the value received.
    """
    check_filter_names(filters)
    given = {k: v for k, v in filters.items() if v is not None}
    out: dict[str, Any] = {}
    if "start" in given:
        out["start"] = epoch_seconds(period_start(given["start"], name="start"))
    if "end" in given:
        out["end"] = epoch_seconds(period_end(given["end"], name="end"))
    if "quarter" in given:
        out["quarter"] = parse_quarter(given["quarter"])
    for column in ("region", "canton"):
        if column in given:
            out[column] = tuple(_known_names(column, given[column], stored_names))
    for column, allowed in CODE_LISTS.items():
        if column in given:
            out[column] = tuple(_codes(given[column], column, allowed))
    if "event_id" in given:
        value = given["event_id"]
        ids = [value] if isinstance(value, str) else list(value)
        if len(ids) > MAX_EVENT_IDS or not all(isinstance(i, str) for i in ids):
            raise ValidationError(
                f"event_id must be a text or a list of at most {MAX_EVENT_IDS} texts, got {len(ids)} value(s)"
            )
        out["event_id"] = tuple(ids)
    if "bbox" in given:
        out["bbox"] = _bbox(given["bbox"])
    return EventFilter(**out)


def _codes(value: Any, name: str, allowed: tuple[str, ...]) -> list[str]:
    wanted = [value] if isinstance(value, str) else list(value)
    lookup = {a.lower(): a for a in allowed}
    out = []
    for item in wanted:
        code = lookup.get(str(item).strip().lower())
        if code is None:
            raise ValidationError(f"{name} {item!r} is unknown; allowed: {', '.join(allowed)}")
        out.append(code)
    return out


def _known_names(column: str, value: Any, stored_names: Callable[[str], Iterable[str]] | None) -> list[str]:
    wanted = [value] if isinstance(value, str) else list(value)
    known: set[str] = set()
    try:
        from geo_ibm.layers import cantons

        known |= set(cantons()[column].dropna().astype(str))
    except Exception:  # layers unavailable: the names in the store are the reference
        pass
    lookup = {k.casefold(): k for k in known}
    if stored_names is not None and any(str(item).strip().casefold() not in lookup for item in wanted):
        # Names the layers do not know may still be stored (an older canton layer); reading
        # the stored names is only worth its cost then.
        stored = {str(v) for v in stored_names(column) if v is not None}
        known |= stored
        lookup.update({k.casefold(): k for k in stored if k.casefold() not in lookup})
    out: list[str] = []
    for item in wanted:
        match = lookup.get(str(item).strip().casefold())
        if match is None:
            raise ValidationError(f"{column} {item!r} is unknown; known {column}s: {', '.join(sorted(known)) or 'none'}")
        out.append(match)
    return out


def _bbox(value: Any) -> BBox:
    try:
        minx, miny, maxx, maxy = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValidationError(f"bbox must be four numbers (minx, miny, maxx, maxy) in EPSG:2169, got {value!r}") from None
    if not (minx <= maxx and miny <= maxy) or not np.all(np.isfinite([minx, miny, maxx, maxy])):
        raise ValidationError(f"bbox must have minx <= maxx and miny <= maxy, got {value!r}")
    return minx, miny, maxx, maxy


def parse_paging(limit: Any, offset: Any) -> Paging:
    """Validate ``limit`` (``None`` or a whole number >= 0) and ``offset`` (a whole number >= 0)."""
    if limit is not None and (not isinstance(limit, int | np.integer) or isinstance(limit, bool) or limit < 0):
        raise ValidationError(f"limit must be a whole number >= 0, got {limit!r}")
    if not isinstance(offset, int | np.integer) or isinstance(offset, bool) or offset < 0:
        raise ValidationError(f"offset must be a whole number >= 0, got {offset!r}")
    return Paging(None if limit is None else int(limit), int(offset))


def parse_columns(columns: Any) -> list[str]:
    """Validate ``columns=`` of :meth:`EventStore.events`: distinct names of :data:`LEAN_COLUMNS`."""
    wanted = [columns] if isinstance(columns, str) else list(columns)
    bad = [c for c in wanted if c not in LEAN_COLUMNS]
    if bad or len(set(wanted)) != len(wanted):
        raise ValidationError(
            f"columns must be distinct names of {', '.join(LEAN_COLUMNS)} (geometry always comes), got {columns!r}"
        )
    return wanted


def parse_count_keys(by: Any) -> list[str]:
    """Validate ``by=`` of :meth:`EventStore.counts`: one or more of :data:`COUNT_KEYS`."""
    keys = [by] if isinstance(by, str) else list(by)
    bad = [k for k in keys if k not in COUNT_KEYS]
    if not keys or bad:
        raise ValidationError(f"by must name one or more of {', '.join(COUNT_KEYS)}, got {by!r}")
    return keys


# --- SQL ------------------------------------------------------------------------------------


SpatialClause = Callable[[BBox], tuple[list[str], list[Any]]]
"""A backend's bbox clauses: ``(clauses, parameters)`` for a box, in its own placeholder style."""


def box_clauses(bbox: BBox, dialect: SqlDialect = SQLITE) -> tuple[list[str], list[Any]]:
    """The exact test of a box on the stored ``x``/``y`` columns (bounds included)."""
    p = dialect.placeholder
    minx, miny, maxx, maxy = bbox
    return [f"x >= {p} AND x <= {p} AND y >= {p} AND y <= {p}"], [minx, maxx, miny, maxy]


def where_sql(
    flt: EventFilter, *, dialect: SqlDialect = SQLITE, spatial: SpatialClause | None = None
) -> tuple[str, list[Any]]:
    """``(" WHERE ...", parameters)`` selecting the events of ``flt`` ("" when it sets nothing).

    Parameters
    ----------
    dialect
        The backend's placeholder style.
    spatial
        Clauses for ``bbox`` (e.g. a spatial index lookup plus :func:`box_clauses`); by
        default the exact ``x``/``y`` test alone.
    """
    p = dialect.placeholder
    clauses: list[str] = []
    params: list[Any] = []

    def among(column: str, values: tuple[str, ...]) -> None:
        # An empty list matches nothing; "IN ()" is not valid SQL everywhere.
        clauses.append(f"{column} IN ({', '.join([p] * len(values))})" if values else "0 = 1")
        params.extend(values)

    if flt.start is not None:
        clauses.append(f"observed_utc >= {p}")
        params.append(flt.start)
    if flt.end is not None:
        clauses.append(f"observed_utc < {p}")
        params.append(flt.end)
    if flt.quarter is not None:
        clauses.append(f"quarter = {p}")
        params.append(flt.quarter)
    for column in ("region", "canton", *CODE_LISTS, "event_id"):
        values = getattr(flt, column)
        if values is not None:
            among(column, values)
    if flt.bbox is not None:
        extra, extra_params = (spatial or (lambda box: box_clauses(box, dialect)))(flt.bbox)
        clauses.extend(extra)
        params.extend(extra_params)
    return ((" WHERE " + " AND ".join(clauses)) if clauses else ""), params


def paging_sql(paging: Paging, dialect: SqlDialect = SQLITE) -> str:
    """`` LIMIT n OFFSET m`` for ``paging`` ("" when it takes every row)."""
    if not paging.active:
        return ""
    limit = dialect.no_limit if paging.limit is None else str(int(paging.limit))
    return f" LIMIT {limit} OFFSET {int(paging.offset)}"
