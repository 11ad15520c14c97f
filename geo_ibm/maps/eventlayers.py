"""Event layers of the Folium maps: events counted in display cells, heat, individual
markers with popups (or disclosure-protected counts), and the overview map."""
from __future__ import annotations

import folium
import folium.plugins
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo_ibm.disclosure import DisclosureRule, protect_counts
from geo_ibm.io import ensure_working_crs
from geo_ibm.maps.base import (
    Translate,
    _escaped_columns,
    _feature_collection,
    _finish,
    _legend_html,
    _to_web,
    add_borders,
    add_crossings,
    add_outline,
    base_map,
    text,
    vendor_url,
)

EVENT_CLASS_COLOURS = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"]
"""Sequential palette (light to dark) of the aggregated event counts."""

EVENT_POPUP_COLUMNS: tuple[str, ...] = (
    "event_id", "observed_at", "location_kind", "entry_country", "destination_country", "transport_mode",
    "persons", "smugglers", "nationalities", "source_unit", "notes",
)
"""Event columns shown in a popup when present (individual events only)."""


def event_coordinates(events: gpd.GeoDataFrame | np.ndarray) -> np.ndarray:
    """``(n, 2)`` EPSG:2169 coordinates of events given as a GeoDataFrame or as such an array.

    Missing and empty geometries (and non-finite coordinates) are left out.
    """
    if isinstance(events, np.ndarray):
        xy = np.asarray(events, dtype=float)
        if xy.ndim != 2 or xy.shape[1] != 2:
            from geo_ibm.errors import ValidationError

            raise ValidationError(f"events as an array must have shape (n, 2) (x, y in EPSG:2169), got {xy.shape}")
    else:
        events = ensure_working_crs(events, name="events")
        pts = events.geometry
        pts = pts[~(pts.isna() | pts.is_empty)]
        xy = shapely.get_coordinates(pts.values)
    return xy[np.isfinite(xy).all(axis=1)]


