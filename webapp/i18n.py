"""Interface language (English, French): choice from a cookie or Accept-Language, message catalogs."""
from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from flask import has_request_context, request

LANGUAGES: tuple[str, ...] = ("en", "fr")
"""Interface languages; English is the source language of every message."""

DEFAULT_LANGUAGE = "en"


@cache
def catalog(language: str) -> dict[str, str]:
    """The message catalog of ``language`` (English source text -> translation)."""
    if language == DEFAULT_LANGUAGE:
        return {}
    text = resources.files("webapp").joinpath("translations", f"{language}.json").read_text(encoding="utf-8")
    return json.loads(text)


def get_language() -> str:
    """The request's language: the ``lang`` cookie (set by the switch), else Accept-Language."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    chosen = request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) or DEFAULT_LANGUAGE


def translate(message: str, language: str, **values: Any) -> str:
    """``message`` in ``language`` with ``%(name)s`` placeholders filled from ``values``."""
    text = catalog(language).get(message, message)
    return text % values if values else text


def gettext(message: str, **values: Any) -> str:
    """``message`` in the request's language."""
    return translate(message, get_language(), **values)


def init_app(app: Any) -> None:
    """Expose ``_`` and ``current_language`` to templates."""
    app.jinja_env.globals.update(_=gettext, current_language=get_language, LANGUAGES=LANGUAGES)
