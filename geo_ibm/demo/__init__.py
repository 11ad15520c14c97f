"""Synthetic but realistic interception events, with the ground truth of the hotspots planted in them."""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm import periods
from geo_ibm.demo.attributes import (
    COUNTRIES,
    MODE_BY_KIND,
    MODES,
    Component,
    draw_destinations,
    draw_groups,
    draw_modes_per_anchor,
    draw_nationalities,
    draw_notes,
    draw_units,
    normalised,
)
from geo_ibm.demo.places import build_components, place_events
from geo_ibm.demo.timing import Phases, draw_operations, hotspot_phases, hourly_intensity
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io import ensure_working_crs
from geo_ibm.settings import LOCAL_TZ, WORKING_CRS, margin_m

__all__ = ["TRUTH_COLUMNS", "generate_events"]

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
        ``entry_country``, ``destination_country`` (ISO alpha-2, ``unknown`` or None),
        ``nationalities`` (``;``-separated ISO alpha-2 or None), ``operation_id`` (str or
        None), ``source_unit``, ``notes`` (str or None), ``geometry`` (Point).
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
    components = build_components(outline_geom, allowed, corridors, crossings)

    hours_utc = pd.date_range(t0.tz_convert("UTC"), t1.tz_convert("UTC"), freq="h", inclusive="left").as_unit("ns")
    if len(hours_utc) == 0:
        raise ValidationError(f"generate_events: start {start!r} and end {end!r} leave no whole hour to fill")
    local = hours_utc.tz_convert(LOCAL_TZ)
    phases = hotspot_phases(t0, t1, local)
    operations = draw_operations(rng, local, components)
    intensity = hourly_intensity(components, local, t0, t1, phases, operations)
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
        px, py, anchor_idx = place_events(rng, comp, k, outline_geom, allowed)
        x[sel], y[sel] = px, py
        comp.extra["anchor_counts"] = np.bincount(anchor_idx, minlength=1 if comp.xy is None else len(comp.xy))
        location_kind[sel] = comp.location_kind
        if comp.point_modes is not None:
            mode_idx[sel] = draw_modes_per_anchor(rng, comp.point_modes[anchor_idx])
        else:
            mode_idx[sel] = rng.choice(len(MODES), size=k, p=normalised(MODE_BY_KIND[comp.mode_profile]))
        if comp.point_countries is not None:
            own = comp.point_countries[anchor_idx]
            unknown = rng.random(k) < 0.08
            country_idx[sel] = np.where(unknown, COUNTRIES.index("unknown"), own)
        else:
            country_idx[sel] = rng.choice(len(COUNTRIES), size=k, p=normalised(comp.countries))
        unit[sel] = draw_units(rng, comp, px, py)
        for op_mask, targets, op_id in operations:
            if comp.key in targets:
                hit = op_mask[hour_idx[sel]] & (rng.random(k) < 0.7)
                operation[sel[hit]] = op_id

    persons, smugglers = draw_groups(rng, mode_idx)
    notes = draw_notes(rng, mode_idx)
    # a stream of its own, so adding these columns left every other column of a seed as it was
    extra_rng = np.random.default_rng([seed, 1])
    destination = draw_destinations(extra_rng, np.asarray(COUNTRIES, dtype=object)[country_idx])
    span = max(float(stamps_ns.max() - stamps_ns.min()), 1.0)
    nationalities = draw_nationalities(extra_rng, persons, (stamps_ns - stamps_ns.min()) / span)

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
            "destination_country": destination[order],
            "nationalities": nationalities[order],
            "operation_id": operation[order],
            "source_unit": unit[order],
            "notes": notes[order],
        }
    )
    for column in ("event_id", "location_kind", "transport_mode", "entry_country", "destination_country", "nationalities",
                   "operation_id", "source_unit", "notes"):
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


# --- ground truth ----------------------------------------------------------------------------


def _truth(
    components: list[Component],
    intensity: np.ndarray,
    total: float,
    n: int,
    counts: np.ndarray,
    phases: Phases,
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
            w = normalised(comp.point_weights)
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
