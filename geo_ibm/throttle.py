"""The login throttle: failed logins per (user name, client address) in a sliding window, kept in the event store."""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from geo_ibm.store.base import EventStore


class LoginThrottle:
    """Count failed logins per (user name, client address) in a sliding window.

    After ``max_failures`` failures within ``window_s`` seconds further attempts for that pair
    are refused until the oldest of those failures leaves the window. The failures live in
    ``store`` (a key and a time per failure), so every process of the web app sees the same
    counts and a restart forgets nothing.

    The state stays bounded: checks never add anything, each pair keeps at most
    ``max_failures`` times, failures that left the window go at the next failure, and beyond
    ``max_keys`` pairs the one with the oldest latest failure goes. ``clock`` gives the time
    in seconds; the wall clock by default, which all processes share.
    """

    def __init__(self, store: EventStore, *, max_failures: int = 5, window_s: float = 900.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        if max_failures < 1 or max_keys < 1 or not window_s > 0:
            raise ValueError(f"LoginThrottle needs max_failures >= 1, max_keys >= 1 and window_s > 0, got "
                             f"{max_failures!r}, {max_keys!r}, {window_s!r}")
        self.store = store
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock

    def __len__(self) -> int:
        """Number of (name, address) pairs with a failure still in the window."""
        return self.store.login_failure_keys(since=self._clock() - self.window_s)

    @staticmethod
    def _key(name: str, address: str | None) -> str:
        # A digest keeps every key the same small size, however long a name a client sends.
        return hashlib.sha256(f"{name.casefold()}\0{address or ''}".encode()).hexdigest()

    def retry_after(self, name: str, address: str | None) -> int:
        """Seconds until the pair may try again (0: allowed now)."""
        now = self._clock()
        times = self.store.login_failures(self._key(name, address), since=now - self.window_s)[-self.max_failures:]
        if len(times) < self.max_failures:
            return 0
        return max(1, int(self.window_s - (now - times[0])) + 1)

    def failed(self, name: str, address: str | None) -> None:
        """Count one failure of the pair."""
        now = self._clock()
        self.store.add_login_failure(self._key(name, address), now, since=now - self.window_s,
                                     keep=self.max_failures, max_keys=self.max_keys)

    def reset(self, name: str, address: str | None) -> None:
        """Forget the pair's failures (after a successful login)."""
        self.store.clear_login_failures(self._key(name, address))