def aggregate_events(
    events: gpd.GeoDataFrame | np.ndarray, *, max_cells: int = 1500, min_cell_m: float = 500.0
) -> gpd.GeoDataFrame:
    """Count events in square display cells, doubling the cell size until at most ``max_cells`` are used.

    This bounds the size of a map page whatever the number of events. Analysis grids live in
    ``geo_ibm.grid``; these cells only serve drawing.

    Parameters
    ----------
    events
        Point GeoDataFrame, or an ``(n, 2)`` array of EPSG:2169 coordinates (e.g. from
        ``GeoPackageStore.event_points``).

    Returns
    -------
    GeoDataFrame in EPSG:2169 with columns ``count`` (events in the cell), ``cell_m`` (side in
    metres) and ``geometry`` (the square cell).
    """
    if max_cells < 1:
        from geo_ibm.errors import ValidationError

        raise ValidationError(f"max_cells must be at least 1, got {max_cells}")
    xy = event_coordinates(events)
    crs = "EPSG:2169" if isinstance(events, np.ndarray) else ensure_working_crs(events, name="events").crs
    if len(xy) == 0:
        return gpd.GeoDataFrame({"count": [], "cell_m": []}, geometry=[], crs=crs)
    size = float(min_cell_m)
    # Bin once at the finest size; a doubled cell's index is the halved index (floor(v/2) ==
    # floor(floor(v)/2), and x/(2s) == (x/s)/2 exactly in binary floating point), so coarser
    # levels merge the few occupied cells instead of re-binning every event.
    ij = np.floor(xy / size).astype(np.int64)
    low = ij.min(axis=0)
    rows = int(ij[:, 1].max() - low[1]) + 1
    # One integer key per cell sorts like the (i, j) pairs and is much faster to unique.
    keys, counts = np.unique((ij[:, 0] - low[0]) * rows + (ij[:, 1] - low[1]), return_counts=True)
    cells = np.column_stack([keys // rows + low[0], keys % rows + low[1]])
    while len(cells) > max_cells:
        size *= 2
        cells, inverse = np.unique(np.floor_divide(cells, 2), axis=0, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=counts, minlength=len(cells)).astype(np.int64)
    geoms = shapely.box(cells[:, 0] * size, cells[:, 1] * size, (cells[:, 0] + 1) * size, (cells[:, 1] + 1) * size)
    return gpd.GeoDataFrame({"count": counts.astype(int), "cell_m": size}, geometry=geoms, crs=crs)


def count_classes(counts: np.ndarray, *, n: int = 5) -> list[tuple[int, int]]:
    """Display classes (inclusive integer ranges) of cell counts by quantiles, at most ``n``."""
    counts = np.asarray(counts, dtype=float)
    if counts.size == 0:
        return []
    qs = np.unique(np.ceil(np.quantile(counts, np.linspace(0, 1, n + 1)[1:])).astype(int))
    lo = int(counts.min())
    classes = []
    for hi in qs:
        if hi < lo:
            continue
        classes.append((lo, int(hi)))
        lo = int(hi) + 1
    return classes


def add_events(
    fmap: folium.Map,
    events: gpd.GeoDataFrame | np.ndarray,
    *,
    max_markers: int = 1000,
    max_cells: int = 1500,
    heat: bool = True,
    asset_base: str = "/assets",
    details: bool = True,
    disclosure: DisclosureRule | None = None,
    clip: BaseGeometry | None = None,
    t: Translate = str,
) -> list[str]:
    """Events as aggregated cells, plus individual CircleMarkers with popups when few enough.

    With ``disclosure`` (aggregates-only readers, implies ``details=False``) the cells are the
    rule's fixed national cells (never merged, so every such map uses the same cells), cells
    with suppressed counts are left out and the other counts are rounded
    (:mod:`geo_ibm.disclosure`); ``clip`` (a region's or canton's area, EPSG:2169) keeps the
    cells that touch it, each with the count of all its events, as in the national map (rule 2:
    a region clips, it does not filter).

    ``events`` may also be an ``(n, 2)`` array of EPSG:2169 coordinates; those are drawn as
    cells only (an array has no attributes for popups). With ``details=False`` no individual
    event is drawn at all (cells and heat only) and the legend says why: single records are
    for readers entitled to them. Returns the legend HTML blocks.
    """
    blocks: list[str] = []
    if len(events) == 0:
        blocks.append(f'<div class="block">{text(t("No events match the filter."))}</div>')
        return blocks
    if disclosure is not None:
        details = False
        # Luxembourg holds about 10,400 cells of 500 m: bounded without merging.
        cells = aggregate_events(events, max_cells=1_000_000, min_cell_m=float(disclosure.cell_m))
        shown = protect_counts(cells["count"].to_numpy(), disclosure)
        keep = np.isfinite(shown) & (shown > 0)
        if clip is not None and len(cells):
            keep &= shapely.intersects(cells.geometry.to_numpy(), clip)
        cells = cells[keep].assign(count=shown[keep].astype(int))
        if cells.empty:
            blocks.append(f'<div class="block">{text(t("No cell holds enough events to be shown."))} '
                          f'{text(t("Individual events need the analyst role."))}</div>')
            return blocks
    else:
        cells = aggregate_events(events, max_cells=max_cells)
    classes = count_classes(cells["count"].to_numpy())
    web = _to_web(cells, name="event cells")
    colour_of = np.full(len(web), EVENT_CLASS_COLOURS[-1], dtype=object)
    palette = EVENT_CLASS_COLOURS[-len(classes):] if classes else EVENT_CLASS_COLOURS
    for (lo, hi), colour in zip(classes, palette):
        colour_of[(web["count"] >= lo) & (web["count"] <= hi)] = colour
    props = pd.DataFrame({"count": web["count"].astype(int).to_numpy(), "colour": colour_of})
    cell_km = float(cells["cell_m"].iloc[0]) / 1000
    folium.GeoJson(
        _feature_collection(web, props),
        name=t("Events per cell") + f" ({cell_km:g} km)",
        style_function=lambda f: {"color": "#444444", "weight": 0.3, "fillColor": f["properties"]["colour"], "fillOpacity": 0.7},
        tooltip=folium.GeoJsonTooltip(fields=["count"], aliases=[text(t("Events"))]),
    ).add_to(fmap)
    entries = [(colour, "box", f"{lo}" if lo == hi else f"{lo}–{hi}") for (lo, hi), colour in zip(classes, palette)]
    blocks.append(_legend_html(t("Events per cell") + f" ({cell_km:g} km)", entries))

    if heat:
        centroids = _to_web(cells.assign(geometry=cells.geometry.centroid), name="event cells")
        weights = cells["count"].to_numpy() / max(1, int(cells["count"].max()))
        data = [[g.y, g.x, round(float(w), 4)] for g, w in zip(centroids.geometry, weights)]
        layer = folium.plugins.HeatMap(data, name=t("Event density (heat)"), show=False, radius=18, blur=15, min_opacity=0.3)
        layer.default_js = [("leaflet-heat.js", vendor_url("heat_js", asset_base=asset_base))]
        layer.add_to(fmap)

    if disclosure is not None:
        note = t("Counts under %(k)s are hidden and the others rounded to %(r)s.") % {
            "k": disclosure.min_count, "r": disclosure.rounding}
        blocks.append(f'<div class="block">{text(t("Individual events need the analyst role."))} {text(note)}</div>')
    elif not details:
        blocks.append(f'<div class="block">{text(t("Individual events need the analyst role."))}</div>')
    elif len(events) <= max_markers and not isinstance(events, np.ndarray):
        ev = ensure_working_crs(events, name="events")
        ev = ev[~(ev.geometry.isna() | ev.geometry.is_empty)]
        web_ev = _to_web(ev, name="events")
        fields = [c for c in EVENT_POPUP_COLUMNS if c in web_ev.columns]
        props = _escaped_columns(web_ev, fields)
        folium.GeoJson(
            _feature_collection(web_ev, props),
            name=t("Individual events"),
            marker=folium.CircleMarker(radius=4, weight=1, fill=True, fill_opacity=0.8),
            style_function=lambda _f: {"color": "#3b0a45", "fillColor": "#9c27b0", "weight": 1},
            popup=folium.GeoJsonPopup(fields=fields, aliases=[text(t(f.replace("_", " ").capitalize())) for f in fields], localize=False),
        ).add_to(fmap)
        blocks.append(_legend_html(t("Individual events"), [("#9c27b0", "dot", t("one event (click for details)"))]))
    else:
        blocks.append(
            f'<div class="block">{text(t("Individual events are shown when at most"))} {max_markers} '
            f'{text(t("match the filter."))}</div>'
        )
    return blocks


def overview_map(
    events: gpd.GeoDataFrame | np.ndarray,
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    crossings: gpd.GeoDataFrame,
    tiles_url: str | None = None,
    tile_attribution: str | None = None,
    asset_base: str = "/assets",
    max_markers: int = 1000,
    max_cells: int = 1500,
    details: bool = True,
    disclosure: DisclosureRule | None = None,
    clip: BaseGeometry | None = None,
    t: Translate = str,
) -> folium.Map:
    """Overview map: outline, border lines by neighbour, crossing points by kind and the events.

    All inputs are EPSG:2169 GeoDataFrames (converted to EPSG:4326 here). ``borders`` needs
    ``neighbour``, ``name``, ``length_km``; ``crossings`` needs ``name`` and ``kind``. Events are
    drawn as at most ``max_cells`` display cells, and individually (with escaped popups) only
    when at most ``max_markers`` are given, so the page size is bounded. ``events`` may be an
    ``(n, 2)`` array of EPSG:2169 coordinates instead (cells only: the fast path for large
    selections, see ``GeoPackageStore.event_points``). ``details=False`` leaves individual
    events out whatever their number (aggregated cells and heat only). ``disclosure`` and
    ``clip``: as :func:`add_events`. ``t`` translates labels.
    """
    fmap = base_map(tiles_url=tiles_url, tile_attribution=tile_attribution, asset_base=asset_base)
    add_outline(fmap, outline, t=t)
    blocks = add_events(fmap, events, max_markers=max_markers, max_cells=max_cells, asset_base=asset_base,
                        details=details, disclosure=disclosure, clip=clip, t=t)
    border_entries = add_borders(fmap, borders, t=t)
    crossing_entries = add_crossings(fmap, crossings, t=t)
    blocks.insert(0, _legend_html(t("Internal Schengen borders"), border_entries))
    blocks.insert(1, _legend_html(t("Border crossing points"), crossing_entries))
    return _finish(fmap, blocks)


__all__ = ["EVENT_CLASS_COLOURS", "EVENT_POPUP_COLUMNS", "event_coordinates", "aggregate_events", "count_classes", "add_events", "overview_map"]
