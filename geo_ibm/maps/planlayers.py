"""Plan layers of the Folium maps: chosen control sites (ranked), their coverage circles and the demand they cover, and the plan map."""
from __future__ import annotations

import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.maps.base import (
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

SITE_COLOUR = "#6a1b9a"
CIRCLE_COLOUR = "#8e24aa"
COVERED_COLOUR = "#2e7d32"
UNCOVERED_COLOUR = "#9e9e9e"

MAX_DEMAND_POINTS = 5_000
"""Most demand points drawn; above it the heaviest ones are drawn and the legend says how many."""

SITE_FIELDS = ("rank", "name", "kind", "events", "persons", "share_events", "windows")
"""Site columns shown in the tooltip (when present), after the id column."""


def _site_frame(sites: gpd.GeoDataFrame, id_column: str) -> gpd.GeoDataFrame:
    if not isinstance(sites, gpd.GeoDataFrame):
        raise ValidationError(f"sites must be a GeoDataFrame, got {type(sites).__name__}",
                              [Problem("not a GeoDataFrame", column="sites")])
    if id_column not in sites.columns:
        raise ValidationError(f"sites has no id column {id_column!r}", [Problem("missing column", column=id_column)])
    return sites


def add_coverage_circles(fmap: folium.Map, sites: gpd.GeoDataFrame, *, radius: float, t: Translate = str) -> None:
    """A circle of ``radius`` metres around each site, drawn in EPSG:2169 (true metres), not clickable."""
    if not (np.isfinite(radius) and radius > 0):
        raise ValidationError(f"radius must be > 0 metres, got {radius!r}", [Problem("bad radius", column="radius")])
    circles = sites[[sites.geometry.name]].copy()
    circles = circles.set_geometry(sites.geometry.buffer(float(radius), quad_segs=32))
    web = _to_web(circles, name="coverage circles")
    folium.GeoJson(
        _feature_collection(web, pd.DataFrame(index=range(len(web)))),
        name=t("Coverage radius"),
        style_function=lambda _f: {"color": CIRCLE_COLOUR, "weight": 1.2, "fillColor": CIRCLE_COLOUR,
                                   "fillOpacity": 0.08, "dashArray": "5 4"},
        interactive=False,
    ).add_to(fmap)


def add_sites(fmap: folium.Map, sites: gpd.GeoDataFrame, *, id_column: str, t: Translate = str) -> None:
    """The chosen sites as markers sized by rank, with their id, rank and results in a tooltip (all text escaped)."""
    sites = _site_frame(sites, id_column)
    web = _to_web(sites, name="plan sites")
    fields = [id_column] + [c for c in SITE_FIELDS if c in web.columns and c != id_column]
    shown = web[fields].copy()
    if "share_events" in shown:
        shown["share_events"] = [f"{float(v):.1f} %" if pd.notna(v) else "" for v in shown["share_events"]]
    props = _escaped_columns(shown, fields)
    ranks = web["rank"].to_numpy(dtype=float) if "rank" in web else np.arange(1, len(web) + 1, dtype=float)
    props["size"] = np.clip(8.5 - ranks * 0.5, 5.0, 8.0)
    labels = {"rank": t("Rank"), "name": t("Name"), "kind": t("Kind"), "events": t("Events"), "persons": t("Persons"),
              "share_events": t("Cumulative share of events"), "windows": t("Best windows")}
    folium.GeoJson(
        _feature_collection(web, props),
        name=t("Chosen control sites"),
        marker=folium.CircleMarker(radius=7, weight=2, fill=True, fill_opacity=0.95),
        style_function=lambda f: {"color": "#ffffff", "fillColor": SITE_COLOUR, "weight": 2,
                                  "radius": f["properties"]["size"]},
        tooltip=folium.GeoJsonTooltip(fields=fields, aliases=[text(labels.get(f, f)) for f in fields]),
    ).add_to(fmap)


def add_demand(fmap: folium.Map, demand: gpd.GeoDataFrame, *, id_column: str = "site", max_points: int = MAX_DEMAND_POINTS,
               t: Translate = str) -> int:
    """Demand points coloured covered / not covered (``site`` empty), heaviest first; returns how many were left out."""
    if "site" not in demand.columns or "weight" not in demand.columns:
        raise ValidationError("demand needs 'site' and 'weight' columns (a plan's demand table)",
                              [Problem("missing column", column="site")])
    order = np.argsort(-demand["weight"].to_numpy(dtype=float), kind="stable")
    dropped = max(0, len(order) - int(max_points))
    shown = demand.iloc[order[: int(max_points)]].reset_index(drop=True)
    web = _to_web(shown, name="plan demand")
    covered = web["site"].astype(str).to_numpy() != ""
    props = pd.DataFrame({
        "weight": [f"{float(w):.4g}" for w in web["weight"]],
        "covered_by": [text(s) if c else text(t("not covered")) for s, c in zip(web["site"], covered, strict=True)],
        "distance": [f"{float(d):.0f} m" if c and pd.notna(d) else "" for d, c in
                     zip(web["distance_m"] if "distance_m" in web else [np.nan] * len(web), covered, strict=True)],
        "colour": np.where(covered, COVERED_COLOUR, UNCOVERED_COLOUR),
    })
    folium.GeoJson(
        _feature_collection(web, props),
        name=t("Demand (covered and not covered)"),
        marker=folium.CircleMarker(radius=3, weight=0, fill=True, fill_opacity=0.75),
        style_function=lambda f: {"fillColor": f["properties"]["colour"], "color": f["properties"]["colour"],
                                  "weight": 0},
        # Folium refuses tooltip fields on an empty collection (an operation without interceptions).
        tooltip=folium.GeoJsonTooltip(fields=["weight", "covered_by", "distance"],
                                      aliases=[text(t("Weight")), text(t("Covered by")), text(t("Distance"))])
        if len(web) else None,
    ).add_to(fmap)
    return dropped


def plan_map(
    sites: gpd.GeoDataFrame,
    demand: gpd.GeoDataFrame,
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    radius: float,
    id_column: str = "site_id",
    tiles_url: str | None = None,
    tile_attribution: str | None = None,
    asset_base: str = "/assets",
    max_points: int = MAX_DEMAND_POINTS,
    t: Translate = str,
) -> folium.Map:
    """The map of a plan: outline, internal borders, demand, coverage circles and the ranked sites, with a legend.

    Parameters
    ----------
    sites
        :attr:`geo_ibm.planning.plan.Plan.sites` (EPSG:2169): the id column, ``rank`` and the
        result columns shown in the tooltip (:data:`SITE_FIELDS`).
    demand
        :attr:`geo_ibm.planning.plan.Plan.demand`: ``weight``, ``site`` (empty: not covered),
        ``distance_m``.
    radius
        The plan's coverage radius in metres.
    id_column
        The candidates' id column (``candidates.attrs["id_column"]``).
    """
    fmap = base_map(tiles_url=tiles_url, tile_attribution=tile_attribution, asset_base=asset_base)
    add_outline(fmap, outline, t=t)
    border_entries = add_borders(fmap, borders, t=t)
    dropped = add_demand(fmap, demand, max_points=max_points, t=t)
    add_coverage_circles(fmap, sites, radius=radius, t=t)
    add_sites(fmap, sites, id_column=id_column, t=t)
    entries = [(SITE_COLOUR, "dot", t("Chosen control site")),
               (CIRCLE_COLOUR, "line", t("Coverage radius") + f" ({float(radius) / 1000:g} km)"),
               (COVERED_COLOUR, "dot", t("Covered demand")),
               (UNCOVERED_COLOUR, "dot", t("Demand not covered"))]
    blocks = [_legend_html(t("Plan"), entries), _legend_html(t("Internal Schengen borders"), border_entries)]
    if dropped:
        note = t("Lightest demand points not drawn")
        blocks.append(f'<div class="block">{text(note)}: {dropped:,}</div>')
    return _finish(fmap, blocks)
