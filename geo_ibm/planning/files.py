"""Disk access of the planning domain: candidate and demand point files, plan outputs (through geo_ibm.io)."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io import PathLike, neutralise_formulas, read_parameters, read_vector, write_table, write_vector
from geo_ibm.settings import boundaries_dir

POINT_SUFFIXES = (".csv", ".geojson", ".json", ".gpkg")
MAX_POINT_FILE_BYTES = 64 * 1024 * 1024
"""Largest candidate or demand file read (64 MiB: a few hundred thousand points)."""

OUTPUT_SUFFIXES = (".gpkg", ".csv")


def read_point_file(path: PathLike, *, what: str) -> tuple[pd.DataFrame, bool]:
    """The rows of a CSV, GeoJSON or GeoPackage point file, bounded by size before reading.

    Returns
    -------
    (frame, spatial)
        ``frame``: a GeoDataFrame in EPSG:2169 for vector files, the CSV's text columns
        (every cell a string) for CSV; ``spatial``: whether ``frame`` has geometries.

    Raises
    ------
    ValidationError
        Naming ``what`` (``--candidates``, ``--demand``) and the file: missing, too large,
        unknown suffix or unreadable.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in POINT_SUFFIXES:
        raise ValidationError(f"{what}: {path.name}: unsupported file type {suffix!r}; use {', '.join(POINT_SUFFIXES)}",
                              [Problem("unsupported file type", file=path.name, column=what)])
    if not path.is_file():
        raise ValidationError(f"{what}: {path}: file not found", [Problem("file not found", file=path.name)])
    size = path.stat().st_size
    if size > MAX_POINT_FILE_BYTES:
        raise ValidationError(f"{what}: {path.name} is {size / 2**20:.0f} MiB; at most {MAX_POINT_FILE_BYTES // 2**20} MiB",
                              [Problem("file too large", file=path.name, column=what)])
    if suffix == ".csv":
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", sep=None,
                                engine="python")
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise ValidationError(f"{what}: {path.name}: cannot read as CSV: {exc}",
                                  [Problem("unreadable CSV", file=path.name)]) from exc
        frame.columns = [str(c).strip() for c in frame.columns]
        return frame, False
    return read_vector(path), True


def shipped_sites_path() -> Path:
    """The shipped candidate layer ``data/boundaries/control_sites.geojson``."""
    return boundaries_dir() / "control_sites.geojson"


def read_shipped_sites() -> gpd.GeoDataFrame:
    """The shipped candidate control sites in EPSG:2169."""
    return read_vector(shipped_sites_path())


def write_plan(sites: gpd.GeoDataFrame, path: PathLike, *, layer: str = "plan_sites",
               metadata: dict[str, object] | None = None) -> Path:
    """Write the ranked plan: GeoPackage (EPSG:2169, with the plan's parameters) or CSV (lat/lon, formula-safe)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gpkg":
        from geo_ibm.maps.qgisstyles import layer_style

        return write_vector(sites, path, layer=layer, metadata=dict(metadata or {}), style=layer_style(sites, layer))
    if suffix == ".csv":
        wgs = sites.to_crs(4326)
        table = pd.DataFrame(sites.drop(columns=sites.geometry.name))
        table["lat"] = wgs.geometry.y.round(6).to_numpy()
        table["lon"] = wgs.geometry.x.round(6).to_numpy()
        return write_table(neutralise_formulas(table), path)
    raise ValidationError(f"--out must end in {', '.join(OUTPUT_SUFFIXES)}, got {path.name!r}",
                          [Problem("unsupported output type", column="out", value=path.name)])


def read_plan(path: PathLike) -> tuple[gpd.GeoDataFrame, dict[str, object]]:
    """A plan file written by ``geo-ibm plan --out FILE.gpkg``: its ranked sites and the plan's parameters."""
    path = Path(path)
    if path.suffix.lower() != ".gpkg":
        raise ValidationError(f"--plan must be a plan GeoPackage (.gpkg) written by geo-ibm plan, got {path.name!r}",
                              [Problem("not a plan GeoPackage", column="plan", value=path.name)])
    import pyogrio

    layers = [str(name) for name, _ in pyogrio.list_layers(path)] if path.exists() else []
    if "plan_sites" not in layers:
        raise ValidationError(f"{path.name}: no plan_sites layer; write the plan with geo-ibm plan --out FILE.gpkg",
                              [Problem("no plan_sites layer", file=path.name, column="plan")])
    return read_vector(path, layer="plan_sites"), read_parameters(path, layer="plan_sites")


EVALUATION_SUFFIXES = (".csv", ".xlsx", ".gpkg")


def evaluation_tables(sites: gpd.GeoDataFrame, summary: dict[str, object]) -> dict[str, pd.DataFrame]:
    """An operation's evaluation as plain tables: ``sites`` (with lat/lon) and ``summary`` (item, value)."""
    table = pd.DataFrame(sites.drop(columns=sites.geometry.name))
    located = sites.geometry.notna().to_numpy()
    lat = pd.Series([None] * len(sites), dtype=object)
    lon = pd.Series([None] * len(sites), dtype=object)
    if located.any():
        wgs = sites[located].to_crs(4326)
        lat[located] = wgs.geometry.y.round(6).to_numpy()
        lon[located] = wgs.geometry.x.round(6).to_numpy()
    table["lat"], table["lon"] = lat.to_numpy(), lon.to_numpy()
    items = pd.DataFrame({"item": list(summary), "value": [str(v) if isinstance(v, list | dict) else v
                                                           for v in summary.values()]})
    return {"sites": neutralise_formulas(table), "summary": neutralise_formulas(items)}


def evaluation_bytes(sites: gpd.GeoDataFrame, summary: dict[str, object], *, suffix: str, workdir: Path) -> bytes:
    """The evaluation as a ``.csv`` (sites), ``.xlsx`` (sites and summary sheets) or ``.gpkg`` (sites layer with the
    summary as its parameters) file's bytes; ``workdir`` holds the GeoPackage while it is written."""
    import tempfile

    from geo_ibm.tables import table_csv, tables_to_xlsx

    tables = evaluation_tables(sites, summary)
    if suffix == ".csv":
        return table_csv(tables["sites"])
    if suffix == ".xlsx":
        return tables_to_xlsx({"Operation sites": tables["sites"], "Operation summary": tables["summary"]},
                              period=f"{summary.get('start')} to {summary.get('end')}")
    if suffix == ".gpkg":
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            out = Path(tmp) / "operation.gpkg"
            from geo_ibm.maps.qgisstyles import site_style

            write_vector(sites, out, layer="operation_sites", metadata=dict(summary), style=site_style())
            return out.read_bytes()
    raise ValidationError(f"out must end in {', '.join(EVALUATION_SUFFIXES)}, got {suffix!r}",
                          [Problem("unsupported output type", column="out", value=suffix)])
