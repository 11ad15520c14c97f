"""The report archive: every generated quarterly report kept as a numbered version, and the e-mail recipients per area.

The archive is one folder. For a GeoPackage store it sits next to the store file
(``<store folder>/reports``, as the installed canton layer does); ``GEO_IBM_REPORTS_DIR``
names another folder, and a database store (a ``postgresql://`` URL) needs it, since a
database server keeps no files for us. Layout::

    <archive>/recipients.json
    <archive>/<quarter>/<area>/<lang>/v<N>/report.html
                                         /report.pdf
                                         /manifest.json

A version is written whole into a hidden temporary folder and renamed to ``v<N>``: readers see
all of it or none, and a rename never replaces an existing version (two writers racing for the
same number: the second takes the next one). The manifest records the quarter, area, language,
edition, version number, creation time and account, and the SHA-256 and size of each file;
files are checked against it when read back. All disk access of the quarterly report's
archive and recipients lives in this module.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from geo_ibm.errors import NotFoundError, Problem, StoreError, ValidationError
from geo_ibm.periods import parse_quarter
from geo_ibm.reportdoc.strings import check_language
from geo_ibm.settings import store_location

if TYPE_CHECKING:
    from geo_ibm.disclosure import DisclosureRule
    from geo_ibm.reportdoc.build import Progress

REPORTS_DIR_ENV = "GEO_IBM_REPORTS_DIR"
"""Environment variable naming the archive folder (required for a database store)."""

ARCHIVE_FOLDER = "reports"
"""Name of the archive folder next to a GeoPackage store."""

NATIONAL = "national"
"""Area key of the national report."""

FILES: dict[str, str] = {"html": "report.html", "pdf": "report.pdf"}
"""File kind -> file name inside a version folder."""

MEDIA_TYPES: dict[str, str] = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}

EDITIONS: tuple[str, ...] = ("full", "aggregates")
"""``full``: analysts' detail; ``aggregates``: protected for readers of aggregates (geo_ibm.disclosure)."""

Edition = Literal["full", "aggregates"]

MAX_RECIPIENTS = 50
"""Most addresses of one area's recipient list."""

MAX_ADDRESS_LENGTH = 254
"""Longest e-mail address accepted (RFC 5321's path limit less the angle brackets)."""

MAX_VERSIONS = 999
"""Most versions of one quarter, area and language."""

_VERSION_DIR = re.compile(r"^v([1-9][0-9]{0,5})$")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


# --------------------------------------------------------------------------- where


def archive_dir(location: str | os.PathLike[str] | None = None) -> Path:
    """The archive folder of the store at ``location`` (default: ``GEO_IBM_STORE``).

    ``GEO_IBM_REPORTS_DIR`` when set; else the ``reports`` folder next to a GeoPackage store.

    Raises
    ------
    ValidationError
        For a database store without ``GEO_IBM_REPORTS_DIR`` (the problem names the setting).
    """
    configured = os.environ.get(REPORTS_DIR_ENV, "").strip()
    if configured:
        return Path(configured)
    where = store_location(location)
    if isinstance(where, Path):
        return where.parent / ARCHIVE_FOLDER
    raise ValidationError(
        f"{REPORTS_DIR_ENV} is not set: a database store keeps no files, so the report archive needs a folder; "
        f"set {REPORTS_DIR_ENV} to one every app process can write",
        [Problem("not configured", column=REPORTS_DIR_ENV)])


def report_areas() -> tuple[str, ...]:
    """The areas a report and a recipient list can be of: ``national`` and each police region."""
    from geo_ibm.layers import police_regions

    return (NATIONAL, *(str(r) for r in police_regions()["region"]))


def check_area(area: str | None) -> str:
    """``area`` as an archive area key: ``None``/``national`` -> ``national``, a region name in its own spelling.

    Raises
    ------
    ValidationError
        An unknown area (the problem names ``region``).
    """
    known = report_areas()
    text = NATIONAL if area is None else str(area).strip()
    for name in known:
        if name.lower() == text.lower():
            return name
    raise ValidationError(f"unknown region {area!r}; use one of {', '.join(known)}",
                          [Problem("unknown region", column="region", value=area)])


# --------------------------------------------------------------------------- addresses


