"""Project-wide constants and settings read from the environment at call time."""
from __future__ import annotations

import math
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


def store_location(explicit: str | os.PathLike[str] | None = None) -> str | Path:
    """Where the event store is: ``explicit``, else ``GEO_IBM_STORE``, else ``instance/geo_ibm.gpkg``.

    A URL (text with ``://``, e.g. a database server) comes back as given; anything else is
    a file path.
    """
    raw = os.fspath(explicit) if explicit else os.environ.get("GEO_IBM_STORE")
    if not raw:
        return Path("instance") / "geo_ibm.gpkg"
    return raw if "://" in str(raw) else Path(raw)


def store_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Path of a file store: ``explicit``, else ``GEO_IBM_STORE``, else ``instance/geo_ibm.gpkg``.

    Also the folder of the files kept next to the store (the installed canton layer).
    """
    return Path(store_location(explicit))


def rtree_bulk_load() -> bool:
    """Whether big GeoPackage imports build the R-tree in bulk (``GEO_IBM_RTREE_BULK``, default on).

    ``0``/``no``/``off`` makes every import use SQLite's own R-tree inserts (slower, the
    reference the bulk loader is checked against).
    """
    return os.environ.get("GEO_IBM_RTREE_BULK", "1").strip().lower() not in {"0", "no", "off", "false"}


def env_number(name: str, default: float, *, integer: bool = False, minimum: float | None = None,
               positive: bool = False, what: str = "a number") -> float:
    """The number in environment variable ``name``, or ``default`` when it is unset or blank.

    Raises
    ------
    ValidationError
        Naming the variable, when the value is not a finite number (a whole one if
        ``integer``), is not above 0 when ``positive``, or is below ``minimum``.
    """
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    bad = not math.isfinite(value)
    bad = bad or (integer and not float(value).is_integer()) or (positive and not value > 0)
    bad = bad or (minimum is not None and value < minimum)
    if bad:
        from geo_ibm.errors import ValidationError

        bound = " above 0" if positive else (f" >= {minimum:g}" if minimum is not None else "")
        raise ValidationError(f"{name} must be {what}{bound}, got {raw!r}")
    return int(value) if integer else value


def margin_m() -> float:
    """Accepted distance of an event outside Luxembourg's outline (``GEO_IBM_MARGIN_M``, default 2000)."""
    return env_number("GEO_IBM_MARGIN_M", 2000.0, minimum=0, what="a number of metres")


ARCHIVE_NAME_CHARS = "letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit"


def archive_locations(raw: str | None = None) -> dict[str, str]:
    """The archives the web app offers: ``GEO_IBM_ARCHIVES`` (or ``raw``) as ``{name: location}``.

    The variable lists ``name=location`` entries separated by ``;`` (a location is a folder or
    an object-store URL, as the ``geo-ibm archive`` commands take); unset or blank: none.

    Raises
    ------
    ValidationError
        Naming the variable and the entry: no ``=``, a name of other characters than
        :data:`ARCHIVE_NAME_CHARS`, an empty location or a name given twice.
    """
    import re

    from geo_ibm.errors import Problem, ValidationError

    text = os.environ.get("GEO_IBM_ARCHIVES") if raw is None else raw
    found: dict[str, str] = {}
    for number, entry in enumerate((text or "").split(";"), start=1):
        if not entry.strip():
            continue
        name, equals, location = (part.strip() for part in entry.partition("="))
        problem = None
        if not equals or not location:
            problem = "write name=location"
        elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
            problem = f"a name is {ARCHIVE_NAME_CHARS}"
        elif name in found:
            problem = f"the name {name!r} is given twice"
        if problem is not None:
            raise ValidationError(f"GEO_IBM_ARCHIVES: entry {number} ({entry.strip()[:80]!r}): {problem}",
                                  [Problem(problem, row=number, column="GEO_IBM_ARCHIVES", value=entry.strip()[:80])])
        found[name] = location
    return found
