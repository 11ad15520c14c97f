"""Where demo events happen: the named sites, towns, corridor and crossing components, and placing events in space."""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from geo_ibm.demo.attributes import (
    COUNTRIES,
    LOCAL_COUNTRY,
    MIXED_COUNTRY,
    OTHER_ROAD_COUNTRY,
    REF_COUNTRY,
    Component,
    normalised,
)
from geo_ibm.demo.timing import HOURS_NIGHT_ROAD, HOURS_TRANSIT, HOURS_URBAN
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.settings import WORKING_CRS

# Fixed sites as WGS84 lon/lat. These are data facts: approximate positions read off the
# OpenStreetMap map view (openstreetmap.org, © OpenStreetMap contributors, ODbL 1.0), good to a
# few hundred metres. Sites tied to a motorway are snapped onto that corridor line when the
# corridor layer has it, which removes most of the estimation error.
_SITES: dict[str, tuple[float, float]] = {
    "aire_berchem": (6.1285, 49.5425),  # Aire de Berchem, A3 (estimate, OSM map view)
    "aire_capellen": (5.9905, 49.6415),  # Aire de Capellen, A6 (estimate, OSM map view)
    "aire_wasserbillig": (6.4888, 49.7107),  # Wasserbillig service area, A1 (estimate, OSM map view)
    "gare_luxembourg": (6.1340, 49.5999),  # Luxembourg Gare (estimate, OSM map view)
    "gare_esch": (5.9805, 49.4984),  # Esch-sur-Alzette station (estimate, OSM map view)
    "gare_ettelbruck": (6.1040, 49.8466),  # Ettelbruck station (estimate, OSM map view)
    "bus_hamilius": (6.1290, 49.6112),  # Luxembourg Hamilius bus hub (estimate, OSM map view)
    "bus_luxexpo": (6.1785, 49.6353),  # Kirchberg / Luxexpo P+R (estimate, OSM map view)
    "a13_schengen_west": (6.3330, 49.4800),  # A13 between Remerschen and Schengen (estimate, OSM map view)
    "n6_steinfort": (5.9150, 49.6615),  # N6 at Steinfort, near the Belgian border (estimate, OSM map view)
}

# Town centres for urban background, lon/lat (estimates, OSM map view) and spread in metres.
_TOWNS: tuple[tuple[str, float, float, float, float], ...] = (
    ("Luxembourg", 6.1319, 49.6116, 1500.0, 0.40),
    ("Esch-sur-Alzette", 5.9806, 49.4958, 1000.0, 0.15),
    ("Differdange", 5.8914, 49.5242, 800.0, 0.08),
    ("Dudelange", 6.0875, 49.4806, 800.0, 0.08),
    ("Ettelbruck", 6.1040, 49.8470, 700.0, 0.07),
    ("Diekirch", 6.1594, 49.8686, 600.0, 0.05),
    ("Wiltz", 5.9322, 49.9658, 500.0, 0.04),
    ("Echternach", 6.4217, 49.8120, 500.0, 0.04),
    ("Grevenmacher", 6.4400, 49.6800, 500.0, 0.05),
    ("Remich", 6.3670, 49.5450, 400.0, 0.04),
)

# Relative weight of each motorway corridor in the corridor scatter; other roads share the rest.
_REF_WEIGHT: dict[str, float] = {"A1": 0.26, "A3": 0.22, "A6": 0.20, "A13": 0.12, "A4": 0.05, "A7": 0.04}
_OTHER_ROADS_WEIGHT = 0.06

_CROSSING_WEIGHT = {"motorway": 10.0, "national_road": 1.5, "bridge": 1.2, "rail": 2.5}
_CROSSING_PROFILE = {"motorway": "road", "national_road": "road", "bridge": "bridge", "rail": "rail"}


