"""The shipped reference layers as the web app serves and draws them, and the known filter values."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd

from geo_ibm.errors import GeoIbmError, NotFoundError
from geo_ibm.events import CODE_LISTS
from geo_ibm.settings import OSM_ATTRIBUTION
from webapp.auth import get_store
from webapp.cache import cached


@dataclass(frozen=True)
class LayerSpec:
    """A shipped reference layer: the ``geo_ibm.layers`` function and its feature-id column."""

    function: str
    id_column: str | None
    title: str
    description: str
    attribution: str | None = None
    """Credit the data's licence requires wherever the layer is served (ODbL for OSM-derived layers)."""


LAYERS: dict[str, LayerSpec] = {
    "outline": LayerSpec("luxembourg_outline", None, "Luxembourg outline",
                         "National boundary of the Grand Duchy of Luxembourg.",
                         attribution=OSM_ATTRIBUTION),
    "borders": LayerSpec("internal_borders", "neighbour", "Internal Schengen borders",
                         "Border lines with Belgium, France and Germany, with their length in km.",
                         attribution=OSM_ATTRIBUTION),
    "tripoints": LayerSpec("tripoints", None, "Tripoints", "Points where three national borders meet.",
                           attribution=OSM_ATTRIBUTION),
    "crossings": LayerSpec("crossing_points", "crossing_id", "Border crossing points",
                           "Road, rail and path crossings of the internal borders."),
    "cantons": LayerSpec("cantons", "canton", "Cantons", "The 12 cantons with their police region.",
                         attribution=OSM_ATTRIBUTION),
    "regions": LayerSpec("police_regions", "region", "Police regions", "The Grand-Ducal Police regions.",
                         attribution=OSM_ATTRIBUTION),
    "corridors": LayerSpec("road_corridors", None, "Road corridors",
                           "Motorways and main roads crossing the internal borders."),
    "neighbours": LayerSpec("neighbour_outlines", None, "Neighbouring countries",
                            "Outlines of Belgium, France and Germany near Luxembourg.",
                            attribution=OSM_ATTRIBUTION),
}
"""The reference layers the app serves (``/api/layers/<name>``, OGC collections) and draws."""

SERVED_LAYERS: tuple[str, ...] = ("outline", "borders", "tripoints", "crossings", "cantons", "regions", "corridors")
"""Layers listed by the JSON API (the neighbours are drawn on print maps only)."""


def layer_frame(name: str) -> gpd.GeoDataFrame:
    """Reference layer ``name`` (a key of :data:`LAYERS`) in EPSG:2169, as the store's version sees it.

    Kept per store version: installing an official canton file (which changes the version)
    changes the cantons and police regions at once, in every process.

    Raises
    ------
    NotFoundError
        For an unknown layer name.
    """
    spec = LAYERS.get(name)
    if spec is None:
        raise NotFoundError(f"unknown layer {name!r}; layers: {', '.join(SERVED_LAYERS)}")

    def load() -> gpd.GeoDataFrame:
        from geo_ibm import layers

        loader: Callable[[], gpd.GeoDataFrame] = getattr(layers, spec.function)
        return loader()

    # Callers get a copy: a cached frame must never be changed in place.
    return cached(get_store(), "reference", name, load).copy()


def filter_choices() -> dict[str, list[str]]:
    """Allowed values of the code filters: the event code lists, police regions and cantons.

    Without the shipped layers, regions and cantons are left out (the store then checks the
    names against the stored events itself).
    """
    def build() -> dict[str, list[str]]:
        choices = {name: list(values) for name, values in CODE_LISTS.items()}
        try:
            choices["region"] = sorted(layer_frame("regions")["region"].astype(str).unique())
            choices["canton"] = sorted(layer_frame("cantons")["canton"].astype(str).unique())
        except GeoIbmError:
            pass
        return choices

    # Asked by every filtered request: kept per store version (canton installs change it).
    return {k: list(v) for k, v in cached(get_store(), "filter-choices", (), build).items()}
