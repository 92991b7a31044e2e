"""The demo's POP3 server: the test suite's FakePOP3Server with the sample mailbox.

    server = DemoMailServer()                 # the mailbox of demo.content, user demo / demo-pop3
    await server.start()                      # 127.0.0.1, a free port: server.port
    uid = server.deliver()                    # one new message now (the first is the alarm)
    task = asyncio.create_task(server.deliver_forever(30.0))
    await server.stop()

The engine is tests/servers/fake_pop3.py (real RFC 1939 semantics), imported rather
than copied, so the demo exercises exactly the server the tests trust.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
import logging
import secrets

from demo.content import DeliveryCycle, initial_messages
from tests.servers.fake_pop3 import FakePOP3Server

_LOGGER = logging.getLogger(__name__)

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-pop3"  # noqa: S105 (the demo prints it; loopback only)
# The demo mailbox never grows past this; older mail is removed as a mail client would.
MAX_MESSAGES = 40
# Session records are only for tests; a long demo keeps the last few.
KEEP_SESSIONS = 50


class DemoMailServer:
    """The sample mailbox served over POP3 on 127.0.0.1, with new mail on demand."""

    def __init__(self, *, max_messages: int = MAX_MESSAGES) -> None:
        """Fill the mailbox with the sample mail; nothing listens before `start()`."""
        self.pop3 = FakePOP3Server(users={DEMO_USERNAME: DEMO_PASSWORD})
        self.cycle = DeliveryCycle()
        self.max_messages = max_messages
        # Uids unique per run, so a mailbox from an earlier run is never mistaken for this one.
        self._run = secrets.token_hex(3)
        self._count = 0
        for raw in initial_messages(datetime.now(UTC)):
            self._add(raw)

    @property
    def host(self) -> str:
        """Where the server listens (always 127.0.0.1)."""
        return self.pop3.host

    @property
    def port(self) -> int:
        """The port, known after `start()`."""
        return self.pop3.port

    def _add(self, raw: bytes) -> str:
        self._count += 1
        return self.pop3.mailbox.add(raw, uid=f"demo-{self._run}-{self._count:05d}")

    async def start(self) -> None:
        """Listen on 127.0.0.1, a free port."""
        await self.pop3.start()

    async def stop(self) -> None:
        """Close the listener and every connection."""
        await self.pop3.stop()

    def deliver(self) -> str:
        """Put the next sample message in the mailbox; returns its uid."""
        uid = self._add(self.cycle.next_message(datetime.now(UTC)))
        mailbox = self.pop3.mailbox
        while len(mailbox) > self.max_messages:
            mailbox.remove(mailbox.uids()[0])
        del self.pop3.sessions[:-KEEP_SESSIONS]
        return uid

    async def deliver_forever(self, interval: float) -> None:
        """Deliver one message every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            uid = self.deliver()
            _LOGGER.info("delivered %s (%d messages waiting)", uid, len(self.pop3.mailbox))