def _to_working(lonlat: np.ndarray) -> np.ndarray:
    transformer = Transformer.from_crs("EPSG:4326", WORKING_CRS, always_xy=True)
    xs, ys = transformer.transform(lonlat[:, 0], lonlat[:, 1])
    return np.column_stack([xs, ys])


def _ref_lines(corridors: gpd.GeoDataFrame, outline_geom: Any) -> dict[str, np.ndarray]:
    """Corridor lines clipped to the outline, grouped by ref, as arrays of single LineStrings."""
    refs = corridors["ref"].astype(str).str.strip().str.upper().to_numpy()
    geoms = np.asarray(corridors.geometry.values)
    clipped = shapely.intersection(geoms, outline_geom)
    out: dict[str, list[Any]] = {}
    for ref, geom in zip(refs, clipped):
        if geom is None or geom.is_empty:
            continue
        parts = shapely.get_parts(geom)
        parts = parts[shapely.get_type_id(parts) == 1]  # LineString
        parts = parts[shapely.length(parts) > 0]
        if parts.size:
            out.setdefault(ref, []).extend(parts.tolist())
    return {ref: np.asarray(parts, dtype=object) for ref, parts in out.items()}


def build_components(outline_geom: Any, allowed: Any, corridors: gpd.GeoDataFrame, crossings: gpd.GeoDataFrame) -> list[Component]:
    """Every event source: corridor scatter, crossings, fixed sites, urban and rural background."""
    sites = dict(zip(_SITES, _to_working(np.array(list(_SITES.values())))))
    lines = _ref_lines(corridors, outline_geom)
    # Motorway sites go onto the corridor line itself, so that distance-to-corridor analyses see
    # them on their motorway even where the corridor layer is schematic.
    for key, ref in (("aire_berchem", "A3"), ("aire_capellen", "A6"), ("aire_wasserbillig", "A1"), ("a13_schengen_west", "A13")):
        sites[key] = _nearest_on(sites[key], lines.get(ref))
    outside = [key for key, xy in sites.items() if not shapely.contains_xy(allowed, xy[0], xy[1])]
    if outside:
        raise ValidationError(
            "generate_events: outline does not contain the demo sites; pass Luxembourg's outline in EPSG:2169",
            [Problem("site lies outside the outline plus margin", file="outline", value=key) for key in outside],
        )

    comps: list[Component] = []
    known = [ref for ref in _REF_WEIGHT if ref in lines]
    for ref in known:
        comps.append(
            Component(
                key=f"corridor_{ref}", location_kind="motorway", weight=_REF_WEIGHT[ref], hours=HOURS_NIGHT_ROAD,
                mode_profile="road", countries=REF_COUNTRY[ref], lines=lines[ref], sigma_m=150.0,
                name=f"{ref} corridor", road_unit_share=0.6,
            )
        )
    others = [ref for ref in lines if ref not in _REF_WEIGHT]
    if others:
        comps.append(
            Component(
                key="corridor_other", location_kind="other", weight=_OTHER_ROADS_WEIGHT, hours=HOURS_NIGHT_ROAD,
                mode_profile="other", countries=OTHER_ROAD_COUNTRY,
                lines=np.concatenate([lines[ref] for ref in others]), sigma_m=120.0, name="other roads",
                road_unit_share=0.3,
            )
        )
    comps.extend(_crossing_components(crossings, allowed))

    def site(
        key: str,
        name: str,
        kind: str,
        weight: float,
        hours: np.ndarray,
        profile: str,
        countries: tuple[float, ...],
        radius: float,
        activity: str = "persistent",
        road_unit_share: float = 0.0,
        customs_share: float = 0.0,
    ) -> None:
        comps.append(
            Component(
                key=key, location_kind=kind, weight=weight, hours=hours, mode_profile=profile, countries=countries,
                xy=sites[key][None, :], sigma_m=radius / 2.0, activity=activity, name=name, truth=True,
                radius_m=radius, road_unit_share=road_unit_share, customs_share=customs_share,
            )
        )

    site("aire_berchem", "Aire de Berchem (A3)", "rest_area", 0.050, HOURS_NIGHT_ROAD, "rest_area",
         REF_COUNTRY["A3"], 300.0, road_unit_share=0.5, customs_share=0.15)
    site("aire_capellen", "Aire de Capellen (A6)", "rest_area", 0.045, HOURS_NIGHT_ROAD, "rest_area",
         REF_COUNTRY["A6"], 300.0, road_unit_share=0.5, customs_share=0.15)
    site("aire_wasserbillig", "Wasserbillig service area (A1)", "rest_area", 0.045, HOURS_NIGHT_ROAD, "rest_area",
         REF_COUNTRY["A1"], 300.0, road_unit_share=0.5, customs_share=0.15)
    site("gare_luxembourg", "Luxembourg Gare", "train_station", 0.050, HOURS_TRANSIT, "train_station",
         MIXED_COUNTRY, 250.0)
    site("gare_esch", "Gare d'Esch-sur-Alzette", "train_station", 0.020, HOURS_TRANSIT, "train_station",
         (0.05, 0.60, 0.02, 0.33), 200.0)
    site("gare_ettelbruck", "Gare d'Ettelbruck", "train_station", 0.015, HOURS_TRANSIT, "train_station",
         (0.35, 0.05, 0.10, 0.50), 200.0)
    site("bus_hamilius", "Luxembourg Hamilius (bus hub)", "bus_station", 0.030, HOURS_TRANSIT, "bus_station",
         MIXED_COUNTRY, 200.0)
    site("bus_luxexpo", "Kirchberg / Luxexpo P+R", "bus_station", 0.060, HOURS_TRANSIT, "bus_station",
         MIXED_COUNTRY, 250.0, activity="seasonal")
    site("a13_schengen_west", "A13 near Schengen (new route)", "motorway", 0.110, HOURS_NIGHT_ROAD, "road",
         REF_COUNTRY["A13"], 400.0, activity="emerging", road_unit_share=0.6)
    site("n6_steinfort", "N6 Steinfort near the Belgian border", "other", 0.080, HOURS_NIGHT_ROAD, "road",
         (0.82, 0.03, 0.02, 0.13), 350.0, activity="fading", road_unit_share=0.3)

    towns = np.array([(lon, lat) for _, lon, lat, _, _ in _TOWNS])
    comps.append(
        Component(
            key="urban", location_kind="urban", weight=0.06, hours=HOURS_URBAN, mode_profile="urban",
            countries=LOCAL_COUNTRY, xy=_to_working(towns), point_weights=np.array([t[4] for t in _TOWNS]),
            extra={"sigmas": np.array([t[3] for t in _TOWNS])}, name="urban background",
        )
    )
    comps.append(
        Component(
            key="other", location_kind="other", weight=0.04, hours=HOURS_URBAN, mode_profile="other",
            countries=LOCAL_COUNTRY, name="rural background",
        )
    )
    return comps


