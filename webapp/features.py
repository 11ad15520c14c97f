"""Event reads shared by the JSON API and the OGC API: pages of events in a longitude/latitude box."""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import shapely

from geo_ibm.crs import to_lonlat
from geo_ibm.geojson import features_text
from webapp.cache import cached
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
    def matching_ids() -> list[str]:
        candidates = store.events(**filters, bbox=bbox_to_working_crs(bbox), columns=["event_id"])
        if not len(candidates):
            return []
        geoms = candidates.geometry.to_numpy()
        lon, lat = to_lonlat(shapely.get_x(geoms), shapely.get_y(geoms))
        inside = (lon >= bbox[0]) & (lon <= bbox[2]) & (lat >= bbox[1]) & (lat <= bbox[3])
        return candidates["event_id"].to_numpy()[inside].tolist()

    # A GIS client pages through one box: the ordered ids are kept per store version, so each
    # further page reads only its own rows.
    key = (tuple(sorted((k, str(v)) for k, v in filters.items())), tuple(bbox))
    ids = cached(store, "bbox-ids", key, matching_ids)
    wanted = ids[offset: offset + limit]
    # Both reads order by time, so the page keeps the candidates' order.
    page = store.events(event_id=wanted) if wanted else store.events(**filters, limit=0)
    return page, len(ids)


def event_page_features(
    store: Any,
    *,
    bbox: tuple[float, float, float, float] | None,
    filters: dict[str, Any],
    limit: int,
    offset: int,
) -> tuple[str, int, int]:
    """One page of :func:`events_in_bbox` as GeoJSON features: ``(features JSON text, returned, matched)``."""
    page, matched = events_in_bbox(store, bbox=bbox, filters=filters, limit=limit, offset=offset)
    return features_text(page, id_column="event_id"), len(page), int(matched)


def event_page_json(
    store: Any,
    *,
    bbox: tuple[float, float, float, float] | None,
    filters: dict[str, Any],
    limit: int,
    offset: int,
) -> tuple[str, int, int]:
    """:func:`event_page_features`, kept per store version.

    The cache is bounded in bytes and counts the text: GIS clients and several users opening
    the same view ask for the same pages, which are then served without reading or converting
    the events again. Reads are audited by the caller on every request, cached or not. (The
    OGC API keeps its whole answers instead, see :func:`webapp.ogc.items`.)
    """
    def build() -> tuple[str, int, int]:
        return event_page_features(store, bbox=bbox, filters=filters, limit=limit, offset=offset)

    key = (tuple(sorted((k, str(v)) for k, v in filters.items())), bbox, limit, offset)
    return cached(store, "event-page", key, build)
