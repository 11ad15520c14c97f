"""Writing a route analysis: one GeoPackage with a layer each, or one GeoJSON / CSV file per layer."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io import write_table, write_vector
from geo_ibm.io.vectors import neutralise_formulas
from geo_ibm.network.requests import RouteAnalysis
from geo_ibm.settings import WEB_CRS

OUTPUT_SUFFIXES: tuple[str, ...] = (".gpkg", ".geojson", ".csv")

LAYER_PREFIX = "route_"
"""Layer names in a GeoPackage: ``route_segments``, ``route_corridors``..."""


def layer_metadata(analysis: RouteAnalysis, name: str) -> dict[str, Any]:
    """What a written layer says about how it was made."""
    return {"layer": name, "query": analysis.parameters, "network": analysis.network_source,
            "n_events": analysis.n_events, "n_snapped": analysis.n_snapped, "n_previous": analysis.n_previous,
            "warnings": analysis.warnings}


def _csv_table(gdf: gpd.GeoDataFrame) -> pd.DataFrame:
    """Attributes plus the geometry in EPSG:4326: ``lat``/``lon`` for points, ``wkt`` for lines."""
    table = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    wgs = gdf.to_crs(WEB_CRS).geometry
    if len(gdf) and (gdf.geometry.geom_type == "Point").all():
        table["lat"] = wgs.y.round(6).to_numpy()
        table["lon"] = wgs.x.round(6).to_numpy()
    else:
        table["wkt"] = shapely.to_wkt(wgs.to_numpy(), rounding_precision=6)
    return neutralise_formulas(table)


def write_routes(analysis: RouteAnalysis, path: str | Path) -> list[Path]:
    """Write every layer of ``analysis``.

    Parameters
    ----------
    analysis
        :func:`geo_ibm.network.requests.route_analysis`.
    path
        ``.gpkg``: one file, layers ``route_<name>`` (EPSG:2169) with the analysis' parameters as
        layer metadata and QGIS styles in the colours of the Routes map (``layer_styles``). ``.geojson`` / ``.csv``: one file per layer, ``<stem>_<name>.<suffix>``
        (EPSG:4326; CSV lines as WKT, points as lat/lon, text cells formula-safe).

    Returns
    -------
    list of Path
        The files written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValidationError(f"out: must end in {', '.join(OUTPUT_SUFFIXES)}, got {path.name!r}",
                              [Problem("unsupported output type", column="out", value=path.name)])
    written: list[Path] = []
    if suffix == ".gpkg" and path.exists():
        path.unlink()
    for name, gdf in analysis.layers().items():
        metadata = layer_metadata(analysis, name)
        if suffix == ".gpkg":
            from geo_ibm.maps.qgisstyles import layer_style

            write_vector(gdf, path, layer=LAYER_PREFIX + name, metadata=metadata,
                         style=layer_style(gdf, LAYER_PREFIX + name))
            if path not in written:
                written.append(path)
        elif suffix == ".geojson":
            written.append(write_vector(gdf, path.with_name(f"{path.stem}_{name}.geojson"), metadata=metadata))
        else:
            written.append(write_table(_csv_table(gdf), path.with_name(f"{path.stem}_{name}.csv")))
    return written
