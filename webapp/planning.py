"""The planning pages."""
from __future__ import annotations

from flask import Blueprint

planning_bp = Blueprint("planning", __name__, url_prefix="/planning")
