"""The gazetteer: Luxembourg's communes and named landmarks, and place names for points ("A3 at Aire de Berchem (Roeser)")."""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm import io
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.settings import WEB_CRS, WORKING_CRS, boundaries_dir

LANGUAGES: tuple[str, ...] = ("en", "fr")
"""Languages :func:`place_name` words a name in."""

ROAD_DISTANCE_M = 1500.0
"""Default reach of the road ``ref`` in a place name: the shipped corridors are straight lines
between junctions, 1–2 km from the real road on curvy stretches (``data/boundaries/README.md``)."""

LANDMARK_DISTANCE_M = 3000.0
"""Default reach of the landmark in a place name."""

COMMUNE_DISTANCE_M = 2000.0
"""A point outside every commune (just across the border, or on the German bank of a condominium
river) takes the nearest commune within this distance."""

COMMUNE_COLUMNS: tuple[str, ...] = (
    "commune", "lau2", "canton", "region", "rank", "area_km2", "label_x", "label_y",
)
LANDMARK_COLUMNS: tuple[str, ...] = ("landmark_id", "name", "kind", "label_en", "label_fr", "source", "coord_quality")
PLACE_COLUMNS: tuple[str, ...] = (
    "name", "road_ref", "road_distance_m", "landmark", "landmark_kind", "landmark_distance_m",
    "commune", "canton", "region",
)

_CROSSING_KINDS = ("motorway", "national_road", "bridge", "rail", "airport")
# Descriptive heads of the crossing names of data/boundaries/crossing_points.csv and their French.
_HEADS_FR: dict[str, str] = {
    "Moselle bridge": "Pont de la Moselle",
    "Sauer bridge": "Pont de la Sûre",
    "Our bridge": "Pont de l'Our",
    "Moselle lock": "Écluse de la Moselle",
    "Luxembourg Airport": "Aéroport de Luxembourg",
}
_LEADING_REF = re.compile(r"^[A-Z]{1,2}\d+[a-z]?(?:/[A-Z]{1,2}\d+[a-z]?)*\s+")
_TRAILING_NOTE = re.compile(r"\s*\([^()]*\)\s*$")
_EXPLANATION = re.compile(r"\s+-\s+the\s.*$")


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int) -> gpd.GeoDataFrame:
    # mtime_ns is part of the key only: a rebuilt file is read again
    return io.read_vector(path)


def _read(path: Path) -> gpd.GeoDataFrame:
    try:
        mtime_ns = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        mtime_ns = -1  # io.read_vector raises the user-facing error
    return _read_cached(str(path), mtime_ns).copy()


def communes() -> gpd.GeoDataFrame:
    """The 100 communes of Luxembourg (official ACT limits, ``data/boundaries/communes.geojson``).

    Returns
    -------
    GeoDataFrame
        EPSG:2169, one row per commune sorted by name: ``commune`` (official name, e.g.
        "Redange/Attert"), ``lau2`` (4-digit code), ``canton``, ``region`` (police region),
        ``rank`` (1: the commune holding its canton's seat, 2: the others), ``area_km2``,
        ``label_x``, ``label_y`` (the label point, inside the commune, EPSG:2169 metres) and
        the commune polygon ``geometry``.

    Raises
    ------
    ValidationError
        The file lacks a column (rebuild with ``python scripts/build_gazetteer.py``).
    """
    path = boundaries_dir() / "communes.geojson"
    gdf = _read(path)
    missing = [c for c in ("commune", "lau2", "canton", "region", "rank", "area_km2", "label_lon", "label_lat")
               if c not in gdf.columns]
    if missing:
        raise ValidationError(f"{path}: missing columns {missing}; rebuild with `python scripts/build_gazetteer.py`",
                              [Problem("missing column", file=str(path), column=missing[0])])
    labels = gpd.GeoSeries(gpd.points_from_xy(gdf["label_lon"], gdf["label_lat"]), crs=WEB_CRS).to_crs(WORKING_CRS)
    gdf = gdf.to_crs(WORKING_CRS)
    gdf["label_x"] = labels.x.to_numpy()
    gdf["label_y"] = labels.y.to_numpy()
    gdf["rank"] = gdf["rank"].astype(np.int64)
    gdf["lau2"] = gdf["lau2"].astype(str)
    return gpd.GeoDataFrame(gdf[[*COMMUNE_COLUMNS, "geometry"]], geometry="geometry", crs=WORKING_CRS)


