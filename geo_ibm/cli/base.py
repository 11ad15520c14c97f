"""The ``geo-ibm`` group and the helpers every command module shares."""
from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from geo_ibm.errors import GeoIbmError
from geo_ibm.settings import store_location

if TYPE_CHECKING:
    from geo_ibm.store import EventStore


def fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


class _Group(click.Group):
    """Turn every GeoIbmError into a clean message on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GeoIbmError as exc:
            fail(exc)


@contextmanager
def progress_bar(desc: str, unit: str, *, shown: bool = True, **options: Any) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (drawn only when stderr is a terminal and ``shown``) and the
    ``progress(done, total)`` callback that moves it; the bar is closed on leaving, error or not."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit=unit, desc=desc, file=sys.stderr, disable=not (shown and sys.stderr.isatty()), **options)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield progress
    finally:
        bar.close()


def open_cli_store(ctx: click.Context) -> EventStore:
    from geo_ibm.store import open_store

    return open_store(ctx.obj["store"])


def cli_user(explicit: str | None) -> str:
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "cli"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    default=None,
    help="Event store: a GeoPackage file or a postgresql:// URL (PostGIS). Default: $GEO_IBM_STORE or "
    "instance/geo_ibm.gpkg.",
)
@click.version_option(package_name="geo-ibm")
@click.pass_context
def main(ctx: click.Context, store: str | None) -> None:
    """Geospatial analysis for Luxembourg's Integrated Border Management."""
    ctx.ensure_object(dict)
    ctx.obj["store"] = store_location(store)
    # Layers installed next to the store (cantons, roads) are found through it, by every command.
    os.environ["GEO_IBM_STORE"] = str(ctx.obj["store"])
