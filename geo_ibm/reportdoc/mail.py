"""Sending an archived quarterly report by e-mail: SMTP settings from the environment, one message per area's recipient list, audited.

Settings are read when a report is sent, never at import:

``GEO_IBM_SMTP_HOST``
    The SMTP server (required).
``GEO_IBM_SMTP_PORT``
    Its port; default 25 with ``GEO_IBM_SMTP_TLS=none``, 587 with ``starttls``, 465 with ``ssl``.
``GEO_IBM_SMTP_TLS``
    ``starttls`` (default), ``ssl`` (TLS from the first byte) or ``none``. With TLS the
    server's certificate and host name are checked against the system's CAs, or against
    ``GEO_IBM_SMTP_CAFILE`` (a PEM file) for a private CA.
``GEO_IBM_SMTP_USER``, ``GEO_IBM_SMTP_PASSWORD``
    Login, both or neither; a password is only sent over TLS (or to a server on this host).
``GEO_IBM_SMTP_FROM``
    The sender address (required).
``GEO_IBM_SMTP_TIMEOUT``
    Seconds to wait for the server (default 30).

A missing or bad setting raises :class:`~geo_ibm.errors.ValidationError` naming it; a server
that cannot be reached or refuses raises :class:`MailError` with the server's reply. Every
attempt to send a version is recorded in the store's audit trail (``report send``): who, the
version, how many recipients and the result.
"""
from __future__ import annotations

import math
import os
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from geo_ibm.errors import GeoIbmError, Problem, ValidationError
from geo_ibm.reportdoc.archive import NATIONAL, ReportArchive, ReportVersion, check_address
from geo_ibm.reportdoc.strings import translator

TLS_MODES: tuple[str, ...] = ("none", "starttls", "ssl")
DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "ssl": 465}
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

AUDIT_ACTION = "report send"