def check_address(address: str) -> str | None:
    """Why ``address`` is not accepted as a recipient, or ``None`` when it is.

    The check is deliberately stricter than RFC 5322: ASCII only, a dot-atom local part of at
    most 64 characters, a domain of at least two labels (letters, digits, inner hyphens, each
    at most 63) ending in a letters-only top-level label, at most :data:`MAX_ADDRESS_LENGTH`
    in all; no quoted local parts, comments, IP literals or whitespace (nothing a mail header
    could be split on).
    """
    if not address:
        return "empty address"
    if len(address) > MAX_ADDRESS_LENGTH:
        return f"longer than {MAX_ADDRESS_LENGTH} characters"
    if not address.isascii() or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in address):
        return "only ASCII letters, digits and punctuation, no spaces"
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "not an e-mail address (name@domain)"
    if len(local) > 64 or not _LOCAL_PART.match(local):
        return "the part before @ is not a plain mailbox name"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        return "the domain is not a host name such as police.etat.lu"
    if not labels[-1].isalpha() or len(labels[-1]) < 2:
        return "the domain does not end in a top-level domain"
    return None


def normalise_address(address: str) -> str:
    """``address`` with its domain in lower case (the local part is kept: servers may tell cases apart)."""
    local, _at, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def parse_recipients(text: str | list[str], *, area: str = NATIONAL) -> list[str]:
    """The addresses in ``text`` (one per line, or separated by commas or semicolons), checked and deduplicated.

    Raises
    ------
    ValidationError
        Every bad address (its position as ``row``, the area as ``column``) and more than
        :data:`MAX_RECIPIENTS` addresses, all at once.
    """
    items = text if isinstance(text, list) else re.split(r"[\n\r,;]+", str(text))
    items = [str(item).strip() for item in items if str(item).strip()]
    problems: list[Problem] = []
    found: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(items, start=1):
        why = check_address(item)
        if why is not None:
            problems.append(Problem(why, row=index, column=area, value=item[:300]))
            continue
        address = normalise_address(item)
        if address.lower() not in seen:
            seen.add(address.lower())
            found.append(address)
    if len(found) > MAX_RECIPIENTS:
        problems.append(Problem(f"{len(found)} addresses, more than {MAX_RECIPIENTS}", column=area, value=len(found)))
    if problems:
        raise ValidationError(f"recipients of {area}: {len(problems)} problem{'s' if len(problems) > 1 else ''}",
                              problems)
    return found


# --------------------------------------------------------------------------- versions


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ReportVersion:
    """One archived report: what its manifest says and where it is.

    Attributes
    ----------
    quarter, area, lang
        ``2026Q3``, ``national`` or a police region, ``en`` or ``fr``.
    version
        1, 2, ... within the quarter, area and language.
    edition
        ``full`` or ``aggregates`` (protected for readers of aggregates).
    created_at, created_by
        ISO 8601 UTC time and account that generated it.
    files
        File kind (``html``, ``pdf``) -> ``{"name", "sha256", "size"}``.
    events
        Interceptions of the quarter in the area.
    folder
        The version's folder.
    """

    quarter: str
    area: str
    lang: str
    version: int
    edition: str
    created_at: str
    created_by: str
    files: dict[str, dict[str, Any]]
    events: int
    folder: Path
    disclosure: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``2026Q3/Nord/fr/v2``: the version's place in the archive (and in URLs)."""
        return f"{self.quarter}/{self.area}/{self.lang}/v{self.version}"

    def manifest(self) -> dict[str, Any]:
        """The manifest as stored (JSON-ready)."""
        return {"quarter": self.quarter, "area": self.area, "region": None if self.area == NATIONAL else self.area,
                "lang": self.lang, "version": self.version, "edition": self.edition, "created_at": self.created_at,
                "created_by": self.created_by, "events": self.events, "disclosure": self.disclosure,
                "files": self.files, **self.extra}

    def size(self, kind: str) -> int:
        return int(self.files[kind]["size"])


