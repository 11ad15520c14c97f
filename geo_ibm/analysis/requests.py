"""Hotspot requests on the stored events: one query, the same cells for the CLI, the API, OGC and the map pages."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
import numpy as np
from shapely.geometry.base import BaseGeometry

from geo_ibm.analysis.budget import check_budget, check_event_count, check_features
from geo_ibm.analysis.methods import GRID_METHODS, METHODS, run_method, select_cells, study_area
from geo_ibm.disclosure import SAFE_COLUMNS, DisclosureRule, protect_counts, protect_filters, protect_result, widen_window
from geo_ibm.errors import GeoIbmError, NotPermittedError, Problem, ValidationError
from geo_ibm.periods import iso_or_none
from geo_ibm.selection import SELECTION_FIELDS, EventSelection

ANALYSIS_COLUMNS: tuple[str, ...] = ("observed_at", "persons")
"""Event columns the hotspot methods read besides the geometry (time for emerging hot spots and
cluster spans, persons for cluster sums): the store reads only these for an analysis."""

PAGE_METHODS: tuple[str, ...] = ("gi", "kde", "clusters", "emerging")
"""The layers of the hotspot map, in drawing order."""

SIZED_METHODS: tuple[str, ...] = ("gi", "lisa", "emerging")
"""Methods that take the query's ``cell`` and ``band`` on the hotspot map; kernel density and
clusters choose their own sizes there (a Gi* band is no sensible KDE radius or DBSCAN eps)."""


NEEDS_ANALYST_ROLE = "needs the analyst role (it shows single event positions)"
"""Why a map layer is withheld from aggregates-only readers (in ``HotspotLayers.failures``)."""

FILTER_FIELDS: tuple[str, ...] = SELECTION_FIELDS
"""Event filters a query carries, passed to ``store.events`` under the same names."""


@dataclass(frozen=True)
class HotspotQuery(EventSelection):
    """One hotspot analysis of the stored events: a method and its sizes on an :class:`EventSelection`.

    Attributes
    ----------
    method
        One of :data:`geo_ibm.analysis.METHODS`.
    cell, band
        Cell size and distance band (KDE radius, DBSCAN eps) in metres; ``None`` chooses them
        from the data with the one default rule of each method.
    seed
        Seed of LISA's permutation test.
    start, end
        Time window ``start <= observed_at < end`` (tz-aware instants; ``None`` is open).
    region
        Police region: both an event filter and the study area (else all of Luxembourg).
    quarter, canton, location_kind, entry_country, transport_mode
        Further event filters, as ``store.events`` takes them.
    """

    method: str = "gi"
    cell: float | None = None
    band: float | None = None
    seed: int = 0
    clip_only: bool = False
    """Region and canton clip the study area but do not filter the events (see
    :mod:`geo_ibm.disclosure`: a border cell then counts the same events in every map)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValidationError(f"method: unknown method {self.method!r}; use one of {', '.join(METHODS)}",
                                  [Problem("unknown method", column="method", value=self.method)])

    def store_filters(self) -> dict[str, Any]:
        """Keyword filters of ``store.events`` for this query's events."""
        return self.given(FILTER_FIELDS, skip=("region", "canton") if self.clip_only else ())

    def described(self) -> dict[str, Any]:
        """The selection as plain values, for the ``parameters`` of a result."""
        out: dict[str, Any] = {"method": self.method, "from": iso_or_none(self.start, name="from"),
                               "to": iso_or_none(self.end, name="to"), "region": self.region}
        for name in FILTER_FIELDS[2:]:
            if name != "region" and getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    def sized_for(self, method: str) -> HotspotQuery:
        """This query for ``method`` on the hotspot map: sizes only where :data:`SIZED_METHODS`."""
        if method in SIZED_METHODS:
            return replace(self, method=method)
        return replace(self, method=method, cell=None, band=None)


def protect_query(query: HotspotQuery, rule: DisclosureRule) -> HotspotQuery:
    """``query`` as an aggregates-only reader may ask it (:mod:`geo_ibm.disclosure`).

    The time window widens to whole blocks, grids use the rule's one cell, region and canton
    only clip the map.

    Raises
    ------
    NotPermittedError
        For methods whose results show single event positions (clusters).
    """
    if query.method not in SAFE_COLUMNS:
        raise NotPermittedError(
            f"method: {query.method} results show single event positions; they need the analyst role",
            [Problem("needs the analyst role", column="method", value=query.method)],
        )
    start, end = widen_window(query.start, query.end, rule)
    return replace(query, cell=float(rule.cell_m), start=start, end=end, clip_only=True)


