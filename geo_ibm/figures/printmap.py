"""The print map in EPSG:2169 (matplotlib, Agg): :func:`static_map` and its layers, legend, scale bar and north arrow.

Its bytes come from :func:`geo_ibm.figures.common.figure_bytes`.
"""
# Figures are built on matplotlib.figure.Figure with an Agg canvas, never through pyplot: no
# global figure registry, no GUI backend, nothing kept alive between web requests.
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch, Rectangle
from matplotlib.path import Path as MplPath
from shapely.ops import polylabel

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.figures.common import _STYLE, Translate, _lock, period_of
from geo_ibm.grid import merge_cells
from geo_ibm.io import ensure_working_crs
from geo_ibm.maps import CROSSING_COLOURS, EVENT_CLASS_COLOURS, GI_BIN_COLOURS, GI_BIN_LABELS, NEIGHBOUR_COLOURS
from geo_ibm.maps.base import checked_frame
from geo_ibm.settings import OSM_ATTRIBUTION, WEB_CRS, WORKING_CRS

DENSITY_RAMP: tuple[str, ...] = ("#fff5eb", "#fdd0a2", "#fdae6b", "#fd8d3c", "#e6550d", "#a63603")
"""Low-to-high colours of kernel density bands (the web hotspot map's ramp)."""


MAX_POINTS = 2000
"""Above this many events the density is drawn as hexagons instead of one dot per event."""

_FALLBACK_COLOURS = ("#5d4037", "#1565c0", "#ad1457", "#2e7d32", "#f9a825", "#4e342e", "#00695c")
_PAD_M = 3_000.0
_MAX_DRAWN_CELLS = 2_000


# --------------------------------------------------------------------------- geometry to artists


def _rings_path(geoms: Sequence[Any]) -> MplPath:
    """One compound path of every polygon ring in ``geoms`` (holes drawn by the even-odd rule)."""
    parts = []
    for geom in geoms:
        if geom is None or geom.is_empty:
            continue
        for poly in shapely.get_parts(geom):
            if poly.geom_type != "Polygon":
                continue
            for ring in [poly.exterior, *poly.interiors]:
                xy = np.asarray(ring.coords)[:, :2]
                if len(xy) >= 4:
                    parts.append(MplPath(xy, closed=True))
    if not parts:
        return MplPath(np.zeros((0, 2)))
    return MplPath.make_compound_path(*parts)


def _add_polygons(ax: Any, geoms: Sequence[Any], **style: Any) -> PathPatch:
    patch = PathPatch(_rings_path(geoms), **style)
    ax.add_patch(patch)
    return patch


def _line_segments(geom: Any) -> list[np.ndarray]:
    out = []
    for part in shapely.get_parts(geom):
        if part.geom_type in ("LineString", "LinearRing"):
            out.append(np.asarray(part.coords)[:, :2])
        elif part.geom_type == "Polygon":
            out.extend(np.asarray(r.coords)[:, :2] for r in [part.exterior, *part.interiors])
    return out


def _checked(frame: Any, name: str, needed: Sequence[str] = ()) -> gpd.GeoDataFrame:
    # A layer as every print map takes it: a GeoDataFrame with its columns, in the working CRS.
    return ensure_working_crs(checked_frame(frame, name, needed), name=name)


def _layer(gdf: gpd.GeoDataFrame | None, name: str) -> gpd.GeoDataFrame | None:
    return None if gdf is None else _checked(gdf, name)


def _no_points() -> gpd.GeoDataFrame:
    # The crossings of a thematic map that draws its own points instead.
    return gpd.GeoDataFrame({"kind": []}, geometry=gpd.GeoSeries([], crs=WORKING_CRS), crs=WORKING_CRS)


def _type_scale(width_mm: float) -> float:
    # Type and symbols grow with the printed width: 1 at 170 mm, bounded to 0.6..1.6.
    return min(1.6, max(0.6, float(width_mm) / 170.0))


