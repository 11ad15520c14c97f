"""Large synthetic archives, generated and written one partition at a time (memory bounded by a partition).

Events are a mixture of planted hot spots (Gaussian, some growing and some fading over the
quarters, so emerging hot spot categories have something to find) and a uniform background.
``crs="EPSG:2169"`` lays them over Luxembourg; ``crs="EPSG:3035"`` (ETRS89-LAEA) over Europe,
partitioned by country as well as by quarter. The same seed gives the same archive.
"""
from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from geo_ibm import periods
from geo_ibm.archive.format import MAX_PARTITIONS, ArchiveWriter, Manifest, quarter_window
from geo_ibm.errors import Problem, ValidationError


@dataclass(frozen=True)
class Scene:
    """Where synthetic events fall: a background box and hot spot centres, spreads and trends."""

    crs: str
    box: tuple[float, float, float, float]
    centres: np.ndarray
    spread: np.ndarray
    weight: np.ndarray
    trend: np.ndarray
    background: float


LUXEMBOURG = Scene(
    crs="EPSG:2169",
    box=(50_000.0, 60_000.0, 105_000.0, 135_000.0),
    centres=np.array([[77_000, 75_000], [64_000, 66_000], [92_000, 80_000], [74_000, 110_000], [58_000, 92_000]], dtype=float),
    spread=np.array([1_500, 2_500, 1_200, 3_000, 2_000], dtype=float),
    weight=np.array([0.25, 0.15, 0.10, 0.08, 0.07]),
    trend=np.array([0.0, 0.15, -0.08, 0.25, 0.0]),
    background=0.35,
)
"""Luxembourg in EPSG:2169: five hot spots (one growing fast, one fading) over the country's box."""

EUROPE_CENTRES = {
    "BE": (3_930_000, 3_060_000), "DE": (4_321_000, 3_210_000), "ES": (3_160_000, 2_030_000),
    "FR": (3_700_000, 2_700_000), "GR": (5_500_000, 1_800_000), "HU": (5_100_000, 2_700_000),
    "IT": (4_500_000, 2_200_000), "LU": (4_040_000, 2_950_000), "PL": (5_000_000, 3_300_000),
    "AT": (4_700_000, 2_800_000),
}
"""Rough ETRS89-LAEA (EPSG:3035) centres of the countries of the European synthetic archive."""

EUROPE_BOX = (2_600_000.0, 1_400_000.0, 6_500_000.0, 5_400_000.0)


def europe_scene(country: str) -> Scene:
    """The synthetic scene of one country of the European archive (EPSG:3035)."""
    cx, cy = EUROPE_CENTRES[country]
    offsets = np.array([[0, 0], [60_000, -40_000], [-80_000, 50_000], [30_000, 90_000]], dtype=float)
    half = 250_000.0
    return Scene(
        crs="EPSG:3035",
        box=(cx - half, cy - half, cx + half, cy + half),
        centres=np.array([cx, cy]) + offsets,
        spread=np.array([15_000, 25_000, 20_000, 40_000], dtype=float),
        weight=np.array([0.2, 0.15, 0.1, 0.1]),
        trend=np.array([0.0, 0.2, -0.1, 0.05]),
        background=0.45,
    )


