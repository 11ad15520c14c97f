"""Coordinate transformations between the working CRS (EPSG:2169) and others, each built once per thread.

Building a pyproj ``Transformer`` costs about 100 ms (it searches the PROJ database); the
transformation of a thousand points afterwards costs microseconds. Every module that moves
coordinates between CRSs takes its transformer here, so a web request never pays the build.
"""
from __future__ import annotations

import threading

import numpy as np
from pyproj import Transformer

from geo_ibm.settings import WEB_CRS, WORKING_CRS

_local = threading.local()


def transformer(source: str, target: str) -> Transformer:
    """The ``always_xy`` transformer from ``source`` to ``target``, kept per thread (pyproj objects
    are not shared between threads)."""
    cache: dict[tuple[str, str], Transformer] = _local.__dict__.setdefault("transformers", {})
    key = (str(source), str(target))
    if key not in cache:
        cache[key] = Transformer.from_crs(source, target, always_xy=True)
    return cache[key]


def to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:2169 metres to WGS84 longitude/latitude, vectorised."""
    lon, lat = transformer(WORKING_CRS, WEB_CRS).transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.asarray(lon), np.asarray(lat)


def to_working(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 longitude/latitude to EPSG:2169 metres, vectorised."""
    x, y = transformer(WEB_CRS, WORKING_CRS).transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.asarray(x), np.asarray(y)
