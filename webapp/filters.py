"""A request's event selection: the URL's filter parameters as store filters and hotspot queries."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geo_ibm.analysis import PAGE_METHODS, HotspotQuery, check_query
from webapp.params import check_known, parse_date_range, parse_event_filters, parse_float, single
from webapp.reference import filter_choices

FILTER_PARAMS: tuple[str, ...] = (
    "from", "to", "quarter", "region", "canton", "location_kind", "entry_country", "transport_mode",
)
"""Query parameters of every map page, export and map document (the URL holds the filter)."""

SIZE_PARAMS: tuple[str, ...] = ("cell", "band")
"""Extra query parameters of the hotspot page, its map and the report downloads (metres)."""

PAGE_MIN_CELL_M = 200.0
"""Smallest cell of the hotspot page and the print maps: the grid over Luxembourg then stays
within the emerging hot spot limit (:data:`geo_ibm.analysis.MAX_CELLS`), so every layer draws."""


def parse_filters(args: Mapping[str, Any], *, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keyword arguments for ``store.events`` from the query string; bad values give 400.

    ``from``/``to`` are dates or date-times (``to`` included), ``quarter`` is ``YYYY-Qn``;
    the code filters must be known values. Unknown parameters are refused too, so a typo
    never silently widens the selection.
    """
    check_known(args, FILTER_PARAMS + extra)
    filters = parse_event_filters(args, choices=filter_choices())
    interval = parse_date_range(args)
    if interval is not None:
        filters.update(interval.as_filters())
    return filters


def filter_query(args: Mapping[str, Any], *, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The filter parameters present in ``args`` (non-empty, as text), to rebuild links.

    Typed ``Any`` so that ``url_for(..., **filter_query(args))`` type-checks: url_for's own
    flags (``_external``...) are booleans, and no filter is named like them.
    """
    return {k: str(args.get(k)) for k in FILTER_PARAMS + extra if args.get(k)}


def parse_page_sizes(args: Mapping[str, Any]) -> dict[str, float | None]:
    """``cell`` (200-5000 m) and ``band`` (100-50000 m) of the hotspot page; absent: automatic."""
    cell = parse_float(single(args, "cell"), name="cell", default=None, minimum=PAGE_MIN_CELL_M, maximum=5000)
    band = parse_float(single(args, "band"), name="band", default=None, minimum=100, maximum=50_000)
    return {"cell": cell, "band": band}


def hotspot_query(filters: Mapping[str, Any], *, method: str = "gi", cell: float | None = None,
                  band: float | None = None, seed: int = 0) -> HotspotQuery:
    """The analysis of the events ``filters`` select (as :func:`parse_filters` returns them)."""
    return HotspotQuery(method=method, cell=cell, band=band, seed=seed, **filters)


def parse_hotspot_map(args: Mapping[str, Any], *, extra: tuple[str, ...] = (),
                      methods: tuple[str, ...] = PAGE_METHODS) -> tuple[HotspotQuery, dict[str, float | None]]:
    """The hotspot map's query (filters, ``cell``, ``band``) and its sizes, checked before any work.

    Sizes over the cost limit of any of ``methods`` (the layers drawn) are refused here with
    a 400 naming ``cell`` or ``band``, before the cache or the store is asked.
    """
    filters = parse_filters(args, extra=SIZE_PARAMS + extra)
    sizes = parse_page_sizes(args)
    query = hotspot_query(filters, cell=sizes["cell"], band=sizes["band"])
    for method in methods:
        check_query(query.sized_for(method))
    return query, sizes
