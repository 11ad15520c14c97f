"""The routes pages."""
from __future__ import annotations

from flask import Blueprint

routes_bp = Blueprint("routes", __name__, url_prefix="/routes")