def _kind_colours(kinds: Sequence[str]) -> dict[str, str]:
    # The same assignment as the web map: known kinds keep their colour, others take spares in order.
    colours: dict[str, str] = {}
    spare = iter(list(_FALLBACK_COLOURS) * 4)
    for kind in sorted(set(kinds)):
        colours[kind] = CROSSING_COLOURS.get(kind) or next(spare)
    return colours


# --------------------------------------------------------------------------- map furniture


def _nice_length(span_m: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10^k metres) of about a quarter of ``span_m``."""
    target = span_m / 4.0
    exp = 10 ** math.floor(math.log10(target))
    for step in (5, 2, 1):
        if step * exp <= target:
            return float(step * exp)
    return float(exp)


def _scale_bar(ax: Any, extent: tuple[float, float, float, float], *, fontsize: float) -> None:
    minx, miny, maxx, maxy = extent
    length = _nice_length(maxx - minx)
    x0 = minx + 0.04 * (maxx - minx)
    y0 = miny + 0.035 * (maxy - miny)
    height = 0.008 * (maxy - miny)
    n = 4
    for i in range(n):
        ax.add_patch(Rectangle((x0 + i * length / n, y0), length / n, height, facecolor="#222222" if i % 2 == 0 else "white",
                               edgecolor="#222222", linewidth=0.6, zorder=8))
    for value in (0.0, length / 2, length):
        ax.text(x0 + value, y0 + height * 1.6, f"{value / 1000:g}", ha="center", va="bottom", fontsize=fontsize, zorder=8)
    ax.text(x0 + length + 0.012 * (maxx - minx), y0 + height / 2, "km", ha="left", va="center", fontsize=fontsize, zorder=8)


def _north_angle(x: float, y: float) -> float:
    """Angle (radians, clockwise from grid north) of true north at ``(x, y)`` in EPSG:2169."""
    from geo_ibm.crs import transformer

    to_geo = transformer(WORKING_CRS, WEB_CRS)
    to_grid = transformer(WEB_CRS, WORKING_CRS)
    lon, lat = to_geo.transform(x, y)
    nx, ny = to_grid.transform(lon, lat + 0.05)
    return math.atan2(nx - x, ny - y)


def _north_arrow(ax: Any, extent: tuple[float, float, float, float], *, fontsize: float) -> None:
    minx, miny, maxx, maxy = extent
    size = 0.07 * (maxy - miny)
    x0 = maxx - 0.08 * (maxx - minx)
    y0 = maxy - 0.05 * (maxy - miny) - size
    angle = _north_angle(x0, y0 + size / 2)
    dx, dy = math.sin(angle), math.cos(angle)
    tip = (x0 + dx * size, y0 + dy * size)
    half = size * 0.22
    left = (x0 - dy * half, y0 + dx * half)
    right = (x0 + dy * half, y0 - dx * half)
    base = (x0 + dx * size * 0.25, y0 + dy * size * 0.25)
    ax.add_patch(PathPatch(MplPath([left, tip, base, left], closed=True), facecolor="#222222", edgecolor="#222222",
                           linewidth=0.6, zorder=8))
    ax.add_patch(PathPatch(MplPath([right, tip, base, right], closed=True), facecolor="white", edgecolor="#222222",
                           linewidth=0.6, zorder=8))
    ax.text(tip[0] + dx * size * 0.08, tip[1] + dy * size * 0.08, "N", ha="center", va="bottom",
            fontsize=fontsize * 1.3, fontweight="bold", zorder=8)



def _header(label: str) -> tuple[Any, str]:
    return Patch(visible=False), label


# --------------------------------------------------------------------------- static map


def static_map(
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    crossings: gpd.GeoDataFrame,
    events: gpd.GeoDataFrame | None = None,
    hotspots: gpd.GeoDataFrame | None = None,
    contours: gpd.GeoDataFrame | None = None,
    neighbours: gpd.GeoDataFrame | None = None,
    regions: gpd.GeoDataFrame | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    period: str | None = None,
    attribution: str = OSM_ATTRIBUTION,
    width_mm: float = 170,
    dpi: int = 200,
    max_points: int = MAX_POINTS,
    t: Translate = str,
    place_labels: bool = True,
) -> Figure:
    """A print map of Luxembourg's internal borders in EPSG:2169 with a legend, scale bar and north arrow.

    Parameters
    ----------
    outline
        Luxembourg's outline (:func:`geo_ibm.layers.luxembourg_outline`); sets the map extent.
    borders
        Internal border lines with ``neighbour`` (and ``name``, ``length_km`` for the legend),
        drawn in the web map's colours (:data:`geo_ibm.maps.NEIGHBOUR_COLOURS`).
    crossings
        Crossing points with ``kind``, coloured as in the web map.
    events
        Point events. Up to ``max_points`` are drawn as dots; more as a hexagon density
        (about 1 km hexagons, counts in at most five quantile classes), so a million events
        cost no more to draw than a thousand.
    hotspots
        Gi* grid cells (:func:`geo_ibm.hotspots.hotspots_from_events`); coloured by
        ``gi_bin_fdr`` (else ``gi_bin``), −3..+3, with the 99/95/90 % red/blue palette;
        bin 0 is not drawn.
    contours
        Kernel density bands (:func:`geo_ibm.kde.density_contours`: ``level``, ``upper``).
    neighbours
        Neighbouring countries (``country``, ``name``), drawn as grey context and labelled.
    regions
        Police regions (``region``), drawn as thin boundaries.
    title, subtitle
        Heading lines above the map.
    period
        Data period shown in the footer; default: the first and last event date.
    attribution
        Footer credit of the map data.
    width_mm, dpi
        Printed width (the height follows from the extent) and raster resolution.
    max_points
        Largest event count drawn as dots.
    t
        Translates the legend and footer labels (English source strings).
    place_labels
        Write commune names on the map (:func:`geo_ibm.figures.labels.draw_place_labels`), so a
        reader can find places without a basemap.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot; save it with :func:`figure_bytes`.
    """
    if not (isinstance(width_mm, (int, float)) and 60 <= float(width_mm) <= 600):
        raise ValidationError(f"width_mm must be between 60 and 600, got {width_mm!r}",
                              [Problem("out of range", column="width_mm", value=width_mm)])
    if not (isinstance(dpi, (int, np.integer)) and 50 <= int(dpi) <= 1200):
        raise ValidationError(f"dpi must be an integer between 50 and 1200, got {dpi!r}",
                              [Problem("out of range", column="dpi", value=dpi)])
    outline = _layer(outline, "outline")
    # The drawing renders text once at full resolution to fit the legend: bound the raster first.
    from geo_ibm.analysis.budget import check_pixels

    _ext, _scale, width_in, height_in, *_rest = _layout(outline, width_mm=float(width_mm), title=title, subtitle=subtitle)
    check_pixels(width_in * int(dpi), height_in * int(dpi))
    borders = _layer(borders, "borders")
    crossings = _layer(crossings, "crossings")
    events = _layer(events, "events")
    hotspots = _layer(hotspots, "hotspots")
    contours = _layer(contours, "contours")
    neighbours = _layer(neighbours, "neighbours")
    regions = _layer(regions, "regions")
    with _lock, rc_context(_STYLE):  # type: ignore[arg-type]
        return _draw(
            outline=outline, borders=borders, crossings=crossings, events=events, hotspots=hotspots,
            contours=contours, neighbours=neighbours, regions=regions, title=title, subtitle=subtitle,
            period=period if period is not None else period_of(events), attribution=attribution,
            width_mm=float(width_mm), dpi=int(dpi), max_points=int(max_points), t=t, place_labels=bool(place_labels),
        )



@contextmanager
def _thematic(**reference: Any) -> Iterator[tuple[Figure, Any, float]]:
    """The reference map of ``static_map(**reference)``, held under the figures' lock and style while a thematic
    map draws on it: yields the figure, its map axes and the type scale."""
    with _lock, rc_context(_STYLE):  # type: ignore[arg-type]
        fig = static_map(**reference)
        yield fig, fig.axes[0], _type_scale(reference.get("width_mm", 170))


def _side_legend(fig: Figure, handles: Sequence[Any], labels: Sequence[str], *, title: str, fontsize: float,
                 **options: Any) -> Any:
    """A thematic map's legend under the reference legend, in the side column (nothing on the map is hidden by it);
    ``options`` go to :meth:`matplotlib.axes.Axes.legend`."""
    side = fig.axes[1] if len(fig.axes) > 1 else fig.axes[0]
    first = side.get_legend()
    legend = side.legend(list(handles), list(labels), loc="lower left", frameon=False, fontsize=fontsize,
                         borderaxespad=0.0, title=title, title_fontproperties={"weight": "bold", "size": fontsize},
                         **options)
    legend._legend_box.align = "left"  # type: ignore[attr-defined]  # title flush with the entries
    if first is not None and first is not legend:
        side.add_artist(first)
    return legend


_MAP_FRAC = 0.56


def _layout(outline: gpd.GeoDataFrame, *, width_mm: float, title: str | None, subtitle: str | None) -> tuple[Any, ...]:
    """Extent, type scale and sizes in inches of a print map: the page follows the outline's shape."""
    minx, miny, maxx, maxy = (float(v) for v in outline.total_bounds)
    extent = (minx - _PAD_M, miny - _PAD_M, maxx + _PAD_M, maxy + _PAD_M)
    ex_w, ex_h = extent[2] - extent[0], extent[3] - extent[1]
    scale = _type_scale(width_mm)
    width_in = width_mm / 25.4
    map_w_in = width_in * (_MAP_FRAC - 0.03)
    map_h_in = map_w_in * ex_h / ex_w
    top_in = (0.30 if title else 0.08) * scale + (0.20 * scale if subtitle else 0.0) + 0.08
    bottom_in = 0.42 * scale
    height_in = top_in + map_h_in + bottom_in
    return extent, scale, width_in, height_in, map_w_in, map_h_in, top_in, bottom_in