def overview_selection(filters: dict[str, Any], rule: DisclosureRule) -> tuple[dict[str, Any], BaseGeometry | None]:
    """The store filters and the clipping area of an event map for an aggregates-only reader.

    As :func:`protect_query` does for hot spots: the time window widens to whole blocks, and a
    region or canton only clips the map (returned as its area, EPSG:2169; ``None``: the whole
    country) instead of filtering the events, so a cell on a region's border counts the same
    events in the regional and the national map.
    """
    out = protect_filters(filters, rule)
    region, canton = out.pop("region", None), out.pop("canton", None)
    if region is None and canton is None:
        return out, None
    return out, study_area(region, canton).geometry.union_all()


def check_query(query: HotspotQuery) -> gpd.GeoDataFrame:
    """Refuse a query whose sizes are too costly, before any event is read; returns its study area."""
    area = study_area(query.region, query.canton if query.clip_only else None)
    check_budget(query.method, area=area.geometry.union_all(), cell=query.cell, band=query.band)
    return area


def hotspots(store: Any, query: HotspotQuery, *, cells: str = "all",
             disclosure: DisclosureRule | None = None) -> gpd.GeoDataFrame:
    """Run ``query`` on the events of ``store``.

    Parameters
    ----------
    store
        An event store (:func:`geo_ibm.store.open_store`).
    query
        What to compute.
    cells
        For grid methods, which cells to return (:func:`geo_ibm.analysis.select_cells`).
    disclosure
        For readers who may see aggregates only: the query is protected
        (:func:`protect_query`) and so is the result (classes and protected counts only,
        :func:`geo_ibm.disclosure.protect_result`); ``parameters["disclosure"]`` states the rule.

    Returns
    -------
    geopandas.GeoDataFrame
        The method's result (columns documented by each method), EPSG:2169, with
        ``.attrs["parameters"]``: every parameter used (automatic ones included), the
        selection (``method``, ``from``, ``to``, ``region``), ``n_events``, and for grid
        methods ``n_cells`` (the whole grid) and ``cells``; ``n_features`` (rows returned).

    Raises
    ------
    ValidationError
        Sizes over the cost limits (naming ``cell`` or ``band``), too many events for the
        method, or too few events for it.
    """
    if disclosure is not None:
        query = protect_query(query, disclosure)
    area = check_query(query)
    if cells == "all" and query.method in GRID_METHODS and query.cell is not None:
        check_features(int(area.geometry.union_all().area / query.cell**2), parameter="cells")
    filters = query.store_filters()
    check_event_count(query.method, store.count(**filters), protected=disclosure is not None)
    events = store.events(**filters, columns=list(ANALYSIS_COLUMNS))
    result = _run(events, query, disclosure)
    parameters = dict(result.attrs.get("parameters", {}))
    parameters.update(query.described())
    parameters["n_events"] = int(len(events))
    if query.method in GRID_METHODS:
        parameters["n_cells"] = int(len(result))
        parameters["cells"] = cells
        result = select_cells(result, method=query.method, cells=cells)
    # An automatic cell is known only now; the method's work is bounded, the answer's size here.
    check_features(len(result), parameter="cells" if query.method in GRID_METHODS else "method")
    parameters["n_features"] = int(len(result))
    if disclosure is not None:
        parameters["n_events"] = _protected_number(parameters["n_events"], disclosure)
    result.attrs = {"parameters": parameters}
    return result


def _protected_number(value: int, rule: DisclosureRule) -> float | None:
    number = float(protect_counts([value], rule)[0])
    return None if math.isnan(number) else number


def _run(events: gpd.GeoDataFrame, query: HotspotQuery, rule: DisclosureRule | None) -> gpd.GeoDataFrame:
    """``query``'s method on ``events``; protected when ``rule`` is given."""
    canton = query.canton if query.clip_only else None
    if rule is not None and query.method == "kde":
        result = _protected_density(events, query, rule, canton=canton)
    else:
        result = run_method(events, method=query.method, cell=query.cell, band=query.band, region=query.region,
                            seed=query.seed, canton=canton)
    return protect_result(result, query.method, rule) if rule is not None else result


