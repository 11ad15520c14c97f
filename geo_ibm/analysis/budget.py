"""Cost limits of the hotspot methods: what a request may ask for, checked before any work."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.hotspots import MIN_EVENTS

MAX_CELLS: dict[str, int] = {"gi": 300_000, "lisa": 50_000, "emerging": 100_000, "kde": 4_000_000}
"""Largest grid (or KDE raster) a given cell size may make, per method: beyond these one request
takes minutes and gigabytes (LISA draws ``permutations`` neighbourhoods per cell; emerging hot
spots repeat Gi* per time step)."""

MAX_BAND_CELLS = 20.0
"""Largest distance band (or KDE radius) in cells: about 1,250 neighbours per cell."""


def check_budget(method: str, *, area: Any, cell: float | None, band: float | None) -> None:
    """Refuse a cell size or band that would make ``method`` too costly to run.

    Parameters
    ----------
    method
        One of :data:`METHODS`.
    area
        Study area polygon (EPSG:2169).
    cell, band
        The sizes the user gave (``None``: automatic, already bounded by each method).

    Raises
    ------
    ValidationError
        Naming ``cell`` or ``band``, the size that would result and the limit.
    """
    limit = MAX_CELLS.get(method)
    if limit is not None and cell is not None:
        try:
            size = float(cell)
        except (TypeError, ValueError):
            return  # the method's own validation names the bad value
        if math.isfinite(size) and size > 0:
            if method == "kde":
                minx, miny, maxx, maxy = area.bounds
                extent = (maxx - minx) * (maxy - miny)
            else:
                extent = area.area
            # Divided twice, not by size**2: a tiny cell's square underflows to 0 (a ZeroDivisionError),
            # while the quotient overflows to inf cells, which the limit refuses.
            cells = extent / size / size
            if cells > limit:
                smallest = math.ceil(math.sqrt(area.area / limit))
                raise ValidationError(
                    f"cell: {size:g} m makes about {cells:,.0f} cells over the study area; {method} accepts at "
                    f"most {limit:,} (use a cell of at least {smallest} m, or a smaller region)",
                    [Problem("too many cells", column="cell", value=cell)],
                )
    if band is not None and cell is not None and method != "clusters":
        try:
            ratio = float(band) / float(cell)
        except (TypeError, ValueError, ZeroDivisionError):
            return
        if math.isfinite(ratio) and ratio > MAX_BAND_CELLS:
            raise ValidationError(
                f"band: {float(band):g} m is {ratio:.0f} cells of {float(cell):g} m; at most {MAX_BAND_CELLS:g} "
                f"cells (use a larger cell or a smaller band)",
                [Problem("band too wide for the cell", column="band", value=band)],
            )


MAX_LISA_DRAWS = 1e9
"""Most neighbour draws of LISA's permutation test (cells x neighbours x permutations); measured
here about 7e7 draws a second: at most about 15 seconds of work."""

MAX_CUBE_CELLS = 3_000_000
"""Most space-time bins (cells x time steps) of an emerging hot spot analysis."""

MAX_PAIRS = 20_000_000
"""Most pairs of events within DBSCAN's ``eps``: scikit-learn keeps every pair's index (about
16 bytes a pair measured here, so some 320 MB)."""

MAX_FEATURES = 50_000
"""Most features one response serialises (about 0.5 KB of GeoJSON each): ``cells=all`` on a
fine grid would otherwise send tens of megabytes and take as many seconds."""

MAX_PIXELS = 30_000_000
"""Largest raster print map (width x height in pixels): A3 at 300 dpi is 17 million."""

MAX_EVENTS: dict[str, int] = {"clusters": 200_000}
"""Most events a method takes in one request: DBSCAN/HDBSCAN's neighbour searches grow faster
than the number of events (the others bin the events to a grid first)."""


_EVENT_LIMIT_NAMES = {"clusters": "clustering"}


FEWEST_EVENTS: dict[str, int] = {"gi": MIN_EVENTS, "lisa": MIN_EVENTS, "emerging": MIN_EVENTS}
"""Fewest events each method analyses (the methods themselves check it too, naming the count)."""


def check_event_count(method: str, n_events: int, *, limits: Mapping[str, int] | None = None,
                      protected: bool = False) -> None:
    """Refuse a selection of more events than ``method`` takes in one request.

    Parameters
    ----------
    limits
        Limits per method replacing :data:`MAX_EVENTS` (a deployment's configuration).
    protected
        The reader sees aggregates only (:mod:`geo_ibm.disclosure`): the selection is also
        refused here when it has fewer events than the method needs (:data:`FEWEST_EVENTS`),
        and neither message gives its exact size (a count the reader may not see: a
        differencing of two selections would otherwise single out an event).

    Raises
    ------
    ValidationError
        Naming the selection's size (unless ``protected``) and the limit.
    """
    name = _EVENT_LIMIT_NAMES.get(method, method)
    limit = {**MAX_EVENTS, **(limits or {})}.get(method)
    if limit is not None and n_events > limit:
        size = f"more than {limit} events" if protected else f"{n_events} events"
        raise ValidationError(
            f"{size} are too many for {name} on request (limit {limit}); narrow the period or the region",
            [Problem("too many events", column="method", value=method)],
        )
    fewest = FEWEST_EVENTS.get(method)
    if protected and fewest is not None and n_events < fewest:
        raise ValidationError(
            f"too few events for {name} in this selection: fewer than {fewest}; widen the period or the region",
            [Problem("too few events", column="events")],
        )


def check_pairs(xy: Any, eps: float, *, limit: int = MAX_PAIRS, seed: int = 0) -> int:
    """Refuse a DBSCAN ``eps`` that makes more than ``limit`` pairs of events; returns the estimate.

    The pairs within ``eps`` are counted for a random sample of at most 5,000 events against
    all of them (a dual-tree count, no pair is stored) and scaled to the whole selection:
    the estimate costs a fraction of a second where the clustering would take gigabytes.

    Raises
    ------
    ValidationError
        Naming ``band`` (DBSCAN's ``eps``), the estimate and the limit.
    """
    import numpy as np
    from scipy.spatial import cKDTree

    points = np.asarray(xy, dtype=float)
    n = len(points)
    if n == 0:
        return 0
    rng = np.random.default_rng(seed)
    sample = points if n <= 5_000 else points[rng.choice(n, 5_000, replace=False)]
    counted = cKDTree(sample).count_neighbors(cKDTree(points), float(eps))
    estimate = int(round(float(counted) * n / len(sample)))
    if estimate > limit:
        raise ValidationError(
            f"band: {float(eps):g} m puts about {estimate:,} pairs of the {n:,} events within reach of each other; "
            f"clustering accepts at most {limit:,} (use a smaller band, or a shorter period or smaller region)",
            [Problem("too many neighbour pairs", column="band", value=eps)],
        )
    return estimate


def check_features(n_features: int, *, limit: int = MAX_FEATURES, parameter: str = "cells") -> None:
    """Refuse a response of more than ``limit`` features, naming ``parameter``."""
    if n_features > limit:
        raise ValidationError(
            f"{parameter}: the answer would hold {n_features:,} features; at most {limit:,} are sent at once "
            "(use cells=significant or nonzero, a larger cell or a smaller region)",
            [Problem("answer too large", column=parameter, value=n_features)],
        )


def check_pixels(width_px: float, height_px: float, *, limit: int = MAX_PIXELS) -> None:
    """Refuse a raster image of more than ``limit`` pixels, naming ``dpi``."""
    pixels = float(width_px) * float(height_px)
    if pixels > limit:
        raise ValidationError(
            f"dpi: the map would be {width_px:,.0f} x {height_px:,.0f} = {pixels:,.0f} pixels; at most {limit:,} "
            "(lower dpi or width_mm, or ask for SVG or PDF)",
            [Problem("image too large", column="dpi", value=pixels)],
        )
