"""The OpenStreetMap road network installed next to the store (``geo-ibm roads import``)."""
from __future__ import annotations

import geopandas as gpd


def installed_roads() -> gpd.GeoDataFrame | None:
    """The installed road layer (:data:`geo_ibm.network.roads.ROAD_COLUMNS`), ``None`` when none is installed."""
    return None
