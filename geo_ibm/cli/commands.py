"""The store, import, demo, layer, analysis, report and server commands of ``geo-ibm``."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Literal, cast

import click

from geo_ibm.cli.base import cli_user, main, open_cli_store, progress_bar
from geo_ibm.errors import ValidationError
from geo_ibm.settings import store_location


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create an empty event store (does nothing if it exists)."""
    store = open_cli_store(ctx)
    store.init()
    click.echo(f"store ready: {store.location}")


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows; write rejected rows with reasons to a file.")
@click.option("--rejected", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Where rejected rows go (with --skip-invalid). Default: FILE.rejected.csv")
@click.option("--user", default=None, help="Name recorded in the audit trail (default: login name).")
@click.pass_context
def import_(ctx: click.Context, file: Path, skip_invalid: bool, rejected: Path | None, user: str | None) -> None:
    """Import interception events from CSV, XLSX, GeoJSON or GeoPackage (all rows or none)."""
    store = open_cli_store(ctx)
    store.init()
    try:
        with progress_bar(file.name, "row") as progress:
            report = store.import_file(
                file, user=cli_user(user), skip_invalid=skip_invalid, rejected_path=rejected, progress=progress
            )
    except ValidationError as exc:
        click.echo(f"error: {exc}", err=True)
        if exc.total > len(exc.problems):
            from geo_ibm.problems import summary_lines

            click.echo("problems found (the first of each column are listed):", err=True)
            for line in summary_lines(exc.counts):
                click.echo(f"  {line}", err=True)
        sys.exit(1)
    click.echo(
        f"{report.file}: {report.rows} rows, {report.accepted} imported, "
        f"{report.duplicates} already in the store, {report.rejected} rejected"
    )
    if report.rejected and report.rejected_path:
        click.echo(f"rejected rows with reasons: {report.rejected_path}")


@main.command()
@click.option("--events", "n_events", type=click.IntRange(min=1), default=20000, show_default=True, help="Number of synthetic events.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed (same seed, same data).")
@click.option("--account/--no-account", default=True, show_default=True, help="Create the demo login and print its credentials.")
@click.option("--archive", "archive", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write a synthetic partitioned archive to this new folder instead of filling the store.")
@click.option("--partitions", type=click.IntRange(min=1), default=None,
              help="Files of the archive (with --archive; default one per 500,000 events, at least 12, at most 100,000)."
                   " A file holds at most 20,000,000 events.")
@click.option("--crs", type=click.Choice(["EPSG:2169", "EPSG:3035"]), default="EPSG:2169", show_default=True,
              help="With --archive: Luxembourg (EPSG:2169) or Europe by country (EPSG:3035, ETRS89-LAEA).")
@click.pass_context
def demo(ctx: click.Context, n_events: int, seed: int, account: bool, archive: Path | None, partitions: int | None,
         crs: str) -> None:
    """Fill the store with realistic synthetic events and their ground truth (or write a synthetic archive)."""
    if archive is not None:
        _demo_archive(archive, n_events=n_events, partitions=partitions, crs=crs, seed=seed)
        return
    if partitions is not None:
        raise ValidationError("--partitions needs --archive")
    from geo_ibm.demo import generate_events

    store = open_cli_store(ctx)
    store.init()
    click.echo(f"generating {n_events} synthetic events (seed {seed}) ...", err=True)
    events, truth = generate_events(n_events, seed=seed)
    report = store.import_events(events, source=f"demo events={n_events} seed={seed}", user="demo")
    store.write_ground_truth(truth)
    click.echo(f"demo store {store.location}: {report.accepted} events imported, {report.duplicates} already present")
    click.echo(f"planted hotspots (ground truth): {', '.join(truth['name'].astype(str))}")
    if account:
        from geo_ibm.accounts import ensure_demo_account

        name, password = ensure_demo_account(store)
        if password:
            click.echo(f"demo login: user {name!r}, password {password!r} (shown once; change it with 'geo-ibm users passwd')")
        else:
            click.echo(f"demo login {name!r} exists already (password unchanged)")


def _demo_archive(directory: Path, *, n_events: int, partitions: int | None, crs: str, seed: int) -> None:
    from geo_ibm.archive import write_synthetic_archive
    from geo_ibm.archive.format import MAX_PARTITIONS

    files = partitions if partitions is not None else min(max(12, -(-n_events // 500_000)), max(1, n_events // 1000),
                                                          MAX_PARTITIONS)
    with progress_bar(directory.name, "event") as progress:
        manifest = write_synthetic_archive(directory, n_events=n_events, partitions=files, crs=crs, seed=seed,
                                           progress=progress)
    click.echo(f"synthetic archive {directory}: {manifest.rows} events in {len(manifest.partitions)} partitions, "
               f"{len(manifest.quarters)} quarters, CRS {manifest.crs}")


@main.command()
def borders() -> None:
    """Print the length of each internal Schengen border line and the total, against official figures."""
    from geo_ibm.layers import border_lengths

    table = border_lengths()
    click.echo(f"{'border':<10}{'length km':>11}{'official km':>13}{'diff %':>9}")
    for row in table.itertuples(index=False):
        click.echo(f"{row.name:<10}{row.length_km:>11.1f}{row.official_km:>13.0f}{row.diff_pct:>+9.1f}")


@main.command()
@click.pass_context
def info(ctx: click.Context) -> None:
    """List the store's layers and counts: events in total and per quarter."""
    store = open_cli_store(ctx)
    if not store.exists():
        raise click.ClickException(f"no store at {store.location}; run 'geo-ibm init' or 'geo-ibm demo'")
    summary = store.summary()
    click.echo(f"store: {store.location}")
    for key, value in summary.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {v}")
        else:
            click.echo(f"{key}: {value}")
    quarters = store.quarter_counts()
    if len(quarters):
        click.echo("events per quarter:")
        for row in quarters.itertuples(index=False):
            click.echo(f"  {row.quarter}: {row.events} events, {row.persons} persons")


@main.group()
def users() -> None:
    """Manage web accounts (roles: viewer, analyst, planner, admin)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "analyst", "planner", "admin"]), required=True)
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str) -> None:
    """Add an account; the password comes from a prompt or $GEO_IBM_PASSWORD."""
    from geo_ibm.accounts import add_user

    password = os.environ.get("GEO_IBM_PASSWORD") or click.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )
    store = open_cli_store(ctx)
    store.init()
    add_user(store, name, role, password)
    store.audit("user_add", user=cli_user(None), detail={"name": name, "role": role, "via": "cli"})
    click.echo(f"user {name!r} added with role {role}")


@users.command("passwd")
@click.argument("name")
@click.pass_context
def users_passwd(ctx: click.Context, name: str) -> None:
    """Set a new password; from a prompt or $GEO_IBM_PASSWORD."""
    from geo_ibm.accounts import set_password

    password = os.environ.get("GEO_IBM_PASSWORD") or click.prompt(
        "new password", hide_input=True, confirmation_prompt=True
    )
    store = open_cli_store(ctx)
    set_password(store, name, password)
    store.audit("user_passwd", user=cli_user(None), detail={"name": name, "via": "cli"})
    click.echo(f"password of {name!r} changed")


@users.command("token")
@click.argument("name")
@click.pass_context
def users_token(ctx: click.Context, name: str) -> None:
    """Print a new personal API token for NAME (shown once; only its hash is stored)."""
    from geo_ibm.accounts import new_token

    store = open_cli_store(ctx)
    token = new_token(store, name)
    store.audit("token_new", user=cli_user(None), detail={"name": name, "via": "cli"})
    click.echo(token)


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """List accounts and roles."""
    from geo_ibm.accounts import list_users

    for row in list_users(open_cli_store(ctx)):
        click.echo(f"{row['name']:<20}{row['role']}")


@main.command("regions")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def regions(ctx: click.Context, file: Path) -> None:
    """Use an official canton or commune boundary file (ACT 'limites administratives') instead of the shipped cantons."""
    from geo_ibm.layers import cantons_from_file, install_cantons

    # The installed layer lives next to the store; its stored events move to the new
    # boundaries in the same transaction (a store not created yet has none).
    store = open_cli_store(ctx)
    gdf = cantons_from_file(file)
    path = install_cantons(gdf, store=store if store.exists() else None)
    click.echo(f"{len(gdf)} cantons in {gdf['region'].nunique()} police regions installed from {file} -> {path}")


@main.command()
@click.option("--method", type=click.Choice(["gi", "lisa", "kde", "clusters", "emerging"]), required=True)
@click.option("--cell", type=float, default=None, help="Cell size in metres (default: chosen from the data).")
@click.option("--band", type=float, default=None, help="Distance band in metres (default: chosen from the data).")
@click.option("--from", "start", default=None, help="First day (YYYY-MM-DD), inclusive.")
@click.option("--to", "end", default=None, help="Last day (YYYY-MM-DD), inclusive.")
@click.option("--region", default=None, help="Police region (Capitale, Centre-Est, Nord, Sud-Ouest).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of permutation tests.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output .gpkg or .geojson")
@click.option("--archive", default=None, help="Analyse this archive (folder or object-store URL) on Dask instead of the store "
              "(methods gi, kde, emerging).")
@click.option("--scheduler", default=None, help="With --archive: address of a running Dask scheduler (tcp://HOST:8786).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --archive and no --scheduler: workers of the local Dask cluster started for this run "
              "(at most 4 per CPU core).")
@click.pass_context
def hotspots(ctx: click.Context, method: str, cell: float | None, band: float | None, start: str | None,
             end: str | None, region: str | None, seed: int, out: Path, archive: str | None, scheduler: str | None,
             workers: int) -> None:
    """Hotspot analysis on the stored events (or an archive's); writes the result and prints the parameters used."""
    from geo_ibm.analysis import run_method
    from geo_ibm.io import write_vector
    from geo_ibm.maps.qgisstyles import layer_style

    if archive is not None:
        _archive_hotspots(ctx, archive, method=method, cell=cell, band=band, start=start, end=end, region=region,
                          out=out, scheduler=scheduler, workers=workers)
        return
    if scheduler is not None:
        raise ValidationError("--scheduler needs --archive (the store's analyses run in this process)")
    store = open_cli_store(ctx)
    events = store.events(start=start, end=end, region=region)
    if events.empty:
        chosen = {"--from": start, "--to": end, "--region": region}
        said = ", ".join(f"{k} {v}" for k, v in chosen.items() if v) or "no filter"
        raise ValidationError(f"no events in {store.location} match the selection ({said})")
    result = run_method(events, method=method, cell=cell, band=band, region=region, seed=seed)
    params = dict(result.attrs.get("parameters", {}))
    params.update({"method": method, "from": start, "to": end, "region": region, "n_events": int(len(events))})
    write_vector(result, out, layer=f"hotspots_{method}", metadata=params,
                 style=layer_style(result, f"hotspots_{method}"))
    click.echo(json.dumps(params, indent=2, default=str))
    click.echo(f"{len(result)} features written to {out}")
    store.audit("export", user=cli_user(None), detail={"what": f"hotspots {method}", "file": str(out)})


def _archive_hotspots(ctx: click.Context, archive: str, *, method: str, cell: float | None, band: float | None, start: str | None,
                      end: str | None, region: str | None, out: Path, scheduler: str | None, workers: int) -> None:
    from geo_ibm import periods
    from geo_ibm.archive import ARCHIVE_METHODS, check_archive_request, dask_client, read_manifest, run_archive_request
    from geo_ibm.errors import Problem
    from geo_ibm.io import write_vector
    from geo_ibm.maps.qgisstyles import layer_style

    if method not in ARCHIVE_METHODS:
        raise ValidationError(f"--method {method} does not run over an archive; use one of {', '.join(ARCHIVE_METHODS)}",
                              [Problem("not for archives", column="method", value=method)])
    if region is not None:
        raise ValidationError("--region does not apply to an archive (its study area is the archive's extent)",
                              [Problem("not for archives", column="region", value=region)])
    if out.suffix.lower() not in (".gpkg", ".geojson", ".json"):
        raise ValidationError(f"{out}: unsupported output format {out.suffix!r}; use .gpkg or .geojson")
    manifest = read_manifest(archive)
    where = scheduler or f"a local cluster of {workers} workers"
    click.echo(f"{method} over {manifest.rows} events in {len(manifest.partitions)} partitions ({manifest.crs}) on {where}",
               err=True)
    # refused (naming the parameter) before a cluster is started or asked for anything
    request = check_archive_request(manifest, method=method, cell=cell, band=band, start=start,
                                    end=None if end is None else periods.period_end(end, name="--to"))
    with progress_bar(method, "partition") as progress, dask_client(scheduler, workers=workers) as client:
        result = run_archive_request(request, client=client, progress=progress)
    params = dict(result.attrs.get("parameters", {}))
    params.update({"from": start, "to": end, "region": None})
    result = result.copy()
    result.attrs = {}
    write_vector(result, out, layer=f"hotspots_{method}", metadata=params,
                 style=layer_style(result, f"hotspots_{method}"))
    click.echo(json.dumps(params, indent=2, default=str))
    click.echo(f"{len(result)} features written to {out}")
    # the archive's records were read and a result made of them: in the store's audit trail, as the store path's export
    open_cli_store(ctx).audit("export", user=cli_user(None), detail={
        "what": f"hotspots {method}", "file": str(out), "archive": manifest.root, "partitions": params.get("partitions"),
        "events": params.get("n_events"), "cluster": where})


REPORT_SUFFIXES = (".png", ".svg", ".pdf", ".xlsx")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output file: .png, .svg or .pdf (a map) or .xlsx (the report tables); or a folder (no suffix) for "
                   "the quarterly report document (report.html and report.pdf per area, with --quarter).")
@click.option("--from", "start", default=None, help="First day (YYYY-MM-DD), inclusive.")
@click.option("--to", "end", default=None, help="Last day (YYYY-MM-DD), inclusive.")
@click.option("--quarter", default=None, help="Calendar quarter (2025Q3); tables then compare it with the quarter before.")
@click.option("--region", default=None, help="Police region (Capitale, Centre-Est, Nord, Sud-Ouest).")
@click.option("--map", "kind", type=click.Choice(["overview", "hotspots", "kde"]), default="overview", show_default=True,
              help="Map kind (maps only).")
@click.option("--lang", type=click.Choice(["en", "fr"]), default="en", show_default=True,
              help="Language of the quarterly report document.")
@click.pass_context
def report(ctx: click.Context, out: Path, start: str | None, end: str | None, quarter: str | None, region: str | None,
           kind: str, lang: str) -> None:
    """Write a print map (PNG/SVG/PDF), the report tables workbook (XLSX) or, into a folder, the quarterly report
    document of the nation, a region or every region (--region all)."""
    from geo_ibm import figures, layers, tables

    suffix = out.suffix.lower()
    if not suffix:
        _quarterly_document(ctx, out, quarter=quarter, region=region, lang=lang, start=start, end=end)
        return
    if region == "all":
        raise ValidationError("--region all writes the quarterly report document: give a folder as --out")
    if suffix not in REPORT_SUFFIXES:
        raise ValidationError(f"--out must end in {', '.join(REPORT_SUFFIXES)}, got {out.name!r}")
    store = open_cli_store(ctx)
    events = store.events(start=start, end=end, quarter=quarter, region=region)
    filters = {k: v for k, v in {"from": start, "to": end, "quarter": quarter, "region": region}.items() if v}
    period = f"{start or '…'} – {end or '…'}" if (start or end) else None
    if quarter:
        period = f"{quarter.upper().replace('-', '')}" + (f" ({period})" if period else "")
    outline, borders, crossings = layers.luxembourg_outline(), layers.internal_borders(), layers.crossing_points()
    if suffix == ".xlsx":
        from datetime import datetime, timezone

        previous = store.events(**tables.previous_quarter_filters({"quarter": quarter, "region": region})) if quarter else None
        built = tables.report_tables(events, outline=outline, borders=borders, crossings=crossings, cantons=layers.cantons(),
                                     previous=previous)
        data = tables.tables_to_xlsx(built.tables, period=period or figures.period_of(events), filters=filters,
                                     events=len(events), notes=built.notes, generated_at=datetime.now(timezone.utc))
        for note in built.notes:
            click.echo(f"not computed: {note}", err=True)
        what = "report tables"
    else:
        fig = figures.report_map(events, kind=kind, outline=outline, borders=borders, crossings=crossings,
                                 neighbours=layers.neighbour_outlines(), regions=layers.police_regions(), period=period)
        data = figures.figure_bytes(fig, format=cast(Literal["png", "svg", "pdf"], suffix[1:]))
        what = f"report map {kind}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    click.echo(f"{what} of {len(events)} events written to {out} ({len(data)} bytes)")
    store.audit("export", user=cli_user(None), detail={"what": what, "format": suffix[1:], "file": str(out),
                                                    "rows": int(len(events)), "filters": filters})


def _quarterly_document(ctx: click.Context, out: Path, *, quarter: str | None, region: str | None, lang: str,
                        start: str | None, end: str | None) -> None:
    from tqdm import tqdm

    from geo_ibm.reportdoc import write_quarterly_report

    if not quarter:
        raise ValidationError("--quarter: the quarterly report document is of one quarter (e.g. --quarter 2026Q3)")
    if start or end:
        raise ValidationError("--from/--to: the quarterly report document covers its --quarter; leave them out")
    if out.exists() and not out.is_dir():
        raise ValidationError(f"--out: {out} is a file; the report document goes into a folder")
    store = open_cli_store(ctx)
    with tqdm(total=100, unit="%", desc="report", file=sys.stderr, disable=None) as bar:
        def progress(fraction: float, message: str) -> None:
            bar.set_postfix_str(message[:40], refresh=False)
            bar.update(max(0, round(100 * fraction) - bar.n))

        written = write_quarterly_report(store, quarter=quarter, region=region, lang=lang, out_dir=out,
                                         progress=progress)
    for path in written:
        click.echo(str(path))
    store.audit("export", user=cli_user(None), detail={"what": "quarterly report", "quarter": quarter,
                                                    "region": region, "lang": lang, "folder": str(out),
                                                    "files": [str(p) for p in written]})


@main.group("store")
def store_group() -> None:
    """Move a store between backends and set up database roles."""


@store_group.command("copy")
@click.argument("source")
@click.argument("target")
def store_copy(source: str, target: str) -> None:
    """Copy the whole store SOURCE into the empty store TARGET (a .gpkg path or a postgresql:// URL each).

    Events, imports, audit trail, ground truth, accounts and API tokens move; the copy is
    checked against the source (counts and checksums) before it is committed.
    """
    from geo_ibm.store import copy_store

    def progress(stage: str, done: int, total: int) -> None:
        click.echo(f"{stage}: {done} of {total} rows", err=True)

    report = copy_store(store_location(source), store_location(target), progress=progress)
    counts = ", ".join(f"{n} {name}" for name, n in report.counts.items())
    click.echo(f"copied {report.source} -> {report.target} in {report.seconds:.1f} s: {counts}")
    click.echo(f"checksum (source = target): {report.checksum}")


@store_group.command("grants")
@click.argument("role")
@click.option("--read-only", is_flag=True, help="Only the events, imports and ground truth, for GIS clients.")
@click.option("--schema", default="public", show_default=True, help="Schema holding the store's tables.")
def store_grants(role: str, read_only: bool, schema: str) -> None:
    """Print the SQL giving ROLE the rights it needs on a PostGIS store (run it as the tables' owner)."""
    from geo_ibm.store.postgis_schema import grant_statements

    try:
        statements = grant_statements(role, read_only=read_only, schema=schema)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    for statement in statements:
        click.echo(statement + ";")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, threads: int) -> None:
    """Serve the web app with waitress (production WSGI server)."""
    from waitress import serve as waitress_serve

    from webapp import create_app

    # Links in API documents name the address clients use: the one served here unless a
    # reverse proxy's public URL is configured.
    os.environ.setdefault("GEO_IBM_PUBLIC_URL", f"http://{host}:{port}")
    app = create_app()
    click.echo(f"geo_ibm on http://{host}:{port}/ (store {open_cli_store(ctx).location}); Ctrl+C stops", err=True)
    waitress_serve(app, host=host, port=port, threads=threads)
