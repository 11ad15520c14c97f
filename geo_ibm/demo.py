"""Synthetic but realistic interception events, with the ground truth of the hotspots planted in them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geo_ibm import periods
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.events import ENTRY_COUNTRIES, TRANSPORT_MODES
from geo_ibm.io import ensure_working_crs
from geo_ibm.settings import LOCAL_TZ, WORKING_CRS, margin_m

TRUTH_COLUMNS: tuple[str, ...] = (
    "hotspot_id",
    "name",
    "kind",
    "location_kind",
    "start",
    "end",
    "share",
    "expected_events",
    "events",
    "radius_m",
    "geometry",
)
"""Columns of the ground-truth GeoDataFrame returned next to the events."""

# The probability vectors below follow the order of these code lists.
MODES = TRANSPORT_MODES
COUNTRIES = ENTRY_COUNTRIES

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

# Where groups on each motorway came from: the corridor's direction decides it.
_REF_COUNTRY: dict[str, tuple[float, float, float, float]] = {  # BE, FR, DE, unknown
    "A1": (0.02, 0.03, 0.83, 0.12),
    "A13": (0.04, 0.18, 0.63, 0.15),
    "A6": (0.84, 0.04, 0.02, 0.10),
    "A3": (0.03, 0.84, 0.03, 0.10),
    "A4": (0.03, 0.70, 0.02, 0.25),
    "A7": (0.25, 0.10, 0.15, 0.50),
}
_OTHER_ROAD_COUNTRY = (0.20, 0.20, 0.20, 0.40)
_MIXED_COUNTRY = (0.22, 0.30, 0.18, 0.30)
_LOCAL_COUNTRY = (0.12, 0.15, 0.10, 0.63)

# Relative weight of each motorway corridor in the corridor scatter; other roads share the rest.
_REF_WEIGHT: dict[str, float] = {"A1": 0.26, "A3": 0.22, "A6": 0.20, "A13": 0.12, "A4": 0.05, "A7": 0.04}
_OTHER_ROADS_WEIGHT = 0.06

_MODE_BY_KIND: dict[str, tuple[float, ...]] = {  # car, van, truck, bus, train, taxi, on_foot, other
    "road": (0.52, 0.24, 0.16, 0.04, 0.00, 0.02, 0.01, 0.01),
    "rest_area": (0.38, 0.24, 0.30, 0.05, 0.00, 0.01, 0.01, 0.01),
    "bridge": (0.55, 0.15, 0.08, 0.02, 0.00, 0.03, 0.15, 0.02),
    "rail": (0.00, 0.00, 0.00, 0.00, 0.92, 0.00, 0.08, 0.00),
    "train_station": (0.00, 0.00, 0.00, 0.00, 0.85, 0.05, 0.10, 0.00),
    "bus_station": (0.00, 0.00, 0.00, 0.82, 0.00, 0.05, 0.13, 0.00),
    "urban": (0.34, 0.10, 0.02, 0.02, 0.00, 0.10, 0.34, 0.08),
    "other": (0.45, 0.15, 0.05, 0.01, 0.00, 0.04, 0.20, 0.10),
}

# Mean extra persons on top of the first one, and the chance that the group includes a smuggler.
_PERSONS_EXTRA = np.array([1.4, 5.5, 7.5, 1.8, 0.9, 1.2, 0.8, 1.0])
_PERSONS_OVERDISPERSION = np.array([2.0, 1.5, 1.2, 2.0, 2.0, 2.0, 2.0, 2.0])  # negative binomial shape
_SMUGGLER_P = np.array([0.40, 0.75, 0.70, 0.08, 0.05, 0.25, 0.15, 0.20])

_NOTES: dict[str, tuple[str, ...]] = {
    "car": (
        "Véhicule immatriculé à l'étranger, passagers sans titre de séjour",
        "Contrôle routier de nuit",
        "Conducteur soupçonné de transport de personnes contre rémunération",
        "Voiture suivie depuis la frontière",
    ),
    "van": (
        "Camionnette surchargée, personnes à l'arrière",
        "Fourgon de location, chauffeur interpellé",
        "Personnes cachées derrière des cartons",
    ),
    "truck": (
        "Personnes découvertes dans la remorque d'un poids lourd",
        "Camion frigorifique contrôlé à l'aire",
        "Bâche de la remorque découpée",
    ),
    "bus": (
        "Contrôle d'un autocar longue distance",
        "Passagers sans documents dans un bus international",
    ),
    "train": (
        "Contrôle à bord du train transfrontalier",
        "Personnes interpellées sur le quai",
    ),
    "taxi": ("Taxi venu de l'étranger, course payée en espèces",),
    "on_foot": (
        "Groupe à pied le long de la route",
        "Personnes signalées par un témoin",
    ),
    "other": (
        "Signalement transmis par la police fédérale",
        "Contrôle conjoint avec la douane",
    ),
}
_NOTES_SHARE = 0.65

_ROAD_UNIT = "Unité centrale de police de la route"
_CUSTOMS_UNIT = "Administration des douanes et accises"
_REGION_UNITS: tuple[str, ...] = (
    "Police grand-ducale Région Capitale",
    "Police grand-ducale Région Centre-Est",
    "Police grand-ducale Région Nord",
    "Police grand-ducale Région Sud-Ouest",
)

# Hour-of-day profiles (local time). Road smuggling peaks at night; transit hubs follow traffic.
_HOURS_NIGHT_ROAD = np.array(
    [2.4, 2.6, 2.6, 2.4, 2.0, 1.3, 0.8, 0.6, 0.5, 0.5, 0.5, 0.5,
     0.5, 0.5, 0.5, 0.6, 0.6, 0.7, 0.8, 0.9, 1.1, 1.4, 1.9, 2.2]
)
_HOURS_TRANSIT = np.array(
    [0.5, 0.3, 0.2, 0.2, 0.3, 0.7, 1.3, 1.6, 1.5, 1.1, 1.0, 1.0,
     1.0, 1.0, 1.1, 1.2, 1.4, 1.6, 1.6, 1.4, 1.2, 1.0, 0.9, 0.7]
)
_HOURS_URBAN = np.array(
    [1.3, 1.2, 1.0, 0.8, 0.6, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9,
     1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.2, 1.2, 1.3, 1.3, 1.3, 1.3]
)
# Month (Jan..Dec) and weekday (Mon..Sun) factors shared by every component.
_MONTH_FACTOR = np.array([0.80, 0.78, 0.88, 1.00, 1.10, 1.35, 1.50, 1.55, 1.35, 1.05, 0.90, 0.85])
_WEEKDAY_FACTOR = np.array([0.95, 0.88, 0.90, 1.00, 1.18, 1.12, 1.02])
_TREND_END = 1.8  # intensity at the end of the period relative to its start
_OPERATION_BOOST = 1.6


@dataclass
class _Component:
    """One source of events: where they happen, how, when, and whether it is a planted hotspot."""

    key: str
    location_kind: str
    weight: float
    hours: np.ndarray
    mode_profile: str
    countries: tuple[float, ...] | None = None  # None: per point (crossings)
    xy: np.ndarray | None = None  # anchor point(s), shape (k, 2)
    point_weights: np.ndarray | None = None
    point_modes: np.ndarray | None = None  # per-anchor mode profile names (crossings)
    point_countries: np.ndarray | None = None  # per-anchor entry country (crossings)
    lines: np.ndarray | None = None  # line geometries to scatter along
    sigma_m: float = 150.0
    activity: str = "persistent"
    name: str = ""
    truth: bool = False
    radius_m: float = 0.0
    road_unit_share: float = 0.0
    customs_share: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def generate_events(
    n: int,
    *,
    seed: int,
    start: Any = "2024-01-01",
    end: Any = "2026-09-30",
    outline: Any = None,
    corridors: gpd.GeoDataFrame | None = None,
    crossings: gpd.GeoDataFrame | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Generate ``n`` synthetic interception events with planted hotspots and their ground truth.

    Events follow the motorway corridors toward Germany (A1, A13), Belgium (A6) and France
    (A3), cluster at border crossings, motorway service areas, main stations and bus hubs,
    with some urban and rural background. Time has a night peak (22:00-05:00), a summer peak
    (June-September), a weekday pattern and an upward trend; one hotspot emerges in the last
    quarters of the period, one fades out, one is active in summer only.

    Parameters
    ----------
    n
        Number of events (at least 1).
    seed
        Seed of the random generator: the same seed and arguments give the same output.
    start, end
        Period covered (anything ``pandas.Timestamp`` accepts; without an offset the time is
        local, Europe/Luxembourg). An ``end`` at midnight, such as a bare date, includes that
        whole day. ``end`` must not lie in the future; no event is later than now.
    outline
        Luxembourg's outline in EPSG:2169 (shapely geometry or GeoDataFrame/GeoSeries);
        default ``geo_ibm.layers.luxembourg_outline()``. Every event lies inside it or within
        ``settings.margin_m()`` of it.
    corridors
        Road corridors with a ``ref`` column (``A1``, ``A3``...) and line geometries;
        default ``geo_ibm.layers.road_corridors()``.
    crossings
        Border crossing points with ``kind``, ``neighbour`` (BE/FR/DE) and optionally ``name``;
        default ``geo_ibm.layers.crossing_points()``. Airport crossings are left out: the
        airport is an external Schengen border, not an internal one.

    Returns
    -------
    events
        GeoDataFrame in EPSG:2169 sorted by time, columns ``event_id`` (``DEMO-000001``...),
        ``observed_at`` (tz-aware Europe/Luxembourg, whole minutes), ``location_kind``,
        ``persons`` (int64, >= 1), ``smugglers`` (int64, 0..persons), ``transport_mode``,
        ``entry_country``, ``operation_id`` (str or None), ``source_unit``, ``notes``
        (str or None), ``geometry`` (Point).
    truth
        One row per planted hotspot, columns ``hotspot_id`` (``H01``...), ``name``, ``kind``
        (``persistent``, ``emerging``, ``fading``, ``seasonal``), ``location_kind``, ``start``
        and ``end`` (active period, tz-aware), ``share`` (expected share of all events),
        ``expected_events``, ``events`` (generated), ``radius_m`` (about 86 % of the
        hotspot's own events lie within it), ``geometry`` (Point, EPSG:2169).

    Raises
    ------
    ValidationError
        If ``n``, ``seed``, ``start``, ``end`` or a layer is unusable; the message names it.
    """
    n, seed = _check_counts(n, seed)
    now = pd.Timestamp.now(tz=LOCAL_TZ)
    t0, t1 = _check_period(start, end, now)
    outline_geom = _outline_geometry(outline)
    corridors = _layer(corridors, "corridors", "road_corridors", ("ref",))
    crossings = _layer(crossings, "crossings", "crossing_points", ("kind", "neighbour"))
    margin = margin_m()
    allowed = shapely.buffer(outline_geom, margin * 0.98)
    shapely.prepare(allowed)
    shapely.prepare(outline_geom)

    rng = np.random.default_rng(seed)
    components = _components(outline_geom, allowed, corridors, crossings)

    hours_utc = pd.date_range(t0.tz_convert("UTC"), t1.tz_convert("UTC"), freq="h", inclusive="left").as_unit("ns")
    if len(hours_utc) == 0:
        raise ValidationError(f"generate_events: start {start!r} and end {end!r} leave no whole hour to fill")
    local = hours_utc.tz_convert(LOCAL_TZ)
    phases = _phases(t0, t1, local)
    operations = _operations(rng, local, components)
    intensity = _intensity(components, local, t0, t1, phases, operations)
    total = intensity.sum()

    cumulative = np.cumsum(intensity.ravel())
    flat = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
    flat = np.minimum(flat, cumulative.size - 1)
    comp_idx, hour_idx = np.divmod(flat, len(hours_utc))
    minutes = rng.integers(0, 60, n)
    stamps_ns = hours_utc.asi8[hour_idx] + minutes * 60_000_000_000

    x = np.empty(n)
    y = np.empty(n)
    location_kind = np.empty(n, dtype=object)
    mode_idx = np.empty(n, dtype=np.int64)
    country_idx = np.empty(n, dtype=np.int64)
    unit = np.empty(n, dtype=object)
    operation = np.full(n, None, dtype=object)

    for i, comp in enumerate(components):
        sel = np.flatnonzero(comp_idx == i)
        k = sel.size
        if k == 0:
            continue
        px, py, anchor_idx = _place(rng, comp, k, outline_geom, allowed)
        x[sel], y[sel] = px, py
        comp.extra["anchor_counts"] = np.bincount(anchor_idx, minlength=1 if comp.xy is None else len(comp.xy))
        location_kind[sel] = comp.location_kind
        if comp.point_modes is not None:
            mode_idx[sel] = _draw_modes_per_anchor(rng, comp.point_modes[anchor_idx])
        else:
            mode_idx[sel] = rng.choice(len(MODES), size=k, p=_normalised(_MODE_BY_KIND[comp.mode_profile]))
        if comp.point_countries is not None:
            own = comp.point_countries[anchor_idx]
            unknown = rng.random(k) < 0.08
            country_idx[sel] = np.where(unknown, COUNTRIES.index("unknown"), own)
        else:
            country_idx[sel] = rng.choice(len(COUNTRIES), size=k, p=_normalised(comp.countries))
        unit[sel] = _units(rng, comp, px, py)
        for op_mask, targets, op_id in operations:
            if comp.key in targets:
                hit = op_mask[hour_idx[sel]] & (rng.random(k) < 0.7)
                operation[sel[hit]] = op_id

    persons, smugglers = _groups(rng, mode_idx)
    notes = _notes(rng, mode_idx)

    order = np.lexsort((comp_idx, stamps_ns))
    width = max(6, len(str(n)))
    event_ids = np.char.add("DEMO-", np.char.zfill(np.arange(1, n + 1).astype(str), width)).astype(object)
    observed = pd.DatetimeIndex(stamps_ns[order].astype("datetime64[ns]")).tz_localize("UTC").tz_convert(LOCAL_TZ)
    frame = pd.DataFrame(
        {
            "event_id": event_ids,
            "observed_at": observed,
            "location_kind": location_kind[order],
            "persons": persons[order],
            "smugglers": smugglers[order],
            "transport_mode": np.asarray(MODES, dtype=object)[mode_idx[order]],
            "entry_country": np.asarray(COUNTRIES, dtype=object)[country_idx[order]],
            "operation_id": operation[order],
            "source_unit": unit[order],
            "notes": notes[order],
        }
    )
    for column in ("event_id", "location_kind", "transport_mode", "entry_country", "operation_id", "source_unit", "notes"):
        frame[column] = frame[column].astype(object)
    events = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(x[order], y[order]), crs=WORKING_CRS)

    counts = np.bincount(comp_idx, minlength=len(components))
    truth = _truth(components, intensity, total, n, counts, phases, t0, t1)
    return events, truth


