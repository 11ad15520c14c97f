"""Cost limits of the hotspot methods: what a request may ask for, checked before any work."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from geo_ibm.errors import Problem, ValidationError

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
                cells = (maxx - minx) * (maxy - miny) / size**2
            else:
                cells = area.area / size**2
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


MAX_EVENTS: dict[str, int] = {"clusters": 200_000}
"""Most events a method takes in one request: DBSCAN/HDBSCAN's neighbour searches grow faster
than the number of events (the others bin the events to a grid first)."""


_EVENT_LIMIT_NAMES = {"clusters": "clustering"}


def check_event_count(method: str, n_events: int, *, limits: Mapping[str, int] | None = None) -> None:
    """Refuse a selection of more events than ``method`` takes in one request.

    Parameters
    ----------
    limits
        Limits per method replacing :data:`MAX_EVENTS` (a deployment's configuration).

    Raises
    ------
    ValidationError
        Naming the selection's size and the limit.
    """
    limit = {**MAX_EVENTS, **(limits or {})}.get(method)
    if limit is not None and n_events > limit:
        raise ValidationError(
            f"{n_events} events are too many for {_EVENT_LIMIT_NAMES.get(method, method)} on request "
            f"(limit {limit}); narrow the period or the region",
            [Problem("too many events", column="method", value=method)],
        )
