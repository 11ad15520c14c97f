"""Route analysis of the stored events: one query, the same layers for the CLI, the web page and OGC."""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd

from geo_ibm import layers
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.network import roads
from geo_ibm.network.attribution import attribute_entries, crossing_table
from geo_ibm.network.corridors import corridor_ranking, segment_stats
from geo_ibm.network.flows import route_flows
from geo_ibm.network.graph import AttachedCrossings, RoadNetwork, attach_crossings, build_network
from geo_ibm.network.lixels import DEFAULT_BAND_M, DEFAULT_LIXEL_M, check_lixels, network_hotspots
from geo_ibm.network.snap import DEFAULT_TOLERANCE_M, Snapped, check_tolerance, snap_events
from geo_ibm.periods import iso_or_none, period_end, period_start, quarter_bounds, shift_quarter
from geo_ibm.selection import ATTRIBUTE_FIELDS, EventSelection

ROUTE_COLUMNS: tuple[str, ...] = ("event_id", "observed_at", "persons", "entry_country", "destination_country")
"""Event columns a route analysis reads besides the geometry."""

MAX_ROUTE_EVENTS = 2_000_000
"""Most events one route analysis reads (per period: the query's and the previous one)."""

FILTER_FIELDS: tuple[str, ...] = ATTRIBUTE_FIELDS

LAYER_NAMES: tuple[str, ...] = ("segments", "corridors", "lixels", "attribution", "crossings", "flows", "unsnapped")
"""Layers of a route analysis, in the order files and pages list them."""

Progress = Callable[[str, float], None]
"""``progress(step, fraction_done)``."""


@dataclass(frozen=True)
class RouteQuery(EventSelection):
    """One route analysis of the stored events: snapping and network hot spot settings on an
    :class:`~geo_ibm.selection.EventSelection`.

    Attributes
    ----------
    start, end
        Time window ``start <= observed_at < end`` (ISO text, dates include the whole day).
    quarter
        A quarter (``2026Q3``) instead of ``start``/``end``; the previous quarter is compared.
    region, canton, location_kind, entry_country, transport_mode
        Event filters as ``store.events`` takes them.
    tolerance_m
        Snapping tolerance (metres).
    network_hotspots
        Also compute the lixel hotspots (network kernel density and network Gi*).
    lixel_m, band_m
        Lixel length and network bandwidth (metres).
    """

    tolerance_m: float = DEFAULT_TOLERANCE_M
    network_hotspots: bool = False
    lixel_m: float = DEFAULT_LIXEL_M
    band_m: float = DEFAULT_BAND_M

    def window(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """The time window as instants (``None`` open)."""
        if self.quarter is not None:
            if self.start is not None or self.end is not None:
                raise ValidationError("quarter: give either a quarter or from/to, not both",
                                      [Problem("both given", column="quarter", value=self.quarter)])
            first, last = quarter_bounds(self.quarter)
            return first, last
        start = period_start(self.start, name="from") if self.start not in (None, "") else None
        end = period_end(self.end, name="to") if self.end not in (None, "") else None
        if start is not None and end is not None and not start < end:
            raise ValidationError("to: the end must come after the start",
                                  [Problem("end before start", column="to", value=str(self.end))])
        return start, end

    def previous_window(self) -> tuple[pd.Timestamp, pd.Timestamp, float] | None:
        """The period compared with: the previous quarter, or the window of the same length just
        before ``from``/``to``; ``None`` for an open window. Also this period's share of both."""
        if self.quarter is not None:
            start, end = quarter_bounds(self.quarter)
            p_start, p_end = quarter_bounds(shift_quarter(self.quarter, -1))
            this, before = (end - start).total_seconds(), (p_end - p_start).total_seconds()
            return p_start, p_end, this / (this + before)
        begin, finish = self.window()
        if begin is None or finish is None:
            return None
        return begin - (finish - begin), begin, 0.5

    def filters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FILTER_FIELDS if getattr(self, name) not in (None, "")}

    def described(self) -> dict[str, Any]:
        """The query as plain values (for a layer's metadata and the page)."""
        start, end = self.window()
        out: dict[str, Any] = {"from": iso_or_none(start, name="from"), "to": iso_or_none(end, name="to"),
                               **self.filters(), "tolerance_m": self.tolerance_m}
        if self.quarter:
            out["quarter"] = self.quarter
        if self.network_hotspots:
            out.update(lixel_m=self.lixel_m, band_m=self.band_m)
        return out


@dataclass
class RouteAnalysis:
    """The layers of one route analysis (columns documented by the functions that make them).

    Attributes
    ----------
    segments
        :func:`geo_ibm.network.corridors.segment_stats`.
    corridors
        :func:`geo_ibm.network.corridors.corridor_ranking`.
    lixels
        :func:`geo_ibm.network.lixels.network_hotspots`, ``None`` unless asked for.
    attribution
        :func:`geo_ibm.network.attribution.attribute_entries`.
    crossings
        :func:`geo_ibm.network.attribution.crossing_table`.
    flows
        :func:`geo_ibm.network.flows.route_flows`.
    unsnapped
        Events beyond the snapping tolerance: ``event_id``, ``distance_m`` (to the nearest road),
        ``geometry``.
    """

    segments: gpd.GeoDataFrame
    corridors: gpd.GeoDataFrame
    lixels: gpd.GeoDataFrame | None
    attribution: gpd.GeoDataFrame
    crossings: gpd.GeoDataFrame
    flows: gpd.GeoDataFrame
    unsnapped: gpd.GeoDataFrame
    network_source: dict[str, Any]
    parameters: dict[str, Any]
    n_events: int
    n_snapped: int
    n_previous: int | None
    warnings: list[str] = field(default_factory=list)

    def layers(self) -> dict[str, gpd.GeoDataFrame]:
        """The layers by name (:data:`LAYER_NAMES`; ``lixels`` only when computed)."""
        out = {name: getattr(self, name) for name in LAYER_NAMES}
        if self.lixels is None:
            del out["lixels"]
        return out


