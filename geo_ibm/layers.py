"""The shipped reference layers of Luxembourg (outline, borders, crossings, cantons, roads) in EPSG:2169."""
from __future__ import annotations

import functools
import hashlib
import os
import secrets
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm import io
from geo_ibm.errors import NotFoundError, Problem, ValidationError
from geo_ibm.settings import WORKING_CRS, boundaries_dir, margin_m, store_location, store_path

if TYPE_CHECKING:
    from geo_ibm.store import EventStore

OFFICIAL_BORDER_KM = {"BE": 148.0, "FR": 73.0, "DE": 135.0}
"""Official land-border lengths (ACT): 356 km in total."""

OFFICIAL_TOTAL_KM = 356.0

CANTON_REGION = {
    "Luxembourg": "Capitale",
    "Capellen": "Sud-Ouest",
    "Esch-sur-Alzette": "Sud-Ouest",
    "Clervaux": "Nord",
    "Diekirch": "Nord",
    "Redange": "Nord",
    "Vianden": "Nord",
    "Wiltz": "Nord",
    "Echternach": "Centre-Est",
    "Grevenmacher": "Centre-Est",
    "Remich": "Centre-Est",
    "Mersch": "Centre-Est",
}
"""Canton -> police region. Inferred by canton (the 2018 police law names four regions but no
canton list was found), so it is approximate where a region limit does not follow a canton limit."""

POLICE_REGIONS = ("Capitale", "Centre-Est", "Nord", "Sud-Ouest")
LAND_KINDS = ("motorway", "national_road", "bridge", "rail")
CROSSING_KINDS = (*LAND_KINDS, "airport")

_CANTON_NAME_COLUMNS = ("canton", "CANTON", "Canton", "canton_name", "CANTON_NAME", "nom_canton", "NOM_CANTON")
_OVERRIDE_LAYER = "cantons"


