"""The hotspot methods by name: one call runs any of them on selected events, and says which cells count."""
from __future__ import annotations

from typing import Any, Literal

import geopandas as gpd
import numpy as np

from geo_ibm.analysis.budget import MAX_CUBE_CELLS, MAX_LISA_DRAWS, check_budget, check_pairs
from geo_ibm.errors import NotFoundError, Problem, ValidationError

Method = Literal["gi", "lisa", "kde", "clusters", "emerging"]
METHODS: tuple[str, ...] = ("gi", "lisa", "kde", "clusters", "emerging")
"""Every hotspot method, as the CLI, the API and the OGC service name them."""

GRID_METHODS: tuple[str, ...] = ("gi", "lisa", "emerging")
"""Methods whose result is one row per grid cell (the others give contour bands or hulls)."""

CELL_CHOICES: tuple[str, ...] = ("significant", "nonzero", "all")
"""Which grid cells a result keeps: see :func:`select_cells`."""


def study_area(region: str | None = None, canton: str | None = None) -> gpd.GeoDataFrame:
    """Luxembourg's outline, or one police region's (or canton's) polygon when given.

    Raises
    ------
    NotFoundError
        If ``region`` (``canton``) is not a police region (canton); the message lists them.
    """
    from geo_ibm.layers import cantons, luxembourg_outline, police_regions

    if region is None and canton is None:
        return luxembourg_outline()
    value: str | None
    if canton is not None:
        units, column, value, what = cantons(), "canton", canton, "canton"
    else:
        units, column, value, what = police_regions(), "region", region, "police region"
    hit = units[units[column].str.casefold() == str(value).strip().casefold()]
    if hit.empty:
        known = ", ".join(sorted(units[column]))
        raise NotFoundError(f"{column}: unknown {what} {value!r}; known: {known}")
    return hit


def run_method(
    events: gpd.GeoDataFrame,
    *,
    method: str,
    cell: float | None = None,
    band: float | None = None,
    region: str | None = None,
    seed: int = 0,
    step: Literal["quarter", "month"] = "quarter",
    fdr: bool | None = None,
    canton: str | None = None,
) -> gpd.GeoDataFrame:
    """Run one hotspot method on already selected events and return its GeoDataFrame.

    Parameters
    ----------
    events
        Events in EPSG:2169 (already filtered by date and region by the caller).
    method
        ``"gi"`` (Getis–Ord Gi* grid with FDR bins, :func:`geo_ibm.hotspots.hotspots_from_events`),
        ``"lisa"`` (Local Moran's I classes, :func:`geo_ibm.lisa.lisa_from_events`), ``"kde"``
        (quartic kernel density contour bands, :func:`geo_ibm.kde.density_contours`),
        ``"clusters"`` (HDBSCAN, or DBSCAN with ``eps=band`` when ``band`` is given,
        :func:`geo_ibm.clusters.density_clusters`) or ``"emerging"`` (emerging hot spot
        categories, :func:`geo_ibm.emerging.emerging_hotspots`).
    cell
        Cell size in metres (grid methods and KDE); ``None`` chooses it from the data.
    band
        Distance band in metres (Gi*, LISA, emerging), KDE search radius, or DBSCAN ``eps``;
        ``None`` chooses it from the data.
    region, canton
        Police region (or canton) whose polygon is the study area (default: all of Luxembourg).
    seed
        Seed of LISA's permutation inference.
    step
        Time step of the emerging hot spot cube.
    fdr
        Benjamini–Hochberg false discovery rate correction of the significance classes.
        ``None`` takes each method's usual default, as ArcGIS Pro does: on for Gi* and emerging
        hot spots, off for LISA, whose permutation p-values (at best 1/1000) rarely survive
        FDR over thousands of cells.

    Returns
    -------
    geopandas.GeoDataFrame
        The method's own result (columns documented by each function), in EPSG:2169, with
        ``.attrs["parameters"]`` holding every parameter used, automatic ones included.
    """
    if method not in METHODS:
        raise ValidationError(f"method: unknown method {method!r}; use one of {', '.join(METHODS)}")
    area = study_area(region, canton)
    geom = area.geometry.union_all()
    check_budget(method, area=geom, cell=cell, band=band)
    # Automatic sizes are chosen here, once, so that the cost limits apply to them too
    # (a given band over an automatic cell, say) before the method does any work.
    cell, cell_method = _automatic_cell(method, events, geom, cell)
    check_budget(method, area=geom, cell=cell, band=band)
    params: dict[str, Any]
    if method == "gi":
        from geo_ibm.hotspots import hotspots_from_events

        result = hotspots_from_events(events, study_area=area, cell=cell, band=band, fdr=True if fdr is None else fdr)
        params = dict(result.attrs.get("parameters", {}))
    elif method == "lisa":
        from geo_ibm.lisa import lisa_from_events

        result = lisa_from_events(events, study_area=area, cell=cell, band=band, seed=seed,
                                  fdr=False if fdr is None else fdr, max_draws=MAX_LISA_DRAWS)
        params = dict(result.attrs.get("parameters", {}))
    elif method == "kde":
        from geo_ibm.kde import density_contours, kernel_density

        surface = kernel_density(events, study_area=area, cell=cell, radius=band)
        result = density_contours(surface, study_area=area)
        params = {"cell": surface.cell, "radius": surface.radius, "kernel": "quartic",
                  "units": "events per km²", "n_events": int(len(events))}
    elif method == "clusters":
        from geo_ibm.clusters import density_clusters

        if band is None:
            result = density_clusters(events, method="hdbscan")
        else:
            check_pairs(_xy(events), band)
            result = density_clusters(events, method="dbscan", eps=band)
        params = dict(result.attrs.get("parameters", {}))
        result = result.copy()
        result.attrs = {}
        # GeoJSON and GeoPackage writers want text, not tz-aware timestamps, in attribute columns.
        for column in ("first_seen", "last_seen"):
            if column in result:
                result[column] = result[column].map(lambda t: t.isoformat() if hasattr(t, "isoformat") else t)
    else:
        from geo_ibm.emerging import emerging_hotspots

        result = emerging_hotspots(events, study_area=area, cell=cell, band=band, step=step,
                                   fdr=True if fdr is None else fdr, max_cube_cells=MAX_CUBE_CELLS)
        params = dict(result.attrs.get("parameters", {}))
    if cell_method is not None:
        params["cell_method"] = cell_method
    if params.get("method") not in (None, method):
        params["algorithm"] = params["method"]  # e.g. clusters: hdbscan or dbscan
    params["method"] = method
    params["region"] = region
    out = gpd.GeoDataFrame(result, geometry="geometry", crs=result.crs).copy()
    out.attrs = {"parameters": _jsonable(params)}
    return out