def scene_events(scene: Scene, n: int, *, quarter_index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic positions of ``scene`` in the ``quarter_index``-th quarter of the series."""
    weights = scene.weight * np.maximum(1.0 + scene.trend * quarter_index, 0.05)
    shares = np.append(weights, scene.background)
    picks = rng.multinomial(n, shares / shares.sum())
    x = np.empty(n)
    y = np.empty(n)
    start = 0
    for k, count in enumerate(picks):
        end = start + count
        if k < len(scene.centres):
            x[start:end] = rng.normal(scene.centres[k, 0], scene.spread[k], count)
            y[start:end] = rng.normal(scene.centres[k, 1], scene.spread[k], count)
        else:
            x[start:end] = rng.uniform(scene.box[0], scene.box[2], count)
            y[start:end] = rng.uniform(scene.box[1], scene.box[3], count)
        start = end
    order = rng.permutation(n)
    return x[order], y[order]


MAX_PARTITION_EVENTS = 20_000_000
"""Most events in one generated file (made in memory before it is written: about 1 GB at the peak)."""

BYTES_PER_EVENT = 45
"""Disk space of a generated event (x, y, time and persons uncompressed, point WKB, Parquet pages):
41.8 bytes measured for 20M and 100M events."""


def _free_bytes(directory: str | os.PathLike[str]) -> int:
    """Free space of the file system ``directory`` is (or would be) on."""
    where = os.path.abspath(os.fspath(directory))
    while not os.path.exists(where):
        parent = os.path.dirname(where)
        if parent == where:
            break
        where = parent
    return shutil.disk_usage(where).free


def write_synthetic_archive(
    directory: str | os.PathLike[str],
    *,
    n_events: int,
    partitions: int,
    crs: str = "EPSG:2169",
    first_quarter: str = "2023Q1",
    quarters: int = 12,
    seed: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Write a synthetic archive of ``n_events`` in ``partitions`` files, one file at a time.

    Parameters
    ----------
    directory
        An empty or new folder.
    n_events, partitions
        Events in total, and files to spread them over (at most one file per 1,000 events, at
        most :data:`~geo_ibm.archive.format.MAX_PARTITIONS` files and at most
        :data:`MAX_PARTITION_EVENTS` events in a file, which is generated in memory); the files
        go round-robin over the quarters (and countries) so each holds about
        ``n_events / partitions`` events. The archive must fit the free space of the disk it
        goes on (:data:`BYTES_PER_EVENT` an event).
    crs
        ``"EPSG:2169"`` (Luxembourg, partitioned by quarter) or ``"EPSG:3035"`` (Europe,
        partitioned by country and quarter).
    first_quarter, quarters
        The quarters covered (fewer when there are fewer partitions than quarters).
    progress
        Called with ``(events written, n_events)`` after each file.

    Raises
    ------
    ValidationError
        Naming ``events``, ``partitions``, ``quarters`` or ``crs``.
    """
    problems = []
    if not isinstance(n_events, int) or n_events < 1:
        problems.append(Problem("must be a whole number >= 1", column="events", value=n_events))
    if not isinstance(partitions, int) or partitions < 1 or (isinstance(n_events, int) and partitions > max(1, n_events // 1000)):
        problems.append(Problem("must be from 1 to one per 1,000 events", column="partitions", value=partitions))
    elif partitions > MAX_PARTITIONS:
        problems.append(Problem(f"at most {MAX_PARTITIONS:,} files", column="partitions", value=partitions))
    elif isinstance(n_events, int) and n_events >= 1 and -(-n_events // partitions) > MAX_PARTITION_EVENTS:
        fewest = -(-n_events // MAX_PARTITION_EVENTS)
        problems.append(Problem(f"{n_events:,} events need at least {fewest:,} files (each is made in memory, at most "
                                f"{MAX_PARTITION_EVENTS:,} events)", column="partitions", value=partitions))
    if not isinstance(quarters, int) or quarters < 1:
        problems.append(Problem("must be a whole number >= 1", column="quarters", value=quarters))
    if crs not in ("EPSG:2169", "EPSG:3035"):
        problems.append(Problem("synthetic archives are laid in EPSG:2169 or EPSG:3035", column="crs", value=crs))
    if not problems:
        need, free = n_events * BYTES_PER_EVENT, _free_bytes(directory)
        if need > free:
            problems.append(Problem(f"about {need / 1e9:,.1f} GB on disk, {free / 1e9:,.1f} GB free where the archive goes",
                                    column="events", value=n_events))
    if problems:
        raise ValidationError("cannot generate this synthetic archive", problems)
    first = periods.quarter_period(first_quarter, name="first_quarter")
    countries: list[str | None] = [*sorted(EUROPE_CENTRES)] if crs == "EPSG:3035" else [None]
    n_quarters = max(1, min(quarters, math.ceil(partitions / len(countries))))
    keys = [(country, q) for q in range(n_quarters) for country in countries][:partitions]
    writer = ArchiveWriter(directory, crs=crs, source=f"synthetic events={n_events} partitions={partitions} seed={seed}",
                           partitioning=("country", "quarter") if crs == "EPSG:3035" else ("quarter",))
    per_file, extra = divmod(n_events, partitions)
    written = 0
    for index in range(partitions):
        country, q = keys[index % len(keys)]
        label = str(first + q)
        n = per_file + (1 if index < extra else 0)
        rng = np.random.default_rng([seed, index])
        scene = europe_scene(country) if country is not None else LUXEMBOURG
        x, y = scene_events(scene, n, quarter_index=q, rng=rng)
        start, end = quarter_window(label)
        seconds = np.sort(rng.integers(start, end, n))
        writer.write({"x": x, "y": y, "observed_at": seconds * 1_000_000, "persons": 1 + rng.poisson(1.2, n)},
                     quarter=label, country=country)
        written += n
        if progress is not None:
            progress(written, n_events)
    return writer.close()


__all__ = ["EUROPE_CENTRES", "LUXEMBOURG", "Scene", "europe_scene", "scene_events", "write_synthetic_archive"]
