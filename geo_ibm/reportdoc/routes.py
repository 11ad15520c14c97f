"""The report's "Corridors and flows" section: the route analysis of the quarter on the road network."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm.errors import GeoIbmError
from geo_ibm.reportdoc.figures import CountDisplay, significance_mark
from geo_ibm.reportdoc.model import Block, Image, Paragraph, Table
from geo_ibm.reportdoc.strings import number

TOP_CORRIDORS = 10
TOP_CROSSINGS = 10


def _change(row: Any, counts: CountDisplay) -> str:
    return counts.change(int(row.events), int(row.previous_events),
                         None if not np.isfinite(row.p_value) else float(row.p_value))


def corridor_table(corridors: gpd.GeoDataFrame, *, counts: CountDisplay, t: Callable[[str], str]) -> Table:
    """The corridor ranking as a report table (the first :data:`TOP_CORRIDORS` corridors)."""
    lang = counts.lang
    rows = []
    for row in corridors.head(TOP_CORRIDORS).itertuples():
        per_km = number(row.events_per_km, lang, digits=1) if counts.rule is None else "–"
        rows.append([str(row.rank), row.ref or t("other roads"), number(row.length_km, lang, digits=1),
                     counts.text(row.events), counts.text(row.persons), per_km, _change(row, counts)])
    return Table([t("Rank"), t("Road"), "km", t("Interceptions"), t("Persons"), t("per km"),
                  t("Change from the previous quarter")], rows, caption=t("Corridors by interceptions per km"),
                 numeric=[True, False, True, True, True, True, True])


def crossing_rows(crossings: gpd.GeoDataFrame, *, counts: CountDisplay, t: Callable[[str], str]) -> Table:
    """Entry crossings by attributed interceptions (the first :data:`TOP_CROSSINGS`)."""
    lang = counts.lang
    rows = []
    for row in crossings[crossings["events"] > 0].head(TOP_CROSSINGS).itertuples():
        confidence = number(row.mean_confidence, lang, digits=2) if np.isfinite(row.mean_confidence) else "–"
        rows.append([str(row.name), str(row.neighbour), counts.text(row.events), counts.text(row.persons),
                     confidence])
    return Table([t("Crossing"), t("Country"), t("Interceptions"), t("Persons"), t("Mean confidence")], rows,
                 caption=t("Most likely entry crossings (by distance along the roads)"),
                 numeric=[False, False, True, True, True])


def routes_section(store: Any, *, quarter: str, region: str | None, area: gpd.GeoDataFrame, area_name: str,
                   footer_period: str, counts: CountDisplay, t: Callable[[str], str],
                   ) -> tuple[list[Block], dict[str, pd.DataFrame]]:
    """The route analysis of ``quarter`` (and ``region``) as report blocks and CSV tables.

    Maps of corridor intensity and of the flows for analysts; for aggregates-only readers
    (``counts.rule`` set) the two tables only, with protected counts and no marks, and no map
    (a road segment's colour can stand for a single interception).

    Returns
    -------
    (blocks, tables)
        ``tables``: ``corridors.csv`` and ``entry_crossings.csv``.
    """
    from geo_ibm import layers
    from geo_ibm.figures import figure_bytes
    from geo_ibm.figures.routemap import corridor_print_map, flow_print_map
    from geo_ibm.network.requests import RouteQuery, route_analysis

    try:
        analysis = route_analysis(store, RouteQuery(quarter=quarter, region=region))
    except GeoIbmError as exc:
        return [Paragraph(t("Route analysis not made: %(why)s") % {"why": str(exc).splitlines()[0]}, "note")], {}
    source = analysis.network_source
    network = t("the installed OpenStreetMap road network") if source.get("kind") == "osm" else \
        t("the schematic road corridors shipped with geo_ibm (accurate to about 1 km)")
    blocks: list[Block] = [Paragraph(
        t("%(snapped)s of %(n)s interceptions lie within %(tolerance)s m of %(network)s and are analysed on it; "
          "each is attributed to the nearest crossing of its entry country along the roads, and flows follow the "
          "shortest paths from that crossing and on towards the destination country where it is known.") % {
            "snapped": counts.text(analysis.n_snapped), "n": counts.text(analysis.n_events),
            "tolerance": number(float(analysis.parameters.get("tolerance_m", 250.0)), counts.lang),
            "network": network})]
    if len(analysis.corridors) and analysis.corridors["events"].iloc[0] > 0:
        first = analysis.corridors.iloc[0]
        blocks.append(Paragraph(t("Busiest corridor: %(ref)s, %(per_km)s interceptions per km.") % {
            "ref": first["ref"] or t("other roads"),
            "per_km": number(float(first["events_per_km"]), counts.lang, digits=1)
            if counts.rule is None else "–"}))
    if counts.rule is None and analysis.n_snapped:
        bounds = area.total_bounds
        view = shapely.box(bounds[0] - 15_000, bounds[1] - 15_000, bounds[2] + 15_000, bounds[3] + 15_000)
        neighbours = layers.neighbour_outlines().clip(view)
        common = dict(outline=area, borders=layers.internal_borders(), neighbours=neighbours[~neighbours.is_empty],
                      crossings=analysis.crossings, network_source=source, period=footer_period, dpi=170, t=t)
        title = f"{t('Corridors: interceptions per km of road')} – {area_name}"
        fig = corridor_print_map(analysis.segments, title=title, **common)  # type: ignore[arg-type]
        blocks.append(Image(figure_bytes(fig, format="png"), caption=title))
        if len(analysis.flows):
            title = f"{t('Flows: entry crossing to interception and on to the exit')} – {area_name}"
            fig = flow_print_map(analysis.flows, title=title, **common)  # type: ignore[arg-type]
            blocks.append(Image(figure_bytes(fig, format="png"), caption=title))
    elif counts.rule is not None:
        blocks.append(Paragraph(t("The corridor and flow maps are for analysts only."), "note"))
    blocks.append(corridor_table(analysis.corridors, counts=counts, t=t))
    if counts.rule is None and analysis.n_snapped:
        from geo_ibm.reportdoc.charts import corridor_ranking_png, entry_crossings_png

        caption = t("Corridors by interceptions per km, this quarter and the previous one")
        blocks.append(Image(corridor_ranking_png(analysis.corridors, t=t), caption=caption))
    blocks.append(crossing_rows(analysis.crossings, counts=counts, t=t))
    if counts.rule is None and int(analysis.crossings["events"].sum()):
        blocks.append(Image(entry_crossings_png(analysis.crossings, t=t),
                            caption=t("Interceptions attributed to each entry crossing")))
    if analysis.n_events > analysis.n_snapped:
        blocks.append(Paragraph(t("%(off)s interceptions lie farther than %(tolerance)s m from every road and are not "
                                  "in these figures.") % {
            "off": counts.text(analysis.n_events - analysis.n_snapped),
            "tolerance": number(float(analysis.parameters.get("tolerance_m", 250.0)), counts.lang)}, "note"))
    corridors = pd.DataFrame(analysis.corridors.drop(columns="geometry"))
    crossings = pd.DataFrame(analysis.crossings.drop(columns="geometry"))
    if counts.rule is not None:
        from geo_ibm.disclosure import protect_table

        corridors = protect_table(corridors.drop(columns=["p_value", "significant", "trend", "events_per_km",
                                                          "change_pct"]), counts.rule, columns=("previous_events",))
        crossings = crossings.drop(columns=["mean_confidence", "share"])
    marks = [significance_mark(p) for p in analysis.corridors["p_value"]] if counts.rule is None else None
    if marks is not None:
        corridors["mark"] = marks
    return blocks, {"corridors.csv": corridors, "entry_crossings.csv": crossings}
