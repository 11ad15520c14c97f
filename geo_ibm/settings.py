"""Project-wide constants and settings read from the environment at call time."""
from __future__ import annotations

import os
from pathlib import Path

WORKING_CRS = "EPSG:2169"
"""The one CRS every analysis function takes and returns (LUREF / Luxembourg TM, metres)."""

WEB_CRS = "EPSG:4326"
"""CRS of GeoJSON output and web maps only."""

LOCAL_TZ = "Europe/Luxembourg"
"""Time zone of event timestamps given without an offset."""

OSM_ATTRIBUTION = "© OpenStreetMap contributors, ODbL 1.0"

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Folder holding the shipped data layers (``GEO_IBM_DATA`` or ``<repo>/data``)."""
    return Path(os.environ.get("GEO_IBM_DATA") or REPO_ROOT / "data")


def boundaries_dir() -> Path:
    """Folder holding the border, canton, crossing and corridor layers."""
    return data_dir() / "boundaries"


def store_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Path of the event store: ``explicit``, else ``GEO_IBM_STORE``, else ``instance/geo_ibm.gpkg``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("GEO_IBM_STORE")
    if env:
        return Path(env)
    return Path("instance") / "geo_ibm.gpkg"


def margin_m() -> float:
    """Accepted distance of an event outside Luxembourg's outline (``GEO_IBM_MARGIN_M``, default 2000)."""
    raw = os.environ.get("GEO_IBM_MARGIN_M", "2000")
    try:
        value = float(raw)
    except ValueError:
        from geo_ibm.errors import ValidationError

        raise ValidationError(f"GEO_IBM_MARGIN_M must be a number of metres, got {raw!r}") from None
    return value
