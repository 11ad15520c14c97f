"""``geo-ibm report send``: e-mail the archived quarterly report of each area to its recipients (built and archived first if there is none).

``report`` stays the document command of :mod:`geo_ibm.cli.commands` (``geo-ibm report --quarter
Q --out DIR`` works as before); this module turns it into a group whose only subcommand is
``send``: arguments starting with ``send`` go to it, any others to the document command.
"""
from __future__ import annotations

import sys
from typing import Any

import click

from geo_ibm.cli.base import cli_user, main, open_cli_store
from geo_ibm.errors import GeoIbmError


class ReportCommand(click.Group):
    """The ``report`` document command with subcommands: ``report send ...``, else the document command with its options."""

    def __init__(self, document: click.Command) -> None:
        super().__init__(name=document.name, help=document.help, short_help=document.short_help,
                         context_settings=document.context_settings)
        self.document = document

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        if args and args[0] in self.commands:
            return super().make_context(info_name, args, parent=parent, **extra)
        # Not a subcommand: the document command parses (and runs) the arguments as it always did.
        return self.document.make_context(info_name, args, parent=parent, **extra)


def _register() -> ReportCommand:
    found = main.commands.get("report")
    if isinstance(found, ReportCommand):
        return found
    if found is None:
        raise RuntimeError("geo_ibm.cli.commands must be imported before geo_ibm.cli.reports")
    group = ReportCommand(found)
    if not found.epilog:
        found.epilog = "geo-ibm report send --help: e-mail each area's archived report to its recipients."
    main.add_command(group, "report")
    return group


report_group = _register()


@report_group.command("send")
@click.option("--quarter", required=True, help="Calendar quarter of the report (2026Q3).")
@click.option("--region", default="all", show_default=True,
              help="Police region (Capitale, Centre-Est, Nord, Sud-Ouest), 'national', or 'all' (the nation and "
                   "every region).")
@click.option("--lang", type=click.Choice(["en", "fr"]), default="en", show_default=True, help="Report language.")
@click.option("--version", "number", type=click.IntRange(1, 999), default=None,
              help="Archived version to send (default: the latest; built and archived if there is none).")
@click.pass_context
def report_send(ctx: click.Context, quarter: str, region: str, lang: str, number: int | None) -> None:
    """E-mail the quarterly report of each area to its recipient list through the SMTP server of GEO_IBM_SMTP_*.

    One message per area, the PDF and the self-contained HTML attached; every sending is recorded
    in the audit trail. Exit status 1 if any area was not sent.
    """
    from tqdm import tqdm

    from geo_ibm.periods import parse_quarter
    from geo_ibm.reportdoc.archive import NATIONAL, check_area, generate_version, open_archive
    from geo_ibm.reportdoc.build import resolve_regions
    from geo_ibm.reportdoc.mail import send_version, smtp_settings
    from geo_ibm.reportdoc.strings import check_language

    quarter, lang = parse_quarter(quarter, name="--quarter"), check_language(lang)
    areas = [NATIONAL] if region.strip().lower() == NATIONAL else [
        NATIONAL if a is None else a for a in resolve_regions(region)]
    settings = smtp_settings()  # before any report is built
    store = open_cli_store(ctx)
    archive = open_archive(ctx.obj["store"])
    user = cli_user(None)
    failed = 0
    for area in areas:
        key = check_area(area)
        try:
            if not archive.recipients()[key]:
                raise GeoIbmError(f"recipients: no e-mail address is set for {key}; an admin sets them on the web "
                                  f"app's Reports page; nothing built or sent")
            if number is not None:
                version = archive.version(quarter=quarter, area=key, lang=lang, version=number)
            else:
                found = archive.latest(quarter=quarter, area=key, lang=lang)
                if found is None:
                    with tqdm(total=100, unit="%", desc=f"report {key}", file=sys.stderr, disable=None) as bar:
                        def progress(fraction: float, message: str) -> None:
                            bar.set_postfix_str(message[:40], refresh=False)
                            bar.update(max(0, round(100 * fraction) - bar.n))

                        found = generate_version(store, archive, quarter=quarter, area=key, lang=lang,
                                                 created_by=user, progress=progress)
                    store.audit("report build", user=user, detail={
                        "quarter": quarter, "area": key, "lang": lang, "version": found.version,
                        "edition": found.edition, "via": "cli"})
                    click.echo(f"{key}: built and archived version {found.version} in {found.folder}")
                version = found
            outcome = send_version(store, archive, version, user=user, settings=settings, via="cli")
        except GeoIbmError as exc:
            failed += 1
            click.echo(f"error: {key}: {str(exc).splitlines()[0]}", err=True)
            continue
        refused = f", {len(outcome.refused)} refused: {'; '.join(outcome.refused.values())}" if outcome.refused else ""
        click.echo(f"{key}: {version.key} ({version.edition}) sent to {outcome.delivered} recipient"
                   f"{'' if outcome.delivered == 1 else 's'} through {outcome.server}{refused}")
    if failed:
        sys.exit(1)
