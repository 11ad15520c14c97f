"""Response builders shared by every blueprint: JSON and GeoJSON bodies, downloads, and the one JSON error body."""
from __future__ import annotations

import json as std_json
import logging
from http import HTTPStatus
from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException

from geo_ibm.errors import GeoIbmError
from geo_ibm.geojson import json_value

log = logging.getLogger(__name__)

GEOJSON = "application/geo+json"

ERROR_CODES: dict[int, str] = {
    400: "InvalidParameterValue",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "ServerError",
}
"""The ``code`` of a JSON error body per HTTP status (OGC API exception codes where they exist);
other statuses use their reason phrase without spaces (``MethodNotAllowed``)."""


def public_url() -> str:
    """The app's public base URL (``PUBLIC_URL``, e.g. ``https://geo-ibm.police.lu``), no trailing slash."""
    return str(current_app.config["PUBLIC_URL"]).rstrip("/")


def _default(value: Any) -> Any:
    converted = json_value(value)
    if converted is value:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return converted


def json_text(body: Any) -> str:
    """``body`` as JSON text, made JSON-safe (numpy values, timestamps; NaN becomes null).

    Bodies are serialised directly, with numpy values and timestamps converted as they are
    met; only a body holding NaN (not JSON) is walked once more through :func:`json_value`.
    """
    try:
        return std_json.dumps(body, default=_default, allow_nan=False, ensure_ascii=False)
    except ValueError:
        return std_json.dumps(json_value(body), ensure_ascii=False)


def json_response(body: Any, *, status: int = 200, mimetype: str = "application/json",
                  serialised: dict[str, str] | None = None) -> Response:
    """``body`` (made JSON-safe, see :func:`json_text`) as a JSON response.

    ``serialised`` adds members to the object ``body`` whose values are JSON text already
    (a cached page of features), appended without parsing them again.
    """
    text = json_text(body)
    if serialised:
        extra = ", ".join(f"{std_json.dumps(name)}: {value}" for name, value in serialised.items())
        text = text[:-1] + (", " if text != "{}" else "") + extra + "}"
    return Response(text, status=status, mimetype=mimetype)


def attachment(data: bytes | str, mimetype: str, filename: str) -> Response:
    """A download: ``data`` with a ``Content-Disposition: attachment`` header naming ``filename``."""
    return Response(data, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def error_code(status: int) -> str:
    """The ``code`` member for ``status`` (see :data:`ERROR_CODES`)."""
    if status in ERROR_CODES:
        return ERROR_CODES[status]
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "Error"


def error_document(status: int, description: str, *, parameter: str | None = None) -> dict[str, Any]:
    """The one JSON error body: ``{"code", "description"[, "parameter"]}``.

    ``parameter`` names the query parameter at fault when one is. Every JSON error of the app
    (API, OGC, authentication, the app-wide handlers) is built here.
    """
    body: dict[str, Any] = {"code": error_code(status), "description": description}
    if parameter:
        body["parameter"] = parameter
    return body


def error_parameter(exc: BaseException) -> str | None:
    """The parameter (problem column) an error names first, if any."""
    problems = getattr(exc, "problems", None) or []
    return problems[0].column if problems and problems[0].column else None


def error_body(exc: BaseException) -> tuple[dict[str, Any], int]:
    """The JSON error body and HTTP status for any exception.

    A library error (``GeoIbmError``) keeps its message and HTTP status; an HTTP error its
    status and description; anything else is a 500 with a generic description (details stay
    in the server log, never in a response).
    """
    if isinstance(exc, GeoIbmError):
        status = int(getattr(exc, "http_status", 400))
        return error_document(status, str(exc), parameter=error_parameter(exc)), status
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        return error_document(status, exc.description or exc.name), status
    return error_document(500, "internal error; see the server log"), 500


def json_error(status: int, description: str, *, parameter: str | None = None,
               headers: dict[str, str] | None = None) -> Response:
    """A JSON error response (:func:`error_document`) with optional extra headers."""
    response = json_response(error_document(status, description, parameter=parameter), status=status)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def json_error_for(exc: BaseException) -> Response:
    """The JSON error response for any exception; unexpected ones are logged and never shown.

    HTTP errors keep their headers (``Allow`` of a 405, ``WWW-Authenticate``).
    """
    if not isinstance(exc, (GeoIbmError, HTTPException)):
        log.exception("unexpected error in %s %s", request.method, request.path)
    body, status = error_body(exc)
    response = json_response(body, status=status)
    if isinstance(exc, HTTPException) and exc.response is None:
        for key, value in exc.get_headers():
            if key.lower() != "content-type":
                response.headers[key] = value
    return response
