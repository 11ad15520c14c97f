"""Interface language (English, French): the choice per request and the gettext catalogs (Flask-Babel)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import flask_babel
from flask import Flask, has_request_context, request

LANGUAGES: tuple[str, ...] = ("en", "fr")
"""Interface languages; English is the source language of every message."""

DEFAULT_LANGUAGE = "en"

TRANSLATIONS_DIR = Path(__file__).with_name("translations")
"""The catalogs: ``<language>/LC_MESSAGES/messages.po`` and its compiled ``messages.mo``."""


def get_language() -> str:
    """The request's language: the ``lang`` cookie (set by the switch), else Accept-Language."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    chosen = request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) or DEFAULT_LANGUAGE


def gettext(message: str, **values: Any) -> str:
    """``message`` in the request's language, ``%(name)s`` placeholders filled from ``values``.

    Without ``values`` the text is returned as is (a literal ``%`` needs no doubling); outside a
    request it stays English.
    """
    return flask_babel.gettext(message, **values)


def ngettext(singular: str, plural: str, n: int, /, **values: Any) -> str:
    """The form of ``singular``/``plural`` that fits the count ``n`` in the request's language.

    ``%(n)s`` stands for ``n`` unless ``values`` give another ``n``; other placeholders are
    filled from ``values``. The text is always formatted, so a literal ``%`` is written ``%%``.
    """
    return flask_babel.ngettext(singular, plural, n, **{"n": n, **values})


def N_(message: str) -> str:
    """Mark ``message`` for extraction where it is translated later, from data; returns it unchanged."""
    return message


DATA_MESSAGES: tuple[str, ...] = (
    # Roles (geo_ibm.accounts.ROLES), shown through _(role).
    N_("viewer"), N_("analyst"), N_("planner"), N_("admin"),
    # Event codes (geo_ibm.events): filter choices, map legends. Country codes stay as they are.
    N_("motorway"), N_("rest_area"), N_("border_crossing"), N_("train_station"), N_("bus_station"),
    N_("urban"), N_("other"),
    N_("car"), N_("van"), N_("truck"), N_("bus"), N_("train"), N_("taxi"), N_("on_foot"),
    N_("unknown"),
    # Columns: the overview's event table and the map tooltips name them as they are...
    N_("event_id"), N_("observed_at"), N_("location_kind"), N_("entry_country"), N_("transport_mode"),
    N_("persons"), N_("smugglers"), N_("source_unit"), N_("notes"), N_("destination_country"), N_("nationalities"),
    N_("count"), N_("n_events"), N_("cluster"), N_("gi_bin"), N_("gi_z"),
    # ...event popups as words (geo_ibm.maps.EVENT_POPUP_COLUMNS), crossing tooltips capitalised.
    N_("Event id"), N_("Observed at"), N_("Persons"), N_("Smugglers"), N_("Source unit"), N_("Notes"),
    N_("Destination country"), N_("Nationalities"),
    N_("Kind"), N_("Ref"), N_("Neighbour"),
    # Crossing kinds (geo_ibm.layers.CROSSING_KINDS).
    N_("national_road"), N_("bridge"), N_("rail"), N_("airport"),
    # Neighbour names drawn on report maps.
    N_("Belgium"), N_("France"), N_("Germany"),
    # Gi* confidence bins (geo_ibm.maps.GI_BIN_LABELS).
    N_("Hot spot, 99% confidence"), N_("Hot spot, 95% confidence"), N_("Hot spot, 90% confidence"),
    N_("Cold spot, 90% confidence"), N_("Cold spot, 95% confidence"), N_("Cold spot, 99% confidence"),
    # Emerging hot spot categories (geo_ibm.maps.EMERGING_COLOURS).
    N_("new hot spot"), N_("consecutive hot spot"), N_("intensifying hot spot"), N_("persistent hot spot"),
    N_("diminishing hot spot"), N_("sporadic hot spot"), N_("oscillating hot spot"), N_("historical hot spot"),
    N_("new cold spot"), N_("consecutive cold spot"), N_("intensifying cold spot"), N_("persistent cold spot"),
    N_("diminishing cold spot"), N_("sporadic cold spot"), N_("oscillating cold spot"), N_("historical cold spot"),
    # Report table titles (geo_ibm.tables.TABLE_TITLES).
    N_("Quarter-on-quarter change per police region"), N_("Quarter-on-quarter change per canton"),
    N_("Events per weekday and hour (local time)"), N_("Events by distance band to the nearest border"),
    N_("Events by distance band to the nearest crossing point"), N_("Hot spot cells with the highest Gi* z-scores"),
    N_("Named hotspots: contiguous significant Gi* cells merged, named by place, ranked by events"),
    # Translated inside f-strings, which extraction cannot read before Python 3.12.
    N_("Data period"), N_("Projection"), N_("not available in this installation"),
    N_("Individual events are shown when at most"), N_("match the filter."),
    # Disclosure control (geo_ibm.disclosure): block periods and the reason a layer is withheld.
    N_("quarter"), N_("week"), N_("day"), N_("needs the analyst role (it shows single event positions)"),
    N_("No cell holds enough events to be shown."),
)
"""Messages the code translates from data or where extraction cannot see them, so that
``make messages`` keeps them in the catalogs; the tests check the lists they come from."""


def init_app(app: Flask) -> None:
    """Serve the catalogs of ``TRANSLATIONS_DIR`` in the language of :func:`get_language`.

    Templates get ``_``, ``gettext`` and ``ngettext`` (Jinja's i18n extension) with this module's
    functions, plus ``current_language`` and ``LANGUAGES``.
    """
    flask_babel.Babel(app, locale_selector=get_language, default_locale=DEFAULT_LANGUAGE,
                      default_translation_directories=str(TRANSLATIONS_DIR), configure_jinja=False)
    # Old-style callables: messages come back as plain text and are escaped on output like any
    # value. Newstyle ones would return markup, trusting translations and any data passed to _().
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(gettext, ngettext, newstyle=False)  # type: ignore[attr-defined]  # added by the extension
    app.jinja_env.globals.update(current_language=get_language, LANGUAGES=LANGUAGES)
