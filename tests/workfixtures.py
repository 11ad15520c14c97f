"""Work a test forbids: functions replaced by ones that record their call and fail the test.

For refusals that must come before any work, proved without timing: the work is forbidden and
the refusal asserted (the ``forbid`` fixture of ``conftest``).
"""
from __future__ import annotations

import pytest


class Forbidden:
    """Replaces functions by ones that record their call and fail the test (see the ``forbid`` fixture)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.ran: list[str] = []
        """The names of the forbidden functions that were called, in order."""

    def __call__(self, target: object, name: str | None = None, *, why: str = "the request is refused first") -> None:
        """Forbid ``target`` (a dotted path, or an object with the attribute ``name``)."""
        label = target if isinstance(target, str) else f"{getattr(target, '__name__', target)}.{name}"

        def record(*args: object, **kwargs: object) -> None:
            self.ran.append(str(label))
            raise AssertionError(f"{label} must not run: {why}")

        if isinstance(target, str):
            self._monkeypatch.setattr(target, record)
        else:
            self._monkeypatch.setattr(target, str(name), record)