@functools.lru_cache(maxsize=2)
def _network_for(key: str) -> tuple[RoadNetwork, AttachedCrossings, tuple[str, ...]]:
    del key  # the cache key: the road layer's identity
    network = build_network(roads.road_layer())
    crossings, warnings = attach_crossings(network, layers.crossing_points())
    return network, crossings, tuple(warnings)


def current_network() -> tuple[RoadNetwork, AttachedCrossings, list[str], dict[str, Any]]:
    """The network of :func:`geo_ibm.network.roads.road_layer` with the crossings attached, built
    once per installed road layer.

    Returns
    -------
    (network, crossings, warnings, source)
        ``warnings`` name the crossings that could not be attached; ``source`` is
        :func:`geo_ibm.network.roads.road_source`.
    """
    source = roads.road_source()
    network, crossings, warnings = _network_for(json.dumps(source, sort_keys=True, default=str))
    return network, crossings, list(warnings), source


def check_route_query(query: RouteQuery, n_events: int, network: RoadNetwork) -> None:
    """Refuse a query too costly to run, before any event is read.

    Raises
    ------
    ValidationError
        Naming ``tolerance``, ``lixel``, ``band`` or the selection (too many events).
    """
    check_tolerance(query.tolerance_m)
    query.window()
    if n_events > MAX_ROUTE_EVENTS:
        raise ValidationError(
            f"{n_events:,} events are too many for a route analysis (limit {MAX_ROUTE_EVENTS:,}); "
            "narrow the period or the region",
            [Problem("too many events", column="from", value=n_events)])
    if query.network_hotspots:
        check_lixels(network, lixel_m=query.lixel_m, band_m=query.band_m)


def _unsnapped(snapped: Snapped, network: RoadNetwork) -> gpd.GeoDataFrame:
    from geo_ibm.network.snap import distance_to_network

    rows = snapped.unsnapped
    ids = rows["event_id"].to_numpy() if "event_id" in rows else rows.index.to_numpy()
    return gpd.GeoDataFrame({"event_id": ids, "distance_m": distance_to_network(rows.geometry.to_numpy(), network)},
                            geometry=rows.geometry.to_numpy(), crs=rows.crs)


def route_analysis(store: Any, query: RouteQuery, *, progress: Progress | None = None) -> RouteAnalysis:
    """Run ``query`` on the events of ``store``: snapping, corridor statistics, entry attribution,
    flows and (when asked) network hotspots.

    Parameters
    ----------
    store
        An event store (:func:`geo_ibm.store.open_store`).
    query
        What to compute.
    progress
        Called with each step's name and the fraction done.

    Returns
    -------
    RouteAnalysis

    Raises
    ------
    ValidationError
        From :func:`check_route_query`, before any event is read.
    """
    def step(name: str, done: float) -> None:
        if progress is not None:
            progress(name, done)

    step("network", 0.0)
    network, crossings, warnings, source = current_network()
    start, end = query.window()
    filters = query.filters()
    n_events = int(store.count(start=start, end=end, **filters))
    previous_window = query.previous_window()
    n_previous = None
    if previous_window is not None:
        n_previous = int(store.count(start=previous_window[0], end=previous_window[1], **filters))
    check_route_query(query, max(n_events, n_previous or 0), network)
    step("events", 0.1)
    events = store.events(start=start, end=end, **filters, columns=list(ROUTE_COLUMNS))
    snapped = snap_events(events, network, tolerance_m=query.tolerance_m)
    previous = None
    share = 0.5
    if previous_window is not None:
        before = store.events(start=previous_window[0], end=previous_window[1], **filters, columns=["persons"])
        previous = snap_events(before, network, tolerance_m=query.tolerance_m)
        share = previous_window[2]
    step("corridors", 0.3)
    segments = segment_stats(network, snapped, previous, share=share)
    corridors = corridor_ranking(segments, share=share)
    step("attribution", 0.45)
    attribution = attribute_entries(network, snapped, crossings)
    table = crossing_table(attribution, crossings)
    step("flows", 0.55)
    flows = route_flows(network, snapped, attribution, crossings)
    lixels = None
    if query.network_hotspots:
        step("network hotspots", 0.65)
        lixels = network_hotspots(network, snapped, lixel_m=query.lixel_m, band_m=query.band_m)
    unsnapped = _unsnapped(snapped, network)
    if len(events) and len(unsnapped) == len(events):
        warnings.append(f"all {len(events):,} events are more than {query.tolerance_m:g} m from every road: "
                        "nothing could be placed on the network")
    elif len(unsnapped):
        warnings.append(f"{len(unsnapped):,} of {len(events):,} events are more than {query.tolerance_m:g} m "
                        "from every road and are not on the network (listed in the unsnapped layer)")
    step("done", 1.0)
    return RouteAnalysis(
        segments=segments, corridors=corridors, lixels=lixels, attribution=attribution, crossings=table,
        flows=flows, unsnapped=unsnapped, network_source=source, parameters=query.described(),
        n_events=int(len(events)), n_snapped=int(len(events) - len(unsnapped)),
        n_previous=None if previous is None else int(len(previous.events)), warnings=warnings)
