"""Build the commune gazetteer data/boundaries/communes.geojson from the kept ACT commune limits.

Run from the repository root::

    python scripts/build_gazetteer.py [--source FILE] [--out FILE]

Input (kept in the repository)
------------------------------
``data/sources/act_limadmin_communes.geojson``: the 100 communes of the Administration du
cadastre et de la topographie (ACT), "Limites administratives du Grand-Duché de Luxembourg"
(data.public.lu, CC0), properties ``COMMUNE``, ``CANTON``, ``DISTRICT``, ``LAU2``, CRS84.

Output
------
One feature per commune: ``commune``, ``lau2``, ``canton``, ``region`` (police region of the
canton, :data:`geo_ibm.layers.CANTON_REGION`), ``rank`` (1: the commune is named after its canton,
so it holds the canton seat, e.g. Redange/Attert; 2: any other commune; canton Capellen's seat
is a village of Mamer and has no commune of its name), ``area_km2``, ``label_lon``, ``label_lat``
(the label point: the pole of inaccessibility of the commune's largest part, shapely
``polylabel`` at 10 m tolerance in EPSG:2169) and the commune polygon, simplified as one
coverage (shared limits stay shared) at :data:`SIMPLIFY_M`.

The build fails unless there are 100 communes with unique names and LAU2 codes, every canton
name is one of the 12 cantons, every canton has a commune, every geometry is a polygon and
every label point lies inside its commune (also after rounding to the file's 7 decimals).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.ops import polylabel

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io import read_vector, write_vector
from geo_ibm.layers import CANTON_REGION, _fold
from geo_ibm.settings import WEB_CRS, WORKING_CRS

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE = REPO_ROOT / "data" / "sources" / "act_limadmin_communes.geojson"
OUT = REPO_ROOT / "data" / "boundaries" / "communes.geojson"
N_COMMUNES = 100
SIMPLIFY_M = 5.0
"""Largest shift of a commune limit by the simplification, metres (the source has sub-metre vertices)."""
LABEL_TOLERANCE_M = 10.0

_CANTONS = {_fold(name): name for name in CANTON_REGION}


def _label_point(geom: shapely.Geometry) -> shapely.Point:
    largest = max(shapely.get_parts(geom), key=lambda part: part.area)
    return polylabel(largest, tolerance=LABEL_TOLERANCE_M)


def build(source: Path) -> gpd.GeoDataFrame:
    """The gazetteer of the communes in ``source`` (see the module docstring), EPSG:2169."""
    raw = read_vector(source).to_crs(WORKING_CRS)
    problems: list[Problem] = []
    for column in ("COMMUNE", "CANTON", "LAU2"):
        if column not in raw.columns:
            problems.append(Problem("missing column", file=str(source), column=column))
    if problems:
        raise ValidationError(f"{source}: not an ACT commune file", problems)
    cantons = [_CANTONS.get(_fold(str(v))) for v in raw["CANTON"]]
    for row, (value, canton) in enumerate(zip(raw["CANTON"], cantons), start=1):
        if canton is None:
            problems.append(Problem("unknown canton", file=str(source), row=row, column="CANTON", value=value))
    for column in ("COMMUNE", "LAU2"):
        for value in sorted(set(raw.loc[raw[column].duplicated(), column])):
            problems.append(Problem("listed more than once", file=str(source), column=column, value=value))
    for row, geom in enumerate(raw.geometry, start=1):
        if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            problems.append(Problem("geometry must be a polygon", file=str(source), row=row, column="geometry"))
    if len(raw) != N_COMMUNES:
        problems.append(Problem(f"{len(raw)} communes, expected {N_COMMUNES}", file=str(source)))
    missing = sorted(set(CANTON_REGION) - {c for c in cantons if c})
    if missing:
        problems.append(Problem(f"cantons without a commune: {missing}", file=str(source), column="CANTON"))
    if problems:
        raise ValidationError(f"{source}: bad commune rows", problems)

    geoms = shapely.make_valid(raw.geometry.to_numpy())
    simplified = shapely.coverage_simplify(geoms, SIMPLIFY_M)
    simplified = np.array([g if g.geom_type in ("Polygon", "MultiPolygon") else shapely.make_valid(g)
                           for g in simplified], dtype=object)
    names = raw["COMMUNE"].astype(str).to_numpy()
    gdf = gpd.GeoDataFrame({
        "commune": names,
        "lau2": raw["LAU2"].astype(str).str.zfill(4).to_numpy(),
        "canton": cantons,
        "region": [CANTON_REGION[c] for c in cantons if c],
        "rank": [1 if _fold(n).startswith(_fold(str(c))) else 2 for n, c in zip(names, cantons)],
        "area_km2": np.round(shapely.area(simplified) / 1e6, 3),
    }, geometry=simplified, crs=WORKING_CRS)
    labels = gpd.GeoSeries([_label_point(g) for g in gdf.geometry], crs=WORKING_CRS).to_crs(WEB_CRS)
    gdf["label_lon"] = np.round(labels.x.to_numpy(), 7)
    gdf["label_lat"] = np.round(labels.y.to_numpy(), 7)
    back = gpd.GeoSeries(gpd.points_from_xy(gdf["label_lon"], gdf["label_lat"]), crs=WEB_CRS).to_crs(WORKING_CRS)
    for row, (name, point, geom) in enumerate(zip(names, back, gdf.geometry), start=1):
        if not geom.contains(point):
            problems.append(Problem("label point outside the commune", row=row, column="commune", value=name))
    if problems:
        raise ValidationError("communes: label points", problems)
    return gdf.sort_values("commune", key=lambda s: s.map(_fold)).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    gdf = build(args.source)
    write_vector(gdf, args.out)
    seats = ", ".join(gdf.loc[gdf["rank"] == 1, "commune"])
    print(f"communes: {len(gdf)} communes in {gdf['canton'].nunique()} cantons -> {args.out}; canton seats: {seats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
