"""Hot spot methods over an archive: grids in the archive's CRS, sums from the cluster, statistics as for the store.

Gi* (``gi``), emerging hot spots (``emerging``) and kernel density (``kde``) bin the events on
the cluster (:mod:`geo_ibm.archive.distributed`) and run everything after the binning here on
the reduced arrays, with the same functions as the store's path (:mod:`geo_ibm.hotspots`,
:mod:`geo_ibm.emerging`, :mod:`geo_ibm.kde`), so the results have the same columns.

The grid is laid in the archive's CRS, read from its manifest: an EPSG:2169 archive covers
Luxembourg's outline as the store's analyses do; any other projected CRS (EPSG:3035 for
Europe) covers the box of the archive's points.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo_ibm import periods
from geo_ibm.analysis.budget import MAX_CUBE_CELLS, check_budget
from geo_ibm.archive.cluster import cluster_failures
from geo_ibm.archive.distributed import (
    BinTask,
    check_bytes,
    reduce_archive,
    select_partitions,
    submit_reduction,
    worker_count,
)
from geo_ibm.archive.format import Manifest, PartitionEntry
from geo_ibm.archive.lattice import (
    Lattice,
    assemble_grid,
    cached_grid,
    grid_key,
    grid_lattice,
    keep_grid,
    lattice_to_cells,
    submit_grid,
)
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.grid import GridSpec, as_area, grid_spec
from geo_ibm.hotspots import (
    CELL_STEP,
    EVENTS_PER_CELL,
    MAX_AUTO_CELLS,
    MIN_AUTO_CELLS,
    MIN_CELL,
    MIN_EVENTS,
    auto_band,
    gi_frame,
    gi_star_grid,
    validate_band,
)
from geo_ibm.settings import WORKING_CRS

if TYPE_CHECKING:
    from distributed import Client

ARCHIVE_METHODS = ("gi", "emerging", "kde")
"""The methods that run over an archive (their cost grows with the events only through binning)."""

Progress = Callable[[int, int], None]


def archive_study_area(manifest: Manifest) -> tuple[gpd.GeoDataFrame | BaseGeometry, BaseGeometry]:
    """The study area of an archive, as given to the grid builders and as one geometry.

    EPSG:2169: Luxembourg's outline (as the store's analyses); another CRS: the box of the
    archive's points (from the manifest), in that CRS.

    Raises
    ------
    ValidationError
        An archive with no points.
    """
    if manifest.crs == WORKING_CRS:
        from geo_ibm.analysis.methods import study_area

        area = study_area()
        return area, area.geometry.union_all()
    bounds = manifest.bounds
    if bounds is None:
        raise ValidationError(f"archive {manifest.root}: holds no events", [Problem("empty archive", file=manifest.root)])
    minx, miny, maxx, maxy = bounds
    pad = 1e-6 * max(maxx - minx, maxy - miny, 1.0)
    box = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    return box, box


def archive_cell(n_events: int, area: BaseGeometry) -> tuple[float, str]:
    """The automatic cell of an archive: about :data:`~geo_ibm.hotspots.EVENTS_PER_CELL` events per cell.

    The store's rule (:func:`geo_ibm.hotspots.default_cell_size`) also takes the
    nearest-neighbour cell, which needs every event in one place; for events inside the area
    the density cell decides there in practice, and it is the one used here, with the same
    rounding and the same bounds on the number of cells.
    """
    density_cell = math.sqrt(EVENTS_PER_CELL * area.area / max(n_events, 1))
    chosen = max(density_cell, MIN_CELL)
    cell = max(math.floor(chosen / CELL_STEP + 0.5) * CELL_STEP, MIN_CELL)
    method = (f"{cell:g} m: about {EVENTS_PER_CELL:g} events per cell, sqrt({EVENTS_PER_CELL:g} x area / "
              f"{n_events:,} events) = {density_cell:.0f} m rounded to {CELL_STEP:g} m (archive rule: no "
              "nearest-neighbour cell)")
    smallest = math.ceil(math.sqrt(area.area / MAX_AUTO_CELLS))
    largest = math.floor(math.sqrt(area.area / MIN_AUTO_CELLS))
    if cell < smallest:
        cell = float(smallest)
        method += f"; raised to {smallest} m to stay within {MAX_AUTO_CELLS:,} cells"
    elif cell > largest:
        cell = float(largest)
        method += f"; lowered to {largest} m to give at least {MIN_AUTO_CELLS} cells"
    return float(cell), method


def hotspots_from_archive(
    manifest: Manifest,
    *,
    client: Client,
    method: Literal["gi", "emerging", "kde"] = "gi",
    cell: float | None = None,
    band: float | None = None,
    start: object = None,
    end: object = None,
    weight: str | None = None,
    shape: Literal["square", "hex"] = "square",
    step: Literal["quarter", "month"] = "quarter",
    fdr: bool = True,
    alpha: float = 0.05,
    neighborhood_time_step: int = 1,
    progress: Progress | None = None,
) -> gpd.GeoDataFrame:
    """One hot spot method over an archive on a Dask cluster; the store path's columns, in the archive's CRS.

    Parameters
    ----------
    manifest
        The archive (:func:`geo_ibm.archive.read_manifest`).
    client
        A ``distributed.Client`` (:func:`geo_ibm.archive.dask_client`).
    method
        ``"gi"`` (columns of :func:`geo_ibm.hotspots.hotspots_from_events`), ``"emerging"``
        (of :func:`geo_ibm.emerging.emerging_hotspots`) or ``"kde"`` (density bands of
        :func:`geo_ibm.kde.density_contours`).
    cell
        Cell size in the archive's metres; ``None``: :func:`archive_cell` (KDE: a 250th of the
        study area's shorter side).
    band
        Gi* distance band (``None``: :func:`geo_ibm.hotspots.auto_band` on the reduced counts),
        or the KDE search radius (required for ``kde``: ArcGIS's default radius needs a median
        over every event).
    start, end
        Keep events observed in ``[start, end)``, ``end`` exclusive even as a date alone (as
        :func:`geo_ibm.hotspots.hotspots_from_events`; the CLI's ``--to`` day is inclusive).
    weight
        ``"persons"`` to sum persons instead of counting events.
    progress
        Called with ``(partitions done, partitions)``.

    Returns
    -------
    GeoDataFrame in the archive's CRS; ``.attrs["parameters"]`` as the store path's, plus
    ``crs``, ``archive``, ``partitions`` and ``workers``.

    Raises
    ------
    ValidationError
        Bad parameters or a cost above the budget (naming ``cell``/``band``, before any work
        is sent), too few events, a missing partition, or bad rows (by file and row).
    ClusterError
        Workers kept dying on a task (its partitions named), or the cluster went away.
    """
    request = check_archive_request(manifest, method=method, cell=cell, band=band, start=start, end=end, weight=weight,
                                    shape=shape, step=step, fdr=fdr, alpha=alpha,
                                    neighborhood_time_step=neighborhood_time_step)
    return run_archive_request(request, client=client, progress=progress)


@dataclass(frozen=True)
class ArchiveRequest:
    """An archive analysis checked before any work is sent: what :func:`run_archive_request` runs.

    Attributes
    ----------
    manifest, method
        The archive and the method (one of :data:`ARCHIVE_METHODS`).
    area, geom
        The study area as given to the grid builders, and as one geometry.
    first, after
        The window ``[first, after)`` in epoch seconds (``None``: open).
    entries
        The partitions the window selects.
    cell, band
        The cell in the archive's metres (chosen when not given) and the band or KDE radius
        (``None``: Gi*'s automatic band, chosen on the reduced counts).
    steps
        The time steps of the space-time cube (``emerging`` only).
    params
        The parameters reported with the result (``.attrs["parameters"]``), the cluster's
        workers still to add.
    """

    manifest: Manifest
    method: str
    area: gpd.GeoDataFrame | BaseGeometry = field(repr=False)
    geom: BaseGeometry = field(repr=False)
    first: int | None
    after: int | None
    entries: list[PartitionEntry] = field(repr=False)
    cell: float
    band: float | None
    weight: str | None
    shape: Literal["square", "hex"]
    step: Literal["quarter", "month"]
    steps: pd.PeriodIndex | None
    fdr: bool
    alpha: float
    neighborhood_time_step: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Rows of the selected partitions: an upper bound of the events the analysis reads."""
        return sum(p.rows for p in self.entries)


def check_archive_request(
    manifest: Manifest,
    *,
    method: str = "gi",
    cell: float | None = None,
    band: float | None = None,
    start: object = None,
    end: object = None,
    weight: str | None = None,
    shape: str = "square",
    step: str = "quarter",
    fdr: bool = True,
    alpha: float = 0.05,
    neighborhood_time_step: int = 1,
) -> ArchiveRequest:
    """Check an archive analysis and choose its sizes, from the manifest alone (no partition is read).

    Every refusal that can be decided before the binning is made here: a web form or a command
    calls this first, so that a bad or too costly request is refused (naming its parameter)
    before a cluster is asked for anything. The parameters are those of
    :func:`hotspots_from_archive`.

    Raises
    ------
    ValidationError
        Naming ``method``, ``weight``, ``shape``, ``step``, ``start``/``end``, ``cell``,
        ``band`` or ``alpha``; too few events in the selected partitions; a cost above the
        budget.
    """
    if method not in ARCHIVE_METHODS:
        raise ValidationError(f"method: {method!r} does not run over an archive; use one of {', '.join(ARCHIVE_METHODS)}",
                              [Problem("not for archives", column="method", value=method)])
    if weight not in (None, "persons"):
        raise ValidationError(f"weight: only 'persons' can be summed over an archive, got {weight!r}",
                              [Problem("unknown column", column="weight", value=weight)])
    if shape not in ("square", "hex"):
        raise ValidationError(f"shape: use 'square' or 'hex', got {shape!r}", [Problem("unknown", column="shape", value=shape)])
    if step not in ("quarter", "month"):
        raise ValidationError(f"step must be 'quarter' or 'month', got {step!r}", [Problem("unknown", column="step", value=step)])
    from geo_ibm.eventframe import check_probability

    check_probability(alpha, name="alpha")
    area, geom = archive_study_area(manifest)
    # as geo_ibm.eventframe.select_events: [start, end), end exclusive even as a date alone
    first, after = periods.epoch_window(start, end)
    entries = select_partitions(manifest, start=first, end=after)
    n_rows = sum(p.rows for p in entries)
    check_budget(method, area=geom, cell=cell, band=band)
    params: dict[str, Any] = {
        "method": method, "crs": manifest.crs, "archive": manifest.root, "partitions": len(entries),
        "start": periods.iso_or_none(start, name="start"), "end": periods.iso_or_none(end, name="end"),
        "weight": weight, "shape": shape,
    }
    common: dict[str, Any] = {"manifest": manifest, "method": method, "area": area, "geom": geom, "first": first,
                              "after": after, "entries": entries, "weight": weight, "shape": shape, "step": step,
                              "fdr": fdr, "alpha": float(alpha), "neighborhood_time_step": neighborhood_time_step,
                              "params": params}
    if method == "kde":
        from geo_ibm.eventframe import check_length

        if band is None:
            raise ValidationError("band: kernel density over an archive needs the search radius in metres (--band); "
                                  "ArcGIS's default radius needs the median distance over every event",
                                  [Problem("required for kde on an archive", column="band")])
        minx, miny, maxx, maxy = geom.bounds
        cell_m = min(maxx - minx, maxy - miny) / 250.0 if cell is None else check_length(cell, name="cell")
        radius = check_length(band, name="band")
        check_budget("kde", area=geom, cell=cell_m, band=radius)
        kde_raster_shape(geom.bounds, cell=cell_m, radius=radius)
        return ArchiveRequest(cell=float(cell_m), band=float(radius), steps=None, **common)
    # the partitions' rows bound the selection from above: refuse early, and again once counted
    _enough(n_rows)
    if cell is None:
        cell_value, params["cell_method"] = archive_cell(n_rows, geom)
        check_budget(method, area=geom, cell=cell_value, band=band)
    else:
        from geo_ibm.grid import validate_cell

        cell_value = validate_cell(cell, geom)
        params["cell_method"] = "given"
    if band is not None:
        band = validate_band(band, cell=cell_value, area=geom)
    lattice = grid_lattice(as_area(area), cell=cell_value, shape=cast(Literal["square", "hex"], shape))
    if method == "gi":
        check_bytes(lattice.n_cells, what="cell vector", parameter="cell")
        return ArchiveRequest(cell=cell_value, band=band, steps=None, **common)
    steps = _steps(manifest, step, start, end, after)
    from geo_ibm.emerging import MIN_STEPS

    if len(steps) < MIN_STEPS:
        raise ValidationError(f"only {len(steps)} {step}s to analyse, at least {MIN_STEPS} needed",
                              [Problem("too few time steps", column="step", value=len(steps))])
    # the grid's cells cover the area, so there are at least area / cell area of them: a cube
    # too large on that count is refused here; the grid's own count is judged once it is built
    cell_area = cell_value ** 2 if shape == "square" else cell_value ** 2 * math.sqrt(3) / 2
    _cube_budget(int(geom.area // cell_area), len(steps), step, cell_value)
    return ArchiveRequest(cell=cell_value, band=band, steps=steps, **common)


def _cube_budget(n_cells: int, n_steps: int, step: str, cell: float) -> None:
    n_bins = n_cells * n_steps
    if n_bins > MAX_CUBE_CELLS:
        raise ValidationError(
            f"cell: {n_cells:,} cells x {n_steps} {step}s make {n_bins:,} space-time bins; at most "
            f"{MAX_CUBE_CELLS:,} (use a larger cell or a shorter period)",
            [Problem("space-time cube too large", column="cell", value=cell)])


def run_archive_request(request: ArchiveRequest, *, client: Client, progress: Progress | None = None) -> gpd.GeoDataFrame:
    """Run a checked archive analysis (:func:`check_archive_request`) on the cluster of ``client``.

    Returns and raises as :func:`hotspots_from_archive`.
    """
    with cluster_failures(f"archive {request.manifest.root}"):
        return _run(request, client, progress)


def _run(request: ArchiveRequest, client: Client, progress: Progress | None) -> gpd.GeoDataFrame:
    req = request
    params = dict(req.params)
    params["workers"] = worker_count(client)
    if req.method == "kde":
        return _kde(req, client, params, progress)
    # the lattice needs only the area's bounds: the partitions are binned on it while the
    # cluster also clips it to the area, and the sums are mapped to the grid's cells after
    plane = as_area(req.area)
    lattice = grid_lattice(plane, cell=req.cell, shape=req.shape)
    first, after, weight = req.first, req.after, req.weight
    if req.method == "gi":
        grid, counts, used, outside = _grid_and_sums(
            req.manifest, plane, lattice, lambda spec: BinTask("cells", spec=spec, weight=weight, start=first, end=after),
            client=client, entries=req.entries, workers=params["workers"], progress=progress)
        _enough(used)
        return _gi(grid, counts, req.band, req.cell, req.geom, req.fdr,
                   params | {"n_events": used, "n_outside_grid": outside})
    steps = req.steps
    assert steps is not None

    def cube_budget(n_cells: int) -> None:
        _cube_budget(n_cells, len(steps), req.step, req.cell)

    grid, cube, used, outside = _grid_and_sums(
        req.manifest, plane, lattice,
        lambda spec: BinTask("cube", spec=spec, weight=weight, start=first, end=after, step=req.step,
                             first=steps[0].ordinal, n_steps=len(steps)),
        client=client, entries=req.entries, workers=params["workers"], progress=progress, steps=len(steps),
        budget=cube_budget)
    _enough(used)
    params.update(n_events=used, n_outside_grid=outside)
    return _emerging(grid, cube, steps, req.band, req.cell, req.geom, req.step, req.fdr, req.alpha,
                     req.neighborhood_time_step, params)


def _grid_and_sums(
    manifest: Manifest,
    plane: BaseGeometry,
    lattice: Lattice,
    make_task: Callable[[GridSpec | Lattice], BinTask],
    *,
    client: Client,
    entries: list[PartitionEntry],
    workers: int,
    progress: Progress | None,
    steps: int | None = None,
    budget: Callable[[int], None] | None = None,
) -> tuple[gpd.GeoDataFrame, np.ndarray, int, int]:
    """The grid over ``plane`` and the partitions' sums per cell (x step), both from the cluster.

    The binning is submitted on the whole lattice with the grid's clipping, and the client
    assembles the grid while the workers bin; a grid this process assembled before for the
    same area, CRS and lattice is reused (:func:`~geo_ibm.archive.lattice.cached_grid`), and
    nothing is clipped. Only when the lattice's bins would break
    ``budget`` (which then judges the grid's own cells, as before any binning) is the grid
    built first and the partitions binned on its cells.

    Returns
    -------
    ``(grid, values, events, outside)``: the grid in the archive's CRS, the sums as
    ``(n_cells,)``, or ``(n_cells, steps)`` for a cube of ``steps`` time steps, the events
    selected and those outside every cell.
    """
    on_lattice = True
    if budget is not None:
        try:
            budget(lattice.n_cells)
        except ValidationError:
            on_lattice = False
    pending = submit_reduction(manifest, make_task(lattice), client=client, entries=entries) if on_lattice else None
    key = grid_key(plane, lattice, crs=manifest.crs)
    grid = cached_grid(key)
    blocks = [] if grid is not None else submit_grid(client, plane, lattice, blocks=2 * max(1, workers))
    try:
        if grid is None:
            # the grid builders number cells in whatever metres they are given; the CRS is the archive's
            grid = assemble_grid(lattice, client.gather(blocks), crs=manifest.crs)
            keep_grid(key, grid)
        spec = grid_spec(grid)
        if pending is None:
            if budget is not None:
                budget(spec.n_cells)
            pending = submit_reduction(manifest, make_task(spec), client=client, entries=entries)
        part = pending.result(progress)
    except BaseException:
        client.cancel(blocks)
        if pending is not None:
            pending.cancel()
        raise
    values = part.values if steps is None else part.values.reshape(-1, steps)
    hits = part.hits
    if on_lattice:
        values = lattice_to_cells(values, lattice, spec)
        hits = None if hits is None else lattice_to_cells(hits, lattice, spec)
    located = int(hits.sum()) if hits is not None else int(values.sum())
    return grid, values, part.used, part.used - located


def _enough(n_events: int) -> None:
    if n_events < MIN_EVENTS:
        raise ValidationError(f"too few events for a hot spot analysis: {n_events} in the archive's selection, "
                              f"at least {MIN_EVENTS} needed", [Problem("too few events", column="events", value=n_events)])


def _steps(manifest: Manifest, step: str, start: object, end: object, after: int | None) -> pd.PeriodIndex:
    freq = {"quarter": "Q", "month": "M"}.get(step)
    if freq is None:
        raise ValidationError(f"step must be 'quarter' or 'month', got {step!r}", [Problem("unknown", column="step", value=step)])
    span = manifest.time_range
    if span is None:
        raise ValidationError(f"archive {manifest.root}: holds no events", [Problem("empty archive", file=manifest.root)])

    def local(seconds: int) -> pd.Period:
        return pd.Timestamp(seconds, unit="s", tz="UTC").tz_convert(periods.LOCAL_TZ).tz_localize(None).to_period(freq)

    # as the store's cube: from the step of start (or of the first event) to that of the last
    # instant before end (or of the last event)
    lo = periods.local_period(start, freq, name="start") if start is not None else local(span[0])
    hi = local(after - 1) if after is not None and end is not None else local(span[1])
    steps = pd.period_range(lo, hi, freq=freq)
    if len(steps) == 0:
        raise ValidationError(f"no {step} lies between start={start} and end={end}", [Problem("empty period", column="start")])
    return steps


def _gi(grid: gpd.GeoDataFrame, counts: np.ndarray, band: float | None, cell: float, geom: BaseGeometry, fdr: bool,
        params: dict[str, Any]) -> gpd.GeoDataFrame:
    spec = grid_spec(grid)
    if band is None:
        band, details = auto_band(counts, spec)
        params["band_method"] = details.pop("method")
        params["band_details"] = details
    else:
        params["band_method"] = "given"
    gi = gi_star_grid(counts, spec, band=band)
    params.update(cell=cell, band=band, n_cells=spec.n_cells, min_area_frac=0.0,
                  fdr="Benjamini-Hochberg at 0.10/0.05/0.01 over all cells" if fdr else "none")
    out = gi_frame(grid, counts, gi, fdr=fdr)
    out.attrs = {"parameters": params, "grid": spec}
    return out


def _emerging(grid: gpd.GeoDataFrame, cube: np.ndarray, steps: pd.PeriodIndex, band: float | None, cell: float,
              geom: BaseGeometry, step: str, fdr: bool, alpha: float, neighborhood_time_step: int,
              params: dict[str, Any]) -> gpd.GeoDataFrame:
    from geo_ibm.emerging import CATEGORIES, emerging_frame, space_time_gi
    from geo_ibm.eventframe import check_probability

    check_probability(alpha, name="alpha")
    spec = grid_spec(grid)
    if band is None:
        band, details = auto_band(cube.sum(axis=1), spec)
        params["band_method"] = details["method"]
    else:
        params["band_method"] = "given"
    z, p = space_time_gi(cube, spec, band=band, neighborhood_time_step=neighborhood_time_step)
    out = emerging_frame(grid, cube, z, p, alpha=alpha, fdr=fdr)
    categories = out["category"].to_numpy()
    params.update(
        cell=cell, band=band, step=step, steps=[str(s) for s in steps], neighborhood_time_step=neighborhood_time_step,
        alpha=alpha, fdr="Benjamini-Hochberg over all space-time bins" if fdr else "none",
        categories={name: int((categories == name).sum()) for name in CATEGORIES if (categories == name).any()},
    )
    out.attrs = {"parameters": params, "grid": spec}
    return out


def kde_raster_shape(bounds: tuple[float, float, float, float], *, cell: float, radius: float) -> tuple[int, int, int]:
    """The padded raster of :func:`kde_raster`: ``(rows, columns, padding cells)``.

    Raises
    ------
    ValidationError
        A raster above :data:`geo_ibm.kde.MAX_CELLS`, naming ``cell``.
    """
    from geo_ibm.kde import MAX_CELLS

    minx, miny, maxx, maxy = bounds
    cols = max(1, int(math.ceil((maxx - minx) / cell)))
    rows = max(1, int(math.ceil((maxy - miny) / cell)))
    pad = int(math.floor(radius / cell)) + 1
    prow, pcol = rows + 2 * pad, cols + 2 * pad
    if prow * pcol > MAX_CELLS:
        raise ValidationError(f"cell: {cell:g} m with radius {radius:g} m gives a {rows} x {cols} raster (padded "
                              f"{prow} x {pcol}), above {MAX_CELLS:,} cells; use a larger cell",
                              [Problem("raster too large", column="cell", value=cell)])
    return prow, pcol, pad


def kde_raster(manifest: Manifest, *, client: Client, bounds: tuple[float, float, float, float], cell: float,
               radius: float, weight: str | None = None, start: int | None = None, end: int | None = None,
               progress: Progress | None = None) -> tuple[np.ndarray, int, tuple[float, float, int]]:
    """The KDE's linear binning of the archive's events, summed over the cluster.

    The raster is the one :func:`geo_ibm.kde.density_grid` bins to: ``bounds`` split into
    ``cell``-metre cells, padded by ``floor(radius / cell) + 1`` cells on each side.

    Returns
    -------
    ``(binned, n_events, (x0, y0, pad))``: the padded raster (row 0 north), the events read
    and the unpadded grid's north-west corner and padding.

    Raises
    ------
    ValidationError
        A raster above :data:`geo_ibm.kde.MAX_CELLS`, naming ``cell``, before any work is sent.
    """
    minx, miny, maxx, maxy = bounds
    prow, pcol, pad = kde_raster_shape(bounds, cell=cell, radius=radius)
    x0, y0 = float(minx), float(maxy)
    task = BinTask("kde", weight=weight, start=start, end=end, kde_origin=(x0 - pad * cell, y0 + pad * cell),
                   kde_cell=float(cell), kde_shape=(prow, pcol))
    part = reduce_archive(manifest, task, client=client, entries=select_partitions(manifest, start=start, end=end),
                          progress=progress)
    return part.values, part.used, (x0, y0, pad)


def _kde(req: ArchiveRequest, client: Client, params: dict[str, Any], progress: Progress | None) -> gpd.GeoDataFrame:
    from scipy.signal import fftconvolve

    from geo_ibm.kde import KdeResult, _kernel_stencil, density_contours

    manifest, geom, cell_m, radius = req.manifest, req.geom, req.cell, float(req.band or 0.0)
    minx, miny, maxx, maxy = geom.bounds
    binned, used, (x0, y0, pad) = kde_raster(manifest, client=client, bounds=(minx, miny, maxx, maxy), cell=cell_m,
                                             radius=radius, weight=req.weight, start=req.first, end=req.after,
                                             progress=progress)
    rows = binned.shape[0] - 2 * pad
    cols = binned.shape[1] - 2 * pad
    smooth = fftconvolve(binned, _kernel_stencil(radius, cell_m), mode="same")
    density = np.ascontiguousarray(smooth[pad : pad + rows, pad : pad + cols])
    density[density < 1e-12 * max(float(density.max()), 1e-300)] = 0.0
    surface = KdeResult(density=density, transform=(x0, float(cell_m), 0.0, y0, 0.0, -float(cell_m)), cell=float(cell_m),
                        radius=float(radius), crs=manifest.crs, total_weight=float(used))
    xs, ys = surface.cell_centres()
    gx, gy = np.meshgrid(xs, ys)
    surface = replace(surface, inside=shapely.contains_xy(geom, gx, gy))
    result = density_contours(surface, study_area=req.area)
    params.update(cell=surface.cell, radius=surface.radius, kernel="quartic", units="events per km²", n_events=used)
    result.attrs = {"parameters": params, "surface": surface}
    return result


__all__ = ["ARCHIVE_METHODS", "ArchiveRequest", "archive_cell", "archive_study_area", "check_archive_request",
           "hotspots_from_archive", "kde_raster", "kde_raster_shape", "run_archive_request"]
