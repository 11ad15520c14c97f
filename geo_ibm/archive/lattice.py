"""Grids over an archive built on the cluster: the full lattice the workers bin on, and the clipped cells in blocks.

The partitions are binned on the grid's whole bounding lattice, which only needs the study
area's bounds and the cell, so the binning starts before the grid itself exists. Clipping the
lattice to the study area is cut into blocks of lattice rows that run as tasks next to the
binning; the client only assembles the blocks and maps the lattice sums to the grid's cells.

The result is :func:`geo_ibm.grid.make_grid`'s grid to the bit: each block is clipped by
:func:`geo_ibm.grid.clip_rows`, the routine ``make_grid`` runs over all the rows at once (only
the cells the boundary may reach go through shapely).

A process keeps the grids it assembled (:func:`cached_grid`, :func:`keep_grid`), at most
:data:`GRID_CACHE_CELLS` cells in all: the same archive analysed again at the same cell and
shape (the web app's analysts, a series of analyses from one script) reuses its grid instead
of clipping it again on the cluster and assembling it in the client.
"""
from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo_ibm.archive.cluster import hold
from geo_ibm.grid import GridSpec, cell_polygons, clip_rows, lattice_extent
from geo_ibm.settings import WORKING_CRS

if TYPE_CHECKING:
    from distributed import Client, Future

Shape = Literal["square", "hex"]

MIN_BLOCK_CELLS = 20_000
"""Fewest lattice cells a block task clips (smaller blocks cost more in task overhead than they save)."""


@dataclass(frozen=True)
class Lattice:
    """The full lattice under a grid: anchor, cell, rows and columns, as in :class:`geo_ibm.grid.GridSpec`."""

    shape: Shape
    cell: float
    x0: float
    y0: float
    n_rows: int
    n_cols: int

    @property
    def n_cells(self) -> int:
        return self.n_rows * self.n_cols

    def spec(self) -> GridSpec:
        """The lattice as a :class:`~geo_ibm.grid.GridSpec` keeping every cell, ``cell_id = row * n_cols + col``.

        Binning with it (:func:`geo_ibm.grid.locate`) gives per-lattice-cell sums that
        :func:`lattice_to_cells` maps to the grid's cells.
        """
        flat = np.arange(self.n_cells, dtype=np.int64)
        rows, cols = np.divmod(flat, self.n_cols)
        return GridSpec(self.shape, self.cell, self.x0, self.y0, self.n_rows, self.n_cols,
                        flat.reshape(self.n_rows, self.n_cols), rows, cols)


def grid_lattice(area: BaseGeometry, *, cell: float, shape: Shape = "square") -> Lattice:
    """The lattice of :func:`geo_ibm.grid.make_grid`'s grid over ``area``: same anchor, rows and columns.

    Raises
    ------
    ValidationError
        Naming ``cell`` when the lattice would exceed :data:`geo_ibm.grid.MAX_LATTICE_CELLS`.
    """
    size = float(cell)
    # the lattice of geo_ibm.grid's builder, so that the lattice and the grid's line up exactly
    x0, y0, n_rows, n_cols = lattice_extent(area.bounds, cell=size, shape=shape)
    return Lattice(shape, size, x0, y0, n_rows, n_cols)


@dataclass
class GridBlock:
    """The kept cells of some lattice rows: lattice positions (ascending), area shares, clipped shapes.

    ``clipped`` holds the WKB of the cells cut by the study area's boundary (``cut`` flags them
    among ``flat``); the whole cells are plain lattice cells and are rebuilt by the client.
    """

    flat: np.ndarray
    frac: np.ndarray
    cut: np.ndarray
    clipped: np.ndarray = field(repr=False)


def clip_block(area: BaseGeometry | bytes, lattice: Lattice, first_row: int, stop_row: int) -> GridBlock:
    """Clip lattice rows ``[first_row, stop_row)`` to ``area`` (a geometry or its WKB) as :func:`geo_ibm.grid.make_grid` does.

    Runs as a task (:func:`geo_ibm.grid.clip_rows`, the routine ``make_grid`` itself uses); the
    area is rebuilt from WKB in each task, so that no two threads prepare one shapely object.
    """
    if isinstance(area, bytes):
        area = shapely.from_wkb(area)
    shapely.prepare(area)
    part = clip_rows(area, shape=lattice.shape, cell=lattice.cell, x0=lattice.x0, y0=lattice.y0, n_rows=lattice.n_rows,
                     n_cols=lattice.n_cols, first_row=first_row, stop_row=stop_row)
    return GridBlock(part.flat, part.frac, part.cut, np.asarray(shapely.to_wkb(part.clipped), dtype=object))


