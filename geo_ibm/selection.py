"""The selection of stored events a query reads: its time window and its attribute filters, under the names
``store.events`` takes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WINDOW_FIELDS: tuple[str, ...] = ("start", "end", "quarter")
"""The fields of a selection's time window."""

ATTRIBUTE_FIELDS: tuple[str, ...] = ("region", "canton", "location_kind", "entry_country", "transport_mode")
"""The fields that filter events by their attributes."""

SELECTION_FIELDS: tuple[str, ...] = WINDOW_FIELDS + ATTRIBUTE_FIELDS
"""Every field of :class:`EventSelection`, in order."""


@dataclass(frozen=True, kw_only=True)
class EventSelection:
    """The events a query reads (the base of the hotspot and the route queries); ``None`` does not filter.

    Attributes
    ----------
    start, end
        Time window ``start <= observed_at < end``, in the form the query documents.
    quarter
        A quarter such as ``2026Q3``.
    region, canton, location_kind, entry_country, transport_mode
        Event filters, as ``store.events`` takes them.
    """

    start: Any = None
    end: Any = None
    quarter: str | None = None
    region: str | None = None
    canton: str | None = None
    location_kind: str | None = None
    entry_country: str | None = None
    transport_mode: str | None = None

    def given(self, names: tuple[str, ...] = SELECTION_FIELDS, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fields of ``names`` (but ``skip``) that are set (not ``None``), by name."""
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None and name not in skip}


__all__ = ["WINDOW_FIELDS", "ATTRIBUTE_FIELDS", "SELECTION_FIELDS", "EventSelection"]
