"""Hotspot layers of the Folium maps: Gi* bins, kernel density contours, density clusters and
emerging hot spots, each with its legend, and the hotspot map."""
from __future__ import annotations

from collections.abc import Sequence

import folium
import geopandas as gpd
import numpy as np

from geo_ibm.grid import merge_cells
from geo_ibm.maps.base import (
    _FALLBACK_COLOURS,
    Translate,
    _escaped_columns,
    _feature_collection,
    _finish,
    _legend_html,
    _to_web,
    add_borders,
    add_outline,
    base_map,
    text,
)

GI_BIN_COLOURS: dict[int, str] = {
    3: "#b2182b", 2: "#ef8a62", 1: "#fddbc7", -1: "#d1e5f0", -2: "#67a9cf", -3: "#2166ac",
}
GI_BIN_LABELS: dict[int, str] = {
    3: "Hot spot, 99% confidence", 2: "Hot spot, 95% confidence", 1: "Hot spot, 90% confidence",
    -1: "Cold spot, 90% confidence", -2: "Cold spot, 95% confidence", -3: "Cold spot, 99% confidence",
}
EMERGING_COLOURS: dict[str, str] = {
    "new hot spot": "#7f0000",
    "consecutive hot spot": "#b30000",
    "intensifying hot spot": "#d7301f",
    "persistent hot spot": "#ef6548",
    "diminishing hot spot": "#fc8d59",
    "sporadic hot spot": "#fdbb84",
    "oscillating hot spot": "#fdd49e",
    "historical hot spot": "#fee8c8",
    "new cold spot": "#08306b",
    "consecutive cold spot": "#08519c",
    "intensifying cold spot": "#2171b5",
    "persistent cold spot": "#4292c6",
    "diminishing cold spot": "#6baed6",
    "sporadic cold spot": "#9ecae1",
    "oscillating cold spot": "#c6dbef",
    "historical cold spot": "#deebf7",
}


def _polygon_layer(
    fmap: folium.Map,
    gdf: gpd.GeoDataFrame,
    *,
    name: str,
    colours: Sequence[str],
    fields: Sequence[str],
    aliases: Sequence[str],
    show: bool,
    fill_opacity: float = 0.65,
) -> None:
    web = _to_web(gdf, name=name)
    props = _escaped_columns(web, fields)
    props["colour"] = list(colours)
    folium.GeoJson(
        _feature_collection(web, props),
        name=name,
        show=show,
        style_function=lambda f: {"color": f["properties"]["colour"], "weight": 0.6, "fillColor": f["properties"]["colour"], "fillOpacity": fill_opacity},
        tooltip=folium.GeoJsonTooltip(fields=list(fields), aliases=[text(a) for a in aliases]) if fields else None,
    ).add_to(fmap)


