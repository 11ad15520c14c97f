"""geo_ibm: geospatial analysis for Luxembourg's Integrated Border Management.

All analysis runs in EPSG:2169 (LUREF / Luxembourg TM, metres); EPSG:4326 is used only at the
web edge (GeoJSON output, web maps).
"""
from __future__ import annotations

from geo_ibm.errors import GeoIbmError, ValidationError
from geo_ibm.settings import WEB_CRS, WORKING_CRS

__all__ = ["GeoIbmError", "ValidationError", "WORKING_CRS", "WEB_CRS", "__version__"]
__version__ = "0.1.0"
