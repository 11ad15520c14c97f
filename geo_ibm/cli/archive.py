"""The ``geo-ibm archive`` commands: export the store into a partitioned GeoParquet archive, describe an archive."""
from __future__ import annotations

from pathlib import Path

import click

from geo_ibm.cli.base import cli_user, main, open_cli_store, progress_bar


@main.group("archive")
def archive_group() -> None:
    """Partitioned GeoParquet archives for analysis on a Dask cluster (see docs/ARCHIVE.md)."""


@archive_group.command("export")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New (or empty) folder for the archive.")
@click.pass_context
def archive_export(ctx: click.Context, out: Path) -> None:
    """Write every stored event into an archive at OUT, one quarter at a time."""
    from geo_ibm.archive import export_store

    store = open_cli_store(ctx)
    if not store.exists():
        raise click.ClickException(f"no store at {store.location}; run 'geo-ibm init' or 'geo-ibm demo'")
    with progress_bar("export", "event") as progress:
        manifest = export_store(store, out, progress=progress)
    click.echo(f"archive {out}: {manifest.rows} events in {len(manifest.partitions)} partitions "
               f"({len(manifest.quarters)} quarters), CRS {manifest.crs}")
    store.audit("export", user=cli_user(None), detail={"what": "archive", "file": str(out), "rows": manifest.rows})


@archive_group.command("info")
@click.argument("directory")
@click.option("--verify", is_flag=True, help="Also check every partition's SHA-256 against the manifest (reads every file).")
def archive_info(directory: str, verify: bool) -> None:
    """Describe the archive at DIRECTORY (a folder or an object-store URL) and check its partitions are there."""
    from geo_ibm.archive import archive_summary, check_partitions, read_manifest

    manifest = read_manifest(directory)
    summary = archive_summary(manifest)
    for key, value in summary.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {v}")
        elif key == "bounds" and value is not None:
            click.echo(f"bounds: {', '.join(f'{v:.1f}' for v in value)}")
        else:
            click.echo(f"{key}: {value}")
    with progress_bar("verify", "B", shown=verify, unit_scale=True) as progress:
        check_partitions(manifest, checksums=verify, progress=progress)
    click.echo(f"all {len(manifest.partitions)} partitions present" + (", checksums match" if verify else ""))


@archive_group.command("counts")
@click.argument("directory")
@click.option("--by", default="quarter", show_default=True,
              help="quarter, or a column of few values counted per quarter: region, canton, country, entry_country, "
                   "location_kind, transport_mode.")
@click.option("--from", "start", default=None, help="First day (YYYY-MM-DD), inclusive.")
@click.option("--to", "end", default=None, help="Last day (YYYY-MM-DD), inclusive.")
@click.option("--scheduler", default=None, help="Address of a running Dask scheduler (tcp://HOST:8786).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Without --scheduler: workers of the local Dask cluster started for this run (at most 4 per CPU core).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the table to this .csv file instead of printing it.")
@click.pass_context
def archive_counts(ctx: click.Context, directory: str, by: str, start: str | None, end: str | None,
                   scheduler: str | None, workers: int, out: Path | None) -> None:
    """Events and persons per quarter, or per --by column and quarter, in the archive at DIRECTORY (summed on Dask)."""
    from geo_ibm import periods
    from geo_ibm.archive import dask_client, read_manifest, tally_archive
    from geo_ibm.errors import Problem, ValidationError
    from geo_ibm.io import neutralise_formulas, write_table

    if out is not None and out.suffix.lower() != ".csv":
        raise ValidationError(f"--out {out}: unsupported format {out.suffix!r}; use .csv",
                              [Problem("unsupported format", column="out", value=str(out))])
    # --to names a last day, included
    first, after = periods.epoch_window(start, periods.period_end(end, name="--to") if end else None,
                                        start_name="--from", end_name="--to")
    manifest = read_manifest(directory)
    where = scheduler or f"a local cluster of {workers} workers"
    click.echo(f"counting {manifest.rows} events in {len(manifest.partitions)} partitions on {where}", err=True)
    with progress_bar("counts", "partition") as progress, dask_client(scheduler, workers=workers) as client:
        table = tally_archive(manifest, client=client, by=by, start=first, end=after, progress=progress)
    if out is None:
        click.echo(table.to_string(index=False))
    else:
        write_table(neutralise_formulas(table), out)
        click.echo(f"{len(table)} rows written to {out}")
    open_cli_store(ctx).audit("export", user=cli_user(None), detail={
        "what": f"archive counts by {by}", "file": str(out) if out is not None else "-", "archive": manifest.root,
        "events": int(table["events"].sum()), "cluster": where})
