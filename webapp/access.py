"""Who may read what: the role each kind of data needs (every request needs a login)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geo_ibm.disclosure import DisclosureRule

ROLE_LAYERS = "viewer"
"""Reference layers (borders, crossings, cantons, corridors)."""

ROLE_STATS = "viewer"
"""Counts per quarter and police region."""

ROLE_HOTSPOTS = "viewer"
"""Hotspot grids, density contours, cluster hulls: aggregates."""

ROLE_EVENTS = "analyst"
"""Single interception records (time, place, group size, free-text notes): the sensitive part,
whether read raw through the JSON API, the OGC API that GIS clients page through in bulk, map
popups, tables or exports."""

ROLE_ARCHIVES = "analyst"
"""Partitioned archives (:mod:`geo_ibm.archive`): their list and summaries, and the analyses over
them (the Archives page): partners' and multi-year records are analysts' work."""

DETAIL_ROLE = ROLE_EVENTS
"""Role needed to see single records on the pages (tables, popups); viewers get aggregates."""


def configured_rule(config: Mapping[str, Any]) -> DisclosureRule:
    """The rule the app's ``DISCLOSURE_*`` settings describe (:class:`~geo_ibm.disclosure.DisclosureRule` validates it)."""
    return DisclosureRule(min_count=int(config.get("DISCLOSURE_MIN_COUNT", 5)),
                          rounding=int(config.get("DISCLOSURE_ROUNDING", 5)),
                          cell_m=float(config.get("DISCLOSURE_CELL_M", 500.0)),
                          period=config.get("DISCLOSURE_PERIOD", "quarter"))


def disclosure_rule() -> DisclosureRule | None:
    """The disclosure rule of this request's reader: ``None`` for analysts and above (full detail).

    Configured by ``DISCLOSURE_MIN_COUNT``, ``DISCLOSURE_ROUNDING``, ``DISCLOSURE_CELL_M`` and
    ``DISCLOSURE_PERIOD`` (see :mod:`geo_ibm.disclosure`).
    """
    from flask import current_app

    from webapp.auth import has_role

    if has_role(ROLE_EVENTS):
        return None
    return configured_rule(current_app.config)
