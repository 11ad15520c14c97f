"""Grids over an archive built on the cluster: the full lattice the workers bin on, and the clipped cells in blocks.

The partitions are binned on the grid's whole bounding lattice, which only needs the study
area's bounds and the cell, so the binning starts before the grid itself exists. Clipping the
lattice to the study area is cut into blocks of lattice rows that run as tasks next to the
binning; the client only assembles the blocks and maps the lattice sums to the grid's cells.

The result is :func:`geo_ibm.grid.make_grid`'s grid to the bit. The cells the study area's
boundary may reach go through the same shapely calls as there (``contains_properly``,
``intersects``, :func:`geo_ibm.grid.clip_cells`); every other cell lies wholly inside or
wholly outside the area, and one centre per connected run of such cells says which, so the
shapely work scales with the boundary's length instead of the lattice's area.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import geopandas as gpd
import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from geo_ibm.grid import GridSpec, cell_centres, cell_polygons, clip_cells, hex_row_col, lattice_extent
from geo_ibm.settings import WORKING_CRS

if TYPE_CHECKING:
    from distributed import Client, Future

Shape = Literal["square", "hex"]

_SQRT3 = math.sqrt(3.0)

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


def boundary_cells(area: BaseGeometry, lattice: Lattice) -> np.ndarray:
    """``(rows, cols)`` lattice positions of every cell that the boundary of ``area`` may meet (with repeats).

    The boundary is sampled every quarter cell; a cell the boundary meets lies within one row
    and one column of a sample's cell: for squares a sample within an eighth of a cell of the
    meeting point is at most one cell away in each direction; for hexagons their centres lie
    within two circumradii and an eighth of a cell (1.28 cells), nearer than any hexagon but
    the six around (1.73 cells), and those are within one row and one column in odd-r offset.
    """
    samples = shapely.get_coordinates(shapely.segmentize(area.boundary, lattice.cell / 4))
    dx = samples[:, 0] - lattice.x0
    dy = samples[:, 1] - lattice.y0
    if lattice.shape == "square":
        rows, cols = np.floor(dy / lattice.cell), np.floor(dx / lattice.cell)
    else:
        rows, cols = hex_row_col(dx, dy, lattice.cell)
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    offsets = np.array([(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)])
    rows = (rows[:, None] + offsets[None, :, 0]).ravel()
    cols = (cols[:, None] + offsets[None, :, 1]).ravel()
    ok = (rows >= 0) & (rows < lattice.n_rows) & (cols >= 0) & (cols < lattice.n_cols)
    return np.stack([rows[ok], cols[ok]])


def clip_block(area: BaseGeometry | bytes, lattice: Lattice, first_row: int, stop_row: int) -> GridBlock:
    """Clip lattice rows ``[first_row, stop_row)`` to ``area`` (a geometry or its WKB) as :func:`geo_ibm.grid.make_grid` does.

    Runs as a task; the area is rebuilt from WKB in each task, so that no two threads prepare one
    shapely object.
    """
    if isinstance(area, bytes):
        area = shapely.from_wkb(area)
    shapely.prepare(area)
    n_cols, height = lattice.n_cols, stop_row - first_row
    offset = first_row * n_cols
    near = np.zeros((height, n_cols), dtype=bool)
    rows, cols = boundary_cells(area, lattice)
    mine = (rows >= first_row) & (rows < stop_row)
    near[rows[mine] - first_row, cols[mine]] = True
    keep = np.zeros(height * n_cols, dtype=bool)
    frac = np.zeros(height * n_cols)
    cut = np.zeros(height * n_cols, dtype=bool)
    # cells the boundary does not reach: each edge-connected run of them lies on one side of it
    runs, n_runs = ndimage.label(~near)
    if n_runs:
        labels = runs.ravel()
        members = np.flatnonzero(labels)
        _, first = np.unique(labels[members], return_index=True)
        heads = members[first]
        head_rows, head_cols = np.divmod(heads, n_cols)
        centres = cell_centres(lattice.shape, lattice.cell, lattice.x0, lattice.y0, head_rows + first_row, head_cols)
        inside_runs = np.concatenate([[False], shapely.contains_xy(area, centres[:, 0], centres[:, 1])])
        whole = inside_runs[labels]
        keep[whole] = True
        frac[whole] = 1.0
    # the cells it may reach: as geo_ibm.grid's builder, call for call
    flat = np.flatnonzero(near.ravel())
    near_rows, near_cols = np.divmod(flat, n_cols)
    polys = cell_polygons(lattice.shape, lattice.cell, lattice.x0, lattice.y0, near_rows + first_row, near_cols)
    inside = shapely.contains_properly(area, polys)
    touching = ~inside & shapely.intersects(area, polys)
    clipped = clip_cells(polys[touching], area, shape=lattice.shape)
    full_area = lattice.cell**2 if lattice.shape == "square" else lattice.cell**2 * _SQRT3 / 2
    shares = shapely.area(clipped) / full_area
    keep[flat[inside]] = True
    frac[flat[inside]] = 1.0
    kept_cut = flat[touching][shares > 1e-9]
    keep[kept_cut] = True
    frac[kept_cut] = shares[shares > 1e-9]
    cut[kept_cut] = True
    kept = np.flatnonzero(keep)
    return GridBlock(kept + offset, frac[kept], cut[kept], np.asarray(shapely.to_wkb(clipped[shares > 1e-9]), dtype=object))


def submit_grid(client: Client, area: BaseGeometry, lattice: Lattice, *, blocks: int) -> list[Future]:
    """Send the clipping of ``lattice`` to ``area`` to the cluster as about ``blocks`` tasks of whole rows.

    The tasks go ahead of anything submitted at normal priority; :func:`assemble_grid`
    collects them.
    """
    per_block = max(1, math.ceil(lattice.n_rows / max(1, blocks)), math.ceil(MIN_BLOCK_CELLS / max(1, lattice.n_cols)))
    shared = client.scatter(shapely.to_wkb(area), broadcast=True, hash=False)
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


def lattice_to_cells(values: np.ndarray, lattice: Lattice, grid: GridSpec) -> np.ndarray:
    """Per-lattice-cell sums (``(n_lattice,)`` or ``(n_lattice, k)``) as the grid's cells, in ``cell_id`` order."""
    return values[grid.rows * lattice.n_cols + grid.cols]


__all__ = [
    "GridBlock", "Lattice", "assemble_grid", "boundary_cells", "clip_block", "grid_lattice", "lattice_to_cells",
    "submit_grid",
]