def hotspot_map(
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    gi: gpd.GeoDataFrame | None = None,
    contours: gpd.GeoDataFrame | None = None,
    clusters: gpd.GeoDataFrame | None = None,
    emerging: gpd.GeoDataFrame | None = None,
    tiles_url: str | None = None,
    tile_attribution: str | None = None,
    asset_base: str = "/assets",
    notes: Sequence[str] = (),
    max_cells: int = 4000,
    t: Translate = str,
) -> folium.Map:
    """Hotspot map with switchable layers and legends; every layer is optional.

    Parameters
    ----------
    gi
        Gi* grid cells with ``gi_bin`` (-3..3; 0 not significant, not drawn) and optionally ``gi_z``
        and ``count``; when ``gi_bin_fdr`` is present, cells are drawn by that FDR-corrected bin.
    contours
        KDE contour polygons with a ``level`` column (density threshold) when available.
    clusters
        Cluster hulls (``geo_ibm.clusters.density_clusters``): ``cluster_id``, ``n_events``,
        ``persons``, ``first_seen``, ``last_seen`` are shown when present.
    emerging
        Grid cells with an emerging hot spot ``category``; "no pattern detected" is not drawn.
    notes
        Messages shown in the legend (e.g. why a method could not run on this selection).
    max_cells
        Above this many significant Gi* cells (or emerging cells with a pattern), the cells of
        each bin (category) are merged into one polygon so that the page stays small.
    """
    fmap = base_map(tiles_url=tiles_url, tile_attribution=tile_attribution, asset_base=asset_base)
    add_outline(fmap, outline, t=t)
    blocks: list[str] = []
    if gi is not None and len(gi):
        if "gi_bin_fdr" in gi.columns:
            # The FDR-corrected bins are the verdict a map shows (the API's significance too).
            gi = gi.assign(gi_bin=gi["gi_bin_fdr"])
        sig = gi[gi["gi_bin"].astype(int) != 0]
        if len(sig):
            shown = sig.copy()
            if len(shown) > max_cells:
                # Too many cells for a light page: merge the cells of each confidence bin.
                shown = merge_cells(shown[["gi_bin", "geometry"]].assign(gi_bin=shown["gi_bin"].astype(int)), "gi_bin")
            bins = shown["gi_bin"].astype(int).to_numpy()
            fields = [c for c in ("gi_bin", "gi_z", "count") if c in shown.columns]
            if "gi_z" in shown:
                shown["gi_z"] = shown["gi_z"].astype(float).round(2)
            _polygon_layer(
                fmap, shown, name=t("Gi* hot and cold spots"), colours=[GI_BIN_COLOURS[b] for b in bins],
                fields=fields, aliases=[t(f) for f in fields], show=True,
            )
        present = sorted(set(sig["gi_bin"].astype(int)), reverse=True)
        blocks.append(_legend_html(t("Gi* hot and cold spots"), [(GI_BIN_COLOURS[b], "box", t(GI_BIN_LABELS[b])) for b in present] or [("#ffffff", "box", t("No significant cells"))]))
    if contours is not None and len(contours):
        levels = contours["level"].astype(float).to_numpy() if "level" in contours else np.arange(len(contours), dtype=float)
        order = np.argsort(np.argsort(levels))
        ramp = ["#fff5eb", "#fdd0a2", "#fdae6b", "#fd8d3c", "#e6550d", "#a63603"]
        colours = [ramp[min(len(ramp) - 1, int(o * len(ramp) / max(1, len(levels))))] for o in order]
        fields = ["level"] if "level" in contours else []
        _polygon_layer(fmap, contours.sort_values("level") if "level" in contours else contours,
                       name=t("Kernel density contours"), colours=[colours[i] for i in np.argsort(levels)] if fields else colours,
                       fields=fields, aliases=[t("Density level")], show=False, fill_opacity=0.35)
        blocks.append(_legend_html(t("Kernel density contours"), [(ramp[1], "box", t("low")), (ramp[-1], "box", t("high"))]))
    if clusters is not None and len(clusters):
        colours = [_FALLBACK_COLOURS[i % len(_FALLBACK_COLOURS)] for i in range(len(clusters))]
        fields = [c for c in ("cluster_id", "cluster", "n_events", "persons", "first_seen", "last_seen") if c in clusters.columns]
        _polygon_layer(fmap, clusters, name=t("Density clusters"), colours=colours, fields=fields,
                       aliases=[t(f) for f in fields], show=False, fill_opacity=0.3)
        blocks.append(_legend_html(t("Density clusters"), [(_FALLBACK_COLOURS[0], "box", t("cluster hull (one colour per cluster)"))]))
    if emerging is not None and len(emerging):
        cats = emerging["category"].astype(str)
        drawn = emerging[cats.isin(EMERGING_COLOURS.keys())]
        if len(drawn) > max_cells:
            drawn = merge_cells(drawn[["category", "geometry"]].assign(category=drawn["category"].astype(str)), "category")
        if len(drawn):
            _polygon_layer(fmap, drawn, name=t("Emerging hot spots"),
                           colours=[EMERGING_COLOURS[c] for c in drawn["category"].astype(str)],
                           fields=["category"], aliases=[t("Category")], show=False)
        present = [c for c in EMERGING_COLOURS if c in set(drawn["category"].astype(str))]
        blocks.append(_legend_html(t("Emerging hot spots"), [(EMERGING_COLOURS[c], "box", t(c)) for c in present] or [("#ffffff", "box", t("no pattern detected"))]))
    entries = add_borders(fmap, borders, t=t)
    blocks.insert(0, _legend_html(t("Internal Schengen borders"), entries))
    if notes:
        blocks.append('<div class="block">' + "".join(f'<div class="row note">{text(n)}</div>' for n in notes) + "</div>")
    return _finish(fmap, blocks)


__all__ = ["GI_BIN_COLOURS", "GI_BIN_LABELS", "EMERGING_COLOURS", "hotspot_map"]
