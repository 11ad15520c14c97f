"""Report maps: the library's analysis of the events (overview, Gi* hot and cold spots, kernel density) as a print map.

:func:`report_map` runs the analysis of one of :data:`MAP_KINDS` and draws it with
:func:`geo_ibm.figures.printmap.static_map`.
"""
from __future__ import annotations

from typing import Any

import geopandas as gpd
from matplotlib.figure import Figure

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.figures.common import Translate, period_of
from geo_ibm.figures.printmap import static_map

MAP_KINDS: tuple[str, ...] = ("overview", "hotspots", "kde")
"""Kinds of report map :func:`report_map` draws."""


# --------------------------------------------------------------------------- report maps


def report_map(
    events: gpd.GeoDataFrame,
    *,
    kind: str = "overview",
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    crossings: gpd.GeoDataFrame,
    neighbours: gpd.GeoDataFrame | None = None,
    regions: gpd.GeoDataFrame | None = None,
    cell: float | None = None,
    band: float | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    period: str | None = None,
    width_mm: float = 170,
    dpi: int = 200,
    t: Translate = str,
) -> Figure:
    """The report map of one ``kind`` for ``events``: the library's analysis, then :func:`static_map`.

    ``"overview"`` draws the events (dots or hexagon density); ``"hotspots"`` the Gi* cells
    of :func:`geo_ibm.hotspots.hotspots_from_events` (``cell``/``band`` passed on, ``None`` for the
    one default rule of the CLI, the API and the web maps; at least 30 events); ``"kde"`` the bands of :func:`geo_ibm.kde.density_contours`. The default title
    names the kind and the number of events.

    Raises
    ------
    ValidationError
        Unknown ``kind`` (the problem names ``map``), or the analysis refused the selection.
    """
    if kind not in MAP_KINDS:
        raise ValidationError(f"invalid map kind {kind!r}; use one of {', '.join(MAP_KINDS)}",
                              [Problem("unknown map", column="map", value=kind)])
    layers: dict[str, Any] = {}
    if kind == "overview":
        layers["events"] = events
        default_title = t("Interceptions near the internal Schengen borders")
    elif kind == "hotspots":
        from geo_ibm.hotspots import hotspots_from_events

        gi = hotspots_from_events(events, study_area=outline, cell=cell, band=band)
        layers["hotspots"] = gi
        params = gi.attrs.get("parameters", {})
        default_title = t("Hot and cold spots of interceptions (Getis–Ord Gi*)")
        if subtitle is None:
            subtitle = t("Cell %(cell)s m, distance band %(band)s m, false discovery rate corrected") % {
                "cell": f"{float(params.get('cell', 0)):.0f}", "band": f"{float(params.get('band', 0)):.0f}"}
    else:
        from geo_ibm.kde import density_contours, kernel_density

        surface = kernel_density(events, study_area=outline)
        layers["contours"] = density_contours(surface, study_area=outline)
        default_title = t("Kernel density of interceptions")
        if subtitle is None:
            subtitle = t("Quartic kernel, search radius %(radius)s m; bands at the 50/75/90/95/99 %% quantiles") % {
                "radius": f"{float(surface.radius):.0f}"}
    if subtitle is None:
        subtitle = t("%(n)s events") % {"n": f"{len(events):,}".replace(",", " ")}
    return static_map(
        outline=outline, borders=borders, crossings=crossings, neighbours=neighbours, regions=regions,
        title=title if title is not None else default_title, subtitle=subtitle,
        period=period if period is not None else period_of(events), width_mm=width_mm, dpi=dpi, t=t, **layers,
    )