class MailError(GeoIbmError):
    """The SMTP server could not be reached or refused the message (HTTP 502); the text names the server and its reply."""

    http_status = 502


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how reports are sent (see the module's docstring for the environment variables)."""

    host: str
    port: int
    tls: str
    sender: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    cafile: str | None = None

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


def _setting_error(name: str, message: str, value: Any = None) -> ValidationError:
    reason = "not set" if message.startswith("not set") else "bad setting"
    return ValidationError(f"{name}: {message}", [Problem(reason, column=name, value=value)])


def smtp_settings(environ: dict[str, str] | None = None) -> SmtpSettings:
    """The SMTP settings of the environment (``environ``, default ``os.environ``), checked.

    Raises
    ------
    ValidationError
        Naming the setting: no ``GEO_IBM_SMTP_HOST`` or ``GEO_IBM_SMTP_FROM``, an unknown
        ``GEO_IBM_SMTP_TLS``, a bad port or timeout, a user without a password (or the reverse),
        a password over a plain connection to another host, a missing CA file.
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name)
        return value.strip() if value is not None and value.strip() else None

    host = get("GEO_IBM_SMTP_HOST")
    if host is None:
        raise _setting_error("GEO_IBM_SMTP_HOST", "not set: reports cannot be sent by e-mail until it names the SMTP "
                             "server (with GEO_IBM_SMTP_FROM, and GEO_IBM_SMTP_PORT, _TLS, _USER, _PASSWORD as needed)")
    tls = (get("GEO_IBM_SMTP_TLS") or "starttls").lower()
    if tls not in TLS_MODES:
        raise _setting_error("GEO_IBM_SMTP_TLS", f"use one of {', '.join(TLS_MODES)}", tls)
    port_text = get("GEO_IBM_SMTP_PORT")
    if port_text is None:
        port = DEFAULT_PORTS[tls]
    elif port_text.isdigit() and 1 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise _setting_error("GEO_IBM_SMTP_PORT", "must be a port number from 1 to 65535", port_text)
    sender = get("GEO_IBM_SMTP_FROM")
    if sender is None:
        raise _setting_error("GEO_IBM_SMTP_FROM", "not set: the sender address of report e-mails is required")
    why = check_address(sender)
    if why is not None:
        raise _setting_error("GEO_IBM_SMTP_FROM", why, sender)
    user, password = get("GEO_IBM_SMTP_USER"), env.get("GEO_IBM_SMTP_PASSWORD") or None
    if user and not password:
        raise _setting_error("GEO_IBM_SMTP_PASSWORD", "not set, but GEO_IBM_SMTP_USER is: give both or neither")
    if password and not user:
        raise _setting_error("GEO_IBM_SMTP_USER", "not set, but GEO_IBM_SMTP_PASSWORD is: give both or neither")
    if password and tls == "none" and host.lower() not in LOCAL_HOSTS:
        raise _setting_error("GEO_IBM_SMTP_TLS", f"none would send the password to {host} in clear; use starttls or ssl",
                             tls)
    timeout_text = get("GEO_IBM_SMTP_TIMEOUT")
    try:
        timeout = 30.0 if timeout_text is None else float(timeout_text)
    except ValueError:
        timeout = math.nan
    if not 0 < timeout <= 600:
        raise _setting_error("GEO_IBM_SMTP_TIMEOUT", "must be a number of seconds above 0 and at most 600", timeout_text)
    cafile = get("GEO_IBM_SMTP_CAFILE")
    if cafile is not None and not os.path.isfile(cafile):
        raise _setting_error("GEO_IBM_SMTP_CAFILE", "no such file", cafile)
    return SmtpSettings(host=host, port=port, tls=tls, sender=sender, user=user, password=password, timeout=timeout,
                        cafile=cafile)


def attachment_name(version: ReportVersion, kind: str) -> str:
    """``geo_ibm-report-2026Q3-Nord-fr-v2.pdf``: the file name a version's file is sent and downloaded as."""
    return f"geo_ibm-report-{version.quarter}-{version.area}-{version.lang}-v{version.version}.{kind}"


def report_message(version: ReportVersion, *, pdf: bytes, html: bytes | None, sender: str,
                   recipients: list[str]) -> EmailMessage:
    """The e-mail of one version to one area's recipients: a short text in the report's language, the PDF and the HTML attached."""
    t = translator(version.lang)
    area = t("Luxembourg (national)") if version.area == NATIONAL else t("Police region %(region)s") % {
        "region": version.area}
    title = t("Quarterly IBM analysis report")
    message = EmailMessage()
    message["Subject"] = f"{title} {version.quarter} – {area} (v{version.version})"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    if version.lang == "fr":
        body = (f"Veuillez trouver ci-joint le {title[0].lower() + title[1:]} {version.quarter} pour {area} "
                f"(version {version.version}, établie le {version.created_at}), en PDF et en HTML autonome.\n")
    else:
        body = (f"Attached is the {title} {version.quarter} for {area} (version {version.version}, generated "
                f"{version.created_at}), as a PDF and as a self-contained HTML file.\n")
    if version.edition == "aggregates":
        body += ("\nÉdition pour les lecteurs d'agrégats : comptages protégés.\n" if version.lang == "fr"
                 else "\nEdition for readers of aggregates: counts are protected.\n")
    message.set_content(body)
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=attachment_name(version, "pdf"))
    if html is not None:
        message.add_attachment(html, maintype="text", subtype="html", filename=attachment_name(version, "html"))
    return message


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {' '.join(text.split())}"


