"""Event reads shared by the JSON API and the OGC API: pages of events in a longitude/latitude box."""
from __future__ import annotations

from typing import Any

import geopandas as gpd

from geo_ibm.settings import WEB_CRS
from webapp.params import Interval, bbox_to_working_crs


def time_filters(interval: Interval | None) -> dict[str, Any]:
    """``start``/``end`` keyword arguments for ``store.events`` from an interval (end exclusive)."""
    return {} if interval is None else interval.as_filters()


def events_in_bbox(
    store: Any,
    *,
    bbox: tuple[float, float, float, float] | None,
    filters: dict[str, Any],
    limit: int,
    offset: int,
) -> tuple[gpd.GeoDataFrame, int]:
    """One page of events (EPSG:2169) matching ``filters`` and a CRS84 ``bbox``, and the total.

    The store filters on the EPSG:2169 box enclosing ``bbox``; the points are then tested
    against the exact longitude/latitude box, so paging counts only the events inside it.
    Only the ids and points of the candidates are read (a box around the whole country holds
    every event); the full rows are read for the page alone.
    """
    if bbox is None:
        total = int(store.count(**filters))
        page = store.events(**filters, limit=limit, offset=offset)
        return page, total
    candidates = store.events(**filters, bbox=bbox_to_working_crs(bbox), columns=["event_id"])
    if len(candidates):
        lonlat = candidates.geometry.to_crs(WEB_CRS)
        inside = ((lonlat.x >= bbox[0]) & (lonlat.x <= bbox[2]) & (lonlat.y >= bbox[1]) & (lonlat.y <= bbox[3])).to_numpy()
        candidates = candidates[inside]
    wanted = candidates["event_id"].iloc[offset: offset + limit].tolist()
    # Both reads order by time, so the page keeps the candidates' order.
    page = store.events(event_id=wanted) if wanted else store.events(**filters, limit=0)
    return page, int(len(candidates))