def _nearest_on(xy: np.ndarray, lines: np.ndarray | None, limit_m: float = 2500.0) -> np.ndarray:
    """Move an estimated site onto its corridor line when that line passes within ``limit_m``."""
    if lines is None or len(lines) == 0:
        return xy
    point = shapely.Point(xy)
    distances = shapely.distance(lines, point)
    best = int(np.argmin(distances))
    if distances[best] > limit_m:
        return xy
    line = lines[best]
    snapped = shapely.line_interpolate_point(line, shapely.line_locate_point(line, point))
    return np.array([snapped.x, snapped.y])


def _crossing_components(crossings: gpd.GeoDataFrame, allowed: Any) -> list[Component]:
    kind = crossings["kind"].astype(str).str.strip().str.lower().to_numpy()
    neighbour = crossings["neighbour"].astype(str).str.strip().str.upper().to_numpy()
    geoms = np.asarray(crossings.geometry.values)
    usable = (
        np.isin(kind, list(_CROSSING_WEIGHT))
        & np.isin(neighbour, ["BE", "FR", "DE"])
        & (shapely.get_type_id(geoms) == 0)
    )
    usable &= shapely.contains_xy(allowed, shapely.get_x(geoms), shapely.get_y(geoms)) if usable.any() else usable
    if not usable.any():
        return []
    xy = np.column_stack([shapely.get_x(geoms[usable]), shapely.get_y(geoms[usable])])
    kinds = kind[usable]
    weights = np.array([_CROSSING_WEIGHT[k] for k in kinds])
    names = crossings["name"].astype(str).to_numpy()[usable] if "name" in crossings.columns else kinds
    refs = crossings["ref"].astype(str).to_numpy()[usable] if "ref" in crossings.columns else np.full(len(kinds), "")
    comp = Component(
        key="crossings", location_kind="border_crossing", weight=0.17, hours=HOURS_NIGHT_ROAD, mode_profile="road",
        xy=xy, point_weights=weights, point_modes=np.array([_CROSSING_PROFILE[k] for k in kinds], dtype=object),
        point_countries=np.array([COUNTRIES.index(c) for c in neighbour[usable]]), sigma_m=150.0,
        name="border crossings", road_unit_share=0.4, customs_share=0.2,
        extra={"names": names, "refs": refs, "kinds": kinds},
    )
    return [comp]


