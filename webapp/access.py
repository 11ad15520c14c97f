"""Who may read what: the role each kind of data needs (every request needs a login)."""
from __future__ import annotations

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

DETAIL_ROLE = ROLE_EVENTS
"""Role needed to see single records on the pages (tables, popups); viewers get aggregates."""