def submit_grid(client: Client, area: BaseGeometry, lattice: Lattice, *, blocks: int) -> list[Future]:
    """Send the clipping of ``lattice`` to ``area`` to the cluster as about ``blocks`` tasks of whole rows.

    The tasks go ahead of anything submitted at normal priority; :func:`assemble_grid`
    collects them.
    """
    per_block = max(1, math.ceil(lattice.n_rows / max(1, blocks)), math.ceil(MIN_BLOCK_CELLS / max(1, lattice.n_cols)))
    # held by a task, not scattered: rebuilt if the worker holding it dies
    shared = hold(client, shapely.to_wkb(area), priority=10)
    starts = range(0, lattice.n_rows, per_block)
    return [client.submit(clip_block, shared, lattice, r, min(r + per_block, lattice.n_rows), pure=False, priority=10)
            for r in starts]


def assemble_grid(lattice: Lattice, blocks: list[GridBlock], *, crs: str = WORKING_CRS) -> gpd.GeoDataFrame:
    """The grid of the clipped blocks (in lattice row order): :func:`geo_ibm.grid.make_grid`'s columns and spec.

    ``crs`` is the CRS of the lattice's metres (an archive's own).
    """
    flat = np.concatenate([b.flat for b in blocks])
    frac = np.concatenate([b.frac for b in blocks])
    cut = np.concatenate([b.cut for b in blocks])
    rows, cols = np.divmod(flat, lattice.n_cols)
    geometry = cell_polygons(lattice.shape, lattice.cell, lattice.x0, lattice.y0, rows, cols)
    geometry[cut] = shapely.from_wkb(np.concatenate([b.clipped for b in blocks]))
    lookup = np.full((lattice.n_rows, lattice.n_cols), -1, dtype=np.int64)
    lookup[rows, cols] = np.arange(rows.size)
    spec = GridSpec(lattice.shape, lattice.cell, lattice.x0, lattice.y0, lattice.n_rows, lattice.n_cols, lookup, rows, cols)
    out = gpd.GeoDataFrame(
        {"cell_id": np.arange(rows.size, dtype=np.int64), "row": rows, "col": cols, "area_frac": np.minimum(frac, 1.0)},
        geometry=geometry,
        crs=crs,
    )
    out.attrs["grid"] = spec
    return out


GRID_CACHE_CELLS = 400_000
"""Most grid cells the grids kept in one process hold together: about 530 bytes a cell of
resident memory (the polygon, its GEOS object, four columns, the lookup), measured on the
66,112 cells of 200 m over Luxembourg (35 MB), so at most about 210 MB. A grid larger than
this alone is not kept."""

GridKey = tuple[str, str, str, float, float, float, int, int]

_grids: OrderedDict[GridKey, gpd.GeoDataFrame] = OrderedDict()
_grids_lock = threading.Lock()


def grid_key(area: BaseGeometry, lattice: Lattice, *, crs: str) -> GridKey:
    """What a grid depends on: the CRS, the study area (a digest of its WKB) and the lattice."""
    digest = hashlib.sha256(shapely.to_wkb(area, hex=False, output_dimension=2)).hexdigest()
    return (crs, digest, lattice.shape, lattice.cell, lattice.x0, lattice.y0, lattice.n_rows, lattice.n_cols)


def cached_grid(key: GridKey) -> gpd.GeoDataFrame | None:
    """The grid kept under ``key`` (a copy sharing its geometries: a caller may add columns), or ``None``."""
    with _grids_lock:
        grid = _grids.get(key)
        if grid is None:
            return None
        _grids.move_to_end(key)
    copy = grid.copy(deep=False)
    copy.attrs = {"grid": grid.attrs["grid"]}
    return copy


def keep_grid(key: GridKey, grid: gpd.GeoDataFrame, *, limit: int = GRID_CACHE_CELLS) -> None:
    """Keep ``grid`` under ``key``, forgetting the grids used longest ago beyond ``limit`` cells in all."""
    if len(grid) > limit:
        return
    kept = grid.copy(deep=False)
    kept.attrs = {"grid": grid.attrs["grid"]}
    with _grids_lock:
        _grids[key] = kept
        _grids.move_to_end(key)
        while sum(len(g) for g in _grids.values()) > limit:
            _grids.popitem(last=False)


def clear_grid_cache() -> None:
    """Forget every grid this process kept."""
    with _grids_lock:
        _grids.clear()


def lattice_to_cells(values: np.ndarray, lattice: Lattice, grid: GridSpec) -> np.ndarray:
    """Per-lattice-cell sums (``(n_lattice,)`` or ``(n_lattice, k)``) as the grid's cells, in ``cell_id`` order."""
    return values[grid.rows * lattice.n_cols + grid.cols]


__all__ = [
    "GRID_CACHE_CELLS", "GridBlock", "GridKey", "Lattice", "assemble_grid", "cached_grid", "clear_grid_cache", "clip_block",
    "grid_key", "grid_lattice", "keep_grid", "lattice_to_cells", "submit_grid",
]