def place_events(
    rng: np.random.Generator, comp: Component, k: int, outline_geom: Any, allowed: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return x, y and the anchor index of ``k`` events of one component."""
    anchor_idx = np.zeros(k, dtype=np.int64)
    if comp.lines is not None:
        lengths = shapely.length(comp.lines)
        anchor_idx = rng.choice(len(comp.lines), size=k, p=lengths / lengths.sum())
        along = rng.random(k) * lengths[anchor_idx]
        points = shapely.line_interpolate_point(comp.lines[anchor_idx], along)
        ax, ay = shapely.get_x(points), shapely.get_y(points)
        sigma = np.full(k, comp.sigma_m)
    elif comp.xy is not None:
        if len(comp.xy) > 1:
            anchor_idx = rng.choice(len(comp.xy), size=k, p=normalised(comp.point_weights))
        ax, ay = comp.xy[anchor_idx, 0], comp.xy[anchor_idx, 1]
        sigmas = comp.extra.get("sigmas")
        sigma = sigmas[anchor_idx] if sigmas is not None else np.full(k, comp.sigma_m)
    else:
        px, py = _uniform_in(rng, outline_geom, k)
        return px, py, anchor_idx
    px = ax + rng.normal(0.0, 1.0, k) * sigma
    py = ay + rng.normal(0.0, 1.0, k) * sigma
    # Interceptions are made on Luxembourg's side: a point thrown across the border is mirrored
    # through its anchor; one that is still outside the accepted margin falls back on the anchor.
    outside = ~shapely.contains_xy(outline_geom, px, py)
    px[outside] = 2 * ax[outside] - px[outside]
    py[outside] = 2 * ay[outside] - py[outside]
    lost = ~shapely.contains_xy(allowed, px, py)
    px[lost], py[lost] = ax[lost], ay[lost]
    return px, py, anchor_idx


def _uniform_in(rng: np.random.Generator, geom: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    minx, miny, maxx, maxy = geom.bounds
    fill = geom.area / ((maxx - minx) * (maxy - miny))
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    got = 0
    while got < k:
        m = int((k - got) / fill * 1.2) + 16
        cx = rng.uniform(minx, maxx, m)
        cy = rng.uniform(miny, maxy, m)
        inside = shapely.contains_xy(geom, cx, cy)
        xs.append(cx[inside])
        ys.append(cy[inside])
        got += int(inside.sum())
    return np.concatenate(xs)[:k], np.concatenate(ys)[:k]