def _fold(name: str) -> str:
    """Case-, accent- and punctuation-insensitive key, so 'ESCH/ALZETTE' style variants compare."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii").lower()
    text = text.removeprefix("canton ").replace("/", "-sur-")
    return "".join(ch for ch in text if ch.isalnum())


_CANTON_KEYS = {_fold(name): name for name in CANTON_REGION}


@functools.lru_cache(maxsize=32)
def _read_cached(path: str, mtime_ns: int, layer: str | None) -> gpd.GeoDataFrame:
    # mtime_ns is part of the key only: a rewritten file is read again, an unchanged one is not
    return io.read_vector(path, layer=layer)


def _read(path: Path, *, layer: str | None = None) -> gpd.GeoDataFrame:
    try:
        mtime_ns = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        mtime_ns = -1  # io.read_vector raises the user-facing error
    return _read_cached(str(path), mtime_ns, layer).copy()


def _shipped(stem: str, columns: list[str]) -> gpd.GeoDataFrame:
    gdf = _read(boundaries_dir() / f"{stem}.geojson")
    missing = [c for c in columns if c not in gdf.columns]
    if missing:
        raise ValidationError(f"{boundaries_dir() / f'{stem}.geojson'}: missing columns {missing}; "
                              "rebuild with `python scripts/build_boundaries.py`")
    return gdf[[*columns, "geometry"]]


def luxembourg_outline() -> gpd.GeoDataFrame:
    """Luxembourg's outline (OpenStreetMap-derived, one polygon).

    Returns
    -------
    GeoDataFrame
        One row: ``name``, ``area_km2``, ``geometry``.
    """
    return _shipped("luxembourg", ["name", "area_km2"])


def neighbour_outlines() -> gpd.GeoDataFrame:
    """Belgium, France and Germany clipped to a box 30 km around Luxembourg.

    Returns
    -------
    GeoDataFrame
        ``country`` ('BE', 'FR', 'DE'), ``name``, ``geometry``.
    """
    return _shipped("neighbours", ["country", "name"])


def internal_borders() -> gpd.GeoDataFrame:
    """The three internal Schengen border lines, pieces of Luxembourg's outline.

    Returns
    -------
    GeoDataFrame
        ``neighbour`` ('BE', 'FR', 'DE'), ``name`` ('LU–BE'...), ``length_km`` (measured in
        EPSG:2169), ``geometry`` (LineString).
    """
    gdf = _shipped("internal_borders", ["neighbour", "name"])
    gdf.insert(2, "length_km", gdf.geometry.length / 1000.0)
    return gdf


def tripoints() -> gpd.GeoDataFrame:
    """The three points where Luxembourg's border lines meet.

    Returns
    -------
    GeoDataFrame
        ``name``, ``countries`` (e.g. 'BE-DE-LU'), ``geometry`` (Point).
    """
    return _shipped("tripoints", ["name", "countries"])


def crossing_points() -> gpd.GeoDataFrame:
    """Border crossing points: road, bridge and rail crossings plus Luxembourg Airport.

    Returns
    -------
    GeoDataFrame
        ``crossing_id``, ``name``, ``kind`` (motorway, national_road, bridge, rail, airport),
        ``ref`` (road/line numbers on both sides), ``neighbour`` ('BE', 'FR', 'DE'; 'external' for
        the airport), ``source``, ``coord_quality`` (published, published-3rdparty, derived,
        estimate), ``notes``, ``geometry`` (Point).
    """
    return _shipped(
        "crossing_points", ["crossing_id", "name", "kind", "ref", "neighbour", "source", "coord_quality", "notes"]
    )


def airport() -> gpd.GeoDataFrame:
    """Luxembourg Airport (ELLX), the only external Schengen border crossing point.

    Returns
    -------
    GeoDataFrame
        The airport row of :func:`crossing_points`, same columns.
    """
    points = crossing_points()
    out = points[points["kind"] == "airport"]
    if len(out) != 1:
        raise NotFoundError(f"crossing_points has {len(out)} airport rows; expected exactly one")
    return out.reset_index(drop=True)


def installed_cantons_path() -> Path:
    """Where :func:`install_cantons` writes an override canton layer (next to a GeoPackage store).

    A database store (a ``postgresql://`` URL) keeps its installed layer in its own tables
    instead, so that every process and host using it assigns the same regions.
    """
    return store_path().parent / "cantons.gpkg"


def _database_store() -> EventStore | None:
    """The store of ``GEO_IBM_STORE`` when it is a database (a URL), else ``None``."""
    location = store_location()
    if isinstance(location, Path):
        return None
    from geo_ibm.store import open_store

    return open_store(location, outline=False, assign_regions=False)


def cantons() -> gpd.GeoDataFrame:
    """The 12 cantons with their police region.

    The override layer written by :func:`install_cantons` (e.g. official ACT limits) is used
    when present; otherwise the shipped, coarser layer.

    Returns
    -------
    GeoDataFrame
        ``canton``, ``region``, ``geometry`` (Polygon/MultiPolygon).
    """
    database = _database_store()
    if database is not None:
        installed = database.installed_cantons()  # type: ignore[attr-defined]
        return installed if installed is not None else _shipped("cantons", ["canton", "region"])
    override = installed_cantons_path()
    if override.exists():
        gdf = _read(override, layer=_OVERRIDE_LAYER)
        missing = [c for c in ("canton", "region") if c not in gdf.columns]
        if missing:
            raise ValidationError(f"{override}: missing columns {missing}; reinstall with install_cantons()")
        return gdf[["canton", "region", "geometry"]]
    return _shipped("cantons", ["canton", "region"])


def police_regions() -> gpd.GeoDataFrame:
    """The four police regions, dissolved from :func:`cantons`.

    Returns
    -------
    GeoDataFrame
        ``region``, ``geometry``; rows sorted by region name.
    """
    gdf = cantons()[["region", "geometry"]].dissolve(by="region", as_index=False)
    return gdf.sort_values("region").reset_index(drop=True)[["region", "geometry"]]


def road_corridors() -> gpd.GeoDataFrame:
    """Schematic road network reaching every road crossing point (positional accuracy ~1 km).

    Returns
    -------
    GeoDataFrame
        ``ref`` (A1, N7...), ``class`` (motorway, national, collector), ``name``, ``from_node``,
        ``to_node`` (junction names or crossing ids), ``geometry`` (LineString). Lines end at
        shared junctions, so the network is connected end to end.
    """
    return _shipped("road_corridors", ["ref", "class", "name", "from_node", "to_node"])


def border_lengths() -> pd.DataFrame:
    """Measured border-line lengths against the official figures.

    Returns
    -------
    DataFrame
        ``neighbour``, ``name``, ``length_km``, ``official_km``, ``diff_pct`` (measured minus
        official, in % of official); one row per neighbour and a last ``total`` row.
    """
    borders = internal_borders()
    frame = pd.DataFrame({
        "neighbour": borders["neighbour"].to_list(),
        "name": borders["name"].to_list(),
        "length_km": borders["length_km"].to_numpy(),
        "official_km": [OFFICIAL_BORDER_KM[n] for n in borders["neighbour"]],
    })
    total = {"neighbour": "total", "name": "LU total", "length_km": frame["length_km"].sum(),
             "official_km": OFFICIAL_TOTAL_KM}
    frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    frame["diff_pct"] = 100.0 * (frame["length_km"] - frame["official_km"]) / frame["official_km"]
    return frame


def assign_regions(gdf: gpd.GeoDataFrame, *, max_distance_m: float | None = None,
                   canton_layer: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Add the canton and police region each point falls in.

    Points outside every canton but within ``max_distance_m`` of one (default
    ``settings.margin_m()``, for events just across a border) get the nearest canton; farther
    points get missing values.

    Large inputs (from 50 000 points) are mostly looked up in a grid of 200 m cells over the
    cantons (built once per canton layer and distance, in about a second): a cell that lies wholly inside one canton, or wholly outside
    all of them with one canton clearly nearest (or all beyond ``max_distance_m``), gives its
    answer directly. Points in cells touched by a canton boundary, or with no clear nearest
    canton, go through the exact spatial join, so the result equals the exact method's.

    Parameters
    ----------
    gdf
        Point GeoDataFrame with a CRS (converted to EPSG:2169).
    max_distance_m
        Largest distance for the nearest-canton fallback, metres.
    canton_layer
        ``canton``, ``region``, polygon ``geometry`` in EPSG:2169 to assign from instead of
        :func:`cantons` (e.g. a layer about to be installed).

    Returns
    -------
    GeoDataFrame
        A copy of ``gdf`` in EPSG:2169 with ``canton`` and ``region`` columns added (replaced if
        present); the index is kept.

    Raises
    ------
    ValidationError
        If a geometry is not a point or ``max_distance_m`` is negative.
    """
    limit = margin_m() if max_distance_m is None else float(max_distance_m)
    if limit < 0:
        raise ValidationError(f"max_distance_m must be >= 0, got {max_distance_m!r}")
    points = io.ensure_working_crs(gdf, name="gdf")
    geoms = points.geometry.to_numpy()
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    bad = np.flatnonzero(present & (shapely.get_type_id(geoms) != shapely.GeometryType.POINT))
    if len(bad):
        problems = [Problem("geometry must be a Point", row=int(k) + 1, column="geometry", value=geoms[k].geom_type)
                    for k in bad[:20]]
        raise ValidationError(f"assign_regions needs points; {len(bad)} geometries are not points", problems)

    where = np.flatnonzero(present)
    canton_values, region_values = _canton_codes(
        shapely.get_x(geoms[where]), shapely.get_y(geoms[where]), lambda k: geoms[where[k]], len(points), where,
        canton_layer=canton_layer, limit=limit)
    out = points.copy()
    out["canton"] = canton_values
    out["region"] = region_values
    return out


def assign_regions_xy(x: np.ndarray, y: np.ndarray, *, max_distance_m: float | None = None,
                      canton_layer: gpd.GeoDataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`assign_regions` for EPSG:2169 coordinates given as two arrays: ``(canton, region)``.

    The same answers, as object arrays (NaN for no canton, ``None`` for no region, as there),
    with no shapely point made except for the few points the exact join must judge. NaN or
    infinite coordinates get no canton.
    """
    limit = margin_m() if max_distance_m is None else float(max_distance_m)
    if limit < 0:
        raise ValidationError(f"max_distance_m must be >= 0, got {max_distance_m!r}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    where = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    px, py = x[where], y[where]
    return _canton_codes(px, py, lambda k: shapely.points(px[k], py[k]), len(x), where,
                         canton_layer=canton_layer, limit=limit)


def prepare_region_lookup(*, max_distance_m: float | None = None, canton_layer: gpd.GeoDataFrame | None = None) -> None:
    """Build the grid :func:`assign_regions` and :func:`assign_regions_xy` use for large inputs, ahead of them.

    The grid costs about half a second once per canton layer and distance in a process; an
    import calls this on a second thread while it reads and validates its file, so that the
    regions of its valid rows are then looked up at once.
    """
    limit = margin_m() if max_distance_m is None else float(max_distance_m)
    if limit < 0:
        raise ValidationError(f"max_distance_m must be >= 0, got {max_distance_m!r}")
    _canton_raster(cantons() if canton_layer is None else canton_layer.reset_index(drop=True), limit)


def _canton_codes(x: np.ndarray, y: np.ndarray, points_at: Callable[[np.ndarray], np.ndarray], n: int,
                  where: np.ndarray, *, canton_layer: gpd.GeoDataFrame | None, limit: float,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Canton and region (object arrays of ``n``) of the points ``x``, ``y`` at positions ``where``.

    The grid answers most points; ``points_at(k)`` gives the shapely points of those at
    positions ``k`` of ``x``/``y`` that the exact join must judge. The other ``n`` positions get none.
    """
    areas = cantons() if canton_layer is None else canton_layer.reset_index(drop=True)
    names = areas["canton"].to_numpy(dtype=object)
    found = np.full(len(x), _NONE, dtype=np.int64)
    if len(x) >= _RASTER_MIN_POINTS or _raster_key(areas, limit) in _RASTERS:
        found[:] = _canton_raster(areas, limit).lookup(x, y)
    else:
        found[:] = _EXACT  # building the grid (~1 s) would cost more than joining a few points
    exact = np.flatnonzero(found == _EXACT)
    if len(exact):
        found[exact] = assign_cantons_exact(points_at(exact), areas, max_distance_m=limit)
    code = np.full(n, _NONE, dtype=np.int64)
    code[where] = found
    region_of = dict(zip(areas["canton"], areas["region"]))
    # Missing cantons stay NaN and missing regions None, as the plain spatial join gives them.
    canton_values = np.append(names, np.nan).astype(object)
    region_values = np.array([*(region_of.get(c) for c in names), None], dtype=object)
    pick = np.where(code >= 0, code, len(names))
    return canton_values[pick], region_values[pick]


_NONE = -2
_EXACT = -1
_RASTER_CELL_M = 200.0
_RASTER_MIN_POINTS = 50_000
"""Below this many points the exact join alone is faster than building the grid first."""
_RASTER_PAD_M = 0.01
"""Cells are tested 1 cm larger than they are, far beyond the rounding of the cell index."""


def assign_cantons_exact(geoms: np.ndarray, areas: gpd.GeoDataFrame, *, max_distance_m: float) -> np.ndarray:
    """Canton of each point by spatial join: row number in ``areas``, or -2 for none.

    A point on the limit of several cantons gets the first one the join returns; a point
    outside all of them gets the nearest within ``max_distance_m`` (the first at equal
    distance). The reference :func:`assign_regions` must agree with.
    """
    probe = gpd.GeoDataFrame({"_pos": np.arange(len(geoms))}, geometry=geoms, crs=WORKING_CRS)
    target = gpd.GeoDataFrame({"_row": np.arange(len(areas))}, geometry=areas.geometry.to_numpy(), crs=WORKING_CRS)
    code = np.full(len(geoms), _NONE, dtype=np.int64)
    inside = gpd.sjoin(probe, target, how="inner", predicate="intersects").drop_duplicates("_pos")
    code[inside["_pos"].to_numpy()] = inside["_row"].to_numpy()
    outside = probe[code == _NONE]
    if len(outside) and max_distance_m > 0:
        near = gpd.sjoin_nearest(outside, target, how="inner", max_distance=max_distance_m).drop_duplicates("_pos")
        code[near["_pos"].to_numpy()] = near["_row"].to_numpy()
    return code


class _CantonRaster:
    """Grid lookup: per cell the canton row, ``_NONE`` or ``_EXACT`` (ask the spatial join)."""

    def __init__(self, x0: float, y0: float, cell: float, nx: int, ny: int, state: np.ndarray) -> None:
        self.x0, self.y0, self.cell, self.nx, self.ny, self.state = x0, y0, cell, nx, ny, state

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        i = np.floor((x - self.x0) / self.cell)
        j = np.floor((y - self.y0) / self.cell)
        inside = (i >= 0) & (i < self.nx) & (j >= 0) & (j < self.ny)
        out = np.full(len(x), _EXACT, dtype=np.int64)
        out[inside] = self.state[j[inside].astype(np.int64) * self.nx + i[inside].astype(np.int64)]
        return out


_RASTERS: dict[tuple, _CantonRaster] = {}


def _raster_key(areas: gpd.GeoDataFrame, limit: float, cell: float = _RASTER_CELL_M) -> tuple:
    geoms = areas.geometry.to_numpy()
    digest = hashlib.sha1(b"".join(shapely.to_wkb(geoms, byte_order=1))).hexdigest()
    return (digest, len(geoms), float(limit), float(cell))


def _canton_raster(areas: gpd.GeoDataFrame, limit: float, *, cell: float = _RASTER_CELL_M) -> _CantonRaster:
    key = _raster_key(areas, limit, cell)
    if key not in _RASTERS:
        if len(_RASTERS) >= 8:
            _RASTERS.pop(next(iter(_RASTERS)))
        _RASTERS[key] = _build_raster(areas.geometry.to_numpy(), limit, cell)
    return _RASTERS[key]


def _build_raster(geoms: np.ndarray, limit: float, cell: float) -> _CantonRaster:
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    reach = limit + cell
    x0 = np.floor((minx - reach) / cell) * cell
    y0 = np.floor((miny - reach) / cell) * cell
    nx = int(np.ceil((maxx + reach - x0) / cell))
    ny = int(np.ceil((maxy + reach - y0) / cell))
    jj, ii = np.divmod(np.arange(nx * ny), nx)
    left, bottom = x0 + ii * cell, y0 + jj * cell
    pad = _RASTER_PAD_M
    boxes = shapely.box(left - pad, bottom - pad, left + cell + pad, bottom + cell + pad)
    cx, cy = left + cell / 2, bottom + cell / 2
    state = np.full(nx * ny, _EXACT, dtype=np.int64)

    # Cells crossed by any canton limit stay exact; the others lie wholly inside or outside
    # each canton, so their centre tells.
    segments, owner = _boundary_segments(geoms)
    touched = np.zeros(nx * ny, dtype=bool)
    if len(segments):
        touched[shapely.STRtree(boxes).query(segments, predicate="intersects")[1]] = True
    clear = np.flatnonzero(~touched)
    hits = np.zeros(len(clear), dtype=np.int64)
    first = np.full(len(clear), _NONE, dtype=np.int64)
    for k, geom in enumerate(geoms):
        shapely.prepare(geom)
        within = shapely.intersects_xy(geom, cx[clear], cy[clear])
        first[within & (hits == 0)] = k
        hits += within
    state[clear[hits == 1]] = first[hits == 1]

    # Wholly outside: the nearest canton is certain when no other canton comes within two
    # half-diagonals of the centre's nearest distance (triangle inequality), and the whole
    # cell is within the limit; beyond the limit by a half-diagonal, no canton. Outside a
    # polygon the distance to it is the distance to its nearest edge, and a tree of short
    # edges answers nearest queries far faster than one of twelve large polygons.
    out = clear[hits == 0]
    half_diag = np.sqrt(2.0) * (cell / 2 + pad)
    eps = 1e-6
    if len(out) and limit > 0 and len(segments):
        tree = shapely.STRtree(segments)
        centres = shapely.points(cx[out], cy[out])
        # Only distances up to the reach matter: beyond it a cell is far whatever the distance,
        # and bounding the search lets GEOS skip most of the tree for the many far cells.
        pos, dist = tree.query_nearest(centres, max_distance=limit + half_diag + eps, return_distance=True,
                                       all_matches=False)
        d1 = np.full(len(out), np.inf)
        d1[pos[0]] = dist
        far = d1 - half_diag - eps > limit
        state[out[far]] = _NONE
        near = np.flatnonzero(~far & (d1 + half_diag + eps < limit))
        if len(near):
            pairs = tree.query(centres[near], predicate="dwithin", distance=d1[near] + 2 * half_diag + eps)
            cell_canton = np.unique(np.column_stack([pairs[0], owner[pairs[1]]]), axis=0)
            count = np.bincount(cell_canton[:, 0], minlength=len(near))
            only = np.full(len(near), _NONE, dtype=np.int64)
            only[cell_canton[:, 0]] = cell_canton[:, 1]
            sure = count == 1
            state[out[near[sure]]] = only[sure]
    elif len(out):
        state[out] = _NONE  # no nearest-canton fallback at all
    return _CantonRaster(float(x0), float(y0), float(cell), nx, ny, state)


def _boundary_segments(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every edge of every ring of the polygons as two-point line strings, and its polygon's row."""
    rings, ring_owner = shapely.get_parts(shapely.boundary(geoms), return_index=True)
    coords, index = shapely.get_coordinates(rings, return_index=True)
    same = index[1:] == index[:-1]
    starts, ends = coords[:-1][same], coords[1:][same]
    owner = ring_owner[index[:-1][same]]
    return shapely.linestrings(np.stack([starts, ends], axis=1)), owner.astype(np.int64)


def _canton_column(gdf: gpd.GeoDataFrame, name_column: str | None, file: str) -> str:
    if name_column is not None:
        if name_column not in gdf.columns:
            raise ValidationError(f"{file}: no column {name_column!r}; columns are {list(gdf.columns)}")
        return name_column
    for column in _CANTON_NAME_COLUMNS:
        if column in gdf.columns:
            return column
    raise ValidationError(f"{file}: no canton name column found (looked for {list(_CANTON_NAME_COLUMNS)}); "
                          f"columns are {list(gdf.columns)}; pass name_column=")


def _validate_cantons(gdf: gpd.GeoDataFrame, *, file: str) -> None:
    problems = []
    for k, (name, geom) in enumerate(zip(gdf["canton"], gdf.geometry), start=1):
        if name not in CANTON_REGION:
            problems.append(Problem("unknown canton", file=file, row=k, column="canton", value=name))
        if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            problems.append(Problem("geometry must be a non-empty polygon", file=file, row=k, column="geometry",
                                    value=None if geom is None else geom.geom_type))
    if "region" in gdf.columns:
        for k, (name, region) in enumerate(zip(gdf["canton"], gdf["region"]), start=1):
            if name in CANTON_REGION and region != CANTON_REGION[name]:
                problems.append(Problem(f"region of {name} must be {CANTON_REGION[name]!r}", file=file, row=k,
                                        column="region", value=region))
    missing = sorted(set(CANTON_REGION) - set(gdf["canton"]))
    if missing:
        problems.append(Problem(f"missing cantons {missing}", file=file, column="canton"))
    duplicated = sorted(set(gdf.loc[gdf["canton"].duplicated(), "canton"]))
    if duplicated:
        problems.append(Problem(f"cantons listed more than once {duplicated}", file=file, column="canton"))
    if problems:
        raise ValidationError(f"{file}: not a valid canton layer of Luxembourg", problems)


def cantons_from_file(path: str | os.PathLike[str], *, name_column: str | None = None,
                      layer: str | None = None) -> gpd.GeoDataFrame:
    """Read an official canton (or commune) boundary file and map each canton to its region.

    Accepts the ACT "Limites administratives" cantons file (column ``CANTON``) or its communes
    file (one row per commune, also with ``CANTON``: dissolved to cantons). Names are matched
    ignoring case, accents and a 'Canton ' prefix.

    Parameters
    ----------
    path
        Any vector file GDAL reads (GeoJSON, GeoPackage, Shapefile).
    name_column
        Column holding the canton name; found automatically when omitted.
    layer
        Layer to read from a multi-layer file.

    Returns
    -------
    GeoDataFrame
        ``canton``, ``region``, ``geometry``: 12 rows sorted by canton, EPSG:2169.

    Raises
    ------
    ValidationError
        Listing unknown canton names (row and value), missing cantons, non-polygon geometries.
    """
    file = str(path)
    raw = io.read_vector(path, layer=layer)
    column = _canton_column(raw, name_column, file)
    names = [_CANTON_KEYS.get(_fold(v), v) if isinstance(v, str) else v for v in raw[column]]
    unknown = [Problem("unknown canton", file=file, row=k, column=column, value=v)
               for k, (v, n) in enumerate(zip(raw[column], names), start=1) if n not in CANTON_REGION]
    if unknown:
        raise ValidationError(f"{file}: {len(unknown)} rows name no canton of Luxembourg "
                              f"(known: {sorted(CANTON_REGION)})", unknown)
    shapes = gpd.GeoDataFrame({"canton": names}, geometry=raw.geometry.to_numpy(), crs=raw.crs)
    bad = [Problem("geometry must be a non-empty polygon", file=file, row=k, column="geometry",
                   value=None if g is None else g.geom_type)
           for k, g in enumerate(shapes.geometry, start=1)
           if g is None or g.is_empty or g.geom_type not in ("Polygon", "MultiPolygon")]
    if bad:
        raise ValidationError(f"{file}: canton geometries must be polygons", bad)
    dissolved = shapes.dissolve(by="canton", as_index=False)
    dissolved["region"] = dissolved["canton"].map(CANTON_REGION)
    out = dissolved[["canton", "region", "geometry"]].sort_values("canton").reset_index(drop=True)
    _validate_cantons(out, file=file)
    return out


def install_cantons(gdf: gpd.GeoDataFrame, *, store: EventStore | None = None) -> Path | str:
    """Store ``gdf`` as the canton layer :func:`cantons` uses from now on.

    With ``store``, every stored event gets the canton and police region of the new layer in
    the same transaction, so per-canton tables agree with the installed boundaries. All or
    nothing: the layer is written to a temporary file first and renamed into place just
    before the events are committed; if anything fails, the previous layer file (or its
    absence) and the events stay as they were.

    Parameters
    ----------
    gdf
        ``canton`` and polygon ``geometry`` for all 12 cantons, e.g. from :func:`cantons_from_file`;
        ``region`` is filled from the canton when absent.
    store
        The event store whose events follow the new boundaries (``None``: the layer alone).

    Returns
    -------
    Path or str
        The override file, ``<store folder>/cantons.gpkg``; for a database store (a URL in
        ``GEO_IBM_STORE``) its location: the layer and the events change in one transaction of
        that store.

    Raises
    ------
    ValidationError
        If a canton is unknown, missing or repeated, or a region disagrees with the mapping.
    StoreError
        If the store cannot be written (nothing is installed then).
    """
    if "canton" not in gdf.columns:
        raise ValidationError(f"install_cantons needs a 'canton' column; columns are {list(gdf.columns)}")
    layer = io.ensure_working_crs(gdf, name="cantons")
    if "region" not in layer.columns:
        layer = layer.assign(region=layer["canton"].map(CANTON_REGION))
    layer = gpd.GeoDataFrame(layer[["canton", "region", "geometry"]], geometry="geometry", crs=WORKING_CRS)
    _validate_cantons(layer, file="install_cantons(gdf)")
    layer = layer.reset_index(drop=True)
    database = _database_store()
    if database is not None:
        database.install_cantons(  # type: ignore[attr-defined]
            layer, assign=lambda points: assign_regions(points, canton_layer=layer))
        return database.location
    path = installed_cantons_path()
    tag = secrets.token_hex(4)
    staged = path.with_name(f".{path.stem}.{tag}.new{path.suffix}")
    previous = path.with_name(f".{path.stem}.{tag}.old{path.suffix}")
    io.write_vector(layer, staged, layer=_OVERRIDE_LAYER)
    done: list[str] = []

    def put_in_place() -> None:
        if path.exists():
            os.replace(path, previous)
            done.append("kept previous")
        os.replace(staged, path)
        done.append("installed")

    try:
        if store is None:
            put_in_place()
        else:
            store.reassign_regions(assign=lambda points: assign_regions(points, canton_layer=layer),
                                   before_commit=put_in_place)
    except BaseException:
        # The commit may fail after the rename: put the previous file back.
        if "installed" in done:
            path.unlink(missing_ok=True)
        if "kept previous" in done:
            os.replace(previous, path)
        staged.unlink(missing_ok=True)
        raise
    previous.unlink(missing_ok=True)
    return path
