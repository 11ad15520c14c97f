"""The app's instance folder: private scratch space for uploads and export files."""
from __future__ import annotations

from pathlib import Path

from flask import current_app


def scratch_dir() -> Path:
    """``<instance>/uploads``, created owner-only: uploads and exports hold interception records."""
    root = Path(current_app.instance_path) / "uploads"
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root
