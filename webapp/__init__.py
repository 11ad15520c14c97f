"""The geo_ibm web application: ``create_app`` builds it (config from the environment at call time)."""
from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from geo_ibm.errors import GeoIbmError, ValidationError
from geo_ibm.importlimits import import_limits
from geo_ibm.settings import archive_locations, env_number, margin_m, store_location

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_MB = 64


def _secret_key(instance: Path) -> str:
    """``GEO_IBM_SECRET_KEY``, else a random key kept in ``<instance>/secret_key`` (mode 0600)."""
    env = os.environ.get("GEO_IBM_SECRET_KEY")
    if env:
        return env
    path = instance / "secret_key"
    # The instance folder holds the secret key, uploads in progress and usually the store.
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        key = secrets.token_hex(32)
        handle.write(key)
    return key


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in {"1", "true", "yes", "on"}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web app.

    Configuration, read when this is called: ``GEO_IBM_STORE`` (store path),
    ``GEO_IBM_SECRET_KEY`` (else a random key in ``<instance>/secret_key``, mode 0600),
    ``GEO_IBM_TILE_URL`` / ``GEO_IBM_TILE_ATTRIBUTION`` (optional basemap),
    ``GEO_IBM_SECURE_COOKIES`` (send cookies over HTTPS only), ``GEO_IBM_MAX_UPLOAD_MB``,
    ``GEO_IBM_TRUSTED_PROXIES`` (reverse proxies in front of the app whose X-Forwarded-For
    gives the client address; 0, the default, trusts none), ``GEO_IBM_ARCHIVES`` (the archives
    the Archives page offers, ``name=location;...``), ``GEO_IBM_DASK_SCHEDULER`` (their Dask
    scheduler, ``tcp://HOST:8786``) and ``GEO_IBM_DASK_WORKERS`` (without a scheduler, workers
    of the local cluster each archive job starts; default 2).
    ``test_config`` overrides any Flask config key; ``INSTANCE_PATH`` in it sets the instance
    folder.
    """
    test_config = dict(test_config or {})
    instance_path = test_config.pop("INSTANCE_PATH", None) or os.environ.get("GEO_IBM_INSTANCE")
    app = Flask(__name__, instance_path=str(Path(instance_path).resolve()) if instance_path else None,
                instance_relative_config=True)
    # A malformed number stops the start with a ValidationError naming the variable.
    max_mb = env_number("GEO_IBM_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB, positive=True, what="a number of MiB")
    app.config.update(
        STORE_PATH=str(store_location()),
        PUBLIC_URL=os.environ.get("GEO_IBM_PUBLIC_URL") or "http://localhost",
        DISCLOSURE_MIN_COUNT=env_number("GEO_IBM_DISCLOSURE_MIN_COUNT", 5, integer=True, minimum=1,
                                        what="a whole number of events"),
        DISCLOSURE_ROUNDING=env_number("GEO_IBM_DISCLOSURE_ROUNDING", 5, integer=True, minimum=1,
                                       what="a whole number of events"),
        DISCLOSURE_CELL_M=env_number("GEO_IBM_DISCLOSURE_CELL_M", 500.0, positive=True, what="a number of metres"),
        DISCLOSURE_PERIOD=os.environ.get("GEO_IBM_DISCLOSURE_PERIOD") or "quarter",
        TILE_URL=os.environ.get("GEO_IBM_TILE_URL") or None,
        TILE_ATTRIBUTION=os.environ.get("GEO_IBM_TILE_ATTRIBUTION") or None,
        MAX_CONTENT_LENGTH=int(max_mb * 1024 * 1024),
        SESSION_COOKIE_NAME="geo_ibm_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=_truthy(os.environ.get("GEO_IBM_SECURE_COOKIES")),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
        LOGIN_MAX_FAILURES=5,
        LOGIN_WINDOW_S=900,
        TRUSTED_PROXIES=os.environ.get("GEO_IBM_TRUSTED_PROXIES") or 0,
        MAP_MAX_MARKERS=1000,
        MAP_CACHE_SIZE=16,
        ARCHIVES=archive_locations(),
        DASK_SCHEDULER=os.environ.get("GEO_IBM_DASK_SCHEDULER") or None,
        DASK_WORKERS=env_number("GEO_IBM_DASK_WORKERS", 2, integer=True, minimum=1, what="a whole number of workers"),
    )
    app.config.update(test_config)
    from webapp.access import configured_rule

    try:  # a bad setting stops the start, rather than failing every viewer's request
        configured_rule(app.config)
    except GeoIbmError as exc:
        raise ValidationError(f"GEO_IBM_DISCLOSURE_* settings: {exc}") from None
    import_limits()  # likewise GEO_IBM_IMPORT_MAX_MB/_ROWS and GEO_IBM_MARGIN_M, read again at each import
    margin_m()
    if not app.config.get("DASK_SCHEDULER"):
        from geo_ibm.archive.distributed import max_local_workers

        if int(app.config["DASK_WORKERS"]) > max_local_workers():
            raise ValidationError(f"GEO_IBM_DASK_WORKERS: {app.config['DASK_WORKERS']} local workers is more than the "
                                  f"limit of {max_local_workers()} on this machine; set GEO_IBM_DASK_SCHEDULER for more")
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(Path(app.instance_path))

    from webapp import auth, cache, i18n
    from webapp.admin import admin_bp
    from webapp.api import api_bp
    from webapp.archives import archives_bp
    from webapp.assets import assets_bp
    from webapp.exports import exports_bp
    from webapp.imports import imports_bp
    from webapp.maps import maps_bp
    from webapp.ogc import ogc_bp
    from webapp.operations import operations_bp
    from webapp.pages import pages_bp
    from webapp.planning import planning_bp
    from webapp.reports import reports_bp
    from webapp.routes import routes_bp

    i18n.init_app(app)
    cache.init_app(app)
    auth.init_app(app)
    for blueprint in (assets_bp, pages_bp, maps_bp, imports_bp, exports_bp, reports_bp, routes_bp, planning_bp,
                      operations_bp, archives_bp, admin_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(api_bp, url_prefix="/api")
    app.register_blueprint(ogc_bp, url_prefix="/ogc")
    _register_error_handlers(app)
    return app


def _error_response(status: int, message: str, problems: list[Any] | None = None, parameter: str | None = None):
    from webapp.auth import is_api_request
    from webapp.responses import json_error

    if is_api_request():
        return json_error(status, message, parameter=parameter)
    return render_template("error.html", status=status, message=message, problems=problems or []), status


def _register_error_handlers(app: Flask) -> None:
    from webapp.i18n import gettext as _

    @app.errorhandler(GeoIbmError)
    def library_error(exc: GeoIbmError):
        from webapp.responses import error_parameter

        problems = list(getattr(exc, "problems", []) or [])
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        return _error_response(int(getattr(exc, "http_status", 400)), first, problems, error_parameter(exc))

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return _error_response(400, _("The form expired or did not come from this site; reload the page and try again.")
                               + f" ({exc.description})")

    @app.errorhandler(413)
    def too_large(_exc: HTTPException):
        limit_mb = (app.config.get("MAX_CONTENT_LENGTH") or 0) / (1024 * 1024)
        return _error_response(413, _("The upload is larger than the limit of %(mb)s MB.", mb=f"{limit_mb:g}"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        from webapp.auth import is_api_request
        from webapp.responses import json_error_for

        if is_api_request():
            return json_error_for(exc)  # keeps the error's headers (Allow of a 405)
        response = make_response(_error_response(exc.code or 500, exc.description or exc.name))
        for key, value in exc.get_headers():
            if key.lower() != "content-type":
                response.headers[key] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error in %s %s", request.method, request.path)
        return _error_response(500, _("Internal error; the details are in the server log."))
