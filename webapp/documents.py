"""The map documents (overview and hotspots) as HTML, built once per store version, filter and role."""
from __future__ import annotations

from typing import Any

from flask import Response, current_app

from geo_ibm import maps
from geo_ibm.analysis import HotspotQuery, hotspot_layers, overview_selection
from geo_ibm.analysis.requests import NEEDS_ANALYST_ROLE
from webapp.access import DETAIL_ROLE, disclosure_rule
from webapp.assets import ASSET_PREFIX
from webapp.auth import audit_read, get_store, has_role, map_csp, tile_origin
from webapp.cache import cached
from webapp.i18n import get_language
from webapp.i18n import gettext as _
from webapp.reference import layer_frame
from webapp.responses import public_url

MAP_KINDS: tuple[str, ...] = ("overview", "hotspots")

METHOD_LABELS: dict[str, str] = {
    "gi": "Gi* hot and cold spots",
    "kde": "Kernel density contours",
    "clusters": "Density clusters",
    "emerging": "Emerging hot spots",
}
"""Legend titles of the hotspot map's layers (translated when shown)."""

_MAP_ARGUMENT = {"gi": "gi", "kde": "contours", "clusters": "clusters", "emerging": "emerging"}


def tiles() -> tuple[str | None, str | None]:
    """The configured basemap tile URL and attribution (``None``: vector layers only)."""
    return current_app.config.get("TILE_URL") or None, current_app.config.get("TILE_ATTRIBUTION") or None


def _translate(message: str) -> str:
    return _(message)


def overview_document(filters: dict[str, Any]) -> str:
    """The overview map of the events ``filters`` select.

    Single events (markers with popups) only for the analyst role and at most
    ``MAP_MAX_MARKERS`` of them; otherwise aggregated cells, which need coordinates only.
    """
    details = has_role(DETAIL_ROLE)
    rule = disclosure_rule()
    clip, asked = None, filters
    if rule is not None:  # whole time blocks; a region or canton clips the map, it does not filter
        filters, clip = overview_selection(filters, rule)
        asked = {**filters, **{k: v for k, v in asked.items() if k in ("region", "canton")}}
    tiles_url, tiles_attr = tiles()
    max_markers = int(current_app.config.get("MAP_MAX_MARKERS", 1000))

    def build() -> tuple[str, int]:
        store = get_store()
        few = details and store.count(**filters) <= max_markers
        events = store.events(**filters) if few else store.event_points(**filters)
        fmap = maps.overview_map(
            events, outline=layer_frame("outline"), borders=layer_frame("borders"), crossings=layer_frame("crossings"),
            tiles_url=tiles_url, tile_attribution=tiles_attr, asset_base=ASSET_PREFIX,
            max_markers=max_markers, details=details, disclosure=rule, clip=clip, t=_translate,
        )
        return maps.render_map(fmap, title=_("Overview map"), lang=get_language()), len(events) if few else 0

    # The role's view is part of the key: a map built for an analyst is never served to a viewer.
    key = (_frozen(asked), details, rule, get_language())
    document, records = cached(get_store(), "map-overview", key, build)
    if records:  # its popups show single records
        audit_read("overview map", records)
    return document


def hotspot_document(query: HotspotQuery) -> str:
    """The hotspot map of ``query``: every layer of :func:`geo_ibm.analysis.hotspot_layers`.

    A layer that cannot run on this selection (too few events, say) is named in the legend
    with the reason; sizes over a cost limit are refused before any work (400).
    """
    tiles_url, tiles_attr = tiles()
    rule = disclosure_rule()

    def build() -> str:
        limit = current_app.config.get("MAX_CLUSTER_EVENTS")
        result = hotspot_layers(get_store(), query, event_limits={"clusters": int(limit)} if limit else None,
                                disclosure=rule)
        notes = [_note(method, reason) for method, reason in result.failures.items()]
        layers = {_MAP_ARGUMENT[m]: frame for m, frame in result.layers.items()}
        fmap = maps.hotspot_map(
            outline=layer_frame("outline"), borders=layer_frame("borders"), tiles_url=tiles_url,
            tile_attribution=tiles_attr, asset_base=ASSET_PREFIX, notes=notes, t=_translate, **layers,
        )
        return maps.render_map(fmap, title=_("Hotspot map"), lang=get_language())

    return cached(get_store(), "map-hotspots", (query, rule, get_language()), build)


_UNAVAILABLE = "not available in this installation"


def _note(method: str, reason: str) -> str:
    if reason == NEEDS_ANALYST_ROLE:
        reason = _(reason)
    elif reason.startswith(_UNAVAILABLE):
        reason = _(_UNAVAILABLE) + reason[len(_UNAVAILABLE):]
    return f"{_(METHOD_LABELS[method])}: {reason}"


def public_origin() -> str:
    """``scheme://host[:port]`` of the configured public URL (the map CSP's own origin)."""
    from urllib.parse import urlsplit

    parts = urlsplit(public_url())
    return f"{parts.scheme}://{parts.netloc}"


def map_headers(response: Response) -> Response:
    """A map document's own Content-Security-Policy (Folium's inline code, the tile server) and framing."""
    tiles_url, _attr = tiles()
    response.headers["Content-Security-Policy"] = map_csp(
        self_origin=public_origin(), tile_origin=tile_origin(tiles_url)
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _frozen(filters: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in filters.items()))
