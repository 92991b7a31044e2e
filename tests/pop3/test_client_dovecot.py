"""The client against a real Dovecot: TLS both ways, each login it offers, its refusals."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import pytest

from custom_components.pop3_mail.pop3 import (
    POP3AuthError,
    POP3InUseError,
    POP3PlaintextRefusedError,
    POP3Session,
    Security,
    Stat,
    StatResult,
    Top,
    Uidl,
    client,
    connect,
)

if TYPE_CHECKING:
    from tests.servers.dovecot import DovecotServer
    from tests.servers.fixtures import DovecotFactory


def message(subject: str, body: bytes = b"body\n") -> bytes:
    """A small message as a Maildir file holds it (LF line ends)."""
    return b"From: a@example.com\nSubject: " + subject.encode() + b"\n\n" + body


def crlf(raw: bytes) -> bytes:
    """What POP3 transmits for a Maildir file."""
    return raw.replace(b"\n", b"\r\n")


def ssl_session(server: DovecotServer, user: str, password: str, **kwargs: Any) -> POP3Session:
    """POP3S to `server`, verifying its certificate with the test CA."""
    return connect(
        server.host,
        server.pop3s_port,
        security=Security.SSL,
        username=user,
        password=password,
        ssl_context=server.pki.client_context(),
        **kwargs,
    )


async def test_implicit_tls_sasl_plain_and_pipelining(
    dovecot: DovecotServer, dovecot_user: tuple[str, str]
) -> None:
    """POP3S with the test CA, SASL PLAIN, and a pipelined batch Dovecot answers in order."""
    user, password = dovecot_user
    raws = [message(f"m{i}") for i in range(3)]
    for raw in raws:
        dovecot.deliver(user, raw)
    async with ssl_session(dovecot, user, password) as session:
        assert session.tls
        assert session.greeting.startswith("Dovecot")
        assert session.capabilities.pipelining
        results = await session.pipeline([Stat(), Uidl(3), Top(3, 0), Uidl(9)])
        uids = await session.uidl()
        assert await session.retr(2) == crlf(raws[1])
        stats = session.stats
    assert results[0] == StatResult(3, sum(len(crlf(r)) for r in raws))
    assert results[1] == uids[3]
    assert results[2] == crlf(raws[2]).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert str(results[3]).endswith("There's no message 9.")
    assert stats.round_trips == 5  # CAPA, AUTH, batch, UIDL, RETR
    assert stats.bytes_in > 0
    assert stats.bytes_out > 0


async def test_stls_then_sasl_plain(dovecot: DovecotServer, dovecot_user: tuple[str, str]) -> None:
    """STLS on the clear port, certificate verified, then login inside TLS."""
    user, password = dovecot_user
    dovecot.deliver(user, message("hello"))
    async with connect(
        dovecot.host,
        dovecot.pop3_port,
        security=Security.STARTTLS,
        username=user,
        password=password,
        ssl_context=dovecot.pki.client_context(),
    ) as session:
        assert session.tls
        assert not session.capabilities.stls
        assert (await session.stat()).count == 1


async def test_user_pass_in_clear_when_allowed(
    dovecot: DovecotServer, dovecot_user: tuple[str, str]
) -> None:
    """Security NONE on loopback (Dovecot counts it as secure): SASL PLAIN in clear text."""
    user, password = dovecot_user
    async with connect(
        dovecot.host, dovecot.pop3_port, security=Security.NONE, username=user, password=password
    ) as session:
        assert not session.tls
        assert await session.stat() == StatResult(0, 0)


async def test_user_pass(
    dovecot: DovecotServer, dovecot_user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """USER/PASS over TLS against Dovecot.

    The client prefers SASL PLAIN, which Dovecot always offers (its USER/PASS goes
    through the same PLAIN mechanism), so the choice is forced to test the wire path.
    """
    monkeypatch.setattr(client, "choose_login", lambda *_args, **_kwargs: "user")
    user, password = dovecot_user
    async with ssl_session(dovecot, user, password) as session:
        assert "PLAIN" in session.capabilities.sasl
        assert await session.stat() == StatResult(0, 0)


async def test_wrong_password(
    dovecot_factory: DovecotFactory, socket_enabled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dovecot's "[AUTH] Authentication failed." after its delay is POP3AuthError.

    On an instance of its own: Dovecot delays later logins from an address that
    failed, which would slow down every other test.
    """
    server = dovecot_factory(extra_config="# wrong passwords: Dovecot penalises the address\n")

    async def log_in() -> None:
        async with ssl_session(server, "alice", "wrong"):
            pass

    with pytest.raises(POP3AuthError, match=r"\[AUTH\] Authentication failed") as caught:
        await log_in()
    assert caught.value.command == "AUTH"  # SASL PLAIN
    monkeypatch.setattr(client, "choose_login", lambda *_args, **_kwargs: "user")
    with pytest.raises(POP3AuthError, match=r"\[AUTH\] Authentication failed") as caught:
        await log_in()
    assert caught.value.command == "PASS"


async def test_plaintext_refused(dovecot_factory: DovecotFactory, loopback_aliases: None) -> None:
    """ssl=required on 127.0.0.2: USER in clear text is refused, which is not a wrong password."""
    server = dovecot_factory(plaintext_refused=True)
    reply = server.plaintext_refused_reply.removeprefix("-ERR ")
    with pytest.raises(POP3PlaintextRefusedError, match=re.escape(reply)):
        async with connect(
            server.host, server.pop3_port, security=Security.NONE, username="alice", password="x"
        ):
            pass


async def test_long_lines_byte_exact(dovecot: DovecotServer, dovecot_user: tuple[str, str]) -> None:
    """5,000-byte header and body lines come through TOP and RETR unchanged."""
    user, password = dovecot_user
    raw = b"Subject: long\nX-Long: " + b"h" * 5000 + b"\n\n" + b"b" * 5000 + b"\n.dot\nend\n"
    dovecot.deliver(user, raw)
    async with ssl_session(dovecot, user, password) as session:
        assert await session.retr(1) == crlf(raw)
        assert await session.top(1, 1) == crlf(raw).rsplit(b"\r\n.dot", 1)[0] + b"\r\n"


async def test_in_use_with_pop3_lock_session(
    dovecot_factory: DovecotFactory, socket_enabled: None
) -> None:
    """A second login while the first holds the lock: Dovecot waits ~10 s, then [IN-USE]."""
    server = dovecot_factory(pop3_lock_session=True)
    user, password = server.new_user()
    server.deliver(user, message("locked"))
    async with ssl_session(server, user, password):
        with pytest.raises(POP3InUseError, match="locked"):
            async with ssl_session(server, user, password, command_timeout=30):
                pass
    # The lock is gone with the first session.
    async with ssl_session(server, user, password) as session:
        assert (await session.stat()).count == 1
    await asyncio.sleep(0)