def send_message(message: EmailMessage, settings: SmtpSettings) -> dict[str, str]:
    """Send ``message`` through the server of ``settings``; returns the recipients refused (address -> reply), if some were.

    Raises
    ------
    MailError
        The server cannot be reached, TLS fails, login is refused, or every recipient (or the
        sender, or the message) is refused; the text names the server and quotes its reply.
    """
    where = settings.server
    context = ssl.create_default_context(cafile=settings.cafile) if settings.tls != "none" else None
    try:
        smtp: smtplib.SMTP
        if settings.tls == "ssl":
            smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with smtp:
            smtp.ehlo()
            if settings.tls == "starttls":
                if not smtp.has_extn("starttls"):
                    raise MailError(f"SMTP server {where} does not offer STARTTLS; set GEO_IBM_SMTP_TLS=ssl or none "
                                    f"as the server needs")
                smtp.starttls(context=context)
                smtp.ehlo()
            if settings.user and settings.password:
                smtp.login(settings.user, settings.password)
            refused = smtp.send_message(message)
    except MailError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"SMTP server {where} refused the login of GEO_IBM_SMTP_USER: {_reply(exc)}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        replies = "; ".join(f"{a}: {c} {(r.decode('utf-8', 'replace') if isinstance(r, bytes) else r)}"
                            for a, (c, r) in list(exc.recipients.items())[:5])
        raise MailError(f"SMTP server {where} refused every recipient: {replies}") from None
    except smtplib.SMTPSenderRefused as exc:
        raise MailError(f"SMTP server {where} refused the sender GEO_IBM_SMTP_FROM={exc.sender}: {_reply(exc)}") from None
    except smtplib.SMTPResponseException as exc:
        raise MailError(f"SMTP server {where} refused the message: {_reply(exc)}") from None
    except ssl.SSLError as exc:
        raise MailError(f"SMTP server {where}: TLS failed ({exc.reason or exc}); check GEO_IBM_SMTP_TLS and "
                        f"GEO_IBM_SMTP_CAFILE") from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (getattr(exc, "strerror", None) or str(exc))
        raise MailError(f"SMTP server {where} cannot be reached: {reason}; check GEO_IBM_SMTP_HOST and "
                        f"GEO_IBM_SMTP_PORT") from None
    return {str(a): f"{c} {(r.decode('utf-8', 'replace') if isinstance(r, bytes) else r)}"
            for a, (c, r) in (refused or {}).items()}


@dataclass(frozen=True)
class SendOutcome:
    """What happened to one sending: the version, the recipients it went to and those the server refused."""

    version: ReportVersion
    recipients: int
    refused: dict[str, str]
    server: str

    @property
    def delivered(self) -> int:
        return self.recipients - len(self.refused)


def send_version(store: Any, archive: ReportArchive, version: ReportVersion, *, user: str,
                 settings: SmtpSettings | None = None, via: str = "cli", ip: str | None = None) -> SendOutcome:
    """Send ``version`` to its area's recipient list (one message), and record the attempt in the audit trail.

    Parameters
    ----------
    store
        The event store whose audit trail records the sending.
    archive
        The archive holding ``version`` and the recipient lists.
    user
        Account that sends.
    settings
        SMTP settings; default :func:`smtp_settings` of the environment.
    via
        ``cli`` or ``web``, recorded.

    Raises
    ------
    ValidationError
        No recipients for the area, or the SMTP settings are missing or bad (the problem
        names the setting); audited as ``not sent``.
    MailError
        The server could not be reached or refused; audited as ``failed`` with its reply.
    """
    detail: dict[str, Any] = {"quarter": version.quarter, "area": version.area, "lang": version.lang,
                              "version": version.version, "edition": version.edition, "via": via}
    if ip is not None:
        detail["ip"] = ip
    recipients = archive.recipients().get(version.area, [])
    detail["recipients"] = len(recipients)

    def record(result: str, **more: Any) -> None:
        store.audit(AUDIT_ACTION, user=user, detail={**detail, "result": result,
                                                     "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                                     **more})

    try:
        if not recipients:
            raise ValidationError(f"recipients: no e-mail address is set for {version.area}; an admin sets them on the "
                                  f"Reports page (recipients)", [Problem("no recipients", column="recipients",
                                                                         value=version.area)])
        settings = settings or smtp_settings()
        detail["server"] = settings.server
        pdf, html = archive.read(version, "pdf"), archive.read(version, "html")
        message = report_message(version, pdf=pdf, html=html, sender=settings.sender, recipients=recipients)
        refused = send_message(message, settings)
    except MailError as exc:
        record("failed", error=str(exc)[:500])
        raise
    except GeoIbmError as exc:
        record("not sent", error=str(exc).splitlines()[0][:500])
        raise
    record("sent" if not refused else "partly sent", refused=len(refused))
    return SendOutcome(version=version, recipients=len(recipients), refused=refused, server=settings.server)


__all__ = ["AUDIT_ACTION", "DEFAULT_PORTS", "TLS_MODES", "MailError", "SendOutcome", "SmtpSettings",
           "attachment_name", "report_message", "send_message", "send_version", "smtp_settings"]