# --- argument and layer checks -------------------------------------------------------------


def _check_counts(n: Any, seed: Any) -> tuple[int, int]:
    problems = []
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        problems.append(Problem("n must be a whole number of events", column="n", value=n))
    elif n < 1:
        problems.append(Problem("n must be at least 1", column="n", value=n))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        problems.append(Problem("seed must be a non-negative whole number", column="seed", value=seed))
    if problems:
        raise ValidationError("generate_events: invalid arguments", problems)
    return int(n), int(seed)


def _timestamp(value: Any, name: str) -> pd.Timestamp:
    try:
        return periods.to_timestamp(value, name=name)
    except ValidationError as exc:
        raise ValidationError(f"generate_events: {name} {value!r} is not a date/time", exc.problems) from None


def _check_period(start: Any, end: Any, now: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Return the half-open period [t0, t1) in local time, cut at the last whole hour before now."""
    t0 = _timestamp(start, "start")
    given_end = _timestamp(end, "end")
    if given_end > now:
        raise ValidationError(f"generate_events: end {end!r} lies in the future (now is {now:%Y-%m-%d %H:%M %Z})")
    if t0 >= given_end:
        raise ValidationError(f"generate_events: start {start!r} must be before end {end!r}")
    t1 = given_end + pd.Timedelta(days=1) if given_end == given_end.normalize() else given_end
    t1 = min(t1, now)
    t1 = t1.tz_convert("UTC").floor("h").tz_convert(LOCAL_TZ)
    return t0, t1


def _outline_geometry(outline: Any) -> Any:
    if outline is None:
        from geo_ibm.layers import luxembourg_outline

        outline = luxembourg_outline()
    if isinstance(outline, (gpd.GeoDataFrame, gpd.GeoSeries)):
        outline = ensure_working_crs(outline, name="outline")
        outline = shapely.union_all(np.asarray(outline.geometry.values))
    if not isinstance(outline, shapely.Geometry) or outline.is_empty or outline.area <= 0:
        raise ValidationError(
            f"generate_events: outline must be a non-empty polygon in {WORKING_CRS}, got {type(outline).__name__}"
        )
    return outline


def _layer(gdf: gpd.GeoDataFrame | None, name: str, loader: str, needed: tuple[str, ...]) -> gpd.GeoDataFrame:
    if gdf is None:
        from geo_ibm import layers

        gdf = getattr(layers, loader)()
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ValidationError(f"generate_events: {name} must be a GeoDataFrame, got {type(gdf).__name__}")
    gdf = ensure_working_crs(gdf, name=name)
    missing = [c for c in needed if c not in gdf.columns]
    if missing:
        raise ValidationError(
            f"generate_events: {name} lacks column(s) {', '.join(missing)}",
            [Problem("required column is missing", file=name, column=c) for c in missing],
        )
    return gdf


# --- the components --------------------------------------------------------------------------


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


def _components(outline_geom: Any, allowed: Any, corridors: gpd.GeoDataFrame, crossings: gpd.GeoDataFrame) -> list[_Component]:
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

    comps: list[_Component] = []
    known = [ref for ref in _REF_WEIGHT if ref in lines]
    for ref in known:
        comps.append(
            _Component(
                key=f"corridor_{ref}", location_kind="motorway", weight=_REF_WEIGHT[ref], hours=_HOURS_NIGHT_ROAD,
                mode_profile="road", countries=_REF_COUNTRY[ref], lines=lines[ref], sigma_m=150.0,
                name=f"{ref} corridor", road_unit_share=0.6,
            )
        )
    others = [ref for ref in lines if ref not in _REF_WEIGHT]
    if others:
        comps.append(
            _Component(
                key="corridor_other", location_kind="other", weight=_OTHER_ROADS_WEIGHT, hours=_HOURS_NIGHT_ROAD,
                mode_profile="other", countries=_OTHER_ROAD_COUNTRY,
                lines=np.concatenate([lines[ref] for ref in others]), sigma_m=120.0, name="other roads",
                road_unit_share=0.3,
            )
        )
    comps.extend(_crossing_components(crossings, allowed))

    def site(key, name, kind, weight, hours, profile, countries, radius, activity="persistent", **kw):
        comps.append(
            _Component(
                key=key, location_kind=kind, weight=weight, hours=hours, mode_profile=profile, countries=countries,
                xy=sites[key][None, :], sigma_m=radius / 2.0, activity=activity, name=name, truth=True,
                radius_m=radius, **kw,
            )
        )

    site("aire_berchem", "Aire de Berchem (A3)", "rest_area", 0.050, _HOURS_NIGHT_ROAD, "rest_area",
         _REF_COUNTRY["A3"], 300.0, road_unit_share=0.5, customs_share=0.15)
    site("aire_capellen", "Aire de Capellen (A6)", "rest_area", 0.045, _HOURS_NIGHT_ROAD, "rest_area",
         _REF_COUNTRY["A6"], 300.0, road_unit_share=0.5, customs_share=0.15)
    site("aire_wasserbillig", "Wasserbillig service area (A1)", "rest_area", 0.045, _HOURS_NIGHT_ROAD, "rest_area",
         _REF_COUNTRY["A1"], 300.0, road_unit_share=0.5, customs_share=0.15)
    site("gare_luxembourg", "Luxembourg Gare", "train_station", 0.050, _HOURS_TRANSIT, "train_station",
         _MIXED_COUNTRY, 250.0)
    site("gare_esch", "Gare d'Esch-sur-Alzette", "train_station", 0.020, _HOURS_TRANSIT, "train_station",
         (0.05, 0.60, 0.02, 0.33), 200.0)
    site("gare_ettelbruck", "Gare d'Ettelbruck", "train_station", 0.015, _HOURS_TRANSIT, "train_station",
         (0.35, 0.05, 0.10, 0.50), 200.0)
    site("bus_hamilius", "Luxembourg Hamilius (bus hub)", "bus_station", 0.030, _HOURS_TRANSIT, "bus_station",
         _MIXED_COUNTRY, 200.0)
    site("bus_luxexpo", "Kirchberg / Luxexpo P+R", "bus_station", 0.060, _HOURS_TRANSIT, "bus_station",
         _MIXED_COUNTRY, 250.0, activity="seasonal")
    site("a13_schengen_west", "A13 near Schengen (new route)", "motorway", 0.110, _HOURS_NIGHT_ROAD, "road",
         _REF_COUNTRY["A13"], 400.0, activity="emerging", road_unit_share=0.6)
    site("n6_steinfort", "N6 Steinfort near the Belgian border", "other", 0.080, _HOURS_NIGHT_ROAD, "road",
         (0.82, 0.03, 0.02, 0.13), 350.0, activity="fading", road_unit_share=0.3)

    towns = np.array([(lon, lat) for _, lon, lat, _, _ in _TOWNS])
    comps.append(
        _Component(
            key="urban", location_kind="urban", weight=0.06, hours=_HOURS_URBAN, mode_profile="urban",
            countries=_LOCAL_COUNTRY, xy=_to_working(towns), point_weights=np.array([t[4] for t in _TOWNS]),
            extra={"sigmas": np.array([t[3] for t in _TOWNS])}, name="urban background",
        )
    )
    comps.append(
        _Component(
            key="other", location_kind="other", weight=0.04, hours=_HOURS_URBAN, mode_profile="other",
            countries=_LOCAL_COUNTRY, name="rural background",
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


_CROSSING_WEIGHT = {"motorway": 10.0, "national_road": 1.5, "bridge": 1.2, "rail": 2.5}
_CROSSING_PROFILE = {"motorway": "road", "national_road": "road", "bridge": "bridge", "rail": "rail"}


def _crossing_components(crossings: gpd.GeoDataFrame, allowed: Any) -> list[_Component]:
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
    comp = _Component(
        key="crossings", location_kind="border_crossing", weight=0.17, hours=_HOURS_NIGHT_ROAD, mode_profile="road",
        xy=xy, point_weights=weights, point_modes=np.array([_CROSSING_PROFILE[k] for k in kinds], dtype=object),
        point_countries=np.array([COUNTRIES.index(c) for c in neighbour[usable]]), sigma_m=150.0,
        name="border crossings", road_unit_share=0.4, customs_share=0.2,
        extra={"names": names, "refs": refs, "kinds": kinds},
    )
    return [comp]


# --- time ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Phases:
    emerging_start: pd.Timestamp
    fading_full_until: pd.Timestamp
    fading_end: pd.Timestamp
    emerging_ramp: np.ndarray  # 0 before the start, rising 0.4 -> 1 afterwards
    fading_level: np.ndarray  # 1 early, falling to 0


def _quarter_start(stamp: pd.Timestamp) -> pd.Timestamp:
    month = 3 * ((stamp.month - 1) // 3) + 1
    return pd.Timestamp(year=stamp.year, month=month, day=1, tz=LOCAL_TZ)


def _phases(t0: pd.Timestamp, t1: pd.Timestamp, local: pd.DatetimeIndex) -> _Phases:
    span = t1 - t0
    # The emerging hotspot starts with the third-to-last quarter, or halfway for short periods.
    last_quarter = _quarter_start(t1 - pd.Timedelta(seconds=1))
    emerging = last_quarter - pd.DateOffset(months=6)
    emerging = max(pd.Timestamp(emerging).tz_convert(LOCAL_TZ), t0 + span / 2)
    fading_full_until = (t0 + span * 0.40).floor("D")
    fading_end = max((t0 + span * 0.65).floor("D"), fading_full_until + pd.Timedelta(hours=1))
    stamps = local.asi8
    e = pd.Timestamp(emerging).as_unit(local.unit).value
    ramp = np.where(stamps >= e, 0.4 + 0.6 * (stamps - e) / max(t1.as_unit(local.unit).value - e, 1), 0.0)
    f0 = fading_full_until.as_unit(local.unit).value
    f1 = fading_end.as_unit(local.unit).value
    level = np.clip((f1 - stamps) / max(f1 - f0, 1), 0.0, 1.0)
    return _Phases(emerging, fading_full_until, fading_end, ramp, level)


def _intensity(
    components: list[_Component],
    local: pd.DatetimeIndex,
    t0: pd.Timestamp,
    t1: pd.Timestamp,
    phases: _Phases,
    operations: list[tuple[np.ndarray, set[str], str]],
) -> np.ndarray:
    """Expected events per component (rows) and hour (columns), up to a common factor."""
    hour = local.hour.to_numpy()
    month = local.month.to_numpy() - 1
    weekday = local.day_of_week.to_numpy()
    elapsed = np.asarray((local - local[0]) / (t1 - t0), dtype=float)
    base = (1.0 + (_TREND_END - 1.0) * elapsed) * _MONTH_FACTOR[month] * _WEEKDAY_FACTOR[weekday]
    intensity = np.empty((len(components), len(local)))
    for i, comp in enumerate(components):
        row = comp.weight * base * comp.hours[hour] * _activity(comp.activity, phases, month)
        for op_mask, targets, _ in operations:
            if comp.key in targets:
                row = np.where(op_mask, row * _OPERATION_BOOST, row)
        intensity[i] = row
    return intensity


def _activity(kind: str, phases: _Phases, month: np.ndarray) -> np.ndarray | float:
    if kind == "emerging":
        return phases.emerging_ramp
    if kind == "fading":
        return phases.fading_level
    if kind == "seasonal":
        return np.where((month >= 5) & (month <= 8), 1.0, 0.06)
    return 1.0


def _operations(
    rng: np.random.Generator, local: pd.DatetimeIndex, components: list[_Component]
) -> list[tuple[np.ndarray, set[str], str]]:
    """Named control operations: two to four per year, 10-21 days, on a few components each."""
    keys = [c.key for c in components if c.key not in ("urban", "other")]
    ops = []
    stamps = local.asi8
    step = pd.Timedelta(hours=1).as_unit(local.unit).value
    for year in range(local[0].year, local[-1].year + 1):
        count = int(rng.integers(2, 5))
        starts = np.sort(rng.integers(0, 365 - 21, count))
        for number, day in enumerate(starts, start=1):
            begin = pd.Timestamp(year=year, month=1, day=1, tz=LOCAL_TZ) + pd.Timedelta(days=int(day))
            length = int(rng.integers(10, 22))
            b = begin.as_unit(local.unit).value
            mask = (stamps >= b) & (stamps < b + length * 24 * step)
            targets = set(rng.choice(keys, size=min(len(keys), int(rng.integers(2, 5))), replace=False).tolist()) if keys else set()
            if mask.any() and targets:
                ops.append((mask, targets, f"OP-{year}-{number:02d}"))
    return ops


# --- space -----------------------------------------------------------------------------------


def _place(rng: np.random.Generator, comp: _Component, k: int, outline_geom: Any, allowed: Any):
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
            anchor_idx = rng.choice(len(comp.xy), size=k, p=_normalised(comp.point_weights))
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


# --- attributes ------------------------------------------------------------------------------


def _normalised(weights: Any) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def _draw_modes_per_anchor(rng: np.random.Generator, profiles: np.ndarray) -> np.ndarray:
    out = np.empty(len(profiles), dtype=np.int64)
    for profile in np.unique(profiles):
        sel = np.flatnonzero(profiles == profile)
        out[sel] = rng.choice(len(MODES), size=sel.size, p=_normalised(_MODE_BY_KIND[profile]))
    return out


def _groups(rng: np.random.Generator, mode_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group size as 1 + negative binomial by transport mode; smugglers among them."""
    mean = _PERSONS_EXTRA[mode_idx]
    shape = _PERSONS_OVERDISPERSION[mode_idx]
    extra = rng.negative_binomial(shape, shape / (shape + mean))
    persons = np.minimum(1 + extra, 80).astype(np.int64)
    has = rng.random(len(mode_idx)) < _SMUGGLER_P[mode_idx]
    second = (persons >= 6) & (rng.random(len(mode_idx)) < 0.2)
    smugglers = (has.astype(np.int64) + (has & second)).astype(np.int64)
    return persons, np.minimum(smugglers, persons)


def _notes(rng: np.random.Generator, mode_idx: np.ndarray) -> np.ndarray:
    out = np.full(len(mode_idx), None, dtype=object)
    written = rng.random(len(mode_idx)) < _NOTES_SHARE
    pick = rng.integers(0, 1 << 30, len(mode_idx))
    for m, mode in enumerate(MODES):
        texts = np.asarray(_NOTES[mode], dtype=object)
        sel = np.flatnonzero((mode_idx == m) & written)
        out[sel] = texts[pick[sel] % len(texts)]
    return out


def _region_units(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # A coarse split of the country into the four police regions, in EPSG:2169 metres; the
    # real region polygons are not needed for plausible demo labels.
    capital = np.hypot(x - 77400.0, y - 75200.0) < 7000.0
    north = y > 98000.0
    south_west = (x < 78000.0) & (y < 92000.0)
    idx = np.where(capital, 0, np.where(north, 2, np.where(south_west, 3, 1)))
    return np.asarray(_REGION_UNITS, dtype=object)[idx]


def _units(rng: np.random.Generator, comp: _Component, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    units = _region_units(x, y)
    u = rng.random(len(x))
    units[u < comp.road_unit_share] = _ROAD_UNIT
    units[(u >= comp.road_unit_share) & (u < comp.road_unit_share + comp.customs_share)] = _CUSTOMS_UNIT
    return units


# --- ground truth ----------------------------------------------------------------------------


def _truth(
    components: list[_Component],
    intensity: np.ndarray,
    total: float,
    n: int,
    counts: np.ndarray,
    phases: _Phases,
    t0: pd.Timestamp,
    t1: pd.Timestamp,
) -> gpd.GeoDataFrame:
    rows = []
    for i, comp in enumerate(components):
        if comp.xy is None:  # line-scattered background: no anchor, no planted hotspot
            continue
        share = intensity[i].sum() / total
        if comp.truth:
            start, end = t0, t1
            if comp.activity == "emerging":
                start = phases.emerging_start
            elif comp.activity == "fading":
                end = phases.fading_end
            rows.append(
                (comp.name, comp.activity, comp.location_kind, start, end, share, counts[i], comp.radius_m,
                 comp.xy[0, 0], comp.xy[0, 1])
            )
        elif comp.key == "crossings":
            # Motorway crossings take most crossing events: each is a persistent hotspot.
            w = _normalised(comp.point_weights)
            for j in np.flatnonzero(comp.extra["kinds"] == "motorway"):
                rows.append(
                    (f"{comp.extra['names'][j]} (border crossing)", "persistent", "border_crossing", t0, t1,
                     share * w[j], comp.extra.get("anchor_counts", np.zeros(len(w), dtype=np.int64))[j],
                     2.0 * comp.sigma_m, comp.xy[j, 0], comp.xy[j, 1])
                )
    frame = pd.DataFrame(
        rows,
        columns=["name", "kind", "location_kind", "start", "end", "share", "events", "radius_m", "x", "y"],
    )
    frame.insert(0, "hotspot_id", [f"H{i:02d}" for i in range(1, len(frame) + 1)])
    frame["expected_events"] = frame["share"] * n
    geometry = gpd.points_from_xy(frame.pop("x"), frame.pop("y"))
    truth = gpd.GeoDataFrame(frame, geometry=geometry, crs=WORKING_CRS)
    for column in ("start", "end"):
        truth[column] = pd.to_datetime(truth[column]).dt.tz_convert(LOCAL_TZ)
    return truth[list(TRUTH_COLUMNS)]