def significant(result: gpd.GeoDataFrame, method: str) -> np.ndarray:
    """Which rows of a grid method's result are significant, by that method's own verdict.

    Gi*: a non-zero FDR-corrected bin (``gi_bin_fdr``, else ``gi_bin``); LISA: any class but
    "not significant"; emerging hot spots: any category but "no pattern detected". Results
    that are not grids (KDE bands, cluster hulls) are significant throughout.
    """
    if result.empty:
        return np.zeros(0, dtype=bool)
    if method == "gi":
        column = "gi_bin_fdr" if "gi_bin_fdr" in result.columns else "gi_bin"
        return (result[column].to_numpy() != 0)
    if method == "lisa":
        return (result["lisa_class"].to_numpy() != "not significant")
    if method == "emerging":
        return (result["category"].to_numpy() != "no pattern detected")
    return np.ones(len(result), dtype=bool)


def select_cells(result: gpd.GeoDataFrame, *, method: str, cells: str = "significant") -> gpd.GeoDataFrame:
    """The grid cells a map needs: ``significant`` ones, ``nonzero`` counts, or ``all``.

    Automatic cell sizes can give hundreds of thousands of cells over Luxembourg; the cells
    that are neither significant nor hold events draw nothing on a map. ``nonzero`` keeps the
    cells holding events (and the significant ones where a method has no counts). Results that
    are not grids (KDE bands, clusters) are returned whole.

    Raises
    ------
    ValidationError
        If ``cells`` is not one of :data:`CELL_CHOICES`.
    """
    if cells not in CELL_CHOICES:
        raise ValidationError(f"cells must be one of {', '.join(CELL_CHOICES)}, got {cells!r}",
                              [Problem("unknown choice", column="cells", value=cells)])
    if cells == "all" or method not in GRID_METHODS or result.empty:
        return result
    if cells == "nonzero" and "count" in result.columns:
        keep = result["count"].to_numpy() > 0
    else:
        keep = significant(result, method)
    return result[keep]


LISA_MAX_AUTO_CELLS = 20_000
"""Largest grid an automatic LISA cell size may give: each cell costs ``permutations`` draws of
its neighbourhood, so the automatic Gi* cell (up to 250,000 cells) would take minutes."""


def _xy(events: gpd.GeoDataFrame) -> np.ndarray:
    from geo_ibm.eventframe import event_xy

    return event_xy(events)


def _automatic_cell(method: str, events: gpd.GeoDataFrame, area: Any, cell: float | None) -> tuple[float | None, str | None]:
    """The cell ``method`` will use and, when it was automatic, how it was chosen.

    Gi*, LISA and emerging hot spots take :func:`geo_ibm.hotspots.default_cell_size` (LISA's
    raised, if needed, to keep its grid within :data:`LISA_MAX_AUTO_CELLS`); kernel density
    its own default (a 250th of the extent). Selections the methods refuse anyway (too few
    events) keep ``None`` so the method gives its own message.
    """
    import math

    from geo_ibm.errors import GeoIbmError

    if cell is not None or method == "clusters" or len(events) < 2:
        return cell, None
    if method == "kde":
        minx, miny, maxx, maxy = area.bounds
        return min(maxx - minx, maxy - miny) / 250.0, None
    from geo_ibm.hotspots import default_cell_size

    try:
        auto, how = default_cell_size(_xy(events), area)
    except GeoIbmError:
        return None, None
    if method == "lisa":
        smallest = float(math.ceil(math.sqrt(area.area / LISA_MAX_AUTO_CELLS)))
        if auto < smallest:
            return smallest, (f"{how}; raised from {auto:.0f} m to {smallest:.0f} m to keep the permutation test "
                              f"within {LISA_MAX_AUTO_CELLS:,} cells")
    return auto, how


def _jsonable(value: Any) -> Any:
    """Parameters as plain JSON types (numpy scalars, arrays and timestamps become Python values)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
