"""The overview and hotspot pages (the maps themselves are their own documents, see ``webapp.maps``)."""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import pandas as pd
from flask import Blueprint, redirect, render_template, request, url_for

from geo_ibm.counts import event_total
from webapp.access import DETAIL_ROLE, disclosure_rule
from webapp.auth import audit_read, get_store, has_role, require_role
from webapp.filters import SIZE_PARAMS, filter_query, parse_filters, parse_hotspot_map
from webapp.reference import filter_choices

pages_bp = Blueprint("pages", __name__)

RECENT_EVENTS = 20


@pages_bp.route("/")
def index() -> Any:
    return redirect(url_for("pages.overview"))


@pages_bp.route("/overview")
@require_role("viewer")
def overview() -> Any:
    """Borders, crossing points and the filtered events, with counts and the latest events.

    The table of latest events is for the analyst role and above; viewers see aggregates only.
    """
    filters = parse_filters(request.args)
    store = get_store()
    rule = disclosure_rule()
    total = event_total(store, filters, disclosure=rule)
    details = has_role(DETAIL_ROLE)
    rows: list[dict[str, Any]] = []
    if details:
        # The store orders by time: the last page holds the latest events.
        recent = store.events(**filters, limit=RECENT_EVENTS, offset=max(0, (total or 0) - RECENT_EVENTS))
        rows = _event_rows(recent.iloc[::-1])
        audit_read("latest events", len(rows))
    return render_template(
        "overview.html", total=total, disclosure=rule, recent=rows, details=details, choices=filter_choices(),
        query=filter_query(request.args),
        map_src=url_for("maps.map_document", kind="overview", **filter_query(request.args)),
    )


@pages_bp.route("/hotspots")
@require_role("viewer")
def hotspots() -> Any:
    """Gi*, kernel density, clusters and emerging hot spots as switchable map layers, and the named hotspots.

    The named hotspots table (:func:`geo_ibm.namedhotspots.named_hotspots_for_query`) lists the
    map's Gi* hot cells merged into hotspots; aggregates-only readers get it protected.
    """
    query, options = parse_hotspot_map(request.args)
    rule = disclosure_rule()
    store = get_store()
    total = event_total(store, query.store_filters(), disclosure=rule)
    links = filter_query(request.args, extra=SIZE_PARAMS)
    named, named_note = _named_hotspots(store, query, rule)
    return render_template(
        "hotspots.html", total=total, disclosure=rule, choices=filter_choices(), query=links, options=options,
        map_src=url_for("maps.map_document", kind="hotspots", **links), named=named, named_note=named_note,
    )


NAMED_HOTSPOT_ROWS = 20
"""Rows of the hotspot page's named hotspots table."""


def _named_hotspots(store: Any, query: Any, rule: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The page's named hotspot rows (cached per store version, query, role and language), or why there are none."""
    from geo_ibm.errors import GeoIbmError
    from geo_ibm.namedhotspots import named_hotspots_for_query
    from webapp.cache import cached
    from webapp.i18n import get_language

    lang = get_language()

    def build() -> tuple[list[dict[str, Any]], str | None]:
        try:
            frame = named_hotspots_for_query(store, query, disclosure=rule, lang=lang if lang in ("en", "fr") else "en")
        except GeoIbmError as exc:
            return [], str(exc).splitlines()[0]
        rows = []
        for record in pd.DataFrame(frame.drop(columns="geometry")).head(NAMED_HOTSPOT_ROWS).to_dict(orient="records"):
            row = {str(k): (None if isinstance(v, float) and pd.isna(v) else v) for k, v in record.items()}
            # The other communes a large hotspot covers, besides the one it is named after.
            row["also"] = ", ".join(c for c in str(row.get("communes") or "").split(", ") if c and c != row.get("commune"))
            rows.append(row)
        return rows, None

    return cached(store, "named-hotspots", (query, rule, lang), build)


def _event_rows(frame: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    columns = [c for c in ("event_id", "observed_at", "location_kind", "entry_country", "transport_mode", "persons", "notes")
               if c in frame.columns]
    rows = []
    for record in frame[columns].to_dict(orient="records"):
        rows.append({k: ("" if v is None or (isinstance(v, float) and pd.isna(v)) else v) for k, v in record.items()})
    return rows