def _protected_density(events: gpd.GeoDataFrame, query: HotspotQuery, rule: DisclosureRule, *,
                       canton: str | None) -> gpd.GeoDataFrame:
    """Kernel density of the protected cell counts, not of event positions.

    The events are counted on the rule's national lattice, the counts protected (small ones
    dropped, others rounded) and the density computed from the cell centres weighted by them.
    """
    from geo_ibm.eventframe import event_xy
    from geo_ibm.settings import WORKING_CRS

    size = float(rule.cell_m)
    xy = event_xy(events) if len(events) else np.zeros((0, 2))
    ij = np.floor(xy / size).astype(np.int64)
    cells, counts = (np.unique(ij, axis=0, return_counts=True) if len(ij)
                     else (np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)))
    released = protect_counts(counts, rule)
    keep = np.isfinite(released) & (released > 0)
    centres = (cells[keep] + 0.5) * size
    points = gpd.GeoDataFrame({"weight": released[keep]},
                              geometry=gpd.points_from_xy(centres[:, 0], centres[:, 1]), crs=WORKING_CRS)
    from geo_ibm.kde import density_contours, kernel_density

    area = study_area(query.region, canton)
    surface = kernel_density(points, study_area=area, cell=size, radius=query.band, weights="weight")
    result = density_contours(surface, study_area=area)
    result.attrs = {"parameters": {"cell": surface.cell, "radius": surface.radius, "kernel": "quartic",
                                   "units": "events per km²", "input": "protected cell counts",
                                   "method": "kde", "region": query.region}}
    return result


@dataclass
class HotspotLayers:
    """The hotspot map's layers: one result per method that ran, and why the others did not."""

    layers: dict[str, gpd.GeoDataFrame]
    failures: dict[str, str]
    n_events: int


def hotspot_layers(store: Any, query: HotspotQuery, *, methods: tuple[str, ...] = PAGE_METHODS,
                   event_limits: Mapping[str, int] | None = None,
                   disclosure: DisclosureRule | None = None) -> HotspotLayers:
    """Every layer of the hotspot map for one selection, each as :func:`hotspots` computes it.

    The events are read once. Grid layers keep their significant cells only (the others draw
    nothing). Layer ``m`` equals ``hotspots(store, query.sized_for(m), cells="significant")``:
    the map, ``/api/hotspots`` and ``geo-ibm hotspots`` give the same cells for the same query.
    ``event_limits`` replaces limits of :data:`geo_ibm.analysis.MAX_EVENTS` (a deployment's
    configuration); a method over its limit is reported in ``failures``, the others still run.
    With ``disclosure``, every layer is protected as :func:`hotspots` protects it, and layers
    that show single event positions (clusters) are reported in ``failures``.

    Raises
    ------
    ValidationError
        Before any work, if the query's sizes are over a cost limit of a method that takes
        them (the map would otherwise silently lose a layer the user asked to size).
    """
    if disclosure is not None:
        allowed = [m for m in methods if m in SAFE_COLUMNS]
        refused = {m: NEEDS_ANALYST_ROLE for m in methods if m not in allowed}
        query = protect_query(replace(query, method=allowed[0] if allowed else "gi"), disclosure)
        methods = tuple(allowed)
    else:
        refused = {}
    for method in methods:
        check_query(query.sized_for(method))
    filters = query.store_filters()
    n_events = int(store.count(**filters))
    events = store.events(**filters, columns=list(ANALYSIS_COLUMNS))
    layers: dict[str, gpd.GeoDataFrame] = {}
    failures: dict[str, str] = dict(refused)
    for method in methods:
        sized = query.sized_for(method)
        if disclosure is not None:
            sized = replace(sized, cell=float(disclosure.cell_m))  # one fixed grid for every layer
        try:
            check_event_count(method, n_events, limits=event_limits, protected=disclosure is not None)
            result = _run(events, sized, disclosure)
        except ModuleNotFoundError as exc:
            failures[method] = f"not available in this installation ({exc.name})"
            continue
        except GeoIbmError as exc:
            failures[method] = str(exc).splitlines()[0]
            continue
        parameters = result.attrs.get("parameters", {})
        if method in GRID_METHODS:
            result = select_cells(result, method=method, cells="significant")
        shown = n_events if disclosure is None else _protected_number(n_events, disclosure)
        result.attrs = {"parameters": {**parameters, **sized.described(), "n_events": shown}}
        layers[method] = result
    return HotspotLayers(layers=layers, failures=failures, n_events=n_events)
