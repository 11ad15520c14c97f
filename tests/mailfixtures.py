"""Mail test helpers: a local SMTP server (aiosmtpd) that keeps what it accepts."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from geo_ibm.store.pg_local import free_port


@dataclass
class Handler:
    """Keeps every message the server accepts; refuses the recipients and data it is told to."""

    refuse_rcpt: set[str] = field(default_factory=set)
    refuse_data: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse_rcpt:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_data:
            return self.refuse_data
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "data": envelope.content,
                              "tls": server.transport.get_extra_info("ssl_object") is not None, "authenticated": session.authenticated})
        return "250 Message accepted"


@contextlib.contextmanager
def smtp_server(handler: Handler, **kwargs: Any) -> Iterator[int]:
    """An aiosmtpd server on 127.0.0.1 at a free port for the block; yields the port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