def commune_points() -> gpd.GeoDataFrame:
    """:func:`communes` with the label point as ``geometry`` (for place labels on maps)."""
    gdf = communes()
    points = gpd.points_from_xy(gdf["label_x"], gdf["label_y"])
    return gpd.GeoDataFrame(gdf.drop(columns="geometry"), geometry=points, crs=WORKING_CRS)


def landmark_label(name: str, kind: str, *, lang: str = "en") -> str:
    """The short display name of a landmark of ``data/boundaries/control_sites.csv``.

    A trailing note in brackets is dropped ("Aire de Berchem (A3)" -> "Aire de Berchem"); for
    road crossings the leading road numbers go (the road is named on its own) and the place
    pair is called a crossing ("A6/E411 Steinfort - Sterpenich" -> "Steinfort – Sterpenich
    crossing", "passage Steinfort – Sterpenich"); bridges, locks and the airport get their
    French heads in French.
    """
    lang = _check_language(lang)
    label = _EXPLANATION.sub("", str(name).strip())
    label = _TRAILING_NOTE.sub("", label) or label
    if kind in _CROSSING_KINDS:
        label = label.replace(" - ", " – ")
        if kind in ("motorway", "national_road"):
            label = _LEADING_REF.sub("", label)
            return f"{label} crossing" if lang == "en" else f"passage {label}"
        if kind == "rail":
            rest = label.removeprefix("Rail ").strip()
            return f"Rail crossing {rest}" if lang == "en" else f"Passage ferroviaire {rest}"
        if lang == "fr":
            for head, french in _HEADS_FR.items():
                if label.startswith(head):
                    return french + label[len(head):]
    return label


def landmarks() -> gpd.GeoDataFrame:
    """Named landmarks: border crossings, motorway service areas, stations, bus hubs, P+R sites.

    Built from the shipped control sites (``data/boundaries/control_sites.geojson``, which
    carries every crossing point of ``crossing_points.csv`` with its id and source) and the
    crossing points' own kinds.

    Returns
    -------
    GeoDataFrame
        EPSG:2169 points: ``landmark_id`` (the site id), ``name`` (as in the source), ``kind``
        (``motorway``, ``national_road``, ``bridge``, ``rail``, ``airport`` for crossings;
        ``service_area``, ``station``, ``bus_hub``, ``park_and_ride``), ``label_en``,
        ``label_fr`` (:func:`landmark_label`), ``source``, ``coord_quality``.
    """
    sites = io.ensure_working_crs(_read(boundaries_dir() / "control_sites.geojson"), name="control sites")
    crossings = _read(boundaries_dir() / "crossing_points.geojson")
    kind_of = dict(zip(crossings["crossing_id"].astype(str), crossings["kind"].astype(str)))
    kinds = [kind_of.get(str(i), str(k)) if str(k) == "crossing" else str(k)
             for i, k in zip(sites["site_id"], sites["kind"])]
    names = sites["name"].astype(str).to_numpy()
    return gpd.GeoDataFrame({
        "landmark_id": sites["site_id"].astype(str).to_numpy(),
        "name": names,
        "kind": kinds,
        "label_en": [landmark_label(n, k, lang="en") for n, k in zip(names, kinds)],
        "label_fr": [landmark_label(n, k, lang="fr") for n, k in zip(names, kinds)],
        "source": sites["source"].astype(str).to_numpy(),
        "coord_quality": sites["coord_quality"].astype(str).to_numpy(),
    }, geometry=sites.geometry.to_numpy(), crs=WORKING_CRS)


def _check_language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValidationError(f"lang must be one of {', '.join(LANGUAGES)}, got {lang!r}",
                              [Problem("unknown language", column="lang", value=lang)])
    return lang


def _check_distance(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and number >= 0):
        raise ValidationError(f"{name} must be a distance in metres >= 0, got {value!r}",
                              [Problem("not a distance >= 0", column=name, value=value)])
    return number


def _points(points: Any) -> tuple[np.ndarray, pd.Index]:
    """Point geometries (EPSG:2169) and the index of ``points``: a GeoDataFrame/GeoSeries with a
    CRS, or an ``(n, 2)`` array of EPSG:2169 coordinates."""
    if isinstance(points, (gpd.GeoDataFrame, gpd.GeoSeries)):
        frame = points if isinstance(points, gpd.GeoDataFrame) else gpd.GeoDataFrame(geometry=points)
        frame = io.ensure_working_crs(frame, name="points")
        geoms = frame.geometry.to_numpy()
        index = frame.index
    else:
        xy = np.asarray(points, dtype=float)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValidationError(f"points must be a GeoDataFrame, a GeoSeries or an (n, 2) array, got shape {xy.shape}",
                                  [Problem("not points", column="points")])
        geoms = shapely.points(xy)
        index = pd.RangeIndex(len(xy))
    bad = [k for k, g in enumerate(geoms) if g is None or g.is_empty or g.geom_type != "Point"]
    if bad:
        raise ValidationError(f"points: {len(bad)} geometries are not points",
                              [Problem("geometry must be a Point", row=k + 1, column="geometry") for k in bad[:20]])
    return np.asarray(geoms, dtype=object), index


