"""Grids over an archive built on the cluster: the full lattice the workers bin on, and the clipped cells in blocks.

The partitions are binned on the grid's whole bounding lattice, which only needs the study
area's bounds and the cell, so the binning starts before the grid itself exists. Clipping the
lattice to the study area (shapely predicates and intersections, about a second for 200 m
cells over Luxembourg) is cut into blocks of lattice rows that run as tasks next to the
binning; the client only assembles the blocks and maps the lattice sums to the grid's cells.
The result is :func:`geo_ibm.grid.make_grid`'s grid, cell for cell: each cell goes through the
same shapely calls on the same inputs, only in other batches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.grid import MAX_LATTICE_CELLS, GridSpec, _cell_polygons
from geo_ibm.settings import WORKING_CRS

if TYPE_CHECKING:
    from distributed import Client, Future

Shape = Literal["square", "hex"]

_SQRT3 = math.sqrt(3.0)

MIN_BLOCK_CELLS = 20_000
"""Fewest lattice cells a block task clips (smaller blocks cost more in task overhead than they save)."""


def grid_lattice(area: BaseGeometry, *, cell: float, shape: Shape = "square") -> GridSpec:
    """The full lattice under :func:`geo_ibm.grid.make_grid`'s grid of ``area``, every cell kept.

    Same anchor, rows and columns as ``grid_spec(make_grid(area, cell=cell, shape=shape))``;
    ``cell_id`` is the lattice position ``row * n_cols + col``, so binning with it (or
    :func:`geo_ibm.grid.locate`) gives per-lattice-cell sums that :func:`lattice_to_cells`
    maps to the grid.

    Raises
    ------
    ValidationError
        Naming ``cell`` when the lattice would exceed :data:`geo_ibm.grid.MAX_LATTICE_CELLS`.
    """
    minx, miny, maxx, maxy = area.bounds
    size = float(cell)
    # as geo_ibm.grid's builder, so that the lattice and the grid's line up exactly
    if shape == "square":
        x0 = math.floor(minx / size) * size
        y0 = math.floor(miny / size) * size
        n_cols = int(math.floor((maxx - x0) / size)) + 1
        n_rows = int(math.floor((maxy - y0) / size)) + 1
    else:
        dy = size * _SQRT3 / 2
        x0 = math.floor(minx / size) * size - size
        y0 = math.floor(miny / dy) * dy - dy
        n_cols = int(math.ceil((maxx - x0) / size)) + 2
        n_rows = int(math.ceil((maxy - y0) / dy)) + 2
    if n_rows * n_cols > MAX_LATTICE_CELLS:
        raise ValidationError(
            f"cell={size:g} m is too small for this study area ({n_rows * n_cols} lattice cells, "
            f"limit {MAX_LATTICE_CELLS})",
            [Problem("too small", column="cell", value=cell)],
        )
    flat = np.arange(n_rows * n_cols, dtype=np.int64)
    rows, cols = np.divmod(flat, n_cols)
    return GridSpec(shape, size, x0, y0, n_rows, n_cols, flat.reshape(n_rows, n_cols), rows, cols)


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


def clip_block(area: BaseGeometry | bytes, lattice: GridSpec, first_row: int, stop_row: int) -> GridBlock:
    """Clip lattice rows ``[first_row, stop_row)`` to ``area`` (a geometry or its WKB) as :func:`geo_ibm.grid.make_grid` does.

    Runs as a task; the area is rebuilt from WKB in each task, so that no two threads prepare one
    shapely object.
    """
    if isinstance(area, bytes):
        area = shapely.from_wkb(area)
    n_cols = lattice.n_cols
    flat = np.arange(first_row * n_cols, stop_row * n_cols, dtype=np.int64)
    rows, cols = np.divmod(flat, n_cols)
    polys = _cell_polygons(lattice.shape, lattice.cell, lattice.x0, lattice.y0, rows, cols)
    shapely.prepare(area)
    inside = shapely.contains_properly(area, polys)
    touching = ~inside & shapely.intersects(area, polys)
    clipped = shapely.intersection(polys[touching], area)
    full_area = lattice.cell**2 if lattice.shape == "square" else lattice.cell**2 * _SQRT3 / 2
    frac = np.zeros(polys.shape)
    frac[inside] = 1.0
    frac[touching] = shapely.area(clipped) / full_area
    keep = inside | (touching & (frac > 1e-9))
    kept_clipped = clipped[frac[touching] > 1e-9]
    return GridBlock(flat[keep], frac[keep], touching[keep], np.asarray(shapely.to_wkb(kept_clipped), dtype=object))


def submit_grid(client: Client, area: BaseGeometry, lattice: GridSpec, *, blocks: int) -> list[Future]:
    """Send the clipping of ``lattice`` to ``area`` to the cluster as about ``blocks`` tasks of whole rows.

    The tasks go ahead of anything submitted before at normal priority; :func:`assemble_grid`
    collects them.
    """
    per_block = max(1, math.ceil(lattice.n_rows / max(1, blocks)), math.ceil(MIN_BLOCK_CELLS / max(1, lattice.n_cols)))
    shared = client.scatter(shapely.to_wkb(area), broadcast=True, hash=False)
    starts = range(0, lattice.n_rows, per_block)
    return [client.submit(clip_block, shared, lattice, r, min(r + per_block, lattice.n_rows), pure=False, priority=10)
            for r in starts]


def assemble_grid(lattice: GridSpec, blocks: list[GridBlock]) -> gpd.GeoDataFrame:
    """The grid of the clipped blocks (in lattice row order): :func:`geo_ibm.grid.make_grid`'s columns and spec."""
    flat = np.concatenate([b.flat for b in blocks])
    frac = np.concatenate([b.frac for b in blocks])
    cut = np.concatenate([b.cut for b in blocks])
    rows, cols = np.divmod(flat, lattice.n_cols)
    geometry = _cell_polygons(lattice.shape, lattice.cell, lattice.x0, lattice.y0, rows, cols)
    geometry[cut] = shapely.from_wkb(np.concatenate([b.clipped for b in blocks]))
    lookup = np.full((lattice.n_rows, lattice.n_cols), -1, dtype=np.int64)
    lookup[rows, cols] = np.arange(rows.size)
    spec = GridSpec(lattice.shape, lattice.cell, lattice.x0, lattice.y0, lattice.n_rows, lattice.n_cols, lookup, rows, cols)
    out = gpd.GeoDataFrame(
        {"cell_id": np.arange(rows.size, dtype=np.int64), "row": rows, "col": cols, "area_frac": np.minimum(frac, 1.0)},
        geometry=geometry,
        crs=WORKING_CRS,
    )
    out.attrs["grid"] = spec
    return out


def lattice_to_cells(values: np.ndarray, lattice: GridSpec, grid: GridSpec) -> np.ndarray:
    """Per-lattice-cell sums (``(n_lattice,)`` or ``(n_lattice, k)``) as the grid's cells, in ``cell_id`` order."""
    return values[grid.rows * lattice.n_cols + grid.cols]


__all__ = ["GridBlock", "assemble_grid", "clip_block", "grid_lattice", "lattice_to_cells", "submit_grid"]
