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