def _nearest(points: np.ndarray, targets: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Row of the nearest target within ``max_distance`` of each point (-1: none) and its distance."""
    row = np.full(len(points), -1, dtype=np.int64)
    dist = np.full(len(points), np.nan)
    if len(points) == 0 or len(targets) == 0:
        return row, dist
    tree = shapely.STRtree(targets)
    (p, t), d = tree.query_nearest(points, max_distance=max_distance, return_distance=True, all_matches=False)
    row[p] = t
    dist[p] = d
    return row, dist


def _first_ref(value: Any) -> str:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    return text.split(";")[0].strip()


def place_name(
    points: Any,
    *,
    lang: str = "en",
    road_distance_m: float = ROAD_DISTANCE_M,
    landmark_distance_m: float = LANDMARK_DISTANCE_M,
    commune_distance_m: float = COMMUNE_DISTANCE_M,
    roads: gpd.GeoDataFrame | None = None,
    landmark_layer: gpd.GeoDataFrame | None = None,
    commune_layer: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """Name each point by its road, nearest landmark and commune, e.g. "A3 at Aire de Berchem (Roeser)".

    The name is built from the nearest road with a ``ref`` within ``road_distance_m`` (its
    first ref when ``;``-separated), the nearest landmark within ``landmark_distance_m`` and
    the commune containing the point (else the nearest within ``commune_distance_m``):

    ============================  ===================================  ===================================
    found                         English                              French
    ============================  ===================================  ===================================
    road, landmark, commune       ``A3 at Aire de Berchem (Roeser)``   ``A3, Aire de Berchem (Roeser)``
    landmark, commune             ``Gare de Mersch (Mersch)``          the same
    road, commune                 ``N7 (Wiltz)``                       the same
    commune only                  ``Remich``                           the same
    ============================  ===================================  ===================================

    The commune in brackets is left out when the landmark already names it ("Gare d'Ettelbruck"
    in Ettelbruck); with no commune either, the road or landmark alone (or ``""``).

    Parameters
    ----------
    points
        Points as a GeoDataFrame or GeoSeries with a CRS (converted to EPSG:2169), or an
        ``(n, 2)`` array of EPSG:2169 coordinates.
    lang
        ``"en"`` or ``"fr"`` (the wording and the landmarks' labels differ).
    road_distance_m, landmark_distance_m, commune_distance_m
        How far the road, landmark and commune may be, metres.
    roads
        Road layer with ``ref`` (default :func:`geo_ibm.network.roads.road_layer`: the
        installed OpenStreetMap roads, else the shipped corridors).
    landmark_layer, commune_layer
        Instead of :func:`landmarks` and :func:`communes` (same columns).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``points``: ``name``, ``road_ref`` (``""`` when none), ``road_distance_m``,
        ``landmark`` (the label in ``lang``, ``""`` when none), ``landmark_kind``,
        ``landmark_distance_m``, ``commune``, ``canton``, ``region`` (missing when no commune is
        near); distances NaN when nothing was found.

    Raises
    ------
    ValidationError
        Not points, an unknown ``lang`` or a negative distance (the problem names it).
    """
    lang = _check_language(lang)
    road_reach = _check_distance(road_distance_m, "road_distance_m")
    landmark_reach = _check_distance(landmark_distance_m, "landmark_distance_m")
    commune_reach = _check_distance(commune_distance_m, "commune_distance_m")
    geoms, index = _points(points)
    if roads is None:
        from geo_ibm.network.roads import road_layer

        roads = road_layer()
    roads = io.ensure_working_crs(roads, name="roads")
    refs = np.array([_first_ref(v) for v in roads["ref"]], dtype=object) if "ref" in roads.columns else \
        np.zeros(0, dtype=object)
    with_ref = np.flatnonzero(refs != "") if len(refs) else np.zeros(0, dtype=np.int64)
    road_row, road_dist = _nearest(geoms, roads.geometry.to_numpy()[with_ref], road_reach)
    road_ref = np.where(road_row >= 0, refs[with_ref][np.maximum(road_row, 0)] if len(with_ref) else "", "")

    marks = landmarks() if landmark_layer is None else io.ensure_working_crs(landmark_layer, name="landmark_layer")
    mark_row, mark_dist = _nearest(geoms, marks.geometry.to_numpy(), landmark_reach)
    labels = marks[f"label_{lang}"].astype(str).to_numpy() if len(marks) else np.zeros(0, dtype=object)
    kinds = marks["kind"].astype(str).to_numpy() if len(marks) else np.zeros(0, dtype=object)
    landmark = np.where(mark_row >= 0, labels[np.maximum(mark_row, 0)] if len(marks) else "", "")
    landmark_kind = np.where(mark_row >= 0, kinds[np.maximum(mark_row, 0)] if len(marks) else None, None)

    found = commune_at(gpd.GeoSeries(geoms, crs=WORKING_CRS), commune_distance_m=commune_reach,
                       commune_layer=commune_layer)
    commune, canton, region = (found[c].to_numpy(dtype=object) for c in ("commune", "canton", "region"))
    names = [_compose(r, m, c, lang=lang) for r, m, c in zip(road_ref, landmark, commune)]
    return pd.DataFrame({
        "name": names,
        "road_ref": road_ref.astype(object),
        "road_distance_m": road_dist,
        "landmark": landmark.astype(object),
        "landmark_kind": landmark_kind,
        "landmark_distance_m": mark_dist,
        "commune": commune,
        "canton": canton,
        "region": region,
    }, index=index)


def commune_at(
    points: Any,
    *,
    commune_distance_m: float = COMMUNE_DISTANCE_M,
    commune_layer: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """The commune (canton, police region) containing each point, else the nearest within ``commune_distance_m``.

    Parameters
    ----------
    points
        As for :func:`place_name`.
    commune_distance_m
        How far a point outside every commune may be from the one it gets, metres.
    commune_layer
        Instead of :func:`communes` (``commune``, ``canton``, ``region``, polygons).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``points``: ``commune``, ``canton``, ``region`` (``None`` where no commune is near).
    """
    reach = _check_distance(commune_distance_m, "commune_distance_m")
    geoms, index = _points(points)
    areas = communes() if commune_layer is None else io.ensure_working_crs(commune_layer, name="commune_layer")
    area_geoms = areas.geometry.to_numpy()
    inside = np.full(len(geoms), -1, dtype=np.int64)
    if len(geoms) and len(areas):
        p, a = shapely.STRtree(area_geoms).query(geoms, predicate="within")
        # A point on a commune limit is within neither side: the nearest commune (distance 0) takes it.
        first = np.unique(p, return_index=True)[1]
        inside[p[first]] = a[first]
    outside = np.flatnonzero(inside < 0)
    near, _d = _nearest(geoms[outside], area_geoms, reach)
    inside[outside] = near
    found = inside >= 0
    pick = np.maximum(inside, 0)

    def column(name: str) -> np.ndarray:
        out = np.full(len(geoms), None, dtype=object)
        if len(areas):
            out[found] = areas[name].to_numpy(dtype=object)[pick[found]]
        return out

    return pd.DataFrame({"commune": column("commune"), "canton": column("canton"), "region": column("region")},
                        index=index)


def _fold(text: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return "".join(ch for ch in plain if ch.isalnum())


def _compose(road: str, landmark: str, commune: Any, *, lang: str) -> str:
    place = commune if isinstance(commune, str) else ""  # missing: None or NaN
    # "Redange/Attert" is named "Redange" in landmarks: compare with the part before the slash too.
    named = bool(place) and bool(landmark) and any(
        _fold(part) and _fold(part) in _fold(landmark) for part in {place, place.split("/")[0]})
    suffix = f" ({place})" if place and not named else ""
    if road and landmark:
        joint = " at " if lang == "en" else ", "
        return f"{road}{joint}{landmark}{suffix}"
    if road or landmark:
        return f"{road or landmark}{suffix}"
    return place


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with repeats told apart by a number: the second "Remich" becomes "Remich #2"."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return out


__all__ = [
    "COMMUNE_COLUMNS", "LANDMARK_COLUMNS", "PLACE_COLUMNS", "ROAD_DISTANCE_M", "LANDMARK_DISTANCE_M",
    "COMMUNE_DISTANCE_M", "commune_at", "communes", "commune_points", "landmarks", "landmark_label", "place_name", "unique_names",
]