class ReportArchive:
    """The report versions and recipient lists in ``root`` (see the module's docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ writing

    def save(self, *, quarter: str, area: str | None, lang: str, html: str, pdf: bytes, created_by: str,
             edition: Edition = "full", events: int = 0, disclosure: dict[str, Any] | None = None,
             created_at: datetime | None = None, extra: dict[str, Any] | None = None) -> ReportVersion:
        """Keep one generated report as the next version of its quarter, area and language.

        Returns
        -------
        ReportVersion
            The new version (never one written before: numbers are not reused).

        Raises
        ------
        ValidationError
            A bad quarter, area, language or edition.
        StoreError
            The archive folder cannot be written, or :data:`MAX_VERSIONS` is reached.
        """
        quarter, area, lang = parse_quarter(quarter), check_area(area), check_language(lang)
        if edition not in EDITIONS:
            raise ValidationError(f"edition must be one of {', '.join(EDITIONS)}, got {edition!r}",
                                  [Problem("unknown edition", column="edition", value=edition)])
        when = (created_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
        blobs = {"html": html.encode("utf-8"), "pdf": bytes(pdf)}
        files = {kind: {"name": FILES[kind], "sha256": _sha256(data), "size": len(data)} for kind, data in blobs.items()}
        parent = self._area_dir(quarter, area, lang)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            staging = parent / f".incoming-{secrets.token_hex(8)}"
            staging.mkdir()
        except OSError as exc:
            raise StoreError(f"report archive {self.root}: cannot write ({exc.strerror or exc})") from None
        try:
            for kind, data in blobs.items():
                (staging / FILES[kind]).write_bytes(data)
            number = self._next_number(parent)
            while True:
                found = ReportVersion(quarter=quarter, area=area, lang=lang, version=number, edition=edition,
                                      created_at=when.isoformat(timespec="seconds").replace("+00:00", "Z"),
                                      created_by=str(created_by), files=files, events=int(events),
                                      folder=parent / f"v{number}", disclosure=disclosure, extra=dict(extra or {}))
                (staging / "manifest.json").write_text(json.dumps(found.manifest(), indent=2, ensure_ascii=False),
                                                       encoding="utf-8")
                try:
                    # rename() of a folder never replaces a non-empty one: a version taken by
                    # another writer meanwhile makes us take the next number.
                    os.rename(staging, found.folder)
                    return found
                except OSError:
                    if not found.folder.exists():
                        raise
                    number = self._next_number(parent)
        except OSError as exc:
            raise StoreError(f"report archive {self.root}: cannot write ({exc.strerror or exc})") from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _next_number(self, parent: Path) -> int:
        taken = [int(m.group(1)) for p in parent.iterdir() if (m := _VERSION_DIR.match(p.name))]
        number = max(taken, default=0) + 1
        if number > MAX_VERSIONS:
            raise StoreError(f"report archive {parent}: {MAX_VERSIONS} versions already; remove old ones first")
        return number

    # ------------------------------------------------------------------ reading

    def _area_dir(self, quarter: str, area: str, lang: str) -> Path:
        return self.root / quarter / area / lang

    def _load(self, folder: Path) -> ReportVersion | None:
        try:
            body = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            known = {"quarter", "area", "region", "lang", "version", "edition", "created_at", "created_by", "events",
                     "disclosure", "files"}
            return ReportVersion(quarter=str(body["quarter"]), area=str(body["area"]), lang=str(body["lang"]),
                                 version=int(body["version"]), edition=str(body.get("edition", "full")),
                                 created_at=str(body["created_at"]), created_by=str(body["created_by"]),
                                 files=dict(body["files"]), events=int(body.get("events", 0)), folder=folder,
                                 disclosure=body.get("disclosure"),
                                 extra={k: v for k, v in body.items() if k not in known})
        except (OSError, ValueError, KeyError, TypeError):
            # A folder without a readable manifest is not a version (a copy half made by hand).
            return None

    def versions(self, *, quarter: str | None = None, area: str | None = None, lang: str | None = None,
                 edition: str | None = None) -> list[ReportVersion]:
        """The archived versions matching the given fields: newest quarter first, then area, language, newest version."""
        if not self.root.is_dir():
            return []
        quarters = [parse_quarter(quarter)] if quarter else sorted(
            (p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)
        areas = [check_area(area)] if area else list(report_areas())
        langs = [check_language(lang)] if lang else ["en", "fr"]
        found: list[ReportVersion] = []
        for q in quarters:
            for a in areas:
                for lg in langs:
                    parent = self._area_dir(q, a, lg)
                    if not parent.is_dir():
                        continue
                    numbered = sorted(((int(m.group(1)), p) for p in parent.iterdir()
                                       if (m := _VERSION_DIR.match(p.name))), reverse=True)
                    for _n, folder in numbered:
                        loaded = self._load(folder)
                        if loaded is not None and (edition is None or loaded.edition == edition):
                            found.append(loaded)
        return found

    def version(self, *, quarter: str, area: str | None, lang: str, version: int) -> ReportVersion:
        """One version; :class:`NotFoundError` naming it when it is not archived."""
        q, a, lg = parse_quarter(quarter), check_area(area), check_language(lang)
        found = self._load(self._area_dir(q, a, lg) / f"v{int(version)}")
        if found is None:
            raise NotFoundError(f"report {q}/{a}/{lg} version {version} is not in the archive")
        return found

    def latest(self, *, quarter: str, area: str | None, lang: str, edition: str | None = None) -> ReportVersion | None:
        """The newest version of the quarter, area and language (of ``edition`` if given), or ``None``."""
        found = self.versions(quarter=quarter, area=check_area(area), lang=lang, edition=edition)
        return found[0] if found else None

    def read(self, version: ReportVersion, kind: str) -> bytes:
        """The bytes of a version's ``html`` or ``pdf`` file, checked against the manifest's size and SHA-256.

        Raises
        ------
        ValidationError
            An unknown kind.
        StoreError
            The file is missing or does not match its manifest (changed after it was archived).
        """
        if kind not in FILES:
            raise ValidationError(f"file must be one of {', '.join(FILES)}, got {kind!r}",
                                  [Problem("unknown file", column="file", value=kind)])
        path = version.folder / FILES[kind]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"report {version.key}: {FILES[kind]} cannot be read ({exc.strerror or exc})") from None
        expected = version.files.get(kind, {})
        if len(data) != int(expected.get("size", -1)) or _sha256(data) != expected.get("sha256"):
            raise StoreError(f"report {version.key}: {FILES[kind]} does not match its manifest (changed after it "
                             f"was archived); generate the report again")
        return data

    # ------------------------------------------------------------------ recipients

    @property
    def recipients_path(self) -> Path:
        return self.root / "recipients.json"

    def recipients(self) -> dict[str, list[str]]:
        """Area -> its recipient addresses (every area present, empty when none is set)."""
        lists: dict[str, list[str]] = {area: [] for area in report_areas()}
        try:
            body = json.loads(self.recipients_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return lists
        except (OSError, ValueError) as exc:
            raise StoreError(f"recipient lists {self.recipients_path}: cannot be read ({exc})") from None
        for area, addresses in (body.get("areas") or {}).items():
            if area in lists and isinstance(addresses, list):
                lists[area] = [str(a) for a in addresses]
        return lists

    def set_recipients(self, area: str | None, addresses: str | list[str], *, updated_by: str) -> list[str]:
        """Replace ``area``'s recipient list with the checked ``addresses``; returns the list kept.

        Raises
        ------
        ValidationError
            An unknown area or bad addresses (see :func:`parse_recipients`); nothing is changed.
        """
        key = check_area(area)
        found = parse_recipients(addresses, area=key)
        lists = self.recipients()
        lists[key] = found
        body = {"areas": lists, "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "updated_by": str(updated_by)}
        self._write_json(self.recipients_path, body)
        return found

    def _write_json(self, path: Path, body: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise StoreError(f"report archive {self.root}: cannot write {path.name} ({exc.strerror or exc})") from None
        finally:
            if tmp.exists():
                tmp.unlink()


def generate_version(store: Any, archive: ReportArchive, *, quarter: str, area: str | None, lang: str,
                     created_by: str, disclosure: DisclosureRule | None = None,
                     progress: Progress | None = None) -> ReportVersion:
    """Build one area's quarterly report from ``store``, render it to HTML and PDF and keep it as a new version.

    Parameters
    ----------
    store
        The event store.
    archive
        Where the version goes.
    quarter, area, lang
        ``2026Q3``; ``None``/``national`` or a police region; ``en`` or ``fr``.
    created_by
        Account recorded in the manifest.
    disclosure
        Build the edition for readers of aggregates under this rule (``edition = "aggregates"``).
    progress
        ``progress(fraction, message)`` between steps.

    Raises
    ------
    ValidationError
        A bad quarter, area or language, before any event is read.
    """
    from dataclasses import asdict

    from geo_ibm.reportdoc.build import build_report
    from geo_ibm.reportdoc.html import render_html
    from geo_ibm.reportdoc.pdf import render_pdf

    quarter, key, lang = parse_quarter(quarter), check_area(area), check_language(lang)
    step = progress or (lambda _f, _m: None)
    region = None if key == NATIONAL else key
    built = build_report(store, quarter=quarter, region=region, lang=lang, disclosure=disclosure,
                         progress=lambda f, m: step(0.9 * f, m))
    step(0.9, f"{key}: rendering HTML and PDF")
    html, pdf = render_html(built.document), render_pdf(built.document)
    step(0.97, f"{key}: archiving")
    rule = None if disclosure is None else asdict(disclosure)
    found = archive.save(quarter=quarter, area=key, lang=lang, html=html, pdf=pdf, created_by=created_by,
                         edition="full" if disclosure is None else "aggregates", events=built.events, disclosure=rule)
    step(1.0, f"{key}: version {found.version} archived")
    return found


def open_archive(location: str | os.PathLike[str] | None = None) -> ReportArchive:
    """The report archive of the store at ``location`` (see :func:`archive_dir`)."""
    return ReportArchive(archive_dir(location))


__all__ = ["ARCHIVE_FOLDER", "EDITIONS", "FILES", "MAX_RECIPIENTS", "MEDIA_TYPES", "NATIONAL", "REPORTS_DIR_ENV",
           "ReportArchive", "ReportVersion", "archive_dir", "check_address", "check_area", "generate_version",
           "open_archive", "parse_recipients", "report_areas"]