def _draw(
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    crossings: gpd.GeoDataFrame,
    events: gpd.GeoDataFrame | None,
    hotspots: gpd.GeoDataFrame | None,
    contours: gpd.GeoDataFrame | None,
    neighbours: gpd.GeoDataFrame | None,
    regions: gpd.GeoDataFrame | None,
    title: str | None,
    subtitle: str | None,
    period: str | None,
    attribution: str,
    width_mm: float,
    dpi: int,
    max_points: int,
    t: Translate,
    place_labels: bool = True,
) -> Figure:
    extent, scale, width_in, height_in, map_w_in, map_h_in, top_in, bottom_in = _layout(
        outline, width_mm=width_mm, title=title, subtitle=subtitle)
    fs = 7.0 * scale
    map_frac = _MAP_FRAC
    ex_w, ex_h = extent[2] - extent[0], extent[3] - extent[1]

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, bottom_in / height_in, map_w_in / width_in, map_h_in / height_in))
    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#eef3f7")
    for spine in ax.spines.values():
        spine.set_linewidth(0.6)
        spine.set_edgecolor("#555555")

    handles: list[Any] = []
    labels: list[str] = []
    headings: set[int] = set()

    def section(label: str) -> None:
        if handles:
            handles.append(Patch(visible=False))
            labels.append("")
        handle, text = _header(label)
        headings.add(len(handles))
        handles.append(handle)
        labels.append(text)

    box = shapely.box(*extent)
    if neighbours is not None and len(neighbours):
        _add_polygons(ax, list(neighbours.geometry), facecolor="#e8e6e1", edgecolor="#b9b5ad", linewidth=0.5, zorder=0)
        name_col = "name" if "name" in neighbours.columns else None
        for geom, name in zip(neighbours.geometry, neighbours[name_col] if name_col else [None] * len(neighbours)):
            visible = shapely.intersection(geom, box)
            if name is None or visible.is_empty or visible.area < 0.04 * box.area:
                continue
            # Label the visible part, well away from Luxembourg's outline.
            away = shapely.difference(visible, outline.geometry.union_all().buffer(4_000))
            # Keep labels off the scale bar (lower left) and the north arrow (upper right).
            furniture = shapely.union_all([
                shapely.box(extent[0], extent[1], extent[0] + 0.45 * (extent[2] - extent[0]), extent[1] + 0.12 * (extent[3] - extent[1])),
                shapely.box(extent[0] + 0.8 * (extent[2] - extent[0]), extent[1] + 0.8 * (extent[3] - extent[1]), extent[2], extent[3]),
            ])
            free = shapely.difference(away, furniture)
            spot = free if not free.is_empty else (away if not away.is_empty else visible)
            parts = sorted(shapely.get_parts(spot), key=lambda g: g.area)
            p = polylabel(parts[-1], tolerance=200.0) if parts[-1].geom_type == "Polygon" else parts[-1].point_on_surface()
            ax.text(p.x, p.y, t(str(name)).upper(), ha="center", va="center", fontsize=fs * 1.05, color="#8d877c",
                    fontstyle="italic", zorder=0.5)
    _add_polygons(ax, list(outline.geometry), facecolor="white", edgecolor="none", zorder=1)

    if contours is not None and len(contours):
        levels = contours["level"].astype(float).to_numpy() if "level" in contours else np.arange(len(contours), dtype=float)
        order = np.argsort(levels)
        ramp = DENSITY_RAMP[1:]
        section(t("Kernel density (events per km²)"))
        for rank, i in enumerate(order):
            colour = ramp[min(len(ramp) - 1, int(rank * len(ramp) / max(1, len(order))))]
            row = contours.iloc[int(i)]
            _add_polygons(ax, [row.geometry], facecolor=colour, edgecolor="none", alpha=0.85, zorder=2)
            if "upper" in contours:
                label = f"{float(row['level']):.3g} – {float(row['upper']):.3g}"
            else:
                label = f"≥ {float(levels[i]):.3g}"
            handles.append(Patch(facecolor=colour, edgecolor="none", alpha=0.85))
            labels.append(label)

    if hotspots is not None and len(hotspots):
        column = "gi_bin_fdr" if "gi_bin_fdr" in hotspots.columns else "gi_bin"
        if column not in hotspots.columns:
            raise ValidationError("hotspots has no 'gi_bin_fdr' or 'gi_bin' column",
                                  [Problem("missing column", column="gi_bin_fdr")])
        bins = hotspots[column].astype(int).to_numpy()
        geoms = np.asarray(hotspots.geometry.values)
        section(t("Gi* hot and cold spots") + (" (FDR)" if column == "gi_bin_fdr" else ""))
        present = [b for b in (3, 2, 1, -1, -2, -3) if (bins == b).any()]
        for b in present:
            cells = geoms[bins == b]
            if len(cells) > _MAX_DRAWN_CELLS:
                # Adjacent cells of one bin merged: the same picture with far fewer vector paths.
                merged = merge_cells(gpd.GeoDataFrame({"bin": bins[bins == b]}, geometry=cells), "bin")
                cells = shapely.get_parts(np.asarray(merged.geometry.values))
            _add_polygons(ax, list(cells), facecolor=GI_BIN_COLOURS[b], edgecolor="none", zorder=2)
            handles.append(Patch(facecolor=GI_BIN_COLOURS[b], edgecolor="#777777", linewidth=0.3))
            labels.append(t(GI_BIN_LABELS[b]))
        if not present:
            handles.append(Patch(facecolor="white", edgecolor="#777777", linewidth=0.3))
            labels.append(t("No significant cells"))

    n_events = 0 if events is None else int(len(events))
    if events is not None and n_events:
        pts = events.geometry
        pts = pts[~(pts.isna() | pts.is_empty)]
        xy = shapely.get_coordinates(pts.to_numpy())[:, :2]
        if len(xy) <= max_points:
            ax.scatter(xy[:, 0], xy[:, 1], s=3.0 * scale, c="#bd0026", alpha=0.65, linewidths=0, zorder=4.5,
                       rasterized=False)
            section(t("Interceptions"))
            handles.append(Line2D([], [], linestyle="none", marker="o", markersize=2.5 * scale, markerfacecolor="#bd0026",
                                  markeredgewidth=0, alpha=0.8))
            labels.append(t("one event") + f" (n = {len(xy):,})".replace(",", " "))
        else:
            hex_m = max(500.0, round(ex_w / 60.0 / 100.0) * 100.0)
            gridsize = (max(1, int(round(ex_w / hex_m))), max(1, int(round(ex_h / (hex_m * math.sqrt(3))))))
            hb = ax.hexbin(xy[:, 0], xy[:, 1], gridsize=gridsize, extent=(extent[0], extent[2], extent[1], extent[3]), mincnt=1, linewidths=0.0,
                           edgecolors="face", zorder=2.5)
            counts = np.asarray(hb.get_array(), dtype=float)
            from geo_ibm.maps import count_classes

            classes = count_classes(counts, n=len(EVENT_CLASS_COLOURS))
            colours = list(EVENT_CLASS_COLOURS[len(EVENT_CLASS_COLOURS) - len(classes):]) if len(classes) < 3 else \
                list(EVENT_CLASS_COLOURS[: len(classes)])
            edges = [classes[0][0] - 0.5] + [hi + 0.5 for _lo, hi in classes]
            hb.set_cmap(ListedColormap(colours))
            hb.set_norm(BoundaryNorm(edges, len(colours)))
            section(t("Interceptions per hexagon") + f" ({hex_m / 1000:g} km)")
            for (lo, hi), colour in zip(classes, colours):
                handles.append(Patch(facecolor=colour, edgecolor="#999999", linewidth=0.3))
                labels.append(f"{lo}" if lo == hi else f"{lo} – {hi}")
            handles.append(Patch(visible=False))
            labels.append(t("%(n)s events in all") % {"n": f"{len(xy):,}".replace(",", " ")})

    if regions is not None and len(regions):
        segments = [s for g in regions.geometry for s in _line_segments(g)]
        ax.add_collection(LineCollection(segments, colors="#9a9a9a", linewidths=0.5, linestyles=(0, (3, 2)), zorder=3))
    _add_polygons(ax, list(outline.geometry), facecolor="none", edgecolor="#444444", linewidth=0.7, zorder=3.5)

    section(t("Internal Schengen borders"))
    for row in borders.itertuples(index=False):
        code = str(row.neighbour)
        colour = NEIGHBOUR_COLOURS.get(code, "#000000")
        ax.add_collection(LineCollection(_line_segments(row.geometry), colors=colour, linewidths=2.0 * scale,
                                         capstyle="round", joinstyle="round", zorder=4))
        name = str(getattr(row, "name", code))
        length = getattr(row, "length_km", None)
        handles.append(Line2D([], [], color=colour, linewidth=2.0 * scale))
        labels.append(f"{name} ({float(length):.0f} km)" if length is not None and pd.notna(length) else name)
    if regions is not None and len(regions):
        handles.append(Line2D([], [], color="#9a9a9a", linewidth=0.8, linestyle=(0, (3, 2))))
        labels.append(t("Police region boundaries"))

    if crossings is not None and len(crossings):
        kinds = crossings["kind"].astype(str).to_numpy() if "kind" in crossings.columns else np.full(len(crossings), "crossing")
        colours_by_kind = _kind_colours(list(kinds))
        cxy = shapely.get_coordinates(crossings.geometry.to_numpy())[:, :2]
        section(t("Border crossing points"))
        for kind, colour in colours_by_kind.items():
            sel = kinds == kind
            marker = "^" if kind == "airport" else "o"
            ax.scatter(cxy[sel, 0], cxy[sel, 1], s=14 * scale * scale, marker=marker, c=colour, edgecolors="#222222",
                       linewidths=0.5, zorder=5)
            handles.append(Line2D([], [], linestyle="none", marker=marker, markersize=4 * scale, markerfacecolor=colour,
                                  markeredgecolor="#222222", markeredgewidth=0.5))
            label = t(kind)
            labels.append(f"{kind.replace('_', ' ') if label == kind else label} ({int(sel.sum())})")

    _scale_bar(ax, extent, fontsize=fs * 0.9)
    _north_arrow(ax, extent, fontsize=fs)
    if place_labels:
        from matplotlib.transforms import Bbox

        from geo_ibm.figures.labels import draw_place_labels

        # Names keep clear of the scale bar (lower left) and the north arrow (upper right).
        furniture = [Bbox.from_extents(extent[0], extent[1], extent[0] + 0.42 * ex_w, extent[1] + 0.1 * ex_h),
                     Bbox.from_extents(extent[2] - 0.14 * ex_w, extent[3] - 0.16 * ex_h, extent[2], extent[3])]
        draw_place_labels(ax, fontsize=fs * 0.78, avoid=[ax.transData.transform_bbox(b) for b in furniture])

    legend_ax = fig.add_axes((map_frac + 0.01, bottom_in / height_in, 1 - map_frac - 0.02, map_h_in / height_in))
    legend_ax.set_axis_off()
    legend = legend_ax.legend(handles, labels, loc="upper left", frameon=False, fontsize=fs, handlelength=1.6,
                              handleheight=1.0, borderaxespad=0.0, labelspacing=0.45, alignment="left")
    rows = [row for column in legend._legend_handle_box.get_children()  # type: ignore[attr-defined]
            for row in column.get_children()]
    for index, (row, text) in enumerate(zip(rows, legend.get_texts())):
        if index in headings or not handles[index].get_visible():
            if index in headings:
                text.set_fontweight("bold")
            # Section headings start where the symbols do (private layout: harmless if it changes).
            boxes = row.get_children()
            if len(boxes) == 2 and hasattr(boxes[0], "width"):
                boxes[0].width = 0
                row.sep = 0

    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # the Agg canvas
    fig_w = fig.bbox.width

    def fit(text: Any, right: float) -> None:
        # Long titles or translations shrink (to 60 % at most) rather than run off the page.
        size = text.get_fontsize()
        for _step in range(8):
            box = text.get_window_extent(renderer)
            if box.x1 <= right * fig_w or text.get_fontsize() <= 0.6 * size:
                return
            text.set_fontsize(text.get_fontsize() * max(0.6, min(0.95, right * fig_w / box.x1)))

    legend_box = legend.get_window_extent(renderer)
    if legend_box.x1 > 0.99 * fig_w:
        factor = max(0.6, (0.99 * fig_w - legend_box.x0) / legend_box.width)
        for text in legend.get_texts():
            text.set_fontsize(text.get_fontsize() * factor)

    y = 1 - 0.08 / height_in
    if title:
        fit(fig.text(0.02, y, title, ha="left", va="top", fontsize=fs * 1.6, fontweight="bold"), 0.98)
        y -= 0.30 * scale / height_in
    if subtitle:
        fit(fig.text(0.02, y, subtitle, ha="left", va="top", fontsize=fs * 1.15, color="#333333"), 0.98)
    footer_y = 0.16 * scale / height_in
    left = [f"{t('Data period')}: {period}" if period else t("No events in the selection")]
    left.append(f"{t('Projection')}: LUREF / Luxembourg TM ({WORKING_CRS})")
    footer = fig.text(0.02, footer_y, "   ·   ".join(left), ha="left", va="center", fontsize=fs * 0.85, color="#333333")
    credit = fig.text(0.98, footer_y, attribution, ha="right", va="center", fontsize=fs * 0.85, color="#333333")
    if footer.get_window_extent(renderer).x1 + 0.02 * fig_w > credit.get_window_extent(renderer).x0:
        # Too narrow for one footer line: the credit goes below the period.
        footer.set_y(0.25 * scale / height_in)
        credit.set_position((0.02, 0.09 * scale / height_in))
        credit.set_horizontalalignment("left")
        fit(footer, 0.98)
    return fig
